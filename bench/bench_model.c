/*
 * agora-bench model - throughput of the model core on this machine:
 * training (forward, PPO + value loss, backward, AdamW) on B x T tokens,
 * the learner's scoring pass (forward and log-probs, no gradient) on the
 * same tokens, batched KV-cache sampling of S sequences, the sgemm peak of
 * the same process with the same thread count, and the model FLOP
 * utilisation of training and sampling against that peak. The workload
 * mirrors the PyTorch baselines (shared/bench/torch_gpt_step.py,
 * torch_gpt_sample.py): same model, same losses, same token counting, so
 * their tokens/s can be compared directly. bench_model_rates gives the
 * training and scoring figures to agora-bench pipeline.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "clock.h"
#include "bench.h"
#include "forkjoin.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "sampler.h"

#define PROMPT 16

/* agora-bench model's options ([bench_model] of a run file), filled from s_options. */
typedef struct {
    int d_model, layers, heads, ctx, batch, sample_batch, threads;
    double seconds;
} opts_t;

#define OPT(f, ...) AG_OPT(opts_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(d_model, "bench_model.d_model", "d-model", "128", 1, 1e6, "model width"),
    OPT(layers, "bench_model.layers", "layers", "4", 1, 1e6, "transformer blocks"),
    OPT(heads, "bench_model.heads", "heads", "0", 0, 1e6,
        "attention heads (0 = d_model / 32, at least 1)"),
    OPT(ctx, "bench_model.ctx", "ctx", "128", PROMPT + 1, 1e6,
        "T: tokens per training and scoring sequence, and the sampled length"),
    OPT(batch, "bench_model.batch", "batch", "16", 1, 1e6,
        "B: sequences per training step and scoring pass"),
    OPT(sample_batch, "bench_model.sample_batch", "sample-batch", "32", 1, 1e6,
        "S: sequences sampled at once"),
    OPT(threads, "bench_model.threads", "threads", "0", 0, 1e6, "compute threads (0 = every core)"),
    OPT(seconds, "bench_model.seconds", "seconds", "3", 1e-3, 1e6,
        "how long each rate is timed (seconds)"),
};
#undef OPT

/* The figures of the JSON line, and how they are counted: --help's text. */
/* clang-format off */
static const char s_summary[] =
    "Measures the model core and prints one JSON line:\n"
    "  params                 parameters of the model (vocab 264, MLP ratio 4)\n"
    "  train_tokens_per_s     B*T tokens per training step (forward, PPO clipped\n"
    "                         surrogate + 0.5 * value MSE, backward, AdamW with\n"
    "                         gradient clipping) / step time\n"
    "  score_tokens_per_s     B*T tokens per scoring pass / pass time: the no-gradient\n"
    "                         pass the learner runs before each PPO update for the\n"
    "                         proximal log-probs and values (and again with the frozen\n"
    "                         reference model when a KL term is on): forward, log-probs\n"
    "                         of the targets, values copied out; same tokens and model\n"
    "  sample_tokens_per_s    S sequences each fed a " BENCH_STR(PROMPT) "-token prompt in one call, then\n"
    "                         sampled one token per step up to T; S*T positions / time\n"
    "                         (the counting of torch_gpt_sample.py);\n"
    "                         sample_generated_tokens_per_s counts only S*(T-" BENCH_STR(PROMPT) ")\n"
    "  sgemm_peak_gflops      best of a 2048^3 sgemm by OpenBLAS with N threads and\n"
    "                         the same product split over N of our threads, timed\n"
    "                         before and after the model runs\n"
    "  train_mfu, sample_mfu  model GFLOP/s / sgemm_peak_gflops\n"
    "  loadavg_1m             the machine's load average when the run started\n"
    "\n"
    "FLOP convention: 2 FLOPs per multiply-add of every matrix product (QKV,\n"
    "attention projection, MLP, policy and value heads; embeddings are lookups and\n"
    "count nothing); attention scores and weighted sums over the causal triangle\n"
    "only (2*D*(T+1) FLOPs per token and layer forward). Training = 3 x forward.\n"
    "Sampling counts the work of each position at its own context length.\n"
    "LayerNorm, GELU, softmax, losses and the optimizer count nothing.";
/* clang-format on */

