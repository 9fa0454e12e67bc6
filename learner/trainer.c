/*
 * trainer.c - the training thread of agora-learner (the service's worker):
 * the game from learner.env's Hello, the warm start (version 1 and the
 * reference), then PPO updates over batches taken from the queue in arrival
 * order, each writing its record to metrics.jsonl and the progress line;
 * and, with a KL term, the reference thread that scores queued trajectories
 * ahead of the trainer.
 */
#include "learner_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ckpt.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

static void s_progress(ag_learner_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_progress(ag_learner_t *l, const char *fmt, ...)
{
    if (!l->o.progress)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

static double s_time_s(const ag_learner_t *l)
{
    return l->st.elapsed_s + (ag_now() - l->t_start);
}

static void s_write_metrics(ag_learner_t *l, json_t *rec)
{
    if (!l->metrics)
        return;
    char *line = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (line) {
        fprintf(l->metrics, "%s\n", line);
        fflush(l->metrics);
        free(line);
    }
}

static int s_ws_epoch(void *arg, int epoch, double ce, double tokens, double seconds)
{
    ag_learner_t *l = arg;
    json_t *rec = json_pack("{s:i,s:i,s:f,s:s,s:i,s:f,s:f,s:f}", "update", 0, "version", 0,
                            "time_s", s_time_s(l), "phase", "warmstart", "epoch", epoch, "ce", ce,
                            "tokens", tokens, "tokens_per_s", seconds > 0 ? tokens / seconds : 0.0);
    if (rec) {
        s_write_metrics(l, rec);
        ag_service_lock(l->svc);
        json_decref(l->status);
        l->status = rec;
        ag_service_unlock(l->svc);
    }
    s_progress(l, "learner: warm start epoch %d/%d  ce %.4f", epoch, l->o.ws.epochs, ce);
    return ag_service_stopping(l->svc);
}

/* Runs the warm start and makes the result version 1 and the reference. */
static int s_warmstart(ag_learner_t *l)
{
    char path[PATH_LEN], err[512];
    ag_seq_t *seqs = NULL;
    size_t n = 0, dropped = 0;
    int rc = ag_warmstart_load(&l->o.ws, l->o.model.ctx, &seqs, &n, &dropped, err, sizeof err);
    if (rc < 0) {
        ag_service_fail(l->svc, "warm start: %s", err);
        return rc;
    }
    if (n) {
        ag_info("learner", "warm start: %zu sequences (%zu longer than the context dropped)", n,
                dropped);
        /* Nothing else computes yet (actors wait for version 1): use the cores. */
        ag_model_set_threads(l->policy, l->o.ws.threads);
        rc = ag_warmstart_train(l->policy, seqs, n, &l->o.ws, &l->ws_rng,
                                ag_service_stop_flag(l->svc), s_ws_epoch, l);
        ag_model_set_threads(l->policy, l->o.threads);
    } else {
        ag_info("learner", "no warm start: the initial policy is the reference");
    }
    ag_warmstart_free(seqs, n);
    if (rc < 0)
        return rc;
    if (ag_model_reserve(l->policy, l->o.ppo.minibatch, l->o.model.ctx) < 0)
        return -ENOMEM;
    if (l->ref)
        ag_model_load_params(l->ref, ag_model_params_const(l->policy),
                             ag_model_num_params(l->policy));
    ag_learner_path(path, l, NULL, "reference.ckpt");
    rc = ag_ckpt_save(path, l->policy, NULL, 1, err, sizeof err);
    if (rc < 0) {
        ag_error("learner", "reference: %s", err);
        return rc;
    }
    snap_t *snap = ag_learner_prepare_version(l, 1, 0);
    ag_service_lock(l->svc);
    ag_learner_commit_version(l, 1, snap);
    ag_service_unlock(l->svc);
    ag_service_wake(l->svc);
    return ag_learner_checkpoint(l, NULL, 0);
}

/* One PPO update over the batch; publishes the new version. */
static int s_update(ag_learner_t *l, ag_traj_t **b, size_t n)
{
    const ag_seq_t *rows[MAX_SUBMIT * 8 + 1];
    const float *refs[MAX_SUBMIT * 8 + 1];
    const bool small = n * AG_TRAJ_MAX_SEATS <= sizeof rows / sizeof rows[0];
    const ag_seq_t **rp = small ? rows : malloc(n * AG_TRAJ_MAX_SEATS * sizeof *rp);
    const float **rr = small ? refs : malloc(n * AG_TRAJ_MAX_SEATS * sizeof *rr);
    if (!rp || !rr) {
        if (!small) {
            free(rp);
            free(rr);
        }
        return -ENOMEM;
    }
    size_t nr = 0;
    bool all_ref = true; /* every row scored ahead by the reference thread */
    ag_service_lock(l->svc);
    const uint64_t version = l->st.version;
    ag_service_unlock(l->svc);
    double st_sum = 0, st_max = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < b[i]->n_seats; s++) {
            all_ref = all_ref && b[i]->ref[s];
            rr[nr] = b[i]->ref[s];
            rp[nr++] = &b[i]->seats[s];
        }
        double stl = (double)(version - b[i]->min_version);
        st_sum += stl;
        if (stl > st_max)
            st_max = stl;
    }
    const double t0 = ag_now();
    ag_ppo_stats_t ps;
    if (!all_ref)
        uv_mutex_lock(&l->ref_lk); /* the update runs the reference pass itself */
    int rc = ag_ppo_update(l->ppo, rp, all_ref ? rr : NULL, nr, &ps);
    if (!all_ref)
        uv_mutex_unlock(&l->ref_lk);
    const double t1 = ag_now();
    if (!small) {
        free(rp);
        free(rr);
    }
    if (rc < 0) {
        ag_error("learner", "PPO update failed: %s", strerror(-rc));
        return rc;
    }
    ag_service_lock(l->svc);
    const uint64_t updates = l->st.updates + 1, dups = l->st.duplicates;
    const uint64_t stale = l->st.stale + l->st.dropped_stale;
    ag_service_unlock(l->svc);
    snap_t *snap = ag_learner_prepare_version(l, version + 1, updates);

    const double compute = t1 - t0, wall = t1 - l->t_last;
    l->t_last = t1;
    json_t *rec = json_object();
    json_object_set_new(rec, "update", json_integer((json_int_t)updates));
    json_object_set_new(rec, "version", json_integer((json_int_t)(version + 1)));
    json_object_set_new(rec, "time_s", json_real(s_time_s(l)));
    json_object_set_new(rec, "phase", json_string("ppo"));
    json_object_set_new(rec, "trajectories", json_integer((json_int_t)n));
    json_object_set_new(rec, "sequences", json_integer((json_int_t)nr));
    json_object_set_new(rec, "tokens", json_real(ps.tokens));
    json_object_set_new(rec, "generated_tokens", json_real(ps.generated_tokens));
    json_object_set_new(rec, "update_s", json_real(compute));
    json_object_set_new(rec, "tokens_per_s", json_real(compute > 0 ? ps.tokens / compute : 0));
    json_object_set_new(rec, "tokens_per_s_wall", json_real(wall > 0 ? ps.tokens / wall : 0));
    /* Forward+backward token passes (epochs x tokens): the unit of agora-bench model's
     * train_tokens_per_s, for pipeline-efficiency comparisons. */
    const double passes = ps.tokens * l->o.ppo.epochs;
    json_object_set_new(rec, "train_tokens", json_real(passes));
    json_object_set_new(rec, "train_tokens_per_s", json_real(compute > 0 ? passes / compute : 0));
    json_object_set_new(rec, "score_passes", json_integer(ps.score_passes));
    json_object_set_new(rec, "reference_ahead", json_integer(all_ref ? 1 : 0));
    json_object_set_new(rec, "reference_by_trainer", json_integer((json_int_t)l->ref_own_scored));
    l->ref_own_scored = 0;
    json_object_set_new(rec, "score_s", json_real(ps.score_s));
    json_object_set_new(rec, "train_s", json_real(ps.train_s));
    json_object_set_new(rec, "score_positions", json_real(ps.score_positions));
    json_object_set_new(rec, "train_positions", json_real(ps.train_positions));
    json_object_set_new(rec, "policy_loss", json_real(ps.policy_loss));
    json_object_set_new(rec, "value_loss", json_real(ps.value_loss));
    json_object_set_new(rec, "entropy", json_real(ps.entropy));
    json_object_set_new(rec, "kl_ref", json_real(ps.kl_ref));
    json_object_set_new(rec, "approx_kl", json_real(ps.approx_kl));
    json_object_set_new(rec, "clip_frac", json_real(ps.clip_frac));
    json_object_set_new(rec, "explained_variance", json_real(ps.explained_variance));
    json_object_set_new(rec, "adv_mean", json_real(ps.adv_mean));
    json_object_set_new(rec, "adv_std", json_real(ps.adv_std));
    json_object_set_new(rec, "is_weight_mean", json_real(ps.is_weight_mean));
    json_object_set_new(rec, "grad_norm", json_real(ps.grad_norm));
    json_object_set_new(rec, "staleness_mean", json_real(n ? st_sum / (double)n : 0));
    json_object_set_new(rec, "staleness_max", json_real(st_max));
    json_object_set_new(rec, "dropped_stale", json_integer((json_int_t)(stale - l->prev_stale)));
    json_object_set_new(rec, "duplicates", json_integer((json_int_t)(dups - l->prev_duplicates)));
    json_object_set_new(rec, "lr", json_real(ps.lr));
    json_object_set_new(rec, "kl_coef", json_real(ps.kl_coef));
    ag_metrics_game(rec, &l->game, b, n);
    l->prev_stale = stale;
    l->prev_duplicates = dups;

    /* The version, the counters and the status record change together. */
    ag_service_lock(l->svc);
    ag_learner_commit_version(l, version + 1, snap);
    l->st.updates = updates;
    l->st.trained += n;
    l->st.tokens_trained += (uint64_t)ps.tokens;
    for (size_t i = 0; i < n; i++)
        ag_state_count_actor(&l->st, b[i]->actor_id, 1);
    json_t *actors = json_object();
    for (size_t i = 0; i < l->st.n_actors; i++)
        json_object_set_new(actors, l->st.actors[i].actor_id,
                            json_integer((json_int_t)l->st.actors[i].trained));
    json_object_set_new(rec, "actors", actors);
    json_decref(l->status);
    l->status = rec;
    ag_service_unlock(l->svc);
    ag_service_wake(l->svc);

    /* rec is only read from here on (the loop thread reads it too). */
    s_write_metrics(l, rec);
    const char *headline;
    const double hv = ag_metrics_headline(rec, &l->game, &headline);
    s_progress(l,
               "learner: v%" PRIu64 " update %" PRIu64 "  %.0f tok/s  pl %.3f  vl %.3f  ent %.3f"
               "  kl %.4f  %s %.3f",
               version + 1, updates, compute > 0 ? ps.tokens / compute : 0, ps.policy_loss,
               ps.value_loss, ps.entropy, ps.kl_ref, headline, hv);
    return 0;
}

