/* SPDX-License-Identifier: Apache-2.0 */
/* Turning one request's params (and a batch's defaults) into a checked struct http_spec. */
#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a request's members come from: the item, then the batch's defaults. */
struct src {
	outpost_ctx *ctx;
	const cJSON *item;
	const cJSON *defaults;
	const char *label;
};

static const cJSON *get_path(const cJSON *obj, const char *path)
{
	char part[64];
	const char *p = path;

	while (obj != NULL && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n >= sizeof(part) || !cJSON_IsObject(obj))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		obj = cJSON_GetObjectItemCaseSensitive(obj, part);
		p += n + (dot ? 1 : 0);
	}
	return cJSON_IsNull(obj) ? NULL : obj;
}

/* The member KEY (a dotted path) from the item, else from the defaults. *WHERE names the
 * object it came from for messages. */
static const cJSON *pick(const struct src *s, const char *key, const char **where)
{
	const cJSON *v = get_path(s->item, key);

	if (where)
		*where = s->label;
	if (v == NULL && s->defaults != NULL) {
		v = get_path(s->defaults, key);
		if (where)
			*where = "params.defaults";
	}
	return v;
}

__attribute__((format(printf, 4, 5))) static int bad(const struct src *s, const char *where,
						     const char *key, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return outpost_fail(s->ctx, OUTPOST_ERR_PARAMS, "%s%s%s: %s", where ? where : s->label,
			    key && *key ? "." : "", key ? key : "", msg);
}

static const char *str_of(const struct src *s, const char *key, const char *dflt)
{
	const cJSON *v = pick(s, key, NULL);

	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static int bool_of(const struct src *s, const char *key, bool dflt)
{
	const cJSON *v = pick(s, key, NULL);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int duration_of(const struct src *s, const char *key, double dflt, double *out)
{
	const char *where;
	const cJSON *v = pick(s, key, &where);

	if (v == NULL) {
		*out = dflt;
		return OUTPOST_OK;
	}
	if (cJSON_IsNumber(v) && v->valuedouble >= 0) {
		*out = v->valuedouble;
		return OUTPOST_OK;
	}
	if (cJSON_IsString(v) && outpost_parse_duration(v->valuestring, out) == 0)
		return OUTPOST_OK;
	return bad(s, where, key, "\"%s\" is not a duration (use e.g. \"500ms\", \"30s\", \"5m\")",
		   cJSON_IsString(v) ? v->valuestring : "?");
}

static int size_of(const struct src *s, const char *key, uint64_t dflt, uint64_t *out)
{
	const char *where;
	const cJSON *v = pick(s, key, &where);

	if (v == NULL) {
		*out = dflt;
		return OUTPOST_OK;
	}
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1.8e19) {
		*out = (uint64_t)v->valuedouble;
		return OUTPOST_OK;
	}
	if (cJSON_IsString(v) && outpost_parse_size(v->valuestring, out) == 0)
		return OUTPOST_OK;
	return bad(s, where, key, "\"%s\" is not a size (use e.g. \"64KiB\", \"10MB\")",
		   cJSON_IsString(v) ? v->valuestring : "?");
}

/* RFC 9110 token characters, for header names. */
static bool is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return true;
	return false;
}

/* Adds "Name: value" (or "Name;" for an empty value, curl's way to send it empty). */
static int add_header(struct http_spec *spec, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = malloc(n);
	struct curl_slist *l;

	if (line == NULL)
		return -1;
	if (value[0])
		snprintf(line, n, "%s: %s", name, value);
	else
		snprintf(line, n, "%s;", name);
	l = curl_slist_append(spec->headers, line);
	free(line);
	if (l == NULL)
		return -1;
	spec->headers = l;
	if (strcasecmp(name, "Content-Type") == 0)
		spec->has_content_type = true;
	return 0;
}

