/* Unit tests for codec.c: pack/unpack, the unpack budget and the per-kind validators. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "frame.h"

/* Packs env as a frame, checks the header, and unpacks the payload again. */
static Shoal__Envelope *test_codec_round_trip(const Shoal__Envelope *env)
{
	size_t n = codec_frame_size(env);
	uint8_t *out = malloc(n);
	ck_assert_ptr_nonnull(out);
	codec_pack_frame(env, out);
	uint32_t len = 0;
	ck_assert_int_eq(frame_parse(out, n, FRAME_DEFAULT_MAX, &len), FRAME_READY);
	ck_assert_uint_eq((size_t)len + FRAME_HEADER_SIZE, n);
	char err[256] = "";
	Shoal__Envelope *back = codec_unpack(out + FRAME_HEADER_SIZE, len, 0, err, sizeof(err));
	ck_assert_msg(back != NULL, "unpack: %s", err);
	free(out);
	ck_assert_int_eq(back->msg_case, env->msg_case);
	ck_assert_msg(codec_validate(back, err, sizeof(err)) == 0, "validate: %s", err);
	return back;
}

START_TEST(test_codec_hello_round_trip)
{
	Shoal__Hello h = SHOAL__HELLO__INIT;
	h.version = SHOAL_PROTOCOL_VERSION;
	h.role = SHOAL__ROLE__ROLE_WORKER;
	h.name = "w1";
	h.has_slots = 1;
	h.slots = 8;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	ck_assert_str_eq(codec_kind_name(&env), "hello");
	Shoal__Envelope *back = test_codec_round_trip(&env);
	ck_assert_uint_eq(back->hello->version, SHOAL_PROTOCOL_VERSION);
	ck_assert_int_eq(back->hello->role, SHOAL__ROLE__ROLE_WORKER);
	ck_assert_str_eq(back->hello->name, "w1");
	ck_assert(back->hello->has_slots);
	ck_assert_uint_eq(back->hello->slots, 8);
	ck_assert_ptr_null(back->hello->host);
	codec_free(back);
}
END_TEST

START_TEST(test_codec_task_batch_round_trip)
{
	Shoal__Range r = SHOAL__RANGE__INIT;
	r.lo = -5;
	r.hi = 100;
	Shoal__PathSplit sp = SHOAL__PATH_SPLIT__INIT;
	sp.path = "/data/x";
	sp.offset = 10;
	sp.length = 20;
	Shoal__Arg a = SHOAL__ARG__INIT;
	a.key = "pattern";
	a.value = "foo";
	Shoal__Arg *args[] = {&a};
	Shoal__Task t[3];
	Shoal__Task *tp[3];
	for (int i = 0; i < 3; i++) {
		shoal__task__init(&t[i]);
		t[i].job_id = 9;
		t[i].task_id = (uint32_t)i;
		t[i].attempt = 1;
		t[i].op = "grep";
		t[i].n_args = 1;
		t[i].args = args;
		tp[i] = &t[i];
	}
	t[0].input_case = SHOAL__TASK__INPUT_RANGE;
	t[0].range = &r;
	t[1].input_case = SHOAL__TASK__INPUT_DATA;
	t[1].data.data = (uint8_t *)"a\nb\n";
	t[1].data.len = 4;
	t[2].input_case = SHOAL__TASK__INPUT_SPLIT;
	t[2].split = &sp;
	Shoal__TaskBatch tb = SHOAL__TASK_BATCH__INIT;
	tb.n_tasks = 3;
	tb.tasks = tp;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_TASK_BATCH;
	env.task_batch = &tb;
	ck_assert_str_eq(codec_kind_name(&env), "task_batch");

	Shoal__Envelope *back = test_codec_round_trip(&env);
	Shoal__TaskBatch *b = back->task_batch;
	ck_assert_uint_eq(b->n_tasks, 3);
	ck_assert_int_eq(b->tasks[0]->input_case, SHOAL__TASK__INPUT_RANGE);
	ck_assert_int_eq(b->tasks[0]->range->lo, -5);
	ck_assert_int_eq(b->tasks[0]->range->hi, 100);
	ck_assert_int_eq(b->tasks[1]->input_case, SHOAL__TASK__INPUT_DATA);
	ck_assert_uint_eq(b->tasks[1]->data.len, 4);
	ck_assert_mem_eq(b->tasks[1]->data.data, "a\nb\n", 4);
	ck_assert_int_eq(b->tasks[2]->input_case, SHOAL__TASK__INPUT_SPLIT);
	ck_assert_str_eq(b->tasks[2]->split->path, "/data/x");
	ck_assert_uint_eq(b->tasks[2]->split->length, 20);
	ck_assert_str_eq(b->tasks[2]->args[0]->key, "pattern");
	ck_assert_str_eq(b->tasks[2]->op, "grep");
	codec_free(back);
}
END_TEST

