/*
 * state.c - the learner's resume state as a sidecar file (sidecar.h):
 * counters as decimal strings, RNG words as hexadecimal strings, the
 * queue's count and CRC-32 as plain JSON integers.
 */
#include "state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "sidecar.h"

void ag_state_init(ag_learner_state_t *st)
{
    memset(st, 0, sizeof *st);
}

void ag_state_finish(ag_learner_state_t *st)
{
    free(st->league);
    for (size_t i = 0; i < st->n_actors; i++)
        free(st->actors[i].actor_id);
    free(st->actors);
    json_decref(st->dedup);
    ag_state_init(st);
}

int ag_state_count_actor(ag_learner_state_t *st, const char *actor_id, uint64_t n)
{
    for (size_t i = 0; i < st->n_actors; i++)
        if (!strcmp(st->actors[i].actor_id, actor_id)) {
            st->actors[i].trained += n;
            return 0;
        }
    ag_actor_count_t *a = realloc(st->actors, (st->n_actors + 1) * sizeof *a);
    if (!a)
        return -ENOMEM;
    st->actors = a;
    a[st->n_actors].actor_id = strdup(actor_id);
    if (!a[st->n_actors].actor_id)
        return -ENOMEM;
    a[st->n_actors].trained = n;
    st->n_actors++;
    return 0;
}

#define STATE_FORMAT "agora-learner-state/1"

int ag_state_save(const char *path, const ag_learner_state_t *st, char *err, size_t err_len)
{
    json_t *o = json_object();
    json_t *rng = json_array(), *league = json_array(), *actors = json_object();
    /* Built first: without it the state would silently read back as "no queue". */
    json_t *queue = json_pack("{s:I,s:I}", "count", (json_int_t)st->queue_count, "crc32",
                              (json_int_t)st->queue_crc32);
    int rc = -ENOMEM;
    if (!o || !rng || !league || !actors || !queue) {
        json_decref(rng);
        json_decref(league);
        json_decref(actors);
        json_decref(queue);
        snprintf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        char b[24];
        snprintf(b, sizeof b, "0x%016" PRIx64, st->rng.s[i]);
        json_array_append_new(rng, json_string(b));
    }
    for (size_t i = 0; i < st->n_league; i++)
        json_array_append_new(league, ag_sidecar_u64_new(st->league[i]));
    for (size_t i = 0; i < st->n_actors; i++)
        json_object_set_new(actors, st->actors[i].actor_id,
                            ag_sidecar_u64_new(st->actors[i].trained));
    json_object_set_new(o, "version", ag_sidecar_u64_new(st->version));
    json_object_set_new(o, "updates", ag_sidecar_u64_new(st->updates));
    json_object_set_new(o, "trajectories", ag_sidecar_u64_new(st->trajectories));
    json_object_set_new(o, "trained", ag_sidecar_u64_new(st->trained));
    json_object_set_new(o, "tokens_trained", ag_sidecar_u64_new(st->tokens_trained));
    json_object_set_new(o, "duplicates", ag_sidecar_u64_new(st->duplicates));
    json_object_set_new(o, "stale", ag_sidecar_u64_new(st->stale));
    json_object_set_new(o, "dropped_stale", ag_sidecar_u64_new(st->dropped_stale));
    json_object_set_new(o, "rejected", ag_sidecar_u64_new(st->rejected));
    json_object_set_new(o, "kl_coef", json_real(st->kl_coef));
    json_object_set_new(o, "elapsed_s", json_real(st->elapsed_s));
    json_object_set_new(o, "rng", rng);
    json_object_set_new(o, "league", league);
    json_object_set_new(o, "actors", actors);
    json_object_set_new(o, "dedup", st->dedup ? json_incref(st->dedup) : json_array());
    json_object_set_new(o, "queue", queue);
    rc = ag_sidecar_save(path, STATE_FORMAT, o, err, err_len);
done:
    json_decref(o);
    return rc;
}