/* The reference log-probs of t's seats with model m, in one forward. */
static void s_score_ref(ag_model_t *m, ag_traj_t *t)
{
    const ag_seq_t *rows[AG_TRAJ_MAX_SEATS];
    for (size_t s = 0; s < t->n_seats; s++)
        rows[s] = &t->seats[s];
    if (t->n_seats && ag_ppo_score_rows(m, rows, t->n_seats, t->ref) < 0)
        ag_warn("learner", "reference pass ahead of the update: out of memory");
}

/*
 * The reference pass, ahead of the trainer: the frozen reference model scores
 * queued trajectories, oldest first, while the trainer trains on the batch
 * before them, so the update itself runs only the proximal pass (the
 * reference log-probs do not depend on the policy being trained). Each
 * trajectory is scored in a forward of its own, so its figures are the same
 * whatever else was queued with it. The trainer takes only scored
 * trajectories; one the thread has not reached yet the trainer scores itself,
 * with a copy of the reference of its own, rather than wait (where the cores
 * are busy the low-priority thread may fall far behind). One that cannot be
 * scored (no memory) leaves the update to run the reference pass itself.
 * Trajectories already too stale to train are skipped.
 */
static void s_ref_thread(void *arg)
{
    ag_learner_t *l = arg;
    /* It only has to keep ahead of the trainer: where the cores are short, the
     * trainer (and the actors feeding it) go first. On Linux a thread has a
     * nice value of its own; elsewhere this is a no-op. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) < 0)
        ag_debug("learner", "reference thread: cannot lower its priority: %s", strerror(errno));
    ag_service_lock(l->svc);
    while (!l->ref_quit) {
        ag_traj_t *t = NULL;
        for (size_t i = 0; i < l->q_len && !t; i++) {
            ag_traj_t *c = l->q[(l->q_head + i) % l->q_cap];
            if (c->ref_state != AG_REF_TODO)
                continue;
            if (ag_learner_too_stale(l, c))
                c->ref_state = AG_REF_DONE; /* dropped when the trainer gets to it */
            else
                t = c;
        }
        if (!t) {
            ag_service_wait(l->svc, 0);
            continue;
        }
        t->ref_state = AG_REF_BUSY;
        ag_service_unlock(l->svc);
        uv_mutex_lock(&l->ref_lk);
        s_score_ref(l->ref, t);
        uv_mutex_unlock(&l->ref_lk);
        ag_service_lock(l->svc);
        t->ref_state = AG_REF_DONE;
        ag_service_broadcast(l->svc);
    }
    ag_service_unlock(l->svc);
}

