/* The master's SQLite journal (master/journal.c): what a batch stores comes back the same
 * after a close and a reopen; ids never repeat; forgetting works; damaged, foreign and
 * unwritable journals are refused with a reason naming the file; a journal of schema 1 is
 * upgraded in place, one of a newer schema refused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "journal.h"

static char dir[256];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "%s/shoal-journal-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
	char p[512];
	const char *names[] = {"journal.db", "journal.db-wal", "journal.db-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* What the load callbacks saw. */
struct seen {
	uint64_t ids[16];
	int states[16];
	char errors[16][64];
	uint64_t parts[16][8];
	uint32_t nparts[16];
	bool has_parts[16];
	char results[16][32];
	bool reducing[16];
	uint32_t map_tasks[16];
	size_t njobs;
	struct journal_task tasks[16];
	uint64_t segs[16][4];
	char partials[16][16];
	size_t ntasks;
};

static int on_job(void *arg, const struct journal_job *r)
{
	struct seen *s = arg;
	size_t i = s->njobs++;
	ck_assert_uint_lt(i, 16);
	s->ids[i] = r->id;
	s->states[i] = r->state;
	snprintf(s->errors[i], sizeof(s->errors[i]), "%s", r->error ? r->error : "");
	s->has_parts[i] = r->parts != NULL;
	s->reducing[i] = r->reducing;
	s->map_tasks[i] = r->map_tasks;
	s->nparts[i] = r->nparts;
	for (uint32_t k = 0; k < 2 * r->nparts && k < 8; k++)
		s->parts[i][k] = r->parts[k];
	if (r->result)
		snprintf(s->results[i], sizeof(s->results[i]), "%.*s", (int)r->result_len,
		         (const char *)r->result);
	/* The spec is opaque bytes to the journal. */
	ck_assert_uint_eq(r->spec_len, 5);
	ck_assert_int_eq(memcmp(r->spec, "spec", 5), 0);
	return 0;
}

static int on_task(void *arg, const struct journal_task *t)
{
	struct seen *s = arg;
	size_t i = s->ntasks++;
	ck_assert_uint_lt(i, 16);
	s->tasks[i] = *t;
	for (uint32_t k = 0; k < t->nsegs && k < 2; k++) {
		s->segs[i][2 * k] = t->seg_off[k];
		s->segs[i][2 * k + 1] = t->seg_len[k];
	}
	s->tasks[i].seg_off = s->tasks[i].seg_len = NULL;
	s->tasks[i].buckets = NULL;
	if (t->partial)
		snprintf(s->partials[i], sizeof(s->partials[i]), "%.*s", (int)t->partial_len,
		         (const char *)t->partial);
	s->tasks[i].partial = NULL;
	return 0;
}

static void load(struct journal *j, struct seen *s)
{
	char err[512];
	memset(s, 0, sizeof(*s));
	struct journal_load_fn fn = {on_job, on_task, s};
	ck_assert_int_eq(journal_load(j, &fn, err, sizeof(err)), 0);
}

static struct journal *open_ok(void)
{
	struct journal *j = NULL;
	char err[512];
	int rc = journal_open(dir, &j, err, sizeof(err));
	ck_assert_msg(rc == 0, "journal_open: %s", err);
	return j;
}

static struct journal_job row(uint64_t id, int state)
{
	struct journal_job r = {0};
	r.id = id;
	r.spec = (const uint8_t *)"spec";
	r.spec_len = 5;
	r.state = state;
	return r;
}

