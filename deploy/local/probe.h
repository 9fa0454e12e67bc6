/*
 * probe.h - `agora probe SERVICE ENDPOINT`: a health check over the real
 * protocol (see probe.c).
 */
#ifndef AG_PROBE_H
#define AG_PROBE_H

/* argv[0] is "probe"; returns the exit status. */
int ag_probe_main(int argc, char **argv);

#endif
