/* SPDX-License-Identifier: Apache-2.0 */
/* The http plugin's internal types: settings, parsed request specs, the transfer engine. */
#ifndef HTTP_PLUGIN_H
#define HTTP_PLUGIN_H

#include <outpost/sdk.h>

#include <curl/curl.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults, documented in docs/plugins/http.md. */
#define HTTP_DEFAULT_TIMEOUT 30.0
#define HTTP_DEFAULT_CONNECT_TIMEOUT 10.0
#define HTTP_DEFAULT_MAX_REDIRECTS 5
#define HTTP_DEFAULT_MAX_TEXT (64u * 1024)
#define HTTP_DEFAULT_MAX_SIZE (100u * 1024 * 1024)
#define HTTP_DEFAULT_CONCURRENCY 8
#define HTTP_DEFAULT_MAX_CONCURRENCY 256
#define HTTP_DEFAULT_MAX_RESULT (4u * 1024 * 1024)
#define HTTP_MAX_STATUS_RANGES 32
#define HTTP_MAX_RETRY_STATUS 32

/* The plugin's state: its settings (plugins.config.http and the agent's network settings)
 * and the cancel flag. Created by init, freed by shutdown. */
struct http_settings {
	char *proxy;	/* default proxy URL, NULL for none */
	char *no_proxy; /* hosts that bypass it */
	char *ca_file;	/* extra CA bundle trusted beside the system store */
	char *user_agent;
	bool allow_insecure;
	int max_concurrency;
	uint64_t max_result;
	atomic_int cancelled;
	bool curl_ready; /* curl_global_init done (in init): shutdown cleans up */
	/* What validate() parsed, kept for execute() when it gets the same params. */
	struct http_parsed *validated;
};

/* A status assertion: an inclusive range. */
struct http_range {
	int lo, hi;
};

/* One header assertion: NAME must be present and match RE. */
struct http_expect_header {
	const char *name;
	const char *pattern;
	regex_t re;
	bool compiled;
};

/* One JSON path assertion. */
struct http_expect_json {
	const char *path;
	const cJSON *value;
};

enum http_body_kind { BODY_NONE, BODY_TEXT, BODY_JSON, BODY_BASE64, BODY_FILE };
enum http_resp_mode { RESP_TEXT, RESP_ARTIFACT, RESP_NONE };
enum http_auth_kind { AUTH_NONE, AUTH_BASIC, AUTH_BEARER, AUTH_HEADER };

/* Error classes a retry policy can name (bit mask). */
enum {
	RETRY_DNS = 1 << 0,
	RETRY_CONNECT = 1 << 1,
	RETRY_TIMEOUT = 1 << 2,
	RETRY_RESET = 1 << 3,
	RETRY_TLS = 1 << 4
};

/*
 * One request, parsed and checked. Strings point into the params tree (which outlives the
 * spec) unless noted as owned. http_spec_release() frees what the spec owns.
 */
struct http_spec {
	int index;
	char label[32];	  /* "params" or "params.requests[N]", for messages */
	const char *name; /* batch label (may be NULL) */
	const char *method;
	char *url;  /* owned: the URL with params.query appended */
	char *host; /* owned: the URL's host, for secrets' allow lists and messages */
	struct curl_slist *headers; /* owned */
	bool has_content_type;

	enum http_body_kind body_kind;
	char *body; /* owned: JSON text or decoded base64; text bodies point into params */
	const char *body_text;
	size_t body_len;
	const char *body_file;

	enum http_auth_kind auth_kind;
	const char *auth_secret;
	const char *auth_username;
	const char *auth_header;

	bool tls_verify;
	const char *ca_file;
	const char *client_cert;
	const char *client_key;
	const char *client_key_secret;
	const char *key_password_secret;
	long tls_min; /* CURL_SSLVERSION_* */

	bool proxy_set; /* params.proxy given: overrides the agent's */
	const char *proxy;
	const char *no_proxy;

	double connect_timeout, timeout;
	bool follow;
	long max_redirects;

