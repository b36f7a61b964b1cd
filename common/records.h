/* records.h: newline-terminated records and the ways inputs are cut into partitions.
 *
 * A record is the bytes up to and including '\n'; the last record of an input may lack the
 * '\n'. No other byte is special: CR, NUL and invalid UTF-8 are kept as they are. */
#ifndef SHOAL_RECORDS_H
#define SHOAL_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct record_iter {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

void record_iter_init(struct record_iter *it, const uint8_t *p, size_t len);
/* Next record without its '\n' (CR kept). False at the end. */
bool record_iter_next(struct record_iter *it, const uint8_t **rec, size_t *reclen);

/* Cuts a byte stream into partitions of about `target` bytes on record boundaries: a
 * partition ends right after the first '\n' that makes it at least `target` bytes long (so a
 * record longer than `target` is never split; target 0 acts as 1). */
struct cutter {
	uint64_t target;
	uint64_t pos;   /* bytes fed so far */
	uint64_t start; /* start of the partition being filled */
};
typedef void (*cutter_emit_fn)(void *arg, uint64_t offset, uint64_t length);

void cutter_init(struct cutter *c, uint64_t target);
/* Feeds the next n bytes of the stream; emit runs once for each partition completed. */
void cutter_feed(struct cutter *c, const uint8_t *p, size_t n, cutter_emit_fn emit, void *arg);
/* End of stream: emits the last partition if it is not empty. */
void cutter_finish(struct cutter *c, cutter_emit_fn emit, void *arg);

/* Reads the records a byte-range split of a file owns into out (appended). A split
 * [offset, offset+length) owns the records whose first byte lies inside it; a record starts
 * at byte 0 or right after a '\n'; the last owned record is read to its end even past the
 * range. Splits that tile a file therefore read every record exactly once. Blocking I/O:
 * call it off the event loop. Returns 0, or -1 with a reason naming the path. */
int split_read(const char *path, uint64_t offset, uint64_t length, struct buf *out, char *err,
	       size_t errlen);

#endif
