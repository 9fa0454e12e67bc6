/*
 * matchup.c - the evaluation's matchups from a run file (see matchup.h).
 */
#include "matchup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { MAX_CHOICES = AG_MATCHUP_MAX };

/* The players one seat may take, in the order given. */
typedef struct seat_list {
    char players[MAX_CHOICES][AG_MATCHUP_PLAYER_MAX];
    size_t n;
} seat_list_t;

/*
 * Splits a comma-separated list of players into l. from_actor: an [actor]
 * seat, where `league` means past snapshots of the policy, played here by
 * the policy itself. Returns 0 or -EINVAL with err.
 */
static int s_parse_seat(const char *key, const char *text, bool from_actor, seat_list_t *l,
                        char *err, size_t errlen)
{
    int n = ag_runfile_split(text, l->players[0], AG_MATCHUP_PLAYER_MAX, MAX_CHOICES);
    if (n <= 0) {
        snprintf(err, errlen, "%s: %s in '%s'", key,
                 n == -E2BIG ? "too many players" : "an empty player, or one too long", text);
        return -EINVAL;
    }
    l->n = (size_t)n;
    for (size_t i = 0; i < l->n; i++) {
        char *p = l->players[i];
        if (!strcmp(p, "league")) {
            if (!from_actor) {
                snprintf(err, errlen,
                         "%s: league is not a player of an evaluation (self, bot:NAME or a "
                         "checkpoint path)",
                         key);
                return -EINVAL;
            }
            snprintf(p, AG_MATCHUP_PLAYER_MAX, "self");
        } else if (!strcmp(p, "bot:")) {
            snprintf(err, errlen, "%s: bot: needs a bot name", key);
            return -EINVAL;
        }
    }
    return 0;
}

/* Appends to name the label of one player, in letters, digits and '_'. */
static void s_label(char *name, size_t cap, const char *player)
{
    char label[AG_MATCHUP_PLAYER_MAX + 8];
    if (!strcmp(player, "self")) {
        snprintf(label, sizeof label, "self");
    } else if (!strncmp(player, "bot:", 4)) {
        snprintf(label, sizeof label, "bot_%s", player + 4);
    } else {
        const char *base = strrchr(player, '/');
        base = base ? base + 1 : player;
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".ckpt"))
            n -= 5;
        snprintf(label, sizeof label, "ckpt_%.*s", (int)n, base);
    }
    for (char *c = label; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    /* A long name is cut (the seats are listed in full beside it). */
    size_t at = strlen(name);
    if (at + 1 < cap && snprintf(name + at, cap - at, "%s%s", at ? "_vs_" : "", label) < 0)
        name[at] = '\0';
}

int ag_matchup_plan(const ag_runfile_t *rf, int players, ag_matchup_t *out, size_t max, size_t *n,
                    char *err, size_t errlen)
{
    seat_list_t lists[AG_MATCHUP_MAX_SEATS];
    *n = 0;
    if (players < 1 || players > AG_MATCHUP_MAX_SEATS) {
        snprintf(err, errlen, "a game of %d players (1 to %d are supported)", players,
                 AG_MATCHUP_MAX_SEATS);
        return -EINVAL;
    }
    bool named = false;
    for (int s = 0; s < AG_MATCHUP_MAX_SEATS; s++) {
        char key[32];
        snprintf(key, sizeof key, "eval.seat%d", s);
        const char *v = ag_runfile_get(rf, key);
        if (!v || !*v)
            continue;
        if (s >= players) {
            snprintf(err, errlen, "%s: the game has %d seats (seat0 .. seat%d)", key, players,
                     players - 1);
            return -EINVAL;
        }
        named = true;
    }
    size_t combos = 1;
    for (int s = 0; s < players; s++) {
        char key[32];
        snprintf(key, sizeof key, "%s.seat%d", named ? "eval" : "actor", s);
        const char *v = ag_runfile_get(rf, key);
        if (!v || !*v)
            v = "self";
        if (s_parse_seat(key, v, !named, &lists[s], err, errlen) < 0)
            return -EINVAL;
        combos *= lists[s].n;
        if (combos > max) {
            snprintf(err, errlen, "[eval] names more than %zu matchups", max);
            return -EINVAL;
        }
    }
    for (size_t c = 0; c < combos; c++) {
        ag_matchup_t *m = &out[*n];
        *m = (ag_matchup_t){.n_seats = players};
        bool has_self = false;
        size_t rest = c;
        for (int s = players - 1; s >= 0; s--) {
            const char *p = lists[s].players[rest % lists[s].n];
            rest /= lists[s].n;
            snprintf(m->seats[s], sizeof m->seats[s], "%s", p);
            has_self |= !strcmp(p, "self");
        }
        for (int s = 0; s < players; s++)
            s_label(m->name, sizeof m->name - 8, m->seats[s]);
        if (!has_self) {
            snprintf(err, errlen, "the matchup %s has no seat for the evaluated policy (self)",
                     m->name);
            return -EINVAL;
        }
        /* Two checkpoints of the same file name: the later one gets a number. */
        size_t len = strlen(m->name);
        for (int k = 2; k < 100; k++) {
            bool taken = false;
            for (size_t i = 0; i < *n; i++)
                taken |= !strcmp(out[i].name, m->name);
            if (!taken)
                break;
            snprintf(m->name + len, sizeof m->name - len, "_%d", k);
        }
        (*n)++;
    }
    return 0;
}
