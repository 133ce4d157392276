/* SPDX-License-Identifier: Apache-2.0 */
/* The transfer engine: every request of a task over one curl multi handle and its pool. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * A task's requests share one multi handle, so connections (and TLS sessions) are pooled and
 * reused across them; at most `concurrency` transfers run at once. The loop polls curl with a
 * short timeout and checks the cancel flag between polls; the progress callback checks it
 * inside transfers too, so a cancel stops everything within ~100 ms.
 *
 * A transfer that fails in a way its retry policy names is parked with a due time and
 * re-added later on the same easy handle. Secrets are fetched once per (name, host) before
 * anything is sent, and never logged.
 */

enum xstate { X_PENDING, X_RUNNING, X_WAITING, X_DONE };

struct xfer {
	struct http_spec *spec;
	CURL *easy;
	enum xstate state;
	int attempts;
	int redirects; /* manual redirects (header auth only) */
	double due;
	double first_start;
	char *url; /* owned: current URL when redirects are followed by hand */
	bool to_get; /* a redirect turned the request into a GET */
	struct curl_slist *headers; /* owned: spec headers + ours (may hold a secret) */
	bool auth_header_sent;
	struct http_buf body;
	uint64_t keep;
	uint64_t received;
	bool too_large;
	int art_fd;
	int art_errno;
	char art_name[256];
	int up_fd;
	curl_off_t up_off, up_size;
	const char *password, *token, *header_value, *key_blob, *key_pass;
	size_t key_blob_len;
	char errbuf[CURL_ERROR_SIZE];
};

struct engine {
	outpost_ctx *ctx;
	struct http_settings *st;
	CURLM *multi;
	struct xfer *x;
	int n;
	int running, waiting;
	bool stop_new;
	int failed, logged_failures;
	char *first_err;
	size_t first_err_len;
	cJSON **results;
	bool batch;
	int done;
	double last_progress;
	/* finished transfers' easy handles, reset and kept for the next ones */
	CURL **spare;
	int n_spare, max_spare;
};

