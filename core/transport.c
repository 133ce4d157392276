/* SPDX-License-Identifier: Apache-2.0 */
/* libcurl set-up for the control plane, and failures described as users will search for them. */
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "identity.h"
#include "jsonprint.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

op_rc tp_config_from(struct tp_config *c, const struct ag_config *cfg, bool with_identity,
		     struct op_error *err)
{
	char path[PATH_MAX];

	memset(c, 0, sizeof(*c));
	if (cfg->control_plane == NULL)
		return op_fail(err, OP_EINVAL,
			       "%s: control_plane is not set: run `outpost-agent install` first",
			       cfg->file ? cfg->file : "config");
	c->base_url = strdup(cfg->control_plane);
	if (c->base_url == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	while (strlen(c->base_url) > 8 && c->base_url[strlen(c->base_url) - 1] == '/')
		c->base_url[strlen(c->base_url) - 1] = '\0';
	c->ca_file = dup_or_null(cfg->ca_file);
	c->insecure = cfg->insecure_skip_verify;
	c->pinned_pubkey = dup_or_null(cfg->pinned_pubkey);
	c->proxy = dup_or_null(cfg->https_proxy);
	c->no_proxy = dup_or_null(cfg->no_proxy);
	c->connect_timeout = cfg->connect_timeout;
	c->request_timeout = cfg->request_timeout;
	c->tcp_keepalive = cfg->tcp_keepalive;
	if (with_identity) {
		id_path(cfg->state_dir, ID_CERT, path, sizeof(path));
		c->cert_file = strdup(path);
		id_path(cfg->state_dir, ID_KEY, path, sizeof(path));
		c->key_file = strdup(path);
		if (c->cert_file == NULL || c->key_file == NULL) {
			tp_config_release(c);
			return op_fail(err, OP_ENOMEM, "out of memory");
		}
	}
	return OP_OK;
}

op_rc tp_config_copy(struct tp_config *dst, const struct tp_config *src)
{
	*dst = *src;
	dst->base_url = dup_or_null(src->base_url);
	dst->ca_file = dup_or_null(src->ca_file);
	dst->cert_file = dup_or_null(src->cert_file);
	dst->key_file = dup_or_null(src->key_file);
	dst->pinned_pubkey = dup_or_null(src->pinned_pubkey);
	dst->proxy = dup_or_null(src->proxy);
	dst->no_proxy = dup_or_null(src->no_proxy);
	if ((src->base_url && !dst->base_url) || (src->ca_file && !dst->ca_file) ||
	    (src->cert_file && !dst->cert_file) || (src->key_file && !dst->key_file) ||
	    (src->pinned_pubkey && !dst->pinned_pubkey) || (src->proxy && !dst->proxy) ||
	    (src->no_proxy && !dst->no_proxy)) {
		tp_config_release(dst);
		return OP_ENOMEM;
	}
	return OP_OK;
}

void tp_config_release(struct tp_config *c)
{
	free(c->base_url);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->pinned_pubkey);
	free(c->proxy);
	free(c->no_proxy);
	memset(c, 0, sizeof(*c));
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct op_buf *b = ud;

	if (b->len + size * n > 64 * 1024 * 1024)
		return 0; /* a control plane answer is never this large */
	return op_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* Time checks off, everything else on: the clock-skew probe (decisions.md 3). */
static CURLcode no_time_check(CURL *h, void *sslctx, void *ud)
{
	X509_STORE *store = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);

	(void)h;
	(void)ud;
	X509_VERIFY_PARAM_set_flags(X509_STORE_get0_param(store), X509_V_FLAG_NO_CHECK_TIME);
	return CURLE_OK;
}

op_rc tp_setup(const struct tp_config *c, CURL *h, const char *method, const char *path,
	       const char *body, struct curl_slist **headers, struct op_buf *resp,
	       struct op_error *err)
{
	char url[2048];
	struct curl_slist *hl = NULL;

