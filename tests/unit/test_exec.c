/* test_exec.c: the worker's --exec plumbing on a real loop, without a master: stdin feeding
 * (data, range, split, none), stdout streaming in pieces with back-pressure, stderr tails,
 * exit statuses and signals, commands that ignore stdin or close stdout, cancellation of the
 * whole process group, shipped files and environment, the reduce-side shuffle, and a 256 MiB
 * stdout streamed through bounded memory. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "exec.h"

struct run {
	/* what happened */
	struct buf streamed; /* everything on_output got */
	size_t pieces;
	size_t max_piece;
	bool count_only; /* keep no output, only count it (huge outputs) */
	uint64_t streamed_bytes;
	bool done;
	struct exec_result res; /* moved out of the exec's */
	/* pausing */
	struct exec *e;
	bool pause_each; /* pause after every piece; a timer resumes */
	uv_timer_t resume;
	size_t pauses;
};

static char work_root[256];

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(work_root, sizeof(work_root), "/tmp/shoal-test-exec-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(work_root));
}

static void teardown(void)
{
	/* Every attempt removed its directory: the root must be empty. */
	int rc = rmdir(work_root);
	ck_assert_msg(rc == 0, "work root not empty: %s", strerror(errno));
}

static void on_resume(uv_timer_t *t)
{
	struct run *r = t->data;
	exec_pause(r->e, false);
}

static void on_output(void *arg, const uint8_t *data, size_t len)
{
	struct run *r = arg;
	r->pieces++;
	if (len > r->max_piece)
		r->max_piece = len;
	r->streamed_bytes += len;
	if (!r->count_only)
		buf_append(&r->streamed, data, len);
	if (r->pause_each) {
		exec_pause(r->e, true);
		r->pauses++;
		uv_timer_start(&r->resume, on_resume, 1, 0);
	}
}

static void on_done(void *arg, struct exec_result *res)
{
	struct run *r = arg;
	r->done = true;
	r->res = *res;
	/* Take everything: the exec frees what is left. */
	res->error = NULL;
	res->out = (struct buf)BUF_INIT;
	res->buckets = NULL;
	if (r->pause_each)
		uv_close((uv_handle_t *)&r->resume, NULL);
}

static const struct exec_callbacks callbacks = {on_output, on_done};

static void params_init(struct exec_params *p, const char *cmd)
{
	memset(p, 0, sizeof(*p));
	p->cmd = cmd;
	p->work_root = work_root;
	p->label = "test";
	p->chunk = 1024;
}

static void run_free(struct run *r)
{
	buf_free(&r->streamed);
	buf_free(&r->res.out);
	free(r->res.error);
	free(r->res.buckets);
}