START_TEST(roundtrip_across_reopen)
{
	make_dir();
	struct journal *j = open_ok();
	ck_assert_uint_eq(journal_max_id(j), 0);
	struct journal_batch *b = journal_batch_create();
	ck_assert(journal_batch_empty(b));

	/* The batch takes copies: the caller's buffers may go at once (ASan would see a use). */
	uint64_t *parts = malloc(4 * sizeof(*parts));
	ck_assert_ptr_nonnull(parts);
	parts[0] = 0;
	parts[1] = 100;
	parts[2] = 100;
	parts[3] = 57;
	struct journal_job r1 = row(1, 2);
	r1.parts = parts;
	r1.nparts = 2;
	r1.part_size = 100;
	r1.ntasks = 2;
	journal_put_job(b, &r1);
	free(parts);
	struct journal_job r2 = row(2, 4);
	r2.result = (const uint8_t *)"4950\n";
	r2.result_len = 5;
	r2.error = NULL;
	journal_put_job(b, &r2);
	struct journal_job r3 = row(3, 5);
	r3.error = "task 0 failed: boom";
	journal_put_job(b, &r3);

	uint64_t off[2] = {10, 40}, len[2] = {5, 7};
	struct journal_task t = {0};
	t.job = 1;
	t.task = 1;
	t.records = 12;
	t.out_off = 10;
	t.out_len = 12;
	t.seg_off = off;
	t.seg_len = len;
	t.nsegs = 2;
	journal_put_task(b, &t);
	struct journal_task f = {0};
	f.job = 2;
	f.task = 0;
	f.partial = (const uint8_t *)"s 42";
	f.partial_len = 4;
	journal_put_task(b, &f);
	ck_assert_uint_eq(journal_batch_size(b), 5);

	char err[512];
	ck_assert_int_eq(journal_commit(j, b, true, err, sizeof(err)), 0);
	journal_batch_destroy(&b);
	ck_assert_ptr_null(b);
	ck_assert_uint_eq(journal_max_id(j), 3);
	journal_close(&j);
	ck_assert_ptr_null(j);

	j = open_ok();
	ck_assert_uint_eq(journal_max_id(j), 3);
	struct seen s;
	load(j, &s);
	ck_assert_uint_eq(s.njobs, 3);
	ck_assert_uint_eq(s.ids[0], 1);
	ck_assert_uint_eq(s.ids[2], 3);
	ck_assert(s.has_parts[0]);
	ck_assert_uint_eq(s.nparts[0], 2);
	ck_assert_uint_eq(s.parts[0][0], 0);
	ck_assert_uint_eq(s.parts[0][1], 100);
	ck_assert_uint_eq(s.parts[0][2], 100);
	ck_assert_uint_eq(s.parts[0][3], 57);
	ck_assert(!s.has_parts[1]);
	ck_assert_str_eq(s.results[1], "4950\n");
	ck_assert_int_eq(s.states[2], 5);
	ck_assert_str_eq(s.errors[2], "task 0 failed: boom");
	ck_assert_uint_eq(s.ntasks, 2);
	ck_assert_uint_eq(s.tasks[0].job, 1);
	ck_assert_uint_eq(s.tasks[0].task, 1);
	ck_assert_uint_eq(s.tasks[0].records, 12);
	ck_assert_uint_eq(s.tasks[0].nsegs, 2);
	ck_assert_uint_eq(s.segs[0][0], 10);
	ck_assert_uint_eq(s.segs[0][1], 5);
	ck_assert_uint_eq(s.segs[0][2], 40);
	ck_assert_uint_eq(s.segs[0][3], 7);
	ck_assert_uint_eq(s.tasks[1].job, 2);
	ck_assert_str_eq(s.partials[1], "s 42");
	journal_close(&j);
	remove_dir();
}
END_TEST

START_TEST(replace_and_forget)
{
	make_dir();
	struct journal *j = open_ok();
	struct journal_batch *b = journal_batch_create();
	char err[512];
	for (uint64_t id = 1; id <= 3; id++) {
		struct journal_job r = row(id, 2);
		journal_put_job(b, &r);
		struct journal_task t = {.job = id, .task = 0, .out_len = 1};
		journal_put_task(b, &t);
	}
	ck_assert_int_eq(journal_commit(j, b, false, err, sizeof(err)), 0);
	journal_batch_destroy(&b);

	/* A job's row replaced (it ended), its partitions forgotten; another job dropped. */
	b = journal_batch_create();
	struct journal_job r = row(1, 4);
	journal_put_job(b, &r);
	journal_drop_tasks(b, 1);
	journal_drop_job(b, 3);
	ck_assert_int_eq(journal_commit(j, b, true, err, sizeof(err)), 0);
	journal_batch_destroy(&b);

	struct seen s;
	load(j, &s);
	ck_assert_uint_eq(s.njobs, 2);
	ck_assert_uint_eq(s.ids[0], 1);
	ck_assert_int_eq(s.states[0], 4);
	ck_assert_uint_eq(s.ids[1], 2);
	ck_assert_uint_eq(s.ntasks, 1);
	ck_assert_uint_eq(s.tasks[0].job, 2);
	/* Ids never repeat: the highest ever handed out stays, though job 3 is gone. */
	journal_close(&j);
	j = open_ok();
	ck_assert_uint_eq(journal_max_id(j), 3);
	journal_close(&j);
	remove_dir();
}
END_TEST

static void write_file(const char *name, const void *data, size_t len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

START_TEST(garbage_is_refused)
{
	make_dir();
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	write_file("journal.db", junk, sizeof(junk));
	struct journal *j = NULL;
	char err[1024];
	ck_assert_int_eq(journal_open(dir, &j, err, sizeof(err)), -1);
	ck_assert_ptr_null(j);
	ck_assert_ptr_nonnull(strstr(err, dir));
	ck_assert_ptr_nonnull(strstr(err, "journal.db"));
	ck_assert_ptr_nonnull(strstr(err, "move it aside"));
	remove_dir();
}
END_TEST

START_TEST(damage_is_refused)
{
	make_dir();
	struct journal *j = open_ok();
	struct journal_batch *b = journal_batch_create();
	char err[1024];
	/* Enough rows for several pages. */
	char big[2000];
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (uint64_t id = 1; id <= 40; id++) {
		struct journal_job r = row(id, 5);
		r.error = big;
		journal_put_job(b, &r);
	}
	ck_assert_int_eq(journal_commit(j, b, true, err, sizeof(err)), 0);
	journal_batch_destroy(&b);
	journal_close(&j); /* checkpointed: everything is in journal.db */

	char p[512];
	snprintf(p, sizeof(p), "%s/journal.db", dir);
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 37 + 11);
	/* Page 2 onwards: the header stays valid, the tables do not. */
	for (off_t off = 4096; off < 4096 * 6; off += 4096)
		ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), off), (ssize_t)sizeof(junk));
	close(fd);
	ck_assert_int_eq(journal_open(dir, &j, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "journal.db"));
	remove_dir();
}
END_TEST