/* Parses the options into o; 0 to run, 1 after --help, 2 after an error. */
static int s_parse(int argc, char **argv, opts_t *o)
{
    ag_config_t *cfg;
    int rc = bench_options("agora-bench model", "[options]", s_summary, s_options,
                           sizeof s_options / sizeof s_options[0], 0, argc, argv, o, &cfg);
    ag_config_destroy(&cfg); /* the options are numbers only */
    if (rc)
        return rc;
    if (!o->heads)
        o->heads = o->d_model >= 32 ? o->d_model / 32 : 1;
    if (!o->threads) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = ncpu > 0 ? (int)ncpu : 1;
    }
    return 0;
}

/* ------------------------------------------ training and scoring rates */

/*
 * One B x T workload of random tokens, shared by the training step and the
 * scoring pass so both figures come from the same tokens and the same model.
 */
typedef struct {
    ag_model_t *m;
    ag_adamw_t *opt;
    int B, T;
    int32_t *tok, *act;
    float *adv, *old, *ret, *mask, *lp, *values;
    ag_loss_config_t train_lc;
    ag_loss_t *loss;
} work_t;

static void s_work_free(work_t *w)
{
    ag_adamw_destroy(&w->opt);
    ag_loss_destroy(&w->loss);
    free(w->tok);
    free(w->act);
    free(w->adv);
    free(w->old);
    free(w->ret);
    free(w->mask);
    free(w->lp);
    free(w->values);
}

static int s_work_init(work_t *w, ag_model_t *m, int B, int T)
{
    const size_t R = (size_t)B * (size_t)T;
    *w = (work_t){.m = m, .B = B, .T = T};
    w->tok = malloc(sizeof(int32_t) * R);
    w->act = malloc(sizeof(int32_t) * R);
    w->adv = malloc(sizeof(float) * R);
    w->old = malloc(sizeof(float) * R);
    w->ret = malloc(sizeof(float) * R);
    w->mask = malloc(sizeof(float) * R);
    w->lp = malloc(sizeof(float) * R);
    w->values = malloc(sizeof(float) * R);
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    oc.lr = 1e-4f;
    w->opt = ag_adamw_create(m, &oc);
    w->loss = ag_loss_create();
    if (!w->loss || !w->tok || !w->act || !w->adv || !w->old || !w->ret || !w->mask || !w->lp ||
        !w->values || !w->opt || ag_model_reserve(m, B, T) != 0) {
        s_work_free(w);
        return -1;
    }
    ag_rng_t r;
    ag_rng_seed(&r, 1);
    for (size_t i = 0; i < R; i++) {
        w->tok[i] = (int32_t)ag_rng_below(&r, AG_VOCAB_SIZE);
        w->act[i] = (int32_t)ag_rng_below(&r, AG_VOCAB_SIZE);
        w->adv[i] = (float)(ag_rng_double(&r) * 2.0 - 1.0);
        w->old[i] = (float)(ag_rng_double(&r) * 0.2 - 4.1);
        w->ret[i] = (float)(ag_rng_double(&r) * 2.0 - 1.0);
        w->mask[i] = 1.0f;
    }
    ag_loss_config_default(&w->train_lc);
    w->train_lc.vf_clip = 0.0f;
    return 0;
}

/* One training step: forward, PPO + value loss, backward, AdamW. */
static int s_train_step(work_t *w)
{
    if (ag_model_forward(w->m, w->B, w->T, w->tok, 0) != 0)
        return -1;
    ag_loss_batch_t b = {
        .targets = w->act, .advantages = w->adv, .old_logprobs = w->old, .returns = w->ret};
    ag_model_zero_grad(w->m);
    if (ag_loss_backward(w->loss, w->m, &b, &w->train_lc, NULL) != 0)
        return -1;
    ag_adamw_step(w->opt, w->m, NULL);
    return 0;
}

/* One scoring pass as the learner runs it for the proximal and reference
 * log-probs: forward, log-probs of the targets, values copied out. */
static int s_score_step(work_t *w)
{
    if (ag_model_forward(w->m, w->B, w->T, w->tok, 0) != 0)
        return -1;
    if (ag_model_logprobs(w->m, w->act, w->mask, w->lp, NULL) != 0)
        return -1;
    memcpy(w->values, ag_model_values(w->m), sizeof(float) * (size_t)w->B * (size_t)w->T);
    return 0;
}

/* Seconds per call of step: two warm-up calls, then as many as fit in
 * seconds (at least one). Negative if a call failed. */