static int tolower_ascii(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* POST, PUT and PATCH send a body even when it is empty (Content-Length: 0). */
static bool wants_body(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	       strcmp(method, "PATCH") == 0;
}

static bool is_cancelled(struct engine *e)
{
	return atomic_load(&e->st->cancelled) || outpost_host->is_cancelled(e->ctx);
}

/* ---- callbacks -------------------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;

	x->received += len;
	if (x->received > x->spec->max_size) {
		x->too_large = true;
		return 0;
	}
	if (x->body.len < x->keep) {
		size_t take = len;

		if (take > x->keep - x->body.len)
			take = (size_t)(x->keep - x->body.len);
		if (http_buf_append(&x->body, data, take) < 0)
			return 0;
	}
	if (x->art_fd >= 0) {
		size_t off = 0;

		while (off < len) {
			ssize_t w = write(x->art_fd, data + off, len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				x->art_errno = w < 0 ? errno : EIO;
				return 0;
			}
			off += (size_t)w;
		}
	}
	return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return is_cancelled(arg) ? 1 : 0;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	ssize_t r;

	do
		r = pread(x->up_fd, buf, size * nitems, x->up_off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return CURL_READFUNC_ABORT;
	x->up_off += r;
	return (size_t)r;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct xfer *x = arg;

	if (origin != SEEK_SET || offset < 0 || offset > x->up_size)
		return CURL_SEEKFUNC_CANTSEEK;
	x->up_off = offset;
	return CURL_SEEKFUNC_OK;
}

/* ---- preparing: secrets and files, before anything is sent ------------------------------ */

/* Fetches secret NAME for HOST; FIELD names the param for the message. */
static int get_secret(struct engine *e, const struct http_spec *s, const char *field,
		      const char *name, const char **value, size_t *len)
{
	size_t n = 0;
	const char *v = outpost_host->secret(e->ctx, name, s->host, &n);

	if (v == NULL)
		return outpost_fail(e->ctx, OUTPOST_ERR_DENIED,
				    "%s.%s: secret \"%s\" is not available for %s: it is unknown to "
				    "this agent, or its allow list (types, hosts) in the agent config "
				    "refuses it; nothing was sent",
				    s->label, field, name, s->host);
	*value = v;
	if (len)
		*len = n;
	return OUTPOST_OK;
}

static int check_file(struct engine *e, const struct http_spec *s, const char *field,
		      const char *path)
{
	if (path == NULL || access(path, R_OK) == 0)
		return OUTPOST_OK;
	return outpost_fail(e->ctx, OUTPOST_ERR_PARAMS,
			    "%s.%s: cannot read \"%s\": %s (relative paths start at the task "
			    "workspace %s); nothing was sent",
			    s->label, field, path, strerror(errno), outpost_host->workspace(e->ctx));
}

static int prepare(struct engine *e, struct xfer *x)
{
	const struct http_spec *s = x->spec;
	int rc;

	/* One secret fetch per (name, host): batches reuse the previous request's values. */
	if (x > e->x) {
		const struct xfer *p = x - 1;
		const struct http_spec *ps = p->spec;

		if (strcmp(ps->host, s->host) == 0) {
			if (s->auth_secret && ps->auth_secret && strcmp(s->auth_secret, ps->auth_secret) == 0 &&
			    s->auth_kind == ps->auth_kind) {
				x->password = p->password;
				x->token = p->token;
				x->header_value = p->header_value;
			}
			if (s->client_key_secret && ps->client_key_secret &&
			    strcmp(s->client_key_secret, ps->client_key_secret) == 0) {
				x->key_blob = p->key_blob;
				x->key_blob_len = p->key_blob_len;
			}
			if (s->key_password_secret && ps->key_password_secret &&
			    strcmp(s->key_password_secret, ps->key_password_secret) == 0)
				x->key_pass = p->key_pass;
		}
	}
	if (s->auth_kind != AUTH_NONE && !x->password && !x->token && !x->header_value) {
		const char *v;

		if ((rc = get_secret(e, s, "auth.secret", s->auth_secret, &v, NULL)) != OUTPOST_OK)
			return rc;
		if (s->auth_kind == AUTH_BASIC)
			x->password = v;
		else if (s->auth_kind == AUTH_BEARER)
			x->token = v;
		else
			x->header_value = v;
	}
	if (s->client_key_secret && !x->key_blob &&
	    (rc = get_secret(e, s, "tls.client_key_secret", s->client_key_secret, &x->key_blob,
			     &x->key_blob_len)) != OUTPOST_OK)
		return rc;
	if (s->key_password_secret && !x->key_pass &&
	    (rc = get_secret(e, s, "tls.key_password_secret", s->key_password_secret, &x->key_pass,
			     NULL)) != OUTPOST_OK)
		return rc;
	if (s->auth_kind != AUTH_NONE && strncasecmp(s->url, "http://", 7) == 0 &&
	    (x == e->x || strcmp(x[-1].spec->host, s->host) != 0 || x[-1].spec->auth_kind == AUTH_NONE))
		outpost_warn(e->ctx, "%s: sends the credentials of secret \"%s\" to %s over plain "
				     "http:// (unencrypted)",
			     s->label, s->auth_secret, s->host);
	if (x->header_value && strpbrk(x->header_value, "\r\n") != NULL)
		return outpost_fail(e->ctx, OUTPOST_ERR_PARAMS,
				    "%s.auth.secret: secret \"%s\" holds a line break and cannot be "
				    "sent as a header",
				    s->label, s->auth_secret);
	if ((rc = check_file(e, s, "tls.ca_file", s->ca_file)) != OUTPOST_OK ||
	    (rc = check_file(e, s, "tls.client_cert", s->client_cert)) != OUTPOST_OK ||
	    (rc = check_file(e, s, "tls.client_key", s->client_key)) != OUTPOST_OK ||
	    (rc = check_file(e, s, "body_file", s->body_file)) != OUTPOST_OK)
		return rc;
	if (s->body_file) {
		struct stat sb;

		if (stat(s->body_file, &sb) < 0 || !S_ISREG(sb.st_mode))
			return outpost_fail(e->ctx, OUTPOST_ERR_PARAMS,
					    "%s.body_file: \"%s\" is not a regular file; nothing was sent",
					    s->label, s->body_file);
	}
	return OUTPOST_OK;
}

/* ---- one attempt ------------------------------------------------------------------------ */

static void free_headers(struct xfer *x)
{
	for (struct curl_slist *l = x->headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(x->headers);
	x->headers = NULL;
}

static int build_headers(struct xfer *x, bool with_auth_header)
{
	const struct http_spec *s = x->spec;
	struct curl_slist *l;

	free_headers(x);
	for (const struct curl_slist *h = s->headers; h; h = h->next) {
		if ((l = curl_slist_append(x->headers, h->data)) == NULL)
			return -1;
		x->headers = l;
	}
	if (s->body_kind == BODY_NONE && !x->to_get && wants_body(s->method) &&
	    !s->has_content_type) {
		/* curl would otherwise label an empty body as a form */
		if ((l = curl_slist_append(x->headers, "Content-Type:")) == NULL)
			return -1;
		x->headers = l;
	}
	if (s->body_kind != BODY_NONE && !x->to_get) {
		if (!s->has_content_type) {
			const char *ct = s->body_kind == BODY_JSON   ? "Content-Type: application/json"
					 : s->body_kind == BODY_TEXT ? "Content-Type: text/plain; charset=utf-8"
								     : "Content-Type: application/octet-stream";

			if ((l = curl_slist_append(x->headers, ct)) == NULL)
				return -1;
			x->headers = l;
		}
		if ((l = curl_slist_append(x->headers, "Expect:")) == NULL)
			return -1;
		x->headers = l;
	}
	x->auth_header_sent = false;
	if (x->header_value && with_auth_header) {
		size_t n = strlen(s->auth_header) + strlen(x->header_value) + 3;
		char *line = malloc(n);

		if (line == NULL)
			return -1;
		snprintf(line, n, "%s: %s", s->auth_header, x->header_value);
		l = curl_slist_append(x->headers, line);
		explicit_bzero(line, n);
		free(line);
		if (l == NULL)
			return -1;
		x->headers = l;
		x->auth_header_sent = true;
	}
	return 0;
}

/* Sets the method and body options; called again when a redirect turns it into a GET. */
static void set_method(struct xfer *x)
{
	const struct http_spec *s = x->spec;
	CURL *h = x->easy;
	const char *m = x->to_get ? "GET" : s->method;

	if (x->to_get || (s->body_kind == BODY_NONE && !wants_body(m))) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
		if (strcmp(m, "HEAD") == 0) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else {
			curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(m, "GET") == 0 ? NULL : m);
		}
		return;
	}
	if (s->body_kind == BODY_FILE) {
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
		if (strcmp(m, "POST") == 0) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, x->up_size);
		} else {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, x->up_size);
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(m, "PUT") == 0 ? NULL : m);
		}
		return;
	}
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->body_text ? s->body_text : "");
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(m, "POST") == 0 ? NULL : m);
}

