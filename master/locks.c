/* locks.c: cluster-wide named locks, as leases held by the master (see LockAcquire in
 * shoal.proto). A lock has at most one holder and a FIFO of waiting clients. A grant lasts
 * ttl_ms unless renewed; the sweep timer expires lapsed leases and passes the lock on. A
 * holder whose connection drops keeps its lease until it lapses, because the command it
 * guards may outlive the `shoal lock` process; waiters that disconnect leave the queue.
 * Tokens come from one counter, so every grant's token is larger than all before it; the
 * counter starts from the wall clock (in microseconds), so tokens keep growing across master
 * restarts as long as the clock does not step back. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "util.h"

struct lock_waiter {
	struct client *cl;
	uint32_t ttl_ms;
	struct lock_waiter *next;
};

struct lock {
	char *name;
	struct client *holder; /* NULL once the holder disconnected (lease still running) */
	bool held;
	uint64_t token;
	uint32_t ttl_ms;
	uint64_t expires; /* loop time */
	struct lock_waiter *head, *tail;
	struct list_node link; /* in m->locks */
};

static struct lock *find(struct master *m, const char *name)
{
	for (struct list_node *n = list_first(&m->locks); n; n = list_next(&m->locks, n)) {
		struct lock *l = list_entry(n, struct lock, link);
		if (!strcmp(l->name, name))
			return l;
	}
	return NULL;
}

static void send_granted(struct client *cl, const struct lock *l)
{
	Shoal__LockGranted g = SHOAL__LOCK_GRANTED__INIT;
	g.name = l->name;
	g.token = l->token;
	g.ttl_ms = l->ttl_ms;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_LOCK_GRANTED;
	env.lock_granted = &g;
	conn_send(cl->conn, &env);
}

static void send_lost(struct client *cl, const char *name, uint64_t token, const char *reason)
{
	Shoal__LockLost lost = SHOAL__LOCK_LOST__INIT;
	lost.name = (char *)name;
	lost.token = token;
	lost.reason = (char *)reason;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_LOCK_LOST;
	env.lock_lost = &lost;
	conn_send(cl->conn, &env);
}

static void grant(struct master *m, struct lock *l, struct client *cl, uint32_t ttl_ms)
{
	l->held = true;
	l->holder = cl;
	/* Tokens must also grow across master restarts, with no journal to remember the last
	 * one: take the wall clock in microseconds when it is ahead of the counter. */
	uint64_t now_us = wall_ms() * 1000;
	m->lock_token = m->lock_token + 1 > now_us ? m->lock_token + 1 : now_us;
	l->token = m->lock_token;
	l->ttl_ms = ttl_ms;
	l->expires = uv_now(m->loop) + ttl_ms;
	log_info("locks", "lock=%s event=granted token=%llu ttl_ms=%u peer=%s", l->name,
	         (unsigned long long)l->token, ttl_ms, conn_peer(cl->conn));
	send_granted(cl, l);
}

static void lock_free(struct lock *l)
{
	list_unlink(&l->link);
	free(l->name);
	free(l);
}

/* The lock is free: the first waiter gets it, or the lock is forgotten. */
static void pass_on(struct master *m, struct lock *l)
{
	l->held = false;
	l->holder = NULL;
	struct lock_waiter *w = l->head;
	if (!w) {
		lock_free(l);
		return;
	}
	l->head = w->next;
	if (!l->head)
		l->tail = NULL;
	grant(m, l, w->cl, w->ttl_ms);
	free(w);
}

void locks_on_acquire(struct master *m, struct client *cl, const Shoal__LockAcquire *a)
{
	struct lock *l = find(m, a->name);
	if (!l) {
		l = xcalloc(1, sizeof(*l));
		l->name = xstrdup(a->name);
		list_push_back(&m->locks, &l->link);
	}
	if (!l->held) {
		grant(m, l, cl, a->ttl_ms);
		return;
	}
	if (l->holder == cl) {
		server_send_failure(cl->conn, 0, 2, "this connection already holds lock %s",
		                    a->name);
		return;
	}
	struct lock_waiter *w = xcalloc(1, sizeof(*w));
	w->cl = cl;
	w->ttl_ms = a->ttl_ms;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
	log_debug("locks", "lock=%s event=waiting peer=%s", l->name, conn_peer(cl->conn));
}

void locks_on_renew(struct master *m, struct client *cl, const Shoal__LockRenew *r)
{
	struct lock *l = find(m, r->name);
	if (!l || !l->held || l->holder != cl || l->token != r->token) {
		send_lost(cl, r->name, r->token, "the lease had expired and the lock moved on");
		return;
	}
	l->expires = uv_now(m->loop) + l->ttl_ms;
	send_granted(cl, l);
}

void locks_on_release(struct master *m, struct client *cl, const Shoal__LockRelease *r)
{
	struct lock *l = find(m, r->name);
	if (!l || !l->held || l->holder != cl || l->token != r->token)
		return; /* already expired: nothing to release */
	log_info("locks", "lock=%s event=released token=%llu", l->name,
	         (unsigned long long)l->token);
	pass_on(m, l);
}

void locks_client_gone(struct master *m, struct client *cl)
{
	struct list_node *n = list_first(&m->locks);
	while (n) {
		struct list_node *next = list_next(&m->locks, n);
		struct lock *l = list_entry(n, struct lock, link);
		if (l->holder == cl)
			l->holder = NULL; /* the lease runs out on its own */
		struct lock_waiter **pp = &l->head, *prev = NULL;
		while (*pp) {
			struct lock_waiter *w = *pp;
			if (w->cl == cl) {
				*pp = w->next;
				free(w);
			} else {
				prev = w;
				pp = &w->next;
			}
		}
		l->tail = prev;
		n = next;
	}
}

void locks_sweep(struct master *m)
{
	uint64_t now = uv_now(m->loop);
	struct list_node *n = list_first(&m->locks);
	while (n) {
		struct list_node *next = list_next(&m->locks, n);
		struct lock *l = list_entry(n, struct lock, link);
		if (l->held && now >= l->expires) {
			log_warn("locks", "lock=%s event=expired token=%llu", l->name,
			         (unsigned long long)l->token);
			if (l->holder)
				send_lost(l->holder, l->name, l->token,
				          "the lease expired before it was renewed");
			pass_on(m, l);
		}
		n = next;
	}
}

void locks_destroy_all(struct master *m)
{
	struct list_node *n;
	while ((n = list_first(&m->locks))) {
		struct lock *l = list_entry(n, struct lock, link);
		while (l->head) {
			struct lock_waiter *w = l->head;
			l->head = w->next;
			free(w);
		}
		lock_free(l);
	}
}
