/* read_modes: how fast one thread can count the lines of a file partition by partition, with
 * three ways of getting a partition into memory. It isolates the cost that dominates the
 * workers' `count` of an --input-path file (see README.md, "count").
 *
 *   grow    like common/records.c split_read: pread 1 MiB at a time into a buffer grown by
 *           doubling (realloc), freed after each partition: every page of input is a fresh
 *           anonymous page, so one minor fault per 4 KiB
 *   mmap    mmap(MAP_POPULATE) each partition read-only, memchr over it, munmap
 *   stream  pread into one reused 1 MiB buffer
 *
 * Usage: read_modes grow|mmap|stream FILE [PARTITION_MIB (default 128)]
 * Prints: mode=... lines=... wall_s=... user_s=... sys_s=... minor_faults=... */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STEP (1u << 20)

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static size_t count_nl(const unsigned char *p, size_t n)
{
	size_t c = 0;
	const unsigned char *e = p + n;
	while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		c++;
		p++;
	}
	return c;
}

static void pread_all(int fd, unsigned char *dst, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, dst + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			perror("read_modes: pread");
			exit(1);
		}
		done += (size_t)r;
	}
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: read_modes grow|mmap|stream FILE [PARTITION_MIB]\n");
		return 2;
	}
	const char *mode = argv[1];
	if (strcmp(mode, "grow") != 0 && strcmp(mode, "mmap") != 0 && strcmp(mode, "stream") != 0) {
		fprintf(stderr, "read_modes: unknown mode %s\n", mode);
		return 2;
	}
	size_t part = (size_t)(argc == 4 ? atol(argv[3]) : 128) << 20;
	if (part == 0) {
		fprintf(stderr, "read_modes: bad partition size\n");
		return 2;
	}
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "read_modes: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	size_t size = (size_t)st.st_size, lines = 0;
	static unsigned char block[STEP];
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	double t0 = now_s();
	for (size_t off = 0; off < size; off += part) {
		size_t len = size - off < part ? size - off : part;
		if (mode[0] == 'g') {
			unsigned char *b = NULL;
			size_t cap = 0, have = 0;
			while (have < len) {
				size_t want = len - have > STEP ? STEP : len - have;
				if (have + want > cap) {
					cap = cap ? cap : 64u << 10;
					while (cap < have + want)
						cap *= 2;
					b = realloc(b, cap);
					if (!b)
						return 1;
				}
				pread_all(fd, b + have, want, (off_t)(off + have));
				have += want;
			}
			lines += count_nl(b, have);
			free(b);
		} else if (mode[0] == 'm') {
			unsigned char *b = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd,
			                        (off_t)off);
			if (b == MAP_FAILED) {
				perror("read_modes: mmap");
				return 1;
			}
			lines += count_nl(b, len);
			munmap(b, len);
		} else {
			for (size_t have = 0; have < len;) {
				size_t want = len - have > STEP ? STEP : len - have;
				pread_all(fd, block, want, (off_t)(off + have));
				lines += count_nl(block, want);
				have += want;
			}
		}
	}
	double t1 = now_s();
	getrusage(RUSAGE_SELF, &r1);
	printf("mode=%s lines=%zu wall_s=%.3f user_s=%.3f sys_s=%.3f minor_faults=%ld\n", mode, lines,
	       t1 - t0, tv_s(r1.ru_utime) - tv_s(r0.ru_utime), tv_s(r1.ru_stime) - tv_s(r0.ru_stime),
	       r1.ru_minflt - r0.ru_minflt);
	close(fd);
	return 0;
}
