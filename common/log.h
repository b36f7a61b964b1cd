/* log.h: one line per event on stderr, `TIME LEVEL subsys: key=value ...`.
 * Callers put the conn id and peer on every line about a connection. */
#ifndef SHOAL_LOG_H
#define SHOAL_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses debug|info|warn|error; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(sub, ...)                                                                        \
	do {                                                                                       \
		if (log_get_level() <= LOG_DEBUG)                                                  \
			log_msg(LOG_DEBUG, sub, __VA_ARGS__);                                      \
	} while (0)
#define log_info(sub, ...) log_msg(LOG_INFO, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_msg(LOG_WARN, sub, __VA_ARGS__)
#define log_error(sub, ...) log_msg(LOG_ERROR, sub, __VA_ARGS__)

#endif
