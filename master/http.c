/* http.c: the master's HTTP endpoint (--http): a JSON API, Prometheus metrics and the
 * dashboard, served from the master's own loop.
 *
 * Requests are parsed with nodejs' http-parser. Each connection carries one request: the
 * response is built in memory from the master's state (O(workers + jobs) work, no I/O) and
 * written with "Connection: close". Nothing here waits: a request that is too large, too slow
 * or malformed gets a 4xx (or its connection closed) and the loop goes on. */
#include <http_parser.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "auth.h"
#include "json.h"
#include "log.h"
#include "master.h"
#include "token.h"
#include "util.h"

#define HTTP_SUBSYS      "http"
#define HTTP_MAX_REQUEST 16384u /* request line + headers */
#define HTTP_MAX_URL     2048u
#define HTTP_MAX_CONNS   64u
#define HTTP_TIMEOUT_MS  10000u /* to send a whole request */
#define HTTP_READ_BUF    4096u
#define HTTP_MAX_LISTED  10000u /* jobs in /api/v1/jobs: the most recent ones */

/* The dashboard (dashboard.html, embedded at build time by embed.py). */
extern const char dashboard_html[];
extern const size_t dashboard_html_len;

struct http_conn {
	struct master *m;
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct list_node link; /* in m->http_conns */
	http_parser parser;
	char rbuf[HTTP_READ_BUF];
	size_t received;
	char url[HTTP_MAX_URL + 1];
	size_t url_len;
	bool url_too_long;
	char field[32]; /* the header name being read (truncated names are not ours) */
	size_t field_len;
	bool in_value; /* the last callback was a header value */
	char auth[512];
	size_t auth_len;
	bool auth_too_long;
	bool complete;
	bool has_body; /* GET and HEAD take none: 413 */
	bool closing;
	int open_handles;
	char peer[64];
	uv_write_t wreq;
	uint8_t *resp;
};

static bool http_field_is(const struct http_conn *hc, const char *name)
{
	return hc->field_len == strlen(name) && strncasecmp(hc->field, name, hc->field_len) == 0;
}

static void http_on_closed(uv_handle_t *h)
{
	struct http_conn *hc = h->data;
	if (--hc->open_handles > 0)
		return;
	free(hc->resp);
	free(hc);
}

static void http_close(struct http_conn *hc)
{
	if (hc->closing)
		return;
	hc->closing = true;
	list_unlink(&hc->link);
	hc->m->http_nconns--;
	uv_read_stop((uv_stream_t *)&hc->tcp);
	uv_timer_stop(&hc->timer);
	uv_close((uv_handle_t *)&hc->timer, http_on_closed);
	uv_close((uv_handle_t *)&hc->tcp, http_on_closed);
}

static void http_on_written(uv_write_t *req, int status)
{
	struct http_conn *hc = req->data;
	(void)status;
	http_close(hc);
}

static const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Error";
	}
}

/* Sends status with body (taken) and closes the connection once it is written. */
static void http_respond(struct http_conn *hc, int status, const char *type, struct buf *body,
                         const char *extra_headers)
{
	if (hc->closing || hc->resp)
		return;
	uv_read_stop((uv_stream_t *)&hc->tcp);
	uv_timer_stop(&hc->timer);
	bool head = hc->complete && hc->parser.method == HTTP_HEAD;
	struct buf out = BUF_INIT;
	buf_printf(&out,
	           "HTTP/1.1 %d %s\r\n"
	           "Content-Type: %s\r\n"
	           "Content-Length: %zu\r\n"
	           "Cache-Control: no-store\r\n"
	           "X-Content-Type-Options: nosniff\r\n"
	           "Connection: close\r\n"
	           "%s\r\n",
	           status, http_reason(status), type, body->len,
	           extra_headers ? extra_headers : "");
	if (!head && body->len)
		buf_append(&out, body->data, body->len);
	buf_free(body);
	size_t len;
	hc->resp = buf_steal(&out, &len);
	uv_buf_t b = {.base = (char *)hc->resp, .len = len};
	hc->wreq.data = hc;
	if (uv_write(&hc->wreq, (uv_stream_t *)&hc->tcp, &b, 1, http_on_written) < 0)
		http_close(hc);
	if (status >= 400)
		log_debug(HTTP_SUBSYS, "peer=%s status=%d url=%.*s", hc->peer, status,
		          (int)hc->url_len, hc->url);
}

