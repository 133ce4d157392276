/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS front: listener, TLS, routing, per-route auth and body checks, replies, access log. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "heap.h"
#include "jsonprint.h"
#include "log.h"
#include "redact.h"
#include "schema.h"
#include "server.h"
#include "units.h"
#include "util.h"

/* What a connection's client certificate turned out to be, checked once per connection. */
struct conn_cert {
	X509 *cert; /* not owned: identifies the certificate the result is for */
	bool trusted;
	char msg[300];
	char cn[80];
	char serial[65];
	int64_t not_before, not_after;
};

static int conn_idx = -1;

static void conn_cert_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			   void *argp)
{
	free(ptr);
}

/* ---- responses ------------------------------------------------------------------------- */

static void add_server_time(cJSON *body)
{
	char t[40];

	srv_fmt_time(srv_now_ms(), t, sizeof(t));
	srv_jset(body, "server_time", cJSON_CreateString(t));
}

void rq_ok(struct rq *r, int status, cJSON *body)
{
	cJSON_Delete(r->resp);
	r->status = status;
	r->resp = body ? body : cJSON_CreateObject();
}

void rq_error(struct rq *r, int status, const char *reason, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	cJSON *body = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(body, "reason", reason);
	cJSON_AddStringToObject(body, "message", msg);
	rq_ok(r, status, body);
	op_strlcpy(r->reason, reason, sizeof(r->reason));
	r->job.failed = true;
}

const char *rq_query(struct rq *r, const char *key)
{
	return r->has_query ? evhttp_find_header(&r->query, key) : NULL;
}

static void access_log(struct rq *r, size_t bytes)
{
	struct srv *s = r->srv;
	double ms = (double)(srv_mono_us() - r->t0_us) / 1000.0;
	char who[200] = "";
	struct op_buf line = OP_BUF_INIT, clean = OP_BUF_INIT;

	if (r->agent_id[0])
		snprintf(who, sizeof(who), " agent=%s", r->agent_id);
	else if (r->admin[0])
		snprintf(who, sizeof(who), " admin=%s", r->admin);
	op_buf_printf(&line, "%s %s %s %d %zu %.1fms%s%s%s", r->remote, r->method, r->path,
		      r->status, bytes, ms, who, r->reason[0] ? " reason=" : "", r->reason);
	if (line.data == NULL)
		goto out;
	if (s->access_stderr) {
		op_log_info("access", "%s", line.data);
	} else if (s->access_log) {
		char t[40];

		srv_fmt_time(srv_now_ms(), t, sizeof(t));
		if (op_redact(NULL, line.data, line.len, &clean) == 0 && clean.data)
			fprintf(s->access_log, "%s %s\n", t, clean.data);
	}
out:
	op_buf_release(&line);
	op_buf_release(&clean);
}

static void rq_free(struct rq *r)
{
	if (r->has_query)
		evhttp_clear_headers(&r->query);
	cJSON_Delete(r->body);
	cJSON_Delete(r->resp);
	cJSON_Delete(r->agent);
	cJSON_Delete(r->audit_detail);
	cJSON_Delete(r->work);
	cJSON_Delete(r->pend_resp);
	free(r->text);
	X509_REQ_free(r->csr);
	free(r);
}

void rq_send(struct rq *r)
{
	struct srv *s = r->srv;
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	char *text = NULL;
	size_t len = 0;

	if (r->status == 0)
		rq_error(r, 500, "internal", "the server produced no answer");
	if (r->text && r->status == 200) {
		len = strlen(r->text);
		evbuffer_add(buf, r->text, len);
		evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	} else if (r->status != 204) {
		if (r->resp == NULL)
			r->resp = cJSON_CreateObject();
		add_server_time(r->resp);
		text = op_json_print(r->resp, false);
	}
	if (text && r->text == NULL) {
		len = strlen(text);
		evbuffer_add(buf, text, len);
		evbuffer_add(buf, "\n", 1);
		len++;
		evhttp_add_header(h, "Content-Type", "application/json");
	}
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (r->retry_after > 0) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%d", r->retry_after);
		evhttp_add_header(h, "Retry-After", ra);
	}
	if (s->stopping)
		evhttp_add_header(h, "Connection", "close");
	if (r->status >= 500)
		s->responses_5xx++;
	evhttp_send_reply(r->req, r->status, NULL, buf);
	access_log(r, len);
	evbuffer_free(buf);
	cJSON_free(text);
	s->inflight--;
	rq_free(r);
}

