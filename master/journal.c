/* journal.c: the master's SQLite journal (see journal.h). */
#include "journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "util.h"

/* PRAGMA application_id: "shoa". A database with another id is someone else's file. */
#define JOURNAL_APP_ID 0x73686f61
/* Schema versions: 1, the first; 2 added jobs.stage and jobs.map_tasks (a reduce job's stage).
 * A version-1 journal is upgraded in place when it is opened (its reduce jobs read as being in
 * their map stage, which is where a version-1 master resumed them from). */
#define JOURNAL_SCHEMA 2

enum stmt_id {
	ST_PUT_JOB,
	ST_PUT_TASK,
	ST_DROP_TASKS,
	ST_DROP_JOB,
	ST_SET_MAX,
	ST_LOAD_JOBS,
	ST_LOAD_TASKS,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_PUT_JOB] = "INSERT OR REPLACE INTO jobs(id, spec, state, error, submitted_ms, "
                   "started_ms, finished_ms, part_size, ntasks, input_bytes, records, "
                   "task_failures, result_size, result, result_file, parts, stage, map_tasks) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                   "?17, ?18)",
    [ST_PUT_TASK] = "INSERT OR REPLACE INTO tasks(job, task, records, out_off, out_len, segs, "
                    "buckets, partial) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_DROP_TASKS] = "DELETE FROM tasks WHERE job = ?1",
    [ST_DROP_JOB] = "DELETE FROM jobs WHERE id = ?1",
    [ST_SET_MAX] = "INSERT OR REPLACE INTO meta(key, value) VALUES('max_id', ?1)",
    [ST_LOAD_JOBS] = "SELECT id, spec, state, error, submitted_ms, started_ms, finished_ms, "
                     "part_size, ntasks, input_bytes, records, task_failures, result_size, "
                     "result, result_file, parts, stage, map_tasks FROM jobs ORDER BY id",
    [ST_LOAD_TASKS] = "SELECT task, records, out_off, out_len, segs, buckets, partial "
                      "FROM tasks WHERE job = ?1 ORDER BY task",
};

struct journal {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[ST_COUNT];
	uint64_t max_id;
	int sync_full; /* -1 unknown, else the synchronous level last set */
};

enum bop_kind { BOP_JOB, BOP_TASK, BOP_DROP_TASKS, BOP_DROP_JOB };

struct bop {
	enum bop_kind kind;
	uint64_t id;
	struct journal_job job;   /* BOP_JOB: pointers owned */
	struct journal_task task; /* BOP_TASK: pointers owned */
};

struct journal_batch {
	struct bop *ops;
	size_t n, cap;
};

static int db_error(struct journal *j, char *err, size_t errlen, const char *what)
{
	int code = sqlite3_errcode(j->db);
	const char *hint;
	switch (code) {
	case SQLITE_FULL:
		hint = "the state dir's file system is full: free space there, or set --state-dir "
		       "to a larger disk";
		break;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		hint = "make the state dir and its files writable by this user, or set "
		       "--state-dir";
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		hint = "the journal is damaged: move it aside (the master then starts with no "
		       "jobs) or restore it from a backup";
		break;
	default:
		hint = "check the state dir's disk";
		break;
	}
	return errorf(err, errlen, "journal %s: %s: %s (%s)", j->path, what, sqlite3_errmsg(j->db),
	              hint);
}

/* Runs sql; on failure err names the file, `what` was being done (never the SQL itself,
 * which says nothing to the person who has to fix it), the cause and what to do. */
static int exec_sql(struct journal *j, const char *what, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sqlite3_free(msg);
		return db_error(j, err, errlen, what);
	}
	return 0;
}

/* A one-row, one-column integer query. */
static int query_int(struct journal *j, const char *sql, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_error(j, err, errlen, "cannot read it");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*out = 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(j, err, errlen, "cannot read it");
	return 0;
}

