/*
 * learner.c - the agora-learner service (see learner.h): creating it (output
 * directory, models, PPO, resume, sockets, the service host that runs the
 * trainer), stopping it and freeing it. The work is in the files
 * learner_priv.h lists: ingest, control, publishing, the trainer, resume.
 */
#include "learner_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* The output directory is checked to leave room for every name below it. */
void ag_learner_path(char *dst, const ag_learner_t *l, const char *dir, const char *name)
{
    if (snprintf(dst, PATH_LEN, "%s/%s", dir ? dir : l->out, name) >= PATH_LEN)
        dst[PATH_LEN - 1] = '\0';
}

/* A run file larger than this is refused: RunConfigReply.run_file's limit (protocol §12.4). */
#define RUN_TEXT_MAX 65536

/* Once the trainer has ended: the sockets close, so the loop ends. */
static void s_on_stopped(void *arg)
{
    ag_learner_t *l = arg;
    ag_registry_destroy(&l->reg);
    ag_rpc_server_destroy(&l->traj);
    ag_rpc_server_destroy(&l->ctl);
    ag_zsock_destroy(&l->pub);
}

void ag_learner_stop(ag_learner_t *l)
{
    if (l->svc)
        ag_service_stop(l->svc);
}

int ag_learner_exit_code(const ag_learner_t *l)
{
    return ag_service_exit_code(l ? l->svc : NULL);
}

static int s_mkdir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    ag_error("learner", "mkdir %s: %s", path, strerror(errno));
    return -1;
}

/*
 * Two learners writing one run directory would corrupt it: the first holds an
 * exclusive flock on DIR/lock (released by the kernel when it exits, however
 * it exits); the second is refused with the first one's pid.
 */
static int s_lock_out(ag_learner_t *l)
{
    char path[PATH_LEN];
    ag_learner_path(path, l, NULL, "lock");
    l->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->lock_fd < 0) {
        ag_error("learner", "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(l->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        ag_error("learner",
                 "learner.out %s is in use by another learner (pid %s, holding %s): two "
                 "learners must not share a run directory",
                 l->out, pid[0] ? pid : "unknown", path);
        close(l->lock_fd);
        l->lock_fd = -1;
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(l->lock_fd, 0) < 0 || pwrite(l->lock_fd, pid, (size_t)n, 0) != n)
        ag_warn("learner", "%s: cannot write this learner's pid: %s", path, strerror(errno));
    return 0;
}

/* The endpoints of the bound sockets as peers reach them (learner.advertise). */
static int s_advertise(ag_learner_t *l, const char *advertise)
{
    const char *bound[3] = {ag_rpc_server_endpoint(l->traj), ag_zsock_endpoint(l->pub),
                            ag_rpc_server_endpoint(l->ctl)};
    for (int i = 0; i < 3; i++) {
        if (!bound[i] || ag_join_advertised(bound[i], advertise, l->advertised[i],
                                            sizeof l->advertised[i]) < 0) {
            ag_error("learner", "cannot tell the address peers reach %s by (learner.advertise)",
                     bound[i] ? bound[i] : l->endpoints[i]);
            return -1;
        }
    }
    return 0;
}