static void s_ref_thread_start(ag_learner_t *l)
{
    if (!l->ref)
        return;
    const ag_model_config_t *c = ag_model_config(l->ref);
    l->ref_own = ag_model_create(c, l->o.seed, l->o.threads);
    if (!l->ref_own || ag_model_reserve(l->ref_own, AG_TRAJ_MAX_SEATS, c->ctx) < 0 ||
        ag_model_load_params(l->ref_own, ag_model_params_const(l->ref),
                             ag_model_num_params(l->ref)) < 0) {
        ag_model_destroy(&l->ref_own);
        ag_warn("learner", "no reference thread (no memory): each update runs its reference pass");
        return;
    }
    ag_service_lock(l->svc);
    l->ref_quit = false;
    l->ref_thread_on = uv_thread_create(&l->ref_thread, s_ref_thread, l) == 0;
    ag_service_unlock(l->svc);
    if (!l->ref_thread_on)
        ag_warn("learner", "no reference thread: each update runs its reference pass itself");
}

static void s_ref_thread_stop(ag_learner_t *l)
{
    ag_service_lock(l->svc);
    const bool on = l->ref_thread_on;
    l->ref_quit = true;
    l->ref_thread_on = false;
    ag_service_broadcast(l->svc);
    ag_service_unlock(l->svc);
    if (on)
        uv_thread_join(&l->ref_thread);
}