static int check_header(const struct src *s, const char *where, const cJSON *h)
{
	if (!is_token(h->string))
		return bad(s, where, "headers", "\"%s\" is not a valid header name", h->string);
	if (strcasecmp(h->string, "Authorization") == 0 ||
	    strcasecmp(h->string, "Proxy-Authorization") == 0)
		return bad(s, where, "headers",
			   "%s: credentials come only from named secrets: use params.auth "
			   "(basic, bearer or header) with a secret from the agent's config",
			   h->string);
	if (!cJSON_IsString(h) || has_ctl(h->valuestring))
		return bad(s, where, "headers", "%s: the value must be one line of text", h->string);
	return OUTPOST_OK;
}

static int parse_headers(const struct src *s, struct http_spec *spec)
{
	const cJSON *mine = get_path(s->item, "headers");
	const cJSON *theirs = s->defaults ? get_path(s->defaults, "headers") : NULL;
	const cJSON *h;
	int rc;

	cJSON_ArrayForEach(h, theirs)
	{
		bool overridden = false;
		const cJSON *m;

		if ((rc = check_header(s, "params.defaults", h)) != OUTPOST_OK)
			return rc;
		cJSON_ArrayForEach(m, mine)
		{
			if (strcasecmp(m->string, h->string) == 0)
				overridden = true;
		}
		if (!overridden && add_header(spec, h->string, h->valuestring) < 0)
			return outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	}
	cJSON_ArrayForEach(h, mine)
	{
		if ((rc = check_header(s, s->label, h)) != OUTPOST_OK)
			return rc;
		if (add_header(spec, h->string, h->valuestring) < 0)
			return outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	}
	return OUTPOST_OK;
}

/* Appends NAME=VALUE to the URL's query, URL-encoded. */
static int append_query(CURLU *u, const char *name, const cJSON *v)
{
	char num[64];
	const char *text;
	char *kv;
	size_t n;
	CURLUcode uc;

	if (cJSON_IsString(v))
		text = v->valuestring;
	else if (cJSON_IsBool(v))
		text = cJSON_IsTrue(v) ? "true" : "false";
	else if (cJSON_IsNumber(v)) {
		if (v->valuedouble == (double)(long long)v->valuedouble)
			snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
		else
			snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		text = num;
	} else
		return -1;
	n = strlen(name) + strlen(text) + 2;
	kv = malloc(n);
	if (kv == NULL)
		return -1;
	snprintf(kv, n, "%s=%s", name, text);
	uc = curl_url_set(u, CURLUPART_QUERY, kv, CURLU_APPENDQUERY | CURLU_URLENCODE);
	free(kv);
	return uc == CURLUE_OK ? 0 : -1;
}