static int check_integrity(struct journal *j, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(j->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
		return db_error(j, err, errlen, "reading it");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_error(j, err, errlen, "checking it");
	}
	const char *res = (const char *)sqlite3_column_text(st, 0);
	if (!res || strcmp(res, "ok") != 0) {
		errorf(err, errlen,
		       "journal %s is corrupt (integrity check: %s); move it aside (the master "
		       "then starts with no jobs) or restore it from a backup",
		       j->path, res ? res : "no answer");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

static void journal_free(struct journal *j)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(j->st[i]);
	sqlite3_close(j->db);
	free(j->path);
	free(j);
}

int journal_open(const char *dir, struct journal **out, char *err, size_t errlen)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	size_t len = strlen(dir) + sizeof("/journal.db");
	j->path = xmalloc(len);
	snprintf(j->path, len, "%s/journal.db", dir);
	j->sync_full = -1;
	int rc = sqlite3_open_v2(j->path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		if (!j->db) {
			errorf(err, errlen, "journal %s: cannot open it (out of memory)", j->path);
			free(j->path);
			free(j);
			return -1;
		}
		db_error(j, err, errlen, "cannot open it");
		goto fail;
	}
	sqlite3_extended_result_codes(j->db, 0);
	/* Another process holding the database (it should not: master.lock guards the dir)
	 * waits a little rather than failing at once. */
	sqlite3_busy_timeout(j->db, 5000);
	int64_t app_id = 0, tables = 0, version = 0;
	if (query_int(j, "PRAGMA application_id", &app_id, err, errlen) < 0 ||
	    query_int(j, "SELECT count(*) FROM sqlite_master", &tables, err, errlen) < 0 ||
	    query_int(j, "PRAGMA user_version", &version, err, errlen) < 0)
		goto fail;
	if (tables > 0 && app_id != JOURNAL_APP_ID) {
		errorf(err, errlen,
		       "%s is an SQLite database but not a shoal journal; move it aside or set "
		       "--state-dir to shoal's own directory",
		       j->path);
		goto fail;
	}
	if (tables > 0 && version > JOURNAL_SCHEMA) {
		errorf(err, errlen,
		       "journal %s was written by a newer shoal-master (schema %lld, this one "
		       "knows %d); run that version, or move the journal aside",
		       j->path, (long long)version, JOURNAL_SCHEMA);
		goto fail;
	}
	if (tables > 0 && check_integrity(j, err, errlen) < 0)
		goto fail;
	int64_t wal = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK) {
		db_error(j, err, errlen, "switching it to WAL mode");
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(st, 0);
		wal = mode && !strcmp(mode, "wal");
	}
	sqlite3_finalize(st);
	if (!wal) {
		db_error(j, err, errlen, "cannot switch it to WAL mode");
		goto fail;
	}
	/* A version-1 journal gains the columns of version 2 in the same transaction. */
	const char *upgrade = tables > 0 && version < 2
	                          ? "ALTER TABLE jobs ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;"
	                            "ALTER TABLE jobs ADD COLUMN map_tasks INTEGER NOT NULL "
	                            "DEFAULT 0;"
	                          : "";
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         "BEGIN IMMEDIATE;"
	         "PRAGMA application_id=1936224097;"
	         "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	         "CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY, spec BLOB NOT NULL,"
	         " state INTEGER NOT NULL, error TEXT, submitted_ms INTEGER, started_ms INTEGER, "
	         "finished_ms INTEGER, part_size INTEGER, ntasks INTEGER, input_bytes INTEGER, "
	         "records INTEGER, task_failures INTEGER, result_size INTEGER, result BLOB, "
	         "result_file INTEGER, parts BLOB, stage INTEGER NOT NULL DEFAULT 0, map_tasks "
	         "INTEGER NOT NULL DEFAULT 0);"
	         "CREATE TABLE IF NOT EXISTS tasks(job INTEGER NOT NULL, task INTEGER NOT NULL, "
	         "records INTEGER, out_off INTEGER, out_len INTEGER, segs BLOB, buckets BLOB, "
	         "partial BLOB, PRIMARY KEY(job, task)) WITHOUT ROWID;"
	         "%s"
	         "PRAGMA user_version=%d;"
	         "COMMIT;",
	         upgrade, JOURNAL_SCHEMA);
	if (exec_sql(j, "cannot set it up", "PRAGMA synchronous=NORMAL", err, errlen) < 0 ||
	    exec_sql(j, "cannot create or upgrade its tables", sql, err, errlen) < 0) {
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		goto fail;
	}
	j->sync_full = 0;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i],
		                       NULL) != SQLITE_OK) {
			db_error(j, err, errlen, "preparing its statements");
			goto fail;
		}
	}
	int64_t max_id = 0, top = 0;
	if (query_int(j, "SELECT value FROM meta WHERE key = 'max_id'", &max_id, err, errlen) < 0 ||
	    query_int(j, "SELECT coalesce(max(id), 0) FROM jobs", &top, err, errlen) < 0)
		goto fail;
	j->max_id = (uint64_t)(max_id > top ? max_id : top);
	*out = j;
	return 0;
