/*
 * kv.h - the one parser of option lists "KEY=VALUE,KEY=VALUE", as run files
 * and command lines give game options (game.options, warmstart.options) and
 * as they travel in Reset and Demo (one KeyValue each).
 *
 * Items are separated by commas; spaces and tabs around a key or a value are
 * dropped, empty items (",,", a trailing comma) are skipped. Every item needs
 * '=' and a non-empty key; a value may be empty. A key given twice is an
 * error: which one was meant cannot be guessed.
 */
#ifndef AG_KV_H
#define AG_KV_H

#include <stddef.h>

typedef struct ag_kv {
    const char *key;
    const char *value;
} ag_kv_t;

/*
 * Parses text into at most max items whose strings point into buf (buf_len
 * bytes, which must hold a copy of text). Returns the number of items, or
 * -EINVAL (an item without '=' or with an empty key, a key given twice),
 * -E2BIG (more than max items, or text does not fit buf).
 */
int ag_kv_parse(const char *text, char *buf, size_t buf_len, ag_kv_t *kv, size_t max);

/*
 * Writes base with the items of over on top (an item of over replaces the
 * item of base with the same key, the others are appended in order) into out
 * as "K=V,K=V". Returns 0, -EINVAL when either list does not parse, or
 * -ENAMETOOLONG when the result does not fit cap bytes.
 */
int ag_kv_merge(const char *base, const char *over, char *out, size_t cap);

#endif
