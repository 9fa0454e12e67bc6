/*
 * labelfile.c - NAME.labels, the binary image of a model's labels.
 *
 * NAME.labels holds a model's replay buffer and held-out set, so a resumed
 * server trains on the labels it had and evaluates the same held-out set.
 * All integers little-endian:
 *
 *   "agoraL1\n", u32 count, count records, u32 CRC-32 of everything before;
 *   record: u8 set (0 buffer, 1 held out), u8 kind (0 outcome, 1 preference),
 *           u8 preferred, f32 target, f32 weight, then the transcripts as
 *           stored (already cut to what the model reads), each u32 length +
 *           bytes: one for an outcome, a then b for a preference.
 *
 * The buffer comes first, then the held-out set, each oldest first, so
 * pushing the records back in file order rebuilds both rings as they were.
 * That is all a stored label holds besides its held-out bookkeeping (id,
 * result), which is rebuilt: results belong to the weights, and a resumed
 * trainer evaluates the whole set again at once. The file is paired with
 * reward-state.json by its count and CRC-32, so one left by another
 * checkpoint (a crash between the two writes) is recognised.
 */
#include "reward_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "fsutil.h"

static int s_n_texts(int kind)
{
    return kind == AG_RM_PREFERENCE ? 2 : 1;
}

static size_t s_record_len(const slabel_t *l)
{
    size_t n = RECORD_HEAD;
    for (int t = 0; t < s_n_texts(l->kind); t++)
        n += 4 + (size_t)l->len[t];
    return n;
}

/* Bytes of m's NAME.labels image (under the lock). */
static size_t s_labels_len(const rmodel_t *m)
{
    size_t n = LABELS_MAGIC_LEN + 4 + 4;
    for (size_t i = 0; i < m->buf.len; i++)
        n += s_record_len(ag_reward_ring_at(&m->buf, i));
    for (size_t i = 0; i < m->held.len; i++)
        n += s_record_len(ag_reward_ring_at(&m->held, i));
    return n;
}

static uint8_t *s_put_record(uint8_t *p, const slabel_t *l, uint8_t set)
{
    p[0] = set;
    p[1] = l->kind;
    p[2] = l->preferred;
    ag_put_f32le(p + 3, l->target);
    ag_put_f32le(p + 7, l->weight);
    p += RECORD_HEAD;
    const uint8_t *src = l->bytes;
    for (int t = 0; t < s_n_texts(l->kind); t++) {
        ag_put_u32le(p, l->len[t]);
        memcpy(p + 4, src, l->len[t]);
        p += 4 + l->len[t];
        src += l->len[t];
    }
    return p;
}

/* Copies m's counters and owed uses into sv (under the lock). */
void ag_reward_counters_copy(const rmodel_t *m, msave_t *sv)
{
    sv->version = m->version;
    sv->labels = m->labels;
    sv->updates = m->updates;
    sv->rejected = m->rejected;
    sv->duplicates = m->duplicates;
    sv->pending = m->credits > 0 ? m->credits : 0;
}

/*
 * Copies m's counters, owed uses, labels (as the NAME.labels image) and
 * batch ids at one instant. The loop thread adds labels and drops old ones
 * meanwhile, so this follows the trainer's discipline: copy under the lock,
 * nothing else. The copy is the image itself (a memcpy per label, no second
 * pass); its memory, and the batch ids', is allocated and faulted in outside
 * the lock at a size measured under it (labels that arrive in between cost
 * one more round), and the CRC and the write happen after. Returns 0,
 * -ENOMEM, or -EFBIG for more labels than the format counts.
 */
int ag_reward_save_copy(ag_reward_service_t *s, rmodel_t *m, msave_t *sv)
{
    memset(sv, 0, sizeof *sv);
    size_t cap = 0, ids_cap = 0;
    uint8_t *b = NULL;
    ag_batch_id_t *ids = NULL;
    for (;;) {
        ag_service_lock(s->svc);
        const size_t need = s_labels_len(m), need_ids = ag_batch_ids_count(m->seen);
        if (need <= cap && need_ids <= ids_cap)
            break;
        ag_service_unlock(s->svc);
        if (need > cap) {
            free(b);
            cap = need + need / 8;
            b = malloc(cap);
            if (!b)
                goto oom;
            memset(b, 0, cap);
        }
        if (need_ids > ids_cap) {
            free(ids);
            ids_cap = need_ids + need_ids / 8;
            if (ids_cap > ag_batch_ids_cap(m->seen))
                ids_cap = ag_batch_ids_cap(m->seen);
            ids = malloc(ids_cap * sizeof *ids);
            if (!ids)
                goto oom;
            memset(ids, 0, ids_cap * sizeof *ids);
        }
    }
    const size_t count = m->buf.len + m->held.len;
    if (count > UINT32_MAX) {
        ag_service_unlock(s->svc);
        free(b);
        free(ids);
        return -EFBIG;
    }
    sv->n_ids = ag_batch_ids_count(m->seen);
    if (sv->n_ids)
        ag_batch_ids_copy(m->seen, ids);
    uint8_t *p = b;
    memcpy(p, LABELS_MAGIC, LABELS_MAGIC_LEN);
    ag_put_u32le(p + LABELS_MAGIC_LEN, (uint32_t)count);
    p += LABELS_MAGIC_LEN + 4;
    for (size_t i = 0; i < m->buf.len; i++)
        p = s_put_record(p, ag_reward_ring_at(&m->buf, i), 0);
    for (size_t i = 0; i < m->held.len; i++)
        p = s_put_record(p, ag_reward_ring_at(&m->held, i), 1);
    ag_reward_counters_copy(m, sv);
    ag_service_unlock(s->svc);

    sv->len = (size_t)(p - b) + 4;
    sv->crc = ag_crc32(0, b, sv->len - 4);
    ag_put_u32le(p, sv->crc);
    sv->image = b;
    sv->count = (uint32_t)count;
    sv->ids = ids;
    return 0;
oom:
    free(b);
    free(ids);
    return -ENOMEM;
}

