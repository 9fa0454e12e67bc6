/*
 * debate_player - valid debate moves from observation text. See debate_player.h.
 */
#include "debate_player.h"

#include <string.h>

bool ag_debate_player_move(const char *obs, char *out)
{
    const char *task = strstr(obs, "task: ");
    if (!task) {
        if (!strstr(obs, "challenge step:"))
            return false;
        strcpy(out, "1");
        return true;
    }
    const char *p = task + 6;
    if (*p < '0' || *p > '9')
        return false;
    int x = *p++ - '0';
    int k = 0;
    char *o = out;
    while (*p == ' ' && k < AG_DEBATE_PLAYER_MAX_K) {
        char op = p[1], d = p[2];
        if ((op != '+' && op != '-' && op != '*') || d < '0' || d > '9')
            break;
        int v = d - '0';
        x = op == '+' ? (x + v) % 10 : op == '-' ? (x + 10 - v) % 10 : (x * v) % 10;
        *o++ = (char)('0' + x);
        *o++ = ' ';
        k++;
        p += 3;
    }
    const char *argue = strstr(p, "you argue: ");
    if (k == 0 || !argue || argue[11] < '0' || argue[11] > '9')
        return false;
    o[-2] = argue[11]; /* the argued answer is the chain's last digit */
    o[-1] = 0;
    return true;
}
