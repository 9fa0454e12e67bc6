/*
 * resume.c - what agora-learner saves and reads back: a checkpoint writes
 * policy.ckpt (with the optimizer), queue.bin (the trajectories acknowledged
 * and not trained) and state.json (state.h), in that order; --resume loads
 * them, with the league snapshots, before the threads start. The queue and
 * the de-duplication memory are copied in one critical section, so every id
 * the memory refuses is either trained or in queue.bin.
 */
#include "learner_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"

/*
 * Saves policy.ckpt (with the optimizer), queue.bin and state.json, in that
 * order. held[0..n_held) is the trainer's batch in the making: it arrived
 * before everything still in the queue, so it comes first in queue.bin.
 * Trainer thread.
 */
int ag_learner_checkpoint(ag_learner_t *l, ag_traj_t *const *held, size_t n_held)
{
    char path[PATH_LEN], err[PATH_LEN + 512];
    ag_learner_path(path, l, NULL, "policy.ckpt");
    ag_service_lock(l->svc);
    const uint64_t version = l->st.version;
    ag_service_unlock(l->svc);
    int rc = ag_ckpt_save(path, l->policy, ag_ppo_optimizer(l->ppo), version, err, sizeof err);
    if (rc < 0) {
        ag_error("learner", "checkpoint: %s", err);
        return rc;
    }
    /* The queue, the de-duplication memory and the counters are copied in one
     * critical section, so every id the memory refuses is either in policy.ckpt
     * or in queue.bin. Only pointers are copied under the lock: queued
     * trajectories are freed by this thread alone, and the loop thread only
     * appends. */
    ag_learner_state_t st;
    ag_service_lock(l->svc);
    const size_t n = n_held + l->q_len;
    ag_queue_rec_t *recs = malloc((n ? n : 1) * sizeof *recs);
    if (recs) {
        for (size_t i = 0; i < n_held; i++)
            recs[i] = (ag_queue_rec_t){held[i]->pb, held[i]->pb_len};
        for (size_t i = 0; i < l->q_len; i++) {
            const ag_traj_t *t = l->q[(l->q_head + i) % l->q_cap];
            recs[n_held + i] = (ag_queue_rec_t){t->pb, t->pb_len};
        }
    }
    /* Shallow: the league and actor arrays stay owned by l->st, and only this
     * thread ever changes them, so they may be read after the unlock. */
    st = l->st;
    st.rng = *ag_ppo_rng(l->ppo);
    st.kl_coef = ag_ppo_kl_coef(l->ppo);
    st.elapsed_s = l->st.elapsed_s + (ag_now() - l->t_start);
    st.dedup = ag_dedup_to_json(l->dedup);
    ag_service_unlock(l->svc);

    uint8_t *qbuf = NULL;
    size_t qlen = 0;
    uint32_t qcrc = 0;
    rc = recs && st.dedup ? ag_queue_encode(recs, n, &qbuf, &qlen, &qcrc) : -ENOMEM;
    free(recs);
    ag_learner_path(path, l, NULL, "queue.bin");
    /* queue.bin first: a crash before state.json leaves a queue.bin the old
     * state.json does not vouch for, which --resume recognises. */
    if (rc == 0)
        rc = ag_write_atomic(path, qbuf, qlen);
    free(qbuf);
    if (rc == 0) {
        st.queue_count = n;
        st.queue_crc32 = qcrc;
        ag_learner_path(path, l, NULL, "state.json");
        rc = ag_state_save(path, &st, err, sizeof err);
    } else {
        snprintf(err, sizeof err, "%s: %s", path, strerror(-rc));
    }
    json_decref(st.dedup);
    if (rc < 0) {
        ag_error("learner", "state: %s", err);
        return rc;
    }
    ag_info("learner", "checkpoint: version %" PRIu64 ", %zu trajectories queued, in %s", version,
            n, l->out);
    return 0;
}

/*
 * Puts the trajectories of dir/queue.bin back in the queue, in their saved
 * order, under new arrival numbers. A queue.bin that is missing, damaged or
 * not the one state.json was saved with (a crash between the two writes) is
 * warned about and the run goes on with an empty queue: those trajectories
 * are lost, but the run is not. Each record passes the checks of a network
 * submission (a model with a smaller context may refuse some); staleness is
 * checked when the trainer takes it, as for any queued trajectory. Called
 * before the threads start.
 */
