/*
 * test_ckpt.c - CRC-32 and checkpoints: the checksum matches zlib's; a
 * save/load round trip is bit-exact (parameters, optimizer moments, step);
 * writes are atomic and leave no temporary files; truncated, corrupt,
 * foreign, future-version and inconsistent files are all refused with an
 * error and leave the model untouched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt.h"
#include "crc32.h"
#include "model.h"
#include "optim.h"

static char s_dir[256];

static int setup_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof(s_dir), "%s/agora-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    DIR *d = opendir(s_dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof(p), "%s/%s", s_dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(s_dir);
    return 0;
}

static void s_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", s_dir, name);
}

static unsigned char *s_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void s_spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Re-seals a modified image with a valid checksum, to reach the checks
 * behind it. */
static void s_reseal(unsigned char *b, size_t n)
{
    s_put32(b + n - 4, ag_crc32(0, b, n - 4));
}

static ag_model_t *s_model(void)
{
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 32,
                           .n_layers = 2,
                           .n_heads = 2,
                           .ctx = 16,
                           .mlp_ratio = 4};
    return ag_model_create(&c, 17, 1);
}

/* --------------------------------------------------------------- crc32 */

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(ag_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(ag_crc32(0, "", 0), 0);
    assert_int_equal(ag_crc32(0, "a", 1), 0xE8B7BE43u);
    /* zlib.crc32(b"The quick brown fox jumps over the lazy dog") */
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(ag_crc32(0, fox, strlen(fox)), 0x414FA339u);
    /* piecewise equals whole, at every split (covers the 8-byte fast path) */
    for (size_t k = 0; k <= strlen(fox); k++)
        assert_int_equal(ag_crc32(ag_crc32(0, fox, k), fox + k, strlen(fox) - k), 0x414FA339u);
}

/* ---------------------------------------------------------- round trip */

static void test_round_trip(void **state)
{
    (void)state;
    char path[512];
    s_path(path, sizeof(path), "a.ckpt");
    ag_model_t *m = s_model();
    assert_int_equal(ag_model_reserve(m, 2, 8), 0);
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    ag_adamw_t *o = ag_adamw_create(m, &oc);
    /* take two optimizer steps so the moments are non-trivial */
    int32_t tok[16];
    for (int i = 0; i < 16; i++)
        tok[i] = (int32_t)(i * 37 % 256);
    float dlogprob[16]; /* cross-entropy: mean of -log p(target) */
    for (int i = 0; i < 16; i++)
        dlogprob[i] = -1.0f / 16.0f;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(ag_model_forward(m, 2, 8, tok, 0), 0);
        ag_model_zero_grad(m);
        assert_int_equal(ag_model_logprobs(m, tok, NULL, NULL, NULL), 0);
        assert_int_equal(ag_model_backward(m, dlogprob, NULL, NULL), 0);
        assert_int_equal(ag_adamw_step(o, m, NULL), 0);
    }
    char err[256];
    assert_int_equal(ag_ckpt_save(path, m, o, 1234, err, sizeof(err)), 0);

    const size_t n = ag_model_num_params(m);
    ag_ckpt_info_t info;
    assert_int_equal(ag_ckpt_read_info(path, &info, err, sizeof(err)), 0);
    assert_int_equal(info.step, 1234);
    assert_int_equal(info.has_optimizer, 1);
    assert_int_equal(info.optimizer_steps, 2);
    assert_int_equal(info.cfg.d_model, 32);
    assert_int_equal(info.cfg.ctx, 16);

    /* a fresh model and optimizer get exactly the same bits */
    ag_model_t *m2 = ag_ckpt_load(path, 1, &info, NULL, err, sizeof(err));
    assert_non_null(m2);
    assert_memory_equal(ag_model_params(m), ag_model_params(m2), n * sizeof(float));
    ag_adamw_t *o2 = ag_adamw_create(m2, &oc);
    assert_int_equal(ag_ckpt_load_into(path, m2, o2, NULL, err, sizeof(err)), 0);
    assert_memory_equal(ag_adamw_m(o), ag_adamw_m(o2), n * sizeof(float));
    assert_memory_equal(ag_adamw_v(o), ag_adamw_v(o2), n * sizeof(float));
    assert_int_equal(ag_adamw_steps(o2), 2);

    /* without optimizer state: the optimizer is left alone */
    char path2[512];
    s_path(path2, sizeof(path2), "b.ckpt");
    assert_int_equal(ag_ckpt_save(path2, m, NULL, 7, err, sizeof(err)), 0);
    ag_adamw_set_steps(o2, 99);
    assert_int_equal(ag_ckpt_load_into(path2, m2, o2, &info, err, sizeof(err)), 0);
    assert_int_equal(info.has_optimizer, 0);
    assert_int_equal(ag_adamw_steps(o2), 99);

    /* overwriting replaces atomically and leaves no temporary file behind */
    ag_model_params(m)[0] += 1.0f;
    assert_int_equal(ag_ckpt_save(path, m, NULL, 1235, err, sizeof(err)), 0);
    assert_int_equal(ag_ckpt_load_into(path, m2, NULL, &info, err, sizeof(err)), 0);
    assert_int_equal(info.step, 1235);
    assert_true(ag_model_params(m2)[0] == ag_model_params(m)[0]);
    DIR *d = opendir(s_dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            assert_null(strstr(e->d_name, ".tmp"));
            files++;
        }
    closedir(d);
    assert_int_equal(files, 2);

    ag_adamw_destroy(&o);
    ag_adamw_destroy(&o2);
    ag_model_destroy(&m);
    ag_model_destroy(&m2);
}