static void http_error(struct http_conn *hc, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error as JSON: {"error": "..."}. */
static void http_error(struct http_conn *hc, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct json j;
	json_init(&j);
	json_object_begin(&j);
	json_key(&j, "error");
	json_string(&j, msg);
	json_object_end(&j);
	buf_append_byte(&j.out, '\n');
	http_respond(hc, status, "application/json", &j.out,
	             status == 405   ? "Allow: GET, HEAD\r\n"
	             : status == 401 ? "WWW-Authenticate: Bearer realm=\"shoal\"\r\n"
	                             : NULL);
	json_deinit(&j);
}

/* ---- JSON ---- */

static const char *http_strategy_name(Shoal__Strategy s)
{
	switch (s) {
	case SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN:
		return "round-robin";
	case SHOAL__STRATEGY__STRATEGY_LEAST_LOADED:
		return "least-loaded";
	case SHOAL__STRATEGY__STRATEGY_DYNAMIC:
		return "dynamic";
	default:
		return "default";
	}
}

/* The fields and names of `shoal jobs --json`. */
static void http_json_job(struct json *jw, const struct job *job)
{
	Shoal__JobInfo i;
	jobs_fill_info(job, &i);
	json_object_begin(jw);
	json_kv_u64(jw, "job_id", i.job_id);
	json_key(jw, "state");
	json_string(jw, jobs_state_name(i.state));
	json_key(jw, "op");
	json_string(jw, i.op ? i.op : "");
	json_kv_str_or_null(jw, "name", i.name);
	json_key(jw, "strategy");
	json_string(jw, http_strategy_name(i.strategy));
	json_key(jw, "priority");
	json_i64(jw, i.priority);
	json_kv_u64(jw, "tasks_total", i.tasks_total);
	json_kv_u64(jw, "tasks_done", i.tasks_done);
	json_kv_u64(jw, "tasks_running", i.tasks_running);
	json_kv_u64(jw, "task_failures", i.task_failures);
	json_kv_u64(jw, "input_bytes", i.input_bytes);
	json_kv_u64(jw, "records", i.records);
	json_kv_u64(jw, "result_size", i.result_size);
	json_kv_u64_or_null(jw, "submitted_ms", i.submitted_ms);
	json_kv_u64_or_null(jw, "started_ms", i.started_ms);
	json_kv_u64_or_null(jw, "finished_ms", i.finished_ms);
	json_kv_str_or_null(jw, "error", i.error);
	json_kv_u64_or_null(jw, "queue_position", i.has_queue_position ? i.queue_position : 0);
	json_kv_u64(jw, "cost", i.cost);
	json_kv_u64_or_null(jw, "after", i.after);
	json_kv_u64(jw, "partitions_recovered", i.partitions_recovered);
	json_kv_u64(jw, "tasks_dispatched", i.tasks_dispatched);
	json_kv_str_or_null(jw, "stalled", i.stalled);
	json_kv_u64_or_null(jw, "stalled_since_ms",
	                    i.has_stalled_since_ms ? i.stalled_since_ms : 0);
	json_object_end(jw);
}

static void http_jobs(struct http_conn *hc)
{
	struct master *m = hc->m;
	struct json j;
	json_init(&j);
	json_array_begin(&j);
	size_t first = m->njobs > HTTP_MAX_LISTED ? m->njobs - HTTP_MAX_LISTED : 0;
	for (size_t i = first; i < m->njobs; i++)
		if (m->jobs[i]) /* NULL: removed by --keep-jobs */
			http_json_job(&j, m->jobs[i]);
	json_array_end(&j);
	buf_append_byte(&j.out, '\n');
	http_respond(hc, 200, "application/json", &j.out, NULL);
	json_deinit(&j);
}

static void http_job(struct http_conn *hc, const char *id_text)
{
	char *end;
	unsigned long long id = strtoull(id_text, &end, 10);
	struct job *job = NULL;
	if (*id_text >= '0' && *id_text <= '9' && *end == '\0' && id > 0)
		job = jobs_find(hc->m, id);
	if (!job) {
		http_error(hc, 404, "no job '%s' (see /api/v1/jobs)", id_text);
		return;
	}
	struct json j;
	json_init(&j);
	http_json_job(&j, job);
	buf_append_byte(&j.out, '\n');
	http_respond(hc, 200, "application/json", &j.out, NULL);
	json_deinit(&j);
}

/* The fields and names of `shoal workers --json`. */
static void http_workers(struct http_conn *hc)
{
	struct master *m = hc->m;
	struct json j;
	json_init(&j);
	json_array_begin(&j);
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		const struct worker *w = list_entry(n, struct worker, link);
		json_object_begin(&j);
		json_kv_u64(&j, "worker_id", w->id);
		json_key(&j, "name");
		json_string(&j, w->name ? w->name : "");
		json_kv_str_or_null(&j, "host", w->host);
		json_kv_str_or_null(&j, "address", conn_peer(w->conn));
		json_kv_str_or_null(&j, "advertise", w->advertise);
		json_kv_u64(&j, "slots", w->slots);
		json_kv_u64(&j, "running", w->inflight);
		json_kv_u64(&j, "held", w->held);
		json_kv_u64(&j, "tasks_done", w->tasks_done);
		json_kv_u64(&j, "tasks_failed", w->tasks_failed);
		json_key(&j, "allow_exec");
		json_bool(&j, w->allow_exec);
		json_kv_u64_or_null(&j, "connected_ms", w->connected_ms);
		json_kv_u64_or_null(&j, "last_heartbeat_ms", w->last_heartbeat_ms);
		json_object_end(&j);
	}
	json_array_end(&j);
	buf_append_byte(&j.out, '\n');
	http_respond(hc, 200, "application/json", &j.out, NULL);
	json_deinit(&j);
}

