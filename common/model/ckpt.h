/*
 * ckpt.h - model checkpoints: the model config, the parameter slab and,
 * optionally, the AdamW state, in the format documented in
 * docs/checkpoint.md (magic, version, config, tensor table, little-endian
 * float32 data, CRC-32). Writes are atomic: a temporary file in the same
 * directory is written, fsync'ed and renamed over the target, then the
 * directory is fsync'ed, so a crash leaves either the old or the new file.
 * Reads verify everything (size, checksum, config, tensor table) before
 * touching a model: a truncated or corrupt file is refused with a reason.
 *
 * Errors are negative errno values: the open/read/write error itself, or
 * -EBADMSG (not a checkpoint, truncated, corrupt), -ENOTSUP (a format
 * version this code does not read), -EINVAL (bad arguments, or a checkpoint
 * whose config differs from the model it is loaded into). err, when not
 * NULL, receives a one-line reason.
 */
#ifndef AG_CKPT_H
#define AG_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"

#define AG_CKPT_MAGIC "AGORACKP"
#define AG_CKPT_VERSION 1

typedef struct ag_ckpt_info {
    ag_model_config_t cfg;
    uint64_t step; /* caller's step / policy version, stored verbatim */
    int has_optimizer;
    uint64_t optimizer_steps; /* AdamW updates taken, when has_optimizer */
    uint64_t file_size;
} ag_ckpt_info_t;

/* Writes m's parameters (and opt's state if opt is not NULL) to path. */
int ag_ckpt_save(const char *path, const ag_model_t *m, const ag_adamw_t *opt, uint64_t step,
                 char *err, size_t errlen);

/* Validates the whole file and describes it. */
int ag_ckpt_read_info(const char *path, ag_ckpt_info_t *info, char *err, size_t errlen);

/* Loads into an existing model with the same config. If opt is not NULL and
 * the file has an optimizer section, opt's state is restored; without one,
 * opt is left as it was (info->has_optimizer tells). info may be NULL. */
int ag_ckpt_load_into(const char *path, ag_model_t *m, ag_adamw_t *opt, ag_ckpt_info_t *info,
                      char *err, size_t errlen);

/* Creates a model with the file's config (threads as in ag_model_create) and
 * loads it. NULL on error, with the negative errno in *rc if rc is not NULL. */
ag_model_t *ag_ckpt_load(const char *path, int threads, ag_ckpt_info_t *info, int *rc, char *err,
                         size_t errlen);

#endif
