/*
 * test_matchup.c - the launcher's evaluation seats (deploy/local/matchup.h):
 * what [eval] names, the default taken from [actor], lists of opponents,
 * the names of matchups, and run files that must be refused; and the
 * comma-separated lists they are written in (ag_runfile_split), which
 * run.env uses too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "matchup.h"
#include "runfile.h"

static ag_matchup_t s_m[AG_MATCHUP_MAX];
static char s_err[512];

/* Plans the matchups of a game of `players` seats for the run file text. */
static int s_plan(const char *text, int players, size_t *n)
{
    ag_runfile_t *rf = ag_runfile_create();
    assert_non_null(rf);
    assert_int_equal(ag_runfile_load_string(rf, text, "test"), 0);
    s_err[0] = '\0';
    int rc = ag_matchup_plan(rf, players, s_m, AG_MATCHUP_MAX, n, s_err, sizeof s_err);
    ag_runfile_destroy(&rf);
    return rc;
}

static void test_default_is_what_actor_trains(void **state)
{
    (void)state;
    size_t n;
    /* self-play: self vs self */
    assert_int_equal(s_plan("[actor]\nseat0 = self\nseat1 = self\n", 2, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(s_m[0].seats[0], "self");
    assert_string_equal(s_m[0].seats[1], "self");
    assert_string_equal(s_m[0].name, "self_vs_self");
    /* no [actor] seats at all: the actor's default, self everywhere */
    assert_int_equal(s_plan("[game]\nname = x\n", 3, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(s_m[0].n_seats, 3);
    assert_string_equal(s_m[0].name, "self_vs_self_vs_self");
    /* trained against a bot: evaluated against that bot */
    assert_int_equal(s_plan("[actor]\nseat0 = self\nseat1 = bot:tough\n", 2, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(s_m[0].seats[1], "bot:tough");
    assert_string_equal(s_m[0].name, "self_vs_bot_tough");
    /* a league seat is played by the policy itself */
    assert_int_equal(s_plan("[actor]\nseat0 = league\nseat1 = self\n", 2, &n), 0);
    assert_string_equal(s_m[0].seats[0], "self");
    /* seats beyond the game's are the actor's business, not the evaluation's */
    assert_int_equal(s_plan("[actor]\nseat2 = bot:x\n", 2, &n), 0);
    assert_int_equal(n, 1);
}

static void test_eval_names_seats(void **state)
{
    (void)state;
    size_t n;
    /* [eval] wins over [actor]; the seats it leaves out are self */
    assert_int_equal(
        s_plan("[actor]\nseat0 = self\nseat1 = bot:a\n[eval]\nseat1 = bot:tough\n", 2, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(s_m[0].seats[0], "self");
    assert_string_equal(s_m[0].seats[1], "bot:tough");
    assert_int_equal(s_plan("[actor]\nseat1 = bot:a\n[eval]\nseat0 = bot:b\n", 2, &n), 0);
    assert_string_equal(s_m[0].seats[0], "bot:b");
    assert_string_equal(s_m[0].seats[1], "self");
    /* a checkpoint: named by its file, unique names when two files share one */
    assert_int_equal(
        s_plan("[eval]\nseat1 = runs/a/policy.ckpt, runs/b/policy.ckpt, x-y.bin\n", 2, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(s_m[0].seats[1], "runs/a/policy.ckpt");
    assert_string_equal(s_m[0].name, "self_vs_ckpt_policy");
    assert_string_equal(s_m[1].name, "self_vs_ckpt_policy_2");
    assert_string_equal(s_m[2].name, "self_vs_ckpt_x_y_bin");
}

static void test_lists_give_every_combination(void **state)
{
    (void)state;
    size_t n;
    /* bot:p vs bot:h and bot:p vs bot:l have no self seat: refused */
    assert_int_equal(s_plan("[eval]\nseat0 = self, bot:p\nseat1 = bot:h, self\n", 2, &n), -EINVAL);
    assert_non_null(strstr(s_err, "bot_p_vs_bot_h"));
    assert_int_equal(s_plan("[eval]\nseat0 = self, bot:p\nseat1 = self, bot:h, bot:l\n", 2, &n),
                     -EINVAL);
    assert_int_equal(s_plan("[eval]\nseat0 = self\nseat1 = bot:h , bot:l,self\n", 2, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(s_m[0].name, "self_vs_bot_h");
    assert_string_equal(s_m[1].name, "self_vs_bot_l");
    assert_string_equal(s_m[2].name, "self_vs_self");
    /* seat 0's list varies slowest */
    assert_int_equal(
        s_plan("[eval]\nseat0 = self, bot:a\nseat1 = self, bot:b\nseat2 = self\n", 3, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(s_m[0].name, "self_vs_self_vs_self");
    assert_string_equal(s_m[1].name, "self_vs_bot_b_vs_self");
    assert_string_equal(s_m[2].name, "bot_a_vs_self_vs_self");
    assert_string_equal(s_m[3].name, "bot_a_vs_bot_b_vs_self");
}

static void test_refused(void **state)
{
    (void)state;
    size_t n;
    /* a seat the game does not have */
    assert_int_equal(s_plan("[eval]\nseat2 = bot:x\n", 2, &n), -EINVAL);
    assert_non_null(strstr(s_err, "eval.seat2"));
    /* no seat for the evaluated policy */
    assert_int_equal(s_plan("[eval]\nseat0 = bot:a\nseat1 = bot:b\n", 2, &n), -EINVAL);
    assert_int_equal(s_plan("[actor]\nseat0 = bot:a\nseat1 = bot:b\n", 2, &n), -EINVAL);
    /* empty players and names */
    assert_int_equal(s_plan("[eval]\nseat1 = bot:a,,bot:b\n", 2, &n), -EINVAL);
    assert_int_equal(s_plan("[eval]\nseat1 = bot:a,\n", 2, &n), -EINVAL);
    assert_int_equal(s_plan("[eval]\nseat1 = bot:\n", 2, &n), -EINVAL);
    /* league exists only while training */
    assert_int_equal(s_plan("[eval]\nseat1 = league\n", 2, &n), -EINVAL);
    assert_non_null(strstr(s_err, "league"));
    /* more matchups than the launcher plays */
    assert_int_equal(s_plan("[eval]\nseat0 = self,self,self,self,self\n"
                            "seat1 = self,self,self,self\n",
                            2, &n),
                     -EINVAL);
    /* a game the launcher cannot seat */
    assert_int_equal(s_plan("[eval]\n", 0, &n), -EINVAL);
    assert_int_equal(s_plan("[eval]\n", AG_MATCHUP_MAX_SEATS + 1, &n), -EINVAL);
}

static void test_split(void **state)
{
    (void)state;
    char items[3][8];
    assert_int_equal(ag_runfile_split("", items[0], 8, 3), 0);
    assert_int_equal(ag_runfile_split(" a ,\tb c,d", items[0], 8, 3), 3);
    assert_string_equal(items[0], "a");
    assert_string_equal(items[1], "b c");
    assert_string_equal(items[2], "d");
    assert_int_equal(ag_runfile_split("a,b,c,d", items[0], 8, 3), -E2BIG);
    assert_int_equal(ag_runfile_split("a,,b", items[0], 8, 3), -EINVAL);
    assert_int_equal(ag_runfile_split("a, ", items[0], 8, 3), -EINVAL);
    assert_int_equal(ag_runfile_split("1234567", items[0], 8, 3), 1);
    assert_int_equal(ag_runfile_split("12345678", items[0], 8, 3), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_default_is_what_actor_trains),
        cmocka_unit_test(test_eval_names_seats),
        cmocka_unit_test(test_lists_give_every_combination),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
