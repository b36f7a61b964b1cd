/* accuracy.h: scoring a knn result against labeled queries, for `shoal run --op knn --arg
 * labeled=1 --input FILE`. The result streams by (one predicted label per line, in query
 * order) while the query file is read again alongside it, one row per result line, so that
 * neither is held whole. A query row is f1,...,fd,label; its label is the last field, blanks
 * (spaces, tabs) around it and a trailing CR dropped, and a prediction is correct when it is
 * the same bytes. As the knn op does, the first line of the file is a header, skipped, when
 * its first field is not a decimal number. Socket-free, for the unit tests. */
#ifndef SHOAL_CLIENT_ACCURACY_H
#define SHOAL_CLIENT_ACCURACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct accuracy;

/* Takes queries (the query file, open for reading; closed by accuracy_destroy). Never NULL. */
struct accuracy *accuracy_create(FILE *queries);
/* Feeds the next len bytes of the result, split anywhere. */
void accuracy_feed(struct accuracy *a, const void *data, size_t len);
/* After the whole result: 0 with the counts of correct predictions and of rows, or -1 with
 * the reason no score can be given (the result and the queries have different numbers of
 * rows, the file cannot be read). */
int accuracy_finish(struct accuracy *a, uint64_t *correct, uint64_t *total, char *err,
                    size_t errlen);
void accuracy_destroy(struct accuracy **a);

/* Writes "accuracy: C/N = X" (X with 4 decimals; "n/a" when N is 0), without a newline. */
void accuracy_format(uint64_t correct, uint64_t total, char *out, size_t n);

/* Whether a job with this op and these --arg KEY=VALUE strings scores its queries: op knn
 * with labeled=1 (the first labeled= counts, as the op reads it). */
bool accuracy_wanted(const char *op, const char *const *args, size_t nargs);

/* Whether row (a line without its '\n') would be the knn op's header if it came first: its
 * first field, up to the first ',', is not a decimal number ([+-]digits[.digits][e[+-]digits],
 * blanks around it allowed, finite). */
bool accuracy_is_header(const char *row, size_t len);

#endif
