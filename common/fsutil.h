/*
 * fsutil.h - file-system helpers every agora process may need. For now one:
 * writing a small file (resume state, counters) atomically, so a crash at
 * any moment leaves either the old file or the new one, never a mix.
 */
#ifndef AG_FSUTIL_H
#define AG_FSUTIL_H

#include <stddef.h>

/* Writes len bytes to path atomically: PATH.tmp is written and fsync'd,
 * renamed over path, then the directory is fsync'd so the rename itself
 * survives a crash. Returns 0 or a negative errno (PATH.tmp is removed). */
int ag_write_atomic(const char *path, const void *data, size_t len);

#endif