fail:
	journal_free(j);
	return -1;
}

void journal_close(struct journal **jp)
{
	struct journal *j = *jp;
	if (!j)
		return;
	*jp = NULL;
	/* Everything committed moves into the database file; the WAL is emptied. */
	sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	journal_free(j);
}

const char *journal_path(const struct journal *j)
{
	return j->path;
}

uint64_t journal_max_id(const struct journal *j)
{
	return j->max_id;
}

/* ---- u64 arrays as little-endian blobs ---- */

static uint8_t *pack_u64s(const uint64_t *v, size_t n)
{
	uint8_t *p = xmalloc(n ? n * 8 : 1);
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			p[i * 8 + (size_t)b] = (uint8_t)(v[i] >> (8 * b));
	return p;
}

/* Returns an owned array of n values, or NULL (n = 0) for a NULL or malformed blob. */
static uint64_t *unpack_u64s(const void *blob, int bytes, size_t *n)
{
	*n = 0;
	if (!blob || bytes <= 0 || bytes % 8)
		return NULL;
	const uint8_t *p = blob;
	size_t cnt = (size_t)bytes / 8;
	uint64_t *v = xmalloc(cnt * sizeof(*v));
	for (size_t i = 0; i < cnt; i++) {
		uint64_t x = 0;
		for (int b = 7; b >= 0; b--)
			x = (x << 8) | p[i * 8 + (size_t)b];
		v[i] = x;
	}
	*n = cnt;
	return v;
}

static void *dup_mem(const void *p, size_t n)
{
	if (!p)
		return NULL;
	void *c = xmalloc(n ? n : 1);
	memcpy(c, p, n);
	return c;
}

/* ---- batches ---- */

struct journal_batch *journal_batch_create(void)
{
	return xcalloc(1, sizeof(struct journal_batch));
}

static void bop_free(struct bop *o)
{
	free((void *)o->job.spec);
	free((void *)o->job.error);
	free((void *)o->job.result);
	free((void *)o->job.parts);
	free((void *)o->task.seg_off);
	free((void *)o->task.seg_len);
	free((void *)o->task.buckets);
	free((void *)o->task.partial);
}

void journal_batch_destroy(struct journal_batch **bp)
{
	struct journal_batch *b = *bp;
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		bop_free(&b->ops[i]);
	free(b->ops);
	free(b);
	*bp = NULL;
}

bool journal_batch_empty(const struct journal_batch *b)
{
	return b->n == 0;
}

size_t journal_batch_size(const struct journal_batch *b)
{
	return b->n;
}

static struct bop *batch_add(struct journal_batch *b, enum bop_kind kind, uint64_t id)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->ops = xrealloc(b->ops, b->cap * sizeof(*b->ops));
	}
	struct bop *o = &b->ops[b->n++];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->id = id;
	return o;
}

void journal_put_job(struct journal_batch *b, const struct journal_job *job)
{
	struct bop *o = batch_add(b, BOP_JOB, job->id);
	o->job = *job;
	o->job.spec = dup_mem(job->spec, job->spec_len);
	o->job.error = job->error ? xstrdup(job->error) : NULL;
	o->job.result = dup_mem(job->result, job->result_len);
	o->job.parts =
	    job->parts ? dup_mem(job->parts, 2 * (size_t)job->nparts * sizeof(uint64_t)) : NULL;
}

void journal_put_task(struct journal_batch *b, const struct journal_task *task)
{
	struct bop *o = batch_add(b, BOP_TASK, task->job);
	o->task = *task;
	o->task.seg_off = dup_mem(task->seg_off, task->nsegs * sizeof(uint64_t));
	o->task.seg_len = dup_mem(task->seg_len, task->nsegs * sizeof(uint64_t));
	o->task.buckets = dup_mem(task->buckets, task->nbuckets * sizeof(uint64_t));
	o->task.partial = dup_mem(task->partial, task->partial_len);
}

void journal_drop_tasks(struct journal_batch *b, uint64_t job)
{
	batch_add(b, BOP_DROP_TASKS, job);
}

void journal_drop_job(struct journal_batch *b, uint64_t job)
{
	batch_add(b, BOP_DROP_JOB, job);
}