/* Creates and configures the easy handle (first attempt only). */
static int setup_easy(struct engine *e, struct xfer *x)
{
	const struct http_spec *s = x->spec;
	const struct http_settings *st = e->st;
	CURL *h = e->n_spare > 0 ? e->spare[--e->n_spare] : curl_easy_init();
	const char *proxy;

	if (h == NULL)
		return -1;
	x->easy = h;
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	curl_easy_setopt(h, CURLOPT_URL, x->url ? x->url : s->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, st->user_agent);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, e);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(s->connect_timeout * 1000 + 0.5));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(s->timeout * 1000 + 0.5));
	/* Header auth follows redirects by hand, so the header never leaves its host. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, s->follow && s->auth_kind != AUTH_HEADER ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, s->max_redirects);
	curl_easy_setopt(h, CURLOPT_POSTREDIR, 0L);
	/* TLS */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->tls_verify ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->tls_verify ? 2L : 0L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, s->tls_min);
	if (s->ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	} else if (st->ca_file) {
		/* The agent's CA bundle beside the system store (CAPATH). */
		curl_easy_setopt(h, CURLOPT_CAINFO, st->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
		curl_easy_setopt(h, CURLOPT_PROXY_CAINFO, st->ca_file);
		curl_easy_setopt(h, CURLOPT_PROXY_CAPATH, "/etc/ssl/certs");
	}
	if (s->client_cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, s->client_cert);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (s->client_key)
		curl_easy_setopt(h, CURLOPT_SSLKEY, s->client_key);
	if (x->key_blob) {
		struct curl_blob blob = {(void *)x->key_blob, x->key_blob_len, CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (x->key_pass)
		curl_easy_setopt(h, CURLOPT_KEYPASSWD, x->key_pass);
	/* Proxy: always set, so libcurl never reads proxy variables from the environment. */
	proxy = s->proxy_set ? s->proxy : st->proxy;
	curl_easy_setopt(h, CURLOPT_PROXY, proxy ? proxy : "");
	if (proxy) {
		const char *np = s->no_proxy ? s->no_proxy : s->proxy_set ? NULL : st->no_proxy;

		curl_easy_setopt(h, CURLOPT_NOPROXY, np ? np : "");
	}
	/* Auth: curl keeps basic and bearer credentials to the first host on redirects. */
	if (x->password) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, s->auth_username);
		curl_easy_setopt(h, CURLOPT_PASSWORD, x->password);
	} else if (x->token) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, x->token);
	}
	if (build_headers(x, true) < 0)
		return -1;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
	set_method(x);
	return 0;
}

/* Starts X's transfer, or restarts it for a retry or a REDIRECT followed by hand.
 * Returns OUTPOST_OK, or an error that stops the task. */
static int start(struct engine *e, struct xfer *x, bool redirect)
{
	const struct http_spec *s = x->spec;

	if (x->attempts == 0) {
		x->art_fd = x->up_fd = -1;
		x->first_start = http_now();
		x->keep = s->resp_mode == RESP_TEXT || s->body_re_compiled || s->n_exp_json > 0
				  ? s->max_text
				  : 0;
		if (s->body_file) {
			struct stat sb;

			x->up_fd = open(s->body_file, O_RDONLY | O_CLOEXEC);
			if (x->up_fd < 0 || fstat(x->up_fd, &sb) < 0)
				return outpost_fail(e->ctx, OUTPOST_ERR_FAILED,
						    "%s.body_file: cannot open \"%s\": %s", s->label,
						    s->body_file, strerror(errno));
			x->up_size = sb.st_size;
		}
		if (s->resp_mode == RESP_ARTIFACT) {
			const char *an = x->art_name;

			if (s->artifact != NULL)
				snprintf(x->art_name, sizeof(x->art_name), "%s", s->artifact);
			else if (e->batch)
				snprintf(x->art_name, sizeof(x->art_name), "response-%d.body", s->index);
			else
				snprintf(x->art_name, sizeof(x->art_name), "response.body");
			if (outpost_host->artifact_open(e->ctx, an, &x->art_fd) < 0)
				return outpost_fail(e->ctx, OUTPOST_ERR_FAILED,
						    "%s.response.artifact: cannot create artifact \"%s\" "
						    "in the workspace (does another request use the same "
						    "name?)",
						    s->label, an);
		}
		if (setup_easy(e, x) < 0)
			return outpost_fail(e->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	} else {
		/* A retry or a redirect: start the body over. */
		x->body.len = 0;
		x->received = 0;
		x->too_large = false;
		x->up_off = 0;
		x->errbuf[0] = '\0';
		if (x->art_fd >= 0 && (ftruncate(x->art_fd, 0) < 0 || lseek(x->art_fd, 0, SEEK_SET) < 0))
			x->art_errno = errno;
	}
	if (!redirect)
		x->attempts++;
	x->errbuf[0] = '\0';
	if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK)
		return outpost_fail(e->ctx, OUTPOST_ERR_INTERNAL, "libcurl refused a transfer");
	x->state = X_RUNNING;
	e->running++;
	return OUTPOST_OK;
}

/* ---- results ------------------------------------------------------------------------------ */

static double secs(CURL *h, CURLINFO what)
{
	curl_off_t us = 0;

	curl_easy_getinfo(h, what, &us);
	return (double)us / 1e6;
}

