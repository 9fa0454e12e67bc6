/*
 * tiny_model.h - the small models the numerical tests run on: a config small
 * enough for finite differences, and parameters randomised everywhere
 * (LayerNorm gains and biases included) so that no gradient term hides
 * behind a zero. Shared by test_model (the model core) and test_loss (the
 * learner's objective on top of it).
 */
#ifndef AG_TEST_TINY_MODEL_H
#define AG_TEST_TINY_MODEL_H

#include <stdint.h>

#include "model.h"
#include "rng.h"

/* vocab 11, d_model 16, 2 layers, 2 heads, context 8 */
ag_model_config_t ag_test_tiny_config(void);

/* Uniform in [lo, hi). */
float ag_test_uniform(ag_rng_t *r, float lo, float hi);

/* Gains in [0.6, 1.4), matrices in [-0.5, 0.5), other vectors in [-0.2, 0.2). */
void ag_test_randomise(ag_model_t *m, uint64_t seed);

/* log p(target) of the logits z (V) computed in double, and their entropy
 * into *entropy (if not NULL): the reference the model's outputs are
 * checked against. */
double ag_test_log_softmax(const float *z, int V, int target, double *entropy);

/* A tiny model reserved for batch x seq, randomised from seed; asserts on
 * failure (tests only). */
ag_model_t *ag_test_tiny_model(int batch, int seq, int threads, uint64_t seed);

#endif
