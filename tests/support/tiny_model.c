/*
 * tiny_model.c - small randomised models for the numerical tests (see
 * tiny_model.h).
 */
#include "tiny_model.h"

#include <assert.h>
#include <math.h>
#include <string.h>

ag_model_config_t ag_test_tiny_config(void)
{
    ag_model_config_t c = {
        .vocab = 11, .d_model = 16, .n_layers = 2, .n_heads = 2, .ctx = 8, .mlp_ratio = 4};
    return c;
}

float ag_test_uniform(ag_rng_t *r, float lo, float hi)
{
    return lo + (hi - lo) * ag_rng_float(r);
}

void ag_test_randomise(ag_model_t *m, uint64_t seed)
{
    ag_rng_t r;
    ag_rng_seed(&r, seed);
    for (int i = 0; i < ag_model_num_tensors(m); i++) {
        const ag_tensor_info_t *t = ag_model_tensor(m, i);
        float *x = ag_model_params(m) + t->offset;
        int gain = strstr(t->name, "ln") && strstr(t->name, ".weight");
        for (size_t k = 0; k < t->size; k++) {
            if (gain)
                x[k] = ag_test_uniform(&r, 0.6f, 1.4f);
            else if (t->ndim == 2)
                x[k] = ag_test_uniform(&r, -0.5f, 0.5f);
            else
                x[k] = ag_test_uniform(&r, -0.2f, 0.2f);
        }
    }
}

ag_model_t *ag_test_tiny_model(int batch, int seq, int threads, uint64_t seed)
{
    ag_model_config_t c = ag_test_tiny_config();
    ag_model_t *m = ag_model_create(&c, 1, threads);
    assert(m);
    int rc = ag_model_reserve(m, batch, seq);
    assert(rc == 0);
    (void)rc;
    ag_test_randomise(m, seed);
    return m;
}

double ag_test_log_softmax(const float *z, int V, int target, double *entropy)
{
    double mx = z[0], s = 0.0, h = 0.0;
    for (int k = 1; k < V; k++)
        mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < V; k++)
        s += exp(z[k] - mx);
    const double logz = mx + log(s);
    for (int k = 0; k < V; k++)
        h -= exp(z[k] - logz) * (z[k] - logz);
    if (entropy)
        *entropy = h;
    return z[target] - logz;
}
