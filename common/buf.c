/* buf.c: growable byte buffer with geometric growth (amortised O(1) appends). */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BUF_MIN_CAP 64u

uint8_t *buf_reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len) {
		fprintf(stderr, "shoal: buffer size overflow\n");
		abort();
	}
	size_t need = b->len + extra;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf_reserve(b, n), p, n);
	b->len += n;
}

void buf_append_byte(struct buf *b, uint8_t c)
{
	*buf_reserve(b, 1) = c;
	b->len++;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	/* Try in the spare room first; most lines fit and need one vsnprintf. */
	size_t room = b->cap - b->len;
	va_start(ap, fmt);
	int n = vsnprintf(room ? (char *)b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= room) {
		char *p = (char *)buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(p, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

uint8_t *buf_steal(struct buf *b, size_t *len)
{
	uint8_t *p = b->data;
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