static int parse_url(const struct src *s, struct http_spec *spec)
{
	const char *where;
	const cJSON *url = pick(s, "url", &where);
	const cJSON *query = get_path(s->item, "query"), *q;
	const cJSON *dquery = s->defaults ? get_path(s->defaults, "query") : NULL;
	const char *sep;
	CURLU *u = NULL;
	CURLUcode uc;
	char *text = NULL, *host = NULL;
	int rc = OUTPOST_ERR_PARAMS;

	if (!cJSON_IsString(url))
		return bad(s, NULL, "url", "required");
	sep = strstr(url->valuestring, "://");
	if (sep == NULL)
		return bad(s, where, "url",
			   "\"%s\" is not a URL: it needs a scheme, e.g. https://host/path",
			   url->valuestring);
	if (!((sep - url->valuestring == 4 && strncasecmp(url->valuestring, "http", 4) == 0) ||
	      (sep - url->valuestring == 5 && strncasecmp(url->valuestring, "https", 5) == 0)))
		return bad(s, where, "url", "scheme \"%.*s\" is not supported: use http:// or https://",
			   (int)(sep - url->valuestring), url->valuestring);
	u = curl_url();
	if (u == NULL)
		return outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	uc = curl_url_set(u, CURLUPART_URL, url->valuestring, 0);
	if (uc != CURLUE_OK) {
		rc = bad(s, where, "url", "\"%s\" is not a valid URL: %s", url->valuestring,
			 curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == NULL || !host[0]) {
		rc = bad(s, where, "url", "\"%s\" has no host", url->valuestring);
		goto out;
	}
	/* The defaults' query first, then the item's; the item's wins on a repeated name. */
	for (int pass = 0; pass < 2; pass++) {
		const cJSON *obj = pass == 0 ? dquery : query;

		cJSON_ArrayForEach(q, obj)
		{
			const cJSON *e;

			if (pass == 0 && cJSON_GetObjectItemCaseSensitive(query, q->string) != NULL)
				continue;
			if (cJSON_IsArray(q)) {
				cJSON_ArrayForEach(e, q)
				{
					if (append_query(u, q->string, e) < 0) {
						rc = bad(s, pass ? s->label : "params.defaults", "query",
							 "%s: cannot add it to the URL", q->string);
						goto out;
					}
				}
			} else if (append_query(u, q->string, q) < 0) {
				rc = bad(s, pass ? s->label : "params.defaults", "query",
					 "%s: cannot add it to the URL", q->string);
				goto out;
			}
		}
	}
	/* The URL as given unless a query was added to it (rebuilding it is a third of the
	 * parse, for every request of a batch). */
	if (cJSON_GetArraySize(query) + cJSON_GetArraySize(dquery) == 0) {
		spec->url = strdup(url->valuestring);
	} else if (curl_url_get(u, CURLUPART_URL, &text, 0) == CURLUE_OK) {
		spec->url = strdup(text);
	}
	spec->host = strdup(host);
	if (spec->url == NULL || spec->host == NULL) {
		rc = outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = OUTPOST_OK;
out:
	curl_free(text);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static int parse_body(const struct src *s, struct http_spec *spec)
{
	static const char *const kinds[] = {"body", "json", "body_base64", "body_file"};
	const cJSON *obj = s->item, *v = NULL;
	const char *where = s->label, *which = NULL;
	int count = 0;

	for (size_t i = 0; i < 4; i++)
		if (get_path(obj, kinds[i]) != NULL)
			count++;
	if (count == 0 && s->defaults != NULL) {
		obj = s->defaults;
		where = "params.defaults";
		for (size_t i = 0; i < 4; i++)
			if (get_path(obj, kinds[i]) != NULL)
				count++;
	}
	if (count == 0)
		return OUTPOST_OK;
	if (count > 1)
		return bad(s, where, NULL,
			   "give only one of body, json, body_base64 and body_file");
	for (size_t i = 0; i < 4; i++)
		if ((v = get_path(obj, kinds[i])) != NULL) {
			which = kinds[i];
			break;
		}
	if (strcmp(spec->method, "HEAD") == 0)
		return bad(s, where, which, "a HEAD request cannot have a body");
	if (strcmp(which, "body") == 0) {
		spec->body_kind = BODY_TEXT;
		spec->body_text = v->valuestring;
		spec->body_len = strlen(v->valuestring);
	} else if (strcmp(which, "json") == 0) {
		spec->body_kind = BODY_JSON;
		spec->body = outpost_json_print(v, false);
		if (spec->body == NULL)
			return outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		spec->body_text = spec->body;
		spec->body_len = strlen(spec->body);
	} else if (strcmp(which, "body_base64") == 0) {
		spec->body_kind = BODY_BASE64;
		if (!cJSON_IsString(v) ||
		    http_base64_decode(v->valuestring, &spec->body, &spec->body_len) < 0)
			return bad(s, where, which, "not valid base64");
		spec->body_text = spec->body;
	} else {
		spec->body_kind = BODY_FILE;
		spec->body_file = v->valuestring;
	}
	return OUTPOST_OK;
}

static int parse_auth(const struct src *s, struct http_spec *spec)
{
	const char *where = s->label;
	const cJSON *auth = get_path(s->item, "auth");
	const char *type;

	if (auth == NULL && s->defaults != NULL) {
		auth = get_path(s->defaults, "auth");
		where = "params.defaults";
	}
	if (auth == NULL)
		return OUTPOST_OK;
	type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(auth, "type"));
	spec->auth_secret = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(auth, "secret"));
	spec->auth_username = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(auth, "username"));
	spec->auth_header = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(auth, "header"));
	if (type == NULL || spec->auth_secret == NULL)
		return bad(s, where, "auth", "needs type and secret");
	if (strcmp(type, "basic") == 0) {
		spec->auth_kind = AUTH_BASIC;
		if (spec->auth_username == NULL)
			return bad(s, where, "auth.username",
				   "required for basic auth (the secret holds the password)");
		if (strchr(spec->auth_username, ':') != NULL)
			return bad(s, where, "auth.username", "must not contain ':'");
	} else if (strcmp(type, "bearer") == 0) {
		spec->auth_kind = AUTH_BEARER;
	} else {
		spec->auth_kind = AUTH_HEADER;
		if (spec->auth_header == NULL)
			return bad(s, where, "auth.header",
				   "required when auth.type is \"header\" (e.g. \"X-API-Key\")");
		if (!is_token(spec->auth_header))
			return bad(s, where, "auth.header", "\"%s\" is not a valid header name",
				   spec->auth_header);
	}
	if (spec->auth_kind != AUTH_BASIC && spec->auth_username != NULL)
		return bad(s, where, "auth.username", "only used with auth.type \"basic\"");
	if (spec->auth_kind != AUTH_HEADER && spec->auth_header != NULL)
		return bad(s, where, "auth.header", "only used with auth.type \"header\"");
	return OUTPOST_OK;
}

