/*
 * seq.h - one seat's transcript as the token stream the policy reads and
 * writes, shared by the actor (which samples it), the learner (which trains on
 * it, and builds it from Demo transcripts for the warm start) and the reward
 * server (which scores it).
 *
 * Tokenisation (docs/protocol.md, "Tokens"): AG_TOK_BOS, then for each of the
 * seat's turns the observation's bytes, the action's bytes and AG_TOK_EOT.
 * Action bytes and the EOT that closes them are "generated" (sampled by the
 * seat's policy, trained on); BOS and observation bytes are context. The
 * turn's reward sits on its last token (the EOT), so an end-of-game reward
 * lands on the seat's last turn and GAE carries it back to the first.
 */
#ifndef AG_SEQ_H
#define AG_SEQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct ag_seq {
    int32_t *tokens;
    uint8_t *generated;   /* 1 = sampled by the seat's policy */
    float *logprobs;      /* behaviour log-prob of generated tokens, else 0 */
    float *values;        /* value estimate at sampling time, else 0 */
    size_t len;
    size_t cap;
    uint32_t *turn_end;   /* index of the last token of each turn */
    float *turn_rewards;  /* reward earned by each turn */
    uint64_t *turn_version; /* policy version that generated each turn */
    size_t n_turns;
    size_t turns_cap;
    float pending_reward; /* earned before the seat's first turn ended */
} ag_seq_t;

void ag_seq_init(ag_seq_t *s);
void ag_seq_finish(ag_seq_t *s);
/* Empties the sequence, keeping its memory. */
void ag_seq_clear(ag_seq_t *s);

/* Starts a transcript: appends BOS. */
int ag_seq_begin(ag_seq_t *s);
/* Appends text as context (not generated) byte tokens. */
int ag_seq_context(ag_seq_t *s, const char *text, size_t len);
/* Appends one generated token with its behaviour log-prob and value. */
int ag_seq_generated(ag_seq_t *s, int32_t token, float logprob, float value);
/* Closes the seat's current turn at the last token (normally the EOT). */
int ag_seq_end_turn(ag_seq_t *s, uint64_t version);
/* Credits reward to the seat's latest turn (or its first, if none has ended yet). */
void ag_seq_reward(ag_seq_t *s, float reward);

/* A whole turn from text, as Demo transcripts give it: observation as
 * context, then action bytes and EOT as generated (log-prob 0), then the turn
 * is closed. */
int ag_seq_turn_text(ag_seq_t *s, const char *observation, size_t obs_len, const char *action,
                     size_t action_len, uint64_t version);

/* The action text of bytes tokens[from .. to) (specials dropped) into buf
 * (NUL-terminated, cut at cap - 1); returns its length. */
size_t ag_seq_text(const ag_seq_t *s, size_t from, size_t to, char *buf, size_t cap);

#endif