/* ---- the job around a route -------------------------------------------------------------- */

static void job_run(struct dbjob *j, struct store *st)
{
	struct rq *r = (struct rq *)j;

	r->now_ms = srv_now_ms();
	switch (r->route->auth) {
	case AUTH_AGENT:
	case AUTH_AGENT_GRACE:
		agent_prelude(r, st);
		break;
	case AUTH_ADMIN:
		admin_prelude(r, st);
		break;
	default:
		break;
	}
	if (!j->failed && r->pend_status) {
		cJSON_Delete(r->resp);
		r->resp = r->pend_resp;
		r->pend_resp = NULL;
		r->status = r->pend_status;
		j->failed = true;
		return;
	}
	if (!j->failed && r->route->run)
		r->route->run(r, st);
}

static void job_after(struct dbjob *j, struct store *st)
{
	struct rq *r = (struct rq *)j;

	if (r->route->auth == AUTH_ADMIN)
		admin_audit(r, st);
}

static void job_done(struct dbjob *j)
{
	struct rq *r = (struct rq *)j;

	if (j->store_error) {
		r->job.failed = false;
		rq_error(r, 503, "store_unavailable",
			 "the server could not commit to its database; nothing was changed: retry later");
		r->retry_after = 1;
		rq_send(r);
		return;
	}
	if (r->route->done)
		r->route->done(r);
	else
		rq_send(r);
}

static void submit(struct rq *r)
{
	/* Overload is transient: 503 with Retry-After, never a 4xx an agent could take as final. */
	if (r->route->auth != AUTH_ADMIN &&
	    dbq_depth(r->srv->dbq) >= (uint64_t)r->srv->cfg.max_queue) {
		r->job.failed = false;
		cJSON_Delete(r->resp);
		r->resp = NULL;
		rq_error(r, 503, "overloaded", "the server is overloaded: retry in a moment");
		r->retry_after = 1 + (int)(r->t0_us % 5);
		rq_send(r);
		return;
	}
	r->job.run = job_run;
	r->job.done = job_done;
	r->job.after = job_after;
	dbq_submit(r->srv->dbq, &r->job);
}

void rq_submit(struct rq *r)
{
	submit(r);
}

/* ---- auth on the loop thread ------------------------------------------------------------- */

static bool auth_agent_tls(struct rq *r)
{
	struct srv *s = r->srv;
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct conn_cert *cc;
	X509 *peer;
	int64_t now = srv_now_ms();
	char t[40];

	peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	if (peer == NULL) {
		rq_error(r, 401, "cert_required",
			 "%s needs the agent's client certificate (mTLS) and none was sent", r->path);
		return false;
	}
	cc = SSL_get_ex_data(ssl, conn_idx);
	if (cc == NULL || cc->cert != peer) {
		cc = calloc(1, sizeof(*cc));
		if (cc == NULL) {
			rq_error(r, 503, "overloaded", "out of memory");
			return false;
		}
		cc->cert = peer;
		if (pki_verify_peer(&s->pki, peer, SSL_get_peer_cert_chain(ssl), cc->msg,
				    sizeof(cc->msg)) == 0) {
			if (pki_cert_fields(peer, cc->cn, sizeof(cc->cn), cc->serial,
					    &cc->not_before, &cc->not_after) < 0 ||
			    strncmp(cc->cn, "agt_", 4) != 0)
				snprintf(cc->msg, sizeof(cc->msg),
					 "client certificate is from this server's CA but does not name an agent");
			else
				cc->trusted = true;
		}
		if (SSL_set_ex_data(ssl, conn_idx, cc) != 1) {
			free(cc);
			rq_error(r, 503, "overloaded", "out of memory");
			return false;
		}
	}
	if (!cc->trusted) {
		rq_error(r, 403, "cert_untrusted", "%s", cc->msg);
		return false;
	}
	op_strlcpy(r->agent_id, cc->cn, sizeof(r->agent_id));
	op_strlcpy(r->serial, cc->serial, sizeof(r->serial));
	r->cert_not_before = cc->not_before;
	r->cert_not_after = cc->not_after;
	if (now < cc->not_before) {
		srv_fmt_time(cc->not_before, t, sizeof(t));
		rq_error(r, 403, "cert_not_yet_valid",
			 "client certificate is not valid before %s: check the clocks (NTP) of the agent host and the server",
			 t);
		return false;
	}
	if (now > cc->not_after) {
		double grace = s->cfg.cert_rotation_grace;
		char g[32];

		srv_fmt_time(cc->not_after, t, sizeof(t));
		op_format_duration(grace, g, sizeof(g));
		if (r->route->auth == AUTH_AGENT_GRACE && (double)(now - cc->not_after) <= grace * 1000) {
			r->cert_expired = true;
			return true;
		}
		if (r->route->auth == AUTH_AGENT_GRACE)
			rq_error(r, 403, "cert_expired",
				 "client certificate expired at %s, more than the rotation grace (%s) ago: "
				 "re-enroll the agent with a new enrollment token",
				 t, g);
		else
			rq_error(r, 403, "cert_expired",
				 "client certificate expired at %s: rotate it (outpost-agent rotate-cert) "
				 "within %s of expiry, or re-enroll",
				 t, g);
		return false;
	}
	return true;
}

