/* shim.c: the keeper between shoal-worker and one --exec command (see shim.h).
 *
 * The shim is single-threaded and blocks the signals it acts on, taking them with sigwait, so
 * that no handler runs between a fork and the bookkeeping around it. */
#include "shim.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void shim_say(const char *what, const char *why)
{
	/* The command's stderr: the worker shows its tail in the attempt's error. */
	fprintf(stderr, "shoal-worker " SHIM_ARG ": %s%s%s\n", what, why[0] ? ": " : "", why);
}

/* Our parent in /proc/PID/stat: the field after the state, after the last ')'. */
static long shim_stat_ppid(const char *pid)
{
	char path[300], line[512];
	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	const char *p = strrchr(line, ')');
	char state;
	long ppid;
	if (p == NULL || sscanf(p + 1, " %c %ld", &state, &ppid) != 2)
		return -1;
	return ppid;
}

/* SIGKILLs every child of ours: the command's processes come back to us as their parents die
 * (we are their subreaper). */
static void shim_kill_children(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
	FILE *f = fopen(path, "r");
	if (f != NULL) {
		long pid;
		while (fscanf(f, "%ld", &pid) == 1)
			(void)kill((pid_t)pid, SIGKILL);
		fclose(f);
		return;
	}
	/* A kernel without /proc/PID/task/TID/children: look at every process's parent. */
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (shim_stat_ppid(de->d_name) == (long)getpid())
			(void)kill((pid_t)strtol(de->d_name, NULL, 10), SIGKILL);
	}
	closedir(d);
}

/* Kills the command's process group, then our children until none is left, reaping them;
 * records the command's status if it had not ended yet. */
static void shim_kill_all(pid_t cmd, int *status, bool *cmd_done)
{
	(void)kill(-cmd, SIGKILL);
	for (;;) {
		shim_kill_children();
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			return; /* ECHILD: nothing of the command is left */
		}
		if (p == cmd && !*cmd_done) {
			*status = st;
			*cmd_done = true;
		}
	}
}

/* Dies of sig (the worker then reports that signal), not leaving a core dump of the shim. */
static _Noreturn void shim_die(int sig)
{
	struct rlimit none = {0, 0};
	(void)setrlimit(RLIMIT_CORE, &none);
	(void)signal(sig, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void)kill(getpid(), sig);
	_exit(128 + sig); /* only if the signal did not end us */
}

/* Ends the shim the way the command ended, so the worker reports the command's status. */
static _Noreturn void shim_exit_as(int status)
{
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	shim_die(WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL);
}

int shim_main(int argc, char **argv)
{
	char *end = NULL;
	long parent = argc == 4 ? strtol(argv[2], &end, 10) : 0;
	if (argc != 4 || parent <= 1 || end == NULL || *end != '\0') {
		fprintf(stderr,
		        "usage: shoal-worker " SHIM_ARG " WORKER_PID CMD (run by shoal-worker for "
		        "each --exec command, not by hand)\n");
		return 2;
	}

	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	(void)sigprocmask(SIG_BLOCK, &set, &old);

	/* Die with the worker. It may have died before this line: then nothing runs. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		shim_say("PR_SET_PDEATHSIG", strerror(errno));
	if (getppid() != (pid_t)parent)
		_exit(128 + SIGKILL);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		shim_say("PR_SET_CHILD_SUBREAPER (processes that leave the command's process group "
		         "are not stopped with it)",
		         strerror(errno));

	pid_t cmd = fork();
	if (cmd < 0) {
		shim_say("cannot fork", strerror(errno));
		_exit(126);
	}
	if (cmd == 0) {
		(void)setpgid(0, 0);
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		execl("/bin/sh", "sh", "-c", argv[3], (char *)NULL);
		shim_say("cannot run /bin/sh", strerror(errno));
		_exit(127);
	}
	(void)setpgid(cmd, cmd); /* both sides: whichever runs first */
	/* The pipes belong to the command: the worker sees their end when the command's are. */
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		(void)dup2(null, STDIN_FILENO);
		(void)dup2(null, STDOUT_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}

	int status = 0;
	bool done = false;
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGCHLD)
			break; /* stop: cancelled, timed out, or the worker is gone */
		int st;
		pid_t p;
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			if (p == cmd) {
				status = st;
				done = true;
			}
		}
		if (done)
			break;
	}
	bool stopped = !done;
	shim_kill_all(cmd, &status, &done);
	if (stopped)
		shim_die(SIGKILL);
	shim_exit_as(status);
}
