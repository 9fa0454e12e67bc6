/*
 * test_task.c - the chain-arithmetic task library: generation, rendering,
 * true chains, step checks and the parsers for untrusted chain and
 * step-number text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "task.h"

/* The worked example of the docs: 7 +3 *2 -4 +9 *3 -1 +5 *7. */
static ag_task_t example_task(void)
{
    ag_task_t t = {.k = 8, .x0 = 7};
    const char ops[] = "+*-+*-+*";
    const uint8_t args[] = {3, 2, 4, 9, 3, 1, 5, 7};
    for (int i = 0; i < 8; i++) {
        t.op[i] = ops[i];
        t.arg[i] = args[i];
    }
    return t;
}

static void test_apply(void **state)
{
    (void)state;
    assert_int_equal(ag_task_apply('+', 3, 7), 0);
    assert_int_equal(ag_task_apply('-', 4, 0), 6);
    assert_int_equal(ag_task_apply('-', 0, 0), 0);
    assert_int_equal(ag_task_apply('*', 7, 9), 3);
    assert_int_equal(ag_task_apply('*', 0, 9), 0);
    for (int x = 0; x < 10; x++)
        for (int d = 0; d < 10; d++) {
            assert_int_equal(ag_task_apply('+', (uint8_t)d, (uint8_t)x), (x + d) % 10);
            assert_int_equal(ag_task_apply('-', (uint8_t)d, (uint8_t)x), (x - d + 10) % 10);
            assert_int_equal(ag_task_apply('*', (uint8_t)d, (uint8_t)x), (x * d) % 10);
        }
}

static void test_render_and_chain(void **state)
{
    (void)state;
    ag_task_t t = example_task();
    char buf[AG_TASK_TEXT_CAP];
    assert_int_equal(ag_task_render(&t, buf, sizeof buf), 25);
    assert_string_equal(buf, "7 +3 *2 -4 +9 *3 -1 +5 *7");
    assert_int_equal(ag_task_render(&t, buf, 25), -1);

    uint8_t chain[AG_TASK_MAX_K];
    ag_task_chain(&t, chain);
    char text[AG_CHAIN_TEXT_CAP];
    assert_int_equal(ag_chain_render(chain, 8, text, sizeof text), 15);
    assert_string_equal(text, "0 0 6 5 5 4 9 3");
    assert_int_equal(ag_task_answer(&t), 3);
    assert_int_equal(ag_task_first_wrong(&t, chain), 0);
}

static void test_step_checks(void **state)
{
    (void)state;
    ag_task_t t = example_task();
    /* The docs' false chain: step 5 is wrong (5*3 = 5, not 8), later steps follow from 8. */
    const uint8_t liar[8] = {0, 0, 6, 5, 8, 7, 2, 4};
    for (int i = 1; i <= 8; i++)
        assert_int_equal(ag_task_step_ok(&t, liar, i), i != 5);
    assert_int_equal(ag_task_first_wrong(&t, liar), 5);
    assert_false(ag_task_step_ok(&t, liar, 0));
    assert_false(ag_task_step_ok(&t, liar, 9));

    /* Step 1 is judged from x0. */
    uint8_t bad1[8] = {1, 2, 8, 7, 1, 0, 5, 5};
    assert_false(ag_task_step_ok(&t, bad1, 1));
    assert_true(ag_task_step_ok(&t, bad1, 2));
    assert_int_equal(ag_task_first_wrong(&t, bad1), 1);
}

static void test_generate(void **state)
{
    (void)state;
    ag_rng_t a, b;
    ag_rng_seed(&a, 42);
    ag_rng_seed(&b, 42);
    int x0_seen[10] = {0}, op_seen[3] = {0}, arg_seen[10] = {0};
    for (int n = 0; n < 2000; n++) {
        int k = 2 + n % 31;
        ag_task_t t1, t2;
        ag_task_generate(&t1, &a, k);
        ag_task_generate(&t2, &b, k);
        assert_int_equal(t1.k, k);
        assert_int_equal(t1.x0, t2.x0);
        assert_memory_equal(t1.op, t2.op, (size_t)k);
        assert_memory_equal(t1.arg, t2.arg, (size_t)k);
        assert_true(t1.x0 < 10);
        x0_seen[t1.x0]++;
        for (int i = 0; i < k; i++) {
            assert_true(t1.arg[i] < 10);
            const char *p = strchr("+-*", t1.op[i]);
            assert_non_null(p);
            op_seen[p - "+-*"]++;
            arg_seen[t1.arg[i]]++;
        }
        char buf[AG_TASK_TEXT_CAP];
        assert_int_equal(ag_task_render(&t1, buf, sizeof buf), 1 + 3 * k);
        uint8_t chain[AG_TASK_MAX_K];
        ag_task_chain(&t1, chain);
        for (int i = 0; i < k; i++)
            assert_true(chain[i] < 10);
        assert_int_equal(chain[k - 1], ag_task_answer(&t1));
        assert_int_equal(ag_task_first_wrong(&t1, chain), 0);
    }
    for (int i = 0; i < 10; i++) {
        assert_true(x0_seen[i] > 120); /* expected 200 */
        assert_true(arg_seen[i] > 3000);
    }
    for (int i = 0; i < 3; i++)
        assert_true(op_seen[i] > 10000);
}

static int parse(const char *s, int n, uint8_t *out)
{
    return ag_chain_parse(s, strlen(s), n, out);
}

