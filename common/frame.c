/* frame.c: length-prefixed framing and the stream assembler.
 *
 * The decoder never trusts the announced length for allocation: its buffer grows (doubling
 * from FRAME_READ_CHUNK) only when the bytes already received fill it, so memory stays within
 * about twice what the peer actually sent, whatever it claims. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Read size offered to the socket and the decoder's first allocation. */
#define FRAME_READ_CHUNK (64u * 1024u)

static uint32_t frame_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

enum frame_status frame_parse(const uint8_t *buf, size_t len, uint32_t max, uint32_t *payload_len)
{
	if (len < FRAME_HEADER_SIZE)
		return FRAME_NEED_MORE;
	uint32_t n = frame_get_be32(buf);
	*payload_len = n;
	if (n == 0)
		return FRAME_ERR_EMPTY;
	/* Decided from the header alone: nothing of an oversized frame is ever buffered. */
	if (n > max)
		return FRAME_ERR_TOO_LARGE;
	if (len - FRAME_HEADER_SIZE < n)
		return FRAME_NEED_MORE;
	return FRAME_READY;
}

void frame_put_header(uint8_t out[FRAME_HEADER_SIZE], uint32_t payload_len)
{
	out[0] = (uint8_t)(payload_len >> 24);
	out[1] = (uint8_t)(payload_len >> 16);
	out[2] = (uint8_t)(payload_len >> 8);
	out[3] = (uint8_t)payload_len;
}

const char *frame_status_str(enum frame_status st)
{
	switch (st) {
	case FRAME_NEED_MORE:
		return "incomplete frame";
	case FRAME_READY:
		return "frame ready";
	case FRAME_ERR_EMPTY:
		return "empty frame (length 0)";
	case FRAME_ERR_TOO_LARGE:
		return "frame length exceeds the maximum";
	}
	return "unknown frame status";
}

void frame_decoder_init(struct frame_decoder *d, uint32_t max)
{
	/* No allocation yet: an idle connection costs no read buffer. */
	memset(d, 0, sizeof(*d));
	d->max = max;
}

void frame_decoder_deinit(struct frame_decoder *d)
{
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

/* Largest buffer a single frame can need; never below one read chunk so that tiny limits do
 * not force tiny reads. */
static size_t frame_decoder_limit(const struct frame_decoder *d)
{
	size_t limit = (size_t)FRAME_HEADER_SIZE + d->max;
	return limit < FRAME_READ_CHUNK ? FRAME_READ_CHUNK : limit;
}

/* Bytes still missing to complete the frame at `start` (0 if it is complete or invalid). */
static size_t frame_decoder_missing(const struct frame_decoder *d)
{
	size_t have = d->len - d->start;
	if (have < FRAME_HEADER_SIZE)
		return FRAME_HEADER_SIZE - have;
	uint32_t n = frame_get_be32(d->buf + d->start);
	if (n == 0 || n > d->max)
		return 0;
	size_t total = (size_t)FRAME_HEADER_SIZE + n;
	return have < total ? total - have : 0;
}

static void frame_decoder_compact(struct frame_decoder *d)
{
	if (d->start == 0)
		return;
	size_t have = d->len - d->start;
	if (have > 0)
		memmove(d->buf, d->buf + d->start, have);
	d->start = 0;
	d->len = have;
}

/* Makes cap - len >= room, compacting first and then doubling; `limit` caps the doubling
 * but never below what is needed. */
static void frame_decoder_grow(struct frame_decoder *d, size_t room, size_t limit)
{
	if (d->cap - d->len >= room)
		return;
	frame_decoder_compact(d);
	if (d->cap - d->len >= room)
		return;
	size_t need = d->len + room;
	size_t cap = d->cap ? d->cap : FRAME_READ_CHUNK;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > limit)
		cap = limit > need ? limit : need;
	d->buf = xrealloc(d->buf, cap);
	d->cap = cap;
}

void frame_decoder_space(struct frame_decoder *d, uint8_t **p, size_t *n)
{
	if (d->len == d->start) {
		d->len = d->start = 0;
		/* Give back a buffer that grew for one big frame once it has been consumed. */
		if (d->cap > FRAME_READ_CHUNK) {
			free(d->buf);
			d->buf = NULL;
			d->cap = 0;
		}
	} else if (d->start >= d->cap / 2) {
		frame_decoder_compact(d);
	}

	size_t missing = frame_decoder_missing(d);
	size_t room = missing < FRAME_READ_CHUNK ? missing : FRAME_READ_CHUNK;
	if (room == 0)
		room = 1;
	size_t limit = frame_decoder_limit(d);
	/* Doubling stops at the current frame's end: no need to hold more than one frame. */
	size_t have = d->len - d->start;
	if (have >= FRAME_HEADER_SIZE && missing > 0 && have + missing < limit)
		limit = have + missing > FRAME_READ_CHUNK ? have + missing : FRAME_READ_CHUNK;
	if (d->cap - d->len < room) {
		/* Never beyond the largest legal frame: a full buffer at the limit means the
		 * caller did not drain ready frames or the stream is already in error. */
		if (have >= limit) {
			*p = d->buf + d->len;
			*n = d->cap - d->len;
			return;
		}
		if (room > limit - have)
			room = limit - have;
		frame_decoder_grow(d, room, limit);
	}
	*p = d->buf + d->len;
	*n = d->cap - d->len;
}

void frame_decoder_commit(struct frame_decoder *d, size_t n)
{
	if (n > d->cap - d->len)
		n = d->cap - d->len;
	d->len += n;
}

void frame_decoder_feed(struct frame_decoder *d, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	if (d->len == d->start)
		d->len = d->start = 0;
	else if (d->start >= d->cap / 2)
		frame_decoder_compact(d);
	/* The bytes are real, so holding them all is fine (no limit). */
	frame_decoder_grow(d, n, SIZE_MAX);
	memcpy(d->buf + d->len, p, n);
	d->len += n;
}

enum frame_status frame_decoder_next(struct frame_decoder *d, const uint8_t **payload,
                                     uint32_t *len)
{
	uint32_t n = 0;
	if (d->buf == NULL)
		return FRAME_NEED_MORE;
	enum frame_status st = frame_parse(d->buf + d->start, d->len - d->start, d->max, &n);
	if (d->len - d->start >= FRAME_HEADER_SIZE)
		d->claimed = n;
	if (st != FRAME_READY)
		return st;
	*payload = d->buf + d->start + FRAME_HEADER_SIZE;
	*len = n;
	d->start += (size_t)FRAME_HEADER_SIZE + n;
	return FRAME_READY;
}
