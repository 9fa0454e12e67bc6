/*
 * reward_service.c - the agora-reward service (see reward_service.h):
 * creating it (model names, models, resume, reward.init, the ROUTER, the
 * service host that runs the trainer), stopping it and freeing it. The work
 * is in the files reward_priv.h lists: labels, handlers, the trainer, the
 * label file, resume.
 */
#include "reward_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "log.h"

void ag_reward_path(char *dst, const char *dir, const char *name, const char *ext)
{
    if (snprintf(dst, PATH_LEN, "%s/%s%s", dir, name, ext) >= PATH_LEN)
        dst[PATH_LEN - 1] = '\0';
}

/* Once the trainer has ended: the socket closes, so the loop ends. */
static void s_on_stopped(void *arg)
{
    ag_reward_service_t *s = arg;
    ag_rpc_server_destroy(&s->rpc);
}

void ag_reward_service_stop(ag_reward_service_t *s)
{
    if (s->svc)
        ag_service_stop(s->svc);
}

int ag_reward_service_exit_code(const ag_reward_service_t *s)
{
    return ag_service_exit_code(s ? s->svc : NULL);
}

const char *ag_reward_service_endpoint(const ag_reward_service_t *s)
{
    return s->rpc ? ag_rpc_server_endpoint(s->rpc) : "";
}

/* Splits o->models into s->models[].name; 0 or -1 after logging why. */
static int s_parse_names(ag_reward_service_t *s)
{
    const char *p = s->o.models;
    size_t n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 0 || len > AG_REWARD_MAX_NAME ||
            strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") < len ||
            p[0] == '.') {
            ag_error("reward",
                     "reward.models: '%s': each name is 1..%d letters, digits, '_', '-' or '.' "
                     "(not starting with '.'), comma-separated",
                     s->o.models, AG_REWARD_MAX_NAME);
            return -1;
        }
        if (n == AG_REWARD_MAX_MODELS) {
            ag_error("reward", "reward.models: at most %d models", AG_REWARD_MAX_MODELS);
            return -1;
        }
        memcpy(s->models[n].name, p, len);
        s->models[n].name[len] = '\0';
        for (size_t i = 0; i < n; i++)
            if (!strcmp(s->models[i].name, s->models[n].name)) {
                ag_error("reward", "reward.models: '%s' is named twice", s->models[n].name);
                return -1;
            }
        n++;
        p += strcspn(p, ",");
        if (!*p)
            break;
        p++;
    }
    s->n_models = n;
    return 0;
}

static int s_model_init(ag_reward_service_t *s, rmodel_t *m, size_t index)
{
    const ag_reward_opts_t *o = &s->o;
    const uint64_t seed = o->seed + 0x9e3779b97f4a7c15ULL * index;
    m->train = ag_rm_create(&o->model, seed, o->threads, 2 * o->batch);
    m->serve = ag_rm_create(&o->model, seed, o->score_threads, SCORE_CHUNK);
    if (!m->train || !m->serve)
        return -ENOMEM;
    ag_adamw_config_t ac;
    ag_adamw_config_default(&ac);
    ac.lr = (float)o->lr;
    m->opt = ag_adamw_create(ag_rm_model(m->train), &ac);
    ag_rng_seed(&m->rng, seed ^ 0x5245574152444bULL);
    const size_t np = ag_model_num_params(ag_rm_model(m->train));
    const size_t per = 2 * (size_t)(o->model.ctx - 1);
    m->published = malloc(np * sizeof(float));
    m->stage = calloc((size_t)o->batch, sizeof *m->stage);
    m->stage_bytes = malloc((size_t)o->batch * per + 1);
    m->stage_ids = calloc((size_t)o->batch, sizeof *m->stage_ids);
    m->stage_correct = calloc((size_t)o->batch, 1);
    m->pick = calloc((size_t)o->batch, sizeof *m->pick);
    if (!m->opt || !m->published || !m->stage || !m->stage_bytes || !m->stage_ids ||
        !m->stage_correct || !m->pick || ag_reward_ring_init(&m->buf, (size_t)o->buffer) < 0 ||
        ag_reward_ring_init(&m->held, AG_REWARD_HELDOUT_MAX) < 0 ||
        !(m->seen = ag_batch_ids_create(AG_REWARD_BATCH_IDS)))
        return -ENOMEM;
    return 0;
}

static int s_mkdir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    ag_error("reward", "mkdir %s: %s", path, strerror(errno));
    return -1;
}

