/* registry.c: the workers the master knows. A worker exists from its Hello until its
 * connection closes or it misses its heartbeat deadline; then every task it held goes back to
 * its job's queue, so nothing is lost with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "util.h"

struct worker *registry_add(struct master *m, struct conn *c, const Shoal__Hello *hello)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	w->m = m;
	w->conn = c;
	w->id = m->next_worker_id++;
	w->slots = hello->has_slots && hello->slots > 0 ? hello->slots : 1;
	w->allow_exec = hello->has_allow_exec && hello->allow_exec;
	if (hello->name && *hello->name) {
		w->name = xstrdup(hello->name);
	} else {
		char name[32];
		snprintf(name, sizeof(name), "worker-%llu", (unsigned long long)w->id);
		w->name = xstrdup(name);
	}
	w->host = xstrdup(hello->host ? hello->host : "");
	w->advertise = xstrdup(hello->advertise ? hello->advertise : "");
	w->connected_ms = w->last_heartbeat_ms = wall_ms();
	w->last_seen_ms = uv_now(m->loop);
	list_init(&w->assigned);
	list_init(&w->blob_sends);
	list_init(&w->backups);
	list_push_back(&m->workers, &w->link);
	m->nworkers++;
	m->total_slots += w->slots;
	m->exec_workers += w->allow_exec;
	sched_rebuild_ring(m);
	log_info("registry",
	         "conn=%llu peer=%s event=worker_registered worker=%llu name=%s host=%s "
	         "advertise=%s slots=%u workers=%u",
	         (unsigned long long)conn_id(c), conn_peer(c), (unsigned long long)w->id, w->name,
	         w->host, w->advertise[0] ? w->advertise : "-", w->slots, m->nworkers);
	return w;
}

void registry_remove(struct worker *w, const char *why)
{
	struct master *m = w->m;
	uint32_t requeued = 0;
	struct list_node *n;
	while ((n = list_first(&w->backups)))
		jobs_drop_backup(list_entry(n, struct task, backup_link));
	while ((n = list_first(&w->assigned))) {
		jobs_requeue(list_entry(n, struct task, link));
		requeued++;
	}
	for (size_t i = 0; i < w->batch_len; i++)
		free(w->batch[i]);
	free(w->batch);
	blobs_worker_gone(w);
	list_unlink(&w->link);
	if (--m->nworkers == 0) {
		m->no_workers_since_ms = uv_now(m->loop); /* --job-timeout counts from here */
		m->no_workers_since_wall_ms = wall_ms();
	}
	m->total_slots -= w->slots;
	m->exec_workers -= w->allow_exec;
	sched_rebuild_ring(m);
	log_info("registry",
	         "conn=%llu peer=%s event=worker_gone worker=%llu name=%s reason=\"%s\" "
	         "tasks_requeued=%u workers=%u",
	         (unsigned long long)conn_id(w->conn), conn_peer(w->conn),
	         (unsigned long long)w->id, w->name, why, requeued, m->nworkers);
	free(w->name);
	free(w->host);
	free(w->advertise);
	free(w);
	if (requeued)
		sched_kick(m);
}

bool registry_other_usable(const struct worker *w)
{
	const struct master *m = w->m;
	uint64_t now = uv_now(m->loop);
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		const struct worker *o = list_entry(n, struct worker, link);
		if (o != w && !conn_closing(o->conn) && !o->draining && o->quarantined_until <= now)
			return true;
	}
	return false;
}

void registry_on_heartbeat(struct worker *w, const Shoal__Heartbeat *hb)
{
	/* last_seen_ms is refreshed by every message, this one included. */
	log_debug("registry", "worker=%llu event=heartbeat inflight=%u", (unsigned long long)w->id,
	          w->inflight);
	uint32_t held = hb->has_held ? hb->held : 0;
	if (held != w->held) {
		log_info("registry", "worker=%llu name=%s event=held_slots held=%u slots=%u",
		         (unsigned long long)w->id, w->name, held, w->slots);
		if (held < w->held)
			sched_kick(w->m); /* slots came free */
		w->held = held;
	}
}

static int ref_cmp(const void *a, const void *b)
{
	const Shoal__TaskRef *x = *(Shoal__TaskRef *const *)a, *y = *(Shoal__TaskRef *const *)b;
	if (x->job_id != y->job_id)
		return x->job_id < y->job_id ? -1 : 1;
	if (x->task_id != y->task_id)
		return x->task_id < y->task_id ? -1 : 1;
	return x->attempt < y->attempt ? -1 : x->attempt > y->attempt;
}

/* True if attempt `attempt` of t is among the sorted refs. */
static bool ref_listed(Shoal__TaskRef **refs, size_t n, const struct task *t, uint32_t attempt)
{
	Shoal__TaskRef key = SHOAL__TASK_REF__INIT;
	key.job_id = t->job->id;
	key.task_id = t->id;
	key.attempt = attempt;
	const Shoal__TaskRef *kp = &key;
	return n > 0 && bsearch(&kp, refs, n, sizeof(*refs), ref_cmp) != NULL;
}

