/* bench.h - the subcommands of agora-bench; argv[0] is the subcommand name. */
#ifndef AG_BENCH_H
#define AG_BENCH_H

int bench_env_main(int argc, char **argv);
int bench_model_main(int argc, char **argv);
int bench_reward_main(int argc, char **argv);

#endif
