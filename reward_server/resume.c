/*
 * resume.c - what agora-reward saves and reads back: a checkpoint writes,
 * per model, NAME.ckpt (weights, AdamW) and NAME.labels (labelfile.c), then
 * reward-state.json (a sidecar file: counters, the batch ids remembered, the
 * NAME.labels it goes with); --resume loads them before the threads start.
 * Damage to one model's labels or batch ids is a warning that costs that
 * model those, never the resume.
 */
#include "reward_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "fsutil.h"
#include "log.h"
#include "sidecar.h"

/*
 * Writes, per model, NAME.ckpt and NAME.labels, then reward-state.json,
 * which records each NAME.labels by count and CRC-32: each file is atomic,
 * and the state file, written last, says which labels file belongs to it.
 * A model whose labels could not be saved gets no record, so a resume
 * starts it with no labels rather than with another checkpoint's.
 */
int ag_reward_checkpoint(ag_reward_service_t *s)
{
    char path[PATH_LEN], err[512];
    int rc = 0;
    json_t *models = json_object();
    for (size_t i = 0; i < s->n_models; i++) {
        rmodel_t *m = &s->models[i];
        msave_t sv;
        int cr = ag_reward_save_copy(s, m, &sv);
        if (cr < 0) {
            ag_error("reward", "checkpoint: the labels of model %s: %s", m->name, strerror(-cr));
            rc = -EIO;
            ag_service_lock(s->svc);
            ag_reward_counters_copy(m, &sv);
            ag_service_unlock(s->svc);
        }
        ag_reward_path(path, s->out, m->name, ".ckpt");
        if (ag_ckpt_save(path, ag_rm_model(m->train), m->opt, sv.updates, err, sizeof err) < 0) {
            ag_error("reward", "checkpoint: %s", err);
            free(sv.image);
            free(sv.ids);
            rc = -EIO;
            continue;
        }
        json_t *j = json_pack(
            "{s:o,s:o,s:o,s:o,s:o}", "version", ag_sidecar_u64_new(sv.version), "labels",
            ag_sidecar_u64_new(sv.labels), "updates", ag_sidecar_u64_new(sv.updates), "rejected",
            ag_sidecar_u64_new(sv.rejected), "duplicates", ag_sidecar_u64_new(sv.duplicates));
        /* Without its copy (out of memory) the model gets no list, and a
         * resume warns that its memory of batches is lost. */
        if (cr == 0)
            json_object_set_new(j, "batches", ag_batch_ids_json(sv.ids, sv.n_ids));
        free(sv.ids);
        if (sv.image) {
            ag_reward_path(path, s->out, m->name, ".labels");
            int wr = ag_write_atomic(path, sv.image, sv.len);
            if (wr < 0) {
                ag_error("reward", "checkpoint: %s: %s", path, strerror(-wr));
                rc = -EIO;
            } else {
                json_object_set_new(j, "label_file",
                                    json_pack("{s:I,s:I,s:f}", "count", (json_int_t)sv.count,
                                              "crc32", (json_int_t)sv.crc, "pending", sv.pending));
            }
            free(sv.image);
        }
        json_object_set_new(models, m->name, j);
    }
    json_t *root = json_pack("{s:o}", "models", models);
    ag_reward_path(path, s->out, STATE_FILE, "");
    char why[PATH_LEN + 256];
    int wr = root ? ag_sidecar_save(path, STATE_FORMAT, root, why, sizeof why) : -ENOMEM;
    json_decref(root);
    if (wr < 0) {
        ag_error("reward", "%s", root ? why : "checkpoint: out of memory");
        rc = wr;
    }
    if (rc == 0)
        ag_info("reward", "checkpoint: %zu model%s in %s", s->n_models, s->n_models == 1 ? "" : "s",
                s->out);
    return rc;
}

/* The counters of m's entry j of reward-state.json (NULL: none saved); a
 * damaged one fails the resume, with the reason in sc. */
static int s_state_counters(ag_sidecar_t *sc, const json_t *j, rmodel_t *m)
{
    if (!j)
        return 0;
    if (!json_is_object(j))
        return ag_sidecar_bad(sc, m->name, "an object");
    ag_sidecar_u64(sc, j, "version", UINT64_MAX, &m->version);
    ag_sidecar_u64(sc, j, "labels", UINT64_MAX, &m->labels);
    ag_sidecar_u64(sc, j, "rejected", UINT64_MAX, &m->rejected);
    /* a state file written before duplicates were counted has none */
    if (json_object_get(j, "duplicates"))
        ag_sidecar_u64(sc, j, "duplicates", UINT64_MAX, &m->duplicates);
    return ag_sidecar_ok(sc) ? 0 : -EINVAL;
}

