/*
 * test_text.c - the text builder games write with (env_server/text.h): a
 * fixed buffer refuses what does not fit and keeps the text it had, a
 * growing one moves to the heap and holds every byte up to its limit, and a
 * failure is sticky so a game can append freely and be checked once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text.h"

static void test_fixed_refuses_instead_of_cutting(void **state)
{
    (void)state;
    char buf[8];
    ag_text_t t = ag_text_init(buf, sizeof buf);
    ag_text_str(&t, "abc");
    ag_text_int(&t, -42);
    assert_string_equal(buf, "abc-42");
    assert_int_equal(t.err, 0);
    ag_text_str(&t, "xy"); /* 8 bytes with the NUL: one too many */
    assert_int_equal(t.err, -E2BIG);
    assert_string_equal(buf, "abc-42");
    assert_int_equal(t.len, 6);
    ag_text_str(&t, "z"); /* would fit, but the text already failed */
    assert_string_equal(buf, "abc-42");
    ag_text_clear(&t);
    ag_text_str(&t, "1234567");
    assert_int_equal(t.err, 0);
    assert_string_equal(buf, "1234567");
}

static void test_growing_keeps_every_byte(void **state)
{
    (void)state;
    char first[16];
    ag_text_t t;
    ag_text_init_growing(&t, first, sizeof first, 1 << 20);
    ag_text_str(&t, "short");
    assert_ptr_equal(t.buf, first); /* a short text allocates nothing */
    assert_null(t.heap);
    for (int i = 0; i < 100000; i++)
        ag_text_int(&t, i % 10);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.len, 5 + 100000);
    assert_non_null(t.heap);
    assert_memory_equal(t.buf, "short0123456789", 15);
    for (size_t i = 5; i < t.len; i++)
        assert_int_equal(t.buf[i], '0' + (int)((i - 5) % 10));
    assert_int_equal(t.buf[t.len], '\0');
    /* clearing keeps the storage: the next text of the same size reallocates nothing */
    char *heap = t.heap;
    ag_text_clear(&t);
    for (int i = 0; i < 100000; i++)
        ag_text_mem(&t, "x", 1);
    assert_ptr_equal(t.heap, heap);
    ag_text_free(&t);
}

static void test_growing_stops_at_its_limit(void **state)
{
    (void)state;
    char first[4];
    ag_text_t t;
    ag_text_init_growing(&t, first, sizeof first, 1000);
    char chunk[300];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 3; i++)
        ag_text_mem(&t, chunk, sizeof chunk);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.len, 900);
    ag_text_mem(&t, chunk, 101);
    assert_int_equal(t.err, -E2BIG);
    assert_int_equal(t.len, 900);
    assert_int_equal(strlen(t.buf), 900);
    ag_text_clear(&t);
    ag_text_mem(&t, chunk, 100);
    ag_text_mem(&t, chunk, 300);
    ag_text_mem(&t, chunk, 300);
    ag_text_mem(&t, chunk, 300); /* exactly the limit */
    assert_int_equal(t.err, 0);
    assert_int_equal(t.len, 1000);
    ag_text_free(&t);
}

static void test_printf_and_chain(void **state)
{
    (void)state;
    char buf[64];
    ag_text_t t = ag_text_init(buf, sizeof buf);
    ag_text_printf(&t, "%.9g|", 0.1f);
    const uint8_t digits[4] = {0, 0, 6, 5};
    ag_text_chain(&t, digits, 4);
    assert_string_equal(buf, "0.100000001|0 0 6 5");
    char big[300];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ag_text_t g;
    char first[8];
    ag_text_init_growing(&g, first, sizeof first, 4096);
    ag_text_printf(&g, "%s", big); /* over what one printf may write: an error, not a cut */
    assert_int_equal(g.err, -E2BIG);
    assert_int_equal(g.len, 0);
    ag_text_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_refuses_instead_of_cutting),
        cmocka_unit_test(test_growing_keeps_every_byte),
        cmocka_unit_test(test_growing_stops_at_its_limit),
        cmocka_unit_test(test_printf_and_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
