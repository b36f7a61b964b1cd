/* shim.h: the keeper between shoal-worker and one --exec command.
 *
 * shoal-worker runs each command as `shoal-exec-shim --exec-shim WORKER_PID CMD` (a small
 * program installed beside it; without it, its own binary does the same), and the shim runs
 * `sh -c CMD` in a process group of its own. The
 * shim is what makes "the command is stopped" mean every process the command started:
 *
 *   - it dies with the worker: PR_SET_PDEATHSIG delivers SIGTERM to it when the worker is
 *     gone (SIGKILL, a crash), so a retried attempt never runs beside an orphan;
 *   - it is a child subreaper (PR_SET_CHILD_SUBREAPER): a process of the command that leaves
 *     the process group (setsid, a daemon's double fork) is re-parented to the shim once its
 *     parent dies, not to init, so the shim can still find it;
 *   - when the command ends, or on SIGTERM (the worker cancels the attempt or its timeout
 *     passed), it SIGKILLs the command's process group and then every child it has left,
 *     round after round as orphans come back to it, until it has none; then it exits with the
 *     command's exit status (or dies of the command's signal).
 *
 * What still escapes: a process that moves out of the shim's subtree altogether, which only
 * a privileged process can arrange (a new PID namespace, a service manager starting it).
 *
 * Nothing here uses libuv: the shim is a plain process between fork and exec. */
#ifndef SHOAL_WORKER_SHIM_H
#define SHOAL_WORKER_SHIM_H

/* The argument that selects the shim: `shoal-worker --exec-shim WORKER_PID CMD`. */
#define SHIM_ARG "--exec-shim"

/* Runs the shim; returns only on a usage error (2). */
int shim_main(int argc, char **argv);

#endif
