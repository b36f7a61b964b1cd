/* table.h: aligned text tables for `shoal jobs`, `shoal workers` and `shoal status`.
 * Cells are copied; columns are as wide as their widest cell (counted in bytes), two spaces
 * apart; numeric columns are right-aligned. Lines carry no trailing spaces. */
#ifndef SHOAL_CLIENT_TABLE_H
#define SHOAL_CLIENT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct table {
	size_t ncols;
	const bool *right; /* borrowed: ncols flags, true = right-aligned */
	char **cells;      /* owned: nrows * ncols strings */
	size_t nrows;
};

void table_init(struct table *t, size_t ncols, const bool *right);
/* Adds a row of exactly ncols strings (copied). */
void table_add(struct table *t, const char *const *row);
void table_print(const struct table *t, FILE *f);
void table_deinit(struct table *t);

#endif