/* ---- metrics ---- */

const double stats_task_bounds[STATS_TASK_BUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                      1,     5,     10,   30,   60,  300};

void stats_task_done(struct master *m, uint64_t elapsed_us)
{
	struct master_stats *s = &m->stats;
	size_t b = 0;
	while (b < STATS_TASK_BUCKETS && (double)elapsed_us > stats_task_bounds[b] * 1e6)
		b++;
	s->task_buckets[b]++;
	s->task_us_sum += elapsed_us;
	s->tasks_ok++;
}

static void http_metrics(struct http_conn *hc)
{
	struct master *m = hc->m;
	struct buf b = BUF_INIT;
	uint64_t busy = 0, done_by_workers = 0;
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		const struct worker *w = list_entry(n, struct worker, link);
		busy += w->inflight;
		done_by_workers += w->tasks_done;
	}
	(void)done_by_workers;
	uint64_t by_state[8] = {0};
	uint64_t ready = 0, running = 0, done = 0;
	for (size_t i = 0; i < m->njobs; i++) {
		const struct job *j = m->jobs[i];
		if (!j)
			continue; /* removed by --keep-jobs */
		if ((size_t)j->state < ARRAY_SIZE(by_state))
			by_state[j->state]++;
		uint32_t total = j->reducing ? j->map_tasks + j->ntasks : j->ntasks + j->reducers;
		uint32_t jdone = j->reducing ? j->map_tasks + j->done : j->done;
		done += jdone;
		if (jobs_finished(j))
			continue;
		running += j->running;
		if (total > jdone + j->running)
			ready += total - jdone - j->running;
	}
	uint64_t in, out;
	conn_totals(&in, &out);

	buf_printf(&b,
	           "# HELP shoal_workers Workers connected to the master.\n"
	           "# TYPE shoal_workers gauge\n"
	           "shoal_workers %" PRIu32 "\n",
	           m->nworkers);
	buf_printf(&b,
	           "# HELP shoal_slots Task slots of the connected workers, by use.\n"
	           "# TYPE shoal_slots gauge\n"
	           "shoal_slots{state=\"total\"} %" PRIu32 "\n"
	           "shoal_slots{state=\"busy\"} %" PRIu64 "\n",
	           m->total_slots, busy);
	buf_printf(&b,
	           "# HELP shoal_tasks Tasks of the master's jobs, by state (ready: waiting "
	           "for a slot).\n"
	           "# TYPE shoal_tasks gauge\n"
	           "shoal_tasks{state=\"ready\"} %" PRIu64 "\n"
	           "shoal_tasks{state=\"running\"} %" PRIu64 "\n"
	           "shoal_tasks{state=\"done\"} %" PRIu64 "\n",
	           ready, running, done);
	buf_printf(&b,
	           "# HELP shoal_task_attempts_total Task attempts that ended, by result.\n"
	           "# TYPE shoal_task_attempts_total counter\n"
	           "shoal_task_attempts_total{result=\"ok\"} %" PRIu64 "\n"
	           "shoal_task_attempts_total{result=\"failed\"} %" PRIu64 "\n",
	           m->stats.tasks_ok, m->stats.tasks_failed);
	buf_printf(&b, "# HELP shoal_task_duration_seconds Run time of successful task attempts "
	               "on their worker.\n"
	               "# TYPE shoal_task_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t i = 0; i < STATS_TASK_BUCKETS; i++) {
		cum += m->stats.task_buckets[i];
		buf_printf(&b, "shoal_task_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
		           stats_task_bounds[i], cum);
	}
	cum += m->stats.task_buckets[STATS_TASK_BUCKETS];
	buf_printf(&b,
	           "shoal_task_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
	           "shoal_task_duration_seconds_sum %.6f\n"
	           "shoal_task_duration_seconds_count %" PRIu64 "\n",
	           cum, (double)m->stats.task_us_sum / 1e6, cum);
	buf_printf(&b,
	           "# HELP shoal_network_bytes_total Bytes the master received from and sent to "
	           "workers and clients.\n"
	           "# TYPE shoal_network_bytes_total counter\n"
	           "shoal_network_bytes_total{direction=\"in\"} %" PRIu64 "\n"
	           "shoal_network_bytes_total{direction=\"out\"} %" PRIu64 "\n",
	           in, out);
	buf_printf(&b, "# HELP shoal_jobs Jobs the master knows, by state.\n"
	               "# TYPE shoal_jobs gauge\n");
	static const Shoal__JobState states[] = {
	    SHOAL__JOB_STATE__JOB_UPLOADING, SHOAL__JOB_STATE__JOB_QUEUED,
	    SHOAL__JOB_STATE__JOB_RUNNING,   SHOAL__JOB_STATE__JOB_SUCCEEDED,
	    SHOAL__JOB_STATE__JOB_FAILED,    SHOAL__JOB_STATE__JOB_CANCELLED,
	};
	for (size_t i = 0; i < ARRAY_SIZE(states); i++)
		buf_printf(&b, "shoal_jobs{state=\"%s\"} %" PRIu64 "\n", jobs_state_name(states[i]),
		           (size_t)states[i] < ARRAY_SIZE(by_state) ? by_state[states[i]] : 0);
	buf_printf(&b,
	           "# HELP shoal_uptime_seconds Seconds since the master started.\n"
	           "# TYPE shoal_uptime_seconds gauge\n"
	           "shoal_uptime_seconds %.3f\n",
	           (double)(uv_now(m->loop) - m->stats.started_ms) / 1e3);
	http_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL);
}

