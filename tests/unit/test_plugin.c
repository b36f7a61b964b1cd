/* test_plugin.c: the plugin loader (plugin.h) with real shared objects built for the test
 * (tests/unit/plugins/, paths in SHOAL_TEST_PLUGIN_*) and the example histogram plugin
 * (examples/plugins/histogram.c, in SHOAL_HISTOGRAM_PLUGIN): refusals with the messages users
 * see, the args and output adapters, rollback of a failed call, and the histogram's map and
 * combine (partition independence, associativity, errors), also from several threads. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "test_args.h"
#include "buf.h"
#include "plugin.h"
#include "util.h"

static const char *env_path(const char *name)
{
	const char *p = getenv(name);
	ck_assert_msg(p != NULL, "%s is not set (run through meson test)", name);
	return p;
}

static const char *test_plugin(const char *name)
{
	char var[64];
	snprintf(var, sizeof(var), "SHOAL_TEST_PLUGIN_%s", name);
	return env_path(var);
}

static struct plugin *load_ok(const char *path)
{
	char err[512];
	struct plugin *p = plugin_load(path, err, sizeof(err));
	ck_assert_msg(p != NULL, "plugin_load %s: %s", path, err);
	return p;
}

static void assert_load_fails(const char *path, const char *want)
{
	char err[512], full[1024];
	ck_assert_ptr_null(plugin_load(path, err, sizeof(err)));
	snprintf(full, sizeof(full), want, path);
	ck_assert_msg(strncmp(err, full, strlen(full)) == 0, "error\n  got:  %s\n  want: %s...",
	              err, full);
}

static void assert_buf(const struct buf *b, const char *want)
{
	ck_assert_msg(b->len == strlen(want) && memcmp(b->data, want, b->len) == 0,
	              "got '%.*s', want '%s'", (int)b->len, b->data ? (const char *)b->data : "",
	              want);
}

/* ------------------------------------------------------------------------------------------ */
/* Loading */

START_TEST(test_refusals)
{
	assert_load_fails(test_plugin("BAD_ABI"), "plugin %s: ABI version 7, this shoal speaks 1");
	assert_load_fails(test_plugin("NO_SYMBOL"),
	                  "plugin %s: missing symbol shoal_plugin_v1 (see shoal_plugin.h)");
	assert_load_fails(test_plugin("NO_MAP"), "plugin %s: no map function");
	assert_load_fails("/nonexistent/x.so", "plugin %s: cannot load: ");
	/* Not a shared object at all. */
	char path[] = "/tmp/test_plugin_XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "not ELF\n", 8), 8);
	close(fd);
	assert_load_fails(path, "plugin %s: cannot load: ");
	unlink(path);
	/* A bare name is a file in the current directory, never a search of the library path:
	 * libc.so.6 is not loaded from /lib. */
	ck_assert_int_eq(chdir("/"), 0);
	assert_load_fails("libc.so.6", "plugin %s: cannot load: ");
}
END_TEST

