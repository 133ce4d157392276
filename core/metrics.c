/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text metrics on a localhost port (metrics_listen), off by default. */

/*
 * Not an HTTP server: one fixed answer to `GET /metrics` (404 to anything else), one request
 * per connection, on 127.0.0.1 or ::1 only. That is all a Prometheus scraper needs, and it
 * keeps an HTTP stack out of the agent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

static const double hb_bounds[10] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

int metrics_listen(struct agent *ag)
{
	const char *spec = ag->cfg.metrics_listen;
	char host[64];
	const char *colon;
	long long port;
	int fd, one = 1;
	struct sockaddr_storage ss;
	socklen_t len;

	if (spec == NULL || *spec == '\0')
		return -1;
	colon = strrchr(spec, ':');
	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host) ||
	    op_parse_i64(colon + 1, 1, 65535, &port) < 0) {
		op_log_error("metrics", "metrics_listen \"%s\": expected 127.0.0.1:PORT", spec);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	memset(&ss, 0, sizeof(ss));
	if (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	} else if (strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		in6->sin6_addr = in6addr_loopback;
		len = sizeof(*in6);
	} else {
		op_log_error("metrics",
			     "metrics_listen \"%s\": only 127.0.0.1 or [::1] (a localhost port)", spec);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
		op_log_error("metrics", "cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	op_log_info("metrics", "Prometheus metrics on http://%s/metrics", spec);
	return fd;
}

void metrics_observe_heartbeat(struct agent *ag, double latency, bool ok)
{
	struct ag_metrics *m = &ag->m;
	size_t i = 0;

	if (!ok) {
		m->hb_failures++;
		return;
	}
	while (i < OP_ARRAY_LEN(hb_bounds) && latency > hb_bounds[i])
		i++;
	m->hb_count[i]++;
	m->hb_sum += latency;
}

void metrics_observe_task(struct agent *ag, const char *type, const char *outcome, double secs)
{
	struct ag_metrics *m = &ag->m;
	char key[256];
	cJSON *e;

	if (m->durations == NULL && (m->durations = cJSON_CreateObject()) == NULL)
		return;
	snprintf(key, sizeof(key), "%s|%s", type, outcome);
	e = cJSON_GetObjectItemCaseSensitive(m->durations, key);
	if (e == NULL) {
		e = cJSON_AddObjectToObject(m->durations, key);
		if (e == NULL)
			return;
		cJSON_AddNumberToObject(e, "count", 0);
		cJSON_AddNumberToObject(e, "sum", 0);
	}
	cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count"),
			     cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count")) + 1);
	cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "sum"),
			     cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "sum")) + secs);
}

void metrics_release(struct ag_metrics *m)
{
	cJSON_Delete(m->durations);
	m->durations = NULL;
}

static void render(struct agent *ag, struct op_buf *b)
{
	struct ag_metrics *m = &ag->m;
	uint64_t cum = 0;
	const cJSON *e;

	op_buf_printf(b, "# HELP outpost_agent_info The agent's version and id.\n"
			 "# TYPE outpost_agent_info gauge\n"
			 "outpost_agent_info{version=\"%s\",agent_id=\"%s\"} 1\n",
		      OUTPOST_VERSION, ag->agent_id);
	op_buf_printf(b, "# HELP outpost_agent_heartbeat_latency_seconds Acknowledged heartbeats.\n"
			 "# TYPE outpost_agent_heartbeat_latency_seconds histogram\n");
	for (size_t i = 0; i < OP_ARRAY_LEN(hb_bounds); i++) {
		cum += m->hb_count[i];
		op_buf_printf(b, "outpost_agent_heartbeat_latency_seconds_bucket{le=\"%g\"} %llu\n",
			      hb_bounds[i], (unsigned long long)cum);
	}
	cum += m->hb_count[OP_ARRAY_LEN(hb_bounds)];
	op_buf_printf(b,
		      "outpost_agent_heartbeat_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
		      "outpost_agent_heartbeat_latency_seconds_sum %.6f\n"
		      "outpost_agent_heartbeat_latency_seconds_count %llu\n",
		      (unsigned long long)cum, m->hb_sum, (unsigned long long)cum);
	op_buf_printf(b,
		      "# HELP outpost_agent_heartbeat_failures_total Heartbeats without an answer or refused.\n"
		      "# TYPE outpost_agent_heartbeat_failures_total counter\n"
		      "outpost_agent_heartbeat_failures_total %llu\n",
		      (unsigned long long)m->hb_failures);
	op_buf_printf(b,
		      "# HELP outpost_agent_leases_total Leases received.\n"
		      "# TYPE outpost_agent_leases_total counter\n"
		      "outpost_agent_leases_total %llu\n"
		      "# HELP outpost_agent_leases_running Tasks running now.\n"
		      "# TYPE outpost_agent_leases_running gauge\n"
		      "outpost_agent_leases_running %d\n"
		      "# HELP outpost_agent_completions_total Outcomes acknowledged by the control plane.\n"
		      "# TYPE outpost_agent_completions_total counter\n"
		      "outpost_agent_completions_total %llu\n"
		      "# HELP outpost_agent_tls_handshakes_total Connections opened to the control plane.\n"
		      "# TYPE outpost_agent_tls_handshakes_total counter\n"
		      "outpost_agent_tls_handshakes_total %ld\n"
		      "# HELP outpost_agent_draining 1 while the agent takes no new leases.\n"
		      "# TYPE outpost_agent_draining gauge\n"
		      "outpost_agent_draining %d\n",
		      (unsigned long long)m->leases_total, lease_running(ag),
		      (unsigned long long)m->completions_total, rpc_connects(ag->rpc),
		      ag_draining(ag) ? 1 : 0);
	op_buf_printf(b, "# HELP outpost_agent_task_duration_seconds Task durations by type and outcome.\n"
			 "# TYPE outpost_agent_task_duration_seconds summary\n");
	cJSON_ArrayForEach(e, m->durations)
	{
		char type[200], outcome[64];
		const char *bar = strchr(e->string, '|');

		if (bar == NULL)
			continue;
		snprintf(type, sizeof(type), "%.*s", (int)(bar - e->string), e->string);
		snprintf(outcome, sizeof(outcome), "%s", bar + 1);
		op_buf_printf(b,
			      "outpost_agent_task_duration_seconds_sum{type=\"%s\",outcome=\"%s\"} %.6f\n"
			      "outpost_agent_task_duration_seconds_count{type=\"%s\",outcome=\"%s\"} %.0f\n",
			      type, outcome,
			      cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "sum")), type,
			      outcome, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count")));
	}
}

void metrics_handle(struct agent *ag, int lfd)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		char req[1024];
		struct pollfd p = {fd, POLLIN, 0};
		struct op_buf body = OP_BUF_INIT, resp = OP_BUF_INIT;
		ssize_t n = 0;

		if (poll(&p, 1, 200) > 0)
			n = recv(fd, req, sizeof(req) - 1, 0);
		req[n > 0 ? n : 0] = '\0';
		if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
			render(ag, &body);
			op_buf_printf(&resp,
				      "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
				      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				      body.len);
			op_buf_append(&resp, body.data, body.len);
		} else {
			op_buf_puts(&resp, "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n"
					   "Connection: close\r\n\r\nnot found\n");
		}
		if (resp.data)
			(void)send(fd, resp.data, resp.len, MSG_NOSIGNAL);
		op_buf_release(&body);
		op_buf_release(&resp);
		close(fd);
	}
}