static int parse_tls(const struct src *s, const struct http_settings *st, struct http_spec *spec)
{
	const char *where, *v;

	spec->tls_verify = bool_of(s, "tls.verify", true);
	if (!spec->tls_verify && !st->allow_insecure) {
		pick(s, "tls.verify", &where);
		return bad(s, where, "tls.verify",
			   "this agent does not allow turning TLS verification off "
			   "(plugins.config.http.allow_insecure is false); give tls.ca_file instead");
	}
	spec->ca_file = str_of(s, "tls.ca_file", NULL);
	spec->client_cert = str_of(s, "tls.client_cert", NULL);
	spec->client_key = str_of(s, "tls.client_key", NULL);
	spec->client_key_secret = str_of(s, "tls.client_key_secret", NULL);
	spec->key_password_secret = str_of(s, "tls.key_password_secret", NULL);
	if (spec->client_key && spec->client_key_secret) {
		pick(s, "tls.client_key", &where);
		return bad(s, where, "tls", "give client_key or client_key_secret, not both");
	}
	if ((spec->client_key || spec->client_key_secret) && spec->client_cert == NULL) {
		pick(s, spec->client_key ? "tls.client_key" : "tls.client_key_secret", &where);
		return bad(s, where, "tls.client_cert",
			   "required with a client key (a PEM file holding the certificate)");
	}
	v = str_of(s, "tls.min_version", "1.2");
	spec->tls_min = strcmp(v, "1.0") == 0	? CURL_SSLVERSION_TLSv1_0
			: strcmp(v, "1.1") == 0 ? CURL_SSLVERSION_TLSv1_1
			: strcmp(v, "1.3") == 0 ? CURL_SSLVERSION_TLSv1_3
						: CURL_SSLVERSION_TLSv1_2;
	return OUTPOST_OK;
}

