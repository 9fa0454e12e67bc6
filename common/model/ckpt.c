/*
 * ckpt.c - writing and reading checkpoints (format: docs/checkpoint.md).
 *
 * Writing streams the file through a buffer that also runs the CRC, into a
 * temporary file next to the target, then fsync + rename + directory fsync.
 * Reading loads the whole file, checks size, magic, version and checksum,
 * then re-derives the expected tensor table from the stored config and
 * insists that the stored table matches it entry for entry, so a file that
 * passes the checksum but was written by a buggy or hostile writer still
 * cannot make us read out of bounds or load misplaced tensors.
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "model_priv.h"

#define HDR_SIZE 128
#define ENTRY_SIZE 80
#define OPT_HDR_SIZE 64
#define DATA_ALIGN 64
#define FLAG_OPTIMIZER 1u
/* Refuse absurd files before allocating for them. */
#define MAX_FILE_SIZE ((uint64_t)1 << 40)

static int s_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint64_t s_align(uint64_t x)
{
    return (x + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
}

static int s_host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t s_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* float32 <-> little-endian bytes */
static void s_floats_to_le(unsigned char *dst, const float *src, size_t n)
{
    if (s_host_is_le()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        s_put32(dst + 4 * i, u);
    }
}

static void s_floats_from_le(float *dst, const unsigned char *src, size_t n)
{
    if (s_host_is_le()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = s_get32(src + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
}

/* ----------------------------------------------------------------- layout */

typedef struct {
    uint64_t table_off, params_off, params_end, optim_off, file_size;
} layout_t;

static layout_t s_file_layout(int n_tensors, uint64_t n_params, int with_opt)
{
    layout_t l;
    l.table_off = HDR_SIZE;
    l.params_off = s_align(HDR_SIZE + (uint64_t)ENTRY_SIZE * (uint64_t)n_tensors);
    l.params_end = l.params_off + 4 * n_params;
    l.optim_off = with_opt ? s_align(l.params_end) : 0;
    uint64_t end = with_opt ? l.optim_off + OPT_HDR_SIZE + 8 * n_params : l.params_end;
    l.file_size = end + 4;
    return l;
}

/* ----------------------------------------------------------------- writer */

typedef struct {
    int fd;
    uint32_t crc;
    uint64_t written;
    size_t used;
    unsigned char buf[1 << 16];
} writer_t;

static int s_flush(writer_t *w)
{
    size_t off = 0;
    while (off < w->used) {
        ssize_t k = write(w->fd, w->buf + off, w->used - off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)k;
    }
    w->used = 0;
    return 0;
}

static int s_write(writer_t *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    w->crc = ag_crc32(w->crc, p, n);
    w->written += n;
    while (n > 0) {
        size_t k = sizeof(w->buf) - w->used;
        if (k > n)
            k = n;
        memcpy(w->buf + w->used, p, k);
        w->used += k;
        p += k;
        n -= k;
        if (w->used == sizeof(w->buf)) {
            int rc = s_flush(w);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int s_write_zeros(writer_t *w, uint64_t upto)
{
    static const unsigned char zeros[DATA_ALIGN];
    while (w->written < upto) {
        uint64_t k = upto - w->written;
        int rc = s_write(w, zeros, k > sizeof(zeros) ? sizeof(zeros) : (size_t)k);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_write_floats(writer_t *w, const float *x, size_t n)
{
    unsigned char tmp[4096];
    while (n > 0) {
        size_t k = n > sizeof(tmp) / 4 ? sizeof(tmp) / 4 : n;
        s_floats_to_le(tmp, x, k);
        int rc = s_write(w, tmp, k * 4);
        if (rc)
            return rc;
        x += k;
        n -= k;
    }
    return 0;
}

static int s_write_body(writer_t *w, const ag_model_t *m, const ag_adamw_t *opt, uint64_t step,
                        const layout_t *l)
{
    const ag_model_config_t *c = &m->cfg;
    unsigned char h[HDR_SIZE];
    memset(h, 0, sizeof(h));
    memcpy(h, AG_CKPT_MAGIC, 8);
    s_put32(h + 8, AG_CKPT_VERSION);
    s_put32(h + 12, HDR_SIZE);
    s_put32(h + 16, (uint32_t)c->vocab);
    s_put32(h + 20, (uint32_t)c->d_model);
    s_put32(h + 24, (uint32_t)c->n_layers);
    s_put32(h + 28, (uint32_t)c->n_heads);
    s_put32(h + 32, (uint32_t)c->ctx);
    s_put32(h + 36, (uint32_t)c->mlp_ratio);
    s_put32(h + 40, (uint32_t)m->n_tensors);
    s_put32(h + 44, opt ? FLAG_OPTIMIZER : 0);
    s_put64(h + 48, step);
    s_put64(h + 56, m->n_params);
    s_put64(h + 64, l->table_off);
    s_put64(h + 72, l->params_off);
    s_put64(h + 80, l->optim_off);
    s_put64(h + 88, l->file_size);
    int rc = s_write(w, h, sizeof(h));
    for (int i = 0; rc == 0 && i < m->n_tensors; i++) {
        const ag_tensor_info_t *t = &m->tensors[i];
        unsigned char e[ENTRY_SIZE];
        memset(e, 0, sizeof(e));
        memcpy(e, t->name, strnlen(t->name, AG_MODEL_TENSOR_NAME - 1));
        s_put32(e + 48, (uint32_t)t->ndim);
        s_put32(e + 52, (uint32_t)t->shape[0]);
        s_put32(e + 56, (uint32_t)(t->ndim == 2 ? t->shape[1] : 0));
        s_put64(e + 64, l->params_off + 4 * (uint64_t)t->offset);
        s_put64(e + 72, t->size);
        rc = s_write(w, e, sizeof(e));
    }
    if (rc == 0)
        rc = s_write_zeros(w, l->params_off);
    if (rc == 0)
        rc = s_write_floats(w, m->params, m->n_params);
    if (rc == 0 && opt) {
        rc = s_write_zeros(w, l->optim_off);
        unsigned char oh[OPT_HDR_SIZE];
        memset(oh, 0, sizeof(oh));
        s_put64(oh, ag_adamw_steps(opt));
        s_put64(oh + 8, ag_adamw_num_params(opt));
        if (rc == 0)
            rc = s_write(w, oh, sizeof(oh));
        if (rc == 0)
            rc = s_write_floats(w, ag_adamw_m_const(opt), m->n_params);
        if (rc == 0)
            rc = s_write_floats(w, ag_adamw_v_const(opt), m->n_params);
    }
    if (rc == 0) {
        unsigned char tail[4];
        s_put32(tail, w->crc);
        rc = s_write(w, tail, 4);
    }
    if (rc == 0)
        rc = s_flush(w);
    return rc;
}

static int s_fsync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir))
            return -ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int ag_ckpt_save(const char *path, const ag_model_t *m, const ag_adamw_t *opt, uint64_t step,
                 char *err, size_t errlen)
{
    static atomic_uint counter;
    if (!path || !m)
        return s_err(err, errlen, -EINVAL, "no path or model");
    if (opt && ag_adamw_num_params(opt) != m->n_params)
        return s_err(err, errlen, -EINVAL, "optimizer does not match the model");
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(),
                     atomic_fetch_add(&counter, 1));
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return s_err(err, errlen, -ENAMETOOLONG, "checkpoint path too long");
    const layout_t l = s_file_layout(m->n_tensors, m->n_params, opt != NULL);
    writer_t *w = malloc(sizeof(*w));
    if (!w)
        return s_err(err, errlen, -ENOMEM, "out of memory");
    w->crc = 0;
    w->written = 0;
    w->used = 0;
    w->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    int rc;
    if (w->fd < 0) {
        rc = -errno;
        free(w);
        return s_err(err, errlen, rc, "cannot create %s: %s", tmp, strerror(-rc));
    }
    rc = s_write_body(w, m, opt, step, &l);
    if (rc == 0 && w->written != l.file_size)
        rc = -EIO;
    if (rc == 0 && fsync(w->fd) != 0)
        rc = -errno;
    if (close(w->fd) != 0 && rc == 0)
        rc = -errno;
    free(w);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return s_err(err, errlen, rc, "cannot write %s: %s", path, strerror(-rc));
    }
    rc = s_fsync_dir(path);
    if (rc != 0)
        return s_err(err, errlen, rc, "cannot sync the directory of %s: %s", path, strerror(-rc));
    return 0;
}

/* ----------------------------------------------------------------- reader */

typedef struct {
    unsigned char *buf;
    uint64_t size;
    ag_ckpt_info_t info;
    uint64_t n_params, params_off, optim_off;
} parsed_t;

static int s_read_file(const char *path, parsed_t *p, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return s_err(err, errlen, rc, "cannot open %s: %s", path, strerror(-rc));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        s_err(err, errlen, rc, "cannot stat %s: %s", path, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < HDR_SIZE + 4 || (uint64_t)st.st_size > MAX_FILE_SIZE) {
        rc = s_err(err, errlen, -EBADMSG, "%s: not a checkpoint (size %lld bytes)", path,
                   (long long)st.st_size);
        goto out;
    }
    p->size = (uint64_t)st.st_size;
    p->buf = malloc(p->size);
    if (!p->buf) {
        rc = s_err(err, errlen, -ENOMEM, "%s: out of memory for %llu bytes", path,
                   (unsigned long long)p->size);
        goto out;
    }
    uint64_t got = 0;
    while (got < p->size) {
        ssize_t k = read(fd, p->buf + got, p->size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = -errno;
            s_err(err, errlen, rc, "cannot read %s: %s", path, strerror(-rc));
            goto out;
        }
        if (k == 0) {
            rc = s_err(err, errlen, -EBADMSG, "%s: file shrank while reading", path);
            goto out;
        }
        got += (uint64_t)k;
    }
out:
    close(fd);
    if (rc != 0) {
        free(p->buf);
        p->buf = NULL;
    }
    return rc;
}

static int s_parse(const char *path, parsed_t *p, char *err, size_t errlen)
{
    const unsigned char *h = p->buf;
    if (memcmp(h, AG_CKPT_MAGIC, 8) != 0)
        return s_err(err, errlen, -EBADMSG, "%s: not a checkpoint (bad magic)", path);
    uint32_t version = s_get32(h + 8);
    if (version != AG_CKPT_VERSION)
        return s_err(err, errlen, -ENOTSUP, "%s: checkpoint format version %u, this build reads %u",
                     path, version, AG_CKPT_VERSION);
    if (s_get32(h + 12) != HDR_SIZE)
        return s_err(err, errlen, -EBADMSG, "%s: bad header size %u", path, s_get32(h + 12));
    uint64_t file_size = s_get64(h + 88);
    if (file_size != p->size)
        return s_err(err, errlen, -EBADMSG, "%s: %s: header says %llu bytes, file has %llu", path,
                     p->size < file_size ? "truncated" : "trailing data",
                     (unsigned long long)file_size, (unsigned long long)p->size);
    uint32_t stored = s_get32(p->buf + p->size - 4);
    uint32_t crc = ag_crc32(0, p->buf, p->size - 4);
    if (stored != crc)
        return s_err(err, errlen, -EBADMSG,
                     "%s: checksum mismatch (stored %08x, computed %08x): file is corrupt", path,
                     stored, crc);

    ag_model_config_t *c = &p->info.cfg;
    uint32_t raw[6];
    for (int i = 0; i < 6; i++)
        raw[i] = s_get32(h + 16 + 4 * i);
    for (int i = 0; i < 6; i++)
        if (raw[i] > AG_MODEL_MAX_CTX)
            return s_err(err, errlen, -EBADMSG, "%s: config value %u out of range", path, raw[i]);
    c->vocab = (int)raw[0];
    c->d_model = (int)raw[1];
    c->n_layers = (int)raw[2];
    c->n_heads = (int)raw[3];
    c->ctx = (int)raw[4];
    c->mlp_ratio = (int)raw[5];
    char why[128];
    if (ag_model_config_check(c, why, sizeof(why)) != 0)
        return s_err(err, errlen, -EBADMSG, "%s: bad model config: %s", path, why);
    const uint32_t n_tensors = s_get32(h + 40), flags = s_get32(h + 44);
    p->info.step = s_get64(h + 48);
    p->n_params = s_get64(h + 56);
    p->params_off = s_get64(h + 72);
    p->optim_off = s_get64(h + 80);
    if (flags & ~FLAG_OPTIMIZER)
        return s_err(err, errlen, -EBADMSG, "%s: unknown flags %#x", path, flags);
    p->info.has_optimizer = (flags & FLAG_OPTIMIZER) != 0;
    const int expect_n = ag_model_tensor_table(c, NULL);
    if (p->n_params != ag_model_config_num_params(c) || n_tensors != (uint32_t)expect_n)
        return s_err(err, errlen, -EBADMSG, "%s: tensor count or size does not match the config",
                     path);
    const layout_t l = s_file_layout(expect_n, p->n_params, p->info.has_optimizer);
    if (s_get64(h + 64) != l.table_off || p->params_off != l.params_off ||
        p->optim_off != l.optim_off || file_size != l.file_size)
        return s_err(err, errlen, -EBADMSG, "%s: section offsets do not match the config", path);
    for (int i = 96; i < HDR_SIZE; i++)
        if (h[i])
            return s_err(err, errlen, -EBADMSG, "%s: reserved header bytes are not zero", path);

    ag_tensor_info_t *expect = calloc((size_t)expect_n, sizeof(*expect));
    if (!expect)
        return s_err(err, errlen, -ENOMEM, "out of memory");
    ag_model_tensor_table(c, expect);
    int rc = 0;
    for (int i = 0; i < expect_n && rc == 0; i++) {
        const unsigned char *e = p->buf + HDR_SIZE + (size_t)ENTRY_SIZE * (size_t)i;
        const ag_tensor_info_t *t = &expect[i];
        char name[AG_MODEL_TENSOR_NAME + 1];
        memcpy(name, e, AG_MODEL_TENSOR_NAME);
        name[AG_MODEL_TENSOR_NAME] = 0;
        int ok = !strcmp(name, t->name) && s_get32(e + 48) == (uint32_t)t->ndim &&
                 s_get32(e + 52) == (uint32_t)t->shape[0] &&
                 s_get32(e + 56) == (uint32_t)(t->ndim == 2 ? t->shape[1] : 0) &&
                 s_get64(e + 64) == l.params_off + 4 * (uint64_t)t->offset &&
                 s_get64(e + 72) == t->size;
        if (!ok)
            rc = s_err(err, errlen, -EBADMSG,
                       "%s: tensor table entry %d ('%.48s') does not match the config (expected "
                       "'%s')",
                       path, i, name, t->name);
    }
    free(expect);
    if (rc)
        return rc;
    if (p->info.has_optimizer) {
        const unsigned char *oh = p->buf + p->optim_off;
        p->info.optimizer_steps = s_get64(oh);
        if (s_get64(oh + 8) != p->n_params)
            return s_err(err, errlen, -EBADMSG, "%s: optimizer section size mismatch", path);
    }
    p->info.file_size = p->size;
    return 0;
}

static int s_open_parsed(const char *path, parsed_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (!path)
        return s_err(err, errlen, -EINVAL, "no path");
    int rc = s_read_file(path, p, err, errlen);
    if (rc == 0)
        rc = s_parse(path, p, err, errlen);
    if (rc != 0) {
        free(p->buf);
        p->buf = NULL;
    }
    return rc;
}

int ag_ckpt_read_info(const char *path, ag_ckpt_info_t *info, char *err, size_t errlen)
{
    parsed_t p;
    int rc = s_open_parsed(path, &p, err, errlen);
    if (rc == 0 && info)
        *info = p.info;
    free(p.buf);
    return rc;
}

static int s_same_config(const ag_model_config_t *a, const ag_model_config_t *b)
{
    return a->vocab == b->vocab && a->d_model == b->d_model && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->ctx == b->ctx && a->mlp_ratio == b->mlp_ratio;
}

/* Copies a validated file into m (whose config must match) and opt. */
static int s_apply(const char *path, const parsed_t *p, ag_model_t *m, ag_adamw_t *opt,
                   ag_ckpt_info_t *info, char *err, size_t errlen)
{
    if (!s_same_config(&p->info.cfg, &m->cfg)) {
        const ag_model_config_t *c = &p->info.cfg;
        return s_err(err, errlen, -EINVAL,
                     "%s: checkpoint config (vocab %d, d_model %d, layers %d, heads %d, ctx %d, "
                     "mlp %d) differs from the model's",
                     path, c->vocab, c->d_model, c->n_layers, c->n_heads, c->ctx, c->mlp_ratio);
    }
    s_floats_from_le(m->params, p->buf + p->params_off, m->n_params);
    if (opt && p->info.has_optimizer) {
        const unsigned char *data = p->buf + p->optim_off + OPT_HDR_SIZE;
        s_floats_from_le(ag_adamw_m(opt), data, m->n_params);
        s_floats_from_le(ag_adamw_v(opt), data + 4 * m->n_params, m->n_params);
        ag_adamw_set_steps(opt, p->info.optimizer_steps);
    }
    if (info)
        *info = p->info;
    return 0;
}

int ag_ckpt_load_into(const char *path, ag_model_t *m, ag_adamw_t *opt, ag_ckpt_info_t *info,
                      char *err, size_t errlen)
{
    if (!m)
        return s_err(err, errlen, -EINVAL, "no model");
    if (opt && ag_adamw_num_params(opt) != m->n_params)
        return s_err(err, errlen, -EINVAL, "optimizer does not match the model");
    parsed_t p;
    int rc = s_open_parsed(path, &p, err, errlen);
    if (rc == 0)
        rc = s_apply(path, &p, m, opt, info, err, errlen);
    free(p.buf);
    return rc;
}

ag_model_t *ag_ckpt_load(const char *path, int threads, ag_ckpt_info_t *info, int *rc_out,
                         char *err, size_t errlen)
{
    parsed_t p;
    ag_model_t *m = NULL;
    int rc = s_open_parsed(path, &p, err, errlen);
    if (rc == 0) {
        m = ag_model_create(&p.info.cfg, 0, threads);
        if (!m)
            rc = s_err(err, errlen, -ENOMEM, "out of memory for the model");
    }
    if (rc == 0)
        rc = s_apply(path, &p, m, NULL, info, err, errlen);
    if (rc != 0)
        ag_model_destroy(&m);
    free(p.buf);
    if (rc_out)
        *rc_out = rc;
    return m;
}
