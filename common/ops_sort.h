/* ops_sort.h: shared-private (ops.c and shuffle.c): the bytewise sort of byte strings behind
 * the sort and wordcount ops, for other modules that sort records without copying them. */
#ifndef SHOAL_OPS_SORT_H
#define SHOAL_OPS_SORT_H

#include <stddef.h>
#include <stdint.h>

/* A byte string in someone else's buffer (borrowed), with a word that travels with it. */
struct ops_item {
	const uint8_t *p;
	size_t len;
	uint64_t aux; /* wordcount: the count; free for the caller's use */
};

/* Sorts items bytewise by their bytes, as memcmp with the shorter string first on a tie of the
 * common prefix (LC_ALL=C sort); the order of equal strings is unspecified. O(n log n + total
 * distinguishing bytes), stack depth O(log n). */
void ops__sort_items(struct ops_item *items, size_t n);

#endif
