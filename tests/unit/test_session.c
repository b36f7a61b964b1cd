/* test_session.c: the worker's whole session against an in-process fake master (conn.c on
 * 127.0.0.1, port 0): shipped files requested once and cached, exec output streamed as
 * TaskOutput ahead of its result under a small frame limit, corrupted and interrupted blobs,
 * the --allow-exec refusal, cancellation of a running command, a reduce map task's buckets,
 * a built-in op reading a broadcast, and a master that dies half-way through a blob. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "digest.h"
#include "fsutil.h"
#include "log.h"
#include "session.h"

#define MAX_RESULTS 64
#define MAX_BLOBS   8

struct blob {
	const char *name;
	const char *data;
	uint8_t sha[DIGEST_LEN];
	bool corrupt;         /* send it with a byte flipped */
	bool half_then_close; /* send half, then drop the connection */
};

struct result {
	uint64_t job_id;
	uint32_t task_id;
	bool ok;
	bool permanent;
	char *error;
	struct buf data; /* TaskOutput pieces, then the result's data */
	size_t pieces;   /* TaskOutput messages before the result */
	size_t nbuckets;
	uint64_t buckets[16];
};

struct fake {
	uv_loop_t loop;
	uv_tcp_t listener;
	int port;
	struct conn *conn; /* the worker's connection */
	struct conn_limits limits;
	uint32_t max_frame; /* announced in Welcome */
	int registrations;
	int closes;

	struct blob blobs[MAX_BLOBS];
	size_t nblobs;
	int requests;

	/* TaskOutput pieces of tasks that have no result yet, per task id */
	struct buf pending[MAX_RESULTS];
	size_t pending_pieces[MAX_RESULTS];
	unsigned unaligned_pieces[MAX_RESULTS]; /* TaskOutput pieces not ending in a newline */
	struct result results[MAX_RESULTS];
	size_t nresults;

	struct worker_session *session;
	bool stopped;
	int drainings;              /* Draining messages received */
	Shoal__TaskRef draining[8]; /* the attempts the last one said are running */
	size_t ndraining;
	char cache_dir[128];
	char work_dir[256];
};

static struct fake F;

static void fake_send(Shoal__Envelope *env)
{
	ck_assert_ptr_nonnull(F.conn);
	ck_assert_int_eq(conn_send(F.conn, env), 0);
}

static void fake_send_blob(const struct blob *b)
{
	size_t len = strlen(b->data);
	char *copy = strdup(b->data);
	if (b->corrupt && len > 0)
		copy[len / 2] ^= 1;
	size_t piece = 7;
	size_t stop = b->half_then_close ? len / 2 : len;
	size_t off = 0;
	do {
		size_t n = stop - off < piece ? stop - off : piece;
		Shoal__BlobData d = SHOAL__BLOB_DATA__INIT;
		d.sha256.data = (uint8_t *)b->sha;
		d.sha256.len = DIGEST_LEN;
		d.offset = off;
		d.data.data = (uint8_t *)copy + off;
		d.data.len = n;
		off += n;
		d.has_last = true;
		d.last = off == len;
		Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
		env.msg_case = SHOAL__ENVELOPE__MSG_BLOB_DATA;
		env.blob_data = &d;
		fake_send(&env);
	} while (off < stop);
	free(copy);
	if (b->half_then_close)
		conn_close(F.conn, "test: master dies mid-blob");
}