static int parse_retries(const struct src *s, struct http_spec *spec)
{
	const char *where;
	const cJSON *v, *e;
	int rc;

	v = pick(s, "retries.count", NULL);
	spec->retry_count = cJSON_IsNumber(v) ? v->valueint : 0;
	if ((rc = duration_of(s, "retries.backoff", 1.0, &spec->retry_backoff)) != OUTPOST_OK ||
	    (rc = duration_of(s, "retries.max_backoff", 30.0, &spec->retry_max_backoff)) !=
		    OUTPOST_OK)
		return rc;
	if (spec->retry_max_backoff < spec->retry_backoff) {
		pick(s, "retries.max_backoff", &where);
		return bad(s, where, "retries.max_backoff", "must not be less than retries.backoff");
	}
	v = pick(s, "retries.on_status", NULL);
	if (v == NULL) {
		static const int dflt[] = {429, 502, 503, 504};

		memcpy(spec->retry_status, dflt, sizeof(dflt));
		spec->n_retry_status = 4;
	} else {
		cJSON_ArrayForEach(e, v)
		{
			if (spec->n_retry_status < HTTP_MAX_RETRY_STATUS && cJSON_IsNumber(e))
				spec->retry_status[spec->n_retry_status++] = e->valueint;
		}
	}
	v = pick(s, "retries.on_errors", NULL);
	if (v == NULL) {
		spec->retry_errors = RETRY_DNS | RETRY_CONNECT | RETRY_TIMEOUT | RETRY_RESET;
	} else {
		cJSON_ArrayForEach(e, v)
		{
			const char *n = cJSON_GetStringValue(e);

			if (n == NULL)
				continue;
			spec->retry_errors |= strcmp(n, "dns") == 0	  ? RETRY_DNS
					      : strcmp(n, "connect") == 0 ? RETRY_CONNECT
					      : strcmp(n, "timeout") == 0 ? RETRY_TIMEOUT
					      : strcmp(n, "reset") == 0	  ? RETRY_RESET
					      : strcmp(n, "tls") == 0	  ? RETRY_TLS
									  : 0;
		}
	}
	return OUTPOST_OK;
}

static bool valid_artifact_name(const char *n)
{
	return n[0] != '\0' && n[0] != '.' && strchr(n, '/') == NULL && strlen(n) <= 200;
}

static int parse_response(const struct src *s, struct http_spec *spec, bool batch)
{
	const char *where, *mode, *awhere;
	char a[64], b[64];
	int rc;

	mode = str_of(s, "response.body", NULL);
	spec->artifact = str_of(s, "response.artifact", NULL);
	pick(s, "response.artifact", &awhere);
	if (mode == NULL)
		spec->resp_mode = spec->artifact ? RESP_ARTIFACT : batch ? RESP_NONE : RESP_TEXT;
	else
		spec->resp_mode = strcmp(mode, "artifact") == 0 ? RESP_ARTIFACT
				  : strcmp(mode, "none") == 0	? RESP_NONE
								: RESP_TEXT;
	if (spec->artifact && spec->resp_mode != RESP_ARTIFACT)
		return bad(s, awhere, "response.artifact",
			   "only used with response.body \"artifact\"");
	if (spec->artifact && !valid_artifact_name(spec->artifact))
		return bad(s, awhere, "response.artifact",
			   "\"%s\": a plain file name is needed (no '/', not starting with '.')",
			   spec->artifact);
	if ((rc = size_of(s, "response.max_text", HTTP_DEFAULT_MAX_TEXT, &spec->max_text)) !=
		    OUTPOST_OK ||
	    (rc = size_of(s, "response.max_size", HTTP_DEFAULT_MAX_SIZE, &spec->max_size)) !=
		    OUTPOST_OK)
		return rc;
	if (spec->max_text > 4u * 1024 * 1024) {
		pick(s, "response.max_text", &where);
		return bad(s, where, "response.max_text",
			   "at most 4MiB in a result; save larger bodies as an artifact "
			   "(response.body: \"artifact\")");
	}
	if (spec->max_size < spec->max_text) {
		pick(s, "response.max_size", &where);
		http_fmt_size(spec->max_size, a, sizeof(a));
		http_fmt_size(spec->max_text, b, sizeof(b));
		return bad(s, where, "response.max_size", "%s is less than response.max_text (%s)",
			   a, b);
	}
	spec->want_headers = bool_of(s, "response.headers", !batch);
	return OUTPOST_OK;
}