/* ------------------------------------------------------------- refusals */

static void s_expect_refused(const char *path, ag_model_t *m, int rc, const char *why)
{
    const size_t n = ag_model_num_params(m);
    float *before = malloc(n * sizeof(float));
    memcpy(before, ag_model_params(m), n * sizeof(float));
    char err[256] = "";
    assert_int_equal(ag_ckpt_load_into(path, m, NULL, NULL, err, sizeof(err)), rc);
    assert_non_null(strstr(err, why));
    assert_memory_equal(before, ag_model_params(m), n * sizeof(float));
    if (rc != -EINVAL) { /* a config mismatch only concerns load_into */
        int got = 0;
        assert_null(ag_ckpt_load(path, 1, NULL, &got, NULL, 0));
        assert_int_equal(got, rc);
    }
    free(before);
}

static void test_refuses_bad_files(void **state)
{
    (void)state;
    char good[512], bad[512];
    s_path(good, sizeof(good), "good.ckpt");
    s_path(bad, sizeof(bad), "bad.ckpt");
    ag_model_t *m = s_model();
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    ag_adamw_t *o = ag_adamw_create(m, &oc);
    assert_int_equal(ag_ckpt_save(good, m, o, 1, NULL, 0), 0);
    size_t n;
    unsigned char *img = s_slurp(good, &n);
    unsigned char *b = malloc(n + 8);
    /* the loader target: same config, different weights */
    ag_model_t *t = s_model();
    ag_model_params(t)[0] = 42.0f;

    /* missing */
    char err[256];
    s_path(bad, sizeof(bad), "missing.ckpt");
    assert_int_equal(ag_ckpt_load_into(bad, t, NULL, NULL, err, sizeof(err)), -ENOENT);
    s_path(bad, sizeof(bad), "bad.ckpt");

    /* truncated at many lengths, including inside the header and by one byte */
    const size_t cuts[] = {0, 1, 7, 100, 128, 131, 1000, n / 2, n - 5, n - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        s_spit(bad, img, cuts[i]);
        s_expect_refused(bad, t, -EBADMSG, cuts[i] < 132 ? "not a checkpoint" : "truncated");
    }
    /* trailing garbage */
    memcpy(b, img, n);
    memset(b + n, 0, 8);
    s_spit(bad, b, n + 8);
    s_expect_refused(bad, t, -EBADMSG, "trailing data");
    /* one flipped bit anywhere: header, table, weights, optimizer state, checksum */
    const size_t flips[] = {20, 130, 5000, n / 2, n - 100, n - 2};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(b, img, n);
        b[flips[i]] ^= 0x10;
        s_spit(bad, b, n);
        s_expect_refused(bad, t, -EBADMSG, "checksum mismatch");
    }
    /* a different file type */
    memcpy(b, img, n);
    memcpy(b, "GGUF\0\0\0\0", 8);
    s_spit(bad, b, n);
    s_expect_refused(bad, t, -EBADMSG, "bad magic");
    /* a future format version (with a valid checksum) */
    memcpy(b, img, n);
    s_put32(b + 8, 2);
    s_reseal(b, n);
    s_spit(bad, b, n);
    s_expect_refused(bad, t, -ENOTSUP, "version 2");
    /* valid checksum, inconsistent contents: a renamed tensor, a wrong shape,
     * a config that does not match the sizes, a misplaced section */
    struct {
        size_t at;
        uint32_t value;
        const char *why;
    } lies[] = {
        {128 + 80 * 3, 0x5858, "tensor table entry 3"}, /* name of entry 3 */
        {128 + 80 * 4 + 52, 7, "tensor table entry 4"}, /* shape of entry 4 */
        {20, 64, "does not match the config"},          /* d_model */
        {16, 0, "bad model config"},                    /* vocab 0 */
        {28, 5, "bad model config"},                    /* n_heads 5 */
        {72, 64, "offsets do not match"},               /* params offset */
        {44, 2, "unknown flags"},
    };
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        memcpy(b, img, n);
        s_put32(b + lies[i].at, lies[i].value);
        s_reseal(b, n);
        s_spit(bad, b, n);
        s_expect_refused(bad, t, -EBADMSG, lies[i].why);
    }
    /* a valid checkpoint of another model is refused by load_into only */
    ag_model_config_t c2 = *ag_model_config(m);
    c2.n_layers = 1;
    ag_model_t *other = ag_model_create(&c2, 1, 1);
    assert_int_equal(ag_ckpt_save(bad, other, NULL, 1, NULL, 0), 0);
    s_expect_refused(bad, t, -EINVAL, "differs from the model");
    ag_model_destroy(&other);
    /* the target still holds its own weights */
    assert_true(ag_model_params(t)[0] == 42.0f);

    free(img);
    free(b);
    ag_adamw_destroy(&o);
    ag_model_destroy(&m);
    ag_model_destroy(&t);
}