static void fake_on_message(struct conn *c, Shoal__Envelope *env)
{
	(void)c;
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_HELLO: {
		F.registrations++;
		Shoal__Welcome w = SHOAL__WELCOME__INIT;
		w.version = 1;
		w.has_worker_id = true;
		w.worker_id = 1;
		w.has_max_frame = F.max_frame > 0;
		w.max_frame = F.max_frame;
		Shoal__Envelope out = SHOAL__ENVELOPE__INIT;
		out.msg_case = SHOAL__ENVELOPE__MSG_WELCOME;
		out.welcome = &w;
		fake_send(&out);
		break;
	}
	case SHOAL__ENVELOPE__MSG_BLOB_REQUEST:
		F.requests++;
		for (size_t i = 0; i < F.nblobs; i++)
			if (memcmp(F.blobs[i].sha, env->blob_request->sha256.data, DIGEST_LEN) ==
			    0) {
				fake_send_blob(&F.blobs[i]);
				return;
			}
		ck_abort_msg("request for an unknown blob");
		break;
	case SHOAL__ENVELOPE__MSG_TASK_OUTPUT: {
		const Shoal__TaskOutput *o = env->task_output;
		ck_assert_uint_lt(o->task_id, MAX_RESULTS);
		ck_assert_uint_le(o->data.len + 256, F.max_frame ? F.max_frame : 64u << 20);
		buf_append(&F.pending[o->task_id], o->data.data, o->data.len);
		F.pending_pieces[o->task_id]++;
		if (o->data.len == 0 || o->data.data[o->data.len - 1] != '\n')
			F.unaligned_pieces[o->task_id]++;
		break;
	}
	case SHOAL__ENVELOPE__MSG_RESULT_BATCH:
		for (size_t i = 0; i < env->result_batch->n_results; i++) {
			const Shoal__TaskResult *r = env->result_batch->results[i];
			ck_assert_uint_lt(F.nresults, MAX_RESULTS);
			ck_assert_uint_lt(r->task_id, MAX_RESULTS);
			struct result *res = &F.results[F.nresults++];
			memset(res, 0, sizeof(*res));
			res->job_id = r->job_id;
			res->task_id = r->task_id;
			res->ok = r->ok;
			res->permanent = r->has_permanent && r->permanent;
			res->error = r->error != NULL ? strdup(r->error) : NULL;
			res->data = F.pending[r->task_id];
			res->pieces = F.pending_pieces[r->task_id];
			F.pending[r->task_id] = (struct buf)BUF_INIT;
			F.pending_pieces[r->task_id] = 0;
			if (r->has_data)
				buf_append(&res->data, r->data.data, r->data.len);
			res->nbuckets = r->n_buckets;
			for (size_t b = 0; b < r->n_buckets && b < 16; b++)
				res->buckets[b] = r->buckets[b];
		}
		break;
	case SHOAL__ENVELOPE__MSG_DRAINING:
		F.drainings++;
		ck_assert_uint_le(env->draining->n_running, 8);
		F.ndraining = env->draining->n_running;
		for (size_t i = 0; i < F.ndraining; i++)
			F.draining[i] = *env->draining->running[i];
		break;
	default:
		break;
	}
}

static void fake_on_close(struct conn *c, const char *reason)
{
	(void)reason;
	if (F.conn == c)
		F.conn = NULL;
	F.closes++;
}

static const struct conn_callbacks fake_cb = {
    .on_message = fake_on_message,
    .on_close = fake_on_close,
};

static void fake_on_connection(uv_stream_t *server, int status)
{
	ck_assert_int_eq(status, 0);
	struct conn *c = conn_create(&F.loop, &F.limits, &fake_cb, NULL);
	ck_assert_int_eq(uv_accept(server, (uv_stream_t *)conn_tcp(c)), 0);
	ck_assert_int_eq(conn_start(c), 0);
	F.conn = c;
}

static void on_session_stopped(void *arg, int status)
{
	(void)arg;
	ck_assert_int_eq(status, 0);
	F.stopped = true;
	if (F.conn != NULL)
		conn_close(F.conn, "test over");
	uv_close((uv_handle_t *)&F.listener, NULL);
}

