/*
 * publish.c - the weights agora-learner serves: a snapshot of each new
 * version (made by the trainer, outside the lock), handed to the loop thread
 * through an outbox, published on the weights PUB (topic, WeightsHeader, the
 * raw f32le slab) and kept as the latest; league versions also get a
 * checkpoint and stay in memory for GetWeights. Snapshots are reference
 * counted: the latest and the league may share one.
 */
#include "learner_priv.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "crc32.h"
#include "log.h"

void ag_learner_snap_unref(snap_t *s)
{
    if (s && --s->refs <= 0) {
        free(s->params);
        free(s);
    }
}

snap_t *ag_learner_snap_make(const ag_model_t *m, uint64_t version, uint64_t step, bool league)
{
    snap_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n = ag_model_num_params(m);
    s->params = malloc(s->n * sizeof(float));
    if (!s->params) {
        free(s);
        return NULL;
    }
    memcpy(s->params, ag_model_params_const(m), s->n * sizeof(float));
    /* The raw frame is the slab as it is in memory: agora runs on
     * little-endian hosts, which is what "f32le" promises. */
    s->crc = ag_crc32(0, s->params, s->n * sizeof(float));
    s->version = version;
    s->step = step;
    s->league = league;
    return s;
}

void ag_learner_weights_header(const ag_learner_t *l, const snap_t *s, Agora__V1__WeightsHeader *h,
                               Agora__V1__ModelConfig *mc)
{
    agora__v1__weights_header__init(h);
    agora__v1__model_config__init(mc);
    mc->vocab_size = (uint32_t)l->o.model.vocab;
    mc->d_model = (uint32_t)l->o.model.d_model;
    mc->n_layers = (uint32_t)l->o.model.n_layers;
    mc->n_heads = (uint32_t)l->o.model.n_heads;
    mc->context = (uint32_t)l->o.model.ctx;
    mc->mlp_ratio = (uint32_t)l->o.model.mlp_ratio;
    h->version = s->version;
    h->config = mc;
    h->num_bytes = s->n * sizeof(float);
    h->crc32 = s->crc;
    h->dtype = (char *)"f32le";
    h->step = s->step;
    h->league = s->league;
}

/* Loop thread: publish a new version and make it the latest (and keep it in
 * the league when marked). Takes ownership of s. */
void ag_learner_publish(ag_learner_t *l, snap_t *s)
{
    Agora__V1__WeightsHeader h;
    Agora__V1__ModelConfig mc;
    ag_learner_weights_header(l, s, &h, &mc);
    if (l->pub && ag_codec_pack(&h.base, &l->buf) == 0) {
        ag_frame_t f[3] = {{WEIGHTS_TOPIC, strlen(WEIGHTS_TOPIC)},
                           {l->buf.data, l->buf.len},
                           {s->params, s->n * sizeof(float)}};
        int rc = ag_zsock_send(l->pub, f, 3);
        if (rc < 0)
            ag_debug("learner", "publishing version %" PRIu64 ": %s", s->version,
                     zmq_strerror(-rc));
    }
    s->refs++;
    ag_learner_snap_unref(l->latest);
    l->latest = s;
    if (s->league) {
        if (l->n_league == l->cap_league) {
            size_t cap = l->cap_league ? l->cap_league * 2 : 16;
            snap_t **v = realloc(l->league, cap * sizeof *v);
            if (!v)
                return;
            l->league = v;
            l->cap_league = cap;
        }
        s->refs++;
        l->league[l->n_league++] = s;
        while (l->o.league_max > 0 && l->n_league > (size_t)l->o.league_max) {
            ag_learner_snap_unref(l->league[0]);
            memmove(l->league, l->league + 1, (l->n_league - 1) * sizeof *l->league);
            l->n_league--;
        }
    }
}

/* Makes the snapshot of a new version (and its league checkpoint when it is
 * a league version). Trainer thread, outside the lock. */
snap_t *ag_learner_prepare_version(ag_learner_t *l, uint64_t version, uint64_t step)
{
    bool league = l->o.league_interval > 0 && (version - 1) % (uint64_t)l->o.league_interval == 0;
    if (league) {
        char path[PATH_LEN], name[64], err[512];
        snprintf(name, sizeof name, "league/%" PRIu64 ".ckpt", version);
        ag_learner_path(path, l, NULL, name);
        if (ag_ckpt_save(path, l->policy, NULL, version, err, sizeof err) < 0) {
            ag_warn("learner", "league snapshot: %s", err);
            league = false;
        }
    }
    snap_t *s = ag_learner_snap_make(l->policy, version, step, league);
    if (!s)
        ag_warn("learner", "no memory to publish version %" PRIu64, version);
    return s;
}

/* Makes version current and hands its snapshot to the loop thread for
 * publication. Called with the lock held, so the version and the counters
 * of the update that made it change together; the caller then wakes the
 * loop with ag_service_wake. */
void ag_learner_commit_version(ag_learner_t *l, uint64_t version, snap_t *s)
{
    l->st.version = version;
    if (!s)
        return;
    if (s->league) {
        uint64_t *v = realloc(l->st.league, (l->st.n_league + 1) * sizeof *v);
        if (v) {
            l->st.league = v;
            v[l->st.n_league++] = version;
        }
    }
    snap_t **tail = &l->outbox;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
}

/* New versions from the trainer, published on the loop thread. */
void ag_learner_on_wake(void *arg)
{
    ag_learner_t *l = arg;
    ag_service_lock(l->svc);
    snap_t *out = l->outbox;
    l->outbox = NULL;
    ag_service_unlock(l->svc);
    while (out) {
        snap_t *next = out->next;
        out->next = NULL;
        ag_learner_publish(l, out);
        out = next;
    }
}
