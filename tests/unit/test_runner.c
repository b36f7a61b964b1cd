/* test_runner.c: the worker's socket-free parts: reconnect backoff, flag parsing, and the
 * task runner on a real loop and thread pool (queueing, slots, cancel, drop, stop). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "backoff.h"
#include "config.h"
#include "runner.h"
#include "shoal.pb-c.h"

/* ---- backoff ---- */

START_TEST(test_backoff_sequence)
{
	struct backoff b;
	backoff_init(&b, 100, 5000, 0.25);
	/* u = 0.5 is the undithered sequence: doubling, then capped. */
	static const uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_uint_eq(backoff_next(&b, 0.5), want[i]);
	backoff_reset(&b);
	ck_assert_uint_eq(backoff_next(&b, 0.5), 100);
	/* Jitter spans [-25 %, +25 %) and never passes the cap. */
	backoff_reset(&b);
	ck_assert_uint_eq(backoff_next(&b, 0.0), 75);
	ck_assert_uint_eq(backoff_next(&b, 0.999999), 249);
	for (int i = 0; i < 10; i++)
		backoff_next(&b, 0.5);
	ck_assert_uint_eq(backoff_next(&b, 0.0), 3750);
	ck_assert_uint_eq(backoff_next(&b, 0.999999), 5000);
	/* Out-of-range randomness is tamed, not trusted. */
	ck_assert_uint_eq(backoff_next(&b, 7.0), 5000);
	ck_assert_uint_eq(backoff_next(&b, -1.0), 5000);
}
END_TEST

START_TEST(test_backoff_random)
{
	struct backoff b;
	backoff_init(&b, 100, 5000, 0.25);
	uint64_t state = 42;
	uint64_t prev_cap = 100;
	for (int i = 0; i < 10000; i++) {
		double u = backoff_rand(&state);
		ck_assert(u >= 0.0 && u < 1.0);
		uint64_t d = backoff_next(&b, u);
		ck_assert_uint_ge(d, prev_cap * 3 / 4);
		ck_assert_uint_le(d, 5000);
		prev_cap = prev_cap * 2 > 5000 ? 5000 : prev_cap * 2;
	}
	/* A zero seed still produces numbers. */
	state = 0;
	ck_assert(backoff_rand(&state) < 1.0);
	ck_assert_uint_ne(state, 0);
}
END_TEST

/* ---- config ---- */

struct parsed {
	enum worker_config_result rc;
	struct worker_config cfg;
	char out[4096];
	char err[4096];
};

static void parse(struct parsed *p, const char *env_master, int argc, const char *const *args)
{
	char *argv[32];
	argv[0] = (char *)"shoal-worker";
	for (int i = 0; i < argc; i++)
		argv[i + 1] = (char *)args[i];
	argv[argc + 1] = NULL;
	memset(p, 0, sizeof(*p));
	FILE *out = fmemopen(p->out, sizeof(p->out) - 1, "w");
	FILE *err = fmemopen(p->err, sizeof(p->err) - 1, "w");
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(err);
	p->rc = worker_config_parse(&p->cfg, argc + 1, argv, env_master, 8, out, err);
	fclose(out);
	fclose(err);
}

#define PARSE(p, env, ...)                                                                         \
	do {                                                                                       \
		const char *a_[] = {__VA_ARGS__};                                                  \
		parse(p, env, (int)(sizeof(a_) / sizeof(a_[0])), a_);                              \
	} while (0)