	if (op_snprintf(url, sizeof(url), "%s%s", c->base_url, path) < 0)
		return op_fail(err, OP_EINVAL, "URL too long");
	hl = curl_slist_append(hl, "Accept: application/json");
	hl = curl_slist_append(hl, "Expect:");
	if (body != NULL)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	if (hl == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	*headers = hl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "outpost-agent/" OUTPOST_VERSION);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	/* TLS: verification on unless the operator asked otherwise; TLS 1.2 at least. */
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
	if (c->ca_file) {
		/* The operator's CAs replace the system store for the control plane: Debian's
		 * libcurl also searches /etc/ssl/certs unless CAPATH is cleared. */
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	if (c->pinned_pubkey)
		curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, c->pinned_pubkey);
	if (c->cert_file && c->key_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	}
	if (c->no_time_check)
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, no_time_check);
	if (c->proxy)
		curl_easy_setopt(h, CURLOPT_PROXY, c->proxy);
	if (c->no_proxy)
		curl_easy_setopt(h, CURLOPT_NOPROXY, c->no_proxy);
	if (c->connect_timeout > 0)
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout * 1000));
	if (c->request_timeout > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->request_timeout * 1000));
	if (c->tcp_keepalive > 0) {
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, (long)c->tcp_keepalive);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, (long)c->tcp_keepalive);
	}
	return OP_OK;
}

/* "Post", "Get": the method as Go's net/http prints it, which is what users search for. */
static void go_method(const char *method, char *out, size_t size)
{
	size_t i = 0;

	for (; method[i] && i + 1 < size; i++)
		out[i] = i == 0 ? method[i] : (char)(method[i] | 0x20);
	out[i] = '\0';
}

static void host_port(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n;

	p = p ? p + 3 : url;
	n = strcspn(p, "/?#");
	snprintf(out, size, "%.*s", (int)n, p);
}

static void host_only(const char *url, char *out, size_t size)
{
	char hp[512];
	char *colon;

	host_port(url, hp, sizeof(hp));
	if (hp[0] == '[') {
		char *end = strchr(hp, ']');

		if (end)
			*end = '\0';
		snprintf(out, size, "%s", hp + 1);
		return;
	}
	colon = strrchr(hp, ':');
	if (colon)
		*colon = '\0';
	snprintf(out, size, "%s", hp);
}

/* When libcurl could not connect to a proxy, its message names the proxy ("Failed to connect
 * to PROXY port N after ..."), not the URL's host and port: writes "PROXY:N" to OUT. */
static bool proxy_target(const char *detail, const char *host, const char *hp, char *out,
			 size_t size)
{
	const char *colon = strrchr(hp, ':');
	long uport = colon && colon[1] != '\0' && hp[strlen(hp) - 1] != ']'
			     ? strtol(colon + 1, NULL, 10)
			     : 443;
	char fh[256];
	long fport;

	if (sscanf(detail, "Failed to connect to %255s port %ld", fh, &fport) != 2)
		return false;
	if (fport == uport && strcmp(fh, host) == 0)
		return false;
	snprintf(out, size, strchr(fh, ':') ? "[%s]:%ld" : "%s:%ld", fh, fport);
	return true;
}

