/* shuffle.c: bucketing and sorting a map task's output for the reduce stage. Records are not
 * copied until the output is written: each bucket is an array of pointers into the input,
 * sorted by ops.c's bytewise sort. */
#include "shuffle.h"

#include <stdlib.h>
#include <string.h>

#include "ops_sort.h"
#include "records.h"
#include "util.h"

uint32_t shuffle_bucket(const uint8_t *key, size_t len, uint32_t nbuckets)
{
	/* FNV-1a 64: fixed by the contract, so that any worker (or a reducer written in another
	 * language) sends a key to the same bucket. */
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 0x100000001b3u;
	return nbuckets > 1 ? (uint32_t)(h % nbuckets) : 0;
}

/* Sorts records by (key, rest of the line): the order merge_runs_grouped expects. Sorting
 * whole lines would not do: a line "a" without TAB, "a\x01<TAB>x" and "a<TAB>y" sort as
 * a, a\x01, a, splitting key a. Each item's aux is overwritten. */
static void shuffle_sort_by_key(struct ops_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *tab = memchr(items[i].p, '\t', items[i].len);
		items[i].aux = items[i].len;
		items[i].len = tab != NULL ? (size_t)(tab - items[i].p) : items[i].len;
	}
	ops__sort_items(items, n);
	/* Within a run of equal keys, order by the rest (from the TAB on). */
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && items[j].len == items[i].len &&
		       memcmp(items[j].p, items[i].p, items[i].len) == 0)
			j++;
		if (j - i > 1) {
			for (size_t k = i; k < j; k++) {
				size_t klen = items[k].len;
				items[k].p += klen;
				items[k].len = (size_t)items[k].aux - klen;
				items[k].aux = klen;
			}
			ops__sort_items(items + i, j - i);
			for (size_t k = i; k < j; k++) {
				size_t klen = (size_t)items[k].aux;
				items[k].p -= klen;
				items[k].aux = items[k].len + klen;
				items[k].len = klen;
			}
		}
		i = j;
	}
	for (size_t i = 0; i < n; i++)
		items[i].len = (size_t)items[i].aux;
}

void shuffle_partition(const uint8_t *data, size_t len, uint32_t nbuckets, struct buf *out,
                       uint64_t *sizes)
{
	/* 0 buckets cannot hold the records: taken as 1 (sizes then needs room for one). */
	if (nbuckets == 0)
		nbuckets = 1;
	struct record_iter it;
	const uint8_t *rec;
	size_t rlen, n = 0;
	/* First pass: the bucket of each record (kept in aux) and the count per bucket. */
	size_t *start = xcalloc((size_t)nbuckets + 1, sizeof(*start));
	size_t cap = 1024;
	struct ops_item *items = xmalloc(cap * sizeof(*items));
	record_iter_init(&it, data, len);
	while (record_iter_next(&it, &rec, &rlen)) {
		const uint8_t *tab = memchr(rec, '\t', rlen);
		size_t klen = tab != NULL ? (size_t)(tab - rec) : rlen;
		uint32_t b = shuffle_bucket(rec, klen, nbuckets);
		if (n == cap) {
			cap *= 2;
			items = xrealloc(items, cap * sizeof(*items));
		}
		/* aux: bucket now, the record's full length once sorted by key below. */
		items[n++] = (struct ops_item){rec, rlen, b};
		start[b + 1]++;
	}
	/* Counting sort into bucket order, then each bucket sorted on its own. */
	for (uint32_t b = 0; b < nbuckets; b++)
		start[b + 1] += start[b];
	struct ops_item *sorted = xmalloc((n > 0 ? n : 1) * sizeof(*sorted));
	size_t *next = xmalloc((size_t)nbuckets * sizeof(*next));
	memcpy(next, start, (size_t)nbuckets * sizeof(*next));
	for (size_t i = 0; i < n; i++)
		sorted[next[items[i].aux]++] = items[i];
	free(next);
	free(items);

	/* Every record gets a '\n', a last one without it included: len + 1 bytes at most. */
	uint8_t *dst = buf_reserve(out, len + 1);
	size_t o = 0;
	for (uint32_t b = 0; b < nbuckets; b++) {
		struct ops_item *bk = sorted + start[b];
		size_t nb = start[b + 1] - start[b], from = o;
		shuffle_sort_by_key(bk, nb);
		for (size_t i = 0; i < nb; i++) {
			memcpy(dst + o, bk[i].p, bk[i].len);
			o += bk[i].len;
			dst[o++] = '\n';
		}
		sizes[b] = o - from;
	}
	out->len += o;
	free(sorted);
	free(start);
}