static double s_time_steps(int (*step)(work_t *), work_t *w, double seconds)
{
    int steps = 0;
    double t0 = 0.0;
    for (int i = -2; i < steps + 1; i++) {
        if (i == 0)
            t0 = ag_now();
        if (step(w) != 0)
            return -1.0;
        if (i >= 0 && ag_now() - t0 < seconds)
            steps++;
    }
    return (ag_now() - t0) / (steps + 1);
}

/* Training and scoring tokens/s of m on B x T tokens, each timed for
 * seconds. Returns 0, or -1 (rates 0) when memory or a call fails. */
static int s_rates(ag_model_t *m, int B, int T, double seconds, double *train, double *score)
{
    work_t w;
    *train = *score = 0.0;
    if (s_work_init(&w, m, B, T) != 0)
        return -1;
    double dt_train = s_time_steps(s_train_step, &w, seconds);
    double dt_score = dt_train > 0.0 ? s_time_steps(s_score_step, &w, seconds) : -1.0;
    s_work_free(&w);
    if (dt_train <= 0.0 || dt_score <= 0.0)
        return -1;
    *train = (double)B * T / dt_train;
    *score = (double)B * T / dt_score;
    return 0;
}

int bench_model_rates(const ag_model_config_t *cfg, int threads, int B, int T, double seconds,
                      double *train, double *score)
{
    *train = *score = 0.0;
    ag_model_t *m = ag_model_create(cfg, 1, threads);
    if (!m)
        return -1;
    int rc = s_rates(m, B, T, seconds, train, score);
    ag_model_destroy(&m);
    return rc;
}

/* ------------------------------------------------------------- sampling */

static double s_bench_sample(ag_model_t *m, const opts_t *o, double *gen_rate, double *flops)
{
    const int S = o->sample_batch, T = o->ctx;
    ag_sampler_t *s = ag_sampler_create(m, S, S * PROMPT);
    int32_t *slots = malloc(sizeof(int32_t) * S * PROMPT),
            *toks = malloc(sizeof(int32_t) * S * PROMPT);
    ag_sample_t *out = malloc(sizeof(ag_sample_t) * S);
    ag_rng_t rng;
    ag_rng_seed(&rng, 2);
    const ag_sample_config_t sc = {1.0f, 1.0f};
    double rate = 0.0;
    if (!s || !slots || !toks || !out)
        goto out;
    double per_seq = 0.0;
    for (int p = 0; p < T; p++)
        per_seq += ag_model_decode_flops(ag_model_config(m), p);
    int gens = 0;
    double t0 = 0.0, total = 0.0;
    for (int g = -1; g < gens + 1; g++) {
        if (g == 0)
            t0 = ag_now();
        for (int i = 0; i < S; i++) {
            ag_sampler_reset(s, i);
            for (int p = 0; p < PROMPT; p++) {
                slots[i * PROMPT + p] = i;
                toks[i * PROMPT + p] = (int32_t)ag_rng_below(&rng, 256);
            }
        }
        if (ag_sampler_feed(s, S * PROMPT, slots, toks) != 0)
            goto out;
        for (int i = 0; i < S; i++) {
            ag_sampler_sample(s, (i + 1) * PROMPT - 1, &sc, &rng, &out[i]);
            slots[i] = i;
            toks[i] = out[i].token;
        }
        for (int p = PROMPT; p < T; p++) {
            if (p + 1 < T) {
                if (ag_sampler_step(s, S, slots, toks, &sc, &rng, out) != 0)
                    goto out;
                for (int i = 0; i < S; i++)
                    toks[i] = out[i].token;
            } else if (ag_sampler_feed(s, S, slots, toks) != 0) {
                goto out;
            }
        }
        if (g >= 0 && ag_now() - t0 < o->seconds)
            gens++;
    }
    total = ag_now() - t0;
    rate = (double)S * T * (gens + 1) / total;
    *gen_rate = (double)S * (T - PROMPT) * (gens + 1) / total;
    *flops = per_seq * S * (gens + 1) / total;
out:
    ag_sampler_destroy(&s);
    free(slots);
    free(toks);
    free(out);
    return rate;
}

/* ----------------------------------------------------------- sgemm peak */

enum { PEAK_N = 2048 };

typedef struct {
    const float *a, *b;
    float *c;
} peak_ctx_t;

static void s_peak_share(void *arg, int index, int count)
{
    const peak_ctx_t *p = arg;
    long lo, hi;
    ag_forkjoin_split(PEAK_N, index, count, 16, &lo, &hi);
    if (hi > lo)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(hi - lo), PEAK_N, PEAK_N, 1.0f,
                    p->a + lo * PEAK_N, PEAK_N, p->b, PEAK_N, 0.0f, p->c + lo * PEAK_N, PEAK_N);
}