static void start(bool allow_exec, uint32_t max_frame)
{
	memset(&F, 0, sizeof(F));
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(uv_loop_init(&F.loop), 0);
	conn_limits_default(&F.limits);
	F.max_frame = max_frame;
	snprintf(F.cache_dir, sizeof(F.cache_dir), "/tmp/shoal-test-session-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(F.cache_dir));
	snprintf(F.work_dir, sizeof(F.work_dir), "%s/work", F.cache_dir);
	char err[256];
	ck_assert_int_eq(fs_mkdir_p(F.work_dir, 0700, err, sizeof(err)), 0);
	strcat(F.cache_dir, "/cache");

	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&F.loop, &F.listener);
	ck_assert_int_eq(uv_tcp_bind(&F.listener, (struct sockaddr *)&sa, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&F.listener, 16, fake_on_connection), 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_tcp_getsockname(&F.listener, (struct sockaddr *)&ss, &len);
	F.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

	char master[64];
	snprintf(master, sizeof(master), "127.0.0.1:%d", F.port);
	const struct worker_session_config cfg = {
	    .master = master,
	    .master_host = "127.0.0.1",
	    .master_port = (uint16_t)F.port,
	    .name = "wtest",
	    .host = "localhost",
	    .slots = 2,
	    .allow_exec = allow_exec,
	    .cache_dir = F.cache_dir,
	    .cache_size = 1 << 20,
	    .work_root = F.work_dir,
	};
	F.session = worker_session_create(&F.loop, &cfg, on_session_stopped, NULL);
	worker_session_start(F.session);
}

static void on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until cond() holds; fails after 20 s. */
static void run_until(bool (*cond)(void))
{
	bool late = false;
	uv_timer_t t;
	uv_timer_init(&F.loop, &t);
	t.data = &late;
	uv_timer_start(&t, on_deadline, 20000, 0);
	while (!cond() && !late)
		uv_run(&F.loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&F.loop, UV_RUN_NOWAIT);
	ck_assert_msg(!late, "timed out");
}

static size_t want_results;
static bool have_results(void)
{
	return F.nresults >= want_results;
}
static bool registered(void)
{
	return F.conn != NULL && F.registrations > 0;
}
static int want_registrations;
static bool reregistered(void)
{
	return F.conn != NULL && F.registrations >= want_registrations;
}

static size_t count_entries(const char *path, const char *prefix)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (prefix != NULL)
			n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
		else
			n += de->d_name[0] != '.';
	}
	closedir(d);
	return n;
}

static void finish(void)
{
	worker_session_stop(F.session);
	uv_run(&F.loop, UV_RUN_DEFAULT);
	ck_assert(F.stopped);
	worker_session_destroy(&F.session);
	ck_assert_int_eq(uv_run(&F.loop, UV_RUN_DEFAULT), 0);
	int rc = uv_loop_close(&F.loop);
	if (rc != 0)
		uv_print_all_handles(&F.loop, stderr);
	ck_assert_int_eq(rc, 0);
	/* Every attempt's directory is gone. */
	ck_assert_uint_eq(count_entries(F.work_dir, NULL), 0);
	for (size_t i = 0; i < F.nresults; i++) {
		free(F.results[i].error);
		buf_free(&F.results[i].data);
	}
	for (size_t i = 0; i < MAX_RESULTS; i++)
		buf_free(&F.pending[i]);
	char err[256];
	char root[128];
	snprintf(root, sizeof(root), "%s", F.cache_dir);
	*strrchr(root, '/') = '\0';
	ck_assert_int_eq(fs_rmtree(root, err, sizeof(err)), 0);
}

static struct blob *add_blob(const char *name, const char *data)
{
	struct blob *b = &F.blobs[F.nblobs++];
	b->name = name;
	b->data = data;
	digest_buffer(data, strlen(data), b->sha);
	return b;
}

static void ref_init(Shoal__FileRef *r, const struct blob *b)
{
	shoal__file_ref__init(r);
	r->name = (char *)b->name;
	r->sha256.data = (uint8_t *)b->sha;
	r->sha256.len = DIGEST_LEN;
	r->size = strlen(b->data);
}

/* Sends one task: exec (or op when exec is NULL) over a range, with files. */
static void send_task(uint64_t job, uint32_t id, const char *exec, const char *op, int64_t lo,
                      int64_t hi, Shoal__FileRef **files, size_t nfiles, Shoal__FileRef *broadcast,
                      uint32_t reducers, const char *data)
{
	Shoal__Task t = SHOAL__TASK__INIT;
	t.job_id = job;
	t.task_id = id;
	t.attempt = 1;
	t.op = (char *)(op != NULL ? op : "exec");
	t.exec = (char *)exec;
	t.n_files = nfiles;
	t.files = files;
	t.broadcast = broadcast;
	if (reducers > 0) {
		t.has_reducers = true;
		t.reducers = reducers;
	}
	Shoal__Range range = SHOAL__RANGE__INIT;
	if (data != NULL) {
		t.input_case = SHOAL__TASK__INPUT_DATA;
		t.data.data = (uint8_t *)data;
		t.data.len = strlen(data);
	} else {
		range.lo = lo;
		range.hi = hi;
		t.input_case = SHOAL__TASK__INPUT_RANGE;
		t.range = &range;
	}
	Shoal__Task *tasks[] = {&t};
	Shoal__TaskBatch b = SHOAL__TASK_BATCH__INIT;
	b.n_tasks = 1;
	b.tasks = tasks;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_TASK_BATCH;
	env.task_batch = &b;
	fake_send(&env);
}

