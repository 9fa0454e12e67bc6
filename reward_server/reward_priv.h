/*
 * reward_priv.h - the insides of agora-reward, shared by the files of the
 * service and nothing else: the stored label, the rings of labels, a hosted
 * model (who owns which field: the loop thread, the trainer, or both under
 * the service's lock), the service struct, and the functions one file calls
 * in another.
 *
 *   reward_service.c  lifecycle: model names, create, stop, destroy
 *   labels.c          stored labels (cut to what the model reads), the held-out
 *                     hash, rings of labels
 *   handlers.c        the ROUTER: Score, Label, Stats
 *   trainer.c         the training thread: minibatches, held-out evaluation,
 *                     reward.init
 *   labelfile.c       NAME.labels, the binary image of a model's labels
 *   resume.c          checkpoints (NAME.ckpt, NAME.labels, reward-state.json)
 *                     and --resume
 */
#ifndef AG_REWARD_PRIV_H
#define AG_REWARD_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch_ids.h"
#include "optim.h"
#include "reward_service.h"
#include "rm.h"
#include "rng.h"
#include "rpc.h"
#include "service.h"

#define PATH_LEN 4096
#define SCORE_CHUNK 32 /* sequences per scoring forward */
#define LOSS_WINDOW 32 /* steps in train_loss */
#define N_METRICS 12
#define STATE_FILE "reward-state.json"
#define STATE_FORMAT "agora-reward-state/1"

/* NAME.labels (labelfile.c): magic, then u32 count, records, u32 CRC-32 */
#define LABELS_MAGIC "agoraL1\n"
#define LABELS_MAGIC_LEN 8
#define RECORD_HEAD 11 /* set, kind, preferred, target, weight */

/* A stored label: the bytes the model reads of text 0, then of text 1. */
typedef struct slabel {
    uint64_t id;      /* held-out: consecutive per model */
    uint64_t eval_at; /* held-out: the model's update count when last evaluated */
    int8_t result;    /* held-out: -1 not evaluated yet, else 0/1 (got it right) */
    uint8_t kind;
    uint8_t preferred;
    float target;
    float weight;
    uint32_t len[2];
    uint8_t bytes[];
} slabel_t;

/* A ring of labels; pushing into a full ring drops the oldest. */
typedef struct ring {
    slabel_t **v;
    size_t cap, head, len;
} ring_t;

typedef struct rmodel {
    char name[AG_REWARD_MAX_NAME + 1];

    /* training thread (and create/destroy) */
    ag_rm_t *train;
    ag_adamw_t *opt;
    ag_rng_t rng;
    ag_rm_label_t *stage;   /* a minibatch or evaluation chunk */
    uint8_t *stage_bytes;   /* its transcripts */
    uint64_t *stage_ids;    /* its held-out ids */
    uint8_t *stage_correct; /* its evaluation results */
    size_t *pick;           /* sampled buffer positions */
    double last_eval;
    uint64_t eval_next; /* id of the held-out label the next evaluation starts at */

    /* loop thread */
    ag_rm_t *serve;
    uint64_t served; /* pub_serial of the weights in serve */
    float scores[AG_REWARD_MAX_ITEMS];
    ag_rm_text_t texts[AG_REWARD_MAX_ITEMS];

    /* shared, under the service's lock */
    float *published;
    uint64_t pub_serial;
    ring_t buf, held;
    uint64_t next_held_id;
    double credits; /* training uses owed to the buffer's labels */
    uint64_t version, labels, rejected, updates, failed_steps, duplicates;
    /* Written by the loop thread only, under the lock; so that thread reads
     * it without the lock, the trainer (checkpoints) under it. */
    ag_batch_ids_t *seen;
    float losses[LOSS_WINDOW];
    size_t n_losses;
} rmodel_t;

struct ag_reward_service {
    uv_loop_t *loop;
    ag_reward_opts_t o;
    char bind[512];
    char out[PATH_LEN];
    char resume[PATH_LEN];
    char init[PATH_LEN];
    bool init_pending; /* reward.init does not exist yet: no training until it does */
    double init_checked;

    ag_rpc_server_t *rpc;
    /* the training thread, stop, time limit, checkpoint ticks, and the lock
     * and condition of what the models share */
    ag_service_t *svc;

    rmodel_t *models;
    size_t n_models;
};