static double s_time_peak(int threads, int own_split, float *a, float *b, float *c)
{
    ag_forkjoin_t *fj = own_split ? ag_forkjoin_create(threads) : NULL;
    peak_ctx_t pc = {a, b, c};
    openblas_set_num_threads(own_split ? 1 : threads);
    double best = 0.0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = ag_now();
        if (own_split)
            ag_forkjoin_run(fj, s_peak_share, &pc);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                        PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
        double g = 2.0 * PEAK_N * PEAK_N * (double)PEAK_N / (ag_now() - t0) / 1e9;
        if (rep > 0 && g > best) /* the first run pays for page faults */
            best = g;
    }
    openblas_set_num_threads(1);
    ag_forkjoin_destroy(&fj);
    return best;
}

/* own_only: skip OpenBLAS's threading, whose idle workers keep spinning for
 * a while after a call and would disturb what runs next. */
static double s_sgemm_peak(int threads, int own_only)
{
    const size_t n = (size_t)PEAK_N * PEAK_N;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)),
          *c = malloc(n * sizeof(float));
    double best = 0.0;
    if (a && b && c) {
        ag_rng_t r;
        ag_rng_seed(&r, 3);
        for (size_t i = 0; i < n; i++) {
            a[i] = ag_rng_float(&r) - 0.5f;
            b[i] = ag_rng_float(&r) - 0.5f;
        }
        best = s_time_peak(threads, 1, a, b, c);
        if (!own_only)
            best = fmax(best, s_time_peak(threads, 0, a, b, c));
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int bench_model_main(int argc, char **argv)
{
    opts_t o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    ag_model_config_t cfg = {.vocab = AG_VOCAB_SIZE,
                             .d_model = o.d_model,
                             .n_layers = o.layers,
                             .n_heads = o.heads,
                             .ctx = o.ctx,
                             .mlp_ratio = 4};
    char err[128];
    if (ag_model_config_check(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "agora-bench model: %s\n", err);
        return 2;
    }
    ag_model_t *m = ag_model_create(&cfg, 1, o.threads);
    if (!m) {
        fprintf(stderr, "agora-bench model: cannot create the model\n");
        return 1;
    }
    /* The machine's load when the run started: on a shared machine, figures
     * taken under load are not comparable with quiet ones. */
    double load = -1.0;
    if (getloadavg(&load, 1) != 1)
        load = -1.0;
    /* The peak is the best of runs before and after the model's, so that a
     * machine busier during the peak runs cannot inflate the MFU. */
    double peak = s_sgemm_peak(o.threads, 1);
    double gen_rate = 0.0, sample_flops = 0.0, train = 0.0, score = 0.0;
    if (s_rates(m, o.batch, o.ctx, o.seconds, &train, &score) != 0)
        fprintf(stderr, "agora-bench model: the training or scoring run failed (out of memory?)\n");
    double step_ms = train > 0.0 ? (double)o.batch * o.ctx / train * 1e3 : 0.0;
    double sample = s_bench_sample(m, &o, &gen_rate, &sample_flops);
    peak = fmax(peak, s_sgemm_peak(o.threads, 0));
    double train_gflops = train * ag_model_train_flops_per_token(&cfg, o.ctx) / 1e9;
    double sample_gflops = sample_flops / 1e9;
    bench_report(json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
        "s:f, s:f, s:f}",
        "bench", "model", "d_model", o.d_model, "layers", o.layers, "heads", o.heads, "ctx", o.ctx,
        "batch", o.batch, "sample_batch", o.sample_batch, "threads", o.threads, "params",
        (json_int_t)ag_model_num_params(m), "train_tokens_per_s", train, "train_step_ms", step_ms,
        "score_tokens_per_s", score, "sample_tokens_per_s", sample,
        "sample_generated_tokens_per_s", gen_rate, "sgemm_peak_gflops", peak, "train_gflops",
        train_gflops, "sample_gflops", sample_gflops, "train_mfu",
        peak > 0 ? train_gflops / peak : 0.0, "sample_mfu", peak > 0 ? sample_gflops / peak : 0.0,
        "loadavg_1m", load));
    ag_model_destroy(&m);
    return train > 0.0 && score > 0.0 && sample > 0.0 ? 0 : 1;
}
