/* lockrun.h: `shoal lock`'s command runner: runs a command while a lease is held and renews
 * the lease while it runs. Socket-free (the renewal is a callback), so the unit tests drive
 * it with a fake lease.
 *
 * The command is started with posix_spawnp (no shell; argv[0] is looked up in PATH) in the
 * caller's process group, so a terminal's Ctrl-C reaches it directly, with SHOAL_LOCK_TOKEN
 * and SHOAL_LOCK_NAME in its environment, SIGPIPE at its default action and the caller's
 * original signal mask. The runner then sleeps in sigtimedwait until the command exits
 * (SIGCHLD, reaped with waitpid WNOHANG), a signal arrives, or the next renewal is due: it
 * never polls. SIGINT, SIGTERM, SIGHUP and SIGQUIT that another process sends to the runner
 * are passed on to the command (those a terminal sends already reach the command, which is in
 * the same foreground process group); the runner carries on until the command exits.
 *
 * A renewal that reports the lease lost, or that cannot reach the master, stops the command:
 * SIGTERM, then SIGKILL if it has not exited after grace_ms. */
#ifndef SHOAL_CLIENT_LOCKRUN_H
#define SHOAL_CLIENT_LOCKRUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The renewal: 0 if the lease was extended; LOCKRUN_LOST if it is gone (the lease lapsed and
 * the lock moved on); any other value if the master could not be reached or did not answer
 * in time. err says why when it is not 0. */
#define LOCKRUN_LOST 1
typedef int (*lockrun_renew_fn)(void *arg, char *err, size_t errlen);

struct lockrun {
	char *const *argv;    /* the command and its arguments, NULL-terminated */
	const char *name;     /* the lock's name: messages and SHOAL_LOCK_NAME */
	uint64_t token;       /* SHOAL_LOCK_TOKEN */
	uint32_t interval_ms; /* time between renewals (ttl / 3) */
	uint32_t grace_ms;    /* after SIGTERM, how long the command has before SIGKILL */
	lockrun_renew_fn renew;
	void *arg;
	FILE *diag; /* warnings, each line starting "shoal: " (stderr) */
};

/* Exit statuses of lockrun besides the command's own. */
#define LOCKRUN_EXIT_LOST     1   /* the lease was lost: the command was stopped */
#define LOCKRUN_EXIT_CONN     3   /* the master could not be reached: the command was stopped */
#define LOCKRUN_EXIT_CANNOT   126 /* the command was found but could not be run */
#define LOCKRUN_EXIT_NOTFOUND 127 /* no such command */

/* Runs the command to its end and returns the exit status `shoal lock` exits with: the
 * command's exit status, 128+N if signal N ended it, or one of LOCKRUN_EXIT_*. On return
 * SIGCHLD, SIGINT, SIGTERM, SIGHUP and SIGQUIT are still blocked, so that none of them can end
 * the process while the caller releases the lock; *saved gets the mask to restore.
 * *lease_held is false if a renewal failed (the lease is lost or lapsing: nothing to release). */
int lockrun(const struct lockrun *r, sigset_t *saved, bool *lease_held);

/* Finds the command as posix_spawnp will (PATH unless it holds a '/'), so that a typo is
 * reported before waiting for a lock: 0, or LOCKRUN_EXIT_NOTFOUND / LOCKRUN_EXIT_CANNOT with
 * the reason in err. */
int lockrun_check_command(const char *cmd, char *err, size_t errlen);

/* The exit status for a waitpid status: the exit code, or 128 + the signal's number. */
int lockrun_exit_status(int wstatus);

#endif
