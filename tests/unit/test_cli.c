/* test_cli.c: the socket-free pieces of the `shoal` CLI: number, size, range and KEY=VALUE
 * parsing, the JSON writer's escaping and commas, the progress line's formatting, the rules
 * among the job flags (--op / --exec / --plugin, --reduce-exec, --reducers, --file,
 * --broadcast), the knn accuracy line, the --ttl / --input job:ID / lock name syntaxes, and
 * `shoal lock`'s command runner driven by a fake lease. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "accuracy.h"
#include "jobflags.h"
#include "json.h"
#include "lockrun.h"
#include "parse.h"
#include "progress.h"
#include "table.h"
#include "util.h"

static char err[256];

START_TEST(test_i64)
{
	static const struct {
		const char *s;
		int64_t v;
	} ok[] = {
	    {"0", 0},
	    {"-0", 0},
	    {"+7", 7},
	    {"-42", -42},
	    {"007", 7},
	    {"9223372036854775807", INT64_MAX},
	    {"-9223372036854775808", INT64_MIN},
	};
	static const char *const bad[] = {
	    "",
	    " 1",
	    "1 ",
	    "1x",
	    "x",
	    "-",
	    "+",
	    "--1",
	    "1.5",
	    "0x10",
	    "1e3",
	    "9223372036854775808",
	    "-9223372036854775809",
	    "99999999999999999999",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse_i64(ok[i].s, INT64_MIN, INT64_MAX, &v, err, sizeof(err)) == 0,
		              "%s: %s", ok[i].s, err);
		ck_assert(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		ck_assert_msg(parse_i64(bad[i], INT64_MIN, INT64_MAX, &v, err, sizeof(err)) < 0,
		              "'%s' accepted", bad[i]);
		ck_assert(v == 12345); /* out-param untouched on failure */
		ck_assert(err[0] != '\0');
	}
	/* Caller bounds. */
	ck_assert_int_eq(parse_i64("2147483647", INT32_MIN, INT32_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_i64("2147483648", INT32_MIN, INT32_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_i64("-2147483649", INT32_MIN, INT32_MAX, &v, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_u64)
{
	uint64_t v;

	ck_assert_int_eq(parse_u64("0", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert(v == 0);
	ck_assert_int_eq(parse_u64("18446744073709551615", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert(v == UINT64_MAX);
	ck_assert_int_lt(parse_u64("18446744073709551616", UINT64_MAX, &v, err, sizeof(err)), 0);
	/* strtoull would wrap "-1" to UINT64_MAX */
	ck_assert_int_lt(parse_u64("-1", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("+1", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64(" 1", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("1 ", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_u64("4294967295", UINT32_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("4294967296", UINT32_MAX, &v, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_size)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
	    {"0", 0},
	    {"1", 1},
	    {"512B", 512},
	    {"512b", 512},
	    {"1K", 1024},
	    {"1k", 1024},
	    {"64KB", 64 << 10},
	    {"64KiB", 64 << 10},
	    {"64kib", 64 << 10},
	    {"3M", 3u << 20},
	    {"2G", 2ull << 30},
	    {"5T", 5ull << 40},
	    {"18446744073709551615", UINT64_MAX},
	    {"16777215T", 16777215ull << 40},
	};
	static const char *const bad[] = {
	    "",
	    "K",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1.5M",
	    "1Ki",
	    "1KX",
	    "1X",
	    "1BB",
	    "1MBs",
	    "0x10",
	    "16777216T",
	    "18446744073709551616",
	    "99999999999999999999K",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse_size(ok[i].s, &v, err, sizeof(err)) == 0, "%s: %s", ok[i].s,
		              err);
		ck_assert_msg(v == ok[i].v, "%s", ok[i].s);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse_size(bad[i], &v, err, sizeof(err)) < 0, "'%s' accepted",
		              bad[i]);
}
END_TEST

START_TEST(test_range)
{
	int64_t lo = 99, hi = 99;

	ck_assert_int_eq(parse_range("0:10", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == 0 && hi == 10);
	ck_assert_int_eq(parse_range("-10:-5", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == -10 && hi == -5);
	ck_assert_int_eq(parse_range("5:5", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == 5 && hi == 5);
	ck_assert_int_eq(
	    parse_range("-9223372036854775808:9223372036854775807", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == INT64_MIN && hi == INT64_MAX);
	ck_assert_int_eq(
	    parse_range("00000000000000000000000000000000001:2", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == 1 && hi == 2);

	lo = hi = 99;
	static const char *const bad[] = {
	    "",
	    ":",
	    "1:",
	    ":1",
	    "1",
	    "1:2:3",
	    "a:b",
	    "1 :2",
	    "1: 2",
	    "10:5",
	    "0:9223372036854775808",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_range(bad[i], &lo, &hi, err, sizeof(err)) < 0, "'%s' accepted",
		              bad[i]);
		ck_assert(lo == 99 && hi == 99);
	}
	ck_assert(strstr((parse_range("10:5", &lo, &hi, err, sizeof(err)), err), "greater"));
}
END_TEST

START_TEST(test_kv)
{
	size_t n;

	ck_assert_int_eq(parse_kv("pattern=foo", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 7);
	ck_assert_int_eq(parse_kv("k=", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(parse_kv("k=a=b", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_lt(parse_kv("=v", &n, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_kv("novalue", &n, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_kv("", &n, err, sizeof(err)), 0);
}
END_TEST

/* json_escape of len bytes, as a NUL-terminated string (caller frees). */
static char *esc(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	size_t n;
	char *out;

	json_escape(&b, s, len);
	buf_append_byte(&b, 0);
	out = (char *)buf_steal(&b, &n);
	return out;
}

START_TEST(test_json_escape)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"", 0, "\"\""},
	    {"plain", 5, "\"plain\""},
	    {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
	    {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
	    {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
	    {"nul\0x", 5, "\"nul\\u0000x\""},
	    {"/\x7f", 2, "\"/\x7f\""},
	    /* valid UTF-8 passes through: é, €, 𝄞 */
	    {"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\""},
	    /* invalid: lone continuation, truncated, overlong, surrogate, > U+10FFFF */
	    {"\x80", 1, "\"\\ufffd\""},
	    {"a\xc3", 2, "\"a\\ufffd\""},
	    {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},
	    {"\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\""},
	    {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},
	    {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
	    {"\xff", 1, "\"\\ufffd\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = esc(cases[i].in, cases[i].len);
		ck_assert_msg(strcmp(got, cases[i].out) == 0, "case %zu: got %s", i, got);
		free(got);
	}
}
END_TEST

static char *doc(struct json *j)
{
	char *s = malloc(j->out.len + 1);
	memcpy(s, j->out.data, j->out.len);
	s[j->out.len] = '\0';
	json_deinit(j);
	return s;
}

START_TEST(test_json_writer)
{
	struct json j;
	char *s;

	json_init(&j);
	json_array_begin(&j);
	json_array_end(&j);
	s = doc(&j);
	ck_assert_str_eq(s, "[]");
	free(s);

	json_init(&j);
	json_object_begin(&j);
	json_key(&j, "job_id");
	json_u64(&j, UINT64_MAX);
	json_key(&j, "p");
	json_i64(&j, INT64_MIN);
	json_key(&j, "ok");
	json_bool(&j, true);
	json_key(&j, "no");
	json_bool(&j, false);
	json_key(&j, "n");
	json_null(&j);
	json_key(&j, "a");
	json_array_begin(&j);
	json_object_begin(&j);
	json_object_end(&j);
	json_object_begin(&j);
	json_key(&j, "k\"");
	json_string(&j, "v\n");
	json_object_end(&j);
	json_array_end(&j);
	json_key(&j, "last");
	json_string(&j, "");
	json_object_end(&j);
	s = doc(&j);
	ck_assert_str_eq(s, "{\"job_id\":18446744073709551615,\"p\":-9223372036854775808,"
	                    "\"ok\":true,\"no\":false,\"n\":null,\"a\":[{},{\"k\\\"\":\"v\\n\"}],"
	                    "\"last\":\"\"}");
	free(s);
}
END_TEST

START_TEST(test_progress_fmt)
{
	char s[160];

	progress_fmt_thousands(0, s, sizeof(s));
	ck_assert_str_eq(s, "0");
	progress_fmt_thousands(999, s, sizeof(s));
	ck_assert_str_eq(s, "999");
	progress_fmt_thousands(1000, s, sizeof(s));
	ck_assert_str_eq(s, "1,000");
	progress_fmt_thousands(4321, s, sizeof(s));
	ck_assert_str_eq(s, "4,321");
	progress_fmt_thousands(1234567, s, sizeof(s));
	ck_assert_str_eq(s, "1,234,567");
	progress_fmt_thousands(UINT64_MAX, s, sizeof(s));
	ck_assert_str_eq(s, "18,446,744,073,709,551,615");

	progress_fmt_duration(0, s, sizeof(s));
	ck_assert_str_eq(s, "0:00");
	progress_fmt_duration(12, s, sizeof(s));
	ck_assert_str_eq(s, "0:12");
	progress_fmt_duration(754, s, sizeof(s));
	ck_assert_str_eq(s, "12:34");
	progress_fmt_duration(3723, s, sizeof(s));
	ck_assert_str_eq(s, "1:02:03");

	progress_fmt_line("running", 123, 1000, 4321, s, sizeof(s));
	ck_assert_str_eq(s, "[##..................] 123/1000 tasks  4,321 tasks/s  ETA 0:00");
	progress_fmt_line("running", 500, 1000, 50, s, sizeof(s));
	ck_assert_str_eq(s, "[##########..........] 500/1000 tasks  50 tasks/s  ETA 0:10");
	progress_fmt_line("running", 1000, 1000, 50, s, sizeof(s));
	ck_assert_str_eq(s, "[####################] 1000/1000 tasks  50 tasks/s  ETA 0:00");
	progress_fmt_line("running", 3, 10, 0, s, sizeof(s));
	ck_assert_str_eq(s, "[######..............] 3/10 tasks  running");
	progress_fmt_line("queued", 0, 0, 0, s, sizeof(s));
	ck_assert_str_eq(s, "[....................] queued");
	/* done > total (a confused master) does not overflow the bar */
	progress_fmt_line("running", 20, 10, 1, s, sizeof(s));
	ck_assert_str_eq(s, "[####################] 10/10 tasks  1 tasks/s  ETA 0:00");
}
END_TEST

START_TEST(test_table)
{
	static const bool right[] = {true, false, false};
	static const char *const r1[] = {"ID", "STATE", "NAME"};
	static const char *const r2[] = {"7", "succeeded", "x"};
	static const char *const r3[] = {"123", "failed", ""};
	struct table t;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	table_init(&t, 3, right);
	table_add(&t, r1);
	table_add(&t, r2);
	table_add(&t, r3);
	table_print(&t, f);
	table_deinit(&t);
	fclose(f);
	ck_assert_str_eq(out, " ID  STATE      NAME\n"
	                      "  7  succeeded  x\n"
	                      "123  failed\n");
	free(out);
}
END_TEST

/* ---- job flags ---- */

/* Runs jobflags_check; returns its result and leaves the message in err. */
static int jf(const struct jobflags *f, struct jobflags_result *r)
{
	struct jobflags_result tmp;

	err[0] = '\0';
	return jobflags_check(f, r ? r : &tmp, err, sizeof(err));
}

#define JF_BAD(f, text)                                                                            \
	do {                                                                                       \
		ck_assert_int_lt(jf(&(f), NULL), 0);                                               \
		ck_assert_msg(strstr(err, (text)) != NULL, "'%s' does not say '%s'", err, (text)); \
	} while (0)

START_TEST(test_jobflags_kind)
{
	struct jobflags f = {0};
	struct jobflags_result r;

	JF_BAD(f, "one of --op NAME, --exec CMD, --plugin LIB.so");
	f.op = "square";
	f.exec = "cat";
	JF_BAD(f, "only one of --op, --exec, --plugin");
	f.op = NULL;
	f.plugin = "x.so";
	JF_BAD(f, "only one of --op, --exec, --plugin");
	f.op = "square";
	JF_BAD(f, "only one of --op, --exec, --plugin");

	memset(&f, 0, sizeof(f));
	f.op = "frobnicate";
	JF_BAD(f, "unknown op 'frobnicate' (known: square,");
	f.op = "square";
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_ptr_eq(r.op, op_find("square"));
	ck_assert_uint_eq(r.reducers, 0);

	memset(&f, 0, sizeof(f));
	f.exec = "python3 square.py";
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_ptr_null(r.op);
	f.exec = "";
	JF_BAD(f, "--exec: empty command");
	f.exec = " \t";
	JF_BAD(f, "--exec: empty command");

	memset(&f, 0, sizeof(f));
	f.plugin = "build/histogram.so";
	f.nargs = 2; /* a plugin's args are its own */
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_ptr_null(r.op);
	f.plugin = "lib/";
	JF_BAD(f, "--plugin lib/: the path does not end in a file name");
	f.plugin = "";
	JF_BAD(f, "--plugin: empty path");
}
END_TEST

START_TEST(test_jobflags_exec)
{
	struct jobflags f = {0};
	struct jobflags_result r;
	char *longcmd = malloc(JOBFLAGS_EXEC_MAX + 2);

	/* The command may be as long as the master takes, and no longer. */
	memset(longcmd, 'x', JOBFLAGS_EXEC_MAX + 1);
	longcmd[JOBFLAGS_EXEC_MAX] = '\0';
	f.exec = longcmd;
	ck_assert_int_eq(jf(&f, &r), 0);
	longcmd[JOBFLAGS_EXEC_MAX] = 'x';
	longcmd[JOBFLAGS_EXEC_MAX + 1] = '\0';
	JF_BAD(f, "--exec: the command is longer than 65536 bytes");
	free(longcmd);

	/* --reduce-exec only with --exec; --reducers only with --reduce-exec. */
	memset(&f, 0, sizeof(f));
	f.op = "wordcount";
	f.reduce_exec = "cat";
	JF_BAD(f, "--reduce-exec needs --exec");
	f.op = NULL;
	f.plugin = "x.so";
	JF_BAD(f, "--reduce-exec needs --exec");
	f.plugin = NULL;
	f.exec = "tr ' ' '\\n'";
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_uint_eq(r.reducers, 0);
	f.reduce_exec = "";
	JF_BAD(f, "--reduce-exec: empty command");
	f.reduce_exec = NULL;
	f.reducers = "2";
	JF_BAD(f, "--reducers needs --reduce-exec");
	f.reduce_exec = "uniq -c";
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_uint_eq(r.reducers, 2);
	f.reducers = "10000";
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_uint_eq(r.reducers, 10000);
	f.reducers = "10001";
	JF_BAD(f, "--reducers:");
	f.reducers = "0";
	JF_BAD(f, "--reducers: must be at least 1");
	f.reducers = "-1";
	JF_BAD(f, "--reducers:");
	f.reducers = "two";
	JF_BAD(f, "--reducers:");

	/* --arg means nothing to a command. */
	memset(&f, 0, sizeof(f));
	f.exec = "cat";
	f.nargs = 1;
	JF_BAD(f, "--arg does not apply to --exec");
}
END_TEST

START_TEST(test_jobflags_files)
{
	static const char *const two[] = {"square.py", "data/words.txt"};
	static const char *const same[] = {"a/x.py", "lib.txt", "b/x.py"};
	static const char *const dir[] = {"scripts/"};
	static const char *const dots[] = {"a/.."};
	const char *many[JOBFLAGS_FILES_MAX + 1];
	struct jobflags f = {0};
	struct jobflags_result r;

	f.exec = "python3 square.py";
	f.files = two;
	f.nfiles = 2;
	ck_assert_int_eq(jf(&f, &r), 0);
	f.exec = NULL;
	f.plugin = "h.so";
	ck_assert_int_eq(jf(&f, &r), 0);
	f.plugin = NULL;
	f.op = "grep";
	JF_BAD(f, "--file applies to --exec and --plugin (op grep reads no files)");

	memset(&f, 0, sizeof(f));
	f.exec = "cat";
	f.files = same;
	f.nfiles = 3;
	JF_BAD(f, "--file a/x.py and --file b/x.py would both be 'x.py'");
	f.nfiles = 2;
	ck_assert_int_eq(jf(&f, &r), 0);
	f.files = dir;
	f.nfiles = 1;
	JF_BAD(f, "--file scripts/: the path does not end in a file name");
	f.files = dots;
	JF_BAD(f, "--file a/..: the path does not end in a file name");

	for (size_t i = 0; i < JOBFLAGS_FILES_MAX + 1; i++)
		many[i] = "same-name-but-too-many-first";
	f.files = many;
	f.nfiles = JOBFLAGS_FILES_MAX + 1;
	JF_BAD(f, "65 --file options (at most 64)");
}
END_TEST

START_TEST(test_jobflags_broadcast)
{
	struct jobflags f = {0};
	struct jobflags_result r;

	f.op = "square";
	f.broadcast = "train.csv";
	JF_BAD(f, "op square does not use --broadcast");
	f.op = NULL;
	f.exec = "wc -l \"$SHOAL_BROADCAST\"";
	ck_assert_int_eq(jf(&f, &r), 0);
	f.exec = NULL;
	f.plugin = "x.so";
	ck_assert_int_eq(jf(&f, &r), 0);
	f.broadcast = "data/";
	JF_BAD(f, "--broadcast data/: the path does not end in a file name");

	memset(&f, 0, sizeof(f));
	f.op = "knn";
	JF_BAD(f, "op knn needs --broadcast FILE");
	f.broadcast = "examples/data/iris_train.csv";
	ck_assert_int_eq(jf(&f, &r), 0);
	ck_assert_ptr_eq(r.op, op_find("knn"));
}
END_TEST

START_TEST(test_jobflags_file)
{
	char dir[] = "/tmp/test_cli_XXXXXX", path[256], sub[256];
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/square.py", dir);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("print(1)\n", f);
	fclose(f);
	ck_assert_int_eq(mkdir(sub, 0700), 0);

	ck_assert_int_eq(jobflags_check_file("--file", path, err, sizeof(err)), 0);
	ck_assert_int_lt(jobflags_check_file("--file", sub, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "Is a directory") != NULL, "%s", err);
	ck_assert_int_lt(jobflags_check_file("--plugin", "/dev/null", err, sizeof(err)), 0);
	ck_assert_str_eq(err, "--plugin /dev/null: not a regular file");
	snprintf(sub, sizeof(sub), "%s/missing.csv", dir);
	ck_assert_int_lt(jobflags_check_file("--broadcast", sub, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "--broadcast ") == err && strstr(err, "No such file"), "%s", err);

	unlink(path);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	rmdir(sub);
	rmdir(dir);

	ck_assert_str_eq(jobflags_base("a/b/c.py"), "c.py");
	ck_assert_str_eq(jobflags_base("c.py"), "c.py");
	ck_assert_str_eq(jobflags_base("/c.py"), "c.py");
	ck_assert_str_eq(jobflags_base("dir/"), "");
}
END_TEST

/* ---- knn accuracy ---- */

START_TEST(test_accuracy_format)
{
	char line[128];

	accuracy_format(29, 30, line, sizeof(line));
	ck_assert_str_eq(line, "accuracy: 29/30 = 0.9667");
	accuracy_format(30, 30, line, sizeof(line));
	ck_assert_str_eq(line, "accuracy: 30/30 = 1.0000");
	accuracy_format(0, 7, line, sizeof(line));
	ck_assert_str_eq(line, "accuracy: 0/7 = 0.0000");
	accuracy_format(2, 3, line, sizeof(line));
	ck_assert_str_eq(line, "accuracy: 2/3 = 0.6667");
	accuracy_format(9999, 10000, line, sizeof(line));
	ck_assert_str_eq(line, "accuracy: 9999/10000 = 0.9999");
	accuracy_format(0, 0, line, sizeof(line));
	ck_assert_str_eq(line, "accuracy: 0/0 = n/a");
}
END_TEST

START_TEST(test_accuracy_header)
{
	/* Headers: the first field is not a decimal number as the knn op reads one. */
	static const char *const header[] = {
	    "sepal_length,sepal_width,species",
	    "",
	    ",1,2",
	    "x",
	    ".,1",
	    "+,1",
	    "1e,1",
	    "1e+,1",
	    "0x10,1",
	    "nan,1",
	    "inf,1",
	    "1e999,1",
	    "1 2,3",
	    "1_0,2",
	    "\357\273\2775.1,3.5", /* a UTF-8 byte-order mark first */
	};
	static const char *const number[] = {
	    "5.1,3.5,1.4,0.2,setosa",
	    "5,x",
	    "-1.5e3,x",
	    "+.5,a",
	    "5.,a",
	    " \t7 ,a",
	    "1E-5",
	    "0e99999999,a", /* zero, whatever the exponent */
	    "1e+300,a",
	};

	for (size_t i = 0; i < sizeof(header) / sizeof(header[0]); i++)
		ck_assert_msg(accuracy_is_header(header[i], strlen(header[i])), "'%s' is a header",
		              header[i]);
	for (size_t i = 0; i < sizeof(number) / sizeof(number[0]); i++)
		ck_assert_msg(!accuracy_is_header(number[i], strlen(number[i])),
		              "'%s' is not a header", number[i]);
	/* Only the first field counts, and the length bounds the row. */
	ck_assert(!accuracy_is_header("12x", 2));
}
END_TEST

START_TEST(test_accuracy_wanted)
{
	static const char *const labeled[] = {"k=3", "labeled=1"};
	static const char *const unlabeled[] = {"labeled=0", "k=3"};
	static const char *const nothing[] = {"k=3"};

	ck_assert(accuracy_wanted("knn", labeled, 2));
	ck_assert(!accuracy_wanted("knn", unlabeled, 2));
	ck_assert(!accuracy_wanted("knn", nothing, 1));
	ck_assert(!accuracy_wanted("knn", NULL, 0));
	ck_assert(!accuracy_wanted("grep", labeled, 2));
	ck_assert(!accuracy_wanted(NULL, labeled, 2));
}
END_TEST

/* Scores result against queries, feeding the result step bytes at a time (0: at once).
 * Returns accuracy_finish's result; the counts in *c, *n. */
static int score(const char *queries, const char *result, size_t step, uint64_t *c, uint64_t *n)
{
	char *copy = strdup(queries);
	FILE *q = fmemopen(copy, strlen(copy), "r");
	struct accuracy *a;
	size_t len = strlen(result);
	int rc;

	ck_assert_ptr_nonnull(q);
	a = accuracy_create(q);
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len; off += step)
		accuracy_feed(a, result + off, len - off < step ? len - off : step);
	err[0] = '\0';
	rc = accuracy_finish(a, c, n, err, sizeof(err));
	accuracy_destroy(&a);
	ck_assert_ptr_null(a);
	free(copy);
	return rc;
}

START_TEST(test_accuracy_score)
{
	/* A header, CRLF line ends, blanks around labels; the last row lacks its '\n'. */
	static const char queries[] = "f1,f2,label\r\n"
	                              "1.0,2.0,setosa\r\n"
	                              "3.0,4.0, versicolor \n"
	                              "5.0,6.0,\tvirginica\n"
	                              "7.0,8.0,setosa";
	static const size_t steps[] = {0, 1, 2, 3, 5, 7, 64};
	uint64_t c = 99, n = 99;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ck_assert_int_eq(
		    score(queries, "setosa\nversicolor\nsetosa\nsetosa\n", steps[i], &c, &n), 0);
		ck_assert_uint_eq(c, 3);
		ck_assert_uint_eq(n, 4);
	}
	/* The result's last line without its '\n' still counts. */
	ck_assert_int_eq(score(queries, "setosa\nversicolor\nvirginica\nsetosa", 3, &c, &n), 0);
	ck_assert_uint_eq(c, 4);
	ck_assert_uint_eq(n, 4);
	/* Labels compare as bytes: blanks in the prediction are not trimmed, case counts. */
	ck_assert_int_eq(score(queries, "setosa \nVersicolor\nvirginica\nsetosa\n", 0, &c, &n), 0);
	ck_assert_uint_eq(c, 2);
	ck_assert_uint_eq(n, 4);

	/* A numeric first line is a row, not a header; a later non-numeric line is a row. */
	ck_assert_int_eq(score("1,a\nx,b\n2,c\n", "a\nb\nx\n", 1, &c, &n), 0);
	ck_assert_uint_eq(c, 2);
	ck_assert_uint_eq(n, 3);
	/* Numeric labels compare as written. */
	ck_assert_int_eq(score("h\n1,2,0\n1,2,1\n", "0\n1.0\n", 0, &c, &n), 0);
	ck_assert_uint_eq(c, 1);
	ck_assert_uint_eq(n, 2);

	/* Nothing at all: 0/0. A header alone: 0/0. */
	ck_assert_int_eq(score("", "", 0, &c, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(score("a,b,label\n", "", 0, &c, &n), 0);
	ck_assert_uint_eq(n, 0);

	/* Different numbers of rows: no score, and why. */
	ck_assert_int_lt(score(queries, "setosa\nversicolor\nsetosa\nsetosa\nsetosa\n", 2, &c, &n),
	                 0);
	ck_assert_str_eq(err, "the result has more rows than the input (4)");
	ck_assert_int_lt(score(queries, "setosa\nversicolor\n", 2, &c, &n), 0);
	ck_assert_str_eq(err, "the input has more rows than the result (2)");
}
END_TEST

/* A long result streamed in odd chunks against a long query file: counts, not memory. */
START_TEST(test_accuracy_long)
{
	struct buf qb = BUF_INIT, rb = BUF_INIT;
	uint64_t c, n, want = 0;

	buf_printf(&qb, "x,y,label\n");
	for (int i = 0; i < 20000; i++) {
		const char *label = i % 3 == 0 ? "a" : i % 3 == 1 ? "bb" : "ccc";
		const char *pred = i % 7 == 0 ? "bb" : label;
		buf_printf(&qb, "%d.5,%d,%s\n", i, -i, label);
		buf_printf(&rb, "%s\n", pred);
		want += strcmp(label, pred) == 0;
	}
	buf_append_byte(&qb, '\0');
	buf_append_byte(&rb, '\0');
	ck_assert_int_eq(score((char *)qb.data, (char *)rb.data, 4093, &c, &n), 0);
	ck_assert_uint_eq(n, 20000);
	ck_assert_uint_eq(c, want);
	buf_free(&qb);
	buf_free(&rb);
}
END_TEST

START_TEST(test_seconds)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} ok[] = {
	    {"30", 30000},  {"0.1", 100},    {"0.5", 500},        {"2.125", 2125},  {"1.0", 1000},
	    {"7.50", 7500}, {"0.1000", 100}, {"86400", 86400000}, {"00012", 12000},
	};
	static const char *const bad[] = {
	    "", " 1", "1 ", "-1", "+1", "1.", ".5", "1s", "1e3", "0x10", "1,5", "nan",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse_seconds_ms(ok[i].s, 100, 86400000, &v, err, sizeof(err)) == 0,
		              "%s: %s", ok[i].s, err);
		ck_assert_uint_eq(v, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		ck_assert_msg(parse_seconds_ms(bad[i], 100, 86400000, &v, err, sizeof(err)) < 0,
		              "'%s' accepted", bad[i]);
		ck_assert_uint_eq(v, 12345);
		ck_assert(strstr(err, "not a number of seconds") != NULL);
	}
	/* Bounds, and precision beyond a millisecond. */
	ck_assert_int_lt(parse_seconds_ms("0.099", 100, 86400000, &v, err, sizeof(err)), 0);
	ck_assert(strstr(err, "out of range [0.100, 86400] s") != NULL);
	ck_assert_int_lt(parse_seconds_ms("0", 100, 86400000, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_seconds_ms("86400.001", 100, 86400000, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(
	    parse_seconds_ms("99999999999999999999999", 100, 86400000, &v, err, sizeof(err)), 0);
	ck_assert(strstr(err, "out of range") != NULL);
	ck_assert_int_lt(parse_seconds_ms("1.0005", 100, 86400000, &v, err, sizeof(err)), 0);
	ck_assert(strstr(err, "finer than a millisecond") != NULL);
}
END_TEST

START_TEST(test_job_input)
{
	uint64_t id = 99;

	ck_assert_int_eq(parse_job_input("job:1", &id, err, sizeof(err)), 1);
	ck_assert_uint_eq(id, 1);
	ck_assert_int_eq(parse_job_input("job:18446744073709551615", &id, err, sizeof(err)), 1);
	ck_assert(id == UINT64_MAX);
	/* Files: anything not starting with "job:" (./job:3 names a file). */
	id = 99;
	ck_assert_int_eq(parse_job_input("data.txt", &id, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_job_input("./job:3", &id, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_job_input("-", &id, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_job_input("JOB:3", &id, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_job_input("job", &id, err, sizeof(err)), 0);
	ck_assert_uint_eq(id, 99);
	static const char *const bad[] = {
	    "job:", "job:0", "job:-1", "job:x", "job:1 ", "job: 1", "job:18446744073709551616"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_job_input(bad[i], &id, err, sizeof(err)) < 0, "'%s' accepted",
		              bad[i]);
		ck_assert(strstr(err, "is not job:ID") != NULL);
		ck_assert_uint_eq(id, 99);
	}
}
END_TEST

START_TEST(test_lock_name)
{
	char name[300];

	ck_assert_int_eq(parse_lock_name("deploy", 256, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_lock_name("a b/c:d.é", 256, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_lock_name("", 256, err, sizeof(err)), 0);
	ck_assert(strstr(err, "1 to 256 bytes") != NULL);
	ck_assert_int_lt(parse_lock_name("a\tb", 256, err, sizeof(err)), 0);
	ck_assert(strstr(err, "control characters") != NULL);
	ck_assert_int_lt(parse_lock_name("a\nb", 256, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_lock_name("a\x7f", 256, err, sizeof(err)), 0);
	memset(name, 'x', 256);
	name[256] = '\0';
	ck_assert_int_eq(parse_lock_name(name, 256, err, sizeof(err)), 0);
	name[256] = 'x';
	name[257] = '\0';
	ck_assert_int_lt(parse_lock_name(name, 256, err, sizeof(err)), 0);
	ck_assert(strstr(err, "this one has 257") != NULL);
}
END_TEST

/* A fake lease: renewals succeed until call `lose_at` (1-based), which reports `lose_rc`. */
struct fake_lease {
	int calls;
	int lose_at; /* 0: never */
	int lose_rc;
	uint64_t first_ms, last_ms;
};

static uint64_t test_ms(void)
{
	return mono_us() / 1000;
}

static int fake_renew(void *arg, char *e, size_t elen)
{
	struct fake_lease *f = arg;

	f->calls++;
	if (!f->first_ms)
		f->first_ms = test_ms();
	f->last_ms = test_ms();
	if (f->lose_at && f->calls >= f->lose_at) {
		snprintf(e, elen, "%s",
		         f->lose_rc == LOCKRUN_LOST ? "lost lock t (token 7): lapsed"
		                                    : "master gone");
		return f->lose_rc;
	}
	return 0;
}

/* Runs argv under lockrun with a fake lease; diagnostics go to a temporary file, read back
 * into diag. */
static int run_locked(const char *const *argv, uint32_t interval_ms, uint32_t grace_ms,
                      struct fake_lease *f, bool *held, char *diag, size_t diaglen)
{
	struct lockrun r;
	sigset_t saved;
	FILE *d = tmpfile();
	size_t n;
	int rc;

	ck_assert_ptr_nonnull(d);
	memset(&r, 0, sizeof(r));
	r.argv = (char *const *)argv;
	r.name = "t";
	r.token = 7;
	r.interval_ms = interval_ms;
	r.grace_ms = grace_ms;
	r.renew = fake_renew;
	r.arg = f;
	r.diag = d;
	rc = lockrun(&r, &saved, held);
	/* The runner's signals stay blocked for the caller's release. */
	{
		sigset_t now;
		sigprocmask(SIG_SETMASK, NULL, &now);
		ck_assert(sigismember(&now, SIGTERM) == 1);
		ck_assert(sigismember(&now, SIGCHLD) == 1);
	}
	sigprocmask(SIG_SETMASK, &saved, NULL);
	rewind(d);
	n = fread(diag, 1, diaglen - 1, d);
	diag[n] = '\0';
	fclose(d);
	return rc;
}

START_TEST(test_lockrun_status)
{
	static const char *const exit7[] = {"sh", "-c", "exit 7", NULL};
	static const char *const killed[] = {"sh", "-c", "kill -KILL $$", NULL};
	static const char *const env[] = {
	    "sh", "-c", "test \"$SHOAL_LOCK_TOKEN\" = 7 && test \"$SHOAL_LOCK_NAME\" = t", NULL};
	static const char *const missing[] = {"/nonexistent/cmd", NULL};
	struct fake_lease f = {0};
	char diag[1024];
	bool held = false;

	ck_assert_int_eq(run_locked(exit7, 10000, 1000, &f, &held, diag, sizeof(diag)), 7);
	ck_assert(held);
	ck_assert_str_eq(diag, "");
	ck_assert_int_eq(run_locked(killed, 10000, 1000, &f, &held, diag, sizeof(diag)),
	                 128 + SIGKILL);
	/* An inherited token is replaced, not duplicated. */
	setenv("SHOAL_LOCK_TOKEN", "999", 1);
	ck_assert_int_eq(run_locked(env, 10000, 1000, &f, &held, diag, sizeof(diag)), 0);
	ck_assert_int_eq(run_locked(missing, 10000, 1000, &f, &held, diag, sizeof(diag)),
	                 LOCKRUN_EXIT_NOTFOUND);
	ck_assert(strstr(diag, "shoal: cannot run /nonexistent/cmd") != NULL);
	ck_assert_int_eq(f.calls, 0); /* quick commands need no renewal */

	/* The caller ignores SIGCHLD (children would be reaped behind waitpid's back) and
	 * SIGPIPE (as shoal's main does): the command still reports its status, and gets SIGPIPE
	 * at its default (bit 13 of SigIgn, 0x1000, is clear). */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(run_locked(exit7, 10000, 1000, &f, &held, diag, sizeof(diag)), 7);
	static const char *const sigpipe[] = {
	    "sh", "-c",
	    "m=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status); "
	    "[ $(( 0x$m & 0x1000 )) -eq 0 ]",
	    NULL};
	ck_assert_int_eq(run_locked(sigpipe, 10000, 1000, &f, &held, diag, sizeof(diag)), 0);
	signal(SIGCHLD, SIG_DFL);
}
END_TEST

/* Renewals come every interval while the command runs, from a runner that sleeps between
 * them. */
START_TEST(test_lockrun_renews)
{
	static const char *const sleeper[] = {"sleep", "0.5", NULL};
	struct fake_lease f = {0};
	char diag[1024];
	bool held = false;
	struct timespec c0, c1;
	uint64_t t0 = test_ms(), cpu_ms;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	ck_assert_int_eq(run_locked(sleeper, 50, 1000, &f, &held, diag, sizeof(diag)), 0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	ck_assert(held);
	/* 500 ms / 50 ms: about 9 renewals; scheduling may cost a few. */
	ck_assert_msg(f.calls >= 4 && f.calls <= 11, "%d renewals", f.calls);
	ck_assert_msg(f.first_ms - t0 >= 45, "first renewal after %llu ms",
	              (unsigned long long)(f.first_ms - t0));
	/* No busy loop: the runner used a small fraction of the half second in CPU. */
	cpu_ms = (uint64_t)(c1.tv_sec - c0.tv_sec) * 1000 +
	         (uint64_t)((c1.tv_nsec - c0.tv_nsec) / 1000000);
	ck_assert_msg(cpu_ms < 150, "%llu ms of CPU", (unsigned long long)cpu_ms);
}
END_TEST

/* A lost lease stops the command at once: SIGTERM, exit LOCKRUN_EXIT_LOST. */
START_TEST(test_lockrun_lost)
{
	static const char *const sleeper[] = {"sleep", "30", NULL};
	struct fake_lease f = {.lose_at = 2, .lose_rc = LOCKRUN_LOST};
	char diag[1024];
	bool held = true;
	uint64_t t0 = test_ms();

	ck_assert_int_eq(run_locked(sleeper, 50, 5000, &f, &held, diag, sizeof(diag)),
	                 LOCKRUN_EXIT_LOST);
	ck_assert(!held);
	ck_assert_int_eq(f.calls, 2);
	ck_assert_msg(test_ms() - t0 < 3000, "took %llu ms", (unsigned long long)(test_ms() - t0));
	ck_assert_msg(strstr(diag, "shoal: WARNING: lost lock t (token 7): lapsed; stopping the "
	                           "command (SIGTERM)") != NULL,
	              "%s", diag);

	/* A master that cannot be reached: the same, with exit LOCKRUN_EXIT_CONN. */
	f = (struct fake_lease){.lose_at = 1, .lose_rc = -1};
	ck_assert_int_eq(run_locked(sleeper, 50, 5000, &f, &held, diag, sizeof(diag)),
	                 LOCKRUN_EXIT_CONN);
	ck_assert(!held);
	ck_assert_msg(strstr(diag, "cannot renew lock t (token 7): master gone") != NULL, "%s",
	              diag);
}
END_TEST

/* A command that ignores SIGTERM is killed after the grace period. */
START_TEST(test_lockrun_grace)
{
	static const char *const stubborn[] = {"sh", "-c", "trap '' TERM; exec sleep 30", NULL};
	struct fake_lease f = {.lose_at = 1, .lose_rc = LOCKRUN_LOST};
	char diag[1024];
	bool held = true;
	uint64_t t0 = test_ms(), ms;

	ck_assert_int_eq(run_locked(stubborn, 100, 300, &f, &held, diag, sizeof(diag)),
	                 LOCKRUN_EXIT_LOST);
	ms = test_ms() - t0;
	ck_assert_msg(ms >= 380 && ms < 5000, "took %llu ms", (unsigned long long)ms);
	ck_assert_msg(strstr(diag, "did not exit within 300 ms of SIGTERM: SIGKILL") != NULL, "%s",
	              diag);
}
END_TEST

/* SIGTERM sent to the runner by another process goes on to the command. */
START_TEST(test_lockrun_forward)
{
	static const char *const sleeper[] = {"sleep", "30", NULL};
	struct fake_lease f = {0};
	char diag[1024];
	bool held = false;
	pid_t me = getpid(), helper;

	helper = fork();
	ck_assert_int_ge(helper, 0);
	if (helper == 0) {
		usleep(300000);
		kill(me, SIGTERM);
		_exit(0);
	}
	ck_assert_int_eq(run_locked(sleeper, 10000, 1000, &f, &held, diag, sizeof(diag)),
	                 128 + SIGTERM);
	ck_assert(held); /* the command ended; the lease is still ours to release */
	while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
		;
}
END_TEST

START_TEST(test_lockrun_check)
{
	ck_assert_int_eq(lockrun_check_command("sh", err, sizeof(err)), 0);
	ck_assert_int_eq(lockrun_check_command("/bin/sh", err, sizeof(err)), 0);
	ck_assert_int_eq(lockrun_check_command("no-such-command-shoal", err, sizeof(err)),
	                 LOCKRUN_EXIT_NOTFOUND);
	ck_assert_str_eq(err, "no-such-command-shoal: command not found");
	ck_assert_int_eq(lockrun_check_command("/nonexistent/x", err, sizeof(err)),
	                 LOCKRUN_EXIT_NOTFOUND);
	ck_assert_int_eq(lockrun_check_command("/", err, sizeof(err)), LOCKRUN_EXIT_CANNOT);
	ck_assert(strstr(err, "Is a directory") != NULL);
	ck_assert_int_eq(lockrun_check_command("", err, sizeof(err)), LOCKRUN_EXIT_NOTFOUND);
	/* A file that is not executable (root may execute files without x bits only if some
	 * x bit is set, so this holds for root too). */
	{
		char path[] = "/tmp/shoal-test-noexec-XXXXXX";
		int fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		close(fd);
		chmod(path, 0644);
		ck_assert_int_eq(lockrun_check_command(path, err, sizeof(err)),
		                 LOCKRUN_EXIT_CANNOT);
		unlink(path);
	}
	/* PATH search. */
	setenv("PATH", "/nonexistent:/bin", 1);
	ck_assert_int_eq(lockrun_check_command("sh", err, sizeof(err)), 0);
	setenv("PATH", "/nonexistent", 1);
	ck_assert_int_eq(lockrun_check_command("sh", err, sizeof(err)), LOCKRUN_EXIT_NOTFOUND);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_i64);
	tcase_add_test(tc, test_u64);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_range);
	tcase_add_test(tc, test_kv);
	tcase_add_test(tc, test_json_escape);
	tcase_add_test(tc, test_json_writer);
	tcase_add_test(tc, test_progress_fmt);
	tcase_add_test(tc, test_table);
	suite_add_tcase(s, tc);
	tc = tcase_create("job");
	tcase_add_test(tc, test_jobflags_kind);
	tcase_add_test(tc, test_jobflags_exec);
	tcase_add_test(tc, test_jobflags_files);
	tcase_add_test(tc, test_jobflags_broadcast);
	tcase_add_test(tc, test_jobflags_file);
	suite_add_tcase(s, tc);
	tc = tcase_create("accuracy");
	tcase_add_test(tc, test_accuracy_format);
	tcase_add_test(tc, test_accuracy_header);
	tcase_add_test(tc, test_accuracy_wanted);
	tcase_add_test(tc, test_accuracy_score);
	tcase_add_test(tc, test_accuracy_long);
	suite_add_tcase(s, tc);
	tc = tcase_create("lock");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_seconds);
	tcase_add_test(tc, test_job_input);
	tcase_add_test(tc, test_lock_name);
	tcase_add_test(tc, test_lockrun_status);
	tcase_add_test(tc, test_lockrun_renews);
	tcase_add_test(tc, test_lockrun_lost);
	tcase_add_test(tc, test_lockrun_grace);
	tcase_add_test(tc, test_lockrun_forward);
	tcase_add_test(tc, test_lockrun_check);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
