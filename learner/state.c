/*
 * state.c - the learner's resume state as JSON (see state.h). 64-bit values
 * that may exceed JSON's safe integers (RNG words, counters) are strings;
 * the queue's count and CRC-32 are plain JSON integers.
 */
#include "state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"

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

static json_t *s_u64(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return json_string(b);
}

static int s_get_u64(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return -EINVAL;
    char *end;
    errno = 0;
    *out = strtoull(json_string_value(v), &end, 0);
    return errno || *end ? -EINVAL : 0;
}

char *ag_state_dump(const ag_learner_state_t *st)
{
    json_t *o = json_object();
    json_t *rng = json_array(), *league = json_array(), *actors = json_object();
    /* Built first: without it the state would silently read back as "no queue". */
    json_t *queue = json_pack("{s:I,s:I}", "count", (json_int_t)st->queue_count, "crc32",
                              (json_int_t)st->queue_crc32);
    if (!o || !rng || !league || !actors || !queue) {
        json_decref(o);
        json_decref(rng);
        json_decref(league);
        json_decref(actors);
        json_decref(queue);
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        char b[24];
        snprintf(b, sizeof b, "0x%016" PRIx64, st->rng.s[i]);
        json_array_append_new(rng, json_string(b));
    }
    for (size_t i = 0; i < st->n_league; i++)
        json_array_append_new(league, s_u64(st->league[i]));
    for (size_t i = 0; i < st->n_actors; i++)
        json_object_set_new(actors, st->actors[i].actor_id, s_u64(st->actors[i].trained));
    json_object_set_new(o, "format", json_string("agora-learner-state/1"));
    json_object_set_new(o, "version", s_u64(st->version));
    json_object_set_new(o, "updates", s_u64(st->updates));
    json_object_set_new(o, "trajectories", s_u64(st->trajectories));
    json_object_set_new(o, "trained", s_u64(st->trained));
    json_object_set_new(o, "tokens_trained", s_u64(st->tokens_trained));
    json_object_set_new(o, "duplicates", s_u64(st->duplicates));
    json_object_set_new(o, "stale", s_u64(st->stale));
    json_object_set_new(o, "dropped_stale", s_u64(st->dropped_stale));
    json_object_set_new(o, "rejected", s_u64(st->rejected));
    json_object_set_new(o, "kl_coef", json_real(st->kl_coef));
    json_object_set_new(o, "elapsed_s", json_real(st->elapsed_s));
    json_object_set_new(o, "rng", rng);
    json_object_set_new(o, "league", league);
    json_object_set_new(o, "actors", actors);
    json_object_set_new(o, "dedup", st->dedup ? json_incref(st->dedup) : json_array());
    json_object_set_new(o, "queue", queue);
    char *text = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    json_decref(o);
    return text;
}

int ag_state_save(const char *path, const ag_learner_state_t *st, char *err, size_t err_len)
{
    char *text = ag_state_dump(st);
    if (!text) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    int rc = ag_write_atomic(path, text, strlen(text));
    free(text);
    if (rc < 0)
        snprintf(err, err_len, "%s: %s", path, strerror(-rc));
    return rc;
}

int ag_state_load(const char *path, ag_learner_state_t *st, char *err, size_t err_len)
{
    ag_state_init(st);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) {
        snprintf(err, err_len, "%s: %s", path, je.text);
        return -EINVAL;
    }
    int rc = 0;
    const json_t *fmt = json_object_get(o, "format");
    const json_t *rng = json_object_get(o, "rng"), *league = json_object_get(o, "league");
    const json_t *actors = json_object_get(o, "actors"), *dedup = json_object_get(o, "dedup");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "agora-learner-state/1") ||
        !json_is_array(rng) || json_array_size(rng) != 4 || !json_is_array(league) ||
        !json_is_object(actors) || !json_is_array(dedup) ||
        !json_is_number(json_object_get(o, "kl_coef")) ||
        !json_is_number(json_object_get(o, "elapsed_s")) || s_get_u64(o, "version", &st->version) ||
        s_get_u64(o, "updates", &st->updates) || s_get_u64(o, "trajectories", &st->trajectories) ||
        s_get_u64(o, "trained", &st->trained) ||
        s_get_u64(o, "tokens_trained", &st->tokens_trained) ||
        s_get_u64(o, "duplicates", &st->duplicates) || s_get_u64(o, "stale", &st->stale) ||
        s_get_u64(o, "dropped_stale", &st->dropped_stale) ||
        s_get_u64(o, "rejected", &st->rejected)) {
        snprintf(err, err_len, "%s: not an agora learner state (missing or bad fields)", path);
        rc = -EINVAL;
        goto done;
    }
    st->kl_coef = json_number_value(json_object_get(o, "kl_coef"));
    st->elapsed_s = json_number_value(json_object_get(o, "elapsed_s"));
    for (int i = 0; i < 4; i++) {
        const json_t *w = json_array_get(rng, (size_t)i);
        st->rng.s[i] = json_is_string(w) ? strtoull(json_string_value(w), NULL, 16) : 0;
    }
    st->n_league = json_array_size(league);
    st->league = calloc(st->n_league ? st->n_league : 1, sizeof *st->league);
    if (!st->league) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < st->n_league; i++) {
        const json_t *v = json_array_get(league, i);
        st->league[i] = json_is_string(v) ? strtoull(json_string_value(v), NULL, 10) : 0;
        if (!st->league[i] || (i && st->league[i] <= st->league[i - 1])) {
            snprintf(err, err_len, "%s: league versions must be ascending", path);
            rc = -EINVAL;
            goto done;
        }
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)actors, key, val)
    {
        if (!json_is_string(val) ||
            ag_state_count_actor(st, key, strtoull(json_string_value(val), NULL, 10)) < 0) {
            rc = -EINVAL;
            snprintf(err, err_len, "%s: bad actor counts", path);
            goto done;
        }
    }
    /* A state written before the queue was saved has no key: an empty queue. */
    const json_t *queue = json_object_get(o, "queue");
    if (queue) {
        const json_t *count = json_object_get(queue, "count");
        const json_t *crc = json_object_get(queue, "crc32");
        if (!json_is_integer(count) || !json_is_integer(crc) || json_integer_value(count) < 0 ||
            json_integer_value(crc) < 0 || json_integer_value(crc) > (json_int_t)UINT32_MAX) {
            snprintf(err, err_len, "%s: bad \"queue\" (count and crc32 must be integers)", path);
            rc = -EINVAL;
            goto done;
        }
        st->queue_count = (uint64_t)json_integer_value(count);
        st->queue_crc32 = (uint32_t)json_integer_value(crc);
    }
    st->dedup = json_incref((json_t *)dedup);
done:
    json_decref(o);
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
