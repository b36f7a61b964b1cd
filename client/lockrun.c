/* lockrun.c: see lockrun.h. */
#include "lockrun.h"

#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

/* The signals the runner waits for instead of letting them act. */
static const int lockrun_signals[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT};

int lockrun_exit_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 1;
}

/* 0 if path is an executable regular file, else an errno value. */
static int lockrun_executable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if (access(path, X_OK) < 0)
		return errno;
	return 0;
}

int lockrun_check_command(const char *cmd, char *err, size_t errlen)
{
	const char *path = getenv("PATH");
	const char *p;
	int e, seen = 0;

	if (!cmd[0]) {
		snprintf(err, errlen, "empty command name");
		return LOCKRUN_EXIT_NOTFOUND;
	}
	if (strchr(cmd, '/')) {
		e = lockrun_executable(cmd);
		if (e == 0)
			return 0;
		snprintf(err, errlen, "cannot run %s: %s", cmd, strerror(e));
		return e == ENOENT || e == ENOTDIR ? LOCKRUN_EXIT_NOTFOUND : LOCKRUN_EXIT_CANNOT;
	}
	/* posix_spawnp's default search path when PATH is unset (glibc). */
	if (!path)
		path = "/bin:/usr/bin";
	for (p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char *cand = xmalloc(n + strlen(cmd) + 3);
		/* An empty PATH element is the current directory. */
		snprintf(cand, n + strlen(cmd) + 3, "%.*s%s%s", (int)n, n ? p : ".", "/", cmd);
		e = lockrun_executable(cand);
		free(cand);
		if (e == 0)
			return 0;
		if (e != ENOENT && e != ENOTDIR)
			seen = e;
		if (!end)
			break;
		p = end;
	}
	if (seen) {
		snprintf(err, errlen, "cannot run %s: %s", cmd, strerror(seen));
		return LOCKRUN_EXIT_CANNOT;
	}
	snprintf(err, errlen, "%s: command not found", cmd);
	return LOCKRUN_EXIT_NOTFOUND;
}

/* environ with SHOAL_LOCK_TOKEN and SHOAL_LOCK_NAME set (replacing inherited ones). The
 * array and the two new strings are owned by the caller: env[0] and env[1]. */
static char **lockrun_environment(const struct lockrun *r)
{
	size_t n = 0, k = 2;
	char **env;
	size_t len;

	while (environ && environ[n])
		n++;
	env = xcalloc(n + 3, sizeof(*env));
	len = strlen(r->name) + sizeof("SHOAL_LOCK_NAME=");
	env[0] = xmalloc(32 + sizeof("SHOAL_LOCK_TOKEN="));
	snprintf(env[0], 32 + sizeof("SHOAL_LOCK_TOKEN="), "SHOAL_LOCK_TOKEN=%" PRIu64, r->token);
	env[1] = xmalloc(len);
	snprintf(env[1], len, "SHOAL_LOCK_NAME=%s", r->name);
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "SHOAL_LOCK_TOKEN=", 17) != 0 &&
		    strncmp(environ[i], "SHOAL_LOCK_NAME=", 16) != 0)
			env[k++] = environ[i];
	env[k] = NULL;
	return env;
}

