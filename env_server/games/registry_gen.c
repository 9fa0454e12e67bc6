/*
 * registry_gen.c - agora-game-registry, the build step that writes the
 * registry of hosted games (ag_game_list, game.h) for a list of game names:
 *
 *   agora-game-registry OUTPUT.c NAME...
 *
 * The build runs it on the list in env_server/games/meson.build, so adding a
 * game is its file and its name there and nothing else; the test suite runs
 * it on a game of its own. Game NAME must define `const ag_game_t
 * ag_game_NAME`; the registry lists the games in the order given.
 */
#include <stdio.h>
#include <string.h>

static int s_identifier(const char *name)
{
    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: agora-game-registry OUTPUT.c NAME...\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!s_identifier(argv[i])) {
            fprintf(stderr, "agora-game-registry: '%s' is not a C identifier\n", argv[i]);
            return 2;
        }
        for (int j = 2; j < i; j++) {
            if (strcmp(argv[i], argv[j]) == 0) {
                fprintf(stderr, "agora-game-registry: game %s listed twice\n", argv[i]);
                return 2;
            }
        }
    }
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "/* The registry of hosted games, written by agora-game-registry: do not edit. */\n"
               "#include \"game.h\"\n\n");
    for (int i = 2; i < argc; i++)
        fprintf(f, "extern const ag_game_t ag_game_%s;\n", argv[i]);
    fprintf(f, "\nstatic const ag_game_t *const s_games[] = {\n");
    for (int i = 2; i < argc; i++)
        fprintf(f, "    &ag_game_%s,\n", argv[i]);
    fprintf(f, "};\n\n"
               "const ag_game_t *const *ag_game_list(size_t *count)\n"
               "{\n"
               "    *count = sizeof s_games / sizeof s_games[0];\n"
               "    return s_games;\n"
               "}\n");
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