static bool auth_admin_header(struct rq *r)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	const char *tok;

	if (h == NULL || h[0] == '\0') {
		rq_error(r, 401, "auth_required",
			 "admin routes need an admin token: Authorization: Bearer oa_...");
		return false;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		rq_error(r, 401, "auth_invalid", "the Authorization header must be \"Bearer <admin token>\"");
		return false;
	}
	tok = h + 7;
	while (*tok == ' ')
		tok++;
	if (!srv_token_shape_ok(tok, "oa_")) {
		rq_error(r, 401, "auth_invalid",
			 "that is not an admin token (admin tokens start with oa_)");
		return false;
	}
	srv_sha256_hex(tok, strlen(tok), r->token_hash);
	return true;
}

/* ---- bodies ------------------------------------------------------------------------------ */

static bool read_body(struct rq *r)
{
	struct srv *s = r->srv;
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
	const char *end = NULL;
	char err[600];
	char *text;

	if (len > s->cfg.max_body) {
		rq_error(r, 413, "body_too_large", "request body of %zu bytes is over the limit of %llu",
			 len, (unsigned long long)s->cfg.max_body);
		return false;
	}
	if (r->route->compiled == NULL) {
		return true;
	}
	if (len == 0) {
		r->body = cJSON_CreateObject();
	} else {
		if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
		    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
			rq_error(r, 415, "unsupported_media_type",
				 "request body must be JSON with Content-Type: application/json (got %s)",
				 ct ? ct : "none");
			return false;
		}
		op_heap_prepare_json(len);
		text = (char *)evbuffer_pullup(in, -1);
		r->body = cJSON_ParseWithLengthOpts(text, len, &end, false);
		if (r->body == NULL) {
			const char *at = cJSON_GetErrorPtr();
			long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;

			rq_error(r, 400, "bad_json", "request body is not valid JSON (error at byte %ld)", off);
			return false;
		}
		while (end && end < text + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
			end++;
		if (end && end < text + len) {
			rq_error(r, 400, "bad_json", "request body has data after the JSON value (at byte %ld)",
				 (long)(end - text));
			return false;
		}
	}
	if (!cJSON_IsObject(r->body)) {
		rq_error(r, 400, "invalid_field", "request body must be a JSON object");
		return false;
	}
	if (op_schema_validate(r->route->compiled, r->body, "body", err, sizeof(err)) < 0) {
		size_t n = strlen(err);
		bool unknown = n > 15 && strcmp(err + n - 15, ": unknown field") == 0;

		rq_error(r, 400, unknown ? "unknown_field" : "invalid_field", "%s", err);
		return false;
	}
	return true;
}