/* Parses "404", "2xx" or "200-299" into R. */
static int parse_status(const cJSON *v, struct http_range *r)
{
	int lo, hi, n = 0;
	char c;

	if (cJSON_IsNumber(v)) {
		if (v->valuedouble != (double)v->valueint || v->valueint < 100 || v->valueint > 599)
			return -1;
		r->lo = r->hi = v->valueint;
		return 0;
	}
	if (!cJSON_IsString(v))
		return -1;
	if (strlen(v->valuestring) == 3 && v->valuestring[0] >= '1' && v->valuestring[0] <= '5' &&
	    tolower((unsigned char)v->valuestring[1]) == 'x' &&
	    tolower((unsigned char)v->valuestring[2]) == 'x') {
		r->lo = (v->valuestring[0] - '0') * 100;
		r->hi = r->lo + 99;
		return 0;
	}
	if (sscanf(v->valuestring, "%3d-%3d%n%c", &lo, &hi, &n, &c) == 2 &&
	    (size_t)n == strlen(v->valuestring) && lo >= 100 && hi <= 599 && lo <= hi) {
		r->lo = lo;
		r->hi = hi;
		return 0;
	}
	if (sscanf(v->valuestring, "%3d%n%c", &lo, &n, &c) == 1 &&
	    (size_t)n == strlen(v->valuestring) && lo >= 100 && lo <= 599) {
		r->lo = r->hi = lo;
		return 0;
	}
	return -1;
}

static int compile(const struct src *s, const char *where, const char *key, const char *pattern,
		   regex_t *re)
{
	int e = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
	char why[256];

	if (e == 0)
		return OUTPOST_OK;
	regerror(e, re, why, sizeof(why));
	return bad(s, where, key, "\"%s\" is not a valid regular expression (POSIX ERE): %s",
		   pattern, why);
}

