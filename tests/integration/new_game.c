/*
 * new_game.c - the "new game" walkthrough as a test: an agora-env built
 * from tests/games/count21.c alone (with the registry generator of
 * env_server/games/meson.build, no other change anywhere) passes every check
 * of the real agora-env-check, declares its metrics in Hello, and plays
 * over the protocol.
 *
 *   test_new_game AGORA_ENV_COUNT21 AGORA_ENV_CHECK
 */
#include <errno.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "env_client.h"
#include "server_proc.h"

extern char **environ;

static const char *s_server_exe, *s_check_exe;

/* The first observation's rules with target=9. */
static const char s_rules[] = "count21: add 1, 2 or 3 to the count; whoever reaches 9 wins";

typedef struct fixture {
    ag_server_proc_t srv;
    ag_env_client_t *cl;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || ag_server_proc_start(&f->srv, s_server_exe, NULL, 10000) < 0)
        return -1;
    f->cl = ag_env_client_create(f->srv.endpoint, 5000);
    *state = f;
    return f->cl ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ag_env_client_destroy(&f->cl);
    int status = ag_server_proc_stop(&f->srv, 10000);
    free(f);
    return status == 0 ? 0 : -1;
}

/* agora-env-check against the count21 server: every check passes (exit status 0). */
static void test_env_check_passes(void **state)
{
    fixture_t *f = *state;
    char *argv[] = {(char *)s_check_exe, f->srv.endpoint, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, s_check_exe, NULL, NULL, argv, environ), 0);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(ag_server_proc_alive(&f->srv));
}

static const Agora__V1__MetricSpec *find_metric(const Agora__V1__GameSpec *g, const char *name)
{
    for (size_t i = 0; i < g->n_metrics; i++)
        if (strcmp(g->metrics[i]->name, name) == 0)
            return g->metrics[i];
    fail_msg("Hello declares no metric %s", name);
    return NULL;
}

/* Hello lists count21 alone, with what the game file declares. */
static void test_hello_declares_the_game(void **state)
{
    fixture_t *f = *state;
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(f->cl, "new_game", &r), 0);
    assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_HELLO);
    assert_int_equal(r->hello->n_games, 1);
    const Agora__V1__GameSpec *g = r->hello->games[0];
    assert_string_equal(g->name, "count21");
    assert_int_equal(g->num_players, 2);
    assert_int_equal(g->n_bots, 2);
    assert_int_equal(g->n_options, 1);
    assert_string_equal(g->options[0]->name, "target");
    assert_int_equal(g->n_metrics, 3);
    const Agora__V1__MetricSpec *m = find_metric(g, "theory_winner_won");
    assert_true(m->headline);
    assert_int_equal(m->goal, AGORA__V1__METRIC_GOAL__METRIC_GOAL_MAXIMIZE);
    assert_string_equal(m->numerator, "");
    m = find_metric(g, "moves");
    assert_false(m->headline);
    assert_int_equal(m->goal, AGORA__V1__METRIC_GOAL__METRIC_GOAL_UNSPECIFIED);
    find_metric(g, "first_won");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* Start at count 0..3 and play, every move a 1, to the target: both seats' turns and the end. */
static void test_play_over_the_protocol(void **state)
{
    fixture_t *f = *state;
    Agora__V1__EnvReply *r = NULL;
    const char *const opts[1][2] = {{"target", "9"}};
    assert_int_equal(ag_env_client_reset(f->cl, "count21", 5, opts, 1, NULL, 0, &r), 0);
    assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_RESET);
    uint64_t ep = r->reset->episode_id;
    assert_int_equal(r->reset->to_act, 0);
    const char *obs = r->reset->observation;
    size_t rules_len = strlen(s_rules);
    assert_memory_equal(obs, s_rules, rules_len);
    assert_true(strncmp(obs + rules_len, "\ncount: ", 8) == 0);
    int count = atoi(obs + rules_len + 8);
    char first[128];
    snprintf(first, sizeof first, "%s\ncount: %d\nyou add: ", s_rules, count);
    assert_string_equal(obs, first);
    assert_in_range(count, 0, 3);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* a move out of range changes nothing */
    assert_int_equal(ag_env_client_step(f->cl, ep, 0, "4", &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    uint32_t seat = 0;
    int moves = 0;
    for (;;) {
        assert_int_equal(ag_env_client_step(f->cl, ep, seat, "1", &r), 0);
        assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_STEP);
        count++;
        moves++;
        if (r->step->terminated)
            break;
        char want[128];
        snprintf(want, sizeof want, "%s\nopponent added 1\ncount: %d\nyou add: ",
                 moves == 1 ? s_rules : "", count);
        seat = 1 - seat;
        assert_int_equal(r->step->to_act, seat);
        assert_string_equal(r->step->observation, want);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    assert_int_equal(count, 9);
    assert_true(r->step->rewards[seat] == 1.0f && r->step->rewards[1 - seat] == -1.0f);
    assert_int_equal(r->step->n_metrics, 3);
    for (size_t i = 0; i < r->step->n_metrics; i++)
        if (strcmp(r->step->metrics[i]->name, "moves") == 0)
            assert_true(r->step->metrics[i]->value == moves);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* this server hosts count21 and nothing else */
    assert_int_equal(ag_env_client_reset(f->cl, "debate", 1, NULL, 0, NULL, 0, &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s AGORA_ENV_COUNT21 AGORA_ENV_CHECK\n", argv[0]);
        return 2;
    }
    s_server_exe = argv[1];
    s_check_exe = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_declares_the_game),
        cmocka_unit_test(test_play_over_the_protocol),
        cmocka_unit_test(test_env_check_passes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
