/* fuzz_records: record iteration and the cutter over arbitrary bytes.
 *
 * record_iter must return the input's records exactly (each up to its '\n', the last one
 * possibly without). The cutter, fed in chunks of sizes derived from the input with a small
 * target, must emit partitions that tile the input and close exactly at the first '\n' that
 * makes a partition at least `target` bytes long. Any violation abort()s. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tiles {
	const uint8_t *data;
	size_t size;
	uint64_t target;
	uint64_t next; /* offset the next partition must start at */
	size_t count;
};

/* Checks one emitted partition against the input (each partition is checked as if it were
 * not the last; cutter_finish's one is checked on its own). */
static void on_emit(void *arg, uint64_t offset, uint64_t length)
{
	struct tiles *t = arg;
	if (offset != t->next || length == 0 || offset + length > t->size)
		abort();
	t->next = offset + length;
	t->count++;
}

static void check_closed(const struct tiles *t, uint64_t offset, uint64_t length, int last)
{
	const uint8_t *p = t->data + offset;
	/* No '\n' before the end that would already have closed the partition. */
	uint64_t target = t->target ? t->target : 1;
	for (uint64_t i = target - 1; i + 1 < length; i++)
		if (p[i] == '\n')
			abort();
	if (!last && (length < target || p[length - 1] != '\n'))
		abort();
}

struct part {
	uint64_t offset, length;
};
struct parts {
	struct tiles t;
	struct part *v;
	size_t n, cap;
};

static void collect(void *arg, uint64_t offset, uint64_t length)
{
	struct parts *ps = arg;
	on_emit(&ps->t, offset, length);
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? 2 * ps->cap : 16;
		ps->v = realloc(ps->v, ps->cap * sizeof(*ps->v));
		if (ps->v == NULL)
			abort();
	}
	ps->v[ps->n++] = (struct part){offset, length};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Records: reassembling them gives the input back. */
	struct record_iter it;
	record_iter_init(&it, data, size);
	const uint8_t *rec;
	size_t reclen, pos = 0;
	while (record_iter_next(&it, &rec, &reclen)) {
		if (rec != data + pos || pos + reclen > size || memchr(rec, '\n', reclen) != NULL)
			abort();
		pos += reclen;
		if (pos < size) {
			if (data[pos] != '\n')
				abort();
			pos++;
		}
	}
	if (pos != size)
		abort();

	/* Cutter. */
	uint64_t s = fuzz_hash(data, size);
	struct parts ps = {.t = {data, size, fuzz_rand(&s) % 40, 0, 0}};
	struct cutter c;
	cutter_init(&c, ps.t.target);
	size_t off = 0;
	while (off < size) {
		/* Empty feeds too, now and then. */
		size_t n = (fuzz_rand(&s) % 16) == 0 ? 0 : fuzz_chunk(&s, size - off);
		cutter_feed(&c, data + off, n, collect, &ps);
		off += n;
	}
	size_t before = ps.n;
	cutter_finish(&c, collect, &ps);
	if (ps.n > before + 1)
		abort();
	cutter_finish(&c, collect, &ps); /* a second finish emits nothing */
	if (ps.n > before + 1 || ps.t.next != size)
		abort();
	for (size_t i = 0; i < ps.n; i++)
		check_closed(&ps.t, ps.v[i].offset, ps.v[i].length, i + 1 == ps.n);
	free(ps.v);
	return 0;
}