START_TEST(test_config_defaults)
{
	struct parsed p;
	parse(&p, NULL, 0, NULL);
	ck_assert_int_eq(p.rc, WORKER_CONFIG_RUN);
	ck_assert_str_eq(p.cfg.master_host, "127.0.0.1");
	ck_assert_uint_eq(p.cfg.master_port, 7411);
	ck_assert_uint_eq(p.cfg.slots, 8);
	ck_assert_str_eq(p.cfg.name, "");
	ck_assert_str_eq(p.cfg.advertise, "");
	ck_assert(!p.cfg.allow_exec);
	ck_assert_int_eq(p.cfg.log_level, LOG_INFO);

	/* SHOAL_MASTER stands for --master; --master wins. */
	parse(&p, "10.1.2.3:9000", 0, NULL);
	ck_assert_int_eq(p.rc, WORKER_CONFIG_RUN);
	ck_assert_str_eq(p.cfg.master_host, "10.1.2.3");
	ck_assert_uint_eq(p.cfg.master_port, 9000);
	PARSE(&p, "10.1.2.3:9000", "--master", "127.0.0.1:1234");
	ck_assert_int_eq(p.rc, WORKER_CONFIG_RUN);
	ck_assert_str_eq(p.cfg.master_host, "127.0.0.1");
	ck_assert_uint_eq(p.cfg.master_port, 1234);
	/* A broken SHOAL_MASTER does not matter when --master is given. */
	PARSE(&p, "x:99999", "--master=localhost");
	ck_assert_int_eq(p.rc, WORKER_CONFIG_RUN);
	ck_assert_str_eq(p.cfg.master_host, "localhost");
	ck_assert_uint_eq(p.cfg.master_port, 7411);
}
END_TEST

START_TEST(test_config_flags)
{
	struct parsed p;
	PARSE(&p, NULL, "--slots", "3", "--name", "w1", "--allow-exec", "--log-level", "debug",
	      "--master", "[::1]:7500", "--advertise", "w1.example.org");
	ck_assert_int_eq(p.rc, WORKER_CONFIG_RUN);
	ck_assert_uint_eq(p.cfg.slots, 3);
	ck_assert_str_eq(p.cfg.name, "w1");
	ck_assert_str_eq(p.cfg.advertise, "w1.example.org");
	ck_assert(p.cfg.allow_exec);
	ck_assert_int_eq(p.cfg.log_level, LOG_DEBUG);
	ck_assert_str_eq(p.cfg.master_host, "::1");
	ck_assert_uint_eq(p.cfg.master_port, 7500);
	ck_assert_str_eq(p.err, "");
}
END_TEST

START_TEST(test_config_errors)
{
	static const struct {
		const char *args[3];
		const char *env;
		const char *names; /* what the message must mention */
	} cases[] = {
	    {{"--slots", "0"}, NULL, "--slots"},
	    {{"--slots", "-1"}, NULL, "--slots"},
	    {{"--slots", "4x"}, NULL, "--slots"},
	    {{"--slots", "99999999999999999999"}, NULL, "--slots"},
	    {{"--slots", "1025"}, NULL, "--slots"},
	    {{"--slots", ""}, NULL, "--slots"},
	    {{"--slots"}, NULL, "--slots"},
	    {{"--name", ""}, NULL, "--name"},
	    {{"--advertise", ""}, NULL, "--advertise"},
	    {{"--advertise", "a b"}, NULL, "--advertise"},
	    {{"--advertise", "\"x\""}, NULL, "--advertise"},
	    {{"--log-level", "loud"}, NULL, "--log-level"},
	    {{"--master", "h:99999"}, NULL, "--master"},
	    {{"--master", "h:0"}, NULL, "--master"},
	    {{"--bogus"}, NULL, "--bogus"},
	    {{"--allow-exec=yes"}, NULL, "--allow-exec"},
	    {{"stray"}, NULL, "stray"},
	    {{NULL}, "h:notaport", "SHOAL_MASTER"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = 0;
		while (argc < 3 && cases[i].args[argc] != NULL)
			argc++;
		struct parsed p;
		parse(&p, cases[i].env, argc, cases[i].args);
		ck_assert_msg(p.rc == WORKER_CONFIG_USAGE, "case %zu accepted", i);
		ck_assert_msg(strstr(p.err, cases[i].names) != NULL, "case %zu: '%s' lacks %s", i,
		              p.err, cases[i].names);
		ck_assert_str_eq(p.out, "");
	}
}
END_TEST

START_TEST(test_config_help_version)
{
	struct parsed p;
	PARSE(&p, NULL, "--help");
	ck_assert_int_eq(p.rc, WORKER_CONFIG_EXIT);
	static const char *const flags[] = {"--master",    "--slots", "--name",   "--allow-exec",
	                                    "--log-level", "--help",  "--version"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		ck_assert_msg(strstr(p.out, flags[i]) != NULL, "help lacks %s", flags[i]);
	PARSE(&p, NULL, "--version");
	ck_assert_int_eq(p.rc, WORKER_CONFIG_EXIT);
	ck_assert_ptr_nonnull(strstr(p.out, "shoal-worker"));
}
END_TEST

/* ---- runner ---- */

#define MAX_RESULTS 64

struct collect {
	struct task_result *res[MAX_RESULTS];
	size_t n;
	int stopped;
};

static void on_done(void *arg, struct task_result *res)
{
	struct collect *c = arg;
	ck_assert_uint_lt(c->n, MAX_RESULTS);
	c->res[c->n++] = res;
}

static void on_stopped(void *arg)
{
	struct collect *c = arg;
	c->stopped++;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		task_result_free(&c->res[i]);
	c->n = 0;
}

static const struct task_result *find(const struct collect *c, uint32_t task_id)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->res[i]->ref.task_id == task_id)
			return c->res[i];
	return NULL;
}