static const struct result *result_for(uint64_t job, uint32_t task)
{
	for (size_t i = 0; i < F.nresults; i++)
		if (F.results[i].job_id == job && F.results[i].task_id == task)
			return &F.results[i];
	return NULL;
}

static int data_is(const struct result *r, const char *want)
{
	return r->data.len == strlen(want) && memcmp(r->data.data, want, r->data.len) == 0;
}

START_TEST(test_session_files_cached)
{
	start(true, 0);
	run_until(registered);
	struct blob *script = add_blob("double.sh", "while read x; do echo $((x * 2)); done\n");
	struct blob *side = add_blob("side.txt", "side input\n");
	Shoal__FileRef r1, r2;
	ref_init(&r1, script);
	ref_init(&r2, side);
	Shoal__FileRef *files[] = {&r1};
	const char *cmd = "sh double.sh; cat \"$SHOAL_BROADCAST\"; echo job=$SHOAL_JOB_ID "
	                  "task=$SHOAL_TASK_ID part=$SHOAL_PARTITION attempt=$SHOAL_ATTEMPT";
	/* Two tasks at once want the same blobs: each is requested once. */
	send_task(5, 0, cmd, NULL, 0, 3, files, 1, &r2, 0, NULL);
	send_task(5, 1, cmd, NULL, 3, 5, files, 1, &r2, 0, NULL);
	want_results = 2;
	run_until(have_results);
	ck_assert_int_eq(F.requests, 2);
	const struct result *a = result_for(5, 0), *b = result_for(5, 1);
	ck_assert_msg(a->ok, "%s", a->error);
	ck_assert(data_is(a, "0\n2\n4\nside input\njob=5 task=0 part=0 attempt=1\n"));
	ck_assert(data_is(b, "6\n8\nside input\njob=5 task=1 part=1 attempt=1\n"));

	/* The next job finds them in the cache. */
	send_task(6, 0, cmd, NULL, 10, 11, files, 1, &r2, 0, NULL);
	want_results = 3;
	run_until(have_results);
	ck_assert_int_eq(F.requests, 2);
	ck_assert(data_is(result_for(6, 0), "20\nside input\njob=6 task=0 part=0 attempt=1\n"));
	finish();
}
END_TEST

START_TEST(test_session_streams_output)
{
	/* A 64 KiB frame limit: 1 MB of output must travel in TaskOutput pieces, all of
	 * them before its result, in order. */
	start(true, 64 * 1024);
	run_until(registered);
	send_task(7, 0, "cat", NULL, 0, 150000, NULL, 0, NULL, 0, NULL);
	want_results = 1;
	run_until(have_results);
	const struct result *r = result_for(7, 0);
	ck_assert_msg(r->ok, "%s", r->error);
	ck_assert_uint_gt(r->pieces, 10);
	struct buf want = BUF_INIT;
	for (int i = 0; i < 150000; i++)
		buf_printf(&want, "%d\n", i);
	ck_assert_uint_eq(r->data.len, want.len);
	ck_assert_int_eq(memcmp(r->data.data, want.data, want.len), 0);
	buf_free(&want);

	/* A map task of a reduce job: its shuffled output is bigger than a frame too; the
	 * buckets describe pieces and data together. */
	F.unaligned_pieces[0] = 0;
	send_task(8, 0,
	          "i=0; while [ $i -lt 20000 ]; do printf 'k%d\\t1\\n' $((i % 97)); "
	          "i=$((i+1)); done",
	          NULL, 0, 0, NULL, 0, NULL, 4, "");
	want_results = 2;
	run_until(have_results);
	r = result_for(8, 0);
	ck_assert_msg(r->ok, "%s", r->error);
	ck_assert_uint_gt(r->pieces, 0);
	/* The master merges each bucket's pieces as runs of whole lines. */
	ck_assert_uint_eq(F.unaligned_pieces[0], 0);
	ck_assert_uint_eq(r->nbuckets, 4);
	uint64_t sum = 0;
	for (int b = 0; b < 4; b++)
		sum += r->buckets[b];
	ck_assert_uint_eq(sum, r->data.len);
	finish();
}
END_TEST

