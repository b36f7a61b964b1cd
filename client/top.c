/* top.c: see top.h. */
#include "top.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "table.h"
#include "util.h"

#define TOP_BAR_CELLS 12

static volatile sig_atomic_t top_stop;

static void top_on_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

/* "[######......]" for part of whole. */
static void top_bar(char *out, size_t outlen, uint64_t part, uint64_t whole)
{
	unsigned fill =
	    whole ? (unsigned)((part > whole ? whole : part) * TOP_BAR_CELLS / whole) : 0;
	char cells[TOP_BAR_CELLS + 1];
	for (unsigned i = 0; i < TOP_BAR_CELLS; i++)
		cells[i] = i < fill ? '#' : '.';
	cells[TOP_BAR_CELLS] = '\0';
	snprintf(out, outlen, "[%s]", cells);
}

static void top_ago(uint64_t ms, char *out, size_t outlen)
{
	uint64_t now = wall_ms();
	if (!ms) {
		snprintf(out, outlen, "-");
		return;
	}
	uint64_t s = now > ms ? (now - ms) / 1000 : 0;
	if (s < 120)
		snprintf(out, outlen, "%" PRIu64 "s ago", s);
	else
		snprintf(out, outlen, "%" PRIu64 "m ago", s / 60);
}

static void top_elapsed(const struct shoal_job_info *j, char *out, size_t outlen)
{
	if (!j->started_ms) {
		snprintf(out, outlen, "-");
		return;
	}
	uint64_t end = j->finished_ms ? j->finished_ms : wall_ms();
	double s = end > j->started_ms ? (double)(end - j->started_ms) / 1000.0 : 0.0;
	if (s < 60)
		snprintf(out, outlen, "%.1fs", s);
	else if (s < 3600)
		snprintf(out, outlen, "%.1fm", s / 60);
	else
		snprintf(out, outlen, "%.1fh", s / 3600);
}

/* Appends a table's text to out. */
static void top_table(struct buf *out, const struct table *t)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return;
	table_print(t, f);
	if (fclose(f) == 0)
		buf_append(out, text, len);
	free(text);
}

static void top_workers(struct buf *out, const struct shoal_worker_info *ws, size_t nw)
{
	static const bool right[] = {false, false, false, true, true, true, false};
	static const char *const head[] = {"WORKER", "HOST",   "LOAD",     "RUNNING",
	                                   "DONE",   "FAILED", "HEARTBEAT"};
	struct table t;
	table_init(&t, ARRAY_SIZE(head), right);
	table_add(&t, head);
	for (size_t i = 0; i < nw; i++) {
		const struct shoal_worker_info *w = &ws[i];
		char load[TOP_BAR_CELLS + 8], run[32], done[32], failed[32], hb[32];
		top_bar(load, sizeof(load), w->running, w->slots);
		snprintf(run, sizeof(run), "%" PRIu32 "/%" PRIu32, w->running, w->slots);
		snprintf(done, sizeof(done), "%" PRIu64, w->tasks_done);
		snprintf(failed, sizeof(failed), "%" PRIu64, w->tasks_failed);
		top_ago(w->last_heartbeat_ms, hb, sizeof(hb));
		const char *row[] = {w->name[0] ? w->name : "-",
		                     w->host[0] ? w->host : "-",
		                     load,
		                     run,
		                     done,
		                     failed,
		                     hb};
		table_add(&t, row);
	}
	top_table(out, &t);
	table_deinit(&t);
	if (nw == 0)
		buf_printf(out, "(no workers connected)\n");
}

