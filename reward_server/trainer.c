/*
 * trainer.c - agora-reward's training thread (the service's worker): one
 * optimizer step at a time, round-robin over the models that have training
 * owed, each on a minibatch drawn from its replay buffer and copied into
 * its staging area under the lock (so the loop thread may drop a label at
 * any time); held-out evaluation in chunks; training waits for reward.init
 * when it does not exist yet.
 */
#include "reward_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "clock.h"
#include "log.h"

/* Copies a stored label into the trainer's staging slot i. */
static void s_stage(rmodel_t *m, size_t i, const slabel_t *l, int ctx)
{
    uint8_t *dst = m->stage_bytes + i * 2 * (size_t)(ctx - 1);
    memcpy(dst, l->bytes, (size_t)l->len[0] + l->len[1]);
    ag_rm_label_t *x = &m->stage[i];
    x->kind = l->kind;
    x->preferred = l->preferred;
    x->target = l->target;
    x->weight = l->weight;
    x->text[0] = (ag_rm_text_t){dst, l->len[0]};
    x->text[1] = (ag_rm_text_t){dst + l->len[0], l->len[1]};
    m->stage_ids[i] = l->id;
}

/* Picks k distinct positions of [0, n) (Floyd's algorithm), in m->pick. */
static void s_sample(rmodel_t *m, size_t n, size_t k)
{
    size_t got = 0;
    for (size_t j = n - k; j < n; j++) {
        size_t t = ag_rng_below(&m->rng, (uint32_t)(j + 1));
        for (size_t i = 0; i < got; i++)
            if (m->pick[i] == t) {
                t = j;
                break;
            }
        m->pick[got++] = t;
    }
}

/* One optimizer step for m if it has training owed. Returns 1 if it took
 * one, 0 if there was nothing to do. Training thread. */
static int s_train_one(ag_reward_service_t *s, rmodel_t *m)
{
    const int ctx = s->o.model.ctx;
    ag_service_lock(s->svc);
    if (m->credits <= 0 || m->buf.len == 0) {
        ag_service_unlock(s->svc);
        return 0;
    }
    size_t k = m->buf.len < (size_t)s->o.batch ? m->buf.len : (size_t)s->o.batch;
    s_sample(m, m->buf.len, k);
    for (size_t i = 0; i < k; i++)
        s_stage(m, i, ag_reward_ring_at(&m->buf, m->pick[i]), ctx);
    m->credits -= (double)k;
    ag_service_unlock(s->svc);

    ag_rm_stats_t st;
    int rc = ag_rm_train_step(m->train, m->opt, m->stage, k, &st);
    ag_model_t *mm = ag_rm_model(m->train);
    ag_service_lock(s->svc);
    if (rc == 0) {
        memcpy(m->published, ag_model_params_const(mm), ag_model_num_params(mm) * sizeof(float));
        m->pub_serial++;
        m->updates++;
        m->losses[m->n_losses < LOSS_WINDOW ? m->n_losses++ : m->updates % LOSS_WINDOW] =
            (float)st.loss;
    } else {
        m->failed_steps++;
    }
    const uint64_t failed = m->failed_steps;
    ag_service_unlock(s->svc);
    if (rc < 0 && (failed & (failed - 1)) == 0) /* 1st, 2nd, 4th, ... failure */
        ag_warn("reward", "model %s: training step skipped (%s); %" PRIu64 " so far", m->name,
                rc == -ERANGE ? "non-finite gradient" : strerror(-rc), failed);
    return 1;
}

static bool s_stale(const rmodel_t *m, const slabel_t *l)
{
    return l->result < 0 || l->eval_at != m->updates;
}

static bool s_has_stale(const rmodel_t *m)
{
    for (size_t i = 0; i < m->held.len; i++)
        if (s_stale(m, ag_reward_ring_at(&m->held, i)))
            return true;
    return false;
}

/*
 * Evaluates up to one batch of held-out labels whose result is older than
 * the current weights. Returns 1 if it evaluated any. Training thread.
 */