static void test_chain_parse(void **state)
{
    (void)state;
    uint8_t d[AG_TASK_MAX_K];
    assert_int_equal(parse("0 0 6 5", 4, d), 0);
    assert_memory_equal(d, ((uint8_t[]){0, 0, 6, 5}), 4);
    assert_int_equal(parse("   9   1 2\t3\r\n", 4, d), 0);
    assert_memory_equal(d, ((uint8_t[]){9, 1, 2, 3}), 4);
    assert_int_equal(parse("7", 1, d), 0);
    assert_int_equal(d[0], 7);

    /* Wrong length. */
    assert_int_equal(parse("1 2 3", 4, d), -1);
    assert_int_equal(parse("1 2 3 4 5", 4, d), -1);
    assert_int_equal(parse("", 4, d), -1);
    assert_int_equal(parse("    ", 4, d), -1);
    assert_int_equal(ag_chain_parse(NULL, 0, 1, d), -1);
    /* Letters, signs, punctuation. */
    assert_int_equal(parse("1 2 a 4", 4, d), -1);
    assert_int_equal(parse("1 2 3 4x", 4, d), -1);
    assert_int_equal(parse("1,2,3,4", 4, d), -1);
    assert_int_equal(parse("-1 2 3 4", 4, d), -1);
    assert_int_equal(parse("1 2 3 +4", 4, d), -1);
    /* Multi-digit numbers are not digits, however long ("overflow"). */
    assert_int_equal(parse("12 3 4", 3, d), -1);
    assert_int_equal(parse("12 3 4", 4, d), -1);
    assert_int_equal(parse("1 2 3 99999999999999999999999999", 4, d), -1);
    assert_int_equal(parse("1234", 4, d), -1);

    /* Embedded NULs, high bytes: the parser reads exactly len bytes. */
    assert_int_equal(ag_chain_parse("1 2\0 3 4", 8, 4, d), -1);
    assert_int_equal(ag_chain_parse("1 2 3 4\0", 8, 4, d), -1);
    assert_int_equal(ag_chain_parse("1 2 3 4 5", 7, 4, d), 0); /* stops at len */
    assert_memory_equal(d, ((uint8_t[]){1, 2, 3, 4}), 4);
    assert_int_equal(ag_chain_parse("1 2 \xff\xfe", 6, 4, d), -1);
    assert_int_equal(ag_chain_parse("\xc3\xa9 1 2 3", 9, 4, d), -1);

    /* Full length chains. */
    char buf[AG_CHAIN_TEXT_CAP];
    uint8_t src[AG_TASK_MAX_K];
    for (int i = 0; i < AG_TASK_MAX_K; i++)
        src[i] = (uint8_t)((i * 7) % 10);
    int len = ag_chain_render(src, AG_TASK_MAX_K, buf, sizeof buf);
    assert_int_equal(len, 2 * AG_TASK_MAX_K - 1);
    assert_int_equal(ag_chain_parse(buf, (size_t)len, AG_TASK_MAX_K, d), 0);
    assert_memory_equal(d, src, AG_TASK_MAX_K);
    assert_int_equal(ag_chain_parse(buf, (size_t)len, AG_TASK_MAX_K - 1, d), -1);
    assert_int_equal(ag_chain_render(src, AG_TASK_MAX_K, buf, sizeof buf - 1), -1);
}

static int pint(const char *s, int lo, int hi, int *out)
{
    return ag_parse_int(s, strlen(s), lo, hi, out);
}

static void test_parse_int(void **state)
{
    (void)state;
    int v = -1;
    assert_int_equal(pint("3", 1, 8, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(pint("  8 \n", 1, 8, &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(pint("007", 1, 8, &v), 0);
    assert_int_equal(v, 7);
    v = 42;
    assert_int_equal(pint("0", 1, 8, &v), -1);
    assert_int_equal(pint("9", 1, 8, &v), -1);
    assert_int_equal(pint("-1", 1, 8, &v), -1);
    assert_int_equal(pint("+1", 1, 8, &v), -1);
    assert_int_equal(pint("1 2", 1, 8, &v), -1);
    assert_int_equal(pint("1a", 1, 8, &v), -1);
    assert_int_equal(pint("", 1, 8, &v), -1);
    assert_int_equal(pint("   ", 1, 8, &v), -1);
    assert_int_equal(pint("99999999999999999999999999999999", 1, 8, &v), -1);
    assert_int_equal(pint("4294967299", 1, 8, &v), -1); /* 2^32 + 3 must not wrap to 3 */
    assert_int_equal(pint("2147483647", 1, 2147483647, &v), 0);
    assert_int_equal(v, 2147483647);
    assert_int_equal(pint("2147483648", 1, 2147483647, &v), -1);
    assert_int_equal(v, 2147483647);
    assert_int_equal(ag_parse_int("3\0", 2, 1, 8, &v), -1);
    assert_int_equal(ag_parse_int("\0"
                                  "3",
                                  2, 1, 8, &v),
                     -1);
    assert_int_equal(ag_parse_int("35", 1, 1, 8, &v), 0); /* only len bytes */
    assert_int_equal(v, 3);
    assert_int_equal(ag_parse_int(NULL, 0, 1, 8, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply),       cmocka_unit_test(test_render_and_chain),
        cmocka_unit_test(test_step_checks), cmocka_unit_test(test_generate),
        cmocka_unit_test(test_chain_parse), cmocka_unit_test(test_parse_int),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
