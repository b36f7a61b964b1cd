/* codec.c: Envelope <-> frame bytes, the unpack budget and the per-kind validators. */
#include "codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "frame.h"
#include "util.h"

/* protobuf-c turns a 2-byte empty submessage into a struct of ~100 bytes; allowing 16x the
 * frame plus some slack covers real messages and stops amplification attacks. */
#define CODEC_BUDGET_SLACK (64u * 1024u)

#define CODEC_STR_MAX          4096u
#define CODEC_TEXT_MAX         (64u * 1024u) /* error and refusal texts */
#define CODEC_OP_MAX           64u
#define CODEC_ARG_KEY_MAX      256u
#define CODEC_ARG_VALUE_MAX    (64u * 1024u)
#define CODEC_ARGS_MAX         1024u
#define CODEC_PATH_MAX         4096u
#define CODEC_SLOTS_MAX        4096u
#define CODEC_BATCH_MAX        1000000u
#define CODEC_PARTITIONS_MAX   10000000u
#define CODEC_RETRIES_MAX      1000u
#define CODEC_HEARTBEAT_MS_MAX 3600000u
#define CODEC_EXEC_MAX         (64u * 1024u)
#define CODEC_FILES_MAX        64u
#define CODEC_FILE_NAME_MAX    255u
#define CODEC_REDUCERS_MAX     10000u
#define CODEC_LOCK_NAME_MAX    256u
#define CODEC_LOCK_TTL_MIN     100u
#define CODEC_LOCK_TTL_MAX     86400000u

struct codec_budget {
	size_t left;
	size_t limit;
	int exceeded;
};

static void *codec_budget_alloc(void *data, size_t size)
{
	struct codec_budget *b = data;
	/* Frees are not credited back: the budget bounds the total work of one unpack. */
	if (size > b->left) {
		b->exceeded = 1;
		return NULL;
	}
	b->left -= size;
	return malloc(size ? size : 1);
}

static void codec_budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

Shoal__Envelope *codec_unpack(const uint8_t *payload, size_t len, uint32_t budget_factor, char *err,
                              size_t errlen)
{
	struct codec_budget budget;
	size_t factor = budget_factor ? budget_factor : CODEC_BUDGET_DEFAULT;
	budget.limit = len > (SIZE_MAX - CODEC_BUDGET_SLACK) / factor
	                   ? SIZE_MAX
	                   : len * factor + CODEC_BUDGET_SLACK;
	budget.left = budget.limit;
	budget.exceeded = 0;
	ProtobufCAllocator alloc = {
	    .alloc = codec_budget_alloc,
	    .free = codec_budget_free,
	    .allocator_data = &budget,
	};

	Shoal__Envelope *env = shoal__envelope__unpack(&alloc, len, payload);
	if (env == NULL) {
		if (budget.exceeded)
			errorf(err, errlen,
			       "message of %zu bytes expands beyond its memory budget of %zu "
			       "bytes",
			       len, budget.limit);
		else
			errorf(err, errlen, "malformed message (%zu bytes do not unpack)", len);
		return NULL;
	}
	if (env->msg_case == SHOAL__ENVELOPE__MSG__NOT_SET) {
		/* Both allocators are malloc/free, so the default one can free it. */
		shoal__envelope__free_unpacked(env, NULL);
		errorf(err, errlen, "unknown or missing message kind");
		return NULL;
	}
	return env;
}

void codec_free(Shoal__Envelope *env)
{
	if (env != NULL)
		shoal__envelope__free_unpacked(env, NULL);
}

const char *codec_kind_name(const Shoal__Envelope *env)
{
	if (env == NULL || env->msg_case == SHOAL__ENVELOPE__MSG__NOT_SET)
		return "none";
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
	    &shoal__envelope__descriptor, (unsigned)env->msg_case);
	return f != NULL ? f->name : "unknown";
}

size_t codec_frame_size(const Shoal__Envelope *env)
{
	return FRAME_HEADER_SIZE + shoal__envelope__get_packed_size(env);
}

