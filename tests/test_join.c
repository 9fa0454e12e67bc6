/*
 * test_join.c - the endpoint a server registers with the learner
 * (ag_join_advertised, common/net/join.h): the bound port with the
 * advertised host, the bound address, or the host name for a wildcard.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "join.h"

static void test_advertised(void **state)
{
    char out[300], host[256] = "", want[300];
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_int_equal(ag_join_advertised("tcp://0.0.0.0:5570", "node7", out, sizeof out), 0);
    assert_string_equal(out, "tcp://node7:5570");
    assert_int_equal(ag_join_advertised("tcp://127.0.0.1:41234", "", out, sizeof out), 0);
    assert_string_equal(out, "tcp://127.0.0.1:41234");
    /* a wildcard is no address a peer can use: the host name instead */
    snprintf(want, sizeof want, "tcp://%s:5570", host);
    assert_int_equal(ag_join_advertised("tcp://0.0.0.0:5570", NULL, out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_equal(ag_join_advertised("tcp://*:5570", "", out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_equal(ag_join_advertised("tcp://[::]:5570", "", out, sizeof out), 0);
    assert_string_equal(out, want);
    /* an IPv6 address is bracketed once */
    assert_int_equal(ag_join_advertised("tcp://[::]:5570", "fd00::7", out, sizeof out), 0);
    assert_string_equal(out, "tcp://[fd00::7]:5570");
    assert_int_equal(ag_join_advertised("tcp://[::1]:5570", "", out, sizeof out), 0);
    assert_string_equal(out, "tcp://[::1]:5570");
    /* other transports are what they are */
    assert_int_equal(ag_join_advertised("ipc:///tmp/env.sock", "node7", out, sizeof out), 0);
    assert_string_equal(out, "ipc:///tmp/env.sock");
    /* no port, or no room */
    assert_int_not_equal(ag_join_advertised("tcp://node7", "", out, sizeof out), 0);
    assert_int_not_equal(ag_join_advertised("tcp://node7:", "", out, sizeof out), 0);
    assert_int_not_equal(ag_join_advertised("tcp://0.0.0.0:5570", "node7", out, 12), 0);
}

static void test_default_name(void **state)
{
    char name[AG_JOIN_NAME_MAX + 1], want[64];
    ag_join_default_name(name, sizeof name);
    snprintf(want, sizeof want, "-%d", (int)getpid());
    assert_true(strlen(name) > strlen(want));
    assert_string_equal(name + strlen(name) - strlen(want), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_advertised),
        cmocka_unit_test(test_default_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