/*
 * Puts back the batch ids m had accepted, from its entry j of
 * reward-state.json: their labels are in the resumed buffer or weights, so
 * a resend must still be a duplicate. A list that is missing or damaged is a
 * warning and an empty memory, never a failed resume. Called before the
 * threads start.
 */
static void s_restore_batches(rmodel_t *m, const json_t *j)
{
    const json_t *list = json_object_get(j, "batches");
    char why[160];
    if (!list) {
        ag_warn("reward",
                "resume: %s has no batch ids for model %s: a Label resent from before the "
                "checkpoint would be learnt again",
                STATE_FILE, m->name);
        return;
    }
    if (ag_batch_ids_load(m->seen, list, 2 * AG_REWARD_MAX_ITEMS, why, sizeof why) < 0) {
        ag_warn("reward",
                "resume: %s: model %s: \"batches\": %s; it starts with no batch ids (a Label "
                "resent from before the checkpoint would be learnt again)",
                STATE_FILE, m->name, why);
        return;
    }
    if (json_array_size(list) > ag_batch_ids_count(m->seen))
        ag_info("reward", "resume: model %s: the oldest %zu batch ids do not fit the memory of %zu",
                m->name, json_array_size(list) - ag_batch_ids_count(m->seen),
                ag_batch_ids_cap(m->seen));
}

/*
 * Puts the labels of DIR/NAME.labels back into m's buffer and held-out set,
 * with the training uses the buffer was owed, as recorded in m's entry j of
 * reward-state.json. A file that is missing, damaged or not the one j
 * records (another checkpoint's) is a warning and leaves m with no labels;
 * so is running out of memory. A record that fails the checks of a network
 * label is skipped with a warning. A buffer saved larger than reward.buffer
 * keeps its newest labels. The uses owed come back as saved but at most
 * reward.reuse per label kept, the same cap Label keeps, so no use is owed
 * to a label that is gone. Called before the threads start.
 */
