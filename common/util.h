/* util.h: allocation that aborts on OOM, time, and small helpers shared by every binary.
 * Out-of-memory is fatal by design: a daemon that cannot allocate cannot keep its promises. */
#ifndef SHOAL_UTIL_H
#define SHOAL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Returns owned memory; never NULL (aborts with a message on OOM). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Writes a reason into err (if err and errlen are non-zero) and returns -1, so that error
 * paths read `return errorf(err, errlen, "...", ...);`. */
int errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* pread/pwrite of exactly n bytes at off, retrying on EINTR and short transfers. pread_all
 * returns the bytes read (fewer only at end of file) or -1 with errno; pwrite_all returns 0
 * or -1 with errno (ENOSPC if the device takes nothing). Blocking: off the loop. */
ssize_t pread_all(int fd, void *p, size_t n, uint64_t off);
int pwrite_all(int fd, const void *p, size_t n, uint64_t off);
/* read/write of n bytes at the file position, for pipes and terminals too, with the same
 * retries: read_all returns the bytes read (fewer only at end of input) or -1 with errno;
 * write_all returns 0 or -1 with errno. */
ssize_t read_all(int fd, void *p, size_t n);
int write_all(int fd, const void *p, size_t n);

/* Wall clock, unix milliseconds (for display and timestamps). */
uint64_t wall_ms(void);
/* Monotonic clock in microseconds (for durations). */
uint64_t mono_us(void);

#endif
