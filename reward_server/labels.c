/*
 * labels.c - the labels agora-reward keeps: a stored label holds only the
 * bytes its model reads of each transcript (the last ctx - 1), so a full
 * buffer of the largest transcripts costs at most buffer * 2 * ctx bytes per
 * model; whether a label is held out is a hash of what it says, so a resent
 * label lands on the same side; and rings of labels (the replay buffer, the
 * held-out set) drop their oldest when full.
 */
#include "reward_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ag_reward_ring_init(ring_t *r, size_t cap)
{
    r->v = calloc(cap, sizeof *r->v);
    r->cap = cap;
    r->head = r->len = 0;
    return r->v ? 0 : -ENOMEM;
}

slabel_t *ag_reward_ring_at(const ring_t *r, size_t i)
{
    return r->v[(r->head + i) % r->cap];
}

/* Appends x; returns the label it pushed out (to free), or NULL. */
slabel_t *ag_reward_ring_push(ring_t *r, slabel_t *x)
{
    slabel_t *dropped = NULL;
    if (r->len == r->cap) {
        dropped = r->v[r->head];
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    r->v[(r->head + r->len) % r->cap] = x;
    r->len++;
    return dropped;
}

/* Frees every label, keeping the ring. */
void ag_reward_ring_clear(ring_t *r)
{
    for (size_t i = 0; r->v && i < r->len; i++)
        free(ag_reward_ring_at(r, i));
    r->head = r->len = 0;
}

void ag_reward_ring_finish(ring_t *r)
{
    ag_reward_ring_clear(r);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static uint64_t s_fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/*
 * Whether a label is held out: a hash of what it says (kind, target, the
 * preferred transcript then the other one, whole) against the fraction. A
 * preference and its mirror image (a and b swapped, preferred flipped) are
 * the same label and land on the same side.
 */
bool ag_reward_held_out(double fraction, int kind, float target, const char *first,
                        const char *second)
{
    if (fraction <= 0)
        return false;
    uint64_t h = 0xcbf29ce484222325ULL;
    uint8_t k = (uint8_t)kind;
    h = s_fnv(h, &k, 1);
    if (kind == AG_RM_OUTCOME)
        h = s_fnv(h, &target, sizeof target);
    /* Indexed, not by pointer: first and second may be one string (two
     * empty transcripts decode to protobuf-c's shared ""). */
    const char *const texts[2] = {first, second};
    for (size_t i = 0; i < 2 && texts[i]; i++) {
        uint64_t n = strlen(texts[i]);
        h = s_fnv(h, &n, sizeof n);
        h = s_fnv(h, texts[i], n);
    }
    h ^= h >> 33; /* fmix64: FNV's low bits alone are poorly mixed */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < fraction;
}

/* A stored label of transcripts a (la bytes) and b (lb, 0 for an outcome),
 * keeping only what the model reads of each. */
slabel_t *ag_reward_label_make(int kind, int preferred, float target, float weight,
                               const uint8_t *a, size_t la, const uint8_t *b, size_t lb, int ctx)
{
    size_t ka = ag_rm_kept_bytes(la, ctx), kb = ag_rm_kept_bytes(lb, ctx);
    slabel_t *l = malloc(sizeof *l + ka + kb);
    if (!l)
        return NULL;
    l->id = 0;
    l->eval_at = 0;
    l->result = -1;
    l->kind = (uint8_t)kind;
    l->preferred = (uint8_t)preferred;
    l->target = target;
    l->weight = weight > 0 ? weight : 1.0f;
    l->len[0] = (uint32_t)ka;
    l->len[1] = (uint32_t)kb;
    memcpy(l->bytes, a + (la - ka), ka);
    if (kb)
        memcpy(l->bytes + ka, b + (lb - kb), kb);
    return l;
}

slabel_t *ag_reward_label_new(int kind, int preferred, float target, float weight, const char *a,
                              const char *b, int ctx)
{
    return ag_reward_label_make(kind, preferred, target, weight, (const uint8_t *)a, strlen(a),
                                (const uint8_t *)b, b ? strlen(b) : 0, ctx);
}