static void s_restore_labels(ag_reward_service_t *s, ag_sidecar_t *sc, rmodel_t *m, const json_t *j)
{
    const json_t *rec = json_object_get(j, "label_file");
    if (!rec) {
        ag_warn("reward",
                "resume: %s has no saved labels for model %s: its buffer and held-out set "
                "start empty",
                STATE_FILE, m->name);
        return;
    }
    uint64_t count = 0, crc32 = 0;
    double pending = 0;
    ag_sidecar_u64(sc, rec, "count", UINT32_MAX, &count);
    ag_sidecar_u64(sc, rec, "crc32", UINT32_MAX, &crc32);
    ag_sidecar_number(sc, rec, "pending", 0, HUGE_VAL, &pending);
    char damage[1024];
    if (ag_sidecar_forgive(sc, damage, sizeof damage)) {
        ag_warn("reward",
                "resume: model %s: bad \"label_file\" (%s): its buffer and held-out set start "
                "empty",
                m->name, damage);
        return;
    }
    const uint32_t want_n = (uint32_t)count;
    const uint32_t want_crc = (uint32_t)crc32;
    if (want_n == 0)
        return;

    char path[PATH_LEN], why[256];
    ag_reward_path(path, s->resume, m->name, ".labels");
    uint8_t *d = NULL;
    size_t len = 0;
    uint32_t n = 0, crc = 0;
    int rc = ag_read_file(path, &d, &len);
    if (rc < 0) {
        snprintf(why, sizeof why, "%s", strerror(-rc));
    } else if ((rc = ag_reward_labels_check(d, len, &n, &crc, why, sizeof why)) == 0 &&
               (n != want_n || crc != want_crc)) {
        snprintf(why, sizeof why,
                 "holds %" PRIu32 " labels (CRC-32 %08" PRIx32 ") but %s was saved with %" PRIu32
                 " (%08" PRIx32 "): not the same checkpoint",
                 n, crc, STATE_FILE, want_n, want_crc);
        rc = -1;
    }
    if (rc < 0) {
        ag_warn("reward", "resume: %s: %s; model %s starts with no labels (%" PRIu32 " lost)", path,
                why, m->name, want_n);
        free(d);
        return;
    }

    const int ctx = s->o.model.ctx;
    size_t pos = LABELS_MAGIC_LEN + 4, skipped = 0, dropped = 0;
    const char *first = NULL;
    bool oom = false;
    for (uint32_t i = 0; i < n && !oom; i++) {
        record_t r;
        ag_reward_record_read(d, len - 4, &pos, &r); /* ag_reward_labels_check walked them all */
        const char *bad = ag_reward_record_refused(&r);
        if (bad) {
            if (!skipped++)
                first = bad;
            continue;
        }
        slabel_t *l = ag_reward_label_make(r.kind, r.preferred, r.target, r.weight, r.text[0],
                                           r.len[0], r.text[1], r.len[1], ctx);
        if (!l) {
            oom = true;
            break;
        }
        slabel_t *out;
        if (r.set) {
            l->id = m->next_held_id++;
            out = ag_reward_ring_push(&m->held, l);
        } else {
            out = ag_reward_ring_push(&m->buf, l);
        }
        dropped += out != NULL;
        free(out);
    }
    free(d);
    if (oom) {
        ag_reward_ring_clear(&m->buf);
        ag_reward_ring_clear(&m->held);
        m->next_held_id = 0;
        ag_warn("reward", "resume: %s: out of memory; model %s starts with no labels", path,
                m->name);
        return;
    }
    if (skipped)
        ag_warn("reward", "resume: %s: %zu of %" PRIu32 " labels skipped (the first: %s)", path,
                skipped, n, first);
    if (dropped)
        ag_info("reward", "resume: %s: the oldest %zu labels do not fit reward.buffer = %ld", path,
                dropped, s->o.buffer);
    const double most = (double)m->buf.len * s->o.reuse;
    m->credits = pending < most ? pending : most;
    ag_info("reward",
            "resume: model %s: %zu labels in the buffer (%.0f training uses owed), %zu held out",
            m->name, m->buf.len, ceil(m->credits), m->held.len);
}

/* Loads DIR/NAME.ckpt for the models that have one, with their counters and labels. */
int ag_reward_resume(ag_reward_service_t *s)
{
    char path[PATH_LEN], err[512];
    ag_sidecar_t sc;
    ag_reward_path(path, s->resume, STATE_FILE, "");
    /* Files written before the format member existed are its first version. */
    int rc = ag_sidecar_open(&sc, path, STATE_FORMAT, AG_SIDECAR_UNTAGGED_OK);
    const json_t *models = NULL;
    if (rc == -ENOENT) {
        ag_warn("reward",
                "resume: no %s: counters start from the checkpoints, buffers and held-out "
                "sets empty",
                path);
    } else if (rc < 0 || !(models = ag_sidecar_object(&sc, NULL, "models"))) {
        ag_error("reward", "resume: %s", sc.err);
        ag_sidecar_close(&sc);
        return -1;
    }
    size_t loaded = 0;
    for (size_t i = 0; i < s->n_models; i++) {
        rmodel_t *m = &s->models[i];
        ag_reward_path(path, s->resume, m->name, ".ckpt");
        if (access(path, F_OK) != 0) {
            ag_info("reward", "resume: no %s: model %s starts fresh", path, m->name);
            continue;
        }
        ag_ckpt_info_t info;
        ag_model_t *mm = ag_rm_model(m->train);
        if (ag_ckpt_load_into(path, mm, m->opt, &info, err, sizeof err) < 0) {
            ag_error("reward", "resume: model %s: %s", m->name, err);
            ag_sidecar_close(&sc);
            return -1;
        }
        m->updates = info.step;
        const json_t *j = models ? json_object_get(models, m->name) : NULL;
        if (s_state_counters(&sc, j, m) < 0) {
            ag_error("reward", "resume: %s", sc.err);
            ag_sidecar_close(&sc);
            return -1;
        }
        if (models) {
            s_restore_labels(s, &sc, m, j);
            s_restore_batches(m, j);
        }
        loaded++;
    }
    ag_sidecar_close(&sc);
    ag_info("reward", "resumed %zu of %zu models from %s", loaded, s->n_models, s->resume);
    return 0;
}