/*
 * The game from learner.env's Hello: its name when game.name is empty, and
 * the metrics it declares. Needed (for the warm start's Demo), no answer or
 * an unknown game is an error; otherwise the learner goes on without the
 * GameSpec, and its progress line shows reward_mean.
 */
static int s_learn_game(ag_learner_t *l, bool needed)
{
    int rc = ag_learner_game_hello(l->o.ws.env, l->o.ws.game, needed ? 10000 : 2000, &l->game);
    if (rc == 0) {
        const int h = ag_game_metrics_headline(l->game.metrics);
        ag_info("learner", "game %s: %zu metrics declared, headline %s", l->game.name,
                ag_game_metrics_count(l->game.metrics),
                h >= 0 ? ag_game_metrics_name(l->game.metrics, (size_t)h) : "none (reward_mean)");
        ag_service_lock(l->svc);
        snprintf(l->ws_game, sizeof l->ws_game, "%s", l->game.name);
        ag_service_unlock(l->svc);
        return 0;
    }
    if (rc == -ENOENT)
        return needed ? rc : 0; /* logged */
    if (needed) {
        ag_error("learner",
                 "the warm start needs the game: no env server answered Hello at %s (%s)",
                 l->o.ws.env, strerror(-rc));
        return rc;
    }
    ag_info("learner", "no GameSpec from learner.env (%s): the progress line shows reward_mean",
            strerror(-rc));
    return 0;
}

/*
 * learner.env empty: the env servers registered with this learner (the
 * loop thread keeps their list in reg_envs). The warm start needs one, so
 * then it waits for the first (logging every 30 s); otherwise whatever is
 * registered now will do, even nothing. Returns -ECANCELED on a stop.
 */
static int s_registered_envs(ag_learner_t *l, bool wait)
{
    if (l->ws_env[0])
        return 0;
    double next_log = 0;
    ag_service_lock(l->svc);
    for (;;) {
        snprintf(l->ws_env, sizeof l->ws_env, "%s", l->reg_envs);
        if (l->ws_env[0] || !wait || ag_service_stopping(l->svc))
            break;
        if (ag_now() >= next_log) {
            ag_info("learner", "learner.env is empty: the warm start waits for an env server%s%s "
                               "to register (agora-env --join %s)",
                    l->ws_game[0] ? " hosting " : "", l->ws_game, l->advertised[2]);
            next_log = ag_now() + 30;
        }
        ag_service_wait(l->svc, 0.2);
    }
    const bool stopping = ag_service_stopping(l->svc);
    ag_service_unlock(l->svc);
    if (l->ws_env[0])
        ag_info("learner", "learner.env: the registered env servers %s", l->ws_env);
    return stopping && !l->ws_env[0] ? -ECANCELED : 0;
}