void codec_pack_frame(const Shoal__Envelope *env, uint8_t *out)
{
	size_t n = shoal__envelope__pack(env, out + FRAME_HEADER_SIZE);
	/* Callers bound the size by max_frame (<= 4 GiB) before packing. */
	frame_put_header(out, (uint32_t)n);
}

/* ---- validators: one per message kind; each returns 0 or fail(...) ---- */

/* strnlen with a bound so a huge string costs at most max+1 bytes of scanning. */
static size_t codec_len(const char *s, size_t max)
{
	return s == NULL ? 0 : strnlen(s, max + 1);
}

static int codec_check_str(const char *what, const char *s, size_t max, int required, char *err,
                           size_t errlen)
{
	size_t n = codec_len(s, max);
	if (required && n == 0)
		return errorf(err, errlen, "%s is empty", what);
	if (n > max)
		return errorf(err, errlen, "%s is longer than %zu bytes", what, max);
	return 0;
}

static int codec_check_args(const char *kind, Shoal__Arg *const *args, size_t n, char *err,
                            size_t errlen)
{
	if (n > CODEC_ARGS_MAX)
		return errorf(err, errlen, "%s: %zu args (at most %u)", kind, n, CODEC_ARGS_MAX);
	for (size_t i = 0; i < n; i++) {
		const Shoal__Arg *a = args[i];
		if (a == NULL || codec_len(a->key, 0) == 0)
			return errorf(err, errlen, "%s: arg %zu has an empty key", kind, i);
		if (codec_len(a->key, CODEC_ARG_KEY_MAX) > CODEC_ARG_KEY_MAX)
			return errorf(err, errlen, "%s: arg %zu key is longer than %u bytes", kind,
			              i, CODEC_ARG_KEY_MAX);
		if (codec_len(a->value, CODEC_ARG_VALUE_MAX) > CODEC_ARG_VALUE_MAX)
			return errorf(err, errlen, "%s: arg '%s' value is longer than %u bytes",
			              kind, a->key, CODEC_ARG_VALUE_MAX);
	}
	return 0;
}

static int codec_check_op(const char *kind, const char *op, char *err, size_t errlen)
{
	size_t n = codec_len(op, CODEC_OP_MAX);
	if (n == 0)
		return errorf(err, errlen, "%s: empty op name", kind);
	if (n > CODEC_OP_MAX)
		return errorf(err, errlen, "%s: op name longer than %u bytes", kind, CODEC_OP_MAX);
	return 0;
}

static int codec_check_range(const char *kind, const Shoal__Range *r, char *err, size_t errlen)
{
	if (r == NULL)
		return errorf(err, errlen, "%s: missing range", kind);
	if (r->lo > r->hi)
		return errorf(err, errlen, "%s: range %lld:%lld has lo > hi", kind,
		              (long long)r->lo, (long long)r->hi);
	return 0;
}

static int codec_check_strategy(const char *kind, Shoal__Strategy s, char *err, size_t errlen)
{
	switch (s) {
	case SHOAL__STRATEGY__STRATEGY_DEFAULT:
	case SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN:
	case SHOAL__STRATEGY__STRATEGY_DYNAMIC:
	case SHOAL__STRATEGY__STRATEGY_LEAST_LOADED:
		return 0;
	default:
		return errorf(err, errlen, "%s: unknown strategy %d", kind, (int)s);
	}
}

/* A shipped file lands in a task's working directory under its name, so the name must be a
 * plain file name; the hash is the cache key and must be a whole SHA-256. */
static int codec_check_fileref(const char *kind, const Shoal__FileRef *f, char *err, size_t errlen)
{
	if (f == NULL)
		return errorf(err, errlen, "%s: missing file", kind);
	size_t n = codec_len(f->name, CODEC_FILE_NAME_MAX);
	if (n == 0 || n > CODEC_FILE_NAME_MAX || strchr(f->name, '/') || !strcmp(f->name, ".") ||
	    !strcmp(f->name, ".."))
		return errorf(err, errlen, "%s: file name '%.64s' is not a plain file name", kind,
		              f->name ? f->name : "");
	if (f->sha256.len != 32)
		return errorf(err, errlen, "%s: file %s has a %zu-byte hash (SHA-256 is 32)", kind,
		              f->name, f->sha256.len);
	return 0;
}