static void submit_range(struct runner *r, const char *op, uint32_t task_id, int64_t lo, int64_t hi)
{
	Shoal__Range range = SHOAL__RANGE__INIT;
	range.lo = lo;
	range.hi = hi;
	Shoal__Task t = SHOAL__TASK__INIT;
	t.job_id = 7;
	t.task_id = task_id;
	t.attempt = 1;
	t.op = (char *)op;
	t.input_case = SHOAL__TASK__INPUT_RANGE;
	t.range = &range;
	runner_submit(r, &t);
}

static void submit_data(struct runner *r, const char *op, uint32_t task_id, const char *data)
{
	/* The runner must copy: the bytes are overwritten right after submit. */
	char copy[256];
	snprintf(copy, sizeof(copy), "%s", data);
	Shoal__Task t = SHOAL__TASK__INIT;
	t.job_id = 7;
	t.task_id = task_id;
	t.attempt = 1;
	t.op = (char *)op;
	t.input_case = SHOAL__TASK__INPUT_DATA;
	t.data.data = (uint8_t *)copy;
	t.data.len = strlen(copy);
	runner_submit(r, &t);
	memset(copy, 'Z', sizeof(copy));
}

static void close_loop(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

static int result_is(const struct task_result *res, const char *want)
{
	return res != NULL && res->ok && res->out.len == strlen(want) &&
	       memcmp(res->out.data, want, res->out.len) == 0;
}

START_TEST(test_runner_runs)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct collect c = {0};
	struct runner *r = runner_create(&loop, 2, on_done, &c);
	for (uint32_t i = 0; i < 10; i++)
		submit_range(r, "square", i, i, i + 2);
	submit_data(r, "count", 10, "a\nb\nc\n");
	ck_assert_uint_eq(runner_running(r), 2);
	ck_assert_uint_eq(runner_queued(r), 9);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 11);
	ck_assert_uint_eq(runner_running(r), 0);
	ck_assert_uint_eq(runner_queued(r), 0);
	ck_assert(result_is(find(&c, 3), "9\n16\n"));
	ck_assert_uint_eq(find(&c, 3)->records, 2);
	ck_assert(find(&c, 10)->ok);
	ck_assert_uint_eq(find(&c, 10)->records, 3);
	ck_assert_uint_eq(find(&c, 10)->ref.job_id, 7);
	ck_assert_uint_eq(find(&c, 10)->ref.attempt, 1);
	collect_free(&c);
	runner_destroy(&r);
	ck_assert_ptr_null(r);
	close_loop(&loop);
}
END_TEST