static void top_jobs(struct buf *out, const struct shoal_job_info *js, size_t nj, size_t max)
{
	static const bool right[] = {true, false, false, false, false, true, true, true, false};
	static const char *const head[] = {"JOB",   "NAME",    "OP",       "STATE",  "PROGRESS",
	                                   "TASKS", "RUNNING", "FAILURES", "ELAPSED"};
	struct table t;
	table_init(&t, ARRAY_SIZE(head), right);
	table_add(&t, head);
	/* The most recent first. */
	for (size_t k = 0; k < nj && k < max; k++) {
		const struct shoal_job_info *j = &js[nj - 1 - k];
		char id[32], prog[TOP_BAR_CELLS + 8], tasks[48], run[16], fail[16], el[32];
		snprintf(id, sizeof(id), "%" PRIu64, j->id);
		top_bar(prog, sizeof(prog), j->tasks_done, j->tasks_total);
		snprintf(tasks, sizeof(tasks), "%" PRIu32 "/%" PRIu32, j->tasks_done,
		         j->tasks_total);
		snprintf(run, sizeof(run), "%" PRIu32, j->tasks_running);
		snprintf(fail, sizeof(fail), "%" PRIu32, j->task_failures);
		top_elapsed(j, el, sizeof(el));
		const char *row[] = {id,    j->name[0] ? j->name : "-",
		                     j->op, shoal_job_state_name(j->state),
		                     prog,  tasks,
		                     run,   fail,
		                     el};
		table_add(&t, row);
	}
	top_table(out, &t);
	table_deinit(&t);
	if (nj == 0)
		buf_printf(out, "(no jobs yet)\n");
	else if (nj > max)
		buf_printf(out, "(%zu older jobs not shown)\n", nj - max);
}

void top_render(struct buf *out, const char *master, const struct shoal_worker_info *ws, size_t nw,
                const struct shoal_job_info *js, size_t nj, double rate, unsigned width,
                unsigned height)
{
	uint64_t slots = 0, busy = 0;
	size_t running = 0, queued = 0;
	for (size_t i = 0; i < nw; i++) {
		slots += ws[i].slots;
		busy += ws[i].running;
	}
	for (size_t i = 0; i < nj; i++) {
		running += js[i].state == SHOAL_JOB_RUNNING;
		queued += js[i].state == SHOAL_JOB_QUEUED || js[i].state == SHOAL_JOB_UPLOADING;
	}
	struct buf text = BUF_INIT;
	char rate_s[32] = "-";
	if (rate >= 0)
		snprintf(rate_s, sizeof(rate_s), "%.1f", rate);
	buf_printf(&text,
	           "shoal top  master %s  workers %zu  slots %" PRIu64 "/%" PRIu64
	           " busy  jobs %zu running, %zu queued  tasks/s %s  (q quits)\n\n",
	           master ? master : "-", nw, busy, slots, running, queued, rate_s);
	top_workers(&text, ws, nw);
	buf_printf(&text, "\n");
	/* The jobs get the lines the header and the workers leave (at least 3). */
	size_t used = 0;
	for (size_t i = 0; i < text.len; i++)
		used += text.data[i] == '\n';
	size_t max_jobs = nj;
	if (height > 0)
		max_jobs = height > used + 3 ? height - used - 3 : 1;
	top_jobs(&text, js, nj, max_jobs);

	/* Cut each line at width and keep at most height lines. */
	size_t start = 0, lines = 0;
	for (size_t i = 0; i <= text.len; i++) {
		if (i < text.len && text.data[i] != '\n')
			continue;
		if (height > 0 && lines == height)
			break;
		size_t n = i - start;
		if (width > 0 && n > width)
			n = width;
		buf_append(out, text.data + start, n);
		buf_append_byte(out, '\n');
		lines++;
		start = i + 1;
		if (i + 1 >= text.len)
			break;
	}
	buf_free(&text);
}

/* ---- the terminal ---- */

struct top_tty {
	bool raw;    /* stdin's mode was changed (and must be restored) */
	bool screen; /* the alternate screen is in use */
	struct termios saved;
};

static void top_tty_restore(struct top_tty *t)
{
	if (t->screen) {
		static const char leave[] = "\x1b[?25h\x1b[?1049l";
		ssize_t n = write(STDOUT_FILENO, leave, sizeof(leave) - 1);
		(void)n;
		t->screen = false;
	}
	if (t->raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
		t->raw = false;
	}
}

