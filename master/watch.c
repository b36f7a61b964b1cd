/* watch.c: clients watching jobs get a JobUpdate when the job progresses, at most once per
 * UPDATE_INTERVAL_MS per job so that a 100,000-task job does not send 100,000 updates, and
 * at once when the job ends (after which the watch is over). */
#include <stdlib.h>

#include "master.h"
#include "util.h"

#define UPDATE_INTERVAL_MS 100

void watch_send_update(struct conn *c, const struct job *j)
{
	Shoal__JobInfo info;
	jobs_fill_info(j, &info);
	Shoal__JobUpdate up = SHOAL__JOB_UPDATE__INIT;
	up.job = &info;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_JOB_UPDATE;
	env.job_update = &up;
	conn_send(c, &env);
}

void watch_add(struct client *cl, struct job *j)
{
	for (size_t i = 0; i < j->nwatchers; i++)
		if (j->watchers[i] == cl)
			return;
	if (j->nwatchers == j->watchers_cap) {
		j->watchers_cap = j->watchers_cap ? j->watchers_cap * 2 : 4;
		j->watchers = xrealloc(j->watchers, j->watchers_cap * sizeof(*j->watchers));
	}
	j->watchers[j->nwatchers++] = cl;
	if (cl->nwatching == cl->watching_cap) {
		cl->watching_cap = cl->watching_cap ? cl->watching_cap * 2 : 4;
		cl->watching = xrealloc(cl->watching, cl->watching_cap * sizeof(*cl->watching));
	}
	cl->watching[cl->nwatching++] = j;
}

static void remove_from(void **arr, size_t *n, const void *item)
{
	for (size_t i = 0; i < *n; i++) {
		if (arr[i] == item) {
			arr[i] = arr[--*n];
			return;
		}
	}
}

void watch_remove_client(struct client *cl)
{
	for (size_t i = 0; i < cl->nwatching; i++) {
		struct job *j = cl->watching[i];
		remove_from((void **)j->watchers, &j->nwatchers, cl);
	}
	free(cl->watching);
	cl->watching = NULL;
	cl->nwatching = cl->watching_cap = 0;
}

static void send_to_watchers(struct job *j)
{
	for (size_t i = 0; i < j->nwatchers; i++)
		watch_send_update(j->watchers[i]->conn, j);
}

void watch_job_changed(struct job *j)
{
	struct master *m = j->m;
	if (!j->nwatchers)
		return;
	if (jobs_finished(j)) {
		send_to_watchers(j);
		for (size_t i = 0; i < j->nwatchers; i++) {
			struct client *cl = j->watchers[i];
			remove_from((void **)cl->watching, &cl->nwatching, j);
		}
		j->nwatchers = 0;
		return;
	}
	if (j->update_pending)
		return;
	j->update_pending = true;
	if (m->ndirty == m->dirty_cap) {
		m->dirty_cap = m->dirty_cap ? m->dirty_cap * 2 : 16;
		m->dirty = xrealloc(m->dirty, m->dirty_cap * sizeof(*m->dirty));
	}
	m->dirty[m->ndirty++] = j->id;
	if (!uv_is_active((uv_handle_t *)&m->updates) && !m->stopping)
		uv_timer_start(&m->updates, watch_on_timer, UPDATE_INTERVAL_MS, 0);
}

void watch_on_timer(uv_timer_t *t)
{
	struct master *m = t->data;
	for (size_t i = 0; i < m->ndirty; i++) {
		struct job *j = jobs_find(m, m->dirty[i]);
		if (!j || !j->update_pending)
			continue;
		j->update_pending = false;
		if (!jobs_finished(j))
			send_to_watchers(j);
	}
	m->ndirty = 0;
}
