/*
 * test_backoff.c - common/base/backoff.h: doubling, the cap, the jitter's
 * range, and the reset after a success.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

static void test_doubling_to_the_cap(void **state)
{
    ag_backoff_t b = ag_backoff_make(100, 5000);
    static const uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(ag_backoff_next_ms(&b, NULL), want[i]);
    assert_int_equal(b.attempts, 9);
    assert_int_equal(ag_backoff_pause_ms(&b, 2), 400);
    assert_int_equal(ag_backoff_pause_ms(&b, 1000), 5000); /* no overflow on long runs */
    ag_backoff_reset(&b);
    assert_int_equal(ag_backoff_next_ms(&b, NULL), 100);
    /* A cap below the first pause is raised to it. */
    ag_backoff_t c = ag_backoff_make(300, 10);
    assert_int_equal(ag_backoff_next_ms(&c, NULL), 300);
    assert_int_equal(ag_backoff_next_ms(&c, NULL), 300);
}

static void test_jitter_in_upper_half(void **state)
{
    ag_rng_t rng;
    ag_rng_seed(&rng, 7);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        ag_backoff_t b = ag_backoff_make(1000, 1000);
        uint64_t d = ag_backoff_next_ms(&b, &rng);
        assert_true(d >= 500 && d <= 1000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Spread over the half, not one value. */
    assert_true(lo < 520 && hi > 980);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling_to_the_cap),
        cmocka_unit_test(test_jitter_in_upper_half),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