static void test_save_errors(void **state)
{
    (void)state;
    ag_model_t *m = s_model();
    char err[256] = "";
    assert_int_equal(ag_ckpt_save("/nonexistent-dir/x.ckpt", m, NULL, 0, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "cannot create"));
    ag_model_config_t c2 = *ag_model_config(m);
    c2.d_model = 16;
    ag_model_t *other = ag_model_create(&c2, 1, 1);
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    ag_adamw_t *o = ag_adamw_create(other, &oc);
    char path[512];
    s_path(path, sizeof(path), "x.ckpt");
    assert_int_equal(ag_ckpt_save(path, m, o, 0, NULL, 0), -EINVAL);
    ag_adamw_destroy(&o);
    ag_model_destroy(&other);
    ag_model_destroy(&m);
}

/* Other tools can read the format: the standard-library reader in
 * examples/python accepts a checkpoint (verifying its CRC with zlib.crc32)
 * and refuses a corrupt one. Runs when meson test provides the source
 * directory and python3 exists; skipped otherwise. */
static void test_python_reader(void **state)
{
    (void)state;
    const char *src = getenv("AGORA_SOURCE_DIR");
    if (!src || !*src || strchr(src, '\'') || system("python3 -c '' >/dev/null 2>&1") != 0)
        skip();
    char good[512], bad[512], cmd[2048];
    s_path(good, sizeof(good), "py.ckpt");
    s_path(bad, sizeof(bad), "py-bad.ckpt");
    ag_model_t *m = s_model();
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    ag_adamw_t *o = ag_adamw_create(m, &oc);
    assert_int_equal(ag_ckpt_save(good, m, o, 5, NULL, 0), 0);
    size_t n;
    unsigned char *img = s_slurp(good, &n);
    img[n / 3] ^= 1;
    s_spit(bad, img, n);
    snprintf(cmd, sizeof(cmd),
             "python3 '%s/examples/python/read_checkpoint.py' --stats '%s' >/dev/null", src, good);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             "python3 '%s/examples/python/read_checkpoint.py' '%s' >/dev/null 2>&1", src, bad);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    free(img);
    ag_adamw_destroy(&o);
    ag_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refuses_bad_files),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_python_reader),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
