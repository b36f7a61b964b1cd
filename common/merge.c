/* merge.c: k-way merge of sorted line runs, with a binary min-heap of run cursors.
 *
 * Each run is read through its own buffer with pread (runs may share one fd, so no file
 * offset is ever used for reading). A line is only valid until its run advances, so a line
 * is copied out (to the write buffer, the accumulator or the "previous line" copy) before
 * that. Runs are not trusted: the output is checked to be in order, which catches any
 * unsorted run, since a merge keeps each run's lines in their order. */
#include "merge.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "num.h"
#include "util.h"

#define MERGE_FANIN   64
#define MERGE_READBUF (64 * 1024)
#define MERGE_OUTBUF  (256 * 1024)

struct merge_reader {
	size_t idx; /* run number in the caller's array, for messages */
	int fd;
	uint64_t next, end; /* file offsets still to read: [next, end) */
	uint8_t *buf;
	size_t cap, start, fill, scan; /* buffered bytes [start, fill); no '\n' in [start, scan) */
	/* The current line (without '\n'), its key length and, with sum_keys, its count. */
	const uint8_t *line;
	size_t len, keylen;
	i128 count;
};

struct merge_ctx {
	bool sum_keys;
	bool group_keys; /* order by (text before the first TAB, rest): reduce inputs */
	size_t prev_keylen;
	char *err;
	size_t errlen;
	int out_fd;
	struct buf out; /* pending output */
	uint64_t written;
	struct buf prev; /* the last line (or key) emitted, for the order check */
	bool have_prev;
};

static int merge_fail(struct merge_ctx *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int merge_fail(struct merge_ctx *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->err, m->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int merge_flush(struct merge_ctx *m)
{
	size_t done = 0;
	while (done < m->out.len) {
		ssize_t w = write(m->out_fd, m->out.data + done, m->out.len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return merge_fail(m, "merge: write: %s", strerror(errno));
		}
		done += (size_t)w;
	}
	m->written += m->out.len;
	buf_reset(&m->out);
	return 0;
}

static int merge_emit(struct merge_ctx *m, const void *p, size_t n)
{
	buf_append(&m->out, p, n);
	if (m->out.len >= MERGE_OUTBUF)
		return merge_flush(m);
	return 0;
}

/* Checks a with-sum_keys line: KEY<TAB>COUNT, KEY non-empty, COUNT a positive decimal. */
static int merge_parse_keyed(struct merge_ctx *m, struct merge_reader *r)
{
	const uint8_t *tab = memchr(r->line, '\t', r->len);
	if (tab == NULL || tab == r->line)
		return merge_fail(m, "merge: run %zu: a line is not KEY<TAB>COUNT", r->idx);
	r->keylen = (size_t)(tab - r->line);
	const uint8_t *c = tab + 1;
	size_t clen = r->len - r->keylen - 1;
	bool ok = clen > 0 && clen < NUM_I128_MAXLEN && c[0] >= '1' && c[0] <= '9';
	for (size_t i = 1; ok && i < clen; i++)
		ok = c[i] >= '0' && c[i] <= '9';
	if (!ok || num_parse_i128(c, clen, &r->count) < 0)
		return merge_fail(m, "merge: run %zu: bad count in a KEY<TAB>COUNT line", r->idx);
	return 0;
}

/* Moves r to its next line: 1 with a line, 0 at the end of the run, -1 on error. */
static int merge_next(struct merge_ctx *m, struct merge_reader *r)
{
	for (;;) {
		const uint8_t *nl = memchr(r->buf + r->scan, '\n', r->fill - r->scan);
		if (nl != NULL) {
			r->line = r->buf + r->start;
			r->len = (size_t)(nl - r->line);
			r->start = r->scan = (size_t)(nl - r->buf) + 1;
			r->keylen = r->len;
			if (m->group_keys) {
				const uint8_t *tab = memchr(r->line, '\t', r->len);
				if (tab != NULL)
					r->keylen = (size_t)(tab - r->line);
			}
			if (m->sum_keys)
				return merge_parse_keyed(m, r) < 0 ? -1 : 1;
			return 1;
		}
		r->scan = r->fill;
		if (r->next >= r->end) {
			if (r->start == r->fill)
				return 0;
			return merge_fail(m, "merge: run %zu: last line has no newline", r->idx);
		}
		/* Make room: drop consumed bytes, and grow when one line fills the buffer. */
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->fill - r->start);
			r->fill -= r->start;
			r->scan -= r->start;
			r->start = 0;
		}
		if (r->fill == r->cap) {
			r->cap *= 2;
			r->buf = xrealloc(r->buf, r->cap);
		}
		size_t want = r->cap - r->fill;
		if ((uint64_t)want > r->end - r->next)
			want = (size_t)(r->end - r->next);
		ssize_t got = pread(r->fd, r->buf + r->fill, want, (off_t)r->next);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return merge_fail(m, "merge: run %zu: read: %s", r->idx, strerror(errno));
		}
		if (got == 0)
			return merge_fail(m, "merge: run %zu: file ends before the run does",
			                  r->idx);
		r->fill += (size_t)got;
		r->next += (uint64_t)got;
	}
}