static int parse_expect(const struct src *s, struct http_spec *spec)
{
	const char *where;
	const cJSON *v, *e;
	int rc, i = 0;

	v = pick(s, "expect.status", &where);
	if (v == NULL) {
		spec->status_default = true;
		spec->status[0].lo = 200;
		spec->status[0].hi = 299;
		spec->status[1].lo = 300;
		spec->status[1].hi = 399;
		spec->n_status = 2;
	}
	cJSON_ArrayForEach(e, v)
	{
		char key[48];

		snprintf(key, sizeof(key), "expect.status[%d]", i++);
		if (spec->n_status >= HTTP_MAX_STATUS_RANGES)
			return bad(s, where, key, "too many entries");
		if (parse_status(e, &spec->status[spec->n_status]) < 0) {
			char *t = outpost_json_print(e, false);

			rc = bad(s, where, key,
				 "%s is not a status (100-599), a class such as \"2xx\" or a range "
				 "such as \"200-299\"",
				 t ? t : "?");
			free(t);
			return rc;
		}
		spec->n_status++;
	}
	v = pick(s, "expect.headers", &where);
	if (v != NULL && cJSON_GetArraySize(v) > 0) {
		spec->exp_headers = calloc((size_t)cJSON_GetArraySize(v), sizeof(*spec->exp_headers));
		if (spec->exp_headers == NULL)
			return outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		cJSON_ArrayForEach(e, v)
		{
			struct http_expect_header *h = &spec->exp_headers[spec->n_exp_headers];
			char key[320];

			snprintf(key, sizeof(key), "expect.headers.%s", e->string);
			if (!is_token(e->string))
				return bad(s, where, key, "not a valid header name");
			h->name = e->string;
			h->pattern = e->valuestring;
			if ((rc = compile(s, where, key, e->valuestring, &h->re)) != OUTPOST_OK)
				return rc;
			h->compiled = true;
			spec->n_exp_headers++;
		}
	}
	spec->body_pattern = str_of(s, "expect.body_regex", NULL);
	if (spec->body_pattern != NULL) {
		pick(s, "expect.body_regex", &where);
		if ((rc = compile(s, where, "expect.body_regex", spec->body_pattern,
				  &spec->body_re)) != OUTPOST_OK)
			return rc;
		spec->body_re_compiled = true;
	}
	v = pick(s, "expect.json", &where);
	if (v != NULL && cJSON_GetArraySize(v) > 0) {
		spec->exp_json = calloc((size_t)cJSON_GetArraySize(v), sizeof(*spec->exp_json));
		if (spec->exp_json == NULL)
			return outpost_fail(s->ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		cJSON_ArrayForEach(e, v)
		{
			char why[256], key[320];

			snprintf(key, sizeof(key), "expect.json[\"%s\"]", e->string);
			if (http_json_path_check(e->string, why, sizeof(why)) < 0)
				return bad(s, where, key, "%s", why);
			spec->exp_json[spec->n_exp_json].path = e->string;
			spec->exp_json[spec->n_exp_json].value = e;
			spec->n_exp_json++;
		}
	}
	spec->max_latency = -1;
	if (pick(s, "expect.max_latency", NULL) != NULL &&
	    (rc = duration_of(s, "expect.max_latency", -1, &spec->max_latency)) != OUTPOST_OK)
		return rc;
	return OUTPOST_OK;
}

int http_spec_parse(outpost_ctx *ctx, const struct http_settings *st, const cJSON *item,
		    const cJSON *defaults, const char *label, int index, bool batch,
		    struct http_spec *spec)
{
	struct src s = {ctx, item, defaults, label};
	const char *where;
	const cJSON *v;
	int rc;

	memset(spec, 0, sizeof(*spec));
	spec->index = index;
	snprintf(spec->label, sizeof(spec->label), "%s", label);
	spec->max_latency = -1;
	if (!cJSON_IsObject(item))
		return bad(&s, NULL, NULL, "expected an object");
	spec->name = str_of(&s, "name", NULL);
	spec->method = str_of(&s, "method", "GET");
	if ((rc = parse_url(&s, spec)) != OUTPOST_OK || (rc = parse_headers(&s, spec)) != OUTPOST_OK ||
	    (rc = parse_body(&s, spec)) != OUTPOST_OK || (rc = parse_auth(&s, spec)) != OUTPOST_OK ||
	    (rc = parse_tls(&s, st, spec)) != OUTPOST_OK)
		return rc;
	v = pick(&s, "proxy", &where);
	if (v != NULL) {
		spec->proxy_set = true;
		spec->proxy = strcmp(v->valuestring, "none") == 0 ? NULL : v->valuestring;
		if (spec->proxy != NULL && strstr(spec->proxy, "://") == NULL)
			return bad(&s, where, "proxy",
				   "\"%s\" is not a proxy URL: use e.g. http://proxy.internal:3128, "
				   "or \"none\" for a direct connection",
				   spec->proxy);
	}
	spec->no_proxy = str_of(&s, "no_proxy", NULL);
	if ((rc = duration_of(&s, "connect_timeout", HTTP_DEFAULT_CONNECT_TIMEOUT,
			      &spec->connect_timeout)) != OUTPOST_OK ||
	    (rc = duration_of(&s, "timeout", HTTP_DEFAULT_TIMEOUT, &spec->timeout)) != OUTPOST_OK)
		return rc;
	if (spec->timeout <= 0) {
		pick(&s, "timeout", &where);
		return bad(&s, where, "timeout", "must be more than 0");
	}
	if (spec->connect_timeout <= 0) {
		pick(&s, "connect_timeout", &where);
		return bad(&s, where, "connect_timeout", "must be more than 0");
	}
	spec->follow = bool_of(&s, "follow_redirects", true);
	v = pick(&s, "max_redirects", NULL);
	spec->max_redirects = cJSON_IsNumber(v) ? v->valueint : HTTP_DEFAULT_MAX_REDIRECTS;
	if ((rc = parse_retries(&s, spec)) != OUTPOST_OK ||
	    (rc = parse_response(&s, spec, batch)) != OUTPOST_OK ||
	    (rc = parse_expect(&s, spec)) != OUTPOST_OK)
		return rc;
	return OUTPOST_OK;
}

void http_spec_release(struct http_spec *spec)
{
	if (spec == NULL)
		return;
	free(spec->url);
	free(spec->host);
	curl_slist_free_all(spec->headers);
	if (spec->body != NULL && spec->body_kind == BODY_JSON)
		cJSON_free(spec->body);
	else
		free(spec->body);
	for (int i = 0; i < spec->n_exp_headers; i++)
		if (spec->exp_headers[i].compiled)
			regfree(&spec->exp_headers[i].re);
	free(spec->exp_headers);
	if (spec->body_re_compiled)
		regfree(&spec->body_re);
	free(spec->exp_json);
	memset(spec, 0, sizeof(*spec));
}
