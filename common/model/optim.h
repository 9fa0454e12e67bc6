/*
 * optim.h - AdamW for the model's parameter slab, with global-norm gradient
 * clipping and a learning-rate schedule (linear warm-up, then cosine decay
 * to a floor). Weight decay is decoupled (as in PyTorch's AdamW) and applies
 * to the matrices only (ag_tensor_info_t.decay), never to biases, LayerNorm
 * gains or the value bias. The moment slabs have the parameter layout, so a
 * checkpoint can store them next to the weights (ckpt.h).
 */
#ifndef AG_OPTIM_H
#define AG_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct ag_adamw_config {
    float lr;           /* peak learning rate: 3e-4 */
    float beta1;        /* 0.9 */
    float beta2;        /* 0.95 */
    float eps;          /* 1e-8 */
    float weight_decay; /* 0.01 */
    float grad_clip;    /* max global L2 norm of the gradient: 1.0; <= 0 disables */
    long warmup_steps;  /* linear warm-up from lr/warmup_steps to lr: 0 */
    long total_steps;   /* cosine decay from warm-up end to here; 0 = constant lr */
    float min_lr_ratio; /* the cosine ends at lr * min_lr_ratio: 0.1 */
} ag_adamw_config_t;

void ag_adamw_config_default(ag_adamw_config_t *c);

/* Learning rate of update number step (0-based) under the schedule. */
float ag_adamw_lr_at(const ag_adamw_config_t *c, long step);

typedef struct ag_adamw ag_adamw_t;

/* An optimizer for m's parameter slab (zero moments, step 0). It keeps no
 * pointer to m; the model passed to ag_adamw_step must have the same layout. */
ag_adamw_t *ag_adamw_create(const ag_model_t *m, const ag_adamw_config_t *c);
void ag_adamw_destroy(ag_adamw_t **self);

/* The configuration in use; may be changed between steps (e.g. lr). */
ag_adamw_config_t *ag_adamw_config(ag_adamw_t *o);

typedef struct ag_adamw_stats {
    float lr;         /* the learning rate applied */
    double grad_norm; /* global L2 norm of the gradient before clipping */
    int clipped;      /* 1 if the gradient was scaled down */
} ag_adamw_stats_t;

/* One update of m's parameters from m's gradient slab. Returns -ERANGE and
 * leaves everything unchanged if the gradient norm is not finite, -EINVAL if
 * m has no gradients or a different size. stats may be NULL. */
int ag_adamw_step(ag_adamw_t *o, ag_model_t *m, ag_adamw_stats_t *stats);

/* Global L2 norm of m's gradient slab (double accumulation, fixed order). */
double ag_model_grad_norm(ag_model_t *m);

/* State, for checkpoints: the number of updates taken and the first and
 * second moment slabs (ag_adamw_num_params floats each, parameter layout). */
uint64_t ag_adamw_steps(const ag_adamw_t *o);
void ag_adamw_set_steps(ag_adamw_t *o, uint64_t steps);
size_t ag_adamw_num_params(const ag_adamw_t *o);
float *ag_adamw_m(ag_adamw_t *o);
float *ag_adamw_v(ag_adamw_t *o);
const float *ag_adamw_m_const(const ag_adamw_t *o);
const float *ag_adamw_v_const(const ag_adamw_t *o);

#endif