START_TEST(test_runner_failures)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct collect c = {0};
	struct runner *r = runner_create(&loop, 4, on_done, &c);
	submit_range(r, "nope", 1, 0, 3);
	submit_data(r, "sum", 2, "1\nx1\n");
	Shoal__Task t = SHOAL__TASK__INIT; /* no input at all */
	t.job_id = 7;
	t.task_id = 3;
	t.attempt = 1;
	t.op = (char *)"square";
	runner_submit(r, &t);
	Shoal__PathSplit split = SHOAL__PATH_SPLIT__INIT;
	split.path = (char *)"/nonexistent/shoal-test";
	split.length = 10;
	t.task_id = 4;
	t.input_case = SHOAL__TASK__INPUT_SPLIT;
	t.split = &split;
	runner_submit(r, &t);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 4);

	const struct task_result *res = find(&c, 1);
	ck_assert(!res->ok);
	ck_assert(res->permanent);
	ck_assert_str_eq(res->error, "unknown op nope");
	ck_assert_uint_eq(res->out.len, 0);
	res = find(&c, 2);
	ck_assert(!res->ok);
	ck_assert(res->permanent);
	ck_assert_ptr_nonnull(res->error);
	res = find(&c, 3);
	ck_assert(!res->ok);
	res = find(&c, 4);
	ck_assert(!res->ok);
	ck_assert(!res->permanent); /* another worker may well read the file */
	ck_assert_ptr_nonnull(strstr(res->error, "/nonexistent/shoal-test"));
	collect_free(&c);
	runner_destroy(&r);
	close_loop(&loop);
}
END_TEST

START_TEST(test_runner_split)
{
	char path[] = "/tmp/shoal-test-runner-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char text[] = "1\n2\n3\n4\n";
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct collect c = {0};
	struct runner *r = runner_create(&loop, 2, on_done, &c);
	Shoal__PathSplit split = SHOAL__PATH_SPLIT__INIT;
	split.path = path;
	Shoal__Task t = SHOAL__TASK__INIT;
	t.job_id = 1;
	t.attempt = 1;
	t.op = (char *)"square";
	t.input_case = SHOAL__TASK__INPUT_SPLIT;
	t.split = &split;
	split.offset = 0;
	split.length = 3; /* owns lines starting at 0 and 2 */
	t.task_id = 0;
	runner_submit(r, &t);
	split.offset = 3;
	split.length = 5;
	t.task_id = 1;
	runner_submit(r, &t);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 2);
	ck_assert(result_is(find(&c, 0), "1\n4\n"));
	ck_assert(result_is(find(&c, 1), "9\n16\n"));
	collect_free(&c);
	runner_destroy(&r);
	close_loop(&loop);
	unlink(path);
}
END_TEST

START_TEST(test_runner_cancel_drop)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct collect c = {0};
	struct runner *r = runner_create(&loop, 1, on_done, &c);
	for (uint32_t i = 0; i < 5; i++)
		submit_range(r, "square", i, 0, 1000);
	/* Task 0 runs; 1..4 wait. Cancel the running one, a queued one and one never seen. */
	struct task_ref refs[] = {{7, 3, 1}, {7, 0, 1}, {7, 9, 1}, {7, 2, 2}};
	qsort(refs, 4, sizeof(refs[0]), task_ref_cmp);
	ck_assert_uint_eq(runner_cancel(r, refs, 4), 2);
	ck_assert_uint_eq(runner_running(r), 0);
	ck_assert_uint_eq(runner_queued(r), 3);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_ptr_null(find(&c, 0));
	ck_assert_ptr_null(find(&c, 3));
	ck_assert_ptr_nonnull(find(&c, 1));
	ck_assert_ptr_nonnull(find(&c, 2));
	ck_assert_ptr_nonnull(find(&c, 4));
	collect_free(&c);

	/* Drop: the master is gone; nothing queued or running reports. */
	for (uint32_t i = 0; i < 5; i++)
		submit_range(r, "square", i, 0, 1000);
	runner_drop(r);
	ck_assert_uint_eq(runner_running(r), 0);
	ck_assert_uint_eq(runner_queued(r), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 0);

	/* Pause holds the queue back; resume releases it. */
	runner_set_paused(r, true);
	submit_range(r, "square", 1, 0, 3);
	ck_assert_uint_eq(runner_queued(r), 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 0);
	runner_set_paused(r, false);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, 1);
	collect_free(&c);
	runner_destroy(&r);
	close_loop(&loop);
}
END_TEST