START_TEST(foreign_database_is_refused)
{
	make_dir();
	/* An SQLite file of someone else: a valid header and a table, no shoal application id. */
	struct journal *j = open_ok();
	journal_close(&j);
	char p[512];
	snprintf(p, sizeof(p), "%s/journal.db", dir);
	/* Rewrite the application id (offset 68, big-endian) to another program's. */
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	const unsigned char other[4] = {0x0f, 0x05, 0x5e, 0x11};
	ck_assert_int_eq(pwrite(fd, other, 4, 68), 4);
	close(fd);
	char err[1024];
	ck_assert_int_eq(journal_open(dir, &j, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a shoal journal"));
	remove_dir();
}
END_TEST

START_TEST(missing_dir_is_refused)
{
	make_dir();
	char sub[512];
	snprintf(sub, sizeof(sub), "%s/no/such/dir", dir);
	struct journal *j = NULL;
	char err[1024];
	ck_assert_int_eq(journal_open(sub, &j, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, sub));
	remove_dir();
}
END_TEST

/* Runs SQL on DIR/journal.db directly (not through the journal). */
static void raw_sql(const char *sql)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/journal.db", dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
	sqlite3_free(msg);
	sqlite3_close(db);
}

static int64_t raw_int(const char *sql)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/journal.db", dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

START_TEST(schema1_is_upgraded)
{
	make_dir();
	/* A journal as a schema-1 master left it: a running job with a finished partition. */
	raw_sql("PRAGMA journal_mode=WAL;"
	        "BEGIN;"
	        "PRAGMA application_id=1936224097;"
	        "PRAGMA user_version=1;"
	        "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, spec BLOB NOT NULL, state INTEGER NOT "
	        "NULL, error TEXT, submitted_ms INTEGER, started_ms INTEGER, finished_ms INTEGER, "
	        "part_size INTEGER, ntasks INTEGER, input_bytes INTEGER, records INTEGER, "
	        "task_failures INTEGER, result_size INTEGER, result BLOB, result_file INTEGER, "
	        "parts BLOB);"
	        "CREATE TABLE tasks(job INTEGER NOT NULL, task INTEGER NOT NULL, records INTEGER, "
	        "out_off INTEGER, out_len INTEGER, segs BLOB, buckets BLOB, partial BLOB, "
	        "PRIMARY KEY(job, task)) WITHOUT ROWID;"
	        "INSERT INTO jobs(id, spec, state, ntasks) VALUES(3, x'7370656300', 3, 4);"
	        "INSERT INTO tasks(job, task, records, out_off, out_len) VALUES(3, 1, 9, 0, 20);"
	        "COMMIT;");
	struct journal *j = open_ok();
	ck_assert_uint_eq(journal_max_id(j), 3);
	struct seen s;
	load(j, &s);
	ck_assert_uint_eq(s.njobs, 1);
	ck_assert_uint_eq(s.ids[0], 3);
	ck_assert(!s.reducing[0]); /* a schema-1 reduce job resumes from its map stage */
	ck_assert_uint_eq(s.map_tasks[0], 0);
	ck_assert_uint_eq(s.ntasks, 1);
	ck_assert_uint_eq(s.tasks[0].out_len, 20);
	/* The new columns are written and read back. */
	struct journal_batch *b = journal_batch_create();
	struct journal_job r = row(3, 3);
	r.reducing = true;
	r.map_tasks = 7;
	journal_put_job(b, &r);
	char err[512];
	ck_assert_int_eq(journal_commit(j, b, true, err, sizeof(err)), 0);
	journal_batch_destroy(&b);
	journal_close(&j);
	ck_assert_int_eq(raw_int("PRAGMA user_version"), 2);
	j = open_ok();
	load(j, &s);
	ck_assert(s.reducing[0]);
	ck_assert_uint_eq(s.map_tasks[0], 7);
	journal_close(&j);
	remove_dir();
}
END_TEST

START_TEST(newer_schema_is_refused)
{
	make_dir();
	struct journal *j = open_ok();
	journal_close(&j);
	raw_sql("PRAGMA user_version=3");
	char err[1024];
	ck_assert_int_eq(journal_open(dir, &j, err, sizeof(err)), -1);
	ck_assert_ptr_null(j);
	ck_assert_ptr_nonnull(strstr(err, "newer shoal-master"));
	ck_assert_ptr_nonnull(strstr(err, "journal.db"));
	remove_dir();
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, roundtrip_across_reopen);
	tcase_add_test(tc, replace_and_forget);
	tcase_add_test(tc, garbage_is_refused);
	tcase_add_test(tc, damage_is_refused);
	tcase_add_test(tc, foreign_database_is_refused);
	tcase_add_test(tc, missing_dir_is_refused);
	tcase_add_test(tc, schema1_is_upgraded);
	tcase_add_test(tc, newer_schema_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(journal_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