static int s_eval_chunk(ag_reward_service_t *s, rmodel_t *m)
{
    const int ctx = s->o.model.ctx;
    size_t k = 0;
    ag_service_lock(s->svc);
    const uint64_t at = m->updates;
    /* Round robin from where the last chunk stopped: while the model trains every
     * result goes stale at once, and the figures must still cover the whole set. */
    const size_t n = m->held.len;
    const uint64_t first_id = n ? ag_reward_ring_at(&m->held, 0)->id : 0;
    size_t start = n && m->eval_next >= first_id ? (size_t)((m->eval_next - first_id) % n) : 0;
    size_t j = 0;
    for (; j < n && k < (size_t)s->o.batch; j++) {
        const slabel_t *l = ag_reward_ring_at(&m->held, (start + j) % n);
        if (s_stale(m, l))
            s_stage(m, k++, l, ctx);
    }
    if (n)
        m->eval_next = ag_reward_ring_at(&m->held, (start + j) % n)->id;
    ag_service_unlock(s->svc);
    if (!k)
        return 0;
    int rc = ag_rm_evaluate(m->train, m->stage, k, m->stage_correct, NULL);
    m->last_eval = ag_now();
    if (rc < 0) {
        /* Count them as wrong rather than retry them forever. */
        ag_warn("reward", "model %s: held-out evaluation failed: %s", m->name, strerror(-rc));
        memset(m->stage_correct, 0, k);
    }
    ag_service_lock(s->svc);
    if (m->held.len) {
        const uint64_t first = ag_reward_ring_at(&m->held, 0)->id;
        for (size_t i = 0; i < k; i++) {
            /* the loop thread may have pushed it out meanwhile */
            uint64_t id = m->stage_ids[i];
            if (id < first || id - first >= m->held.len)
                continue;
            slabel_t *l = ag_reward_ring_at(&m->held, (size_t)(id - first));
            l->result = (int8_t)m->stage_correct[i];
            l->eval_at = at;
        }
    }
    ag_service_unlock(s->svc);
    return 1;
}

/* Whether the trainer has anything to do (under the lock). */
static bool s_has_work(const ag_reward_service_t *s)
{
    for (size_t i = 0; i < s->n_models; i++) {
        const rmodel_t *m = &s->models[i];
        if ((m->credits > 0 && m->buf.len) || s_has_stale(m))
            return true;
    }
    return false;
}

/*
 * Starts every model that was not resumed from the policy checkpoint
 * reward.init: its trunk already reads the game (the reward model of RLHF
 * starts from the supervised policy the same way). Returns 0, or -1 when the
 * file cannot be used.
 */
int ag_reward_load_init(ag_reward_service_t *s)
{
    char err[512];
    for (size_t i = 0; i < s->n_models; i++) {
        rmodel_t *m = &s->models[i];
        if (m->updates > 0)
            continue; /* resumed: its own weights win */
        ag_model_t *mm = ag_rm_model(m->train);
        if (ag_ckpt_load_into(s->init, mm, NULL, NULL, err, sizeof err) < 0) {
            ag_error("reward", "reward.init: model %s: %s", m->name, err);
            return -1;
        }
        ag_service_lock(s->svc);
        memcpy(m->published, ag_model_params_const(mm), ag_model_num_params(mm) * sizeof(float));
        m->pub_serial++;
        ag_service_unlock(s->svc);
    }
    ag_info("reward", "models start from %s", s->init);
    return 0;
}

/* Training waits for reward.init: the learner writes it when its warm start ends. */
static bool s_waiting_for_init(ag_reward_service_t *s)
{
    if (!s->init_pending)
        return false;
    const double now = ag_now();
    if (now - s->init_checked < 1.0)
        return true;
    s->init_checked = now;
    if (access(s->init, R_OK) != 0)
        return true;
    if (ag_reward_load_init(s) < 0)
        ag_warn("reward", "training goes on from fresh weights");
    s->init_pending = false;
    return false;
}

void ag_reward_trainer(ag_service_t *svc, void *arg)
{
    ag_reward_service_t *s = arg;
    size_t rr = s->n_models - 1;
    for (;;) {
        if (ag_service_stopping(s->svc))
            break;
        if (ag_service_checkpoint_take(s->svc))
            ag_reward_checkpoint(s);
        if (s_waiting_for_init(s)) {
            ag_service_lock(s->svc);
            if (!ag_service_stopping(s->svc) && !ag_service_checkpoint_due(s->svc))
                ag_service_wait(s->svc, 0.25);
            ag_service_unlock(s->svc);
            continue;
        }
        /* one step, for the next model (round-robin) that has training owed */
        size_t trained = s->n_models;
        for (size_t k = 1; k <= s->n_models; k++) {
            size_t i = (rr + k) % s->n_models;
            if (s_train_one(s, &s->models[i])) {
                rr = trained = i;
                break;
            }
        }
        /* Held-out figures: at most once a second per model while it trains,
         * continuously while it is idle until they match its weights. */
        bool evaluated = false;
        const double now = ag_now();
        for (size_t i = 0; i < s->n_models; i++) {
            rmodel_t *m = &s->models[i];
            ag_service_lock(s->svc);
            bool busy = i == trained || (m->credits > 0 && m->buf.len);
            ag_service_unlock(s->svc);
            if (busy && now - m->last_eval < 1.0)
                continue;
            evaluated |= s_eval_chunk(s, m) > 0;
        }
        if (trained < s->n_models || evaluated)
            continue;
        ag_service_lock(s->svc);
        if (!ag_service_stopping(s->svc) && !ag_service_checkpoint_due(s->svc) && !s_has_work(s))
            ag_service_wait(s->svc, 0.5);
        ag_service_unlock(s->svc);
    }
    if (ag_reward_checkpoint(s) < 0)
        ag_service_fail(svc, "the final checkpoint could not be written");
}
