/* main.c: shoal-worker's entry point: flags, signals, the loop.
 *
 * Everything runs on one libuv loop; tasks run on libuv's thread pool (runner.c). The first
 * SIGINT/SIGTERM drains (running tasks finish and report, then every handle closes and the
 * loop closes cleanly); a second one exits at once. */
#include <inttypes.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "cache.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "notify.h"
#include "session.h"
#include "shim.h"
#include "tls.h"

#define SUBSYS "worker"

struct worker_main {
	uv_loop_t loop;
	uv_signal_t sigint;
	uv_signal_t sigterm;
	struct worker_session *session;
	int signals;
	int status;
};

static void on_signal(uv_signal_t *h, int signum)
{
	struct worker_main *m = h->data;
	if (++m->signals > 1) {
		/* Running tasks cannot be interrupted, so this is the only way out of a long one.
		 * _exit: pool threads are still running, atexit handlers are no place for them.
		 * Commands lead their own process groups: they would outlive us. */
		log_warn(SUBSYS, "event=exiting_now signal=\"%s\" why=\"second signal\"",
		         strsignal(signum));
		worker_session_kill_children(m->session);
		_exit(1);
	}
	log_info(SUBSYS,
	         "event=stopping signal=\"%s\" (finishing running tasks; signal again to exit now)",
	         strsignal(signum));
	notify_stopping();
	worker_session_stop(m->session);
}

static void on_session_stopped(void *arg, int status)
{
	struct worker_main *m = arg;
	m->status = status;
	/* The signal handles are the last thing keeping the loop alive. */
	uv_close((uv_handle_t *)&m->sigint, NULL);
	uv_close((uv_handle_t *)&m->sigterm, NULL);
}

/* The pool runs the tasks, and resolving the master's name (reconnects), blob writes and
 * exec tasks' directory work need it too: a few threads more than the slots keep those from
 * waiting behind long tasks. The pool reads the variable once, on first use, so this must
 * run before anything queues work. */
static void worker_size_threadpool(uint32_t slots)
{
	unsigned want = slots + 4;
	if (want > WORKER_MAX_SLOTS)
		want = WORKER_MAX_SLOTS;
	const char *cur = getenv("UV_THREADPOOL_SIZE");
	if (cur != NULL && strtoul(cur, NULL, 10) >= want)
		return;
	char buf[16];
	snprintf(buf, sizeof(buf), "%u", want);
	setenv("UV_THREADPOOL_SIZE", buf, 1);
}

/* Default working directories are TMPDIR/shoal-worker-PID-XXXXXX: a worker that was killed
 * (SIGKILL, a crash) leaves its own behind, maybe with a task's files in it; the next worker
 * on the host removes those whose process is gone. */
#define WORK_ROOT_PREFIX "shoal-worker-"

static void worker_remove_stale_roots(const char *tmp)
{
	DIR *d = opendir(tmp);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, WORK_ROOT_PREFIX, strlen(WORK_ROOT_PREFIX)) != 0)
			continue;
		char *end;
		long pid = strtol(de->d_name + strlen(WORK_ROOT_PREFIX), &end, 10);
		if (pid <= 0 || *end != '-' || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char path[4096], why[512];
		snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name);
		if (fs_rmtree(path, why, sizeof(why)) == 0)
			log_info(SUBSYS, "event=stale_work_dir_removed path=%s pid=%ld", path, pid);
	}
	closedir(d);
}

/* Each --exec command runs under a shim (shim.h): shoal-exec-shim beside this binary, or this
 * binary itself. */