	int retry_count;
	double retry_backoff, retry_max_backoff;
	int retry_status[HTTP_MAX_RETRY_STATUS];
	int n_retry_status;
	unsigned retry_errors;

	enum http_resp_mode resp_mode;
	uint64_t max_text, max_size;
	const char *artifact;
	bool want_headers;

	struct http_range status[HTTP_MAX_STATUS_RANGES];
	int n_status;
	bool status_default;
	struct http_expect_header *exp_headers; /* owned array */
	int n_exp_headers;
	const char *body_pattern;
	regex_t body_re;
	bool body_re_compiled;
	struct http_expect_json *exp_json; /* owned array */
	int n_exp_json;
	double max_latency; /* < 0: none */
};

/* Parses request ITEM (with batch DEFAULTS, may be NULL) into SPEC. LABEL prefixes messages.
 * Side-effect free. Returns OUTPOST_OK or OUTPOST_ERR_PARAMS with the error set on CTX. */
int http_spec_parse(outpost_ctx *ctx, const struct http_settings *st, const cJSON *item,
		    const cJSON *defaults, const char *label, int index, bool batch,
		    struct http_spec *spec);
void http_spec_release(struct http_spec *spec);

/* A growable byte buffer. */
struct http_buf {
	char *data;
	size_t len, cap;
};
int http_buf_append(struct http_buf *b, const void *p, size_t n);
void http_buf_release(struct http_buf *b);

/* ---- the engine ---------------------------------------------------------------------- */

/* What a batch asks of the engine beyond its specs. */
struct http_run_opts {
	int concurrency;
	bool fail_fast;
	bool batch;
};

/* Runs N specs over one multi handle. Fills RESULTS[i] with each request's result object
 * (owned by the caller), counts failures in *failed and writes the first failure's message
 * into FIRST_ERR. Returns OUTPOST_OK when every request ran (whatever it returned),
 * OUTPOST_ERR_CANCELLED, OUTPOST_ERR_DENIED (a secret refused, nothing sent), or
 * OUTPOST_ERR_PARAMS / OUTPOST_ERR_INTERNAL with the error set on CTX. */
int http_run(outpost_ctx *ctx, struct http_settings *st, struct http_spec *specs, int n,
	     const struct http_run_opts *opts, cJSON **results, int *failed, char *first_err,
	     size_t first_err_len);

/* ---- assertions ---------------------------------------------------------------------- */

/* Checks the finished response against SPEC's expectations. Appends each failure's message
 * to FAILURES (a cJSON array). BODY holds the first BODY_LEN bytes; CUT says the body was
 * longer than what was kept. */
void http_expect_check(const struct http_spec *spec, CURL *easy, long status,
		       const char *body, size_t body_len, bool cut, double total,
		       cJSON *failures);

/* Evaluates JSON path PATH (subset: $, .name, ['name'], [N]) on ROOT. Returns the node or
 * NULL with the reason in WHY. */
const cJSON *http_json_path(const cJSON *root, const char *path, char *why, size_t whylen);
/* Checks the syntax of PATH. Returns 0 or -1 with the reason in WHY. */
int http_json_path_check(const char *path, char *why, size_t whylen);

/* ---- utilities ----------------------------------------------------------------------- */

/* Decodes standard or URL-safe base64 (padding optional). Returns 0 or -1. */
int http_base64_decode(const char *in, char **out, size_t *outlen);
/* Encodes as standard base64; returns a malloc'd NUL-terminated string or NULL. */
char *http_base64_encode(const void *in, size_t len);
/* Length of the longest prefix of S (LEN bytes) that is valid UTF-8 without NUL bytes, and
 * whether the whole of S is. */
size_t http_utf8_prefix(const char *s, size_t len, bool *all_valid);
/* Formats a duration for messages: "812ms", "2s", "1.5s". */
void http_fmt_duration(double seconds, char *out, size_t size);
/* Formats a size for messages: "64KiB", "10MiB", "123 bytes". */
void http_fmt_size(uint64_t bytes, char *out, size_t size);
/* Monotonic seconds. */
double http_now(void);

#endif
