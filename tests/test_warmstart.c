/*
 * test_warmstart.c - the warm start: which tokens its loss counts
 * (warmstart.observation_weight), and JSONL transcripts that do not fit the
 * context: an error naming the game, the transcript and the sizes, and a
 * failed load when nothing fits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model.h"
#include "rng.h"
#include "seq.h"
#include "warmstart.h"

typedef struct epoch_seen {
    double ce, tokens;
} epoch_seen_t;

static int s_on_epoch(void *arg, int epoch, double ce, double tokens, double seconds)
{
    (void)epoch;
    (void)seconds;
    epoch_seen_t *e = arg;
    e->ce = ce;
    e->tokens = tokens;
    return 0;
}

/* BOS "abc" "xy" EOT: the loss predicts a b c x y EOT; x, y and EOT are the action's
 * (weight 1), a, b and c the observation's (weight observation_weight). */
static void test_observation_weight(void **state)
{
    (void)state;
    ag_model_config_t mc;
    ag_model_config_default(&mc);
    mc.d_model = 16;
    mc.n_layers = 1;
    mc.n_heads = 2;
    mc.ctx = 16;
    ag_seq_t seq;
    ag_seq_init(&seq);
    assert_int_equal(ag_seq_begin(&seq), 0);
    assert_int_equal(ag_seq_turn_text(&seq, "abc", 3, "xy", 2, 0), 0);
    const float weights[] = {0.0f, 0.5f, 1.0f};
    const double expect[] = {3.0, 4.5, 6.0};
    double ce[3];
    for (int i = 0; i < 3; i++) {
        ag_model_t *m = ag_model_create(&mc, 7, 1);
        assert_non_null(m);
        ag_warmstart_config_t c = {.epochs = 1, .lr = 0.0f, .batch = 1, .obs_weight = weights[i]};
        ag_rng_t rng;
        ag_rng_seed(&rng, 1);
        epoch_seen_t seen = {0};
        assert_int_equal(ag_warmstart_train(m, &seq, 1, &c, &rng, NULL, s_on_epoch, &seen), 0);
        assert_float_equal(seen.tokens, expect[i], 1e-9);
        ce[i] = seen.ce;
        ag_model_destroy(&m);
    }
    /* the same untrained model: the mean over more tokens is a different mean */
    assert_true(ce[0] != ce[2]);
    ag_seq_finish(&seq);
}

/* Loads path with model.ctx ctx, stderr captured into log (cap bytes). */
static int s_load_logged(const char *path, int ctx, size_t *n, size_t *dropped, char *log,
                         size_t cap)
{
    char logpath[256];
    snprintf(logpath, sizeof logpath, "%s.log", path);
    fflush(stderr);
    const int saved = dup(2), fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    ag_warmstart_config_t c = {.file = path, .game = "debate"};
    ag_seq_t *seqs = NULL;
    const int rc = ag_warmstart_load(&c, ctx, &seqs, n, dropped, NULL, 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ag_warmstart_free(seqs, *n);
    FILE *f = fopen(logpath, "r");
    assert_non_null(f);
    const size_t got = fread(log, 1, cap - 1, f);
    log[got] = '\0';
    fclose(f);
    unlink(logpath);
    return rc;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A seat of 1 + 40 + 1 + 1 = 43 tokens against model.ctx 32, beside a
 * short game: the long one is an error naming it, the short one is kept. */
static void test_transcript_too_long(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    char path[256], log[4096];
    snprintf(path, sizeof path, "%s/agora-ws-%d.jsonl", t && *t ? t : "/tmp", (int)getpid());
    s_write(path, "{\"game\":\"debate\",\"turns\":[{\"player\":0,\"observation\":\"q\","
                  "\"action\":\"a\"}]}\n"
                  "{\"game\":\"critique\",\"turns\":[{\"player\":0,\"observation\":"
                  "\"0123456789012345678901234567890123456789\",\"action\":\"x\"}]}\n");
    size_t n = 0, dropped = 0;
    assert_int_equal(s_load_logged(path, 32, &n, &dropped, log, sizeof log), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dropped, 1);
    char where[300];
    snprintf(where, sizeof where, "%s:2", path);
    assert_non_null(strstr(log, where));      /* which transcript */
    assert_non_null(strstr(log, "critique")); /* its game */
    assert_non_null(strstr(log, "43 tokens"));
    assert_non_null(strstr(log, "model.ctx = 32"));
    /* only the long one: nothing to train on is a failure, not a silent skip */
    s_write(path, "{\"game\":\"critique\",\"turns\":[{\"player\":0,\"observation\":"
                  "\"0123456789012345678901234567890123456789\",\"action\":\"x\"}]}\n");
    assert_int_equal(s_load_logged(path, 32, &n, &dropped, log, sizeof log), -EINVAL);
    assert_int_equal(n, 0);
    assert_non_null(strstr(log, "nothing to train on"));
    /* the same with room for it */
    assert_int_equal(s_load_logged(path, 64, &n, &dropped, log, sizeof log), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dropped, 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observation_weight),
        cmocka_unit_test(test_transcript_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