static void lockrun_warn(const struct lockrun *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void lockrun_warn(const struct lockrun *r, const char *fmt, ...)
{
	va_list ap;
	FILE *f = r->diag ? r->diag : stderr;

	fputs("shoal: ", f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

static uint64_t now_ms(void)
{
	return mono_us() / 1000;
}

/* Starts the command; 0 and *pid, or an errno value. */
static int lockrun_spawn(const struct lockrun *r, const sigset_t *mask, pid_t *pid)
{
	posix_spawnattr_t attr;
	sigset_t def;
	char **env = lockrun_environment(r);
	int rc;

	sigemptyset(&def);
	/* main() ignores SIGPIPE for its own writes; the command gets the default back. SIGCHLD
	 * was set to its default by lockrun. Other ignored signals stay ignored (nohup). */
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, mask);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(pid, r->argv[0], NULL, &attr, r->argv, env);
	posix_spawnattr_destroy(&attr);
	free(env[0]);
	free(env[1]);
	free(env);
	return rc;
}

/* Waits up to timeout_ms for one of the runner's signals. Returns the signal, 0 on timeout. */
static int lockrun_wait_signal(const sigset_t *set, uint64_t timeout_ms, siginfo_t *info)
{
	struct timespec ts = {(time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000L};

	for (;;) {
		int sig = sigtimedwait(set, info, &ts);
		if (sig >= 0)
			return sig;
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return 0; /* cannot happen with a valid set; treat as a timeout */
	}
}

/* Reaps the command if it has exited: true and *wstatus. */
static bool lockrun_reaped(pid_t pid, int *wstatus)
{
	pid_t got;

	do
		got = waitpid(pid, wstatus, WNOHANG);
	while (got < 0 && errno == EINTR);
	if (got < 0 && errno == ECHILD) {
		*wstatus = 1 << 8; /* someone else reaped it: its status is unknown (exit 1) */
		return true;
	}
	return got == pid;
}

/* A signal sent to the runner by another process goes on to the command; one a terminal
 * generated (si_code > 0: SI_KERNEL) reached the command's process group already. */
static void lockrun_forward(pid_t pid, int sig, const siginfo_t *info)
{
	if (sig != SIGCHLD && info->si_code <= 0)
		(void)kill(pid, sig);
}

/* Stops the command after the lease is gone: SIGTERM, grace_ms, SIGKILL. */
static void lockrun_stop(const struct lockrun *r, const sigset_t *set, pid_t pid)
{
	uint64_t end = now_ms() + r->grace_ms;
	siginfo_t info;
	int wstatus;

	(void)kill(pid, SIGTERM);
	for (;;) {
		uint64_t now = now_ms();
		if (lockrun_reaped(pid, &wstatus))
			return;
		if (now >= end)
			break;
		(void)lockrun_wait_signal(set, end - now, &info);
	}
	lockrun_warn(r, "the command did not exit within %" PRIu32 " ms of SIGTERM: SIGKILL",
	             r->grace_ms);
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
}

int lockrun(const struct lockrun *r, sigset_t *saved, bool *lease_held)
{
	struct sigaction dfl, old_chld;
	sigset_t set;
	siginfo_t info;
	pid_t pid;
	uint64_t next;
	int wstatus = 0, rc;
	char err[1024];

	*lease_held = true;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(lockrun_signals); i++)
		sigaddset(&set, lockrun_signals[i]);
	sigprocmask(SIG_BLOCK, &set, saved);
	/* With SIGCHLD ignored, children are reaped by the kernel and waitpid cannot see the
	 * command's status. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, &dfl, &old_chld);

	rc = lockrun_spawn(r, saved, &pid);
	if (rc != 0) {
		lockrun_warn(r, "cannot run %s: %s", r->argv[0], strerror(rc));
		sigaction(SIGCHLD, &old_chld, NULL);
		return rc == ENOENT ? LOCKRUN_EXIT_NOTFOUND : LOCKRUN_EXIT_CANNOT;
	}

	next = now_ms() + r->interval_ms;
	for (;;) {
		uint64_t now = now_ms();

		if (lockrun_reaped(pid, &wstatus))
			break;
		if (now < next) {
			int sig = lockrun_wait_signal(&set, next - now, &info);
			if (sig > 0)
				lockrun_forward(pid, sig, &info);
			continue;
		}
		err[0] = '\0';
		rc = r->renew(r->arg, err, sizeof(err));
		if (rc == 0) {
			next = now_ms() + r->interval_ms;
			continue;
		}
		/* The command may have ended while the renewal ran: then it finished under the
		 * lock as far as anyone can tell, and its status stands. */
		if (lockrun_reaped(pid, &wstatus))
			break;
		if (rc == LOCKRUN_LOST && err[0])
			lockrun_warn(r, "WARNING: %s; stopping the command (SIGTERM)", err);
		else if (rc == LOCKRUN_LOST)
			lockrun_warn(r,
			             "WARNING: lost lock %s (token %" PRIu64 "); stopping the "
			             "command (SIGTERM)",
			             r->name, r->token);
		else
			lockrun_warn(r,
			             "WARNING: cannot renew lock %s (token %" PRIu64 "): %s; the "
			             "lease will lapse, stopping the command (SIGTERM)",
			             r->name, r->token, err[0] ? err : "no answer");
		*lease_held = false;
		lockrun_stop(r, &set, pid);
		sigaction(SIGCHLD, &old_chld, NULL);
		return rc == LOCKRUN_LOST ? LOCKRUN_EXIT_LOST : LOCKRUN_EXIT_CONN;
	}
	sigaction(SIGCHLD, &old_chld, NULL);
	return lockrun_exit_status(wstatus);
}
