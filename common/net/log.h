/*
 * log.h - one line per event on stderr: time, level, component, message.
 * Thread-safe (one write(2) per line). The level is process-wide and set
 * once at start-up from the run file or --log-level.
 */
#ifndef AG_LOG_H
#define AG_LOG_H

typedef enum ag_log_level {
    AG_LOG_DEBUG = 0,
    AG_LOG_INFO = 1,
    AG_LOG_WARN = 2,
    AG_LOG_ERROR = 3,
} ag_log_level_t;

void ag_log_set_level(ag_log_level_t level);
ag_log_level_t ag_log_get_level(void);

void ag_log(ag_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ag_debug(comp, ...) ag_log(AG_LOG_DEBUG, comp, __VA_ARGS__)
#define ag_info(comp, ...) ag_log(AG_LOG_INFO, comp, __VA_ARGS__)
#define ag_warn(comp, ...) ag_log(AG_LOG_WARN, comp, __VA_ARGS__)
#define ag_error(comp, ...) ag_log(AG_LOG_ERROR, comp, __VA_ARGS__)

#endif