/* Reads the record at *pos (the records end at end). Returns 0, or -1 when it
 * does not fit: the file's structure is broken, not just this label. */
int ag_reward_record_read(const uint8_t *d, size_t end, size_t *pos, record_t *r)
{
    size_t p = *pos;
    if (end - p < RECORD_HEAD)
        return -1;
    r->set = d[p];
    r->kind = d[p + 1];
    r->preferred = d[p + 2];
    r->target = ag_get_f32le(d + p + 3);
    r->weight = ag_get_f32le(d + p + 7);
    p += RECORD_HEAD;
    /* The kind says how many transcripts follow: without it nothing after
     * this record can be found. */
    if (r->kind != AG_RM_OUTCOME && r->kind != AG_RM_PREFERENCE)
        return -1;
    r->text[1] = NULL;
    r->len[1] = 0;
    for (int t = 0; t < s_n_texts(r->kind); t++) {
        if (end - p < 4 || end - p - 4 < ag_get_u32le(d + p))
            return -1;
        r->len[t] = ag_get_u32le(d + p);
        r->text[t] = d + p + 4;
        p += 4 + r->len[t];
    }
    *pos = p;
    return 0;
}

/* Why a record would have been refused as a network label, or NULL. */
const char *ag_reward_record_refused(const record_t *r)
{
    if (r->set > 1)
        return "set is neither 0 (buffer) nor 1 (held out)";
    if (!ag_reward_weight_ok(r->weight))
        return "weight is negative or not finite";
    if (r->kind == AG_RM_PREFERENCE && r->preferred > 1)
        return "preferred is neither 0 nor 1";
    if (r->kind == AG_RM_OUTCOME &&
        !(isfinite(r->target) && r->target >= 0.0f && r->target <= 1.0f))
        return "outcome label outside [0, 1]";
    /* fields a network label of that kind leaves at 0 */
    if ((r->kind == AG_RM_OUTCOME && r->preferred != 0) ||
        (r->kind == AG_RM_PREFERENCE && r->target != 0.0f))
        return "preferred set on an outcome, or target on a preference";
    for (int t = 0; t < s_n_texts(r->kind); t++) {
        if (r->len[t] > AG_REWARD_MAX_TRANSCRIPT)
            return "transcript longer than the protocol allows";
        /* a transcript crosses the wire as a C string: it cannot hold a NUL */
        if (r->len[t] && memchr(r->text[t], 0, r->len[t]))
            return "transcript holds a NUL byte";
    }
    return NULL;
}

/*
 * Checks a NAME.labels image: magic, CRC-32, every record inside the file
 * and the last one ending where the CRC starts. Returns 0 with its count
 * and CRC, or -1 with why.
 */
int ag_reward_labels_check(const uint8_t *d, size_t len, uint32_t *count, uint32_t *crc, char *why,
                           size_t why_len)
{
    if (len < LABELS_MAGIC_LEN + 8 || memcmp(d, LABELS_MAGIC, LABELS_MAGIC_LEN)) {
        snprintf(why, why_len, "not a labels file (%zu bytes, bad magic or too short)", len);
        return -1;
    }
    const size_t end = len - 4;
    const uint32_t want = ag_get_u32le(d + end), got = ag_crc32(0, d, end);
    if (want != got) {
        snprintf(why, why_len,
                 "CRC-32 %08" PRIx32 " does not match the recorded %08" PRIx32 " (damaged or cut)",
                 got, want);
        return -1;
    }
    const uint32_t n = ag_get_u32le(d + LABELS_MAGIC_LEN);
    size_t pos = LABELS_MAGIC_LEN + 4;
    record_t r;
    for (uint32_t i = 0; i < n; i++)
        if (ag_reward_record_read(d, end, &pos, &r) < 0) {
            snprintf(why, why_len,
                     "record %" PRIu32 " of %" PRIu32 " has an unknown kind or runs past the end",
                     i, n);
            return -1;
        }
    if (pos != end) {
        snprintf(why, why_len, "%zu bytes after the last record", end - pos);
        return -1;
    }
    *count = n;
    *crc = got;
    return 0;
}
