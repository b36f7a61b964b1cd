/* shuffle.h: the map side of a reduce job (--reduce-exec). A map task's output records are
 * grouped by key: the bytes before the first TAB (the whole record if it has none). Each
 * record goes to bucket hash(key) % nbuckets (FNV-1a 64); each bucket is sorted bytewise like
 * `LC_ALL=C sort`, which keeps equal keys together. The master merges bucket b of every map
 * task into reducer b's input. */
#ifndef SHOAL_SHUFFLE_H
#define SHOAL_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

uint32_t shuffle_bucket(const uint8_t *key, size_t len, uint32_t nbuckets);
/* Appends the nbuckets sorted buckets to out, in bucket order, every record ending in '\n';
 * sizes[b] receives the byte size of bucket b. */
void shuffle_partition(const uint8_t *data, size_t len, uint32_t nbuckets, struct buf *out,
		       uint64_t *sizes);

#endif
