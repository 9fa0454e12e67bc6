/*
 * model_priv.h - the model's insides, shared by the files of the model core
 * (model.c, sampler.c, optim.c, ckpt.c) and nothing else: the struct behind
 * ag_model_t and the per-tensor views into the parameter and gradient slabs.
 */
#ifndef AG_MODEL_PRIV_H
#define AG_MODEL_PRIV_H

#include "forkjoin.h"
#include "model.h"

/* Views into a slab laid out in the documented tensor order. */
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcpw, *fcpb;
} ag_layer_view_t;

typedef struct {
    float *wte, *wpe;
    ag_layer_view_t *layers;
    float *lnfw, *lnfb, *headw, *headb, *vw, *vb;
} ag_param_view_t;

/* Activations of one layer for the rows of the current batch. */
typedef struct {
    float *res;      /* (R,D) input of the layer */
    float *ln1;      /* (R,D) */
    float *ln1_mean; /* (R) */
    float *ln1_rstd; /* (R) */
    float *qkv;      /* (R,3D) */
    float *probs;    /* (B,H,T,T) */
    float *atty;     /* (R,D) attention output before the projection */
    float *res_mid;  /* (R,D) after the attention residual */
    float *ln2;
    float *ln2_mean;
    float *ln2_rstd;
    float *fch;      /* (R,F) before GELU */
    float *fch_gelu; /* (R,F) */
} ag_layer_acts_t;

struct ag_model {
    ag_model_config_t cfg;
    int n_tensors;
    ag_tensor_info_t *tensors;
    size_t n_params;
    float *params;
    ag_param_view_t p;

    int threads;
    ag_forkjoin_t *fj;
    float *scratch; /* per-thread: LayerNorm partials, attention, loss rows */
    size_t scratch_per_thread;

    /* training state, from ag_model_reserve */
    int max_rows, max_seq;
    float *grads;
    ag_param_view_t g;
    float *acts;
    size_t acts_floats;
    ag_layer_acts_t *la;
    int B, T; /* of the last forward; 0 = none */
    unsigned fwd_flags;
    int32_t *tokens; /* (R) tokens of the last forward */
    float *res_out;  /* (R,D) output of the last layer */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits; /* (R,V) */
    float *values; /* (R) */
    /* per-token pass (ag_model_logprobs) of the last forward, for backward */
    int have_probs;
    float *probs;         /* (R,V) softmax of the logits */
    float *logz, *ent;    /* (R) log partition and entropy per row */
    int32_t *tok_targets; /* (R) target per row, -1 where masked, -2 without targets */
    float *dres, *dln, *datty, *dqkv, *dfch, *dvalues;
};

/* Fills out (if not NULL) with the tensor table of a model with config cfg
 * and returns the number of tensors. */
int ag_model_tensor_table(const ag_model_config_t *cfg, ag_tensor_info_t *out);

#endif