START_TEST(test_load_histogram)
{
	const char *path = env_path("SHOAL_HISTOGRAM_PLUGIN");
	struct plugin *p = load_ok(path);
	const struct shoal_plugin *d = plugin_desc(p);
	ck_assert_uint_eq(d->abi_version, SHOAL_PLUGIN_ABI_VERSION);
	ck_assert_str_eq(d->name, "histogram");
	ck_assert(d->map != NULL);
	ck_assert(d->combine != NULL);
	ck_assert(d->finalize == NULL);
	/* Loading twice gives two working handles; unloading one leaves the other usable. */
	struct plugin *q = load_ok(path);
	plugin_unload(&p);
	ck_assert_ptr_null(p);
	struct buf out = BUF_INIT;
	char err[512];
	ck_assert_int_eq(plugin_map(q, NULL, 0, (const uint8_t *)"5\n", 2, &out, err, sizeof(err)),
	                 0);
	assert_buf(&out, "5\t1\n");
	plugin_unload(&q);
	plugin_unload(&q); /* NULL: nothing */
	buf_free(&out);

	/* A bare name is taken from the current directory. */
	const char *slash = strrchr(path, '/');
	char *dir = xstrndup(path, (size_t)(slash - path));
	ck_assert_int_eq(chdir(dir), 0);
	p = load_ok(slash + 1);
	plugin_unload(&p);
	free(dir);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Adapters */

START_TEST(test_adapters)
{
	struct plugin *p = load_ok(test_plugin("ECHO"));
	struct buf out = BUF_INIT;
	char err[512];
	size_t na;
	Shoal__Arg **a = make_args(&na, "k", "v", "empty", "", ARGS_END);
	buf_append(&out, ">", 1);
	ck_assert_int_eq(plugin_map(p, a, na, (const uint8_t *)"data", 4, &out, err, sizeof(err)),
	                 0);
	assert_buf(&out, ">k=v\nempty=\ndata");
	/* NULL data with no bytes is an empty partition. */
	buf_reset(&out);
	ck_assert_int_eq(plugin_map(p, NULL, 0, NULL, 0, &out, err, sizeof(err)), 0);
	assert_buf(&out, "");

	/* More args than the loader keeps on its stack. */
	char keys[20][8], vals[20][8];
	for (int i = 0; i < 20; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		snprintf(vals[i], sizeof(vals[i]), "v%d", i);
		Shoal__Arg x = SHOAL__ARG__INIT;
		x.key = keys[i];
		x.value = vals[i];
		test_arg_storage[i] = x;
		test_arg_ptrs[i] = &test_arg_storage[i];
	}
	buf_reset(&out);
	ck_assert_int_eq(
	    plugin_map(p, test_arg_ptrs, 20, (const uint8_t *)"", 0, &out, err, sizeof(err)), 0);
	ck_assert_uint_eq(out.len, 10 * 6 + 10 * 8);
	ck_assert(memcmp(out.data + out.len - 8, "k19=v19\n", 8) == 0);

	/* A failing map: the half output is dropped, the reason carries the plugin's name. */
	buf_reset(&out);
	buf_append(&out, "keep", 4);
	ck_assert_int_eq(
	    plugin_map(p, NULL, 0, (const uint8_t *)"fail!", 5, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "plugin echo: map: asked to fail after 5 bytes");
	assert_buf(&out, "keep");
	ck_assert_int_eq(
	    plugin_map(p, NULL, 0, (const uint8_t *)"failquiet", 9, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "plugin echo: map failed (returned -1)");
	assert_buf(&out, "keep");

	/* combine and finalize. */
	buf_reset(&out);
	ck_assert_int_eq(
	    plugin_combine(p, NULL, 0, NULL, 0, (const uint8_t *)"x", 1, &out, err, sizeof(err)),
	    0);
	assert_buf(&out, "|x");
	buf_reset(&out);
	ck_assert_int_eq(plugin_combine(p, NULL, 0, (const uint8_t *)"a", 1, (const uint8_t *)"b",
	                                1, &out, err, sizeof(err)),
	                 0);
	assert_buf(&out, "a|b");
	buf_reset(&out);
	ck_assert_int_eq(
	    plugin_finalize(p, NULL, 0, (const uint8_t *)"acc", 3, &out, err, sizeof(err)), 0);
	assert_buf(&out, "[acc]");
	plugin_unload(&p);

	/* Without combine and finalize: concatenation, then the value itself. */
	p = load_ok(test_plugin("MAP_ONLY"));
	buf_reset(&out);
	ck_assert_int_eq(
	    plugin_map(p, NULL, 0, (const uint8_t *)"abc\n", 4, &out, err, sizeof(err)), 0);
	assert_buf(&out, "ABC\n");
	buf_reset(&out);
	ck_assert_int_eq(plugin_combine(p, NULL, 0, (const uint8_t *)"A\n", 2,
	                                (const uint8_t *)"B\n", 2, &out, err, sizeof(err)),
	                 0);
	assert_buf(&out, "A\nB\n");
	buf_reset(&out);
	ck_assert_int_eq(
	    plugin_finalize(p, NULL, 0, (const uint8_t *)"A\nB\n", 4, &out, err, sizeof(err)), 0);
	assert_buf(&out, "A\nB\n");
	plugin_unload(&p);
	buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The histogram plugin */

static void hist_map_ok(const struct plugin *p, const char *width, const uint8_t *data, size_t len,
                        struct buf *out)
{
	char err[512];
	size_t na = 0;
	Shoal__Arg **a = width != NULL ? make_args(&na, "width", width, ARGS_END) : NULL;
	ck_assert_msg(plugin_map(p, a, na, data, len, out, err, sizeof(err)) == 0, "map: %s", err);
}

static void hist_combine_ok(const struct plugin *p, const struct buf *acc, const struct buf *part,
                            struct buf *out)
{
	char err[512];
	ck_assert_msg(plugin_combine(p, NULL, 0, acc->data, acc->len, part->data, part->len, out,
	                             err, sizeof(err)) == 0,
	              "combine: %s", err);
}

START_TEST(test_histogram_small)
{
	struct plugin *p = load_ok(env_path("SHOAL_HISTOGRAM_PLUGIN"));
	struct buf out = BUF_INIT;
	const char *text = "1\n2\n12\n-1\n 10 \r\n-10\n+3\n29";
	hist_map_ok(p, "10", (const uint8_t *)text, strlen(text), &out);
	assert_buf(&out, "-10\t2\n0\t3\n10\t2\n20\t1\n");
	buf_reset(&out);
	hist_map_ok(p, NULL, (const uint8_t *)"3\n1\n3\n", 6, &out);
	assert_buf(&out, "1\t1\n3\t2\n");
	buf_reset(&out);
	hist_map_ok(p, "7", (const uint8_t *)"", 0, &out);
	assert_buf(&out, "");
	/* Extremes: floor division at both ends of int64. */
	buf_reset(&out);
	const char *ext = "9223372036854775807\n-9223372036854775808\n";
	hist_map_ok(p, "4611686018427387904", (const uint8_t *)ext, strlen(ext), &out);
	assert_buf(&out, "-9223372036854775808\t1\n4611686018427387904\t1\n");

	/* Errors. */
	char err[512];
	size_t na;
	Shoal__Arg **a = make_args(&na, "width", "10", ARGS_END);
	buf_reset(&out);
	ck_assert_int_eq(
	    plugin_map(p, a, na, (const uint8_t *)"1\nx2\n", 5, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "plugin histogram: map: record 2 is not an integer: \"x2\"");
	ck_assert_int_eq(
	    plugin_map(p, a, na, (const uint8_t *)"1\n\n2\n", 5, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "plugin histogram: map: record 2 is not an integer: \"\"");
	ck_assert_int_eq(plugin_map(p, a, na, (const uint8_t *)"9223372036854775808\n", 20, &out,
	                            err, sizeof(err)),
	                 -1);
	a = make_args(&na, "width", "3", ARGS_END);
	ck_assert_int_eq(plugin_map(p, a, na, (const uint8_t *)"-9223372036854775808\n", 21, &out,
	                            err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "plugin histogram: map: record 1: the bucket of -9223372036854775808 "
	                      "starts below -2^63");
	a = make_args(&na, "width", "0", ARGS_END);
	ck_assert_int_eq(plugin_map(p, a, na, (const uint8_t *)"1\n", 2, &out, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err,
	                 "plugin histogram: map: --arg width takes a positive integer, got '0'");
	a = make_args(&na, "bins", "3", ARGS_END);
	ck_assert_int_eq(plugin_map(p, a, na, (const uint8_t *)"1\n", 2, &out, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err,
	                 "plugin histogram: map: unknown --arg 'bins' (histogram takes width)");
	ck_assert_uint_eq(out.len, 0);

	/* combine checks what it reads. */
	struct buf acc = BUF_INIT, part = BUF_INIT;
	buf_printf(&acc, "0\t1\n10\t2\n");
	buf_printf(&part, "10\t3\n5\t1\n");
	ck_assert_int_eq(plugin_combine(p, NULL, 0, acc.data, acc.len, part.data, part.len, &out,
	                                err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "plugin histogram: combine: partial line 2 is not START<TAB>COUNT in "
	                      "increasing order: \"5\\t1\"");
	ck_assert_uint_eq(out.len, 0);
	buf_reset(&part);
	buf_printf(&part, "10\t3\n20\t9223372036854775807\n");
	ck_assert_int_eq(plugin_combine(p, NULL, 0, acc.data, acc.len, part.data, part.len, &out,
	                                err, sizeof(err)),
	                 0);
	assert_buf(&out, "0\t1\n10\t5\n20\t9223372036854775807\n");
	buf_reset(&out);
	buf_reset(&acc);
	buf_printf(&acc, "20\t1\n");
	ck_assert_int_eq(plugin_combine(p, NULL, 0, acc.data, acc.len, part.data, part.len, &out,
	                                err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "plugin histogram: combine: count of bucket 20 overflows");
	buf_free(&acc);
	buf_free(&part);
	buf_free(&out);
	plugin_unload(&p);
}
END_TEST

START_TEST(test_histogram_partitions)
{
	/* Cut anywhere on record boundaries, mapped per piece and folded left with combine from
	 * an empty start: the same bytes as one map over everything. Folding in another grouping
	 * (right fold) gives them too: combine is associative. */
	struct plugin *p = load_ok(env_path("SHOAL_HISTOGRAM_PLUGIN"));
	srandom(8);
	for (int trial = 0; trial < 40; trial++) {
		struct buf data = BUF_INIT, whole = BUF_INIT;
		size_t n = (size_t)random() % 3000;
		for (size_t i = 0; i < n; i++)
			buf_printf(&data, "%ld\n", random() % 2001 - 1000);
		const char *width = trial % 2 ? "7" : "100";
		hist_map_ok(p, width, data.data, data.len, &whole);
		size_t nparts = 1 + (size_t)random() % 12;
		struct buf *parts = xcalloc(nparts, sizeof(*parts));
		size_t pos = 0;
		for (size_t i = 0; i < nparts; i++) {
			size_t end =
			    i + 1 == nparts ? data.len : pos + (size_t)random() % (data.len + 1);
			if (end > data.len)
				end = data.len;
			const uint8_t *nl =
			    end < data.len ? memchr(data.data + end, '\n', data.len - end) : NULL;
			end = nl != NULL ? (size_t)(nl - data.data) + 1 : data.len;
			hist_map_ok(p, width, data.data + pos, end - pos, &parts[i]);
			pos = end;
		}
		struct buf left = BUF_INIT, tmp = BUF_INIT;
		for (size_t i = 0; i < nparts; i++) {
			buf_reset(&tmp);
			hist_combine_ok(p, &left, &parts[i], &tmp);
			struct buf t = left;
			left = tmp;
			tmp = t;
		}
		ck_assert(left.len == whole.len &&
		          (left.len == 0 || memcmp(left.data, whole.data, left.len) == 0));
		struct buf right = BUF_INIT;
		for (size_t i = nparts; i-- > 0;) {
			buf_reset(&tmp);
			hist_combine_ok(p, &parts[i], &right, &tmp);
			struct buf t = right;
			right = tmp;
			tmp = t;
		}
		ck_assert(right.len == whole.len &&
		          (right.len == 0 || memcmp(right.data, whole.data, right.len) == 0));
		for (size_t i = 0; i < nparts; i++)
			buf_free(&parts[i]);
		free(parts);
		buf_free(&left);
		buf_free(&right);
		buf_free(&tmp);
		buf_free(&data);
		buf_free(&whole);
	}
	plugin_unload(&p);
}
END_TEST

/* map from several threads at once on one loaded plugin, as the worker's pool does. */
struct thread_job {
	const struct plugin *p;
	const struct buf *data;
	struct buf out;
	int rc;
};

static void thread_main(void *arg)
{
	struct thread_job *j = arg;
	char err[512];
	for (int i = 0; i < 20 && j->rc == 0; i++) {
		buf_reset(&j->out);
		j->rc = plugin_map(j->p, NULL, 0, j->data->data, j->data->len, &j->out, err,
		                   sizeof(err));
	}
}

START_TEST(test_histogram_threads)
{
	struct plugin *p = load_ok(env_path("SHOAL_HISTOGRAM_PLUGIN"));
	struct buf data = BUF_INIT, want = BUF_INIT;
	srandom(2);
	for (int i = 0; i < 20000; i++)
		buf_printf(&data, "%ld\n", random() % 50);
	hist_map_ok(p, NULL, data.data, data.len, &want);
	struct thread_job jobs[4];
	uv_thread_t th[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct thread_job){p, &data, BUF_INIT, 0};
		ck_assert_int_eq(uv_thread_create(&th[i], thread_main, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(uv_thread_join(&th[i]), 0);
		ck_assert_int_eq(jobs[i].rc, 0);
		ck_assert(jobs[i].out.len == want.len &&
		          memcmp(jobs[i].out.data, want.data, want.len) == 0);
		buf_free(&jobs[i].out);
	}
	buf_free(&data);
	buf_free(&want);
	plugin_unload(&p);
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_load_histogram);
	tcase_add_test(tc, test_adapters);
	tcase_add_test(tc, test_histogram_small);
	tcase_add_test(tc, test_histogram_partitions);
	tcase_add_test(tc, test_histogram_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plugin_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