/* Runs one attempt to its end on a fresh loop. */
static void run(struct run *r, const struct exec_params *p)
{
	uv_loop_t loop;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	if (r->pause_each) {
		uv_timer_init(&loop, &r->resume);
		r->resume.data = r;
	}
	r->e = exec_start(&loop, p, &callbacks, r);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(r->done);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* All of stdout: the streamed pieces, then the rest handed over at the end. */
static char *all_output(struct run *r)
{
	struct buf b = BUF_INIT;
	buf_append(&b, r->streamed.data, r->streamed.len);
	buf_append(&b, r->res.out.data, r->res.out.len);
	buf_append_byte(&b, '\0');
	return (char *)b.data;
}

START_TEST(test_exec_cat_data)
{
	struct exec_params p;
	params_init(&p, "cat");
	const char *in = "alpha\nbeta\ngamma";
	p.input = EXEC_INPUT_DATA;
	p.data = (const uint8_t *)in;
	p.len = strlen(in);
	p.chunk = 4; /* many pieces */
	struct run r = {0};
	run(&r, &p);
	ck_assert(r.res.ok);
	ck_assert(!r.res.cancelled);
	char *out = all_output(&r);
	ck_assert_str_eq(out, in);
	ck_assert_uint_eq(r.res.records, 3);
	ck_assert_uint_ge(r.pieces, 1);
	ck_assert_uint_le(r.max_piece, 4);
	ck_assert_uint_lt(r.res.out.len, 4);
	free(out);
	run_free(&r);
}
END_TEST

START_TEST(test_exec_range)
{
	struct exec_params p;
	params_init(&p, "cat");
	p.input = EXEC_INPUT_RANGE;
	p.lo = -5;
	p.hi = 100000;
	p.chunk = 1 << 20;
	struct run r = {0};
	run(&r, &p);
	ck_assert(r.res.ok);
	char *out = all_output(&r);
	struct buf want = BUF_INIT;
	for (long v = -5; v < 100000; v++)
		buf_printf(&want, "%ld\n", v);
	buf_append_byte(&want, '\0');
	ck_assert_str_eq(out, (const char *)want.data);
	ck_assert_uint_eq(r.res.records, 100005);
	buf_free(&want);
	free(out);
	run_free(&r);

	/* Extremes and an empty range. */
	params_init(&p, "cat");
	p.input = EXEC_INPUT_RANGE;
	p.lo = INT64_MIN;
	p.hi = INT64_MIN + 2;
	struct run r2 = {0};
	run(&r2, &p);
	out = all_output(&r2);
	ck_assert_str_eq(out, "-9223372036854775808\n-9223372036854775807\n");
	free(out);
	run_free(&r2);

	params_init(&p, "wc -c");
	p.input = EXEC_INPUT_RANGE;
	p.lo = 5;
	p.hi = 5;
	struct run r3 = {0};
	run(&r3, &p);
	out = all_output(&r3);
	ck_assert_int_eq(atoi(out), 0);
	ck_assert_uint_eq(r3.res.records, 0);
	free(out);
	run_free(&r3);
}
END_TEST

START_TEST(test_exec_split)
{
	char path[] = "/tmp/shoal-test-split-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *text = "one\ntwo\nthree\nfour\n";
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	struct exec_params p;
	params_init(&p, "tr a-z A-Z");
	p.input = EXEC_INPUT_SPLIT;
	p.path = path;
	p.offset = 2; /* owns the lines starting in [2, 10): "two", "three" */
	p.length = 8;
	struct run r = {0};
	run(&r, &p);
	ck_assert(r.res.ok);
	char *out = all_output(&r);
	ck_assert_str_eq(out, "TWO\nTHREE\n");
	ck_assert_uint_eq(r.res.records, 2);
	free(out);
	run_free(&r);

	/* A missing file fails the attempt before any command runs. */
	p.path = "/nonexistent/shoal-split";
	struct run r2 = {0};
	run(&r2, &p);
	ck_assert(!r2.res.ok);
	ck_assert_ptr_nonnull(strstr(r2.res.error, "/nonexistent/shoal-split"));
	run_free(&r2);
	unlink(path);
}
END_TEST

START_TEST(test_exec_exit_status)
{
	struct exec_params p;
	params_init(&p, "echo first line >&2; echo 'the reason' >&2; exit 3");
	struct run r = {0};
	run(&r, &p);
	ck_assert(!r.res.ok);
	ck_assert(!r.res.cancelled);
	ck_assert_str_eq(r.res.error, "command exited with status 3: first line\nthe reason");
	run_free(&r);

	/* Control bytes from the command do not reach the message. */
	params_init(&p, "printf 'red \\033[31mtext\\r\\0end\\n' >&2; exit 1");
	struct run r4 = {0};
	run(&r4, &p);
	ck_assert_str_eq(r4.res.error, "command exited with status 1: red ?[31mtext??end");
	run_free(&r4);

	/* Without stderr the message is just the status. */
	params_init(&p, "exit 7");
	struct run r2 = {0};
	run(&r2, &p);
	ck_assert_str_eq(r2.res.error, "command exited with status 7");
	run_free(&r2);

	/* The shell's own complaint about a missing program is the tail. */
	params_init(&p, "no-such-program-shoal");
	struct run r3 = {0};
	run(&r3, &p);
	ck_assert_ptr_nonnull(strstr(r3.res.error, "command exited with status 127: "));
	ck_assert_ptr_nonnull(strstr(r3.res.error, "no-such-program-shoal"));
	run_free(&r3);
}
END_TEST

START_TEST(test_exec_stderr_tail)
{
	/* 100 KB of stderr: the error carries only its last bytes, ending with the last line. */
	struct exec_params p;
	params_init(&p, "i=0; while [ $i -lt 2000 ]; do echo \"line $i of the noise on stderr\" "
	                ">&2; i=$((i+1)); done; exit 1");
	struct run r = {0};
	run(&r, &p);
	ck_assert(!r.res.ok);
	size_t n = strlen(r.res.error);
	ck_assert_uint_le(n, EXEC_ERROR_TAIL + 64);
	ck_assert_uint_ge(n, EXEC_ERROR_TAIL - 64);
	ck_assert_ptr_nonnull(strstr(r.res.error, ": ..."));
	const char *end = "line 1999 of the noise on stderr";
	ck_assert_str_eq(r.res.error + n - strlen(end), end);
	ck_assert_ptr_null(strstr(r.res.error, "line 0 of"));
	run_free(&r);
}
END_TEST

START_TEST(test_exec_signal)
{
	struct exec_params p;
	params_init(&p, "echo dying >&2; kill -9 $$");
	struct run r = {0};
	run(&r, &p);
	ck_assert(!r.res.ok);
	ck_assert_str_eq(r.res.error, "command killed by signal SIGKILL: dying");
	run_free(&r);

	params_init(&p, "kill -SEGV $$");
	struct run r2 = {0};
	run(&r2, &p);
	ck_assert_str_eq(r2.res.error, "command killed by signal SIGSEGV");
	run_free(&r2);

	char name[32];
	exec_signal_name(SIGTERM, name, sizeof(name));
	ck_assert_str_eq(name, "SIGTERM");
}
END_TEST

START_TEST(test_exec_ignores_stdin)
{
	/* 32 MiB of input to a command that never reads it (EPIPE or a write left pending),
	 * and to one that reads a little and exits (head). Neither is an error. */
	size_t len = (size_t)32 << 20;
	uint8_t *data = malloc(len);
	memset(data, 'x', len);
	for (size_t i = 99; i < len; i += 100)
		data[i] = '\n';
	struct exec_params p;
	params_init(&p, "echo ignored");
	p.input = EXEC_INPUT_DATA;
	p.data = data;
	p.len = len;
	struct run r = {0};
	run(&r, &p);
	ck_assert_msg(r.res.ok, "%s", r.res.error);
	char *out = all_output(&r);
	ck_assert_str_eq(out, "ignored\n");
	ck_assert_uint_eq(r.res.records, len / 100 + 1); /* the last line lacks its '\n' */
	free(out);
	run_free(&r);

	params_init(&p, "head -c 5");
	p.input = EXEC_INPUT_DATA;
	p.data = data;
	p.len = len;
	struct run r2 = {0};
	run(&r2, &p);
	ck_assert(r2.res.ok);
	out = all_output(&r2);
	ck_assert_str_eq(out, "xxxxx");
	free(out);
	run_free(&r2);

	/* A range the command stops reading early. */
	params_init(&p, "head -n 2");
	p.input = EXEC_INPUT_RANGE;
	p.lo = 0;
	p.hi = 50000000;
	struct run r3 = {0};
	run(&r3, &p);
	ck_assert(r3.res.ok);
	out = all_output(&r3);
	ck_assert_str_eq(out, "0\n1\n");
	free(out);
	run_free(&r3);
	free(data);
}
END_TEST

START_TEST(test_exec_closes_stdout)
{
	/* stdout closes long before the command ends; what came before it counts. */
	struct exec_params p;
	params_init(&p, "echo early; exec >&-; cat >/dev/null; echo still-running >&2");
	p.input = EXEC_INPUT_DATA;
	p.data = (const uint8_t *)"a\nb\n";
	p.len = 4;
	struct run r = {0};
	run(&r, &p);
	ck_assert(r.res.ok);
	char *out = all_output(&r);
	ck_assert_str_eq(out, "early\n");
	free(out);
	run_free(&r);
}
END_TEST

static bool process_alive(long pid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	size_t n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *paren = strrchr(stat, ')');
	return paren != NULL && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static void on_cancel_timer(uv_timer_t *t)
{
	exec_kill(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

START_TEST(test_exec_kill_group)
{
	/* The command and a background child of it; exec_kill must take both. The child
	 * writes its pid where the test can check it afterwards. */
	char pidfile[300];
	snprintf(pidfile, sizeof(pidfile), "%s.pid", work_root);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "sleep 300 & echo $! > %s; echo started; sleep 300", pidfile);
	struct exec_params p;
	params_init(&p, cmd);
	struct run r = {0};
	uv_loop_t loop;
	uv_loop_init(&loop);
	r.e = exec_start(&loop, &p, &callbacks, &r);
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	t.data = r.e;
	uv_timer_start(&t, on_cancel_timer, 300, 0);
	uint64_t start = uv_hrtime();
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(r.done);
	ck_assert(r.res.cancelled);
	ck_assert(!r.res.ok);
	ck_assert_uint_lt(uv_hrtime() - start, 5000000000ull);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	FILE *f = fopen(pidfile, "r");
	ck_assert_ptr_nonnull(f);
	long pid = 0;
	ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	unlink(pidfile);
	/* Killed soon after; allow a moment. An orphan may linger as a zombie where nothing
	 * reaps (a container's init): that is dead too. */
	for (int i = 0; i < 100 && process_alive(pid); i++)
		usleep(10000);
	ck_assert(!process_alive(pid));
	run_free(&r);

	/* Killed while still setting up: the command never runs. */
	params_init(&p, "echo never");
	struct run r2 = {0};
	uv_loop_init(&loop);
	r2.e = exec_start(&loop, &p, &callbacks, &r2);
	exec_kill(r2.e);
	exec_kill(r2.e); /* idempotent */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(r2.done && r2.res.cancelled);
	ck_assert_uint_eq(r2.streamed.len, 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	run_free(&r2);
}
END_TEST

START_TEST(test_exec_background_leftover)
{
	/* The command exits leaving a child holding stdout: the group goes with it, so the
	 * attempt ends promptly instead of waiting 300 s for EOF. */
	struct exec_params p;
	params_init(&p, "sleep 300 & echo done");
	struct run r = {0};
	uint64_t start = uv_hrtime();
	run(&r, &p);
	ck_assert(r.res.ok);
	ck_assert_uint_lt(uv_hrtime() - start, 5000000000ull);
	char *out = all_output(&r);
	ck_assert_str_eq(out, "done\n");
	free(out);
	run_free(&r);
}
END_TEST

START_TEST(test_exec_files_env_dir)
{
	/* A "cached" script (mode 0555, like the cache's files) and a data file. */
	char src[300], data[300];
	snprintf(src, sizeof(src), "%s.script", work_root);
	snprintf(data, sizeof(data), "%s.data", work_root);
	FILE *f = fopen(src, "w");
	fputs(
	    "#!/bin/sh\necho \"script in $(basename \"$PWD\" | cut -c1-4) sees $(cat data.txt)\"\n",
	    f);
	fclose(f);
	chmod(src, 0555);
	f = fopen(data, "w");
	fputs("payload", f);
	fclose(f);

	struct exec_file files[] = {{"run.sh", src}, {"data.txt", data}};
	const char *env[] = {"SHOAL_JOB_ID=12", "SHOAL_TASK_ID=3", "HOME=/elsewhere"};
	struct exec_params p;
	params_init(&p, "./run.sh; echo \"$SHOAL_JOB_ID $SHOAL_TASK_ID $HOME\"; "
	                "test -x run.sh && echo executable; pwd");
	p.label = "j12-t3-a1";
	p.files = files;
	p.nfiles = 2;
	p.env = env;
	p.nenv = 3;
	struct run r = {0};
	run(&r, &p);
	ck_assert_msg(r.res.ok, "%s", r.res.error);
	char *out = all_output(&r);
	const char *want = "script in j12- sees payload\n12 3 /elsewhere\nexecutable\n";
	ck_assert_int_eq(strncmp(out, want, strlen(want)), 0);
	char *dir = out + strlen(want);
	ck_assert_int_eq(strncmp(dir, work_root, strlen(work_root)), 0);
	dir[strlen(dir) - 1] = '\0';
	struct stat st;
	ck_assert_int_ne(stat(dir, &st), 0); /* removed */
	ck_assert_int_eq(errno, ENOENT);
	/* The sources are untouched. */
	ck_assert_int_eq(stat(src, &st), 0);
	free(out);
	run_free(&r);

	/* A missing file fails the attempt, naming it. */
	struct exec_file bad[] = {{"gone.txt", "/nonexistent/shoal-file"}};
	params_init(&p, "true");
	p.files = bad;
	p.nfiles = 1;
	struct run r2 = {0};
	run(&r2, &p);
	ck_assert(!r2.res.ok);
	ck_assert_ptr_nonnull(strstr(r2.res.error, "gone.txt"));
	ck_assert_uint_eq(r2.res.missing, 1); /* the caller forgets that cached file */
	run_free(&r2);

	/* So is a missing broadcast file. */
	params_init(&p, "true");
	p.files = files;
	p.nfiles = 2;
	p.broadcast = "/nonexistent/shoal-broadcast";
	struct run r3 = {0};
	run(&r3, &p);
	ck_assert(!r3.res.ok);
	ck_assert_ptr_nonnull(strstr(r3.res.error, "shoal-broadcast"));
	ck_assert_uint_eq(r3.res.missing, 3);
	run_free(&r3);
	unlink(src);
	unlink(data);
}
END_TEST

START_TEST(test_exec_reducers)
{
	struct exec_params p;
	params_init(&p, "printf 'b\\t1\\na\\t2\\nb\\t3\\nc\\t4\\na\\t5\\n'");
	p.reducers = 3;
	p.chunk = 2; /* with reducers nothing streams, whatever the chunk */
	struct run r = {0};
	run(&r, &p);
	ck_assert(r.res.ok);
	ck_assert_uint_eq(r.pieces, 0);
	ck_assert_uint_eq(r.res.nbuckets, 3);
	uint64_t sum = 0;
	for (uint32_t b = 0; b < 3; b++)
		sum += r.res.buckets[b];
	ck_assert_uint_eq(sum, r.res.out.len);
	ck_assert_uint_eq(r.res.out.len, strlen("b\t1\na\t2\nb\t3\nc\t4\na\t5\n"));
	/* Within each bucket lines are sorted and equal keys together. */
	size_t off = 0;
	for (uint32_t b = 0; b < 3; b++) {
		char *bucket = strndup((const char *)r.res.out.data + off, r.res.buckets[b]);
		if (strstr(bucket, "a\t2\n") != NULL)
			ck_assert_ptr_nonnull(strstr(bucket, "a\t2\na\t5\n"));
		if (strstr(bucket, "b\t1\n") != NULL)
			ck_assert_ptr_nonnull(strstr(bucket, "b\t1\nb\t3\n"));
		free(bucket);
		off += r.res.buckets[b];
	}
	run_free(&r);
}
END_TEST

START_TEST(test_exec_backpressure)
{
	/* Pausing after every piece (resumed by a timer) loses and reorders nothing. */
	struct exec_params p;
	params_init(&p, "cat");
	struct buf in = BUF_INIT;
	for (int i = 0; i < 200000; i++)
		buf_printf(&in, "%d\n", i);
	p.input = EXEC_INPUT_DATA;
	p.data = in.data;
	p.len = in.len;
	p.chunk = 64 * 1024;
	struct run r = {0};
	r.pause_each = true;
	run(&r, &p);
	ck_assert(r.res.ok);
	ck_assert_uint_gt(r.pauses, 10);
	ck_assert_uint_eq(r.streamed.len + r.res.out.len, in.len);
	ck_assert_int_eq(memcmp(r.streamed.data, in.data, r.streamed.len), 0);
	ck_assert_int_eq(memcmp(r.res.out.data, in.data + r.streamed.len, r.res.out.len), 0);
	buf_free(&in);
	run_free(&r);
}
END_TEST

static long max_rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

START_TEST(test_exec_huge_stdout)
{
	/* 256 MiB of stdout in 4 MiB pieces: the worker's memory stays a few pieces big. */
	long before = max_rss_kb();
	struct exec_params p;
	params_init(&p, "head -c 268435456 /dev/zero");
	p.chunk = (size_t)4 << 20;
	struct run r = {0};
	r.count_only = true;
	run(&r, &p);
	ck_assert(r.res.ok);
	ck_assert_uint_eq(r.streamed_bytes + r.res.out.len, (uint64_t)256 << 20);
	ck_assert_uint_eq(r.pieces, 64);
	ck_assert_uint_eq(r.max_piece, (size_t)4 << 20);
	long grown_mb = (max_rss_kb() - before) / 1024;
	ck_assert_msg(grown_mb < 32, "memory grew by %ld MiB", grown_mb);
	run_free(&r);
}
END_TEST

static Suite *exec_suite(void)
{
	Suite *s = suite_create("exec");
	TCase *tc = tcase_create("exec");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_exec_cat_data);
	tcase_add_test(tc, test_exec_range);
	tcase_add_test(tc, test_exec_split);
	tcase_add_test(tc, test_exec_exit_status);
	tcase_add_test(tc, test_exec_stderr_tail);
	tcase_add_test(tc, test_exec_signal);
	tcase_add_test(tc, test_exec_ignores_stdin);
	tcase_add_test(tc, test_exec_closes_stdout);
	tcase_add_test(tc, test_exec_kill_group);
	tcase_add_test(tc, test_exec_background_leftover);
	tcase_add_test(tc, test_exec_files_env_dir);
	tcase_add_test(tc, test_exec_reducers);
	tcase_add_test(tc, test_exec_backpressure);
	tcase_add_test(tc, test_exec_huge_stdout);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_set_level(LOG_ERROR); /* expected failures log warnings; the assertions speak */
	SRunner *sr = srunner_create(exec_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
