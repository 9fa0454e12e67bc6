/*
 * agora-bench - agora's benchmarks, one subcommand each. Every benchmark
 * prints its figures as one JSON line on stdout, so runs can be collected and
 * compared (medians over several runs, ratios against a baseline run in the
 * same session).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

int bench_report(json_t *report)
{
    int rc = report && json_dumpf(report, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6)) == 0 &&
                     fputc('\n', stdout) != EOF && fflush(stdout) == 0
                 ? 0
                 : -1;
    if (rc < 0)
        fprintf(stderr, "agora-bench: cannot write the report\n");
    json_decref(report);
    return rc;
}

int bench_options(const char *prog, const char *usage, const char *summary, const ag_option_t *rows,
                  size_t n_rows, size_t max_positional, int argc, char **argv, void *dst,
                  ag_config_t **cfg)
{
    *cfg = ag_config_create(prog, usage, summary, rows, n_rows, max_positional);
    if (!*cfg) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 2;
    }
    const int rc = ag_config_parse_args(*cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 1 : 2;
    return ag_config_apply(*cfg, dst) < 0 ? 2 : 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agora-bench SUBCOMMAND [OPTIONS]\n"
            "\n"
            "subcommands:\n"
            "  env       environment-server step rate and round-trip latency over loopback\n"
            "  model     model-core training, scoring and sampling throughput, sgemm peak, MFU\n"
            "  pipeline  a finished run's trained tokens/s against the rate its model's\n"
            "            isolated figures predict, and where the rest of the time went\n"
            "  reward    reward-server Score throughput and latency, with and without training\n"
            "\n"
            "agora-bench SUBCOMMAND --help describes each one's options (--help-markdown: as\n"
            "a table, bench/README.md).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "env"))
        return bench_env_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "model"))
        return bench_model_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pipeline"))
        return bench_pipeline_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "reward"))
        return bench_reward_main(argc - 1, argv + 1);
    fprintf(stderr, "agora-bench: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
