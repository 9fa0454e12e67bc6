/*
 * scripted_policy - a real transformer policy whose next token is scripted,
 * for the tests that run actors: its token embedding and policy head are
 * zeroed, then set so that after token after[i] it writes next[i] with
 * probability about 0.97 (each pair gets an embedding direction of its
 * own). Its random attention and MLP weights still make every log-prob and
 * value depend on the whole cached context, so caches, re-feeding and
 * shipping are exercised for real.
 */
#ifndef AG_TEST_SCRIPTED_POLICY_H
#define AG_TEST_SCRIPTED_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* A small model (d_model 32, one layer, two heads, context ctx, seed 7)
 * scripted with n pairs (n <= 32), or NULL. Free with ag_model_destroy. */
ag_model_t *scripted_policy_create(int ctx, const int32_t *after, const int32_t *next, size_t n);

#endif
