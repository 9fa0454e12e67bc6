/*
 * debate_player - valid debate moves computed from the observation text, for
 * benchmarks and integration tests that must play real games over the wire.
 *
 * It relies only on the published text format of the debate game: a claim
 * turn's observation contains `task: X0 OP OP ...` and `you argue: D`; the
 * move is the true chain of partial results with its last digit replaced by
 * D (a valid claim, honest or not). A challenge turn's observation ends in
 * `challenge step: `; the move challenges step 1.
 */
#ifndef AG_DEBATE_PLAYER_H
#define AG_DEBATE_PLAYER_H

#include <stdbool.h>
#include <stddef.h>

/* Longest chain the debate game allows. */
#define AG_DEBATE_PLAYER_MAX_K 32
/* Room a move needs, NUL included. */
#define AG_DEBATE_PLAYER_MOVE_CAP (2 * AG_DEBATE_PLAYER_MAX_K + 2)

/*
 * Writes the move for observation obs into out (AG_DEBATE_PLAYER_MOVE_CAP
 * bytes). Returns false when obs is not a debate claim or challenge prompt.
 */
bool ag_debate_player_move(const char *obs, char *out);

#endif