#define WORKER_SELF      "/proc/self/exe"
#define WORKER_SHIM_NAME "shoal-exec-shim"

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], SHIM_ARG) == 0)
		return shim_main(argc, argv);
	struct worker_config cfg;
	unsigned ncpu = uv_available_parallelism();
	switch (
	    worker_config_parse(&cfg, argc, argv, getenv("SHOAL_MASTER"), ncpu, stdout, stderr)) {
	case WORKER_CONFIG_RUN:
		break;
	case WORKER_CONFIG_EXIT:
		return 0;
	default:
		return 2;
	}
	log_set_level(cfg.log_level);
	uint8_t *secret = NULL;
	size_t secret_len = 0;
	const char *secret_path = auth_secret_path(cfg.secret_file);
	if (secret_path != NULL) {
		char err[512];
		if (auth_secret_load(secret_path, &secret, &secret_len, err, sizeof(err)) < 0) {
			log_error(SUBSYS, "%s", err);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	worker_size_threadpool(cfg.slots);

	char host[256];
	size_t hostlen = sizeof(host);
	if (uv_os_gethostname(host, &hostlen) != 0)
		snprintf(host, sizeof(host), "localhost");
	char name[sizeof(cfg.name) + 32];
	if (cfg.name[0] != '\0')
		snprintf(name, sizeof(name), "%s", cfg.name);
	else
		snprintf(name, sizeof(name), "%s-%ld", host, (long)getpid());

	/* Where shipped files are cached and commands run. Blocking is fine: the loop has not
	 * started. */
	char cache_dir[sizeof(cfg.cache_dir)];
	if (cfg.cache_dir[0] != '\0')
		snprintf(cache_dir, sizeof(cache_dir), "%s", cfg.cache_dir);
	else if (cache_default_dir(cache_dir, sizeof(cache_dir)) != 0)
		cache_dir[0] = '\0';
	char work_root[sizeof(cfg.work_dir) + 64];
	char why[512];
	bool own_work_root = cfg.work_dir[0] == '\0';
	if (!own_work_root) {
		snprintf(work_root, sizeof(work_root), "%s", cfg.work_dir);
		if (fs_mkdir_p(work_root, 0700, why, sizeof(why)) != 0) {
			log_error(SUBSYS, "--work-dir: %s", why);
			auth_secret_free(&secret, secret_len);
			return 1;
		}
	} else {
		const char *tmp = getenv("TMPDIR");
		tmp = tmp != NULL && tmp[0] == '/' ? tmp : "/tmp";
		worker_remove_stale_roots(tmp);
		snprintf(work_root, sizeof(work_root), "%s/" WORK_ROOT_PREFIX "%ld-XXXXXX", tmp,
		         (long)getpid());
		if (mkdtemp(work_root) == NULL) {
			log_error(SUBSYS, "cannot make a working directory %s: %s", work_root,
			          strerror(errno));
			auth_secret_free(&secret, secret_len);
			return 1;
		}
	}

	struct tls_ctx *tls = NULL;
	const struct tls_files tls_files = {cfg.tls_cert, cfg.tls_key, cfg.tls_ca};
	if (tls_files_enabled(&tls_files) &&
	    tls_ctx_create(TLS_CLIENT, &tls_files, &tls, why, sizeof(why)) != 0) {
		log_error(SUBSYS, "%s", why);
		if (own_work_root)
			(void)fs_rmtree(work_root, why, sizeof(why));
		return 2;
	}

	struct worker_main m;
	memset(&m, 0, sizeof(m));
	int rc = uv_loop_init(&m.loop);
	if (rc != 0) {
		log_error(SUBSYS, "cannot create the event loop: %s", uv_strerror(rc));
		auth_secret_free(&secret, secret_len);
		return 1;
	}
	/* The shim is shoal-exec-shim in this binary's directory; else this binary, by its path
	 * (a process under valgrind must name the program, not the tool that runs it), or through
	 * /proc/self/exe if the file was replaced since. Without /proc neither can be found:
	 * commands then run under sh directly, and only their process group is killed with
	 * them. */
	char self[4096];
	ssize_t selflen = readlink(WORKER_SELF, self, sizeof(self) - sizeof(WORKER_SHIM_NAME) - 1);
	char *slash = selflen > 0 ? memrchr(self, '/', (size_t)selflen) : NULL;
	if (slash != NULL) {
		self[selflen] = '\0';
		char own[sizeof(self)];
		snprintf(own, sizeof(own), "%s", self);
		snprintf(slash + 1, sizeof(self) - (size_t)(slash + 1 - self), "%s",
		         WORKER_SHIM_NAME);
		if (access(self, X_OK) != 0)
			snprintf(self, sizeof(self), "%s", own);
		if (strstr(self, " (deleted)") != NULL || access(self, X_OK) != 0)
			snprintf(self, sizeof(self), "%s", WORKER_SELF);
	} else {
		snprintf(self, sizeof(self), "%s", WORKER_SELF);
	}
	const char *exec_shim = self;
	if (cfg.allow_exec && access(self, X_OK) != 0) {
		log_warn(SUBSYS,
		         "cannot run %s (%s): --exec commands run without their keeper, so a "
		         "command's processes outlive a killed worker and those that leave its "
		         "process group outlive a cancel or timeout",
		         self, strerror(errno));
		exec_shim = NULL;
	}
	const struct worker_session_config scfg = {
	    .master = cfg.master,
	    .master_host = cfg.master_host,
	    .master_port = cfg.master_port,
	    .name = name,
	    .host = host,
	    .advertise = cfg.advertise,
	    .slots = cfg.slots,
	    .allow_exec = cfg.allow_exec,
	    .cache_dir = cache_dir[0] != '\0' ? cache_dir : NULL,
	    .cache_size = cfg.cache_size,
	    .work_root = work_root,
	    .exec_shim = exec_shim,
	    .secret = secret,
	    .secret_len = secret_len,
	    .tls = tls,
	};
	m.session = worker_session_create(&m.loop, &scfg, on_session_stopped, &m);
	auth_secret_free(&secret, secret_len); /* the session keeps its own copy */

	uv_signal_init(&m.loop, &m.sigint);
	uv_signal_init(&m.loop, &m.sigterm);
	m.sigint.data = m.sigterm.data = &m;
	uv_signal_start(&m.sigint, on_signal, SIGINT);
	uv_signal_start(&m.sigterm, on_signal, SIGTERM);

	log_info(SUBSYS,
	         "event=starting name=%s master=%s slots=%u allow_exec=%s secret=%s cache_dir=%s "
	         "cache_size=%" PRIu64 " work_dir=%s pid=%ld",
	         name, cfg.master, cfg.slots, cfg.allow_exec ? "yes" : "no",
	         secret_path != NULL ? secret_path : "none", cache_dir[0] != '\0' ? cache_dir : "-",
	         cfg.cache_size, work_root, (long)getpid());
	worker_session_start(m.session);

	uv_run(&m.loop, UV_RUN_DEFAULT);

	worker_session_destroy(&m.session);
	tls_ctx_destroy(&tls);
	if (own_work_root && fs_rmtree(work_root, why, sizeof(why)) != 0)
		log_warn(SUBSYS, "%s", why);
	rc = uv_loop_close(&m.loop);
	if (rc != 0) {
		log_error(SUBSYS, "event loop not closed cleanly: %s", uv_strerror(rc));
		return 1;
	}
	log_info(SUBSYS, "event=stopped status=%d", m.status);
	return m.status;
}