enum tp_fail tp_describe(CURLcode cc, CURL *h, const char *method, const char *url,
			 const char *errbuf, struct op_error *err)
{
	char m[16], hp[512], host[512], what[1024], px[300];
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);
	enum tp_fail fail;
	long verify = 0, oserr = 0;

	go_method(method, m, sizeof(m));
	host_port(url, hp, sizeof(hp));
	host_only(url, host, sizeof(host));
	curl_easy_getinfo(h, CURLINFO_SSL_VERIFYRESULT, &verify);
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
	if (strstr(detail, "CONNECT tunnel failed")) { /* the proxy answered CONNECT with an error */
		op_fail(err, OP_ENET, "%s \"%s\": proxyconnect tcp: the proxy refused to connect to %s (%s)",
			m, url, hp, detail);
		return TP_PROXY;
	}
	if ((cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT) &&
	    proxy_target(detail, host, hp, px, sizeof(px))) {
		op_fail(err, cc == CURLE_OPERATION_TIMEDOUT || oserr == ETIMEDOUT ? OP_ETIMEOUT : OP_ENET,
			"%s \"%s\": proxyconnect tcp: dial tcp %s: %s", m, url, px,
			oserr == ECONNREFUSED ? "connect: connection refused"
			: cc == CURLE_OPERATION_TIMEDOUT || oserr == ETIMEDOUT ? "i/o timeout"
									       : detail);
		return TP_PROXY;
	}
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		/* libcurl checks the name itself and then reports X509_V_ERR_UNSPECIFIED (1), not
		 * a hostname error: its message is the only sign. */
		if (verify == X509_V_ERR_UNSPECIFIED &&
		    (strstr(detail, "subject name") || strstr(detail, "does not match")))
			verify = X509_V_ERR_HOSTNAME_MISMATCH;
		switch (verify) {
		case X509_V_ERR_CERT_NOT_YET_VALID:
		case X509_V_ERR_CERT_HAS_EXPIRED:
			fail = TP_CERT_TIME;
			snprintf(what, sizeof(what), "x509: certificate has expired or is not yet valid");
			break;
		case X509_V_ERR_HOSTNAME_MISMATCH:
		case X509_V_ERR_IP_ADDRESS_MISMATCH:
			fail = TP_HOSTNAME;
			snprintf(what, sizeof(what), "x509: certificate is not valid for %s", host);
			break;
		case X509_V_OK:
			if (strstr(detail, "subject name") || strstr(detail, "does not match")) {
				fail = TP_HOSTNAME;
				snprintf(what, sizeof(what), "x509: certificate is not valid for %s",
					 host);
				break;
			}
			fail = TP_TLS;
			snprintf(what, sizeof(what), "tls: %s", detail);
			break;
		default:
			fail = TP_UNKNOWN_CA;
			snprintf(what, sizeof(what), "x509: certificate signed by unknown authority");
			break;
		}
		break;
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		fail = TP_PIN;
		snprintf(what, sizeof(what),
			 "tls: the server's public key does not match pinned_pubkey");
		break;
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ENGINE_NOTFOUND:
		fail = TP_CLIENT_CERT;
		snprintf(what, sizeof(what), "tls: cannot use the client certificate: %s", detail);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		fail = TP_TLS;
		snprintf(what, sizeof(what), "tls: handshake failure: %s", detail);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		fail = TP_DNS;
		snprintf(what, sizeof(what), "dial tcp: lookup %s: no such host", host);
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
		fail = TP_PROXY;
		snprintf(what, sizeof(what), "proxyconnect tcp: lookup of the proxy failed: %s",
			 detail);
		break;
	case CURLE_COULDNT_CONNECT:
		if (oserr == ETIMEDOUT) {
			fail = TP_TIMEOUT;
			snprintf(what, sizeof(what), "dial tcp %s: i/o timeout", hp);
		} else {
			fail = oserr == ECONNREFUSED ? TP_REFUSED : TP_NET;
			snprintf(what, sizeof(what), "dial tcp %s: connect: %s", hp,
				 oserr ? strerror((int)oserr) : detail);
			if (oserr == ECONNREFUSED)
				snprintf(what, sizeof(what), "dial tcp %s: connect: connection refused",
					 hp);
		}
		break;
	case CURLE_OPERATION_TIMEDOUT: {
		double connect = 0;
		long local_port = 0;

		curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME, &connect);
		curl_easy_getinfo(h, CURLINFO_LOCAL_PORT, &local_port);
		fail = TP_TIMEOUT;
		/* TCP connected (a local port, or curl says so) but the TLS handshake never ended:
		 * a hung server, or something that accepts connections and says nothing. */
		if (connect <= 0 && (local_port > 0 || strstr(detail, "SSL connection timeout")) &&
		    strncmp(url, "https:", 6) == 0)
			snprintf(what, sizeof(what),
				 "net/http: TLS handshake timeout (connected to %s, but no TLS answer: "
				 "%s)",
				 hp, detail);
		else if (connect <= 0)
			snprintf(what, sizeof(what), "dial tcp %s: i/o timeout (%s)", hp, detail);
		else
			snprintf(what, sizeof(what),
				 "context deadline exceeded (the control plane did not answer in time: %s)",
				 detail);
		break;
	}
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		fail = TP_NET;
		snprintf(what, sizeof(what), "connection reset or closed: %s", detail);
		break;
	default:
		fail = TP_NET;
		snprintf(what, sizeof(what), "%s", detail);
		break;
	}
	op_fail(err, fail == TP_TIMEOUT ? OP_ETIMEOUT : (fail <= TP_CLIENT_CERT ? OP_ETLS : OP_ENET),
		"%s \"%s\": %s", m, url, what);
	return fail;
}