int ag_state_load(const char *path, ag_learner_state_t *st, char *err, size_t err_len)
{
    ag_state_init(st);
    ag_sidecar_t sc;
    int rc = ag_sidecar_open(&sc, path, STATE_FORMAT, 0);
    const json_t *rng = ag_sidecar_array(&sc, NULL, "rng");
    const json_t *league = ag_sidecar_array(&sc, NULL, "league");
    const json_t *actors = ag_sidecar_object(&sc, NULL, "actors");
    const json_t *dedup = ag_sidecar_array(&sc, NULL, "dedup");
    ag_sidecar_number(&sc, NULL, "kl_coef", 0, 1e6, &st->kl_coef);
    ag_sidecar_number(&sc, NULL, "elapsed_s", 0, 1e12, &st->elapsed_s);
    const struct {
        const char *key;
        uint64_t *out;
    } counters[] = {
        {"version", &st->version},
        {"updates", &st->updates},
        {"trajectories", &st->trajectories},
        {"trained", &st->trained},
        {"tokens_trained", &st->tokens_trained},
        {"duplicates", &st->duplicates},
        {"stale", &st->stale},
        {"dropped_stale", &st->dropped_stale},
        {"rejected", &st->rejected},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        ag_sidecar_u64(&sc, NULL, counters[i].key, UINT64_MAX, counters[i].out);
    if (ag_sidecar_ok(&sc) && json_array_size(rng) != 4)
        ag_sidecar_bad(&sc, "rng", "4 words");
    for (size_t i = 0; ag_sidecar_ok(&sc) && i < 4; i++) {
        const json_t *w = json_array_get(rng, i);
        char *end = NULL;
        errno = 0;
        st->rng.s[i] = json_is_string(w) ? strtoull(json_string_value(w), &end, 16) : 0;
        if (!json_is_string(w) || errno || !end || *end)
            ag_sidecar_bad(&sc, "rng", "4 hexadecimal words");
    }
    if (ag_sidecar_ok(&sc)) {
        st->n_league = json_array_size(league);
        st->league = calloc(st->n_league ? st->n_league : 1, sizeof *st->league);
        if (!st->league) {
            rc = -ENOMEM;
            snprintf(err, err_len, "%s: out of memory", path);
            goto done;
        }
    }
    for (size_t i = 0; ag_sidecar_ok(&sc) && i < st->n_league; i++)
        if (ag_sidecar_u64_of(&sc, json_array_get(league, i), "league", UINT64_MAX,
                              &st->league[i]) == 0 &&
            (!st->league[i] || (i && st->league[i] <= st->league[i - 1])))
            ag_sidecar_bad(&sc, "league", "ascending versions >= 1");
    if (ag_sidecar_ok(&sc)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)actors, key, val)
        {
            uint64_t n;
            if (ag_sidecar_u64_of(&sc, val, "actors", UINT64_MAX, &n) < 0)
                break;
            if (ag_state_count_actor(st, key, n) < 0) {
                rc = -ENOMEM;
                snprintf(err, err_len, "%s: out of memory", path);
                goto done;
            }
        }
    }
    /* A state written before the queue was saved has no key: an empty queue. */
    if (ag_sidecar_ok(&sc) && json_object_get(sc.root, "queue")) {
        const json_t *queue = ag_sidecar_object(&sc, NULL, "queue");
        uint64_t crc = 0;
        ag_sidecar_u64(&sc, queue, "count", UINT32_MAX, &st->queue_count);
        ag_sidecar_u64(&sc, queue, "crc32", UINT32_MAX, &crc);
        st->queue_crc32 = (uint32_t)crc;
    }
    if (!ag_sidecar_ok(&sc)) {
        rc = rc == -ENOENT ? -ENOENT : -EINVAL;
        snprintf(err, err_len, "%s", sc.err);
        goto done;
    }
    st->dedup = json_incref((json_t *)dedup);
    rc = 0;
done:
    ag_sidecar_close(&sc);
    if (rc < 0)
        ag_state_finish(st);
    return rc;
}

int ag_queue_encode(const ag_queue_rec_t *recs, size_t n, uint8_t **out, size_t *out_len,
                    uint32_t *crc)
{
    *out = NULL;
    *out_len = 0;
    if (n > UINT32_MAX)
        return -EINVAL;
    size_t len = AG_QUEUE_MAGIC_LEN + 4 + 4;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].len > UINT32_MAX || recs[i].len > SIZE_MAX - len - 4)
            return -EINVAL;
        len += 4 + recs[i].len;
    }
    uint8_t *b = malloc(len);
    if (!b)
        return -ENOMEM;
    uint8_t *p = b;
    memcpy(p, AG_QUEUE_MAGIC, AG_QUEUE_MAGIC_LEN);
    p += AG_QUEUE_MAGIC_LEN;
    ag_put_u32le(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        ag_put_u32le(p, (uint32_t)recs[i].len);
        p += 4;
        if (recs[i].len)
            memcpy(p, recs[i].data, recs[i].len);
        p += recs[i].len;
    }
    *crc = ag_crc32(0, b, len - 4);
    ag_put_u32le(p, *crc);
    *out = b;
    *out_len = len;
    return 0;
}

int ag_queue_decode(const uint8_t *data, size_t len, ag_queue_rec_t **recs, size_t *n,
                    uint32_t *crc, char *why, size_t why_len)
{
    *recs = NULL;
    *n = 0;
    if (len < AG_QUEUE_MAGIC_LEN + 8) {
        snprintf(why, why_len, "%zu bytes: too short", len);
        return -EBADMSG;
    }
    if (memcmp(data, AG_QUEUE_MAGIC, AG_QUEUE_MAGIC_LEN)) {
        snprintf(why, why_len, "bad magic (not a queue file)");
        return -EBADMSG;
    }
    const size_t end = len - 4; /* where the records must stop */
    const uint32_t want = ag_get_u32le(data + end), got = ag_crc32(0, data, end);
    if (want != got) {
        snprintf(why, why_len,
                 "CRC-32 %08" PRIx32 " does not match the recorded %08" PRIx32 " (damaged or cut)",
                 got, want);
        return -EBADMSG;
    }
    const uint32_t count = ag_get_u32le(data + AG_QUEUE_MAGIC_LEN);
    size_t pos = AG_QUEUE_MAGIC_LEN + 4;
    /* Every record takes at least its 4-byte length: bounds the array below. */
    if (count > (end - pos) / 4) {
        snprintf(why, why_len, "%" PRIu32 " records cannot fit in %zu bytes", count, len);
        return -EBADMSG;
    }
    ag_queue_rec_t *r = malloc((count ? count : 1) * sizeof *r);
    if (!r) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (end - pos < 4 || end - pos - 4 < ag_get_u32le(data + pos)) {
            free(r);
            snprintf(why, why_len, "record %" PRIu32 " runs past the end of the file", i);
            return -EBADMSG;
        }
        r[i].len = ag_get_u32le(data + pos);
        r[i].data = data + pos + 4;
        pos += 4 + r[i].len;
    }
    if (pos != end) {
        free(r);
        snprintf(why, why_len, "%zu bytes after the last record", end - pos);
        return -EBADMSG;
    }
    *recs = r;
    *n = count;
    *crc = got;
    return 0;
}
