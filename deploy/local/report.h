/*
 * report.h - what a run leaves behind besides the learner's own files: the
 * reading of the learner's metrics.jsonl, summary.json, and curves.png drawn
 * by gnuplot from a table converted out of the JSONL.
 *
 * metrics.jsonl is written by another process that may still be appending to
 * it, or may have been killed mid-line: a line that does not parse as a JSON
 * object is skipped (and counted), never fatal.
 */
#ifndef AG_REPORT_H
#define AG_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Every record of a metrics.jsonl file. records: a JSON array of objects
 * (new reference), or NULL when the file cannot be read. *bad_lines (may be
 * NULL) counts lines that were not JSON objects.
 */
json_t *ag_report_read_metrics(const char *path, size_t *bad_lines);

/* The last record whose "phase" is phase (any phase when NULL): borrowed from records, or NULL. */
json_t *ag_report_last_record(json_t *records, const char *phase);

/*
 * The last complete line of path parsed as a JSON object (new reference),
 * reading only the file's tail, for the live progress line. NULL if none.
 */
json_t *ag_report_tail_record(const char *path);

/*
 * A number in record under name, looked up as a top-level key or as a key of
 * a nested object one level down ("accuracy" also finds
 * {"game":{"accuracy":...}}). Returns true and *out when found.
 */
bool ag_report_number(json_t *record, const char *name, double *out);

/*
 * Writes json atomically to path (temp file, fsync, rename), indented.
 * Returns 0 or -1 after logging why.
 */
int ag_report_write_json(const char *path, json_t *json);

/*
 * Converts the "ppo" records to a whitespace table dir/curves.dat and writes
 * the gnuplot script dir/curves.gp that draws dir/curves.png: the metrics
 * the game declares, by name (game, NULL-terminated; with has_headline the
 * first is the game's headline and gets a panel of its own, the others share
 * one), then reward, KL, entropy, value loss and throughput, each panel only
 * if the learner reported it. Returns the number of panels (0: nothing to
 * draw) or -1 on an I/O error.
 */
int ag_report_write_plot(const char *dir, json_t *records, bool has_headline,
                         const char *const *game);

#endif