ag_reward_service_t *ag_reward_service_create(uv_loop_t *loop, void *zctx,
                                              const ag_reward_opts_t *o)
{
    char err[256];
    if (ag_model_config_check(&o->model, err, sizeof err) < 0) {
        ag_error("reward", "model shape: %s", err);
        return NULL;
    }
    if (o->model.vocab != AG_VOCAB_SIZE || o->batch < 1 || o->buffer < 1 || !(o->reuse >= 0) ||
        !(o->holdout >= 0 && o->holdout <= 1) || !(o->lr > 0)) {
        ag_error("reward", "bad options (vocab, batch, buffer, reuse, holdout or lr)");
        return NULL;
    }
    if (strlen(o->out) > PATH_LEN - 128 || (o->resume && strlen(o->resume) > PATH_LEN - 128) ||
        (o->init && strlen(o->init) >= PATH_LEN) || strlen(o->bind) >= 512) {
        ag_error("reward", "reward.bind / reward.out / reward.resume: too long");
        return NULL;
    }
    ag_reward_service_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->o = *o;
    snprintf(s->bind, sizeof s->bind, "%s", o->bind);
    snprintf(s->out, sizeof s->out, "%s", o->out);
    snprintf(s->resume, sizeof s->resume, "%s", o->resume ? o->resume : "");
    snprintf(s->init, sizeof s->init, "%s", o->init ? o->init : "");
    s->o.init = s->init;
    s->o.bind = s->bind;
    s->o.out = s->out;
    s->o.resume = s->resume;
    s->o.models = NULL;
    const ag_service_config_t sc = {.name = "reward",
                                    .max_seconds = o->max_seconds,
                                    .checkpoint_interval_s = o->checkpoint_interval_s,
                                    .signals = o->signals,
                                    .work = ag_reward_trainer,
                                    .on_stopped = s_on_stopped,
                                    .arg = s};
    s->svc = ag_service_create(loop, &sc);
    s->models = calloc(AG_REWARD_MAX_MODELS, sizeof *s->models);
    char *names = strdup(o->models ? o->models : "");
    s->o.models = names;
    if (!s->svc || !s->models || !names || s_parse_names(s) < 0)
        goto fail;
    for (size_t i = 0; i < s->n_models; i++)
        if (s_model_init(s, &s->models[i], i) < 0) {
            ag_error("reward", "cannot create model %s: out of memory", s->models[i].name);
            goto fail;
        }
    if (s_mkdir(s->out) < 0 || (s->resume[0] && ag_reward_resume(s) < 0))
        goto fail;
    if (s->init[0] && access(s->init, R_OK) == 0) {
        if (ag_reward_load_init(s) < 0)
            goto fail;
    } else if (s->init[0]) {
        ag_info("reward", "training waits for %s", s->init);
        s->init_pending = true;
    }
    /* Serving starts from the trainer's weights, resumed or fresh. */
    for (size_t i = 0; i < s->n_models; i++) {
        const ag_model_t *mm = ag_rm_model(s->models[i].train);
        const size_t np = ag_model_num_params(mm);
        memcpy(s->models[i].published, ag_model_params_const(mm), np * sizeof(float));
        ag_model_load_params(ag_rm_model(s->models[i].serve), s->models[i].published, np);
    }

    ag_zsock_opts_t zo = {.maxmsgsize = AG_REWARD_MAX_MESSAGE};
    s->rpc = ag_rpc_server_create(loop, zctx, s->bind, &zo, ag_reward_on_request, s);
    if (!s->rpc) {
        ag_error("reward", "cannot bind %s", s->bind);
        goto fail;
    }
    if (ag_service_start(s->svc) < 0)
        return s; /* closing, exit code 1: the loop closes the handles */
    ag_info("reward", "serving %zu model%s (%s; d_model %d, n_layers %d, ctx %d) on %s",
            s->n_models, s->n_models == 1 ? "" : "s", s->o.models, o->model.d_model,
            o->model.n_layers, o->model.ctx, ag_rpc_server_endpoint(s->rpc));
    return s;
fail:
    ag_reward_service_destroy(&s);
    return NULL;
}

void ag_reward_service_destroy(ag_reward_service_t **self)
{
    if (!self || !*self)
        return;
    ag_reward_service_t *s = *self;
    ag_service_destroy(&s->svc);
    for (size_t i = 0; s->models && i < AG_REWARD_MAX_MODELS; i++) {
        rmodel_t *m = &s->models[i];
        ag_rm_destroy(&m->train);
        ag_rm_destroy(&m->serve);
        ag_adamw_destroy(&m->opt);
        free(m->published);
        free(m->stage);
        free(m->stage_bytes);
        free(m->stage_ids);
        free(m->stage_correct);
        free(m->pick);
        ag_reward_ring_finish(&m->buf);
        ag_reward_ring_finish(&m->held);
        ag_batch_ids_destroy(&m->seen);
    }
    free(s->models);
    free((char *)s->o.models);
    free(s);
    *self = NULL;
}