ag_learner_t *ag_learner_create(uv_loop_t *loop, void *zctx, const ag_learner_opts_t *o)
{
    ag_learner_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->lock_fd = -1;
    l->loop = loop;
    l->zctx = zctx;
    l->o = *o;
    if (o->progress == AG_LEARNER_PROGRESS_AUTO)
        l->o.progress = isatty(2) ? AG_LEARNER_PROGRESS_ON : AG_LEARNER_PROGRESS_OFF;
    if (strlen(o->out) > PATH_LEN - 128 || (o->resume && strlen(o->resume) > PATH_LEN - 128)) {
        ag_error("learner", "learner.out / learner.resume: path too long");
        free(l);
        return NULL;
    }
    const char *run_text = o->run_text ? o->run_text : "";
    if (strlen(run_text) > RUN_TEXT_MAX) {
        ag_error("learner", "the run file is %zu bytes: at most %d can be handed to actors",
                 strlen(run_text), RUN_TEXT_MAX);
        free(l);
        return NULL;
    }
    l->run_text = strdup(run_text);
    l->o.advertise = NULL; /* used once, in create: peers get l->advertised */
    if (!l->run_text) {
        free(l);
        return NULL;
    }
    l->o.run_text = l->run_text;
    snprintf(l->out, sizeof l->out, "%s", o->out);
    snprintf(l->resume, sizeof l->resume, "%s", o->resume ? o->resume : "");
    snprintf(l->endpoints[0], sizeof l->endpoints[0], "%s", o->trajectories);
    snprintf(l->endpoints[1], sizeof l->endpoints[1], "%s", o->weights);
    snprintf(l->endpoints[2], sizeof l->endpoints[2], "%s", o->control);
    snprintf(l->ws_file, sizeof l->ws_file, "%s", o->ws.file ? o->ws.file : "");
    snprintf(l->ws_env, sizeof l->ws_env, "%s", o->ws.env ? o->ws.env : "");
    snprintf(l->ws_game, sizeof l->ws_game, "%s", o->ws.game ? o->ws.game : "");
    snprintf(l->ws_options, sizeof l->ws_options, "%s", o->ws.options ? o->ws.options : "");
    l->o.ws.file = l->ws_file;
    l->o.ws.env = l->ws_env;
    l->o.ws.game = l->ws_game;
    l->o.ws.options = l->ws_options;
    l->o.out = l->out;
    l->o.resume = l->resume;
    l->phase = "warmstart";
    l->t_start = ag_now();
    l->resumed = l->resume[0] != '\0';
    uv_mutex_init(&l->ref_lk);
    const ag_service_config_t sc = {.name = "learner",
                                    .max_seconds = o->max_seconds,
                                    .checkpoint_interval_s = o->checkpoint_interval_s,
                                    .signals = true,
                                    .work = ag_learner_train,
                                    .on_wake = ag_learner_on_wake,
                                    .on_stopped = s_on_stopped,
                                    .arg = l};
    l->svc = ag_service_create(loop, &sc);
    if (!l->svc) {
        ag_learner_destroy(&l);
        return NULL;
    }
    ag_rng_seed(&l->ws_rng, o->seed ^ 0x5753ULL);
    char err[256], path[PATH_LEN];

    /* Room for a full queue plus the trainer's batch: a checkpoint saves both,
     * and --resume puts both back in the queue. */
    l->q_cap =
        (size_t)o->max_pending +
        ((size_t)o->batch_trajectories > MAX_SUBMIT ? (size_t)o->batch_trajectories : MAX_SUBMIT);
    l->q = calloc(l->q_cap, sizeof *l->q);
    l->gated = o->min_actors > 1;
    l->dedup = ag_dedup_create(4096);
    if (!l->q || !l->dedup)
        goto fail_early;
    if (ag_model_config_check(&o->model, err, sizeof err) < 0) {
        ag_error("learner", "model: %s", err);
        goto fail_early;
    }
    l->policy = ag_model_create(&o->model, o->seed, o->threads);
    bool want_ref = o->ppo.kl_coef > 0.0f || o->ppo.kl_target > 0.0f;
    if (want_ref)
        l->ref = ag_model_create(&o->model, o->seed, o->threads);
    if (!l->policy || (want_ref && !l->ref)) {
        ag_error("learner", "cannot create the model");
        goto fail_early;
    }
    l->ppo = ag_ppo_create(l->policy, l->ref, &o->ppo, o->seed ^ 0x50504fULL);
    /* The reference thread scores a trajectory's seats in one forward. */
    if (l->ppo && l->ref && o->ppo.minibatch < AG_TRAJ_MAX_SEATS &&
        ag_model_reserve(l->ref, AG_TRAJ_MAX_SEATS, o->model.ctx) < 0)
        ag_ppo_destroy(&l->ppo);
    if (!l->ppo) {
        ag_error("learner", "cannot set up PPO (bad [ppo] values or no memory)");
        goto fail_early;
    }
    ag_learner_path(path, l, NULL, "league");
    if (s_mkdir(l->out) < 0 || s_lock_out(l) < 0 || s_mkdir(path) < 0)
        goto fail_early;
    if (l->resumed && ag_learner_resume(l, l->resume) < 0)
        goto fail_early;
    if (!l->resumed)
        l->st.kl_coef = ag_ppo_kl_coef(l->ppo);
    ag_learner_path(path, l, NULL, "metrics.jsonl");
    l->metrics = fopen(path, l->resumed ? "a" : "w");
    if (!l->metrics) {
        ag_error("learner", "%s: %s", path, strerror(errno));
        goto fail_early;
    }

    ag_zsock_opts_t to = {.maxmsgsize = 64ll << 20};
    ag_zsock_opts_t co = {.maxmsgsize = 1 << 20};
    ag_zsock_opts_t po = {.sndhwm = o->pub_hwm > 0 ? o->pub_hwm : 4};
    l->traj = ag_rpc_server_create(loop, zctx, l->endpoints[0], &to, ag_learner_on_traj, l);
    l->ctl = ag_rpc_server_create(loop, zctx, l->endpoints[2], &co, ag_learner_on_ctl, l);
    l->pub = ag_zsock_create(loop, zctx, ZMQ_PUB, &po, NULL, NULL);
    l->reg = ag_registry_create(loop, zctx, (uint32_t)(o->service_ttl_s * 1000.0),
                                ag_learner_on_registry, l);
    if (!l->traj || !l->ctl || !l->pub || ag_zsock_bind(l->pub, l->endpoints[1]) < 0) {
        ag_error("learner", "cannot bind %s, %s and %s", l->endpoints[0], l->endpoints[1],
                 l->endpoints[2]);
        goto fail_sockets;
    }
    if (!l->reg || s_advertise(l, o->advertise) < 0)
        goto fail_sockets;
    if (ag_service_start(l->svc) < 0)
        return l; /* closing, exit code 1: the loop closes the handles */
    ag_info("learner", "trajectories on %s, weights on %s, control on %s; peers reach them as "
                       "%s, %s, %s (actors and servers join with --join %s)",
            ag_rpc_server_endpoint(l->traj), ag_zsock_endpoint(l->pub),
            ag_rpc_server_endpoint(l->ctl), l->advertised[0], l->advertised[1], l->advertised[2],
            l->advertised[2]);
    return l;

fail_sockets:
    /* Handles were created on the loop: they must be closed through it. */
    ag_service_fail(l->svc, "cannot start");
    ag_service_close(l->svc);
    return l;
fail_early:
    ag_learner_destroy(&l);
    return NULL;
}