/* ---- commit ---- */

static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (!p)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_blob64(st, i, n ? p : "", n, SQLITE_STATIC);
}

static int bind_u64s(sqlite3_stmt *st, int i, const uint64_t *v, size_t n)
{
	if (!v)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_blob64(st, i, pack_u64s(v, n), n * 8, free);
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int run_op(struct journal *j, const struct bop *o, uint64_t *max_id)
{
	sqlite3_stmt *st;
	switch (o->kind) {
	case BOP_JOB: {
		const struct journal_job *r = &o->job;
		st = j->st[ST_PUT_JOB];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
		bind_blob(st, 2, r->spec, r->spec_len);
		sqlite3_bind_int(st, 3, r->state);
		if (r->error)
			sqlite3_bind_text(st, 4, r->error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)r->submitted_ms);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)r->started_ms);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)r->finished_ms);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)r->part_size);
		sqlite3_bind_int64(st, 9, r->ntasks);
		sqlite3_bind_int64(st, 10, (sqlite3_int64)r->input_bytes);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)r->records);
		sqlite3_bind_int64(st, 12, r->task_failures);
		sqlite3_bind_int64(st, 13, (sqlite3_int64)r->result_size);
		bind_blob(st, 14, r->result, r->result_len);
		sqlite3_bind_int(st, 15, r->result_file);
		bind_u64s(st, 16, r->parts, 2 * (size_t)r->nparts);
		sqlite3_bind_int(st, 17, r->reducing);
		sqlite3_bind_int64(st, 18, r->map_tasks);
		if (r->id > *max_id)
			*max_id = r->id;
		break;
	}
	case BOP_TASK: {
		const struct journal_task *t = &o->task;
		st = j->st[ST_PUT_TASK];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)t->job);
		sqlite3_bind_int64(st, 2, t->task);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)t->records);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)t->out_off);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)t->out_len);
		if (t->nsegs) {
			uint64_t *pairs = xmalloc(2 * (size_t)t->nsegs * sizeof(*pairs));
			for (uint32_t i = 0; i < t->nsegs; i++) {
				pairs[2 * (size_t)i] = t->seg_off[i];
				pairs[2 * (size_t)i + 1] = t->seg_len[i];
			}
			bind_u64s(st, 6, pairs, 2 * (size_t)t->nsegs);
			free(pairs);
		}
		if (t->nbuckets)
			bind_u64s(st, 7, t->buckets, t->nbuckets);
		bind_blob(st, 8, t->partial, t->partial_len);
		break;
	}
	case BOP_DROP_TASKS:
		st = j->st[ST_DROP_TASKS];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)o->id);
		break;
	case BOP_DROP_JOB:
		if (step_done((sqlite3_bind_int64(j->st[ST_DROP_TASKS], 1, (sqlite3_int64)o->id),
		               j->st[ST_DROP_TASKS])) < 0)
			return -1;
		st = j->st[ST_DROP_JOB];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)o->id);
		break;
	default:
		return -1;
	}
	return step_done(st);
}