/* ---- requests ---- */

/* With a cluster secret, a request must carry "Authorization: Bearer TOKEN" (token.h).
 * Answers 401 itself when it does not. */
static bool http_authorized(struct http_conn *hc)
{
	const struct master *m = hc->m;
	if (!m->cfg.secret)
		return true;
	const char *a = hc->auth;
	if (hc->auth_len == 0) {
		http_error(hc, 401,
		           "the cluster has a secret: send 'Authorization: Bearer TOKEN' (TOKEN: "
		           "the output of `shoal token`)");
		return false;
	}
	if (hc->auth_too_long || strncasecmp(a, "Bearer ", 7) != 0) {
		http_error(hc, 401, "expected 'Authorization: Bearer TOKEN'");
		return false;
	}
	a += 7;
	while (*a == ' ')
		a++;
	char want[TOKEN_HEX_LEN + 1];
	if (token_derive(m->cfg.secret, m->cfg.secret_len, want) < 0) {
		http_error(hc, 401, "cannot check tokens (OpenSSL failed)");
		return false;
	}
	size_t n = strlen(a);
	while (n > 0 && a[n - 1] == ' ')
		n--;
	bool ok = n == TOKEN_HEX_LEN && auth_equal(a, want, TOKEN_HEX_LEN);
	memset(want, 0, sizeof(want));
	if (!ok) {
		log_warn(HTTP_SUBSYS, "peer=%s event=bad_token url=%.*s", hc->peer,
		         (int)hc->url_len, hc->url);
		http_error(hc, 401, "wrong token (`shoal token` prints the right one)");
	}
	return ok;
}

