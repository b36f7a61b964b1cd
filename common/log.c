/* log.c: one line per event on stderr.
 *
 * Each line is formatted into a stack buffer and written with a single write(2), so lines from
 * several threads (libuv's pool, the loop) never interleave mid-line. */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static atomic_int log_level = LOG_INFO;

static const char *const log_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

void log_msg(enum log_level level, const char *subsys, const char *fmt, ...)
{
	if ((int)level < atomic_load(&log_level))
		return;
	if ((unsigned)level > LOG_ERROR)
		level = LOG_ERROR;

	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);

	int n = snprintf(line, sizeof(line),
	                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000L, log_level_names[level], subsys ? subsys : "-");
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;

	va_list ap;
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n;

	/* Keep room for the newline; mark a truncated line so nobody mistakes it for whole. */
	if (len > sizeof(line) - 2) {
		static const char more[] = "...";
		len = sizeof(line) - 2 - (sizeof(more) - 1);
		memcpy(line + len, more, sizeof(more) - 1);
		len += sizeof(more) - 1;
	}
	line[len++] = '\n';
	(void)write_all(STDERR_FILENO, line, len); /* a failing stderr is ignored */
}