START_TEST(test_codec_result_and_submit_round_trip)
{
	Shoal__TaskResult r = SHOAL__TASK_RESULT__INIT;
	r.job_id = 3;
	r.task_id = 4;
	r.attempt = 2;
	r.ok = 0;
	r.error = "boom";
	Shoal__TaskResult *rp[] = {&r};
	Shoal__ResultBatch rb = SHOAL__RESULT_BATCH__INIT;
	rb.n_results = 1;
	rb.results = rp;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_RESULT_BATCH;
	env.result_batch = &rb;
	Shoal__Envelope *back = test_codec_round_trip(&env);
	ck_assert_str_eq(back->result_batch->results[0]->error, "boom");
	ck_assert_uint_eq(back->result_batch->results[0]->attempt, 2);
	codec_free(back);

	Shoal__JobSpec spec = SHOAL__JOB_SPEC__INIT;
	spec.op = "wordcount";
	spec.input_case = SHOAL__JOB_SPEC__INPUT_UPLOAD;
	spec.upload = 1;
	spec.has_partitions = 1;
	spec.partitions = 16;
	Shoal__Submit sub = SHOAL__SUBMIT__INIT;
	sub.spec = &spec;
	Shoal__Envelope env2 = SHOAL__ENVELOPE__INIT;
	env2.msg_case = SHOAL__ENVELOPE__MSG_SUBMIT;
	env2.submit = &sub;
	back = test_codec_round_trip(&env2);
	ck_assert_str_eq(back->submit->spec->op, "wordcount");
	ck_assert_int_eq(back->submit->spec->input_case, SHOAL__JOB_SPEC__INPUT_UPLOAD);
	ck_assert_uint_eq(back->submit->spec->partitions, 16);
	codec_free(back);

	/* Empty messages still carry their kind. */
	Shoal__ListJobs lj = SHOAL__LIST_JOBS__INIT;
	Shoal__Envelope env3 = SHOAL__ENVELOPE__INIT;
	env3.msg_case = SHOAL__ENVELOPE__MSG_LIST_JOBS;
	env3.list_jobs = &lj;
	ck_assert_str_eq(codec_kind_name(&env3), "list_jobs");
	back = test_codec_round_trip(&env3);
	codec_free(back);
}
END_TEST

START_TEST(test_codec_kind_names)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	ck_assert_str_eq(codec_kind_name(&env), "none");
	ck_assert_str_eq(codec_kind_name(NULL), "none");
	env.msg_case = SHOAL__ENVELOPE__MSG_STATUS_REQUEST;
	ck_assert_str_eq(codec_kind_name(&env), "status_request");
	env.msg_case = SHOAL__ENVELOPE__MSG_WORKER_LIST;
	ck_assert_str_eq(codec_kind_name(&env), "worker_list");
	env.msg_case = (Shoal__Envelope__MsgCase)99;
	ck_assert_str_eq(codec_kind_name(&env), "unknown");
}
END_TEST

