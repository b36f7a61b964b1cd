/* clockshift.c: an LD_PRELOAD shim for tests that steps the system clock of one process
 * without touching the machine's. CLOCK_REALTIME (and its coarse variant), gettimeofday()
 * and time() run ahead of or behind the real clock by a number of milliseconds read from
 * the file named by $SHOAL_CLOCKSHIFT_FILE (one signed integer; missing or unreadable: 0).
 * The test rewrites the file while the process runs; the shim reads it again at most every
 * 20 ms of the (untouched) monotonic clock. The monotonic clocks are passed through.
 * Built with the project's flags, which define _GNU_SOURCE (RTLD_NEXT). */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RECHECK_NS 20000000LL

typedef int clock_gettime_fn(clockid_t, struct timespec *);

static clock_gettime_fn *real_clock_gettime(void)
{
	static _Atomic(clock_gettime_fn *) fn;
	clock_gettime_fn *f = atomic_load(&fn);
	if (f == NULL) {
		void *sym = dlsym(RTLD_NEXT, "clock_gettime");
		memcpy(&f, &sym, sizeof(f)); /* ISO C has no object-to-function pointer cast */
		atomic_store(&fn, f);
	}
	return f;
}

static int64_t read_offset_ms(void)
{
	const char *path = getenv("SHOAL_CLOCKSHIFT_FILE");
	if (path == NULL)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[32];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

/* The offset now, in nanoseconds. */
static int64_t offset_ns(void)
{
	static _Atomic int64_t cached, next_check;
	struct timespec mono;
	if (real_clock_gettime()(CLOCK_MONOTONIC, &mono) != 0)
		return atomic_load(&cached);
	int64_t now = (int64_t)mono.tv_sec * 1000000000LL + mono.tv_nsec;
	if (now >= atomic_load(&next_check)) {
		atomic_store(&cached, read_offset_ms() * 1000000LL);
		atomic_store(&next_check, now + RECHECK_NS);
	}
	return atomic_load(&cached);
}

static void shift(struct timespec *ts)
{
	int64_t ns = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
	ts->tv_sec = (time_t)(ns / 1000000000LL);
	ts->tv_nsec = (long)(ns % 1000000000LL);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = real_clock_gettime()(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		shift(ts);
	return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	(void)tz;
	struct timespec ts;
	int rc = clock_gettime(CLOCK_REALTIME, &ts);
	if (rc == 0) { /* glibc declares tv nonnull */
		tv->tv_sec = ts.tv_sec;
		tv->tv_usec = ts.tv_nsec / 1000;
	}
	return rc;
}

time_t time(time_t *out)
{
	struct timespec ts;
	time_t t = clock_gettime(CLOCK_REALTIME, &ts) == 0 ? ts.tv_sec : (time_t)-1;
	if (out != NULL)
		*out = t;
	return t;
}
