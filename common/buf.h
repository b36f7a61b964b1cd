/* buf.h: a growable byte buffer. The buffer owns `data`; buf_free releases it. */
#ifndef SHOAL_BUF_H
#define SHOAL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

/* Ensures room for `extra` more bytes; returns a pointer to data + len. */
uint8_t *buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_byte(struct buf *b, uint8_t c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (moves the rest down). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Gives the bytes to the caller (who frees them with free()); leaves b empty. */
uint8_t *buf_steal(struct buf *b, size_t *len);

#endif