/* ---- routing ----------------------------------------------------------------------------- */

static bool match(const char *pattern, const char *path, char param[2][160])
{
	int k = 0;

	while (*pattern && *path) {
		if (pattern[0] == '{' && pattern[1] == '}') {
			const char *e = strchr(path, '/');
			size_t n = e ? (size_t)(e - path) : strlen(path);

			if (n == 0 || n >= 160 || k >= 2)
				return false;
			memcpy(param[k], path, n);
			param[k][n] = '\0';
			k++;
			path += n;
			pattern += 2;
			continue;
		}
		if (*pattern != *path)
			return false;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

static const struct route *find_route(struct rq *r, bool *path_known)
{
	struct route *tabs[2] = {agent_routes, admin_routes};
	size_t ns[2] = {agent_routes_n, admin_routes_n};
	char param[2][160];

	*path_known = false;
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < ns[t]; i++) {
			const struct route *rt = &tabs[t][i];

			if (!match(rt->pattern, r->path, param))
				continue;
			*path_known = true;
			if (strcmp(rt->method, r->method) != 0)
				continue;
			memcpy(r->param, param, sizeof(param));
			return rt;
		}
	}
	return NULL;
}

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	default:
		return "OTHER";
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct srv *s = arg;
	struct rq *r = calloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	bool known;

	if (r == NULL) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	s->requests++;
	s->inflight++;
	r->srv = s;
	r->req = req;
	r->t0_us = srv_mono_us();
	r->now_ms = srv_now_ms();
	op_strlcpy(r->method, method_name(evhttp_request_get_command(req)), sizeof(r->method));
	op_strlcpy(r->path, path && *path ? path : "/", sizeof(r->path));
	if (evcon) {
		char *addr = NULL;
		ev_uint16_t port = 0;

		evhttp_connection_get_peer(evcon, &addr, &port);
		snprintf(r->remote, sizeof(r->remote), "%s", addr ? addr : "-");
	}
	if (query && evhttp_parse_query_str(query, &r->query) == 0)
		r->has_query = true;
	if (s->stopping) {
		rq_error(r, 503, "shutting_down", "the server is stopping: retry in a moment");
		r->retry_after = 1;
		rq_send(r);
		return;
	}
	r->route = find_route(r, &known);
	if (r->route == NULL) {
		if (known)
			rq_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method, r->path);
		else
			rq_error(r, 404, "not_found", "no route %s %s", r->method, r->path);
		rq_send(r);
		return;
	}
	if (r->route->auth == AUTH_AGENT || r->route->auth == AUTH_AGENT_GRACE) {
		if (!auth_agent_tls(r)) {
			rq_send(r);
			return;
		}
	} else if (r->route->auth == AUTH_ADMIN) {
		if (!auth_admin_header(r)) {
			rq_send(r);
			return;
		}
	}
	if (!read_body(r) || (r->route->pre && !r->route->pre(r))) {
		if ((r->route->auth == AUTH_AGENT || r->route->auth == AUTH_AGENT_GRACE) &&
		    r->status < 500) {
			/* the agent's state first: see struct rq */
			r->pend_status = r->status;
			r->pend_resp = r->resp;
			r->resp = NULL;
			r->status = 0;
			r->job.failed = false;
			submit(r);
			return;
		}
		rq_send(r);
		return;
	}
	if (r->route->run == NULL) { /* answered on the loop (e.g. /health) */
		if (r->route->done)
			r->route->done(r);
		else
			rq_send(r);
		return;
	}
	submit(r);
}

/* ---- listener ---------------------------------------------------------------------------- */

static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	struct srv *s = arg;
	SSL *ssl = SSL_new(s->ssl);
	struct bufferevent *bev;

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int compile_schemas(struct route *routes, size_t n, struct op_error *err)
{
	char msg[512];

	for (size_t i = 0; i < n; i++) {
		if (routes[i].schema == NULL || routes[i].compiled)
			continue;
		routes[i].compiled = cJSON_Parse(routes[i].schema);
		if (routes[i].compiled == NULL ||
		    op_schema_check(routes[i].compiled, msg, sizeof(msg)) < 0) {
			op_fail(err, OP_EINVAL, "built-in schema of %s %s is broken: %s",
				routes[i].method, routes[i].pattern,
				routes[i].compiled ? msg : "not JSON");
			return -1;
		}
	}
	return 0;
}