static void http_route(struct http_conn *hc)
{
	char path[HTTP_MAX_URL + 1];
	size_t n = strcspn(hc->url, "?#");
	snprintf(path, sizeof(path), "%.*s", (int)n, hc->url);

	if (hc->parser.method != HTTP_GET && hc->parser.method != HTTP_HEAD) {
		http_error(hc, 405, "method %s not allowed: the endpoint is read-only (GET)",
		           http_method_str((enum http_method)hc->parser.method));
		return;
	}
	/* The page itself holds no data (it asks for a token); everything else needs one. */
	bool page = strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0;
	if (!page && !http_authorized(hc))
		return;
	if (page) {
		struct buf b = BUF_INIT;
		buf_append(&b, dashboard_html, dashboard_html_len);
		http_respond(hc, 200, "text/html; charset=utf-8", &b, NULL);
	} else if (strcmp(path, "/api/v1/workers") == 0) {
		http_workers(hc);
	} else if (strcmp(path, "/api/v1/jobs") == 0) {
		http_jobs(hc);
	} else if (strncmp(path, "/api/v1/jobs/", 13) == 0) {
		http_job(hc, path + 13);
	} else if (strcmp(path, "/metrics") == 0) {
		http_metrics(hc);
	} else {
		http_error(hc, 404,
		           "no such page: %s (try /, /api/v1/workers, /api/v1/jobs, "
		           "/api/v1/jobs/ID, /metrics)",
		           path);
	}
}

static int http_on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;
	if (hc->url_len + len > HTTP_MAX_URL) {
		hc->url_too_long = true;
		return 0;
	}
	memcpy(hc->url + hc->url_len, at, len);
	hc->url_len += len;
	hc->url[hc->url_len] = '\0';
	return 0;
}

static int http_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;
	if (hc->in_value) {
		hc->field_len = 0;
		hc->in_value = false;
	}
	size_t room = sizeof(hc->field) - hc->field_len;
	size_t take = len < room ? len : room;
	memcpy(hc->field + hc->field_len, at, take);
	hc->field_len += take;
	return 0;
}

static int http_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *hc = p->data;
	hc->in_value = true;
	if (!http_field_is(hc, "authorization"))
		return 0;
	if (hc->auth_len + len >= sizeof(hc->auth)) {
		hc->auth_too_long = true;
		return 0;
	}
	memcpy(hc->auth + hc->auth_len, at, len);
	hc->auth_len += len;
	hc->auth[hc->auth_len] = '\0';
	return 0;
}

static int http_on_headers_complete(http_parser *p)
{
	struct http_conn *hc = p->data;
	if ((p->content_length > 0 && p->content_length != ULLONG_MAX) || (p->flags & F_CHUNKED)) {
		hc->has_body = true;
		http_parser_pause(p, 1); /* answered with 413 without reading the body */
	}
	return 0;
}

static int http_on_message_complete(http_parser *p)
{
	struct http_conn *hc = p->data;
	hc->complete = true;
	/* One request per connection: stop here (pipelined bytes are not read). */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings http_settings = {
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_value = http_on_header_value,
    .on_headers_complete = http_on_headers_complete,
    .on_message_complete = http_on_message_complete,
};

static void http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct http_conn *hc = h->data;
	(void)suggested;
	b->base = hc->rbuf;
	b->len = sizeof(hc->rbuf);
}

static void http_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct http_conn *hc = s->data;
	if (hc->closing || hc->resp)
		return;
	if (nread < 0) {
		http_close(hc);
		return;
	}
	if (nread == 0)
		return;
	hc->received += (size_t)nread;
	size_t used = http_parser_execute(&hc->parser, &http_settings, b->base, (size_t)nread);
	enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
	if (hc->url_too_long) {
		http_error(hc, 414, "request target longer than %u bytes", HTTP_MAX_URL);
	} else if (hc->received - ((size_t)nread - used) > HTTP_MAX_REQUEST) {
		http_error(hc, 431, "request larger than %u bytes", HTTP_MAX_REQUEST);
	} else if (e != HPE_OK && e != HPE_PAUSED) {
		http_error(hc, 400, "malformed request: %s", http_errno_description(e));
	} else if (hc->has_body) {
		http_error(hc, 413, "a request body is not accepted here");
	} else if (hc->complete) {
		http_route(hc);
	}
}

