/* exec.h: one --exec command for one task attempt (Hadoop Streaming style).
 *
 * The partition goes to `sh -c CMD` on stdin and the command's stdout is the partition's
 * result. Nothing here blocks the loop: the working directory is made and the job's files
 * linked into it on the thread pool, stdin is fed with non-blocking writes (a range is
 * generated 64 KiB at a time), stdout is handed on in pieces of `chunk` bytes as it arrives
 * (so output of any size streams through bounded memory), and the directory is removed on the
 * pool afterwards. The child leads its own process group (UV_PROCESS_DETACHED), so that
 * exec_kill and the end of the command kill everything it started. With a shim (shim.h, the
 * worker's own binary), the shim is the child: it runs the command, dies with the worker, and
 * on exec_kill (SIGTERM to it) or at the command's end kills the command's process group and
 * whatever left it (setsid, daemons), which the group kill alone would miss.
 *
 *   SETUP (pool: mkdtemp, link files, read split) --> RUNNING (child) --> [SHUFFLE (pool)]
 *     --> CLEANUP (pool: rm -rf the directory) --> on_done
 *
 * The process must ignore SIGPIPE (a child that stops reading stdin makes writes fail with
 * EPIPE, which is not an error by itself). */
#ifndef SHOAL_WORKER_EXEC_H
#define SHOAL_WORKER_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

#define EXEC_STDERR_TAIL 4096u /* bytes of stderr kept for the error message */
/* Bytes of that tail an error carries: the whole error, with the master's and the client's
 * words in front, must fit libshoal's 1 KiB and still end with the command's last words. */
#define EXEC_ERROR_TAIL 640u

struct exec;

/* A file put into the working directory: hard link to the cached file, or a copy. */
struct exec_file {
	const char *name; /* plain name (no '/') */
	const char *path; /* where the file is now */
};

enum exec_input {
	EXEC_INPUT_NONE,  /* stdin is empty */
	EXEC_INPUT_DATA,  /* data/len */
	EXEC_INPUT_RANGE, /* decimal lines lo..hi-1 */
	EXEC_INPUT_SPLIT, /* the records a byte range of path owns (records.h split_read) */
};

/* Everything is borrowed until on_done has returned. */
struct exec_params {
	const char *cmd;
	const char *shim;      /* NULL: run `sh -c cmd`; else `shim --exec-shim PID cmd` */
	const char *work_root; /* the working directory is made under this one */
	const char *label;     /* names the directory and log lines ("j3-t7-a1") */
	const struct exec_file *files;
	size_t nfiles;
	const char *broadcast;  /* NULL, or a file that must exist ($SHOAL_BROADCAST) */
	const char *const *env; /* KEY=VALUE added to the inherited environment (replacing) */
	size_t nenv;
	enum exec_input input;
	const uint8_t *data;
	size_t len;
	int64_t lo, hi;
	const char *path;
	uint64_t offset, length;
	size_t chunk;      /* stdout goes to on_output in pieces of this many bytes (>= 1) */
	uint32_t reducers; /* > 0: keep all of stdout, then shuffle it into this many buckets */
};

struct exec_result {
	bool ok;
	bool cancelled;    /* exec_kill ended it */
	char *error;       /* !ok: why, with the tail of stderr */
	struct buf out;    /* ok: stdout not handed to on_output (all of it with reducers) */
	uint64_t *buckets; /* reducers: nbuckets bucket sizes of out */
	uint32_t nbuckets;
	size_t missing;      /* a source file was missing: 1 + its index (nfiles: the broadcast) */
	uint64_t records;    /* records fed to stdin */
	uint64_t elapsed_us; /* from exec_start to on_done */
};

struct exec_callbacks {
	/* A piece of stdout while the command runs. Borrows data. May call exec_pause. */
	void (*on_output)(void *arg, const uint8_t *data, size_t len);
	/* The attempt is over and nothing of it is left (process, pipes, directory). res is
	 * the exec's: take fields by setting them to NULL / BUF_INIT; the rest is freed after
	 * the callback, and so is the exec. */
	void (*on_done)(void *arg, struct exec_result *res);
};

/* Starts an attempt. cb is copied. Returns the exec, which frees itself after on_done. */
struct exec *exec_start(uv_loop_t *loop, const struct exec_params *p,
                        const struct exec_callbacks *cb, void *arg);
/* SIGKILLs the command's process group (or stops it from starting); on_done still follows,
 * with cancelled set. Idempotent. */
void exec_kill(struct exec *e);
/* While paused, stdout is not read (the child blocks once the pipe is full). */
void exec_pause(struct exec *e, bool paused);

/* "SIGKILL" or "signal 77". */
void exec_signal_name(int sig, char *out, size_t outlen);

#endif
