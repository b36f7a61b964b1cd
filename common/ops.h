/* ops.h: the registry of built-in ops. Each op has a map side (run by a worker over one
 * partition, producing a partial result) and a combine side (run by the master over the
 * partials). The combine kind says how partials become the job's result:
 *
 *   CONCAT  partials concatenated in partition order              square, grep, knn
 *   FOLD    partials folded, in any order, into one small value   sum, count, min, max, mean
 *   MERGE   partials are sorted runs of lines; the result is their
 *           k-way merge (merge.h), equal keys summed if sum_keys  sort, wordcount
 *
 * Every op's result is identical whatever the partitioning. Partials are text, validated by
 * the master before use (they come from the network). Output records always end in '\n'. */
#ifndef SHOAL_OPS_H
#define SHOAL_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "shoal.pb-c.h"

enum op_combine { OP_COMBINE_CONCAT, OP_COMBINE_FOLD, OP_COMBINE_MERGE };

struct op_desc {
	const char *name;
	enum op_combine combine;
	bool sum_keys;        /* MERGE: lines are KEY\tCOUNT, equal keys summed */
	const char *summary;  /* one line for --help */
	const char *args;     /* accepted --arg keys, space separated ("" for none) */
	bool needs_broadcast; /* the op reads the job's --broadcast file */
};

/* NULL if there is no such op. */
const struct op_desc *op_find(const char *name);
/* Iterates the registry: op_at(0..op_count()-1). */
size_t op_count(void);
const struct op_desc *op_at(size_t i);

/* Checks args against the op: unknown keys, missing or malformed values. 0 or -1 with the
 * reason ("grep needs --arg pattern=TEXT"). */
int op_args_check(const struct op_desc *op, Shoal__Arg *const *args, size_t nargs, char *err,
		  size_t errlen);

/* One partition's input: a range of integers or a buffer of records. */
struct op_input {
	bool is_range;
	int64_t lo, hi;      /* range: integers lo..hi-1 */
	const uint8_t *data; /* records */
	size_t len;
	const uint8_t *side; /* the job's --broadcast file, if any (knn's training set) */
	size_t side_len;
};

struct op_error {
	char msg[512];
	bool permanent; /* the data is at fault: running again cannot succeed */
};

/* Map side. Appends the partial result to out and counts records read. Thread-safe.
 * Returns 0, or -1 with err filled ("partition 3: record 17 is not an integer: \"x1\""). */
int op_run(const struct op_desc *op, Shoal__Arg *const *args, size_t nargs,
	   const struct op_input *in, uint32_t partition, struct buf *out, uint64_t *records,
	   struct op_error *err);

/* Combine side of FOLD ops. */
struct op_fold;
struct op_fold *op_fold_create(const struct op_desc *op);
/* op_fold_add's answer when the data itself is at fault: the exact result does not fit in 128
 * bits, whatever worker computed the partials. */
#define OP_FOLD_OVERFLOW (-2)
/* Folds one partial. -1 with a reason if it is malformed (the worker is at fault), or
 * OP_FOLD_OVERFLOW if the fold would overflow (the data is at fault). */
int op_fold_add(struct op_fold *f, const uint8_t *partial, size_t len, char *err, size_t errlen);
/* Writes the result (one line). -1 with a reason (e.g. "min of an empty input"). */
int op_fold_finish(struct op_fold *f, struct buf *out, char *err, size_t errlen);
void op_fold_destroy(struct op_fold **f);

/* Checks that a MERGE partial is a sorted run of well-formed lines (and, with sum_keys,
 * KEY\tCOUNT lines with unique keys). 0 or -1 with a reason. */
int op_run_check(const struct op_desc *op, const uint8_t *partial, size_t len, char *err,
		 size_t errlen);

#endif