START_TEST(test_session_corrupt_blob)
{
	start(true, 0);
	run_until(registered);
	struct blob *bad = add_blob("f.txt", "the real bytes of the file\n");
	bad->corrupt = true;
	Shoal__FileRef r;
	ref_init(&r, bad);
	Shoal__FileRef *files[] = {&r};
	send_task(9, 0, "cat f.txt", NULL, 0, 1, files, 1, NULL, 0, NULL);
	want_results = 1;
	run_until(have_results);
	const struct result *res = result_for(9, 0);
	ck_assert(!res->ok);
	ck_assert(!res->permanent); /* another try may get good bytes */
	ck_assert_ptr_nonnull(strstr(res->error, "cannot fetch file f.txt"));
	ck_assert_ptr_nonnull(strstr(res->error, "corrupted in transit"));
	ck_assert_uint_eq(count_entries(F.cache_dir, ".tmp."), 0);

	/* Fixed at the master: the retry fetches again and succeeds. */
	bad->corrupt = false;
	send_task(9, 0, "cat f.txt", NULL, 0, 1, files, 1, NULL, 0, NULL);
	want_results = 2;
	run_until(have_results);
	ck_assert(F.results[1].ok);
	ck_assert(data_is(&F.results[1], "the real bytes of the file\n"));
	finish();
}
END_TEST

START_TEST(test_session_refuses_exec)
{
	start(false, 0);
	run_until(registered);
	send_task(10, 0, "echo hi", NULL, 0, 1, NULL, 0, NULL, 0, NULL);
	want_results = 1;
	run_until(have_results);
	const struct result *r = result_for(10, 0);
	ck_assert(!r->ok);
	ck_assert(r->permanent);
	ck_assert_str_eq(r->error,
	                 "worker wtest does not run --exec commands (start it with --allow-exec)");
	ck_assert_int_eq(F.requests, 0);
	finish();
}
END_TEST

static uint64_t cancel_at;
static bool cancel_time(void)
{
	return uv_now(&F.loop) >= cancel_at;
}

START_TEST(test_session_cancel)
{
	start(true, 0);
	run_until(registered);
	send_task(11, 0, "sleep 300", NULL, 0, 1, NULL, 0, NULL, 0, NULL);
	send_task(11, 1, "echo quick", NULL, 0, 1, NULL, 0, NULL, 0, NULL);
	want_results = 1;
	run_until(have_results);
	cancel_at = uv_now(&F.loop) + 200;
	run_until(cancel_time);
	Shoal__TaskRef ref = SHOAL__TASK_REF__INIT;
	ref.job_id = 11;
	ref.task_id = 0;
	ref.attempt = 1;
	Shoal__TaskRef *refs[] = {&ref};
	Shoal__CancelTasks c = SHOAL__CANCEL_TASKS__INIT;
	c.n_tasks = 1;
	c.tasks = refs;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_CANCEL_TASKS;
	env.cancel_tasks = &c;
	fake_send(&env);
	/* The stop waits for running tasks: it ends promptly only if sleep 300 died. */
	uint64_t start_ns = uv_hrtime();
	finish();
	ck_assert_uint_eq(F.nresults, 1);
	ck_assert_uint_lt(uv_hrtime() - start_ns, 10000000000ull);
}
END_TEST

static char drain_root[128];
static bool exists(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", drain_root, name);
	return access(path, F_OK) == 0;
}
static bool both_started(void)
{
	return exists("started.0") && exists("started.1");
}
static bool have_draining(void)
{
	return F.drainings > 0;
}

/* Stopping says Draining with the attempts that run (slots 2: tasks 0 and 1, which wait
 * for a file), not those queued behind them (2 and 3): the master runs those elsewhere. */
