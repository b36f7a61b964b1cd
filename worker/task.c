/* task.c: copying a Task out of its envelope, and freeing it (see task.h). */
#include "task.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int task_ref_cmp(const void *a, const void *b)
{
	const struct task_ref *x = a, *y = b;
	if (x->job_id != y->job_id)
		return x->job_id < y->job_id ? -1 : 1;
	if (x->task_id != y->task_id)
		return x->task_id < y->task_id ? -1 : 1;
	if (x->attempt != y->attempt)
		return x->attempt < y->attempt ? -1 : 1;
	return 0;
}

static void task_copy_args(struct task *t, const Shoal__Task *task)
{
	if (task->n_args == 0 || task->args == NULL)
		return;
	t->nargs = task->n_args;
	t->argv = xcalloc(t->nargs, sizeof(*t->argv));
	t->args = xcalloc(t->nargs, sizeof(*t->args));
	for (size_t i = 0; i < t->nargs; i++) {
		const Shoal__Arg *a = task->args[i];
		shoal__arg__init(&t->argv[i]);
		t->argv[i].key = xstrdup(a != NULL && a->key != NULL ? a->key : "");
		t->argv[i].value = xstrdup(a != NULL && a->value != NULL ? a->value : "");
		t->args[i] = &t->argv[i];
	}
}

/* A FileRef the codec let through still gets checked here: its name becomes a path. */
static void task_copy_file(struct task_file *f, const Shoal__FileRef *ref)
{
	f->name = xstrdup(ref->name != NULL ? ref->name : "");
	if (ref->sha256.len == DIGEST_LEN)
		memcpy(f->sha, ref->sha256.data, DIGEST_LEN);
	f->size = ref->size;
}

bool task_file_name_ok(const char *name)
{
	return name != NULL && name[0] != '\0' && strchr(name, '/') == NULL &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static bool task_ref_ok(const Shoal__FileRef *ref)
{
	return ref != NULL && ref->sha256.len == DIGEST_LEN;
}

struct task *task_create(const Shoal__Task *task)
{
	struct task *t = xcalloc(1, sizeof(*t));
	t->res.ref.job_id = task->job_id;
	t->res.ref.task_id = task->task_id;
	t->res.ref.attempt = task->attempt;
	t->op = xstrdup(task->op != NULL ? task->op : "");
	task_copy_args(t, task);
	if (task->exec != NULL)
		t->exec = xstrdup(task->exec);
	if (task->has_reducers)
		t->reducers = task->reducers;
	if (task->has_task_timeout_ms)
		t->timeout_ms = task->task_timeout_ms;

	switch (task->input_case) {
	case SHOAL__TASK__INPUT_RANGE:
		if (task->range != NULL) {
			t->input = TASK_INPUT_RANGE;
			t->lo = task->range->lo;
			t->hi = task->range->hi;
		}
		break;
	case SHOAL__TASK__INPUT_DATA:
		t->input = TASK_INPUT_DATA;
		t->len = task->data.len;
		t->data = xmalloc(t->len > 0 ? t->len : 1);
		if (t->len > 0)
			memcpy(t->data, task->data.data, t->len);
		break;
	case SHOAL__TASK__INPUT_SPLIT:
		if (task->split != NULL && task->split->path != NULL) {
			t->input = TASK_INPUT_SPLIT;
			t->path = xstrdup(task->split->path);
			t->offset = task->split->offset;
			t->length = task->split->length;
		}
		break;
	default:
		break;
	}

	bool refs_ok = true;
	if (task->n_files > 0 && task->files != NULL) {
		t->files = xcalloc(task->n_files, sizeof(*t->files));
		t->nfiles = task->n_files;
		for (size_t i = 0; i < task->n_files; i++) {
			refs_ok = refs_ok && task_ref_ok(task->files[i]);
			if (task->files[i] != NULL)
				task_copy_file(&t->files[i], task->files[i]);
			else
				t->files[i].name = xstrdup("");
		}
	}
	if (task->broadcast != NULL) {
		refs_ok = refs_ok && task_ref_ok(task->broadcast);
		t->broadcast = xcalloc(1, sizeof(*t->broadcast));
		task_copy_file(t->broadcast, task->broadcast);
	}
	if (task->plugin != NULL) {
		refs_ok = refs_ok && task_ref_ok(task->plugin);
		t->plugin = xcalloc(1, sizeof(*t->plugin));
		task_copy_file(t->plugin, task->plugin);
	}

	/* Never act on a malformed reference: it would name the wrong file or a path outside
	 * the working directory. */
	if (!refs_ok) {
		task_fail(t, true, "task names a shipped file without a 32-byte SHA-256");
	} else {
		for (size_t i = 0; i < t->nfiles; i++) {
			if (!task_file_name_ok(t->files[i].name)) {
				task_fail(t, true,
				          "shipped file name '%s' is not a plain file name",
				          t->files[i].name);
				break;
			}
		}
	}
	return t;
}

static void task_file_release(struct task_file *f)
{
	free(f->name);
	f->name = NULL;
	cache_unpin(&f->entry);
}

void task_free_input(struct task *t)
{
	free(t->op);
	t->op = NULL;
	for (size_t i = 0; i < t->nargs; i++) {
		free(t->argv[i].key);
		free(t->argv[i].value);
	}
	free(t->argv);
	free(t->args);
	t->argv = NULL;
	t->args = NULL;
	t->nargs = 0;
	free(t->data);
	t->data = NULL;
	free(t->path);
	t->path = NULL;
	free(t->exec);
	t->exec = NULL;
	for (size_t i = 0; i < t->nfiles; i++)
		task_file_release(&t->files[i]);
	free(t->files);
	t->files = NULL;
	t->nfiles = 0;
	if (t->broadcast != NULL) {
		task_file_release(t->broadcast);
		free(t->broadcast);
		t->broadcast = NULL;
	}
	if (t->plugin != NULL) {
		task_file_release(t->plugin);
		free(t->plugin);
		t->plugin = NULL;
	}
	if (t->side != NULL) {
		struct task_side *s = t->side;
		t->side = NULL;
		if (s->refs > 0 && --s->refs == 0 && s->release != NULL)
			s->release(s);
	}
	t->plugin_obj = NULL;
}

void task_free(struct task **tp)
{
	struct task *t = *tp;
	if (t == NULL)
		return;
	task_free_input(t);
	buf_free(&t->res.out);
	free(t->res.error);
	free(t->res.buckets);
	free(t);
	*tp = NULL;
}

void task_result_free(struct task_result **res)
{
	if (*res == NULL)
		return;
	struct task *t = (struct task *)(void *)*res;
	task_free(&t);
	*res = NULL;
}

void task_fail(struct task *t, bool permanent, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->res.ok = false;
	t->res.permanent = permanent;
	free(t->res.error);
	/* The master rejects a failure without a reason (it would have nothing to show). */
	t->res.error = xstrdup(msg[0] != '\0' ? msg : "task failed");
	buf_free(&t->res.out);
	free(t->res.buckets);
	t->res.buckets = NULL;
	t->res.nbuckets = 0;
	t->failed_early = true;
}
