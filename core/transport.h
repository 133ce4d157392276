/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's one HTTPS client (libcurl): mTLS, CA, pinning, proxy, timeouts, error messages. */
#ifndef AG_TRANSPORT_H
#define AG_TRANSPORT_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>

#include "buf.h"
#include "config.h"
#include "op.h"

struct tp_config {
	char *base_url;	     /* https://HOST:PORT, no trailing slash */
	char *ca_file;	     /* NULL: the system's trust store */
	char *cert_file;     /* client certificate (mTLS), or NULL */
	char *key_file;	     /* its key */
	bool insecure;	     /* --insecure-skip-verify */
	char *pinned_pubkey; /* sha256//... */
	char *proxy;	     /* NULL: libcurl's HTTPS_PROXY/https_proxy handling */
	char *no_proxy;
	double connect_timeout;
	double request_timeout;
	double tcp_keepalive;
	bool no_time_check; /* verify chain and name but not validity dates (clock probe) */
};

/* Why a request did not get an HTTP answer; the CLI picks its hint from it. */
enum tp_fail {
	TP_OK = 0,
	TP_UNKNOWN_CA,	 /* x509: certificate signed by unknown authority */
	TP_CERT_TIME,	 /* the server's certificate is expired or not yet valid */
	TP_HOSTNAME,	 /* the server's certificate is for another name */
	TP_PIN,		 /* pinned public key mismatch */
	TP_TLS,		 /* other TLS failure */
	TP_CLIENT_CERT,	 /* our certificate or key cannot be used */
	TP_DNS,		 /* name not found */
	TP_REFUSED,	 /* connection refused */
	TP_TIMEOUT,	 /* connect or request timeout */
	TP_PROXY,	 /* the proxy failed */
	TP_NET		 /* other network failure */
};

struct tp_response {
	long status;	 /* 0 when no HTTP answer (see fail) */
	enum tp_fail fail;
	struct op_buf body;
	cJSON *json;	 /* the body parsed, when it is JSON */
	double total_s;	 /* request time */
};

/* Fills C from the agent config and the identity files in its state dir. */
op_rc tp_config_from(struct tp_config *c, const struct ag_config *cfg, bool with_identity,
		     struct op_error *err);
op_rc tp_config_copy(struct tp_config *dst, const struct tp_config *src);
void tp_config_release(struct tp_config *c);

/* Prepares easy handle H for METHOD on PATH with BODY (JSON text, may be NULL); the response
 * body goes to RESP. *HEADERS must be freed with curl_slist_free_all after the transfer. */
op_rc tp_setup(const struct tp_config *c, CURL *h, const char *method, const char *path,
	       const char *body, struct curl_slist **headers, struct op_buf *resp,
	       struct op_error *err);

/* Describes a failed transfer the way users search for it, e.g.
 * `Post "https://cp:8000/agent/enroll": x509: certificate signed by unknown authority`. */
enum tp_fail tp_describe(CURLcode cc, CURL *h, const char *method, const char *url,
			 const char *errbuf, struct op_error *err);

/* One blocking request. Returns OP_OK when an HTTP answer arrived (any status). */
op_rc tp_request(const struct tp_config *c, const char *method, const char *path,
		 const cJSON *body, struct tp_response *r, struct op_error *err);
void tp_response_release(struct tp_response *r);

/* The error body's reason and message, or NULL. */
const char *tp_reason(const struct tp_response *r);
const char *tp_message(const struct tp_response *r);

/* RFC 3339 UTC ("2026-11-23T10:00:00.123Z") to seconds since the epoch. */
int tp_parse_time(const char *s, double *epoch);
/* And back, with milliseconds. */
void tp_format_time(double epoch, char *out, size_t size);
/* The wall clock, in seconds since the epoch. */
double tp_now(void);

/* The host's clock against the control plane's: GET /health over TLS with certificate time
 * checks off (chain and name still verified), so a skewed clock cannot hide the figure.
 * *SKEW is host minus server, in seconds (corrected by half the round trip). */
op_rc tp_clock_skew(const struct tp_config *c, double *skew, struct tp_response *r,
		    struct op_error *err);

/* A hint for FAIL, for the line after a FATAL message (NULL when none). */
const char *tp_hint(enum tp_fail fail);

#endif