static void top_tty_enter(struct top_tty *t)
{
	memset(t, 0, sizeof(*t));
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		struct termios raw = t->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG stays: Ctrl-C is SIGINT */
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
			t->raw = true;
	}
	static const char enter[] = "\x1b[?1049h\x1b[?25l";
	if (write(STDOUT_FILENO, enter, sizeof(enter) - 1) > 0)
		t->screen = true;
}

static void top_size(unsigned *width, unsigned *height)
{
	struct winsize ws;
	*width = 80;
	*height = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		*width = ws.ws_col;
		*height = ws.ws_row;
	}
}

static uint64_t top_now_ms(void)
{
	return mono_us() / 1000;
}

/* Waits up to ms; true if it is time to quit (q typed or a signal). */
static bool top_wait(unsigned ms, bool keys)
{
	uint64_t end = top_now_ms() + ms;
	for (;;) {
		if (top_stop)
			return true;
		uint64_t now = top_now_ms();
		if (now >= end)
			return false;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int n = poll(keys ? &p : NULL, keys ? 1 : 0, (int)(end - now));
		if (n > 0 && keys) {
			char ch;
			ssize_t r = read(STDIN_FILENO, &ch, 1);
			if (r == 1 && (ch == 'q' || ch == 'Q'))
				return true;
			if (r == 0)
				keys = false; /* end of input: no more keys */
		}
	}
}

int top_run(shoal_client *c, const struct top_options *o)
{
	bool interactive = o->iterations == 0 && isatty(STDOUT_FILENO);
	struct top_tty tty = {0};
	struct sigaction sa, old_int, old_term, old_hup;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = top_on_signal; /* no SA_RESTART: poll returns at once */
	sigemptyset(&sa.sa_mask);
	top_stop = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	if (interactive)
		top_tty_enter(&tty);

	int rc = SHOAL_OK;
	uint64_t prev_done = 0, prev_ms = 0;
	bool have_prev = false;
	struct buf frame = BUF_INIT;
	for (unsigned n = 0; !top_stop; n++) {
		struct shoal_worker_info *ws = NULL;
		struct shoal_job_info *js = NULL;
		size_t nw = 0, nj = 0;
		int r = shoal_workers(c, &ws, &nw);
		if (r == SHOAL_OK)
			r = shoal_jobs(c, &js, &nj);
		if (r != SHOAL_OK) {
			free(ws);
			free(js);
			top_tty_restore(&tty);
			fprintf(stderr, "shoal: top: %s\n", shoal_errmsg(c));
			rc = r;
			break;
		}
		uint64_t done = 0, now = top_now_ms();
		for (size_t i = 0; i < nj; i++)
			done += js[i].tasks_done;
		double rate = -1;
		if (have_prev && now > prev_ms)
			rate = done >= prev_done
			           ? (double)(done - prev_done) * 1000.0 / (double)(now - prev_ms)
			           : 0.0;
		prev_done = done;
		prev_ms = now;
		have_prev = true;

		unsigned width = 0, height = 0;
		if (interactive)
			top_size(&width, &height);
		buf_reset(&frame);
		if (interactive) {
			struct buf body = BUF_INIT;
			top_render(&body, o->master, ws, nw, js, nj, rate, width, height);
			buf_printf(&frame, "\x1b[H");
			/* Clear each line's rest and everything below the frame. */
			for (size_t i = 0; i < body.len; i++) {
				if (body.data[i] == '\n' && i + 1 < body.len)
					buf_printf(&frame, "\x1b[K\r\n");
				else if (body.data[i] != '\n')
					buf_append_byte(&frame, body.data[i]);
			}
			buf_printf(&frame, "\x1b[K\x1b[J");
			buf_free(&body);
		} else {
			if (n > 0)
				buf_append_byte(&frame, '\n');
			top_render(&frame, o->master, ws, nw, js, nj, rate, 0, 0);
		}
		(void)write_all(STDOUT_FILENO, frame.data,
		                frame.len); /* a closed terminal: nothing to tell */
		free(ws);
		free(js);
		if (o->iterations && n + 1 >= o->iterations)
			break;
		if (top_wait(o->interval_ms, tty.raw))
			break;
	}
	buf_free(&frame);
	top_tty_restore(&tty);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	return rc;
}
