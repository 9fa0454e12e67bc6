/*
 * scripted_policy - a transformer policy with a scripted next token (see
 * scripted_policy.h).
 */
#include "scripted_policy.h"

#include <string.h>

/* Embedding and head weights: a logit of 10 * 1.6 = 16 for the scripted token. */
#define EMBED 10.0f
#define HEAD 1.6f

ag_model_t *scripted_policy_create(int ctx, const int32_t *after, const int32_t *next, size_t n)
{
    ag_model_config_t c;
    ag_model_config_default(&c);
    c.d_model = 32;
    c.n_layers = 1;
    c.n_heads = 2;
    c.ctx = ctx;
    if (n > (size_t)c.d_model)
        return NULL;
    ag_model_t *m = ag_model_create(&c, 7, 1);
    if (!m)
        return NULL;
    float *p = ag_model_params(m);
    const ag_tensor_info_t *wte = ag_model_tensor(m, ag_model_find_tensor(m, "wte"));
    const ag_tensor_info_t *head = ag_model_tensor(m, ag_model_find_tensor(m, "head.weight"));
    if (!wte || !head) {
        ag_model_destroy(&m);
        return NULL;
    }
    memset(p + wte->offset, 0, wte->size * sizeof(float));
    memset(p + head->offset, 0, head->size * sizeof(float));
    const size_t D = (size_t)c.d_model;
    for (size_t i = 0; i < n; i++) {
        p[wte->offset + (size_t)after[i] * D + i] = EMBED;
        p[head->offset + (size_t)next[i] * D + i] = HEAD;
    }
    return m;
}
