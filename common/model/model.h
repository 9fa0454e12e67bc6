/*
 * model.h - agora's policy/value model: a decoder-only transformer over a
 * byte-level vocabulary (256 bytes + 8 special tokens), with learned
 * positions, pre-LayerNorm blocks (causal multi-head self-attention, GELU
 * MLP), a policy head over the vocabulary and a scalar value head on the
 * final hidden state. The reward server uses the same trunk and trains the
 * value head as its scalar score.
 *
 * Memory: parameters are one contiguous float slab in a documented tensor
 * order (below), so they can be sent over the wire or written to a
 * checkpoint as is; gradients are a second slab of the same layout;
 * activations live in a third slab sized once by ag_model_reserve. Forward
 * and backward allocate nothing.
 *
 * Threads: a model owns a fork-join pool (threads given at creation, 0 = all
 * online CPUs) and runs OpenBLAS single-threaded inside it; creating a model
 * sets OpenBLAS to one thread for the whole process. Results are bit-for-bit
 * identical for the same inputs and the same thread count. A model is not
 * thread-safe: one call at a time.
 *
 * Errors: functions that can fail return 0 or a negative errno value:
 * -EINVAL for bad arguments or bad input data (e.g. a token id outside the
 * vocabulary), -ENOMEM, -ERANGE when a batch exceeds what was reserved or a
 * sequence exceeds the context.
 *
 * Typical uses:
 *   learner:  ag_model_forward -> ag_model_logprobs -> per-token gradients of
 *             its objective (learner/loss.h) -> ag_model_backward -> ag_adamw_step
 *             (optim.h)
 *   reward:   ag_model_forward(..., AG_MODEL_NO_LOGITS) -> read ag_model_values at the
 *             last token -> ag_model_backward(m, NULL, NULL, dvalues) -> ag_adamw_step
 *   actor:    ag_sampler_t (sampler.h) over a model whose weights are replaced
 *             with ag_model_load_params between generations.
 */
#ifndef AG_MODEL_H
#define AG_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* Vocabulary: bytes are their own ids; specials follow. */
enum {
    AG_VOCAB_BYTES = 256,
    AG_TOK_BOS = 256,    /* begin of a transcript */
    AG_TOK_EOT = 257,    /* end of a turn */
    AG_TOK_PAD = 258,    /* padding after the end of a sequence */
    AG_VOCAB_SIZE = 264, /* 259..263 reserved */
};

typedef struct ag_model_config {
    int vocab;     /* AG_VOCAB_SIZE; smaller values are allowed (tests) */
    int d_model;   /* 128 */
    int n_layers;  /* 4 */
    int n_heads;   /* 4; must divide d_model */
    int ctx;       /* 256: longest sequence, size of the position table */
    int mlp_ratio; /* 4: MLP hidden width = mlp_ratio * d_model */
} ag_model_config_t;

#define AG_MODEL_MAX_DIM 65536
#define AG_MODEL_MAX_LAYERS 256
#define AG_MODEL_MAX_CTX 65536
#define AG_MODEL_TENSOR_NAME 48

void ag_model_config_default(ag_model_config_t *cfg);

/* 0 if cfg describes a model this code can build, else -EINVAL with a reason
 * in err (if err is not NULL). */
int ag_model_config_check(const ag_model_config_t *cfg, char *err, size_t errlen);

/* Number of floats in the parameter slab of a model with this config. */
size_t ag_model_config_num_params(const ag_model_config_t *cfg);

/*
 * Tensor order of the parameter slab (row-major, "(out, in)" for matrices as
 * in PyTorch's nn.Linear, so y = x W^T + b):
 *   wte (vocab, D)                         token embedding
 *   wpe (ctx, D)                           position embedding
 *   for each layer l = 0 .. n_layers-1:
 *     layers.l.ln1.weight (D), layers.l.ln1.bias (D)
 *     layers.l.attn.qkv.weight (3D, D), layers.l.attn.qkv.bias (3D)
 *         rows 0..D-1 produce queries, D..2D-1 keys, 2D..3D-1 values;
 *         head h uses columns h*D/H .. (h+1)*D/H-1 of each
 *     layers.l.attn.proj.weight (D, D), layers.l.attn.proj.bias (D)
 *     layers.l.ln2.weight (D), layers.l.ln2.bias (D)
 *     layers.l.mlp.fc.weight (F, D), layers.l.mlp.fc.bias (F)      F = mlp_ratio * D
 *     layers.l.mlp.proj.weight (D, F), layers.l.mlp.proj.bias (D)
 *   lnf.weight (D), lnf.bias (D)           final LayerNorm
 *   head.weight (vocab, D), head.bias (vocab)   policy logits
 *   value.weight (1, D), value.bias (1)         scalar value / score
 * LayerNorm eps is 1e-5; GELU is the tanh approximation; attention scores
 * are scaled by 1/sqrt(D/H).
 */
