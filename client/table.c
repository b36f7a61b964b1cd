/* table.c: see table.h. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

void table_init(struct table *t, size_t ncols, const bool *right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = right;
}

void table_add(struct table *t, const char *const *row)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = xstrdup(row[i] ? row[i] : "");
	t->nrows++;
}

void table_print(const struct table *t, FILE *f)
{
	size_t *w = xcalloc(t->ncols ? t->ncols : 1, sizeof(*w));
	struct buf line = BUF_INIT;

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t n = strlen(t->cells[r * t->ncols + i]);
			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		buf_reset(&line);
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			int pad = (int)w[i];

			if (i > 0)
				buf_printf(&line, "  ");
			if (t->right && t->right[i])
				buf_printf(&line, "%*s", pad, s);
			else
				buf_printf(&line, "%-*s", pad, s);
		}
		/* Padding of empty trailing cells is noise for diff and grep. */
		while (line.len > 0 && line.data[line.len - 1] == ' ')
			line.len--;
		if (line.len)
			fwrite(line.data, 1, line.len, f);
		fputc('\n', f);
	}
	buf_free(&line);
	free(w);
}

void table_deinit(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}