static void http_on_timeout(uv_timer_t *t)
{
	struct http_conn *hc = t->data;
	if (hc->received == 0) {
		http_close(hc); /* a silent connection gets no answer */
		return;
	}
	http_error(hc, 408, "request not received within %u s", HTTP_TIMEOUT_MS / 1000);
}

static void http_on_connection(uv_stream_t *server, int status)
{
	struct master *m = server->data;
	if (status < 0) {
		log_warn(HTTP_SUBSYS, "event=accept_failed error=%s", uv_strerror(status));
		return;
	}
	struct http_conn *hc = xcalloc(1, sizeof(*hc));
	hc->m = m;
	uv_tcp_init(m->loop, &hc->tcp);
	uv_timer_init(m->loop, &hc->timer);
	hc->tcp.data = hc->timer.data = hc;
	hc->open_handles = 2;
	list_push_back(&m->http_conns, &hc->link);
	m->http_nconns++;
	if (uv_accept(server, (uv_stream_t *)&hc->tcp) < 0) {
		http_close(hc);
		return;
	}
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	if (uv_tcp_getpeername(&hc->tcp, (struct sockaddr *)&sa, &len) == 0)
		addr_format(&sa, hc->peer, sizeof(hc->peer));
	else
		snprintf(hc->peer, sizeof(hc->peer), "?");
	if (m->http_nconns > HTTP_MAX_CONNS) {
		log_warn(HTTP_SUBSYS, "peer=%s event=refused why=\"more than %u connections\"",
		         hc->peer, HTTP_MAX_CONNS);
		http_close(hc);
		return;
	}
	http_parser_init(&hc->parser, HTTP_REQUEST);
	hc->parser.data = hc;
	uv_timer_start(&hc->timer, http_on_timeout, HTTP_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&hc->tcp, http_alloc, http_on_read);
}

int http_start(struct master *m)
{
	list_init(&m->http_conns);
	m->stats.started_ms = uv_now(m->loop);
	if (!m->cfg.http_enabled)
		return 0;
	uv_tcp_init(m->loop, &m->http_listener);
	m->http_listener.data = m;
	m->http_listening = true;
	struct sockaddr_storage sa;
	int rc = uv_ip4_addr(m->cfg.http_host, m->cfg.http_port, (struct sockaddr_in *)&sa);
	if (rc < 0)
		rc = uv_ip6_addr(m->cfg.http_host, m->cfg.http_port, (struct sockaddr_in6 *)&sa);
	if (rc < 0) {
		log_error("master",
		          "--http: '%s' is not an IP address (give a numeric address such as "
		          "127.0.0.1, or off)",
		          m->cfg.http_host);
		return -1;
	}
	rc = uv_tcp_bind(&m->http_listener, (struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&m->http_listener, 128, http_on_connection);
	if (rc < 0) {
		if (!m->cfg.http_explicit) {
			/* The default address: a second master on this host must still start. */
			log_warn(
			    "master",
			    "event=http_off why=\"cannot listen on %s:%u: %s\" hint=\"set --http "
			    "HOST:PORT, or --http off\"",
			    m->cfg.http_host, m->cfg.http_port, uv_strerror(rc));
			http_stop(m);
			return 0;
		}
		log_error("master",
		          "--http: cannot listen on %s:%u: %s (set another --http, or off)",
		          m->cfg.http_host, m->cfg.http_port, uv_strerror(rc));
		return -1;
	}
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	uv_tcp_getsockname(&m->http_listener, (struct sockaddr *)&bound, &len);
	char where[64];
	addr_format(&bound, where, sizeof(where));
	log_info("master", "event=http_listening address=%s", where);
	return 0;
}

void http_stop(struct master *m)
{
	if (m->http_listening) {
		m->http_listening = false;
		uv_close((uv_handle_t *)&m->http_listener, NULL);
	}
	while (!list_empty(&m->http_conns))
		http_close(list_entry(list_first(&m->http_conns), struct http_conn, link));
}