START_TEST(test_runner_stop)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct collect c = {0};
	struct runner *r = runner_create(&loop, 2, on_done, &c);
	for (uint32_t i = 0; i < 6; i++)
		submit_range(r, "square", i, 0, 100);
	runner_stop(r, on_stopped, &c);
	ck_assert_int_eq(c.stopped, 0); /* two are still running */
	ck_assert_uint_eq(runner_queued(r), 0);
	submit_range(r, "square", 9, 0, 1); /* ignored */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(c.stopped, 1);
	ck_assert_uint_eq(c.n, 2); /* running tasks still report */
	collect_free(&c);
	runner_destroy(&r);

	/* Stopping an idle runner reports at once. */
	r = runner_create(&loop, 2, on_done, &c);
	runner_stop(r, on_stopped, &c);
	ck_assert_int_eq(c.stopped, 2);
	runner_destroy(&r);
	close_loop(&loop);
}
END_TEST

START_TEST(test_runner_chunks)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	static struct collect c; /* big: many results */
	memset(&c, 0, sizeof(c));
	struct runner *r = runner_create(&loop, 1, on_done, &c);
	/* A big task holds the only slot while small ones pile up; they then travel in chunks
	 * and still come back complete and in order. */
	submit_range(r, "sum", 0, 0, 1000000);
	for (uint32_t i = 1; i < MAX_RESULTS; i++)
		submit_range(r, "square", i, i, i + 1);
	ck_assert_uint_eq(runner_running(r), 1);
	/* Cancel some queued ones: chunks must skip them. */
	struct task_ref refs[] = {{7, 5, 1}, {7, 6, 1}};
	ck_assert_uint_eq(runner_cancel(r, refs, 2), 2);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(c.n, MAX_RESULTS - 2);
	uint32_t prev = 0;
	for (size_t i = 0; i < c.n; i++) {
		const struct task_result *res = c.res[i];
		ck_assert(res->ok);
		if (i > 0)
			ck_assert_uint_gt(res->ref.task_id, prev);
		prev = res->ref.task_id;
		if (res->ref.task_id > 0) {
			char want[32];
			snprintf(want, sizeof(want), "%u\n", res->ref.task_id * res->ref.task_id);
			ck_assert(result_is(res, want));
		}
	}
	collect_free(&c);
	runner_destroy(&r);
	close_loop(&loop);
}
END_TEST

static Suite *runner_suite(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("backoff");
	tcase_add_test(tc, test_backoff_sequence);
	tcase_add_test(tc, test_backoff_random);
	suite_add_tcase(s, tc);
	tc = tcase_create("config");
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_flags);
	tcase_add_test(tc, test_config_errors);
	tcase_add_test(tc, test_config_help_version);
	suite_add_tcase(s, tc);
	tc = tcase_create("runner");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_runner_runs);
	tcase_add_test(tc, test_runner_failures);
	tcase_add_test(tc, test_runner_split);
	tcase_add_test(tc, test_runner_cancel_drop);
	tcase_add_test(tc, test_runner_stop);
	tcase_add_test(tc, test_runner_chunks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(runner_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
