/* test_conffile.c: the config file and environment layer (common/conffile.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conffile.h"

static const struct option opts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"state-dir", required_argument, NULL, 's'},
    {"log-level", required_argument, NULL, 'L'},
    {"allow-exec", no_argument, NULL, 'x'},
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What conffile_apply handed the parser: "ORIGIN|--flag=value" per entry. */
struct seen {
	char lines[16][512];
	int n;
	int fail_at; /* return 1 on this call (1-based), 0: never */
};

static int record(void *arg, int argc, char **argv)
{
	struct seen *s = arg;
	ck_assert_int_eq(argc, 2);
	ck_assert_str_eq(argv[0], "prog");
	ck_assert_ptr_null(argv[2]);
	ck_assert_ptr_nonnull(conffile_origin());
	snprintf(s->lines[s->n], sizeof(s->lines[0]), "%s|%s", conffile_origin(), argv[1]);
	s->n++;
	return s->n == s->fail_at;
}

static int parse(struct conffile *c, const char *text, char *err, size_t errlen)
{
	conffile_init(c, "prog", "master", opts);
	return conffile_read_text(c, "t.conf", text, strlen(text), err, errlen);
}

START_TEST(test_applies_in_precedence_order)
{
	struct conffile c;
	char err[512] = "";
	struct seen s = {0};
	const char *text = "# comment\n"
	                   "; another\n"
	                   "[master]\n"
	                   "log-level = debug\n"
	                   "state_dir = \"/srv/my shoal\"\n"
	                   "allow-exec = yes\n"
	                   "[worker]\n"
	                   "slots = 4\n"
	                   "whatever = the worker's business\n"
	                   "[cluster]\n"
	                   "log-level = warn\n"
	                   "master = 10.0.0.1:7411\n";
	unsetenv("SHOAL_LISTEN");
	unsetenv("SHOAL_STATE_DIR");
	ck_assert_int_eq(parse(&c, text, err, sizeof(err)), 0);
	ck_assert_int_eq(conffile_apply(&c, record, &s), 0);
	ck_assert_ptr_null(conffile_origin());
	/* [master] beats [cluster] whatever the order; master= is not this program's key. */
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.lines[0], "t.conf:4|--log-level=debug");
	ck_assert_str_eq(s.lines[1], "t.conf:5|--state-dir=/srv/my shoal");
	ck_assert_str_eq(s.lines[2], "t.conf:6|--allow-exec");
	conffile_deinit(&c);
}
END_TEST