int journal_commit(struct journal *j, const struct journal_batch *b, bool full, char *err,
                   size_t errlen)
{
	if (b->n == 0)
		return 0;
	if (j->sync_full != (int)full) {
		if (exec_sql(j, "cannot set it up",
		             full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err,
		             errlen) < 0)
			return -1;
		j->sync_full = full;
	}
	if (exec_sql(j, "cannot write it", "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	uint64_t max_id = j->max_id;
	for (size_t i = 0; i < b->n; i++) {
		if (run_op(j, &b->ops[i], &max_id) < 0) {
			db_error(j, err, errlen, "writing it");
			sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	if (max_id != j->max_id) {
		sqlite3_bind_int64(j->st[ST_SET_MAX], 1, (sqlite3_int64)max_id);
		if (step_done(j->st[ST_SET_MAX]) < 0) {
			db_error(j, err, errlen, "writing it");
			sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(j, err, errlen, "committing to it");
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	j->max_id = max_id;
	return 0;
}

/* ---- load ---- */

static int load_tasks(struct journal *j, uint64_t job, const struct journal_load_fn *fn, char *err,
                      size_t errlen)
{
	sqlite3_stmt *st = j->st[ST_LOAD_TASKS];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)job);
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct journal_task t = {0};
		size_t nsegs2 = 0, nb = 0;
		t.job = job;
		t.task = (uint32_t)sqlite3_column_int64(st, 0);
		t.records = (uint64_t)sqlite3_column_int64(st, 1);
		t.out_off = (uint64_t)sqlite3_column_int64(st, 2);
		t.out_len = (uint64_t)sqlite3_column_int64(st, 3);
		uint64_t *segs =
		    unpack_u64s(sqlite3_column_blob(st, 4), sqlite3_column_bytes(st, 4), &nsegs2);
		uint64_t *buckets =
		    unpack_u64s(sqlite3_column_blob(st, 5), sqlite3_column_bytes(st, 5), &nb);
		uint64_t *off = NULL, *len = NULL;
		if (segs && nsegs2 % 2 == 0) {
			t.nsegs = (uint32_t)(nsegs2 / 2);
			off = xmalloc(t.nsegs * sizeof(*off));
			len = xmalloc(t.nsegs * sizeof(*len));
			for (uint32_t i = 0; i < t.nsegs; i++) {
				off[i] = segs[2 * (size_t)i];
				len[i] = segs[2 * (size_t)i + 1];
			}
		}
		t.seg_off = off;
		t.seg_len = len;
		t.buckets = buckets;
		t.nbuckets = (uint32_t)nb;
		t.partial = sqlite3_column_blob(st, 6);
		t.partial_len = (size_t)sqlite3_column_bytes(st, 6);
		if (sqlite3_column_type(st, 6) != SQLITE_NULL && !t.partial)
			t.partial = (const uint8_t *)"";
		ret = fn->task ? fn->task(fn->arg, &t) : 0;
		free(segs);
		free(buckets);
		free(off);
		free(len);
		if (ret)
			break;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (!ret && rc != SQLITE_DONE)
		return db_error(j, err, errlen, "reading its tasks");
	return ret;
}

int journal_load(struct journal *j, const struct journal_load_fn *fn, char *err, size_t errlen)
{
	sqlite3_stmt *st = j->st[ST_LOAD_JOBS];
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct journal_job r = {0};
		size_t nparts2 = 0;
		r.id = (uint64_t)sqlite3_column_int64(st, 0);
		r.spec = sqlite3_column_blob(st, 1);
		r.spec_len = (size_t)sqlite3_column_bytes(st, 1);
		r.state = sqlite3_column_int(st, 2);
		r.error = (const char *)sqlite3_column_text(st, 3);
		r.submitted_ms = (uint64_t)sqlite3_column_int64(st, 4);
		r.started_ms = (uint64_t)sqlite3_column_int64(st, 5);
		r.finished_ms = (uint64_t)sqlite3_column_int64(st, 6);
		r.part_size = (uint64_t)sqlite3_column_int64(st, 7);
		r.ntasks = (uint32_t)sqlite3_column_int64(st, 8);
		r.input_bytes = (uint64_t)sqlite3_column_int64(st, 9);
		r.records = (uint64_t)sqlite3_column_int64(st, 10);
		r.task_failures = (uint32_t)sqlite3_column_int64(st, 11);
		r.result_size = (uint64_t)sqlite3_column_int64(st, 12);
		r.result = sqlite3_column_blob(st, 13);
		r.result_len = (size_t)sqlite3_column_bytes(st, 13);
		if (sqlite3_column_type(st, 13) != SQLITE_NULL && !r.result)
			r.result = (const uint8_t *)"";
		r.result_file = sqlite3_column_int(st, 14) != 0;
		uint64_t *parts = unpack_u64s(sqlite3_column_blob(st, 15),
		                              sqlite3_column_bytes(st, 15), &nparts2);
		/* An upload of nothing has an empty (not NULL) cut table. */
		if (sqlite3_column_type(st, 15) != SQLITE_NULL && !parts)
			parts = xcalloc(1, sizeof(*parts));
		r.parts = parts;
		r.nparts = (uint32_t)(nparts2 / 2);
		r.reducing = sqlite3_column_int(st, 16) != 0;
		r.map_tasks = (uint32_t)sqlite3_column_int64(st, 17);
		ret = fn->job ? fn->job(fn->arg, &r) : 0;
		free(parts);
		if (!ret)
			ret = load_tasks(j, r.id, fn, err, errlen);
		if (ret)
			break;
	}
	sqlite3_reset(st);
	if (!ret && rc != SQLITE_DONE)
		return db_error(j, err, errlen, "reading its jobs");
	return ret;
}