static int codec_check_files(const char *kind, Shoal__FileRef *const *files, size_t n,
                             const Shoal__FileRef *broadcast, const Shoal__FileRef *plugin,
                             char *err, size_t errlen)
{
	if (n > CODEC_FILES_MAX)
		return errorf(err, errlen, "%s: %zu files (at most %u)", kind, n, CODEC_FILES_MAX);
	for (size_t i = 0; i < n; i++)
		if (codec_check_fileref(kind, files[i], err, errlen) < 0)
			return -1;
	if (broadcast && codec_check_fileref(kind, broadcast, err, errlen) < 0)
		return -1;
	if (plugin && codec_check_fileref(kind, plugin, err, errlen) < 0)
		return -1;
	return 0;
}

static int codec_check_exec(const char *kind, const char *cmd, char *err, size_t errlen)
{
	size_t n = codec_len(cmd, CODEC_EXEC_MAX);
	if (n == 0 || n > CODEC_EXEC_MAX)
		return errorf(err, errlen, "%s: exec command is empty or longer than %u bytes",
		              kind, CODEC_EXEC_MAX);
	return 0;
}

static int codec_check_sha(const char *kind, ProtobufCBinaryData sha, char *err, size_t errlen)
{
	if (sha.len != 32)
		return errorf(err, errlen, "%s: %zu-byte hash (SHA-256 is 32)", kind, sha.len);
	return 0;
}

static int codec_check_task(size_t i, const Shoal__Task *t, char *err, size_t errlen)
{
	char what[64];
	if (t == NULL)
		return errorf(err, errlen, "task_batch: task %zu missing", i);
	if (t->attempt < 1)
		return errorf(err, errlen, "task_batch: task %u has attempt 0", t->task_id);
	if (t->exec) {
		if (codec_check_exec("task_batch", t->exec, err, errlen) < 0)
			return -1;
	} else if (!t->plugin && codec_check_op("task_batch", t->op, err, errlen) < 0) {
		return -1;
	}
	if (codec_check_files("task_batch", t->files, t->n_files, t->broadcast, t->plugin, err,
	                      errlen) < 0)
		return -1;
	if (t->has_reducers && (t->reducers < 1 || t->reducers > CODEC_REDUCERS_MAX))
		return errorf(err, errlen, "task_batch: task %u has %u reducers", t->task_id,
		              t->reducers);
	if (codec_check_args("task_batch", t->args, t->n_args, err, errlen) < 0)
		return -1;
	switch (t->input_case) {
	case SHOAL__TASK__INPUT_RANGE:
		return codec_check_range("task_batch", t->range, err, errlen);
	case SHOAL__TASK__INPUT_DATA:
		return 0;
	case SHOAL__TASK__INPUT_SPLIT:
		if (t->split == NULL)
			return errorf(err, errlen, "task_batch: task %u missing split", t->task_id);
		snprintf(what, sizeof(what), "task_batch: task %u split path", t->task_id);
		if (codec_check_str(what, t->split->path, CODEC_PATH_MAX, 1, err, errlen) < 0)
			return -1;
		if (t->split->length > UINT64_MAX - t->split->offset)
			return errorf(err, errlen, "task_batch: task %u split overflows",
			              t->task_id);
		return 0;
	default:
		return errorf(err, errlen, "task_batch: task %u has no input", t->task_id);
	}
}

