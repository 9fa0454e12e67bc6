/*
 * matchup.h - which games the launcher's evaluation plays: the seats of the
 * run file's [eval], or by default those [actor] trained in.
 *
 * The evaluated policy (the warm start, then the final policy) is `self`.
 * `[eval] seatN` names what plays seat N: `self`, `bot:NAME` (the env
 * server's scripted bot) or a checkpoint path, or a comma-separated list of
 * them, one matchup each:
 *
 *   [eval]
 *   seat1 = bot:honest, bot:liar    ; self vs bot:honest, then self vs bot:liar
 *
 * Once [eval] names any seat, every seat it leaves out is `self`. When it
 * names none, the matchup is the one [actor] trains in: each seat as
 * `actor.seatN` says (default `self`), a `league` seat (past snapshots of
 * the policy) played by `self`; so self-play is evaluated as self vs self,
 * and a policy trained against bot:X as self vs bot:X. Lists on several
 * seats give every combination, seat 0's list varying slowest. Every
 * matchup must have a `self` seat.
 *
 * Each matchup has a name made of its seats ("self_vs_bot_liar"), letters,
 * digits and '_' only, unique within the run: it names the evaluation's
 * files and summary.json's keys when there are several.
 */
#ifndef AG_MATCHUP_H
#define AG_MATCHUP_H

#include <stddef.h>

#include "runfile.h"

#define AG_MATCHUP_MAX_SEATS 8
#define AG_MATCHUP_MAX 16
#define AG_MATCHUP_PLAYER_MAX 512

typedef struct ag_matchup {
    char name[128];
    int n_seats;
    char seats[AG_MATCHUP_MAX_SEATS][AG_MATCHUP_PLAYER_MAX]; /* self, bot:NAME or a path */
} ag_matchup_t;

/*
 * The matchups of a run of a game of `players` seats, from rf's [eval] and
 * [actor] sections, into out[0 .. *n). Returns 0, or -EINVAL after writing
 * why to err (a seat the game does not have, an empty player, a matchup
 * without self, more than max matchups).
 */
int ag_matchup_plan(const ag_runfile_t *rf, int players, ag_matchup_t *out, size_t max, size_t *n,
                    char *err, size_t errlen);

#endif