void ag_learner_destroy(ag_learner_t **self)
{
    if (!self || !*self)
        return;
    ag_learner_t *l = *self;
    ag_service_destroy(&l->svc);
    for (size_t i = 0; i < l->q_len; i++)
        ag_traj_free(&l->q[(l->q_head + i) % l->q_cap]);
    free(l->q);
    while (l->outbox) {
        snap_t *n = l->outbox->next;
        l->outbox->refs = 0;
        ag_learner_snap_unref(l->outbox);
        l->outbox = n;
    }
    ag_learner_snap_unref(l->latest);
    for (size_t i = 0; i < l->n_league; i++)
        ag_learner_snap_unref(l->league[i]);
    free(l->league);
    ag_buf_finish(&l->buf);
    ag_dedup_destroy(&l->dedup);
    ag_state_finish(&l->st);
    json_decref(l->status);
    if (l->metrics)
        fclose(l->metrics);
    ag_ppo_destroy(&l->ppo);
    ag_model_destroy(&l->ref);
    ag_model_destroy(&l->ref_own);
    ag_model_destroy(&l->policy);
    ag_learner_game_finish(&l->game);
    ag_registry_destroy(&l->reg);
    free(l->run_text);
    if (l->lock_fd >= 0)
        close(l->lock_fd); /* releases the lock */
    uv_mutex_destroy(&l->ref_lk);
    free(l);
    *self = NULL;
}