static void add_headers(cJSON *out, CURL *h)
{
	cJSON *obj = cJSON_CreateObject();
	struct curl_header *prev = NULL, *hv;

	if (obj == NULL)
		return;
	while ((hv = curl_easy_nextheader(h, CURLH_HEADER, -1, prev)) != NULL) {
		char name[256];
		size_t i;
		cJSON *have;

		for (i = 0; hv->name[i] && i + 1 < sizeof(name); i++)
			name[i] = (char)tolower_ascii(hv->name[i]);
		name[i] = '\0';
		have = cJSON_GetObjectItemCaseSensitive(obj, name);
		if (have != NULL && cJSON_IsString(have)) {
			size_t n = strlen(have->valuestring) + strlen(hv->value) + 3;
			char *joined = malloc(n);

			if (joined != NULL) {
				snprintf(joined, n, "%s, %s", have->valuestring, hv->value);
				cJSON_ReplaceItemInObjectCaseSensitive(obj, name,
								       cJSON_CreateString(joined));
				free(joined);
			}
		} else {
			cJSON_AddStringToObject(obj, name, hv->value);
		}
		prev = hv;
	}
	cJSON_AddItemToObject(out, "headers", obj);
}

static void add_body(cJSON *out, struct xfer *x, bool cut)
{
	bool valid = false;
	size_t ok = http_utf8_prefix(x->body.data ? x->body.data : "", x->body.len, &valid);

	if (valid || (cut && x->body.len - ok < 4 && ok > 0)) {
		char save = x->body.data ? x->body.data[ok] : 0;

		if (x->body.data)
			x->body.data[ok] = '\0';
		cJSON_AddStringToObject(out, "body", x->body.data ? x->body.data : "");
		if (x->body.data)
			x->body.data[ok] = save;
	} else {
		char *b64 = http_base64_encode(x->body.data, x->body.len);

		if (b64 != NULL) {
			cJSON_AddStringToObject(out, "body", b64);
			cJSON_AddStringToObject(out, "body_encoding", "base64");
			free(b64);
		}
	}
	cJSON_AddBoolToObject(out, "body_truncated", cut);
}

/* HOST's first address as text (HOST may be a literal), or NULL. Used on error paths only. */
static const char *resolve_one(const char *host, char *out, size_t size)
{
	struct addrinfo hints, *ai = NULL;
	char h[256];
	size_t n = strlen(host);
	const char *r = NULL;

	/* [v6] literals as the URL spells them */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(h)) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
	} else {
		snprintf(h, sizeof(h), "%s", host);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(h, NULL, &hints, &ai) != 0 || ai == NULL)
		return NULL;
	if (ai->ai_family == AF_INET)
		r = inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, out,
			      (socklen_t)size);
	else if (ai->ai_family == AF_INET6)
		r = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, out,
			      (socklen_t)size);
	freeaddrinfo(ai);
	return r;
}

/* The local address the kernel would use towards REMOTE_IP: the agent's egress address on
 * that route (before any NAT). */
static void egress_ip(const char *remote_ip, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = -1;

	out[0] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (remote_ip == NULL || !remote_ip[0])
		return;
	if (inet_pton(AF_INET, remote_ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(9);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, remote_ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(9);
		len = sizeof(struct sockaddr_in6);
	} else {
		return;
	}
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
		struct sockaddr_storage me;
		socklen_t ml = sizeof(me);

		if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
			if (me.ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->sin_addr, out,
					  (socklen_t)size);
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->sin6_addr, out,
					  (socklen_t)size);
		}
	}
	close(fd);
}

static const char *used_proxy(struct engine *e, const struct http_spec *s)
{
	return s->proxy_set ? s->proxy : e->st->proxy;
}

static bool status_none(CURL *h)
{
	long status = 0;

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	return status == 0;
}