void registry_on_draining(struct worker *w, const Shoal__Draining *d)
{
	struct master *m = w->m;
	if (w->draining)
		return;
	w->draining = true;
	/* Sorted in place: the message is ours until this handler returns (running is NULL
	 * when empty). */
	if (d->n_running > 1)
		qsort(d->running, d->n_running, sizeof(*d->running), ref_cmp);
	uint32_t kept = 0, returned = 0;
	struct list_node *n, *next;
	for (n = list_first(&w->backups); n; n = next) {
		next = list_next(&w->backups, n);
		struct task *t = list_entry(n, struct task, backup_link);
		if (!ref_listed(d->running, d->n_running, t, t->backup_attempt))
			jobs_drop_backup(t); /* the primary carries on elsewhere */
	}
	for (n = list_first(&w->assigned); n; n = next) {
		next = list_next(&w->assigned, n);
		struct task *t = list_entry(n, struct task, link);
		if (ref_listed(d->running, d->n_running, t, t->attempt)) {
			kept++;
			continue;
		}
		jobs_requeue(t); /* never started there: not a failure */
		returned++;
	}
	log_info("registry",
	         "conn=%llu peer=%s event=worker_draining worker=%llu name=%s tasks_running=%u "
	         "tasks_returned=%u",
	         (unsigned long long)conn_id(w->conn), conn_peer(w->conn),
	         (unsigned long long)w->id, w->name, kept, returned);
	sched_kick(m);
}

void registry_sweep(struct master *m, uint64_t now_ms)
{
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		struct worker *w = list_entry(n, struct worker, link);
		if (w->quarantined_until && now_ms >= w->quarantined_until) {
			/* Back in service: work may be waiting for it. */
			w->quarantined_until = 0;
			log_info("registry", "worker=%llu name=%s event=quarantine_over",
			         (unsigned long long)w->id, w->name);
			sched_kick(m);
		}
		/* A worker we stopped reading from cannot show it is alive. */
		uint64_t silent = now_ms > w->last_seen_ms ? now_ms - w->last_seen_ms : 0;
		if (conn_closing(w->conn) || w->paused || silent <= m->cfg.heartbeat_timeout_ms)
			continue;
		char why[96];
		snprintf(why, sizeof(why), "no heartbeat for %llu ms", (unsigned long long)silent);
		/* The close callback removes it and re-queues its tasks. */
		conn_close(w->conn, why);
	}
}

void registry_flush_batches(struct master *m)
{
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		struct worker *w = list_entry(n, struct worker, link);
		if (!w->batch_len)
			continue;
		Shoal__TaskBatch tb = SHOAL__TASK_BATCH__INIT;
		tb.n_tasks = w->batch_len;
		tb.tasks = w->batch;
		Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
		env.msg_case = SHOAL__ENVELOPE__MSG_TASK_BATCH;
		env.task_batch = &tb;
		conn_send(w->conn, &env);
		for (size_t i = 0; i < w->batch_len; i++)
			free(w->batch[i]);
		w->batch_len = 0;
	}
}

void registry_pause(struct worker *w)
{
	if (w->paused)
		return;
	w->paused = true;
	conn_pause_reading(w->conn, true);
	log_debug("registry", "worker=%llu event=paused spill_backlog=%llu",
	          (unsigned long long)w->id, (unsigned long long)w->m->spill_backlog);
}

void registry_resume_all(struct master *m)
{
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		struct worker *w = list_entry(n, struct worker, link);
		if (w->paused) {
			w->paused = false;
			w->last_seen_ms = uv_now(m->loop); /* its heartbeats waited unread */
			conn_pause_reading(w->conn, false);
		}
	}
}

void registry_list(struct master *m, struct conn *c)
{
	Shoal__WorkerInfo *infos = xcalloc(m->nworkers ? m->nworkers : 1, sizeof(*infos));
	Shoal__WorkerInfo **ptrs = xcalloc(m->nworkers ? m->nworkers : 1, sizeof(*ptrs));
	size_t i = 0;
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n), i++) {
		struct worker *w = list_entry(n, struct worker, link);
		Shoal__WorkerInfo *wi = &infos[i];
		shoal__worker_info__init(wi);
		wi->worker_id = w->id;
		wi->name = w->name;
		wi->host = w->host;
		wi->address = (char *)conn_peer(w->conn);
		wi->advertise = w->advertise[0] ? w->advertise : NULL;
		wi->slots = w->slots;
		wi->has_running = true;
		wi->running = w->inflight;
		wi->has_held = true;
		wi->held = w->held;
		wi->has_tasks_done = true;
		wi->tasks_done = w->tasks_done;
		wi->has_tasks_failed = true;
		wi->tasks_failed = w->tasks_failed;
		wi->has_allow_exec = true;
		wi->allow_exec = w->allow_exec;
		wi->has_connected_ms = true;
		wi->connected_ms = w->connected_ms;
		wi->has_last_heartbeat_ms = true;
		wi->last_heartbeat_ms = w->last_heartbeat_ms;
		ptrs[i] = wi;
	}
	Shoal__WorkerList wl = SHOAL__WORKER_LIST__INIT;
	wl.n_workers = i;
	wl.workers = ptrs;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_WORKER_LIST;
	env.worker_list = &wl;
	conn_send(c, &env);
	free(ptrs);
	free(infos);
}