static void s_restore_queue(ag_learner_t *l, const char *dir)
{
    const uint64_t want = l->st.queue_count;
    if (want == 0)
        return;
    char path[PATH_LEN], why[256];
    ag_learner_path(path, l, dir, "queue.bin");
    uint8_t *data = NULL;
    size_t len = 0, n = 0, queued = 0, skipped = 0;
    ag_queue_rec_t *recs = NULL;
    uint32_t crc = 0;
    int rc = ag_read_file(path, &data, &len);
    if (rc < 0) {
        ag_warn("learner",
                "resume: %s: %s; the %" PRIu64 " trajectories queued at the checkpoint are lost",
                path, strerror(-rc), want);
        goto done;
    }
    if (ag_queue_decode(data, len, &recs, &n, &crc, why, sizeof why) < 0) {
        ag_warn("learner",
                "resume: %s: %s; the %" PRIu64 " trajectories queued at the checkpoint are lost",
                path, why, want);
        goto done;
    }
    if (n != want || crc != l->st.queue_crc32) {
        ag_warn("learner",
                "resume: %s holds %zu trajectories (CRC-32 %08" PRIx32 ") but state.json "
                "was saved with %" PRIu64 " (%08" PRIx32 "): not the same checkpoint; the "
                "queued trajectories are lost",
                path, n, crc, want, l->st.queue_crc32);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (l->q_len == l->q_cap) {
            ag_warn("learner",
                    "resume: the queue holds %zu trajectories (learner.max_pending); the last "
                    "%zu of queue.bin are dropped",
                    l->q_cap, n - i);
            break;
        }
        Agora__V1__Trajectory *pb = (Agora__V1__Trajectory *)ag_codec_decode(
            &agora__v1__trajectory__descriptor, recs[i].data, recs[i].len, &ag_learner_traj_limits,
            why, sizeof why);
        ag_traj_t *t = NULL;
        rc = pb ? ag_traj_from_pb(pb, l->o.model.vocab, l->o.model.ctx, &t, why, sizeof why)
                : -EINVAL;
        if (pb)
            ag_codec_free(&pb->base);
        if (rc < 0) {
            ag_warn("learner", "resume: queue.bin record %zu skipped: %s", i,
                    rc == -ENOMEM ? "out of memory" : why);
            skipped++;
            continue;
        }
        t->arrival = l->arrivals++;
        l->q[(l->q_head + l->q_len) % l->q_cap] = t;
        l->q_len++;
        queued++;
    }
    if (queued)
        ag_learner_open_gate(l);
    ag_info("learner", "resume: %zu trajectories queued again from %s (%zu skipped)", queued, path,
            skipped);
done:
    free(recs);
    free(data);
}

/* Loads the resume state from dir into l (models, optimizer, counters,
 * league, the queue). */
int ag_learner_resume(ag_learner_t *l, const char *dir)
{
    char path[PATH_LEN], err[512];
    ag_ckpt_info_t info;
    ag_learner_path(path, l, dir, "state.json");
    if (ag_state_load(path, &l->st, err, sizeof err) < 0) {
        ag_error("learner", "resume: %s", err);
        return -1;
    }
    ag_learner_path(path, l, dir, "policy.ckpt");
    if (ag_ckpt_load_into(path, l->policy, ag_ppo_optimizer(l->ppo), &info, err, sizeof err) < 0) {
        ag_error("learner", "resume: %s", err);
        return -1;
    }
    if (info.step != l->st.version) {
        /* A crash between policy.ckpt and state.json: the saved queue is from
         * before the newer policy, which may have trained on part of it. */
        ag_warn("learner",
                "resume: policy.ckpt holds version %" PRIu64 " but state.json says %" PRIu64
                "; using the checkpoint's; the %" PRIu64
                " trajectories of queue.bin saved with state.json are lost",
                info.step, l->st.version, l->st.queue_count);
        l->st.queue_count = 0;
    }
    l->st.version = info.step;
    if (l->ref) {
        ag_learner_path(path, l, dir, "reference.ckpt");
        if (ag_ckpt_load_into(path, l->ref, NULL, NULL, err, sizeof err) < 0) {
            ag_error("learner", "resume: %s", err);
            return -1;
        }
    }
    *ag_ppo_rng(l->ppo) = l->st.rng;
    ag_ppo_set_kl_coef(l->ppo, l->st.kl_coef);
    if (ag_dedup_from_json(l->dedup, l->st.dedup) < 0) {
        ag_error("learner", "resume: bad de-duplication state");
        return -1;
    }
    s_restore_queue(l, dir);
    /* League snapshots back into memory, through a scratch model. */
    ag_model_t *tmp = ag_model_create(&l->o.model, 0, 1);
    if (!tmp)
        return -1;
    size_t kept = 0;
    for (size_t i = 0; i < l->st.n_league; i++) {
        char name[64];
        snprintf(name, sizeof name, "league/%" PRIu64 ".ckpt", l->st.league[i]);
        ag_learner_path(path, l, dir, name);
        if (ag_ckpt_load_into(path, tmp, NULL, NULL, err, sizeof err) < 0) {
            ag_warn("learner", "resume: league version %" PRIu64 " dropped: %s", l->st.league[i],
                    err);
            continue;
        }
        l->st.league[kept++] = l->st.league[i];
        snap_t *s = ag_learner_snap_make(tmp, l->st.league[i], 0, true);
        if (s)
            ag_learner_publish(l, s);
    }
    l->st.n_league = kept;
    ag_model_destroy(&tmp);
    snap_t *s = ag_learner_snap_make(l->policy, l->st.version, l->st.updates, false);
    if (s)
        ag_learner_publish(l, s);
    /* The trainer's counters of "since the last update" continue from here. */
    l->prev_duplicates = l->st.duplicates;
    l->prev_stale = l->st.stale + l->st.dropped_stale;
    json_decref(l->st.dedup);
    l->st.dedup = NULL;
    ag_info("learner", "resumed from %s: version %" PRIu64 ", %" PRIu64 " updates, league of %zu",
            dir, l->st.version, l->st.updates, kept);
    return 0;
}
