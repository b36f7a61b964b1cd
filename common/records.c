/* records.c: record iteration, the partition cutter and byte-range splits of shared files. */
#include "records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void record_iter_init(struct record_iter *it, const uint8_t *p, size_t len)
{
	it->p = p;
	it->len = len;
	it->pos = 0;
}

bool record_iter_next(struct record_iter *it, const uint8_t **rec, size_t *reclen)
{
	if (it->pos >= it->len)
		return false;
	const uint8_t *start = it->p + it->pos;
	size_t left = it->len - it->pos;
	const uint8_t *nl = memchr(start, '\n', left);
	if (nl != NULL) {
		*reclen = (size_t)(nl - start);
		it->pos += *reclen + 1;
	} else {
		/* The last record of an input may lack its '\n'. */
		*reclen = left;
		it->pos = it->len;
	}
	*rec = start;
	return true;
}

/* A partition closes at the first '\n' that makes it at least `target` bytes long, so that
 * lines of exactly target/k bytes give partitions of exactly `target` bytes. */
void cutter_init(struct cutter *c, uint64_t target)
{
	c->target = target > 0 ? target : 1;
	c->pos = 0;
	c->start = 0;
}

void cutter_feed(struct cutter *c, const uint8_t *p, size_t n, cutter_emit_fn emit, void *arg)
{
	uint64_t base = c->pos; /* stream offset of p[0] */
	size_t i = 0;
	while (i < n) {
		/* The earliest '\n' that may close the partition is at start + target - 1; the
		 * bytes before it need no look. */
		uint64_t first = c->start + c->target - 1;
		if (first >= base + n)
			break;
		if (first > base + i)
			i = (size_t)(first - base);
		const uint8_t *nl = memchr(p + i, '\n', n - i);
		if (nl == NULL)
			break;
		uint64_t end = base + (uint64_t)(nl - p) + 1;
		emit(arg, c->start, end - c->start);
		c->start = end;
		i = (size_t)(nl - p) + 1;
	}
	c->pos = base + n;
}

void cutter_finish(struct cutter *c, cutter_emit_fn emit, void *arg)
{
	if (c->pos > c->start) {
		emit(arg, c->start, c->pos - c->start);
		c->start = c->pos;
	}
}

#define SPLIT_STEP (64 * 1024)

/* Finds where the split's first record starts: offset itself if the byte before it is '\n',
 * else just after the next '\n' at or after offset. Returns 0 with *start set, 1 if the split
 * owns nothing because no record starts at or after offset, or -1 with errno set. */
static int split_find_start(int fd, uint64_t offset, uint64_t *start)
{
	if (offset == 0) {
		*start = 0;
		return 0;
	}
	uint8_t before;
	ssize_t r = pread_all(fd, &before, 1, offset - 1);
	if (r < 0)
		return -1;
	if (r == 0)
		return 1; /* offset is beyond EOF */
	if (before == '\n') {
		*start = offset;
		return 0;
	}
	/* On the heap: this may run on a thread with a small stack. */
	uint8_t *scratch = xmalloc(SPLIT_STEP);
	uint64_t pos = offset;
	int rc;
	for (;;) {
		r = pread_all(fd, scratch, SPLIT_STEP, pos);
		if (r <= 0) {
			rc = r < 0 ? -1 : 1;
			break;
		}
		const uint8_t *nl = memchr(scratch, '\n', (size_t)r);
		if (nl != NULL) {
			*start = pos + (uint64_t)(nl - scratch) + 1;
			rc = 0;
			break;
		}
		pos += (uint64_t)r;
	}
	int e = errno;
	free(scratch);
	errno = e;
	return rc;
}

int split_read(const char *path, uint64_t offset, uint64_t length, struct buf *out, char *err,
               size_t errlen)
{
	size_t orig_len = out->len;
	const char *what = "open";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;

	what = "read";
	uint64_t end = offset + length < offset ? UINT64_MAX : offset + length;
	uint64_t start;
	int rc = split_find_start(fd, offset, &start);
	if (rc < 0)
		goto fail;
	if (rc > 0 || start >= end)
		goto done;

	/* The owned records' first bytes lie in [start, end): read that whole span, then the
	 * rest of the last record if the span does not end with its '\n'. */
	uint64_t pos = start;
	bool eof = false;
	while (pos < end) {
		uint64_t want64 = end - pos;
		size_t want = want64 > (1u << 20) ? (1u << 20) : (size_t)want64;
		uint8_t *dst = buf_reserve(out, want);
		ssize_t r = pread_all(fd, dst, want, pos);
		if (r < 0)
			goto fail;
		out->len += (size_t)r;
		pos += (uint64_t)r;
		if ((size_t)r < want) {
			eof = true;
			break;
		}
	}
	if (!eof && out->len > orig_len && out->data[out->len - 1] != '\n') {
		for (;;) {
			uint8_t *dst = buf_reserve(out, SPLIT_STEP);
			ssize_t r = pread_all(fd, dst, SPLIT_STEP, pos);
			if (r < 0)
				goto fail;
			const uint8_t *nl = memchr(dst, '\n', (size_t)r);
			if (nl != NULL) {
				out->len += (size_t)(nl - dst) + 1;
				break;
			}
			out->len += (size_t)r;
			pos += (uint64_t)r;
			if (r < SPLIT_STEP)
				break;
		}
	}
done:
	close(fd);
	return 0;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	out->len = orig_len;
	snprintf(err, errlen, "%s: %s: %s", path, what, strerror(e));
	return -1;
}