START_TEST(test_session_draining)
{
	start(true, 0);
	snprintf(drain_root, sizeof(drain_root), "%s", F.cache_dir);
	*strrchr(drain_root, '/') = '\0';
	run_until(registered);
	char slow[512];
	for (uint32_t id = 0; id < 2; id++) {
		snprintf(slow, sizeof(slow),
		         "touch %s/started.%u; i=0; while [ ! -e %s/go ] && [ $i -lt 600 ]; do "
		         "sleep 0.05; i=$((i + 1)); done; echo slow",
		         drain_root, id, drain_root);
		send_task(14, id, slow, NULL, 0, 1, NULL, 0, NULL, 0, NULL);
	}
	send_task(14, 2, "echo quick", NULL, 0, 1, NULL, 0, NULL, 0, NULL);
	send_task(14, 3, "echo quick", NULL, 0, 1, NULL, 0, NULL, 0, NULL);
	run_until(both_started);
	worker_session_stop(F.session);
	run_until(have_draining);
	ck_assert_int_eq(F.drainings, 1);
	ck_assert_uint_eq(F.ndraining, 2);
	bool seen[2] = {false, false};
	for (size_t i = 0; i < F.ndraining; i++) {
		ck_assert_uint_eq(F.draining[i].job_id, 14);
		ck_assert_uint_lt(F.draining[i].task_id, 2);
		ck_assert_uint_eq(F.draining[i].attempt, 1);
		seen[F.draining[i].task_id] = true;
	}
	ck_assert(seen[0] && seen[1]);
	char go[256];
	snprintf(go, sizeof(go), "%s/go", drain_root);
	FILE *f = fopen(go, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	finish();
	/* The running ones report; the queued ones never ran. */
	ck_assert_uint_eq(F.nresults, 2);
	ck_assert_ptr_nonnull(result_for(14, 0));
	ck_assert_ptr_nonnull(result_for(14, 1));
}
END_TEST

START_TEST(test_session_broadcast_op)
{
	start(true, 0);
	run_until(registered);
	struct blob *train = add_blob("train.csv", "0,0,a\n0,1,a\n10,10,b\n10,11,b\n11,10,b\n");
	Shoal__FileRef r;
	ref_init(&r, train);
	/* knn through the thread pool with the broadcast mapped once for both tasks. */
	send_task(12, 0, NULL, "knn", 0, 0, NULL, 0, &r, 0, "1,0\n9,9\n");
	send_task(12, 1, NULL, "knn", 0, 0, NULL, 0, &r, 0, "12,12\n");
	want_results = 2;
	run_until(have_results);
	ck_assert_int_eq(F.requests, 1);
	const struct result *a = result_for(12, 0);
	ck_assert_msg(a->ok, "%s", a->error);
	ck_assert(data_is(a, "a\nb\n"));
	ck_assert(data_is(result_for(12, 1), "b\n"));
	finish();
}
END_TEST

START_TEST(test_session_master_dies_mid_blob)
{
	start(true, 0);
	run_until(registered);
	struct blob *b = add_blob("big.txt", "a blob that will not arrive whole this time\n");
	b->half_then_close = true;
	Shoal__FileRef r;
	ref_init(&r, b);
	Shoal__FileRef *files[] = {&r};
	send_task(13, 0, "cat big.txt", NULL, 0, 1, files, 1, NULL, 0, NULL);
	/* The worker comes back, with nothing half-written left in its cache. */
	want_registrations = 2;
	run_until(reregistered);
	ck_assert_uint_eq(F.nresults, 0);
	/* Give the pool a moment to remove the partial file. */
	cancel_at = uv_now(&F.loop) + 200;
	run_until(cancel_time);
	ck_assert_uint_eq(count_entries(F.cache_dir, ".tmp."), 0);
	b->half_then_close = false;
	send_task(13, 0, "cat big.txt", NULL, 0, 1, files, 1, NULL, 0, NULL);
	want_results = 1;
	run_until(have_results);
	ck_assert(data_is(&F.results[0], b->data));
	finish();
}
END_TEST

static Suite *session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("session");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_session_files_cached);
	tcase_add_test(tc, test_session_streams_output);
	tcase_add_test(tc, test_session_corrupt_blob);
	tcase_add_test(tc, test_session_refuses_exec);
	tcase_add_test(tc, test_session_cancel);
	tcase_add_test(tc, test_session_draining);
	tcase_add_test(tc, test_session_broadcast_op);
	tcase_add_test(tc, test_session_master_dies_mid_blob);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_set_level(LOG_ERROR);
	SRunner *sr = srunner_create(session_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