typedef struct ag_tensor_info {
    char name[AG_MODEL_TENSOR_NAME];
    int ndim;      /* 1 or 2 */
    int shape[2];  /* shape[1] = 1 when ndim = 1 */
    size_t offset; /* in floats from the start of the slab */
    size_t size;   /* number of floats */
    int decay;     /* 1 for matrices (weight decay applies), 0 for vectors */
} ag_tensor_info_t;

typedef struct ag_model ag_model_t;

/* A model with freshly initialised parameters: N(0, 0.02) matrices (the
 * output projections of each block scaled by 1/sqrt(2 * n_layers)), zero
 * biases, unit LayerNorm gains, drawn from an xoshiro256** stream seeded with
 * seed. threads = 0 uses every online CPU. Returns NULL on a bad config
 * (logged nowhere: check it first with ag_model_config_check) or no memory. */
ag_model_t *ag_model_create(const ag_model_config_t *cfg, uint64_t seed, int threads);
void ag_model_destroy(ag_model_t **self);

const ag_model_config_t *ag_model_config(const ag_model_t *m);
int ag_model_threads(const ag_model_t *m);
int ag_model_set_threads(ag_model_t *m, int threads);

/* --- parameters ---------------------------------------------------------- */

size_t ag_model_num_params(const ag_model_t *m);
/* The parameter slab, ag_model_num_params floats, owned by the model. */
float *ag_model_params(ag_model_t *m);
const float *ag_model_params_const(const ag_model_t *m);
/* Copies n floats (must equal ag_model_num_params) into the slab. */
int ag_model_load_params(ag_model_t *m, const float *src, size_t n);

int ag_model_num_tensors(const ag_model_t *m);
const ag_tensor_info_t *ag_model_tensor(const ag_model_t *m, int index);
/* Index of the tensor with this name, or -1. */
int ag_model_find_tensor(const ag_model_t *m, const char *name);

/* --- training ------------------------------------------------------------ */

/* Allocates the gradient slab and activations for batches of up to
 * max_batch sequences of up to max_seq tokens (any B x T with B * T <=
 * max_batch * max_seq and T <= max_seq fits). Call once before training;
 * calling it again re-sizes. Inference through ag_sampler_t needs none of it. */
int ag_model_reserve(ag_model_t *m, int max_batch, int max_seq);

/* The gradient slab (same layout as the parameters), NULL before reserve. */
float *ag_model_grads(ag_model_t *m);
void ag_model_zero_grad(ag_model_t *m);

enum {
    AG_MODEL_NO_LOGITS = 1, /* skip the policy head (value/score only) */
};

/* Runs the model over tokens (B,T): B sequences of T tokens, each token in
 * [0, vocab). Sequences shorter than T are right-padded (with AG_TOK_PAD or
 * anything in the vocabulary): attention is causal, so real tokens never see
 * the padding, and a zero mask keeps it out of every objective. Position t of
 * each sequence predicts token t + 1. Keeps every activation for a following
 * backward. */
int ag_model_forward(ag_model_t *m, int B, int T, const int32_t *tokens, unsigned flags);

/* Outputs of the last forward: logits (B,T,vocab), values (B,T), and the
 * final hidden state after the last LayerNorm (B,T,D). */
const float *ag_model_logits(const ag_model_t *m);
const float *ag_model_values(const ag_model_t *m);
const float *ag_model_hidden(const ag_model_t *m);
/* B and T of the last forward; -EINVAL before any. */
int ag_model_forward_shape(const ag_model_t *m, int *B, int *T);

/* Per-token outputs of the last forward, which must have computed logits:
 * at each of the B*T positions with mask > 0 (mask NULL = all), log
 * p(targets[r]) into logprobs and the entropy -sum_a p(a) log p(a) of the
 * whole distribution into entropy (each output may be NULL; 0 where masked).
 * targets may be NULL (entropy only). The softmax is kept for a following
 * ag_model_backward. -EINVAL on a negative or NaN mask, a target outside the
 * vocabulary at an unmasked position, or no logits. */
int ag_model_logprobs(ag_model_t *m, const int32_t *targets, const float *mask, float *logprobs,
                      float *entropy);

/* Backpropagates per-token gradients of an objective with respect to the
 * model's per-token outputs and adds the parameter gradients into the
 * gradient slab: dlogprobs and dentropy (B,T) with respect to what the last
 * ag_model_logprobs gave (both need that call after the last forward;
 * positions it masked get no gradient), dvalues (B,T) with respect to
 * ag_model_values. Each may be NULL (no gradient through it). The logits of
 * the last forward are overwritten (they hold d objective / d logits
 * afterwards). */
int ag_model_backward(ag_model_t *m, const float *dlogprobs, const float *dentropy,
                      const float *dvalues);

/* Model FLOPs per token, the convention used for MFU: 2 per multiply-add of
 * every matrix product (the embeddings are lookups and count nothing),
 * attention counted over the causal triangle only. Training (forward +
 * backward = 3x forward) of sequences of T tokens; one decoding step at
 * 0-based position pos. */
double ag_model_train_flops_per_token(const ag_model_config_t *cfg, int T);
double ag_model_decode_flops(const ag_model_config_t *cfg, int pos);

#endif