static int codec_check_job_info(const char *kind, const Shoal__JobInfo *j, char *err, size_t errlen)
{
	char what[64];
	if (j == NULL)
		return errorf(err, errlen, "%s: missing job", kind);
	if ((int)j->state < SHOAL__JOB_STATE__JOB_UNKNOWN ||
	    (int)j->state > SHOAL__JOB_STATE__JOB_CANCELLED)
		return errorf(err, errlen, "%s: job %llu has unknown state %d", kind,
		              (unsigned long long)j->job_id, (int)j->state);
	snprintf(what, sizeof(what), "%s: job op", kind);
	if (codec_check_str(what, j->op, CODEC_OP_MAX, 0, err, errlen) < 0)
		return -1;
	snprintf(what, sizeof(what), "%s: job name", kind);
	if (codec_check_str(what, j->name, CODEC_STR_MAX, 0, err, errlen) < 0)
		return -1;
	snprintf(what, sizeof(what), "%s: job error", kind);
	if (codec_check_str(what, j->error, CODEC_TEXT_MAX, 0, err, errlen) < 0)
		return -1;
	if (j->has_strategy && codec_check_strategy(kind, j->strategy, err, errlen) < 0)
		return -1;
	return 0;
}

static int codec_validate_hello(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__Hello *m = env->hello;
	if (m->role != SHOAL__ROLE__ROLE_WORKER && m->role != SHOAL__ROLE__ROLE_CLIENT)
		return errorf(err, errlen, "hello: role %d is neither worker nor client",
		              (int)m->role);
	/* name may be absent (the master picks one); when given it must be sane. */
	if (codec_check_str("hello: name", m->name, CODEC_STR_MAX, 0, err, errlen) < 0)
		return -1;
	if (codec_check_str("hello: host", m->host, CODEC_STR_MAX, 0, err, errlen) < 0)
		return -1;
	if (codec_check_str("hello: advertise", m->advertise, CODEC_STR_MAX, 0, err, errlen) < 0)
		return -1;
	if (m->has_slots && (m->slots < 1 || m->slots > CODEC_SLOTS_MAX))
		return errorf(err, errlen, "hello: slots %u out of range 1-%u", m->slots,
		              CODEC_SLOTS_MAX);
	if (m->has_nonce && m->nonce.len != AUTH_NONCE_LEN)
		return errorf(err, errlen, "hello: nonce of %zu bytes, expected %u", m->nonce.len,
		              AUTH_NONCE_LEN);
	return 0;
}

static int codec_validate_challenge(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__Challenge *m = env->challenge;
	if (m->nonce.len != AUTH_NONCE_LEN)
		return errorf(err, errlen, "challenge: nonce of %zu bytes, expected %u",
		              m->nonce.len, AUTH_NONCE_LEN);
	if (m->proof.len != AUTH_MAC_LEN)
		return errorf(err, errlen, "challenge: proof of %zu bytes, expected %u",
		              m->proof.len, AUTH_MAC_LEN);
	return 0;
}

static int codec_validate_proof(const Shoal__Envelope *env, char *err, size_t errlen)
{
	if (env->proof->proof.len != AUTH_MAC_LEN)
		return errorf(err, errlen, "proof: %zu bytes, expected %u", env->proof->proof.len,
		              AUTH_MAC_LEN);
	return 0;
}

static int codec_validate_welcome(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__Welcome *m = env->welcome;
	/* The worker arms a timer with this period; 0 would spin. */
	if (m->has_heartbeat_ms &&
	    (m->heartbeat_ms < 1 || m->heartbeat_ms > CODEC_HEARTBEAT_MS_MAX))
		return errorf(err, errlen, "welcome: heartbeat_ms %u out of range 1-%u",
		              m->heartbeat_ms, CODEC_HEARTBEAT_MS_MAX);
	/* The worker sizes its result batches by this; a tiny limit would fail every task. */
	if (m->has_max_frame && m->max_frame < 4096)
		return errorf(err, errlen, "welcome: max_frame %u is below 4096", m->max_frame);
	/* The worker gives up on a master that leaves its data unacknowledged this long. */
	if (m->has_heartbeat_timeout_ms && m->heartbeat_timeout_ms < 1)
		return errorf(err, errlen, "welcome: heartbeat_timeout_ms is 0");
	return 0;
}