/* The message a user sees for a transfer that failed with RES. */
static void describe_error(struct engine *e, struct xfer *x, CURLcode res, char *out, size_t size)
{
	const struct http_spec *s = x->spec;
	CURL *h = x->easy;
	char *cip = NULL, *redirect = NULL, *eff = NULL;
	const char *ip;
	char me[INET6_ADDRSTRLEN + 1] = "", a[64], host_port[300];
	long port = 0, connect_code = 0, os_errno = 0;
	bool show_ip;
	char ipbuf[INET6_ADDRSTRLEN + 1];
	const char *proxy = used_proxy(e, s);
	const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
	double t_connect = secs(h, CURLINFO_CONNECT_TIME_T);

	curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &cip);
	ip = cip;
	curl_easy_getinfo(h, CURLINFO_PRIMARY_PORT, &port);
	curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &redirect);
	curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
	if (eff == NULL)
		eff = s->url;
	{
		CURLU *u = curl_url();
		char *hp = NULL, *pp = NULL;

		if (u && curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_HOST, &hp, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_PORT, &pp, CURLU_DEFAULT_PORT) == CURLUE_OK)
			snprintf(host_port, sizeof(host_port), "%s port %s", hp, pp);
		else
			snprintf(host_port, sizeof(host_port), "%s", s->host);
		curl_free(hp);
		curl_free(pp);
		curl_url_cleanup(u);
	}
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	if ((ip == NULL || !ip[0]) && !proxy)
		ip = resolve_one(s->host, ipbuf, sizeof(ipbuf));
	if (ip && ip[0] && !proxy)
		egress_ip(ip, me, sizeof(me));
	show_ip = ip && ip[0] && strcmp(ip, s->host) != 0;
	if (x->too_large) {
		http_fmt_size(s->max_size, a, sizeof(a));
		snprintf(out, size,
			 "the response body is larger than response.max_size (%s); raise it, or "
			 "save the body as an artifact (response.body: \"artifact\")",
			 a);
	} else if (x->art_errno) {
		snprintf(out, size, "cannot write the response body to its artifact: %s",
			 strerror(x->art_errno));
	} else if (proxy && connect_code != 0 && connect_code != 200) {
		snprintf(out, size,
			 "the proxy %s refused to open a tunnel (CONNECT) to %s: HTTP %ld; check "
			 "the proxy's rules for this destination, or set params.proxy (\"none\" "
			 "for a direct connection)",
			 proxy, host_port, connect_code);
	} else if (res == CURLE_COULDNT_RESOLVE_PROXY) {
		snprintf(out, size,
			 "cannot resolve the proxy host of %s: %s; check the agent's proxy setting "
			 "(https_proxy in the agent config) and DNS",
			 proxy ? proxy : "?", detail);
	} else if (res == CURLE_COULDNT_RESOLVE_HOST) {
		snprintf(out, size,
			 "cannot resolve host \"%s\": %s; check that the name exists in DNS as seen "
			 "from the agent host (/etc/resolv.conf)%s",
			 s->host, detail, proxy ? " and from the proxy" : "");
	} else if (res == CURLE_COULDNT_CONNECT && proxy && (t_connect == 0)) {
		snprintf(out, size, "cannot connect to the proxy %s: %s; check the proxy setting",
			 proxy, detail);
	} else if (res == CURLE_COULDNT_CONNECT) {
		snprintf(out, size,
			 "cannot connect to %s%s%s%s: %s; check that the service listens there and "
			 "that firewalls and allowlists on the way let this agent's address%s%s "
			 "through",
			 host_port, show_ip ? " (" : "", show_ip ? ip : "", show_ip ? ")" : "",
			 os_errno ? strerror((int)os_errno) : detail,
			 me[0] ? " " : "", me);
	} else if (res == CURLE_OPERATION_TIMEDOUT && t_connect == 0 && !x->received) {
		http_fmt_duration(s->connect_timeout < s->timeout ? s->connect_timeout : s->timeout,
				  a, sizeof(a));
		snprintf(out, size,
			 "connection to %s%s%s%s timed out after %s: %s; a firewall or allowlist on "
			 "the way may be dropping packets from this agent's address%s%s",
			 host_port, show_ip ? " (" : "", show_ip ? ip : "", show_ip ? ")" : "", a,
			 detail, me[0] ? " " : "", me);
	} else if (res == CURLE_OPERATION_TIMEDOUT) {
		http_fmt_duration(s->timeout, a, sizeof(a));
		snprintf(out, size,
			 "timed out after %s (params.timeout) with %llu bytes of the response "
			 "received: %s",
			 a, (unsigned long long)x->received, detail);
	} else if (strstr(detail, "certificate required") != NULL ||
		   (res == CURLE_SSL_CONNECT_ERROR && strstr(detail, "handshake failure") &&
		    s->client_cert == NULL)) {
		snprintf(out, size,
			 "TLS: %s refused the connection without a client certificate (%s); give "
			 "tls.client_cert and tls.client_key",
			 s->host, detail);
	} else if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE) {
		if (strstr(detail, "subject name") || strstr(detail, "does not match"))
			snprintf(out, size,
				 "TLS: the certificate of %s does not name that host (%s); use a URL "
				 "with a name the certificate holds",
				 s->host, detail);
		else
			snprintf(out, size,
				 "TLS: the certificate of %s is not trusted (%s); give the CA that "
				 "signed it in tls.ca_file",
				 s->host, detail);
	} else if (res == CURLE_SSL_CERTPROBLEM) {
		snprintf(out, size, "TLS: cannot use the client certificate or key: %s; check "
				    "tls.client_cert and tls.client_key",
			 detail);
	} else if (res == CURLE_SSL_CONNECT_ERROR && strstr(detail, "protocol version")) {
		snprintf(out, size,
			 "TLS handshake with %s failed: %s; the server offers no TLS version at or "
			 "above tls.min_version",
			 host_port, detail);
	} else if (res == CURLE_SSL_CONNECT_ERROR) {
		snprintf(out, size, "TLS handshake with %s failed: %s", host_port, detail);
	} else if (res == CURLE_TOO_MANY_REDIRECTS) {
		snprintf(out, size,
			 "more than %ld redirects (max_redirects); the last one pointed at %s",
			 s->max_redirects, redirect ? redirect : "?");
	} else if ((res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR) && status_none(h) &&
		   secs(h, CURLINFO_APPCONNECT_TIME_T) > 0 && s->client_cert == NULL) {
		/* TLS 1.3: a server that wants a client certificate says so after the handshake,
		 * and its alert may be lost to the reset that follows it. */
		snprintf(out, size,
			 "the connection to %s broke right after the TLS handshake: %s; if the "
			 "server requires a client certificate, give tls.client_cert and "
			 "tls.client_key",
			 host_port, detail);
	} else if (res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR || res == CURLE_GOT_NOTHING ||
		   res == CURLE_PARTIAL_FILE) {
		snprintf(out, size, "the connection to %s broke: %s", host_port, detail);
	} else {
		snprintf(out, size, "%s", detail);
	}
}

