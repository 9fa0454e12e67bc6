/*
 * sampler.h - batched incremental decoding with a KV cache, for the actor.
 *
 * A sampler holds `slots` independent sequences (episodes in flight), each
 * with its own position. One call to ag_sampler_feed runs the model over a
 * list of rows, each row appending one token to one slot, so episodes at
 * different positions share every matrix product: each layer is one
 * (rows x D) . (D x 3D) product and so on. A slot may appear in several rows
 * of one call (feeding a prompt); its rows get consecutive positions in row
 * order. After a feed, each row's next-token logits and value are available
 * and can be sampled with temperature and top-p from a caller-owned seeded
 * RNG, so the same seed, inputs and thread count give the same tokens.
 *
 * The sampler reads the model's parameter slab at every feed and keeps no
 * copy: replacing the weights (ag_model_load_params) is allowed between
 * generations, after which slots holding keys and values computed with the
 * old weights should be reset.
 *
 * Typical actor loop:
 *   ag_sampler_reset(s, slot) when an episode starts;
 *   feed the observation's tokens (rows with that slot);
 *   then ag_sampler_step with the last token of each active slot, appending
 *   the sampled tokens, until EOT or a length limit.
 */
#ifndef AG_SAMPLER_H
#define AG_SAMPLER_H

#include <stdint.h>

#include "model.h"
#include "rng.h"

typedef struct ag_sampler ag_sampler_t;

/* A sampler with `slots` empty slots over model m (which must outlive it)
 * that runs up to max_rows rows per feed. NULL on bad arguments or no memory. */
ag_sampler_t *ag_sampler_create(ag_model_t *m, int slots, int max_rows);
void ag_sampler_destroy(ag_sampler_t **self);

int ag_sampler_slots(const ag_sampler_t *s);
int ag_sampler_max_rows(const ag_sampler_t *s);

/* Empties a slot (position 0). */
int ag_sampler_reset(ag_sampler_t *s, int slot);

/* Number of tokens a slot holds; the next token fed goes to this position. */
int ag_sampler_position(const ag_sampler_t *s, int slot);

/* Appends tokens[i] to slot slots[i] for i in [0, n) and runs the model over
 * these n rows. -EINVAL on a bad slot or token, -ERANGE if n > max_rows or
 * a slot would exceed the model's context; nothing changes on error. */
int ag_sampler_feed(ag_sampler_t *s, int n, const int32_t *slots, const int32_t *tokens);

/* Results of the last feed for row i: next-token logits (vocab floats) and
 * the value head's output. */
const float *ag_sampler_logits(const ag_sampler_t *s, int row);
float ag_sampler_value(const ag_sampler_t *s, int row);

typedef struct ag_sample_config {
    float temperature; /* 1 = the model's distribution; <= 0 = greedy */
    float top_p;       /* nucleus: keep the most likely tokens up to this mass; >= 1 = all */
} ag_sample_config_t;

typedef struct ag_sample {
    int32_t token;
    /* log-probability of token under the distribution it was drawn from
     * (after temperature and top-p): the behaviour log-prob for importance
     * ratios when the learner scores that same distribution. 0 for greedy. */
    float logprob;
    /* log-probability of token under the model itself (temperature 1, full
     * vocabulary), what ag_model_logprobs computes as log p(target). */
    float policy_logprob;
    float value; /* value head at the row that was sampled from */
} ag_sample_t;

/* Draws the next token from row i of the last feed. */
int ag_sampler_sample(ag_sampler_t *s, int row, const ag_sample_config_t *cfg, ag_rng_t *rng,
                      ag_sample_t *out);

/* Feed, then sample one token for every row (out[i] for row i). */
int ag_sampler_step(ag_sampler_t *s, int n, const int32_t *slots, const int32_t *tokens,
                    const ag_sample_config_t *cfg, ag_rng_t *rng, ag_sample_t *out);

/* Draws from logits (V) directly, using caller-owned work space: probs (V
 * floats) and order (V entries). out->value is set to 0. */
typedef struct ag_sample_entry {
    float p;
    int32_t token;
} ag_sample_entry_t;

int ag_sample_logits(const float *logits, int V, const ag_sample_config_t *cfg, ag_rng_t *rng,
                     float *probs, ag_sample_entry_t *order, ag_sample_t *out);

#endif
