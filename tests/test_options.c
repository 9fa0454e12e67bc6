/*
 * test_options.c - the game-option lists of run files: parsing "K=V,K=V" and
 * laying warmstart.options over game.options for the warm start's demos.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "warmstart.h"

static void test_parse(void **state)
{
    (void)state;
    char buf[64];
    const char *kv[4][2];
    assert_int_equal(ag_options_parse("k=6, rounds=2,,", buf, sizeof buf, kv, 4), 2);
    assert_string_equal(kv[0][0], "k");
    assert_string_equal(kv[0][1], "6");
    assert_string_equal(kv[1][0], "rounds");
    assert_string_equal(kv[1][1], "2");
    assert_int_equal(ag_options_parse("", buf, sizeof buf, kv, 4), 0);
    assert_int_equal(ag_options_parse("k", buf, sizeof buf, kv, 4), -EINVAL);
    assert_int_equal(ag_options_parse("=3", buf, sizeof buf, kv, 4), -EINVAL);
    assert_int_equal(ag_options_parse("a=1,b=2,c=3,d=4,e=5", buf, sizeof buf, kv, 4), -EINVAL);
}

static void test_merge(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(
        ag_options_merge("k=6,solver_error=0.05,rounds=2", "solver_error=0.2,x=1", out, sizeof out),
        0);
    assert_string_equal(out, "k=6,rounds=2,solver_error=0.2,x=1");
    assert_int_equal(ag_options_merge("k=6", "", out, sizeof out), 0);
    assert_string_equal(out, "k=6");
    assert_int_equal(ag_options_merge("", "", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(ag_options_merge("k=6", "oops", out, sizeof out), -EINVAL);
    assert_int_equal(ag_options_merge("k=6,rounds=2", "", out, 8), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