/* Bytewise, a prefix first (LC_ALL=C). */
static int merge_bytecmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n > 0 ? memcmp(a, b, n) : 0;
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* The order of lines: by key (the whole line in plain mode), and with group_keys then by the
 * rest of the line, so that every line of a key is adjacent even when keys contain bytes
 * below TAB or a line has no TAB. */
static int merge_line_order(const struct merge_ctx *m, const uint8_t *a, size_t alen, size_t akey,
                            const uint8_t *b, size_t blen, size_t bkey)
{
	int c = merge_bytecmp(a, akey, b, bkey);
	if (c != 0 || !m->group_keys)
		return c;
	return merge_bytecmp(a + akey, alen - akey, b + bkey, blen - bkey);
}

/* Heap order: by line order, then by run, so that the merge is deterministic. */
static int merge_cmp(const struct merge_ctx *m, const struct merge_reader *a,
                     const struct merge_reader *b)
{
	int c = merge_line_order(m, a->line, a->len, a->keylen, b->line, b->len, b->keylen);
	if (c != 0)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void merge_sift_down(const struct merge_ctx *m, struct merge_reader **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, best = i;
		if (l < n && merge_cmp(m, h[l], h[best]) < 0)
			best = l;
		if (l + 1 < n && merge_cmp(m, h[l + 1], h[best]) < 0)
			best = l + 1;
		if (best == i)
			return;
		struct merge_reader *t = h[i];
		h[i] = h[best];
		h[best] = t;
		i = best;
	}
}

/* The emitted sequence must be non-decreasing (strictly increasing keys with sum_keys, as
 * equal keys were just combined). */
static int merge_check_order(struct merge_ctx *m, const uint8_t *line, size_t len, size_t klen,
                             size_t run)
{
	if (m->have_prev) {
		int c =
		    merge_line_order(m, m->prev.data, m->prev.len, m->prev_keylen, line, len, klen);
		if (c > 0 || (c == 0 && m->sum_keys))
			return merge_fail(m, "merge: run %zu is not sorted", run);
	}
	buf_reset(&m->prev);
	buf_append(&m->prev, line, len);
	m->prev_keylen = klen;
	m->have_prev = true;
	return 0;
}

/* Pops the heap top's line and advances its run, keeping the heap in shape. */
static int merge_advance_top(struct merge_ctx *m, struct merge_reader **heap, size_t *n)
{
	int rc = merge_next(m, heap[0]);
	if (rc < 0)
		return -1;
	if (rc == 0)
		heap[0] = heap[--*n];
	merge_sift_down(m, heap, *n, 0);
	return 0;
}

/* One merge of at most MERGE_FANIN runs into m->out_fd. */
static int merge_group(struct merge_ctx *m, const struct merge_run *runs, size_t nruns,
                       size_t first_idx)
{
	struct merge_reader *rd = xcalloc(nruns > 0 ? nruns : 1, sizeof(*rd));
	struct merge_reader **heap = xcalloc(nruns > 0 ? nruns : 1, sizeof(*heap));
	struct buf acc = BUF_INIT;
	size_t n = 0;
	int rc = -1;
	m->have_prev = false;
	for (size_t i = 0; i < nruns; i++) {
		struct merge_reader *r = &rd[i];
		r->idx = first_idx + i;
		r->fd = runs[i].fd;
		r->next = runs[i].offset;
		r->end = runs[i].offset + runs[i].length;
		if (r->end < r->next) {
			merge_fail(m, "merge: run %zu: bad range", r->idx);
			goto out;
		}
		r->cap = MERGE_READBUF;
		r->buf = xmalloc(r->cap);
		int got = merge_next(m, r);
		if (got < 0)
			goto out;
		if (got > 0)
			heap[n++] = r;
	}
	for (size_t i = n / 2; i-- > 0;)
		merge_sift_down(m, heap, n, i);

	while (n > 0) {
		struct merge_reader *top = heap[0];
		if (!m->sum_keys) {
			if (merge_check_order(m, top->line, top->len, top->keylen, top->idx) < 0 ||
			    merge_emit(m, top->line, top->len) < 0 || merge_emit(m, "\n", 1) < 0 ||
			    merge_advance_top(m, heap, &n) < 0)
				goto out;
			continue;
		}
		/* Combine every line with this key, from all runs (and repeated within one). */
		size_t run = top->idx;
		buf_reset(&acc);
		buf_append(&acc, top->line, top->keylen);
		i128 sum = top->count;
		if (merge_advance_top(m, heap, &n) < 0)
			goto out;
		while (n > 0 && heap[0]->keylen == acc.len &&
		       memcmp(heap[0]->line, acc.data, acc.len) == 0) {
			if (__builtin_add_overflow(sum, heap[0]->count, &sum)) {
				merge_fail(m, "merge: count of a key overflows 128 bits");
				goto out;
			}
			if (merge_advance_top(m, heap, &n) < 0)
				goto out;
		}
		if (merge_check_order(m, acc.data, acc.len, acc.len, run) < 0)
			goto out;
		char num[NUM_I128_MAXLEN + 2];
		size_t k = 0;
		num[k++] = '\t';
		k += num_format_i128(sum, num + k);
		num[k++] = '\n';
		if (merge_emit(m, acc.data, acc.len) < 0 || merge_emit(m, num, k) < 0)
			goto out;
	}
	rc = merge_flush(m);
out:
	for (size_t i = 0; i < nruns; i++)
		free(rd[i].buf);
	free(rd);
	free(heap);
	buf_free(&acc);
	return rc;
}

