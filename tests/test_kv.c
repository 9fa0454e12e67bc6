/*
 * test_kv.c - the option-list parser of common/net/kv.c: spaces, empty
 * items, errors, bounds, and merging a list over another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kv.h"

static void test_parse(void **state)
{
    char buf[128];
    ag_kv_t kv[4];
    assert_int_equal(ag_kv_parse(" k = 8 ,\tinvalid_action=penalize,, rounds=2 ,", buf, sizeof buf,
                                 kv, 4),
                     3);
    assert_string_equal(kv[0].key, "k");
    assert_string_equal(kv[0].value, "8");
    assert_string_equal(kv[1].key, "invalid_action");
    assert_string_equal(kv[1].value, "penalize");
    assert_string_equal(kv[2].key, "rounds");
    assert_string_equal(kv[2].value, "2");
    assert_int_equal(ag_kv_parse("", buf, sizeof buf, kv, 4), 0);
    assert_int_equal(ag_kv_parse(" , ,", buf, sizeof buf, kv, 4), 0);
    assert_int_equal(ag_kv_parse("a=", buf, sizeof buf, kv, 4), 1);
    assert_string_equal(kv[0].value, "");
    /* A value may hold '=' (only the first one separates). */
    assert_int_equal(ag_kv_parse("judge=reward:a=b", buf, sizeof buf, kv, 4), 1);
    assert_string_equal(kv[0].value, "reward:a=b");
}

static void test_parse_errors(void **state)
{
    char buf[32];
    ag_kv_t kv[2];
    assert_int_equal(ag_kv_parse("k", buf, sizeof buf, kv, 2), -EINVAL);
    assert_int_equal(ag_kv_parse("=3", buf, sizeof buf, kv, 2), -EINVAL);
    assert_int_equal(ag_kv_parse(" =3", buf, sizeof buf, kv, 2), -EINVAL);
    assert_int_equal(ag_kv_parse("k=1,k=2", buf, sizeof buf, kv, 2), -EINVAL);
    assert_int_equal(ag_kv_parse("k = 1, k=2", buf, sizeof buf, kv, 2), -EINVAL);
    assert_int_equal(ag_kv_parse("a=1,b=2,c=3", buf, sizeof buf, kv, 2), -E2BIG);
    assert_int_equal(ag_kv_parse("a=0123456789012345678901234567890123", buf, sizeof buf, kv, 2),
                     -E2BIG);
}

static void test_merge(void **state)
{
    char out[64];
    assert_int_equal(ag_kv_merge("k=6,solver_error=0.05,rounds=2", "solver_error = 0.2, x=1", out,
                                 sizeof out),
                     0);
    assert_string_equal(out, "k=6,rounds=2,solver_error=0.2,x=1");
    assert_int_equal(ag_kv_merge("k=6", "", out, sizeof out), 0);
    assert_string_equal(out, "k=6");
    assert_int_equal(ag_kv_merge("", "", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(ag_kv_merge("k=6", "oops", out, sizeof out), -EINVAL);
    assert_int_equal(ag_kv_merge("k=6,k=7", "", out, sizeof out), -EINVAL);
    assert_int_equal(ag_kv_merge("k=6,rounds=2", "", out, 8), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