void ag_learner_train(ag_service_t *svc, void *arg)
{
    ag_learner_t *l = arg;
    int rc = 0;
    const size_t want = (size_t)l->o.batch_trajectories;
    ag_traj_t **batch = calloc(want, sizeof *batch);
    size_t have = 0;
    if (!batch) {
        rc = -ENOMEM;
        goto finish;
    }
    /* The warm start's Demo needs the game's name: learn it first then. */
    const bool demos = !l->resumed && l->o.ws.demos > 0 && !(l->o.ws.file && l->o.ws.file[0]);
    if ((rc = s_registered_envs(l, demos)) == -ECANCELED) {
        rc = 0;
        goto finish;
    }
    if (demos && (rc = s_learn_game(l, true)) < 0)
        goto finish;
    if (!l->resumed) {
        rc = s_warmstart(l);
        if (rc == -ECANCELED) {
            rc = 0;
            goto finish;
        }
        if (rc < 0)
            goto finish;
    }
    if (!demos)
        s_learn_game(l, false);
    ag_service_lock(l->svc);
    l->phase = "ppo";
    ag_service_unlock(l->svc);
    s_ref_thread_start(l);
    l->t_last = ag_now();
    for (;;) {
        if (l->o.max_updates > 0) {
            ag_service_lock(l->svc);
            bool done = l->st.updates >= (uint64_t)l->o.max_updates;
            ag_service_unlock(l->svc);
            if (done) {
                ag_info("learner", "reached learner.max_updates = %ld", l->o.max_updates);
                break;
            }
        }
        ag_service_lock(l->svc);
        for (;;) {
            /* Take queued trajectories in arrival order, dropping the stale ones. */
            while (!l->gated && have < want && l->q_len > 0) {
                ag_traj_t *t = l->q[l->q_head];
                const bool stale = ag_learner_too_stale(l, t);
                if (l->ref_thread_on && t->ref_state == AG_REF_TODO) {
                    /* The reference thread has not reached it: score it here (unless
                     * it is dropped anyway). Only the trainer takes from the queue,
                     * so it stays at its head. */
                    t->ref_state = AG_REF_BUSY;
                    ag_service_unlock(l->svc);
                    if (!stale) {
                        s_score_ref(l->ref_own, t);
                        l->ref_own_scored++;
                    }
                    ag_service_lock(l->svc);
                    t->ref_state = AG_REF_DONE;
                    continue;
                }
                if (l->ref_thread_on && t->ref_state != AG_REF_DONE)
                    break; /* the reference thread is scoring it: a moment */
                l->q_head = (l->q_head + 1) % l->q_cap;
                l->q_len--;
                if (stale) {
                    l->st.dropped_stale++;
                    ag_traj_free(&t);
                    continue;
                }
                batch[have++] = t;
            }
            l->held = have;
            if (have == want || ag_service_stopping(l->svc) || ag_service_checkpoint_due(l->svc))
                break;
            ag_service_wait(l->svc, 0.5);
        }
        ag_service_unlock(l->svc);
        if (ag_service_stopping(l->svc))
            break;
        if (ag_service_checkpoint_take(l->svc))
            ag_learner_checkpoint(l, batch, have);
        if (have < want)
            continue;
        rc = s_update(l, batch, have);
        for (size_t i = 0; i < have; i++)
            ag_traj_free(&batch[i]);
        have = 0;
        ag_service_lock(l->svc);
        l->held = 0;
        ag_service_unlock(l->svc);
        if (rc < 0)
            goto finish;
    }
finish:
    s_ref_thread_stop(l);
    if (l->o.progress)
        fputc('\n', stderr);
    ag_service_lock(l->svc);
    l->phase = "stopping";
    /* The trainer may stop by itself (max_updates, an error): from here on
     * nothing more is acknowledged, so the checkpoint below holds every
     * trajectory accepted and not trained. */
    const bool have_policy = l->st.version > 0;
    ag_service_unlock(l->svc);
    ag_service_stop(svc);
    if (have_policy && ag_learner_checkpoint(l, batch, have) < 0 && rc == 0)
        rc = -EIO;
    for (size_t i = 0; i < have; i++)
        ag_traj_free(&batch[i]);
    free(batch);
    if (rc < 0 && !ag_service_exit_code(svc)) /* a reason of its own is logged already */
        ag_service_fail(svc, "training stopped: %s", strerror(-rc));
    ag_service_lock(svc);
    l->held = 0;
    ag_service_unlock(svc);
}