static unsigned error_class(CURLcode res)
{
	switch (res) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return RETRY_DNS;
	case CURLE_COULDNT_CONNECT:
		return RETRY_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return RETRY_TIMEOUT;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return RETRY_RESET;
	case CURLE_SSL_CONNECT_ERROR:
		return RETRY_TLS;
	default:
		return 0;
	}
}

/* Records a failure: the task's first error, a warning in the log (a few per batch). */
static void note_failure(struct engine *e, struct xfer *x, const char *msg)
{
	char line[1536];
	const struct http_spec *s = x->spec;

	if (e->batch)
		snprintf(line, sizeof(line), "requests[%d]%s%s%s %s %s: %s", s->index,
			 s->name ? " (" : "", s->name ? s->name : "", s->name ? ")" : "",
			 x->to_get ? "GET" : s->method, s->url, msg);
	else
		snprintf(line, sizeof(line), "%s %s: %s", s->method, s->url, msg);
	if (e->failed == 0)
		snprintf(e->first_err, e->first_err_len, "%s", line);
	e->failed++;
	if (!e->batch)
		return; /* the task's error says it */
	if (e->logged_failures < 10)
		outpost_warn(e->ctx, "%s", line);
	else if (e->logged_failures == 10)
		outpost_warn(e->ctx, "more failed requests are not logged; see the result");
	e->logged_failures++;
}

/* Builds X's result once it will not run again; RES is the last attempt's outcome. */
static void finish(struct engine *e, struct xfer *x, CURLcode res, const char *cancel_msg)
{
	const struct http_spec *s = x->spec;
	CURL *h = x->easy;
	cJSON *r = cJSON_CreateObject(), *t, *failures;
	long status = 0, redirects = 0;
	char *eff = NULL, *ip = NULL, *lip = NULL, msg[1536] = "";
	curl_off_t dl = 0, ul = 0;
	long hsize = 0, rsize = 0;
	bool cut = x->received > x->body.len;
	const char *version;
	long v = 0;

	x->state = X_DONE;
	e->done++;
	if (r == NULL)
		return;
	if (e->batch) {
		cJSON_AddNumberToObject(r, "index", s->index);
		if (s->name)
			cJSON_AddStringToObject(r, "name", s->name);
	}
	cJSON_AddStringToObject(r, "method", x->to_get ? "GET" : s->method);
	cJSON_AddStringToObject(r, "url", s->url);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
	curl_easy_getinfo(h, CURLINFO_REDIRECT_COUNT, &redirects);
	curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip);
	curl_easy_getinfo(h, CURLINFO_LOCAL_IP, &lip);
	curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &dl);
	curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &ul);
	curl_easy_getinfo(h, CURLINFO_HEADER_SIZE, &hsize);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &rsize);
	curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &v);
	version = v == CURL_HTTP_VERSION_1_0   ? "1.0"
		  : v == CURL_HTTP_VERSION_1_1 ? "1.1"
		  : v == CURL_HTTP_VERSION_2_0 ? "2"
		  : v == CURL_HTTP_VERSION_3   ? "3"
					       : NULL;
	if (status > 0)
		cJSON_AddNumberToObject(r, "status", status);
	if (version && status > 0 && !e->batch)
		cJSON_AddStringToObject(r, "http_version", version);
	if (x->url || (redirects > 0 && eff && strcmp(eff, s->url) != 0))
		cJSON_AddStringToObject(r, "final_url", eff ? eff : x->url);
	if (ip && ip[0])
		cJSON_AddStringToObject(r, "remote_ip", ip);
	if (lip && lip[0] && (!e->batch || res != CURLE_OK))
		cJSON_AddStringToObject(r, "local_ip", lip);
	cJSON_AddNumberToObject(r, "attempts", x->attempts);
	cJSON_AddNumberToObject(r, "redirects", (double)(redirects + x->redirects));
	cJSON_AddNumberToObject(r, "bytes_in", (double)(dl + hsize));
	cJSON_AddNumberToObject(r, "bytes_out", (double)(ul + rsize));
	t = cJSON_AddObjectToObject(r, "timings");
	if (t != NULL) {
		cJSON_AddNumberToObject(t, "dns", secs(h, CURLINFO_NAMELOOKUP_TIME_T));
		cJSON_AddNumberToObject(t, "connect", secs(h, CURLINFO_CONNECT_TIME_T));
		cJSON_AddNumberToObject(t, "tls", secs(h, CURLINFO_APPCONNECT_TIME_T));
		cJSON_AddNumberToObject(t, "first_byte", secs(h, CURLINFO_STARTTRANSFER_TIME_T));
		cJSON_AddNumberToObject(t, "total", secs(h, CURLINFO_TOTAL_TIME_T));
		if (x->attempts > 1 || x->redirects > 0)
			cJSON_AddNumberToObject(t, "elapsed", http_now() - x->first_start);
	}
	if (res == CURLE_OK && status > 0) {
		if (s->want_headers)
			add_headers(r, h);
		cJSON_AddNumberToObject(r, "body_size", (double)x->received);
		if (s->resp_mode == RESP_TEXT)
			add_body(r, x, cut);
		else if (s->resp_mode == RESP_ARTIFACT)
			cJSON_AddStringToObject(r, "artifact", x->art_name);
		failures = cJSON_CreateArray();
		if (failures != NULL) {
			http_expect_check(s, h, status, x->body.data, x->body.len, cut,
					  secs(h, CURLINFO_TOTAL_TIME_T), failures);
			if (cJSON_GetArraySize(failures) > 0) {
				const cJSON *f;
				size_t o = 0;

				cJSON_ArrayForEach(f, failures)
				{
					snprintf(msg + o, sizeof(msg) - o, "%s%s", o ? "; " : "",
						 f->valuestring);
					o = strlen(msg);
				}
				cJSON_AddItemToObject(r, "failures", failures);
			} else {
				cJSON_Delete(failures);
			}
		}
	} else if (cancel_msg != NULL) {
		snprintf(msg, sizeof(msg), "%s", cancel_msg);
	} else {
		describe_error(e, x, res, msg, sizeof(msg));
	}
	cJSON_AddBoolToObject(r, "ok", msg[0] == '\0');
	if (msg[0]) {
		cJSON_AddStringToObject(r, "error", msg);
		if (cancel_msg == NULL)
			note_failure(e, x, msg);
		if (e->batch && cancel_msg == NULL)
			outpost_debug(e->ctx, "requests[%d] failed", s->index);
	} else if (!e->batch) {
		char d[32];

		http_fmt_duration(secs(h, CURLINFO_TOTAL_TIME_T), d, sizeof(d));
		outpost_info(e->ctx, "%s %s: %ld in %s, %llu bytes", s->method, s->url, status, d,
			     (unsigned long long)x->received);
	}
	e->results[s->index] = r;
	if (x->art_fd >= 0) {
		close(x->art_fd);
		x->art_fd = -1;
	}
	if (x->up_fd >= 0) {
		close(x->up_fd);
		x->up_fd = -1;
	}
	if (e->n_spare < e->max_spare) {
		curl_easy_reset(x->easy);
		e->spare[e->n_spare++] = x->easy;
	} else {
		curl_easy_cleanup(x->easy);
	}
	x->easy = NULL;
	free_headers(x);
	http_buf_release(&x->body);
	free(x->url);
	x->url = NULL;
}