/* What a checkpoint saves of one model besides its weights. */
typedef struct msave {
    uint64_t version, labels, updates, rejected, duplicates;
    double pending; /* training uses owed to the buffer */
    uint8_t *image; /* NAME.labels, the caller's to free */
    size_t len;
    uint32_t count, crc;
    ag_batch_id_t *ids; /* the batch ids remembered, oldest first; the caller's to free */
    size_t n_ids;
} msave_t;

/* One record of a NAME.labels image, pointing into it. */
typedef struct record {
    uint8_t set, kind, preferred;
    float target, weight;
    const uint8_t *text[2];
    uint32_t len[2];
} record_t;

/* ---- reward_service.c */

void ag_reward_path(char *dst, const char *dir, const char *name, const char *ext);

/* ---- labels.c */

int ag_reward_ring_init(ring_t *r, size_t cap);

slabel_t *ag_reward_ring_at(const ring_t *r, size_t i);

/* Appends x; returns the label it pushed out (to free), or NULL. */
slabel_t *ag_reward_ring_push(ring_t *r, slabel_t *x);

/* Frees every label, keeping the ring. */
void ag_reward_ring_clear(ring_t *r);

void ag_reward_ring_finish(ring_t *r);

/*
 * Whether a label is held out: a hash of what it says (kind, target, the
 * preferred transcript then the other one, whole) against the fraction. A
 * preference and its mirror image (a and b swapped, preferred flipped) are
 * the same label and land on the same side.
 */
bool ag_reward_held_out(double fraction, int kind, float target, const char *first,
                        const char *second);

/* A stored label of transcripts a (la bytes) and b (lb, 0 for an outcome),
 * keeping only what the model reads of each. */
slabel_t *ag_reward_label_make(int kind, int preferred, float target, float weight,
                               const uint8_t *a, size_t la, const uint8_t *b, size_t lb, int ctx);

slabel_t *ag_reward_label_new(int kind, int preferred, float target, float weight, const char *a,
                              const char *b, int ctx);

/* ---- handlers.c */

bool ag_reward_weight_ok(float w);

void ag_reward_on_request(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                          size_t len, void *arg);

/* ---- trainer.c */

/*
 * Starts every model that was not resumed from the policy checkpoint
 * reward.init: its trunk already reads the game (the reward model of RLHF
 * starts from the supervised policy the same way). Returns 0, or -1 when the
 * file cannot be used.
 */
int ag_reward_load_init(ag_reward_service_t *s);

void ag_reward_trainer(ag_service_t *svc, void *arg);

/* ---- labelfile.c */

/*
 * Copies m's counters, owed uses, labels (as the NAME.labels image) and
 * batch ids at one instant. The loop thread adds labels and drops old ones
 * meanwhile, so this follows the trainer's discipline: copy under the lock,
 * nothing else. The copy is the image itself (a memcpy per label, no second
 * pass); its memory, and the batch ids', is allocated and faulted in outside
 * the lock at a size measured under it (labels that arrive in between cost
 * one more round), and the CRC and the write happen after. Returns 0,
 * -ENOMEM, or -EFBIG for more labels than the format counts.
 */
int ag_reward_save_copy(ag_reward_service_t *s, rmodel_t *m, msave_t *sv);

/* Why a record would have been refused as a network label, or NULL. */
const char *ag_reward_record_refused(const record_t *r);

/*
 * Checks a NAME.labels image: magic, CRC-32, every record inside the file
 * and the last one ending where the CRC starts. Returns 0 with its count
 * and CRC, or -1 with why.
 */
int ag_reward_labels_check(const uint8_t *d, size_t len, uint32_t *count, uint32_t *crc, char *why,
                           size_t why_len);

/* Copies m's counters and owed uses into sv (under the lock). */
void ag_reward_counters_copy(const rmodel_t *m, msave_t *sv);

/* Reads the record at *pos (the records end at end). Returns 0, or -1 when it
 * does not fit: the file's structure is broken, not just this label. */
int ag_reward_record_read(const uint8_t *d, size_t end, size_t *pos, record_t *r);

/* ---- resume.c */

/*
 * Writes, per model, NAME.ckpt and NAME.labels, then reward-state.json,
 * which records each NAME.labels by count and CRC-32: each file is atomic,
 * and the state file, written last, says which labels file belongs to it.
 * A model whose labels could not be saved gets no record, so a resume
 * starts it with no labels rather than with another checkpoint's.
 */
int ag_reward_checkpoint(ag_reward_service_t *s);

/* Loads DIR/NAME.ckpt for the models that have one, with their counters and labels. */
int ag_reward_resume(ag_reward_service_t *s);

#endif
