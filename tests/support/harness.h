/*
 * harness - what the integration tests need from the machine they run on:
 * the monotonic clock (clock.h, re-exported), loopback endpoints nobody listens on, child
 * processes run to their end (stdout captured) or alongside the test's own
 * work, scratch directories, and the numbers of a tool's one-line JSON
 * report.
 *
 * Nothing here asserts: functions return errors and the tests check them,
 * so the helpers serve fixtures (which must not fail a test) as well.
 */
#ifndef AG_TEST_HARNESS_H
#define AG_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"

void harness_sleep_ms(int ms);

/*
 * "tcp://127.0.0.1:PORT" with a port nobody had bound a moment ago (another
 * process may take it before the caller binds it: servers started on it
 * are retried). Returns 0 or a negative errno.
 */
int harness_free_endpoint(char *out, size_t cap);

/*
 * Runs argv (argv[0] a path) to its end with its stdout in out,
 * NUL-terminated; output beyond cap - 1 bytes is read and dropped so the
 * child never blocks on a full pipe. Returns the exit status (0..255), or
 * -1 if it could not start or died from a signal.
 */
int harness_run_capture(char *const argv[], char *out, size_t cap);

/*
 * Runs argv (stdout and stderr inherited) and calls turn(arg) about every
 * millisecond until it exits; after timeout_ms it is killed. Returns its
 * exit status (0..255), or -1 if it could not start, died from a signal or
 * was killed.
 */
int harness_run_while(char *const argv[], int timeout_ms, void (*turn)(void *arg), void *arg);

/*
 * Makes a fresh directory $TMPDIR/NAME-XXXXXX (/tmp when TMPDIR is unset)
 * and writes its path to out. Returns 0, or a negative errno with out "".
 */
int harness_mkdtemp(char *out, size_t cap, const char *name);

/* Removes dir and everything below it (links are removed, not followed). */
void harness_rmtree(const char *dir);

/*
 * The whole file path in a new buffer (free() it) of *len bytes, followed by
 * a NUL so text can be read as a string; NULL when it cannot be read whole.
 */
uint8_t *harness_read_file(const char *path, size_t *len);

/* Writes len bytes to path (created or truncated). Returns 0 or -errno. */
int harness_write_file(const char *path, const void *data, size_t len);

/*
 * The number after "key": in a one-line JSON object (NAN for null).
 * Returns 0, or -ENOENT when the key is not there.
 */
int harness_json_num(const char *json, const char *key, double *out);

#endif