const char *tp_hint(enum tp_fail fail)
{
	switch (fail) {
	case TP_UNKNOWN_CA:
		return "the control plane uses a certificate from a private CA: pass its CA "
		       "certificate with --ca-cert /path/to/ca.crt (outpost-server keeps it in "
		       "DATA_DIR/ca.crt), or for testing only --insecure-skip-verify";
	case TP_CERT_TIME:
		return "the control plane's certificate is expired or not yet valid, or this host's "
		       "clock is wrong: check `timedatectl status` and the certificate's dates";
	case TP_HOSTNAME:
		return "the certificate does not name the host in the URL: use the name the "
		       "certificate was made for (outpost-server init --hostname NAME)";
	case TP_PIN:
		return "the control plane's key changed or something intercepts TLS: check "
		       "pinned_pubkey in the config";
	case TP_CLIENT_CERT:
		return "the agent's certificate or key in the state dir is missing or unreadable: "
		       "run `outpost-agent check`";
	case TP_DNS:
		return "check that the --control-plane host name is right and resolves from this "
		       "host (nslookup HOST), and the DNS settings";
	case TP_REFUSED:
		return "nothing listens there: check the --control-plane URL and port, that the "
		       "control plane runs (curl -v URL/health), and firewall rules";
	case TP_TIMEOUT:
		return "no answer in time: check firewalls and security groups between this host and "
		       "the control plane (egress HTTPS), proxies (https_proxy), and that the "
		       "control plane is up";
	case TP_PROXY:
		return "check https_proxy / HTTPS_PROXY: the proxy must be reachable and allow "
		       "CONNECT to the control plane";
	case TP_TLS:
		return "a TLS inspection proxy or a wrong port can cause this: check that the URL is "
		       "the control plane's HTTPS port";
	default:
		return NULL;
	}
}

op_rc tp_request(const struct tp_config *c, const char *method, const char *path,
		 const cJSON *body, struct tp_response *r, struct op_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "", *text = NULL, *url = NULL;
	struct curl_slist *headers = NULL;
	CURL *h;
	CURLcode cc;
	op_rc rc;

	memset(r, 0, sizeof(*r));
	h = curl_easy_init();
	if (h == NULL)
		return op_fail(err, OP_ENOMEM, "cannot create an HTTP handle");
	if (body != NULL && (text = op_json_print(body, false)) == NULL) {
		curl_easy_cleanup(h);
		return op_fail(err, OP_ENOMEM, "out of memory");
	}
	rc = tp_setup(c, h, method, path, text, &headers, &r->body, err);
	if (rc != OP_OK)
		goto out;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &r->total_s);
	if (cc != CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &url);
		r->fail = tp_describe(cc, h, method, url ? url : path, errbuf, err);
		rc = err ? err->rc : OP_ENET;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body.len > 0)
		r->json = cJSON_ParseWithLength(r->body.data, r->body.len);
out:
	if (text)
		explicit_bzero(text, strlen(text)); /* it may hold a token */
	cJSON_free(text);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	return rc;
}

void tp_response_release(struct tp_response *r)
{
	cJSON_Delete(r->json);
	op_buf_release(&r->body);
	memset(r, 0, sizeof(*r));
}

const char *tp_reason(const struct tp_response *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->json, "reason");

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *tp_message(const struct tp_response *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->json, "message");

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int tp_parse_time(const char *s, double *epoch)
{
	struct tm tm;
	const char *p;
	double frac = 0;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL)
		return -1;
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return -1;
	if (*p == '.') {
		char *end;

		frac = strtod(p, &end);
		p = end;
	}
	if (*p != 'Z')
		return -1;
	*epoch = (double)timegm(&tm) + frac;
	return 0;
}

void tp_format_time(double epoch, char *out, size_t size)
{
	time_t t = (time_t)floor(epoch);
	struct tm tm;
	char base[32];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03dZ", base, (int)((epoch - floor(epoch)) * 1000));
}

double tp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

op_rc tp_clock_skew(const struct tp_config *c, double *skew, struct tp_response *r,
		    struct op_error *err)
{
	struct tp_config probe;
	const cJSON *st;
	double t0, t1, server;
	op_rc rc;

	if (tp_config_copy(&probe, c) != OP_OK)
		return op_fail(err, OP_ENOMEM, "out of memory");
	probe.no_time_check = true;
	free(probe.cert_file); /* /health needs no identity */
	free(probe.key_file);
	probe.cert_file = probe.key_file = NULL;
	t0 = tp_now();
	rc = tp_request(&probe, "GET", "/health", NULL, r, err);
	t1 = tp_now();
	tp_config_release(&probe);
	if (rc != OP_OK)
		return rc;
	st = cJSON_GetObjectItemCaseSensitive(r->json, "server_time");
	if (r->status != 200 || !cJSON_IsString(st) || tp_parse_time(st->valuestring, &server) < 0)
		return op_fail(err, OP_EPROTO,
			       "GET \"%s/health\": the answer (HTTP %ld) is not a control plane's: "
			       "check the URL",
			       c->base_url, r->status);
	*skew = (t0 + t1) / 2 - server;
	return OP_OK;
}
