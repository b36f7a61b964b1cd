/* frame.h: the wire's framing, with no sockets in sight.
 *
 * A frame is a 4-byte big-endian payload length N followed by N payload bytes. N must be in
 * [1, max]. frame_parse is a pure function; struct frame_decoder assembles frames from a byte
 * stream and never allocates more than the bytes it has actually received plus one read
 * buffer, so a peer that claims a 4 GiB frame costs nothing. */
#ifndef SHOAL_FRAME_H
#define SHOAL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_SIZE 4u
#define FRAME_DEFAULT_MAX (64u << 20)

enum frame_status {
	FRAME_NEED_MORE = 0,
	FRAME_READY = 1,
	FRAME_ERR_EMPTY = -1,     /* length 0 */
	FRAME_ERR_TOO_LARGE = -2, /* length > max */
};

/* Looks at buf[0..len). Sets *payload_len as soon as the header is complete (also with
 * FRAME_NEED_MORE), so a caller knows how much is coming. */
enum frame_status frame_parse(const uint8_t *buf, size_t len, uint32_t max, uint32_t *payload_len);
void frame_put_header(uint8_t out[FRAME_HEADER_SIZE], uint32_t payload_len);
/* Human text for a status, e.g. "frame length 4294967295 exceeds the maximum 67108864". */
const char *frame_status_str(enum frame_status st);

struct frame_decoder {
	uint8_t *buf; /* owned */
	size_t len;   /* bytes held */
	size_t start; /* first unconsumed byte */
	size_t cap;
	uint32_t max;
	uint32_t claimed; /* length announced by the current header, for error text */
};

void frame_decoder_init(struct frame_decoder *d, uint32_t max);
void frame_decoder_deinit(struct frame_decoder *d);
/* Space to read into: at least min(want, 64 KiB) bytes, growing only with received data. */
void frame_decoder_space(struct frame_decoder *d, uint8_t **p, size_t *n);
/* Records that n bytes were written into the space returned by frame_decoder_space. */
void frame_decoder_commit(struct frame_decoder *d, size_t n);
/* Copies bytes in (for tests and callers that do not read in place). */
void frame_decoder_feed(struct frame_decoder *d, const uint8_t *p, size_t n);
/* Next complete frame: FRAME_READY with *payload valid until the next call, FRAME_NEED_MORE,
 * or an error (the stream is then unusable). */
enum frame_status frame_decoder_next(struct frame_decoder *d, const uint8_t **payload,
				     uint32_t *len);

#endif