static struct srv *accept_srv; /* the listener's own argument belongs to evhttp */

static void accept_again(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;

	if (s->listener && !s->stopping)
		evconnlistener_enable(s->listener);
}

/* accept() failed, usually EMFILE: out of descriptors. The listener would be woken again at
 * once and spin; pause it for 200 ms instead, and say so (at most every 10 s). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct srv *s = accept_srv;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {0, 200000};

	if (srv_mono_us() - s->accept_warned_us > 10 * 1000000LL) {
		s->accept_warned_us = srv_mono_us();
		op_log_warn("server",
			    "cannot accept connections: %s (raise LimitNOFILE / ulimit -n; the server "
			    "uses one descriptor per agent connection)",
			    evutil_socket_error_to_string(e));
	}
	evconnlistener_disable(l);
	if (s->accept_ev == NULL)
		s->accept_ev = evtimer_new(s->base, accept_again, s);
	if (s->accept_ev)
		evtimer_add(s->accept_ev, &tv);
}

op_rc srv_http_start(struct srv *s, struct op_error *err)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss), one = 1;
	struct timeval idle;
	evutil_socket_t fd;

	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_cert_free);
	if (compile_schemas(agent_routes, agent_routes_n, err) < 0 ||
	    compile_schemas(admin_routes, admin_routes_n, err) < 0)
		return OP_EINVAL;
	s->ssl = pki_server_ctx(&s->pki, err);
	if (s->ssl == NULL)
		return OP_ETLS;
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(s->cfg.listen, (struct sockaddr *)&ss, &sslen) < 0)
		return op_fail(err, OP_EINVAL, "listen: \"%s\" is not address:port (e.g. 127.0.0.1:8000 or [::]:8000)",
			       s->cfg.listen);
	s->listener = evconnlistener_new_bind(s->base, NULL, NULL,
					      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
						      LEV_OPT_CLOSE_ON_EXEC,
					      4096, (struct sockaddr *)&ss, sslen);
	if (s->listener == NULL)
		return op_fail(err, OP_ENET, "cannot listen on %s: %s", s->cfg.listen,
			       strerror(errno));
	accept_srv = s;
	evconnlistener_set_error_cb(s->listener, on_accept_error);
	fd = evconnlistener_get_fd(s->listener);
	/* Accepted sockets inherit TCP_NODELAY on Linux: small JSON replies go out at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->http = evhttp_new(s->base);
	if (s->http == NULL || evhttp_bind_listener(s->http, s->listener) == NULL)
		return op_fail(err, OP_ENOMEM, "cannot start the HTTP server");
	evhttp_set_bevcb(s->http, new_bev, s);
	evhttp_set_gencb(s->http, on_request, s);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						    EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
						    EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
	/* Bodies a little over max_body get our own 413 with a reason; far over, libevent's. */
	evhttp_set_max_body_size(s->http, (ev_ssize_t)(s->cfg.max_body * 2 + 65536));
	evhttp_set_max_headers_size(s->http, 64 * 1024);
	idle.tv_sec = (time_t)s->cfg.idle_timeout;
	idle.tv_usec = (suseconds_t)((s->cfg.idle_timeout - (double)idle.tv_sec) * 1e6);
	evhttp_set_timeout_tv(s->http, &idle);
	evhttp_set_default_content_type(s->http, "application/json");
	return OP_OK;
}

void srv_http_stop(struct srv *s)
{
	if (s->accept_ev) {
		event_free(s->accept_ev);
		s->accept_ev = NULL;
	}
	if (s->http) {
		evhttp_free(s->http); /* frees the bound listener too */
		s->http = NULL;
		s->listener = NULL;
	} else if (s->listener) {
		evconnlistener_free(s->listener);
		s->listener = NULL;
	}
	if (s->ssl) {
		SSL_CTX_free(s->ssl);
		s->ssl = NULL;
	}
}