static int codec_validate_refusal(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_str("refusal: reason", env->refusal->reason, CODEC_TEXT_MAX, 0, err,
	                       errlen);
}

static int codec_validate_heartbeat(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__Heartbeat *m = env->heartbeat;
	if (m->has_running && m->running > CODEC_BATCH_MAX)
		return errorf(err, errlen, "heartbeat: running %u is implausible", m->running);
	return 0;
}

static int codec_validate_task_batch(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__TaskBatch *m = env->task_batch;
	if (m->n_tasks > CODEC_BATCH_MAX)
		return errorf(err, errlen, "task_batch: %zu tasks (at most %u)", m->n_tasks,
		              CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_tasks; i++) {
		if (codec_check_task(i, m->tasks[i], err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int codec_validate_result_batch(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__ResultBatch *m = env->result_batch;
	if (m->n_results > CODEC_BATCH_MAX)
		return errorf(err, errlen, "result_batch: %zu results (at most %u)", m->n_results,
		              CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_results; i++) {
		const Shoal__TaskResult *r = m->results[i];
		if (r == NULL)
			return errorf(err, errlen, "result_batch: result %zu missing", i);
		if (r->attempt < 1)
			return errorf(err, errlen, "result_batch: task %u has attempt 0",
			              r->task_id);
		if (codec_len(r->error, CODEC_TEXT_MAX) > CODEC_TEXT_MAX)
			return errorf(err, errlen,
			              "result_batch: task %u error is longer than %u bytes",
			              r->task_id, CODEC_TEXT_MAX);
		/* A failure without a reason would fail a job with nothing to show the user. */
		if (!r->ok && codec_len(r->error, 1) == 0)
			return errorf(err, errlen, "result_batch: task %u failed without an error",
			              r->task_id);
		if (r->n_buckets > CODEC_REDUCERS_MAX)
			return errorf(err, errlen, "result_batch: task %u has %zu buckets",
			              r->task_id, r->n_buckets);
	}
	if (m->n_started > CODEC_BATCH_MAX)
		return errorf(err, errlen, "result_batch: %zu started attempts (at most %u)",
		              m->n_started, CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_started; i++) {
		if (m->started[i] == NULL)
			return errorf(err, errlen, "result_batch: started attempt %zu missing", i);
		if (m->started[i]->attempt < 1)
			return errorf(err, errlen, "result_batch: started task %u has attempt 0",
			              m->started[i]->task_id);
	}
	return 0;
}

static int codec_validate_cancel_tasks(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__CancelTasks *m = env->cancel_tasks;
	if (m->n_tasks > CODEC_BATCH_MAX)
		return errorf(err, errlen, "cancel_tasks: %zu tasks (at most %u)", m->n_tasks,
		              CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_tasks; i++) {
		if (m->tasks[i] == NULL)
			return errorf(err, errlen, "cancel_tasks: task %zu missing", i);
		if (m->tasks[i]->attempt < 1)
			return errorf(err, errlen, "cancel_tasks: task %u has attempt 0",
			              m->tasks[i]->task_id);
	}
	return 0;
}

static int codec_validate_draining(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__Draining *m = env->draining;
	if (m->n_running > CODEC_BATCH_MAX)
		return errorf(err, errlen, "draining: %zu tasks (at most %u)", m->n_running,
		              CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_running; i++) {
		if (m->running[i] == NULL)
			return errorf(err, errlen, "draining: task %zu missing", i);
		if (m->running[i]->attempt < 1)
			return errorf(err, errlen, "draining: task %u has attempt 0",
			              m->running[i]->task_id);
	}
	return 0;
}

static int codec_validate_submit(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__JobSpec *s = env->submit->spec;
	if (s == NULL)
		return errorf(err, errlen, "submit: missing spec");
	/* Exactly one kind of work: a built-in op, a command, or a plugin. */
	int kinds = (codec_len(s->op, 1) > 0) + (s->exec != NULL) + (s->plugin != NULL);
	if (kinds != 1)
		return errorf(err, errlen, "submit: a job needs exactly one of op, exec, plugin");
	if (codec_len(s->op, 1) > 0 && codec_check_op("submit", s->op, err, errlen) < 0)
		return -1;
	if (s->exec && codec_check_exec("submit", s->exec, err, errlen) < 0)
		return -1;
	if (s->reduce_exec) {
		if (!s->exec)
			return errorf(err, errlen, "submit: reduce_exec needs exec");
		if (codec_check_exec("submit", s->reduce_exec, err, errlen) < 0)
			return -1;
	}
	if (s->has_reducers && (s->reducers < 1 || s->reducers > CODEC_REDUCERS_MAX))
		return errorf(err, errlen, "submit: %u reducers (1 to %u)", s->reducers,
		              CODEC_REDUCERS_MAX);
	if (codec_check_files("submit", s->files, s->n_files, s->broadcast, s->plugin, err,
	                      errlen) < 0)
		return -1;
	if (codec_check_args("submit", s->args, s->n_args, err, errlen) < 0)
		return -1;
	switch (s->input_case) {
	case SHOAL__JOB_SPEC__INPUT_RANGE:
		if (codec_check_range("submit", s->range, err, errlen) < 0)
			return -1;
		break;
	case SHOAL__JOB_SPEC__INPUT_UPLOAD:
		if (!s->upload)
			return errorf(err, errlen, "submit: upload input set to false");
		break;
	case SHOAL__JOB_SPEC__INPUT_JOB:
		if (s->job == 0)
			return errorf(err, errlen, "submit: input job 0 does not exist");
		break;
	case SHOAL__JOB_SPEC__INPUT_PATH:
		if (codec_check_str("submit: input path", s->path, CODEC_PATH_MAX, 1, err, errlen) <
		    0)
			return -1;
		break;
	default:
		return errorf(err, errlen, "submit: spec has no input");
	}
	if (s->has_partitions && s->partitions > CODEC_PARTITIONS_MAX)
		return errorf(err, errlen, "submit: %u partitions (at most %u)", s->partitions,
		              CODEC_PARTITIONS_MAX);
	if (s->has_strategy && codec_check_strategy("submit", s->strategy, err, errlen) < 0)
		return -1;
	if (s->has_retries && s->retries > CODEC_RETRIES_MAX)
		return errorf(err, errlen, "submit: %u retries (at most %u)", s->retries,
		              CODEC_RETRIES_MAX);
	return codec_check_str("submit: name", s->name, CODEC_STR_MAX, 0, err, errlen);
}

static int codec_validate_job_update(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_job_info("job_update", env->job_update->job, err, errlen);
}

static int codec_validate_job_list(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__JobList *m = env->job_list;
	if (m->n_jobs > CODEC_BATCH_MAX)
		return errorf(err, errlen, "job_list: %zu jobs (at most %u)", m->n_jobs,
		              CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_jobs; i++) {
		if (codec_check_job_info("job_list", m->jobs[i], err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int codec_validate_worker_list(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__WorkerList *m = env->worker_list;
	if (m->n_workers > CODEC_BATCH_MAX)
		return errorf(err, errlen, "worker_list: %zu workers (at most %u)", m->n_workers,
		              CODEC_BATCH_MAX);
	for (size_t i = 0; i < m->n_workers; i++) {
		const Shoal__WorkerInfo *w = m->workers[i];
		if (w == NULL)
			return errorf(err, errlen, "worker_list: worker %zu missing", i);
		if (codec_check_str("worker_list: name", w->name, CODEC_STR_MAX, 0, err, errlen) <
		        0 ||
		    codec_check_str("worker_list: host", w->host, CODEC_STR_MAX, 0, err, errlen) <
		        0 ||
		    codec_check_str("worker_list: address", w->address, CODEC_STR_MAX, 0, err,
		                    errlen) < 0 ||
		    codec_check_str("worker_list: advertise", w->advertise, CODEC_STR_MAX, 0, err,
		                    errlen) < 0)
			return -1;
		if (w->slots > CODEC_SLOTS_MAX)
			return errorf(err, errlen, "worker_list: worker %llu has %u slots",
			              (unsigned long long)w->worker_id, w->slots);
	}
	return 0;
}

static int codec_validate_failure(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__Failure *m = env->failure;
	if (codec_check_str("failure: reason", m->reason, CODEC_TEXT_MAX, 0, err, errlen) < 0)
		return -1;
	/* The client exits with this code: only 1 (job), 2 (usage) or 3 (master) make sense. */
	if (m->has_code && (m->code < 1 || m->code > 3))
		return errorf(err, errlen, "failure: exit code %u out of range 1-3", m->code);
	return 0;
}

static int codec_validate_task_output(const Shoal__Envelope *env, char *err, size_t errlen)
{
	if (env->task_output->attempt < 1)
		return errorf(err, errlen, "task_output: task %u has attempt 0",
		              env->task_output->task_id);
	return 0;
}

static int codec_validate_blob_offer(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_fileref("blob_offer", env->blob_offer->file, err, errlen);
}

static int codec_validate_blob_ack(const Shoal__Envelope *env, char *err, size_t errlen)
{
	if (codec_check_sha("blob_ack", env->blob_ack->sha256, err, errlen) < 0)
		return -1;
	return codec_check_str("blob_ack: error", env->blob_ack->error, CODEC_TEXT_MAX, 0, err,
	                       errlen);
}

static int codec_validate_blob_data(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_sha("blob_data", env->blob_data->sha256, err, errlen);
}

static int codec_validate_blob_request(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_sha("blob_request", env->blob_request->sha256, err, errlen);
}

/* Lock names are shown in logs and compared as strings: short, printable. */
static int codec_check_lock_name(const char *kind, const char *name, char *err, size_t errlen)
{
	size_t n = codec_len(name, CODEC_LOCK_NAME_MAX);
	if (n == 0 || n > CODEC_LOCK_NAME_MAX)
		return errorf(err, errlen, "%s: lock name is empty or longer than %u bytes", kind,
		              CODEC_LOCK_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return errorf(err, errlen, "%s: lock name has a control character", kind);
	return 0;
}

static int codec_validate_lock_acquire(const Shoal__Envelope *env, char *err, size_t errlen)
{
	const Shoal__LockAcquire *m = env->lock_acquire;
	if (m->ttl_ms < CODEC_LOCK_TTL_MIN || m->ttl_ms > CODEC_LOCK_TTL_MAX)
		return errorf(err, errlen, "lock_acquire: ttl %u ms out of range %u-%u", m->ttl_ms,
		              CODEC_LOCK_TTL_MIN, CODEC_LOCK_TTL_MAX);
	return codec_check_lock_name("lock_acquire", m->name, err, errlen);
}

static int codec_validate_lock_granted(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_lock_name("lock_granted", env->lock_granted->name, err, errlen);
}

static int codec_validate_lock_renew(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_lock_name("lock_renew", env->lock_renew->name, err, errlen);
}

static int codec_validate_lock_release(const Shoal__Envelope *env, char *err, size_t errlen)
{
	return codec_check_lock_name("lock_release", env->lock_release->name, err, errlen);
}

static int codec_validate_lock_lost(const Shoal__Envelope *env, char *err, size_t errlen)
{
	if (codec_check_lock_name("lock_lost", env->lock_lost->name, err, errlen) < 0)
		return -1;
	return codec_check_str("lock_lost: reason", env->lock_lost->reason, CODEC_TEXT_MAX, 0, err,
	                       errlen);
}

/* Kinds whose every value is acceptable (ids, offsets, byte payloads bounded by the frame). */
static int codec_validate_any(const Shoal__Envelope *env, char *err, size_t errlen)
{
	(void)env;
	(void)err;
	(void)errlen;
	return 0;
}

typedef int codec_validator(const Shoal__Envelope *env, char *err, size_t errlen);

static codec_validator *const codec_validators[] = {
    [SHOAL__ENVELOPE__MSG_HELLO] = codec_validate_hello,
    [SHOAL__ENVELOPE__MSG_WELCOME] = codec_validate_welcome,
    [SHOAL__ENVELOPE__MSG_REFUSAL] = codec_validate_refusal,
    [SHOAL__ENVELOPE__MSG_HEARTBEAT] = codec_validate_heartbeat,
    [SHOAL__ENVELOPE__MSG_TASK_BATCH] = codec_validate_task_batch,
    [SHOAL__ENVELOPE__MSG_RESULT_BATCH] = codec_validate_result_batch,
    [SHOAL__ENVELOPE__MSG_CANCEL_TASKS] = codec_validate_cancel_tasks,
    [SHOAL__ENVELOPE__MSG_SUBMIT] = codec_validate_submit,
    [SHOAL__ENVELOPE__MSG_SUBMITTED] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_UPLOAD_CHUNK] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_UPLOAD_ACK] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_WATCH] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_JOB_UPDATE] = codec_validate_job_update,
    [SHOAL__ENVELOPE__MSG_FETCH_RESULT] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_RESULT_CHUNK] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_RESULT_ACK] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_CANCEL] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_LIST_JOBS] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_JOB_LIST] = codec_validate_job_list,
    [SHOAL__ENVELOPE__MSG_LIST_WORKERS] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_WORKER_LIST] = codec_validate_worker_list,
    [SHOAL__ENVELOPE__MSG_FAILURE] = codec_validate_failure,
    [SHOAL__ENVELOPE__MSG_STATUS_REQUEST] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_TASK_OUTPUT] = codec_validate_task_output,
    [SHOAL__ENVELOPE__MSG_BLOB_OFFER] = codec_validate_blob_offer,
    [SHOAL__ENVELOPE__MSG_BLOB_ACK] = codec_validate_blob_ack,
    [SHOAL__ENVELOPE__MSG_BLOB_DATA] = codec_validate_blob_data,
    [SHOAL__ENVELOPE__MSG_BLOB_REQUEST] = codec_validate_blob_request,
    [SHOAL__ENVELOPE__MSG_LOCK_ACQUIRE] = codec_validate_lock_acquire,
    [SHOAL__ENVELOPE__MSG_LOCK_GRANTED] = codec_validate_lock_granted,
    [SHOAL__ENVELOPE__MSG_LOCK_RENEW] = codec_validate_lock_renew,
    [SHOAL__ENVELOPE__MSG_LOCK_RELEASE] = codec_validate_lock_release,
    [SHOAL__ENVELOPE__MSG_LOCK_LOST] = codec_validate_lock_lost,
    [SHOAL__ENVELOPE__MSG_CHALLENGE] = codec_validate_challenge,
    [SHOAL__ENVELOPE__MSG_PROOF] = codec_validate_proof,
    [SHOAL__ENVELOPE__MSG_UPLOAD_RESUME] = codec_validate_any,
    [SHOAL__ENVELOPE__MSG_DRAINING] = codec_validate_draining,
};

int codec_validate(const Shoal__Envelope *env, char *err, size_t errlen)
{
	if (env == NULL)
		return errorf(err, errlen, "no message");
	size_t kind = (size_t)env->msg_case;
	if (env->msg_case == SHOAL__ENVELOPE__MSG__NOT_SET ||
	    kind >= ARRAY_SIZE(codec_validators) || codec_validators[kind] == NULL)
		return errorf(err, errlen, "unknown or missing message kind");
	/* protobuf-c always sets the member of a present oneof; be defensive anyway. */
	if (env->hello == NULL)
		return errorf(err, errlen, "%s: missing body", codec_kind_name(env));
	return codec_validators[kind](env, err, errlen);
}
