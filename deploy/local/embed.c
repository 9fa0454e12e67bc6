/*
 * embed.c - build-time tool: turns a text file into a C source file defining
 * `const char NAME[]` with its contents, so the agora launcher carries the
 * default run file (examples/debate.ini) inside its binary and `agora run`
 * works from any directory without the source tree.
 *
 * usage: embed NAME INPUT OUTPUT
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: embed NAME INPUT OUTPUT\n");
        return 2;
    }
    FILE *in = fopen(argv[2], "rb");
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    FILE *out = fopen(argv[3], "wb");
    if (!out) {
        perror(argv[3]);
        fclose(in);
        return 1;
    }
    fprintf(out, "/* Generated from %s by embed; do not edit. */\n", argv[2]);
    fprintf(out, "extern const char %s[];\nconst char %s[] =\n\"", argv[1], argv[1]);
    int c;
    while ((c = fgetc(in)) != EOF) {
        if (c == '\n') {
            fputs("\\n\"\n\"", out);
            continue;
        }
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f && c != '?') /* '?' would risk trigraphs */
            fputc(c, out);
        else
            fprintf(out, "\\%03o", (unsigned)c);
    }
    fputs("\";\n", out);
    int bad = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0)
        bad = 1;
    if (bad) {
        fprintf(stderr, "embed: I/O error\n");
        return 1;
    }
    return 0;
}