START_TEST(test_env_beats_file)
{
	struct conffile c;
	char err[512] = "";
	struct seen s = {0};
	setenv("SHOAL_STATE_DIR", "/from/env", 1);
	setenv("SHOAL_LISTEN", "", 1); /* empty: unset */
	setenv("SHOAL_ALLOW_EXEC", "false", 1);
	setenv("SHOAL_CONFIG", "/ignored/as/a/key", 1);
	ck_assert_int_eq(parse(&c, "[master]\nstate-dir = /x\nallow-exec = true\nlisten = :1\n",
	                       err, sizeof(err)),
	                 0);
	ck_assert_int_eq(conffile_read_env(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(conffile_apply(&c, record, &s), 0);
	/* allow-exec=false from the environment wins, and a false switch is not applied. */
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.lines[0], "t.conf:4|--listen=:1");
	ck_assert_str_eq(s.lines[1], "SHOAL_STATE_DIR|--state-dir=/from/env");
	conffile_deinit(&c);

	setenv("SHOAL_ALLOW_EXEC", "perhaps", 1);
	conffile_init(&c, "prog", "master", opts);
	ck_assert_int_eq(conffile_read_env(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "SHOAL_ALLOW_EXEC: 'allow-exec' is a switch: give true or false, "
	                      "not 'perhaps'");
	conffile_deinit(&c);
	unsetenv("SHOAL_STATE_DIR");
	unsetenv("SHOAL_LISTEN");
	unsetenv("SHOAL_ALLOW_EXEC");
	unsetenv("SHOAL_CONFIG");
}
END_TEST

START_TEST(test_apply_stops_at_parser_error)
{
	struct conffile c;
	char err[512] = "";
	struct seen s = {.fail_at = 1};
	ck_assert_int_eq(parse(&c, "[master]\nlisten = a\nstate-dir = b\n", err, sizeof(err)), 0);
	ck_assert_int_eq(conffile_apply(&c, record, &s), 1);
	ck_assert_int_eq(s.n, 1);
	ck_assert_ptr_null(conffile_origin());
	conffile_deinit(&c);
}
END_TEST

/* Each bad file is rejected with its name, the line and the reason. */
static const struct {
	const char *text;
	const char *err;
} bad[] = {
    {"[master]\nlisten = x\nlistn = y\n",
     "t.conf:3: unknown key 'listn' in [master] (known: listen, state-dir, log-level, "
     "allow-exec)"},
    {"[mastr]\na = b\n", "t.conf:2: unknown section [mastr] (known: [cluster], [master], "
                         "[worker], [client])"},
    {"listen = x\n", "t.conf:1: key 'listen' is outside any section; put it under [master] "
                     "(or [cluster])"},
    {"[master]\nlisten = x\n\njunk\n",
     "t.conf:4: syntax error: expected [SECTION], KEY = VALUE or a comment (; or #)"},
    {"[master]\n[broken\n",
     "t.conf:2: syntax error: expected [SECTION], KEY = VALUE or a comment (; or #)"},
    {"[master]\nlisten = a\nlisten = b\n",
     "t.conf:3: key 'listen' is set twice (first at t.conf:2); keep one"},
    {"[master]\nallow-exec = maybe\n",
     "t.conf:2: 'allow-exec' is a switch: give true or false, not 'maybe'"},
    {"[master]\nconfig = /x\n", "t.conf:2: 'config' cannot be set in a config file"},
    {"[master]\nhelp = true\n", "t.conf:2: 'help' cannot be set in a config file"},
    {"[cluster]\nslots = 3\n",
     "t.conf:2: unknown key 'slots' in [cluster] (it takes master, secret-file, log-level; "
     "other keys go in their program's section)"},
};

START_TEST(test_rejects_bad_files)
{
	struct conffile c;
	char err[512] = "";
	ck_assert_int_eq(parse(&c, bad[_i].text, err, sizeof(err)), -1);
	ck_assert_str_eq(err, bad[_i].err);
	conffile_deinit(&c);
}
END_TEST

START_TEST(test_rejects_long_lines_and_nul)
{
	struct conffile c;
	char err[512] = "";
	char text[1024];
	snprintf(text, sizeof(text), "[master]\nstate-dir = /%0600d\n", 0);
	ck_assert_int_eq(parse(&c, text, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "t.conf:2: line too long") == err, "%s", err);
	conffile_deinit(&c);

	static const char nul[] = "[master]\nlisten = a\0b\n";
	conffile_init(&c, "prog", "master", opts);
	ck_assert_int_eq(conffile_read_text(&c, "t.conf", nul, sizeof(nul) - 1, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "t.conf:2: NUL byte: not a text file");
	conffile_deinit(&c);
}
END_TEST

START_TEST(test_read_file_errors)
{
	struct conffile c;
	char err[512] = "";
	conffile_init(&c, "prog", "master", opts);
	ck_assert_int_eq(conffile_read_file(&c, "/nonexistent/shoal.conf", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/shoal.conf: cannot open: No such file or directory");
	ck_assert_int_eq(conffile_read_file(&c, "/", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "/: not a regular file") == err, "%s", err);
	conffile_deinit(&c);
}
END_TEST

START_TEST(test_path)
{
	char *a1[] = {"p", "--config", "/a", "--x", NULL};
	char *a2[] = {"p", "--config=/b", "--config", "/c", NULL};
	char *a3[] = {"p", "--", "--config", "/d", NULL};
	unsetenv("SHOAL_CONFIG");
	ck_assert_str_eq(conffile_path(4, a1), "/a");
	ck_assert_str_eq(conffile_path(4, a2), "/c");
	ck_assert_ptr_null(conffile_path(4, a3));
	setenv("SHOAL_CONFIG", "/e", 1);
	ck_assert_str_eq(conffile_path(4, a3), "/e");
	ck_assert_str_eq(conffile_path(4, a1), "/a");
	unsetenv("SHOAL_CONFIG");
}
END_TEST

START_TEST(test_parse_bool)
{
	bool b;
	ck_assert_int_eq(conffile_parse_bool("YES", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(conffile_parse_bool("off", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(conffile_parse_bool("", &b), -1);
	ck_assert_int_eq(conffile_parse_bool("2", &b), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conffile");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_applies_in_precedence_order);
	tcase_add_test(tc, test_env_beats_file);
	tcase_add_test(tc, test_apply_stops_at_parser_error);
	tcase_add_loop_test(tc, test_rejects_bad_files, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_rejects_long_lines_and_nul);
	tcase_add_test(tc, test_read_file_errors);
	tcase_add_test(tc, test_path);
	tcase_add_test(tc, test_parse_bool);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