START_TEST(test_codec_garbage)
{
	const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                           0xff, 0xff, 0xff, 0xff, 0x01};
	char err[256] = "";
	ck_assert_ptr_null(codec_unpack(garbage, sizeof(garbage), 0, err, sizeof(err)));
	ck_assert_uint_gt(strlen(err), 0);
	/* Random bytes never crash (whatever they decode to). */
	unsigned rnd = 1;
	uint8_t buf[64];
	for (int i = 0; i < 20000; i++) {
		size_t n = 1 + (size_t)(i % 64);
		for (size_t j = 0; j < n; j++) {
			rnd = rnd * 1103515245u + 12345u;
			buf[j] = (uint8_t)(rnd >> 16);
		}
		Shoal__Envelope *env = codec_unpack(buf, n, 0, err, sizeof(err));
		if (env != NULL) {
			(void)codec_validate(env, err, sizeof(err));
			codec_free(env);
		}
	}
}
END_TEST

START_TEST(test_codec_truncated)
{
	Shoal__Refusal r = SHOAL__REFUSAL__INIT;
	r.reason = "a fairly long reason so that truncation cuts a string";
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_REFUSAL;
	env.refusal = &r;
	size_t n = codec_frame_size(&env);
	uint8_t *out = malloc(n);
	codec_pack_frame(&env, out);
	char err[256];
	for (size_t cut = 1; cut < n - FRAME_HEADER_SIZE; cut++) {
		err[0] = '\0';
		ck_assert_ptr_null(codec_unpack(out + FRAME_HEADER_SIZE, cut, 0, err, sizeof(err)));
		ck_assert_uint_gt(strlen(err), 0);
	}
	free(out);
}
END_TEST