/* The Retry-After header in seconds, or -1. */
static double retry_after(CURL *h)
{
	struct curl_header *hv = NULL;
	char *end;
	double v;

	if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hv) != CURLHE_OK || !hv)
		return -1;
	v = strtod(hv->value, &end);
	return end != hv->value && *end == '\0' && v >= 0 ? v : -1;
}

/* Same scheme, host and port: where a header credential may go. */
static bool same_origin(const char *a, const char *b)
{
	CURLU *ua = curl_url(), *ub = curl_url();
	bool same = false;

	if (ua && ub && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
	    curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK) {
		static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};

		same = true;
		for (size_t i = 0; i < 3 && same; i++) {
			char *pa = NULL, *pb = NULL;

			if (curl_url_get(ua, parts[i], &pa, CURLU_DEFAULT_PORT) != CURLUE_OK ||
			    curl_url_get(ub, parts[i], &pb, CURLU_DEFAULT_PORT) != CURLUE_OK ||
			    strcasecmp(pa, pb) != 0)
				same = false;
			curl_free(pa);
			curl_free(pb);
		}
	}
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return same;
}

/* A transfer ended: follow a redirect by hand, retry, or finish. */
static int on_done(struct engine *e, struct xfer *x, CURLcode res)
{
	const struct http_spec *s = x->spec;
	long status = 0;
	double wait = -1;

	curl_multi_remove_handle(e->multi, x->easy);
	e->running--;
	if (res == CURLE_ABORTED_BY_CALLBACK && is_cancelled(e)) {
		finish(e, x, res, "cancelled while running");
		return OUTPOST_OK;
	}
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (res == CURLE_OK && s->auth_kind == AUTH_HEADER && s->follow &&
	    (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)) {
		char *next = NULL;

		curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &next);
		if (next != NULL && x->redirects >= s->max_redirects) {
			finish(e, x, CURLE_TOO_MANY_REDIRECTS, NULL);
			return OUTPOST_OK;
		}
		if (next != NULL) {
			char *copy = strdup(next);

			if (copy == NULL)
				return outpost_fail(e->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
			/* as curl does: a POST answered 301, 302 or 303 goes on as a GET */
			if (status != 307 && status != 308 && strcmp(s->method, "POST") == 0)
				x->to_get = true;
			if (build_headers(x, same_origin(s->url, copy)) < 0) {
				free(copy);
				return outpost_fail(e->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
			}
			free(x->url);
			x->url = copy;
			x->redirects++;
			curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
			curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
			set_method(x);
			return start(e, x, true);
		}
	}
	if (x->attempts <= s->retry_count && !is_cancelled(e)) {
		bool again = false;

		if (res == CURLE_OK) {
			for (int i = 0; i < s->n_retry_status; i++)
				if (status == s->retry_status[i])
					again = true;
			if (again)
				wait = retry_after(x->easy);
		} else if (!x->too_large && !x->art_errno) {
			again = (error_class(res) & s->retry_errors) != 0;
		}
		if (again) {
			double backoff = s->retry_backoff;
			char d[32], why[300];

			for (int i = 1; i < x->attempts && backoff < s->retry_max_backoff; i++)
				backoff *= 2;
			if (wait >= 0)
				backoff = wait;
			if (backoff > s->retry_max_backoff)
				backoff = s->retry_max_backoff;
			if (res == CURLE_OK)
				snprintf(why, sizeof(why), "status %ld", status);
			else
				snprintf(why, sizeof(why), "%s", curl_easy_strerror(res));
			http_fmt_duration(backoff, d, sizeof(d));
			if (e->batch)
				outpost_debug(e->ctx, "requests[%d]: %s; retry %d of %d in %s",
					      s->index, why, x->attempts, s->retry_count, d);
			else
				outpost_info(e->ctx, "%s %s: %s; retry %d of %d in %s", s->method,
					     s->url, why, x->attempts, s->retry_count, d);
			x->state = X_WAITING;
			x->due = http_now() + backoff;
			e->waiting++;
			return OUTPOST_OK;
		}
	}
	finish(e, x, res, NULL);
	return OUTPOST_OK;
}

int http_run(outpost_ctx *ctx, struct http_settings *st, struct http_spec *specs, int n,
	     const struct http_run_opts *opts, cJSON **results, int *failed, char *first_err,
	     size_t first_err_len)
{
	struct engine e = {0};
	int next = 0, rc = OUTPOST_OK;
	int conc = opts->concurrency < 1 ? 1 : opts->concurrency;

	e.ctx = ctx;
	e.st = st;
	e.n = n;
	e.results = results;
	e.batch = opts->batch;
	e.first_err = first_err;
	e.first_err_len = first_err_len;
	first_err[0] = '\0';
	e.x = calloc((size_t)n, sizeof(*e.x));
	e.multi = curl_multi_init();
	e.max_spare = conc;
	e.spare = calloc((size_t)conc, sizeof(*e.spare));
	if (e.x == NULL || e.multi == NULL || e.spare == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		e.x[i].spec = &specs[i];
		e.x[i].art_fd = e.x[i].up_fd = -1;
	}
	/* Everything that can refuse the task is checked before the first byte is sent. */
	for (int i = 0; i < n; i++)
		if ((rc = prepare(&e, &e.x[i])) != OUTPOST_OK)
			goto out;
	curl_multi_setopt(e.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
	curl_multi_setopt(e.multi, CURLMOPT_MAXCONNECTS, (long)(conc < 8 ? 8 : conc));
	if (e.batch)
		outpost_info(ctx, "running %d requests, %d at a time", n, conc);
	e.last_progress = http_now();
	for (;;) {
		struct CURLMsg *m;
		int still = 0, left = 0;
		double now;
		int wait_ms = 100;

		if (is_cancelled(&e)) {
			rc = OUTPOST_ERR_CANCELLED;
			break;
		}
		now = http_now();
		if (e.waiting > 0) {
			for (int i = 0; i < n && e.running < conc; i++) {
				struct xfer *x = &e.x[i];

				if (x->state != X_WAITING || x->due > now)
					continue;
				e.waiting--;
				if ((rc = start(&e, x, false)) != OUTPOST_OK)
					goto out;
			}
		}
		while (!e.stop_new && next < n && e.running < conc) {
			if ((rc = start(&e, &e.x[next++], false)) != OUTPOST_OK)
				goto out;
		}
		if (e.running == 0 && e.waiting == 0 && (next >= n || e.stop_new))
			break;
		curl_multi_perform(e.multi, &still);
		while ((m = curl_multi_info_read(e.multi, &left)) != NULL) {
			struct xfer *x = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			if (x == NULL)
				continue;
			if ((rc = on_done(&e, x, m->data.result)) != OUTPOST_OK)
				goto out;
			if (opts->fail_fast && e.failed > 0)
				e.stop_new = true;
		}
		if (e.batch && now - e.last_progress > 0.25) {
			char pm[64];

			snprintf(pm, sizeof(pm), "%d of %d requests done", e.done, n);
			outpost_host->progress(ctx, (double)e.done / n, pm);
			e.last_progress = now;
		}
		if (e.running == 0 && e.waiting == 0 && (next >= n || e.stop_new))
			break;
		if (e.waiting > 0) {
			double soonest = 1e9;

			for (int i = 0; i < n; i++)
				if (e.x[i].state == X_WAITING && e.x[i].due < soonest)
					soonest = e.x[i].due;
			if ((soonest - now) * 1000 < wait_ms)
				wait_ms = soonest <= now ? 0 : (int)((soonest - now) * 1000) + 1;
		}
		if (e.running < conc && next < n && !e.stop_new)
			continue; /* start the next ones now */
		curl_multi_poll(e.multi, NULL, 0, wait_ms, NULL);
	}
out:
	if (e.x != NULL) {
		for (int i = 0; i < n; i++) {
			struct xfer *x = &e.x[i];

			if (x->easy != NULL) {
				if (x->state == X_RUNNING)
					curl_multi_remove_handle(e.multi, x->easy);
				if (rc == OUTPOST_ERR_CANCELLED && x->state != X_DONE)
					finish(&e, x, CURLE_ABORTED_BY_CALLBACK,
					       x->state == X_WAITING ? "cancelled while waiting to retry"
									   : "cancelled while running");
				else {
					curl_easy_cleanup(x->easy);
					x->easy = NULL;
				}
			}
			if (x->art_fd >= 0)
				close(x->art_fd);
			if (x->up_fd >= 0)
				close(x->up_fd);
			free_headers(x);
			http_buf_release(&x->body);
			free(x->url);
		}
	}
	for (int i = 0; i < e.n_spare; i++)
		curl_easy_cleanup(e.spare[i]);
	free(e.spare);
	if (e.multi != NULL)
		curl_multi_cleanup(e.multi);
	free(e.x);
	*failed = e.failed;
	return rc;
}