/* An anonymous temporary file: unlinked at once, so it vanishes with its fd. */
static int merge_tmpfile(struct merge_ctx *m, const char *tmpdir)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/shoal-merge-XXXXXX",
	                 tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
	if (n < 0 || (size_t)n >= sizeof(path))
		return merge_fail(m, "merge: temporary directory path too long");
	int fd = mkstemp(path);
	if (fd < 0)
		return merge_fail(m, "merge: %s: mkstemp: %s", path, strerror(errno));
	unlink(path);
	return fd;
}

static int merge_all(struct merge_ctx *mp, const struct merge_run *runs, size_t nruns, int out_fd,
                     const char *tmpdir, uint64_t *out_bytes);

int merge_runs(const struct merge_run *runs, size_t nruns, bool sum_keys, int out_fd,
               const char *tmpdir, uint64_t *out_bytes, char *err, size_t errlen)
{
	struct merge_ctx m = {.sum_keys = sum_keys, .err = err, .errlen = errlen};
	return merge_all(&m, runs, nruns, out_fd, tmpdir, out_bytes);
}

int merge_runs_grouped(const struct merge_run *runs, size_t nruns, int out_fd, const char *tmpdir,
                       uint64_t *out_bytes, char *err, size_t errlen)
{
	struct merge_ctx m = {.group_keys = true, .err = err, .errlen = errlen};
	return merge_all(&m, runs, nruns, out_fd, tmpdir, out_bytes);
}

static int merge_all(struct merge_ctx *mp, const struct merge_run *runs, size_t nruns, int out_fd,
                     const char *tmpdir, uint64_t *out_bytes)
{
	struct merge_ctx m = *mp;
	struct merge_run *cur = NULL;
	size_t ncur = nruns;
	int cur_fd = -1;
	int rc = -1;

	/* Passes: while there are more runs than the fan-in, merge groups of MERGE_FANIN into
	 * one temporary file (the groups' outputs one after the other), which gives the next
	 * pass's runs. At most two temporary files are open at once. */
	const struct merge_run *src = runs;
	bool first = true;
	while (ncur > MERGE_FANIN) {
		int fd = merge_tmpfile(&m, tmpdir);
		if (fd < 0)
			goto out;
		size_t ngroups = (ncur + MERGE_FANIN - 1) / MERGE_FANIN;
		struct merge_run *next = xcalloc(ngroups, sizeof(*next));
		m.out_fd = fd;
		m.written = 0;
		for (size_t g = 0; g < ngroups; g++) {
			size_t lo = g * MERGE_FANIN;
			size_t cnt = ncur - lo < MERGE_FANIN ? ncur - lo : MERGE_FANIN;
			uint64_t before = m.written;
			/* Run numbers in messages are the caller's on the first pass. */
			if (merge_group(&m, src + lo, cnt, first ? lo : 0) < 0) {
				free(next);
				close(fd);
				goto out;
			}
			next[g] = (struct merge_run){fd, before, m.written - before};
		}
		free(cur);
		if (cur_fd >= 0)
			close(cur_fd);
		cur = next;
		cur_fd = fd;
		src = cur;
		ncur = ngroups;
		first = false;
	}
	m.out_fd = out_fd;
	m.written = 0;
	if (merge_group(&m, src, ncur, 0) < 0)
		goto out;
	*out_bytes = m.written;
	rc = 0;
out:
	free(cur);
	if (cur_fd >= 0)
		close(cur_fd);
	buf_free(&m.out);
	buf_free(&m.prev);
	return rc;
}
