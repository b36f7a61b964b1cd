/* fsutil.h: blocking file-system helpers for the worker's cache and task directories.
 *
 * Every function here blocks: call them before the loop runs, at exit, or from a pool
 * thread (uv_queue_work), never from a loop callback. Each returns 0, or -1 with a reason
 * naming the path in err. */
#ifndef SHOAL_WORKER_FSUTIL_H
#define SHOAL_WORKER_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: creates path and its missing parents with mode. */
int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);
/* rm -rf: removes path and everything under it, without following symlinks. A missing path
 * is not an error. Directories the tree made unwritable are made writable first. */
int fs_rmtree(const char *path, char *err, size_t errlen);
/* Puts src at dst: a hard link if possible (same file system), else a copy with src's
 * permission bits. dst must not exist. */
int fs_link_or_copy(const char *src, const char *dst, char *err, size_t errlen);

#endif
