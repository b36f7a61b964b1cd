/* merge.h: k-way merge of sorted line runs stored in files, the combine step of the MERGE
 * ops. Bounded memory: one read buffer per run and a heap; more runs than the fan-in are
 * merged in passes through temporary files. Blocking I/O: run it on a worker thread. */
#ifndef SHOAL_MERGE_H
#define SHOAL_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct merge_run {
	int fd;          /* borrowed; read with pread */
	uint64_t offset; /* the run's bytes: [offset, offset+length) */
	uint64_t length;
};

/* Merges runs (each sorted bytewise by line, each line ending in '\n') into out_fd, starting at
 * its current offset. With sum_keys, lines are KEY\tCOUNT and lines with equal KEY become one
 * whose COUNT is the exact sum. Temporary files go in tmpdir. Returns 0 and the bytes
 * written, or -1 with a reason. */
int merge_runs(const struct merge_run *runs, size_t nruns, bool sum_keys, int out_fd,
               const char *tmpdir, uint64_t *out_bytes, char *err, size_t errlen);

/* The reduce stage's merge: runs (from shuffle.h) are sorted by key (the text before the first
 * TAB, the whole line if none), then by the rest of the line; the output keeps that order, so
 * each key's lines are adjacent. Otherwise as merge_runs without sum_keys. */
int merge_runs_grouped(const struct merge_run *runs, size_t nruns, int out_fd, const char *tmpdir,
                       uint64_t *out_bytes, char *err, size_t errlen);

#endif
