/* fuzz_fold: the master's checks on partial results that come from workers.
 *
 * The first byte picks a FOLD op (sum, count, min, max, mean) and a mode; the rest is folded
 * as partials: one partial per line (each with its '\n'), optionally with "OP " put in front
 * so that the fuzzer reaches the number parsers, then the whole rest as one partial. Then
 * op_fold_finish. None of this may crash whatever the bytes. The same bytes then go through
 * op_run_check for the MERGE ops (sort, wordcount). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fold_ops[] = {"sum", "count", "min", "max", "mean"};

static void fold_line(struct op_fold *f, const char *name, int prefix, const uint8_t *p, size_t n)
{
	char err[512];
	if (!prefix) {
		(void)op_fold_add(f, p, n, err, sizeof(err));
		return;
	}
	size_t nl = strlen(name);
	uint8_t *q = malloc(nl + 1 + n);
	if (q == NULL)
		abort();
	memcpy(q, name, nl);
	q[nl] = ' ';
	if (n)
		memcpy(q + nl + 1, p, n);
	(void)op_fold_add(f, q, nl + 1 + n, err, sizeof(err));
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t sel = data[0];
	const char *name = fold_ops[(sel & 0x7f) % 5];
	int prefix = (sel & 0x80) != 0;
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	char err[512];

	const struct op_desc *op = op_find(name);
	if (op == NULL || op->combine != OP_COMBINE_FOLD)
		abort();
	struct op_fold *f = op_fold_create(op);
	if (f == NULL)
		abort();
	size_t i = 0;
	while (i < n) {
		const uint8_t *nl = memchr(rest + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - rest) + 1 : n;
		fold_line(f, name, prefix, rest + i, end - i);
		i = end;
	}
	fold_line(f, name, prefix, rest, n);
	struct buf out = BUF_INIT;
	if (op_fold_finish(f, &out, err, sizeof(err)) == 0) {
		/* A result is one line. */
		if (out.len == 0 || out.data[out.len - 1] != '\n' ||
		    memchr(out.data, '\n', out.len - 1) != NULL)
			abort();
	}
	buf_free(&out);
	op_fold_destroy(&f);
	if (f != NULL)
		abort();

	/* MERGE partials. */
	static const char *const merge_ops[] = {"sort", "wordcount"};
	for (size_t k = 0; k < 2; k++) {
		const struct op_desc *m = op_find(merge_ops[k]);
		if (m == NULL)
			abort();
		(void)op_run_check(m, rest, n, err, sizeof(err));
		(void)op_run_check(m, data, size, err, sizeof(err));
	}
	return 0;
}