START_TEST(test_codec_no_kind)
{
	char err[256] = "";
	/* An empty payload is a valid, empty Envelope: no kind. */
	ck_assert_ptr_null(codec_unpack((const uint8_t *)"", 0, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "unknown or missing message kind");
	/* Only a field the schema does not know (field 99, varint 1): a kind from the future. */
	const uint8_t unknown[] = {0x98, 0x06, 0x01};
	err[0] = '\0';
	ck_assert_ptr_null(codec_unpack(unknown, sizeof(unknown), 0, err, sizeof(err)));
	ck_assert_str_eq(err, "unknown or missing message kind");
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	ck_assert_int_eq(codec_validate(&env, err, sizeof(err)), -1);
	ck_assert_int_eq(codec_validate(NULL, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_codec_unknown_fields_ignored)
{
	/* Envelope{ hello{version=1, role=WORKER, field 40 = "zz"}, field 50 = 7 }. */
	const uint8_t bytes[] = {0x0a, 0x09, 0x08, 0x01, 0x10, 0x01, 0xc2,
	                         0x02, 0x02, 'z',  'z',  0x90, 0x03, 0x07};
	char err[256] = "";
	Shoal__Envelope *env = codec_unpack(bytes, sizeof(bytes), 0, err, sizeof(err));
	ck_assert_msg(env != NULL, "%s", err);
	ck_assert_int_eq(env->msg_case, SHOAL__ENVELOPE__MSG_HELLO);
	ck_assert_uint_eq(env->hello->version, 1);
	ck_assert_int_eq(env->hello->role, SHOAL__ROLE__ROLE_WORKER);
	ck_assert_int_eq(codec_validate(env, err, sizeof(err)), 0);
	codec_free(env);
}
END_TEST

static void test_codec_varint(struct buf *out, size_t n)
{
	while (n >= 0x80) {
		buf_append_byte(out, (uint8_t)(n | 0x80));
		n >>= 7;
	}
	buf_append_byte(out, (uint8_t)n);
}

/* An Envelope field `outer_field` holding a message whose field 1 repeats `item` `count`
 * times (e.g. a ResultBatch of TaskResults). */
static void test_codec_batch(struct buf *out, uint8_t outer_field, const uint8_t *item,
                             size_t item_len, size_t count)
{
	struct buf inner = BUF_INIT;
	for (size_t i = 0; i < count; i++) {
		buf_append_byte(&inner, 0x0a); /* field 1, length-delimited */
		buf_append_byte(&inner, (uint8_t)item_len);
		buf_append(&inner, item, item_len);
	}
	test_codec_varint(out, (size_t)outer_field << 3 | 2);
	test_codec_varint(out, inner.len);
	buf_append(out, inner.data, inner.len);
	buf_free(&inner);
}

START_TEST(test_codec_budget_empty_results)
{
	/* ~1 MiB of empty TaskResult messages (2 bytes each): would unpack into tens of MiB. */
	struct buf b = BUF_INIT;
	test_codec_batch(&b, 6, NULL, 0, 512 * 1024);
	char err[256] = "";
	Shoal__Envelope *env = codec_unpack(b.data, b.len, 0, err, sizeof(err));
	ck_assert_ptr_null(env);
	ck_assert_uint_gt(strlen(err), 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_codec_budget_exceeded)
{
	/* Minimal valid WorkerInfo entries (worker_id 0, name "", slots 0): 8 wire bytes each
	 * expand to ~150 bytes, beyond 16x; the budget must stop it with its own message. */
	const uint8_t item[] = {0x08, 0x00, 0x12, 0x00, 0x28, 0x00};
	struct buf b = BUF_INIT;
	test_codec_batch(&b, 21, item, sizeof(item), 128 * 1024);
	char err[256] = "";
	Shoal__Envelope *env = codec_unpack(b.data, b.len, 0, err, sizeof(err));
	ck_assert_ptr_null(env);
	ck_assert_msg(strstr(err, "budget") != NULL, "%s", err);
	buf_free(&b);
}
END_TEST

START_TEST(test_codec_budget_allows_real_batches)
{
	/* Realistic results (ids, attempt, ok and a little data) fit the budget easily. */
	const uint8_t item[] = {0x08, 0x07, 0x10, 0x2a, 0x18, 0x01, 0x20,
	                        0x01, 0x2a, 0x04, '1',  '2',  '3',  '\n'};
	struct buf b = BUF_INIT;
	test_codec_batch(&b, 6, item, sizeof(item), 60000);
	char err[256] = "";
	Shoal__Envelope *env = codec_unpack(b.data, b.len, 0, err, sizeof(err));
	ck_assert_msg(env != NULL, "%s", err);
	ck_assert_uint_eq(env->result_batch->n_results, 60000);
	ck_assert_int_eq(codec_validate(env, err, sizeof(err)), 0);
	codec_free(env);
	buf_free(&b);
}
END_TEST

/* ---- validators ---- */

static void test_codec_expect_bad(const Shoal__Envelope *env, const char *reason)
{
	char err[256] = "";
	ck_assert_int_eq(codec_validate(env, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, reason) != NULL, "reason '%s' lacks '%s'", err, reason);
}

static void test_codec_expect_good(const Shoal__Envelope *env)
{
	char err[256] = "";
	ck_assert_msg(codec_validate(env, err, sizeof(err)) == 0, "%s", err);
}

static char *test_codec_str(size_t n)
{
	char *s = malloc(n + 1);
	memset(s, 'x', n);
	s[n] = '\0';
	return s;
}

START_TEST(test_validate_hello)
{
	Shoal__Hello h = SHOAL__HELLO__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	h.version = 1;
	h.role = SHOAL__ROLE__ROLE_CLIENT;
	test_codec_expect_good(&env); /* no name: fine */
	h.role = SHOAL__ROLE__ROLE_UNSPECIFIED;
	test_codec_expect_bad(&env, "role");
	h.role = (Shoal__Role)7;
	test_codec_expect_bad(&env, "role");
	h.role = SHOAL__ROLE__ROLE_WORKER;
	h.has_slots = 1;
	h.slots = 4096;
	test_codec_expect_good(&env);
	h.slots = 4097;
	test_codec_expect_bad(&env, "slots");
	h.slots = 0;
	test_codec_expect_bad(&env, "slots");
	h.slots = 1;
	char *big = test_codec_str(4097);
	h.name = big;
	test_codec_expect_bad(&env, "hello: name");
	h.name = NULL;
	h.host = big;
	test_codec_expect_bad(&env, "hello: host");
	free(big);
}
END_TEST

START_TEST(test_validate_welcome_refusal_heartbeat_failure)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Welcome w = SHOAL__WELCOME__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_WELCOME;
	env.welcome = &w;
	test_codec_expect_good(&env);
	w.has_heartbeat_ms = 1;
	w.heartbeat_ms = 0;
	test_codec_expect_bad(&env, "heartbeat_ms");
	w.heartbeat_ms = 1000;
	test_codec_expect_good(&env);

	char *huge = test_codec_str(64 * 1024 + 1);
	Shoal__Refusal r = SHOAL__REFUSAL__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_REFUSAL;
	env.refusal = &r;
	r.reason = "bad version";
	test_codec_expect_good(&env);
	r.reason = huge;
	test_codec_expect_bad(&env, "refusal: reason");

	Shoal__Heartbeat hb = SHOAL__HEARTBEAT__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HEARTBEAT;
	env.heartbeat = &hb;
	test_codec_expect_good(&env);
	hb.has_running = 1;
	hb.running = 2000000;
	test_codec_expect_bad(&env, "running");

	Shoal__Failure f = SHOAL__FAILURE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_FAILURE;
	env.failure = &f;
	f.reason = "no such job";
	test_codec_expect_good(&env);
	f.has_code = 1;
	f.code = 2;
	test_codec_expect_good(&env);
	f.code = 0;
	test_codec_expect_bad(&env, "exit code");
	f.code = 4;
	test_codec_expect_bad(&env, "exit code");
	f.has_code = 0;
	f.reason = huge;
	test_codec_expect_bad(&env, "failure: reason");
	free(huge);
}
END_TEST

/* A one-task batch around t. */
static void test_codec_wrap_task(Shoal__Envelope *env, Shoal__TaskBatch *tb, Shoal__Task **tp,
                                 Shoal__Task *t)
{
	tp[0] = t;
	shoal__task_batch__init(tb);
	tb->n_tasks = 1;
	tb->tasks = tp;
	shoal__envelope__init(env);
	env->msg_case = SHOAL__ENVELOPE__MSG_TASK_BATCH;
	env->task_batch = tb;
}

START_TEST(test_validate_task_batch)
{
	Shoal__Task t = SHOAL__TASK__INIT;
	Shoal__Task *tp[1];
	Shoal__TaskBatch tb;
	Shoal__Envelope env;
	test_codec_wrap_task(&env, &tb, tp, &t);
	Shoal__Range r = SHOAL__RANGE__INIT;
	r.lo = 0;
	r.hi = 10;
	t.task_id = 3;
	t.attempt = 1;
	t.op = "square";
	t.input_case = SHOAL__TASK__INPUT_RANGE;
	t.range = &r;
	test_codec_expect_good(&env);

	t.attempt = 0;
	test_codec_expect_bad(&env, "task_batch: task 3 has attempt 0");
	t.attempt = 1;

	r.lo = 11;
	test_codec_expect_bad(&env, "lo > hi");
	r.lo = 10;
	test_codec_expect_good(&env); /* empty range is fine */

	t.input_case = SHOAL__TASK__INPUT__NOT_SET;
	test_codec_expect_bad(&env, "no input");
	t.input_case = SHOAL__TASK__INPUT_RANGE;

	t.op = "";
	test_codec_expect_bad(&env, "empty op");
	char *op = test_codec_str(65);
	t.op = op;
	test_codec_expect_bad(&env, "op name longer");
	op[64] = '\0';
	test_codec_expect_good(&env);
	t.op = "grep";

	Shoal__Arg a = SHOAL__ARG__INIT;
	Shoal__Arg *args[] = {&a};
	t.n_args = 1;
	t.args = args;
	a.key = "";
	a.value = "v";
	test_codec_expect_bad(&env, "empty key");
	char *key = test_codec_str(257);
	a.key = key;
	test_codec_expect_bad(&env, "key is longer");
	key[256] = '\0';
	test_codec_expect_good(&env);
	a.key = "pattern";
	char *val = test_codec_str(64 * 1024 + 1);
	a.value = val;
	test_codec_expect_bad(&env, "value is longer");
	val[64 * 1024] = '\0';
	test_codec_expect_good(&env);
	a.value = "x";

	Shoal__PathSplit sp = SHOAL__PATH_SPLIT__INIT;
	t.input_case = SHOAL__TASK__INPUT_SPLIT;
	t.split = &sp;
	sp.path = "";
	test_codec_expect_bad(&env, "split path is empty");
	char *path = test_codec_str(4097);
	sp.path = path;
	test_codec_expect_bad(&env, "split path is longer");
	path[4096] = '\0';
	test_codec_expect_good(&env);
	sp.offset = UINT64_MAX - 5;
	sp.length = 10;
	test_codec_expect_bad(&env, "overflows");

	t.input_case = SHOAL__TASK__INPUT_DATA;
	test_codec_expect_good(&env);

	tb.n_tasks = 1000001;
	test_codec_expect_bad(&env, "tasks (at most");
	free(op);
	free(key);
	free(val);
	free(path);
}
END_TEST

START_TEST(test_validate_result_batch_cancel)
{
	Shoal__TaskResult r = SHOAL__TASK_RESULT__INIT;
	Shoal__TaskResult *rp[] = {&r};
	Shoal__ResultBatch rb = SHOAL__RESULT_BATCH__INIT;
	rb.n_results = 1;
	rb.results = rp;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_RESULT_BATCH;
	env.result_batch = &rb;
	r.task_id = 5;
	r.attempt = 1;
	r.ok = 1;
	test_codec_expect_good(&env);
	r.attempt = 0;
	test_codec_expect_bad(&env, "task 5 has attempt 0");
	r.attempt = 2;
	r.ok = 0;
	test_codec_expect_bad(&env, "without an error");
	char *huge = test_codec_str(64 * 1024 + 1);
	r.error = huge;
	test_codec_expect_bad(&env, "error is longer");
	r.error = "exit status 1";
	test_codec_expect_good(&env);
	rb.n_results = 1000001;
	test_codec_expect_bad(&env, "results (at most");
	free(huge);

	Shoal__TaskRef ref = SHOAL__TASK_REF__INIT;
	Shoal__TaskRef *refs[] = {&ref};
	Shoal__CancelTasks ct = SHOAL__CANCEL_TASKS__INIT;
	ct.n_tasks = 1;
	ct.tasks = refs;
	env.msg_case = SHOAL__ENVELOPE__MSG_CANCEL_TASKS;
	env.cancel_tasks = &ct;
	ref.attempt = 0;
	test_codec_expect_bad(&env, "attempt 0");
	ref.attempt = 1;
	test_codec_expect_good(&env);
	ct.n_tasks = 1000001;
	test_codec_expect_bad(&env, "tasks (at most");
}
END_TEST

START_TEST(test_validate_submit)
{
	Shoal__JobSpec s = SHOAL__JOB_SPEC__INIT;
	Shoal__Submit sub = SHOAL__SUBMIT__INIT;
	sub.spec = &s;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_SUBMIT;
	env.submit = &sub;
	Shoal__Range r = SHOAL__RANGE__INIT;
	r.lo = 0;
	r.hi = 10;
	s.op = "square";
	test_codec_expect_bad(&env, "no input");
	s.input_case = SHOAL__JOB_SPEC__INPUT_RANGE;
	s.range = &r;
	test_codec_expect_good(&env);
	r.lo = 20;
	test_codec_expect_bad(&env, "lo > hi");
	r.lo = 0;
	s.op = "";
	test_codec_expect_bad(&env, "exactly one of op, exec, plugin");
	/* A command instead of an op; a reduce stage needs a command. */
	s.exec = "wc -l";
	test_codec_expect_good(&env);
	s.reduce_exec = "sort";
	test_codec_expect_good(&env);
	s.exec = NULL;
	test_codec_expect_bad(&env, "exactly one of op, exec, plugin");
	s.op = "sum";
	test_codec_expect_bad(&env, "reduce_exec needs exec");
	s.reduce_exec = NULL;
	/* Shipped files: plain names and whole SHA-256 hashes only. */
	uint8_t sha[32] = {0};
	Shoal__FileRef f = SHOAL__FILE_REF__INIT;
	Shoal__FileRef *files[1] = {&f};
	f.name = "square.py";
	f.sha256.data = sha;
	f.sha256.len = 32;
	s.n_files = 1;
	s.files = files;
	test_codec_expect_good(&env);
	f.name = "../etc/passwd";
	test_codec_expect_bad(&env, "not a plain file name");
	f.name = "..";
	test_codec_expect_bad(&env, "not a plain file name");
	f.name = "x";
	f.sha256.len = 31;
	test_codec_expect_bad(&env, "31-byte hash");
	s.n_files = 0;
	s.files = NULL;
	s.has_partitions = 1;
	s.partitions = 10000000;
	test_codec_expect_good(&env);
	s.partitions = 10000001;
	test_codec_expect_bad(&env, "partitions");
	s.has_partitions = 0;
	s.has_strategy = 1;
	s.strategy = (Shoal__Strategy)9;
	test_codec_expect_bad(&env, "strategy");
	s.strategy = SHOAL__STRATEGY__STRATEGY_DYNAMIC;
	test_codec_expect_good(&env);
	s.has_retries = 1;
	s.retries = 1000000;
	test_codec_expect_bad(&env, "retries");
	s.has_retries = 0;

	s.input_case = SHOAL__JOB_SPEC__INPUT_PATH;
	s.path = "";
	test_codec_expect_bad(&env, "input path is empty");
	char *path = test_codec_str(4097);
	s.path = path;
	test_codec_expect_bad(&env, "input path is longer");
	s.path = "/shared/in.txt";
	test_codec_expect_good(&env);
	s.input_case = SHOAL__JOB_SPEC__INPUT_UPLOAD;
	s.upload = 0;
	test_codec_expect_bad(&env, "upload");
	s.upload = 1;
	test_codec_expect_good(&env);
	s.name = path;
	test_codec_expect_bad(&env, "submit: name");
	s.name = "nightly";

	Shoal__Arg a = SHOAL__ARG__INIT;
	Shoal__Arg *args[] = {&a};
	s.n_args = 1;
	s.args = args;
	a.key = "";
	a.value = "";
	test_codec_expect_bad(&env, "submit: arg 0 has an empty key");
	a.key = "k";
	test_codec_expect_good(&env);
	sub.spec = NULL;
	test_codec_expect_bad(&env, "missing spec");
	free(path);
}
END_TEST

START_TEST(test_validate_lists)
{
	Shoal__JobInfo j = SHOAL__JOB_INFO__INIT;
	j.op = "sum";
	j.state = SHOAL__JOB_STATE__JOB_RUNNING;
	Shoal__JobUpdate ju = SHOAL__JOB_UPDATE__INIT;
	ju.job = &j;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_JOB_UPDATE;
	env.job_update = &ju;
	test_codec_expect_good(&env);
	j.state = (Shoal__JobState)42;
	test_codec_expect_bad(&env, "unknown state");
	j.state = SHOAL__JOB_STATE__JOB_FAILED;
	char *huge = test_codec_str(64 * 1024 + 1);
	j.error = huge;
	test_codec_expect_bad(&env, "job error");
	j.error = "task 3 failed";
	test_codec_expect_good(&env);
	ju.job = NULL;
	test_codec_expect_bad(&env, "missing job");

	Shoal__JobInfo *jp[] = {&j};
	Shoal__JobList jl = SHOAL__JOB_LIST__INIT;
	jl.n_jobs = 1;
	jl.jobs = jp;
	env.msg_case = SHOAL__ENVELOPE__MSG_JOB_LIST;
	env.job_list = &jl;
	test_codec_expect_good(&env);
	j.name = huge;
	test_codec_expect_bad(&env, "job_list: job name");
	j.name = NULL;
	jl.n_jobs = 1000001;
	test_codec_expect_bad(&env, "jobs (at most");

	Shoal__WorkerInfo w = SHOAL__WORKER_INFO__INIT;
	w.name = "w";
	w.slots = 4;
	Shoal__WorkerInfo *wp[] = {&w};
	Shoal__WorkerList wl = SHOAL__WORKER_LIST__INIT;
	wl.n_workers = 1;
	wl.workers = wp;
	env.msg_case = SHOAL__ENVELOPE__MSG_WORKER_LIST;
	env.worker_list = &wl;
	test_codec_expect_good(&env);
	w.slots = 5000;
	test_codec_expect_bad(&env, "slots");
	w.slots = 1;
	w.address = huge;
	test_codec_expect_bad(&env, "worker_list: address");
	free(huge);
}
END_TEST

START_TEST(test_validate_trivial_kinds)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Watch w = SHOAL__WATCH__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_WATCH;
	env.watch = &w;
	test_codec_expect_good(&env);
	Shoal__UploadChunk uc = SHOAL__UPLOAD_CHUNK__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_UPLOAD_CHUNK;
	env.upload_chunk = &uc;
	test_codec_expect_good(&env);
	env.upload_chunk = NULL;
	test_codec_expect_bad(&env, "missing body");
	env.msg_case = (Shoal__Envelope__MsgCase)77;
	test_codec_expect_bad(&env, "unknown or missing message kind");
}
END_TEST

/* A job listing of sparse records decodes to ~25x its size: more than a daemon's budget, within
 * the client's. */
START_TEST(test_budget_for_listings)
{
	enum { N = 4000 };
	Shoal__JobInfo *ji = calloc(N, sizeof(*ji));
	Shoal__JobInfo **pp = calloc(N, sizeof(*pp));
	for (int i = 0; i < N; i++) {
		shoal__job_info__init(&ji[i]);
		ji[i].job_id = (uint64_t)i + 1;
		ji[i].state = SHOAL__JOB_STATE__JOB_SUCCEEDED;
		ji[i].op = "sum";
		pp[i] = &ji[i];
	}
	Shoal__JobList jl = SHOAL__JOB_LIST__INIT;
	jl.n_jobs = N;
	jl.jobs = pp;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_JOB_LIST;
	env.job_list = &jl;
	size_t len = shoal__envelope__get_packed_size(&env);
	uint8_t *buf = malloc(len);
	shoal__envelope__pack(&env, buf);
	char err[256];
	ck_assert_ptr_null(codec_unpack(buf, len, CODEC_BUDGET_DEFAULT, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "memory budget"));
	Shoal__Envelope *back = codec_unpack(buf, len, CODEC_BUDGET_LISTINGS, err, sizeof(err));
	ck_assert_msg(back != NULL, "%s", err);
	ck_assert_uint_eq(back->job_list->n_jobs, N);
	codec_free(back);
	free(buf);
	free(pp);
	free(ji);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_codec_hello_round_trip);
	tcase_add_test(tc, test_codec_task_batch_round_trip);
	tcase_add_test(tc, test_codec_result_and_submit_round_trip);
	tcase_add_test(tc, test_codec_kind_names);
	tcase_add_test(tc, test_codec_garbage);
	tcase_add_test(tc, test_codec_truncated);
	tcase_add_test(tc, test_codec_no_kind);
	tcase_add_test(tc, test_codec_unknown_fields_ignored);
	tcase_add_test(tc, test_codec_budget_empty_results);
	tcase_add_test(tc, test_codec_budget_exceeded);
	tcase_add_test(tc, test_codec_budget_allows_real_batches);
	suite_add_tcase(s, tc);
	tc = tcase_create("validate");
	tcase_add_test(tc, test_validate_hello);
	tcase_add_test(tc, test_validate_welcome_refusal_heartbeat_failure);
	tcase_add_test(tc, test_validate_task_batch);
	tcase_add_test(tc, test_validate_result_batch_cancel);
	tcase_add_test(tc, test_validate_submit);
	tcase_add_test(tc, test_validate_lists);
	tcase_add_test(tc, test_validate_trivial_kinds);
	tcase_add_test(tc, test_budget_for_listings);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(codec_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
