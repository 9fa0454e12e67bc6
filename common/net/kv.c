/*
 * kv.c - "KEY=VALUE,..." option lists (see kv.h).
 */
#include "kv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Items of a list that merge keeps: Reset and Demo carry at most 32 options. */
#define MERGE_MAX 32

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return s;
}

int ag_kv_parse(const char *text, char *buf, size_t buf_len, ag_kv_t *kv, size_t max)
{
    size_t len = strlen(text);
    if (len + 1 > buf_len)
        return -E2BIG;
    memcpy(buf, text, len + 1);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            if (*s_trim(tok))
                return -EINVAL;
            continue;
        }
        *eq = '\0';
        const char *key = s_trim(tok);
        if (!*key)
            return -EINVAL;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(kv[i].key, key))
                return -EINVAL;
        if (n == max)
            return -E2BIG;
        kv[n].key = key;
        kv[n].value = s_trim(eq + 1);
        n++;
    }
    return (int)n;
}

int ag_kv_merge(const char *base, const char *over, char *out, size_t cap)
{
    char bbuf[2048], obuf[2048];
    ag_kv_t b[MERGE_MAX], o[MERGE_MAX];
    int nb = ag_kv_parse(base, bbuf, sizeof bbuf, b, MERGE_MAX);
    int no = ag_kv_parse(over, obuf, sizeof obuf, o, MERGE_MAX);
    if (nb < 0 || no < 0 || cap == 0)
        return -EINVAL;
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < nb + no; i++) {
        const ag_kv_t *kv = i < nb ? &b[i] : &o[i - nb];
        bool replaced = false;
        for (int k = 0; i < nb && k < no && !replaced; k++)
            replaced = !strcmp(kv->key, o[k].key);
        if (replaced)
            continue;
        int w = snprintf(out + at, cap - at, "%s%s=%s", at ? "," : "", kv->key, kv->value);
        if (w < 0 || (size_t)w >= cap - at)
            return -ENAMETOOLONG;
        at += (size_t)w;
    }
    return 0;
}
