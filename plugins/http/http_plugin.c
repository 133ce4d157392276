/* SPDX-License-Identifier: Apache-2.0 */
/* The http plugin's descriptor and callbacks: settings, params schemas, validate, execute. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- params schemas (Outpost's JSON Schema subset) ------------------------------------ */

#define DURATION_T "\"type\": [\"string\", \"number\"], \"minimum\": 0"
#define SIZE_T "\"type\": [\"string\", \"number\"], \"minimum\": 0"
#define SECRET_NAME_T "\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200"

#define URL_PROP                                                                                 \
	"\"url\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 16384,"                \
	"  \"description\": \"an http:// or https:// URL\"},"

/* Every member of a request except url; shared by http.request, batch items and defaults. */
#define REQUEST_PROPS                                                                            \
	"\"method\": {\"type\": \"string\", \"default\": \"GET\","                               \
	"  \"enum\": [\"GET\", \"HEAD\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\", \"OPTIONS\"]}," \
	"\"headers\": {\"type\": \"object\", \"description\": \"request headers, name: value\","  \
	"  \"additionalProperties\": {\"type\": \"string\", \"maxLength\": 16384}},"              \
	"\"query\": {\"type\": \"object\", \"description\": \"query parameters, URL-encoded\","   \
	"  \"additionalProperties\": {\"type\": [\"string\", \"number\", \"boolean\", \"array\"]," \
	"    \"items\": {\"type\": [\"string\", \"number\", \"boolean\"]}}},"                      \
	"\"body\": {\"type\": \"string\", \"description\": \"request body as text\"},"             \
	"\"json\": {\"description\": \"request body as JSON (sets Content-Type)\"},"               \
	"\"body_base64\": {\"type\": \"string\", \"description\": \"request body, base64\"},"      \
	"\"body_file\": {\"type\": \"string\", \"minLength\": 1,"                                 \
	"  \"description\": \"request body from a file (relative to the workspace)\"},"           \
	"\"auth\": {\"type\": \"object\", \"additionalProperties\": false,"                       \
	"  \"required\": [\"type\", \"secret\"], \"properties\": {"                                \
	"    \"type\": {\"type\": \"string\", \"enum\": [\"basic\", \"bearer\", \"header\"]},"      \
	"    \"secret\": {" SECRET_NAME_T "},"                                                    \
	"    \"username\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256},"          \
	"    \"header\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256}}},"          \
	"\"tls\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"       \
	"    \"verify\": {\"type\": \"boolean\", \"default\": true},"                              \
	"    \"ca_file\": {\"type\": \"string\", \"minLength\": 1},"                               \
	"    \"client_cert\": {\"type\": \"string\", \"minLength\": 1},"                           \
	"    \"client_key\": {\"type\": \"string\", \"minLength\": 1},"                            \
	"    \"client_key_secret\": {" SECRET_NAME_T "},"                                         \
	"    \"key_password_secret\": {" SECRET_NAME_T "},"                                       \
	"    \"min_version\": {\"type\": \"string\", \"enum\": [\"1.0\", \"1.1\", \"1.2\", \"1.3\"]," \
	"      \"default\": \"1.2\"}}},"                                                          \
	"\"proxy\": {\"type\": \"string\", \"minLength\": 1,"                                     \
	"  \"description\": \"proxy URL for this request, or none\"},"                            \
	"\"no_proxy\": {\"type\": \"string\"},"                                                   \
	"\"connect_timeout\": {" DURATION_T ", \"default\": \"10s\"},"                            \
	"\"timeout\": {" DURATION_T ", \"default\": \"30s\"},"                                    \
	"\"follow_redirects\": {\"type\": \"boolean\", \"default\": true},"                       \
	"\"max_redirects\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 50, \"default\": 5}," \
	"\"retries\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"   \
	"    \"count\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 20, \"default\": 0}," \
	"    \"backoff\": {" DURATION_T ", \"default\": \"1s\"},"                                 \
	"    \"max_backoff\": {" DURATION_T ", \"default\": \"30s\"},"                            \
	"    \"on_status\": {\"type\": \"array\", \"maxItems\": 32,"                               \
	"      \"items\": {\"type\": \"integer\", \"minimum\": 100, \"maximum\": 599}},"           \
	"    \"on_errors\": {\"type\": \"array\", \"items\": {\"type\": \"string\","               \
	"      \"enum\": [\"dns\", \"connect\", \"timeout\", \"reset\", \"tls\"]}}}},"             \
	"\"response\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"  \
	"    \"body\": {\"type\": \"string\", \"enum\": [\"text\", \"artifact\", \"none\"]},"       \
	"    \"max_text\": {" SIZE_T "},"                                                         \
	"    \"max_size\": {" SIZE_T "},"                                                         \
	"    \"artifact\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200},"          \
	"    \"headers\": {\"type\": \"boolean\"}}},"                                             \
	"\"expect\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"    \
	"    \"status\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 32,"                  \
	"      \"items\": {\"type\": [\"integer\", \"string\"]}},"                                 \
	"    \"headers\": {\"type\": \"object\","                                                 \
	"      \"additionalProperties\": {\"type\": \"string\"}},"                                \
	"    \"body_regex\": {\"type\": \"string\", \"minLength\": 1},"                            \
	"    \"json\": {\"type\": \"object\"},"                                                   \
	"    \"max_latency\": {" DURATION_T "}}}"

static const char request_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"url\"],"
	" \"properties\": {" URL_PROP REQUEST_PROPS "}}";

static const char batch_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"requests\"],"
	" \"properties\": {"
	"  \"requests\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 10000,"
	"    \"items\": {\"type\": \"object\", \"additionalProperties\": false,"
	"      \"required\": [\"url\"], \"properties\": {"
	"        \"name\": {\"type\": \"string\", \"maxLength\": 200}," URL_PROP REQUEST_PROPS "}}},"
	"  \"defaults\": {\"type\": \"object\", \"additionalProperties\": false,"
	"    \"description\": \"members every request gets unless it sets them\","
	"    \"properties\": {" REQUEST_PROPS "}},"
	"  \"concurrency\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1024,"
	"    \"default\": 8},"
	"  \"fail_fast\": {\"type\": \"boolean\", \"default\": false}}}";

/* ---- settings -------------------------------------------------------------------------- */

/* A task's params, parsed and checked: the tree the specs point into, and the specs. */
struct http_parsed {
	char *type;
	char *text;
	size_t len;
	cJSON *params;
	struct http_spec *specs;
	int n;
	struct http_run_opts opts;
};

static void parsed_free(struct http_parsed *pp)
{
	if (pp == NULL)
		return;
	for (int i = 0; i < pp->n; i++)
		http_spec_release(&pp->specs[i]);
	free(pp->specs);
	cJSON_Delete(pp->params);
	free(pp->text);
	free(pp->type);
	free(pp);
}

static char *dup_or_null(const cJSON *v)
{
	return cJSON_IsString(v) && v->valuestring[0] ? strdup(v->valuestring) : NULL;
}

static void settings_free(struct http_settings *st)
{
	if (st == NULL)
		return;
	parsed_free(st->validated);
	free(st->proxy);
	free(st->no_proxy);
	free(st->ca_file);
	free(st->user_agent);
	free(st);
}

/* Reads {"config": plugins.config.http, "agent": {...}} into a new settings struct. The
 * plugin's own settings win over the agent's network settings. Unknown settings are errors,
 * so a typo in the agent config does not silently do nothing. */
static int http_init(outpost_ctx *ctx, const char *config, size_t len, void **state)
{
	static const char *const known[] = {"proxy",	      "no_proxy",	"ca_file",
					    "user_agent",     "allow_insecure", "max_concurrency",
					    "max_result_size", "env_allow"};
	cJSON *root = cJSON_ParseWithLength(config, len);
	const cJSON *cfg, *agent, *kw;
	struct http_settings *st = NULL;
	int rc = OUTPOST_ERR_PARAMS;

	if (root == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "init: configuration is not JSON");
	cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
	agent = cJSON_GetObjectItemCaseSensitive(root, "agent");
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		rc = OUTPOST_ERR_INTERNAL;
		goto out;
	}
	st->allow_insecure = true;
	st->max_concurrency = HTTP_DEFAULT_MAX_CONCURRENCY;
	st->max_result = HTTP_DEFAULT_MAX_RESULT;
	atomic_init(&st->cancelled, 0);
	cJSON_ArrayForEach(kw, cfg)
	{
		bool ok = false;

		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(kw->string, known[i]) == 0)
				ok = true;
		if (!ok) {
			outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				     "plugins.config.http.%s: unknown setting (known: proxy, no_proxy, "
				     "ca_file, user_agent, allow_insecure, max_concurrency, "
				     "max_result_size, env_allow)",
				     kw->string);
			goto out;
		}
	}
	st->proxy = dup_or_null(cJSON_GetObjectItemCaseSensitive(agent, "proxy"));
	st->no_proxy = dup_or_null(cJSON_GetObjectItemCaseSensitive(agent, "no_proxy"));
	st->ca_file = dup_or_null(cJSON_GetObjectItemCaseSensitive(agent, "ca_file"));
	if (cJSON_IsObject(cfg)) {
		const cJSON *v;
		int64_t n;

		v = cJSON_GetObjectItemCaseSensitive(cfg, "proxy");
		if (v != NULL) {
			if (!cJSON_IsString(v)) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.proxy: expected a proxy URL or \"none\"");
				goto out;
			}
			free(st->proxy);
			st->proxy = strcmp(v->valuestring, "none") == 0 ? NULL : dup_or_null(v);
		}
		v = cJSON_GetObjectItemCaseSensitive(cfg, "no_proxy");
		if (v != NULL) {
			if (!cJSON_IsString(v)) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.no_proxy: expected a string such as "
					     "\"localhost,.internal\"");
				goto out;
			}
			free(st->no_proxy);
			st->no_proxy = dup_or_null(v);
		}
		v = cJSON_GetObjectItemCaseSensitive(cfg, "ca_file");
		if (v != NULL) {
			if (!cJSON_IsString(v)) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.ca_file: expected a file path");
				goto out;
			}
			free(st->ca_file);
			st->ca_file = dup_or_null(v);
		}
		v = cJSON_GetObjectItemCaseSensitive(cfg, "user_agent");
		if (v != NULL) {
			if (!cJSON_IsString(v)) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.user_agent: expected a string");
				goto out;
			}
			st->user_agent = dup_or_null(v);
		}
		v = cJSON_GetObjectItemCaseSensitive(cfg, "allow_insecure");
		if (v != NULL) {
			if (!cJSON_IsBool(v)) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.allow_insecure: expected true or false");
				goto out;
			}
			st->allow_insecure = cJSON_IsTrue(v);
		}
		v = cJSON_GetObjectItemCaseSensitive(cfg, "max_concurrency");
		if (v != NULL) {
			n = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
			if (!cJSON_IsNumber(v) || (double)n != v->valuedouble || n < 1 || n > 1024) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.max_concurrency: expected an integer "
					     "from 1 to 1024");
				goto out;
			}
			st->max_concurrency = (int)n;
		}
		v = cJSON_GetObjectItemCaseSensitive(cfg, "max_result_size");
		if (v != NULL) {
			uint64_t b = 0;

			if (cJSON_IsNumber(v) && v->valuedouble >= 1024 && v->valuedouble <= 8388608)
				b = (uint64_t)v->valuedouble;
			else if (cJSON_IsString(v) && outpost_parse_size(v->valuestring, &b) < 0)
				b = 0;
			if (b < 1024 || b > 8u * 1024 * 1024) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "plugins.config.http.max_result_size: expected a size from "
					     "1KiB to 8MiB such as \"4MiB\"");
				goto out;
			}
			st->max_result = b;
		}
	}
	if (st->user_agent == NULL) {
		st->user_agent = strdup("outpost-http/" OUTPOST_HTTP_VERSION);
		if (st->user_agent == NULL) {
			rc = OUTPOST_ERR_INTERNAL;
			goto out;
		}
	}
	/* libcurl (and OpenSSL, which reads its configuration here) initialise in init(): a
	 * spare worker has done it before its task arrives. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "libcurl failed to initialise");
		goto out;
	}
	st->curl_ready = true;
	*state = st;
	st = NULL;
	rc = OUTPOST_OK;
out:
	settings_free(st);
	cJSON_Delete(root);
	return rc;
}

static void http_shutdown(void *state)
{
	struct http_settings *st = state;
	bool ready;

	if (st == NULL)
		return;
	ready = st->curl_ready;
	settings_free(st);
	if (ready)
		curl_global_cleanup();
}

/* Called from another thread or a signal handler: only sets the flag the engine polls. */
static void http_cancel(void *state)
{
	struct http_settings *st = state;

	if (st != NULL)
		atomic_store(&st->cancelled, 1);
}

/* ---- validate and execute -------------------------------------------------------------- */

static bool is_batch(const char *type)
{
	return strcmp(type, "http.batch") == 0;
}

struct art_name {
	char name[256];
	int index;
};

static int art_cmp(const void *a, const void *b)
{
	const struct art_name *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : x->index - y->index;
}

/* Two requests of a batch cannot write one artifact: refuse that before anything is sent. */
static int check_artifacts(outpost_ctx *ctx, const struct http_spec *specs, int n)
{
	struct art_name *names;
	int k = 0, rc = OUTPOST_OK;

	for (int i = 0; i < n; i++)
		if (specs[i].resp_mode == RESP_ARTIFACT)
			k++;
	if (k < 2)
		return OUTPOST_OK;
	names = calloc((size_t)k, sizeof(*names));
	if (names == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	k = 0;
	for (int i = 0; i < n; i++) {
		if (specs[i].resp_mode != RESP_ARTIFACT)
			continue;
		if (specs[i].artifact)
			snprintf(names[k].name, sizeof(names[k].name), "%s", specs[i].artifact);
		else
			snprintf(names[k].name, sizeof(names[k].name), "response-%d.body", i);
		names[k++].index = i;
	}
	qsort(names, (size_t)k, sizeof(*names), art_cmp);
	for (int i = 1; i < k; i++)
		if (strcmp(names[i].name, names[i - 1].name) == 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					  "params.requests[%d].response.artifact: \"%s\" is also the "
					  "artifact of requests[%d]; give each request its own name",
					  names[i].index, names[i].name, names[i - 1].index);
			break;
		}
	free(names);
	return rc;
}

/*
 * Parses every request of the task into SPECS (allocated here, *n set). For http.request
 * that is one spec from the params; for http.batch one per requests[] item, each with the
 * batch's defaults. Returns OUTPOST_OK or OUTPOST_ERR_PARAMS with the error on CTX.
 */
static int parse_all(outpost_ctx *ctx, struct http_settings *st, const char *type, cJSON *p,
		     struct http_spec **specs_out, int *n_out, struct http_run_opts *opts)
{
	struct http_spec *specs = NULL;
	const cJSON *reqs, *defaults, *item;
	int n = 0, i = 0, rc = OUTPOST_OK;

	memset(opts, 0, sizeof(*opts));
	opts->concurrency = 1;
	if (!is_batch(type)) {
		specs = calloc(1, sizeof(*specs));
		if (specs == NULL)
			return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		rc = http_spec_parse(ctx, st, p, NULL, "params", 0, false, &specs[0]);
		if (rc != OUTPOST_OK) {
			http_spec_release(&specs[0]);
			free(specs);
			return rc;
		}
		*specs_out = specs;
		*n_out = 1;
		return OUTPOST_OK;
	}
	opts->batch = true;
	reqs = cJSON_GetObjectItemCaseSensitive(p, "requests");
	defaults = cJSON_GetObjectItemCaseSensitive(p, "defaults");
	item = cJSON_GetObjectItemCaseSensitive(p, "concurrency");
	opts->concurrency = cJSON_IsNumber(item) ? item->valueint : HTTP_DEFAULT_CONCURRENCY;
	if (opts->concurrency > st->max_concurrency)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.concurrency: %d exceeds this agent's limit of %d "
				    "(plugins.config.http.max_concurrency)",
				    opts->concurrency, st->max_concurrency);
	opts->fail_fast = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "fail_fast"));
	n = cJSON_GetArraySize(reqs);
	if (n < 1)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.requests: required");
	specs = calloc((size_t)n, sizeof(*specs));
	if (specs == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	cJSON_ArrayForEach(item, reqs)
	{
		char label[32];

		snprintf(label, sizeof(label), "params.requests[%d]", i);
		rc = http_spec_parse(ctx, st, item, defaults, label, i, true, &specs[i]);
		i++;
		if (rc != OUTPOST_OK)
			break;
	}
	if (rc == OUTPOST_OK)
		rc = check_artifacts(ctx, specs, n);
	if (rc != OUTPOST_OK) {
		for (int j = 0; j < i; j++)
			http_spec_release(&specs[j]);
		free(specs);
		return rc;
	}
	*specs_out = specs;
	*n_out = n;
	return OUTPOST_OK;
}

static void release_all(struct http_spec *specs, int n)
{
	for (int i = 0; i < n; i++)
		http_spec_release(&specs[i]);
	free(specs);
}

/* Checks every request without sending anything. What it parsed is kept for execute(),
 * which the worker calls next with the same params: a batch is parsed once. */
static int http_validate(outpost_ctx *ctx, void *state, const char *type, const char *params,
			 size_t len)
{
	struct http_settings *st = state;
	struct http_run_opts opts;
	struct http_spec *specs = NULL;
	struct http_parsed *pp;
	cJSON *p = outpost_params_parse(ctx, params, len);
	int n = 0, rc;

	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	rc = parse_all(ctx, st, type, p, &specs, &n, &opts);
	if (rc != OUTPOST_OK) {
		cJSON_Delete(p);
		return rc;
	}
	parsed_free(st->validated);
	st->validated = NULL;
	pp = calloc(1, sizeof(*pp));
	if (pp != NULL && (pp->text = malloc(len)) != NULL && (pp->type = strdup(type)) != NULL) {
		memcpy(pp->text, params, len);
		pp->len = len;
		pp->params = p;
		pp->specs = specs;
		pp->n = n;
		pp->opts = opts;
		st->validated = pp;
		return OUTPOST_OK;
	}
	if (pp != NULL) {
		free(pp->text);
		free(pp);
	}
	release_all(specs, n);
	cJSON_Delete(p);
	return OUTPOST_OK;
}

/* Serialises RESULT; when it is larger than the agent allows for a result, moves the
 * per-request list into the artifact batch-results.json and says so in the result. */
static int set_batch_result(outpost_ctx *ctx, struct http_settings *st, cJSON *result)
{
	char *text = outpost_json_print(result, false);
	int rc = -1;

	if (text == NULL)
		return -1;
	if (strlen(text) > st->max_result) {
		cJSON *list = cJSON_DetachItemFromObjectCaseSensitive(result, "requests");
		char *full = outpost_json_print(list, false);
		int fd = -1;

		cJSON_Delete(list);
		free(text);
		text = NULL;
		if (full == NULL)
			return -1;
		if (outpost_host->artifact_open(ctx, "batch-results.json", &fd) == 0) {
			size_t off = 0, flen = strlen(full);

			while (off < flen) {
				ssize_t w = write(fd, full + off, flen - off);

				if (w <= 0)
					break;
				off += (size_t)w;
			}
			close(fd);
			cJSON_AddStringToObject(result, "requests_artifact", "batch-results.json");
			outpost_info(ctx,
				     "the per-request results (%zu bytes) exceed max_result_size: "
				     "saved as artifact batch-results.json",
				     flen);
		} else {
			outpost_warn(ctx, "cannot create artifact batch-results.json: the "
					  "per-request results are left out of the result");
		}
		free(full);
		text = outpost_json_print(result, false);
		if (text == NULL)
			return -1;
	}
	rc = outpost_host->set_result(ctx, text, strlen(text));
	free(text);
	return rc;
}

static int http_execute(outpost_ctx *ctx, void *state, const char *type, const char *params,
			size_t len)
{
	struct http_settings *st = state;
	struct http_parsed *pp = st->validated;
	struct http_run_opts opts;
	struct http_spec *specs = NULL;
	cJSON **results = NULL;
	cJSON *p = NULL, *out = NULL, *list = NULL;
	char first_err[1536] = "";
	int n = 0, failed = 0, rc;
	double t0 = http_now();

	st->validated = NULL;
	if (pp != NULL && pp->len == len && strcmp(pp->type, type) == 0 &&
	    memcmp(pp->text, params, len) == 0) {
		p = pp->params;
		specs = pp->specs;
		n = pp->n;
		opts = pp->opts;
		pp->params = NULL;
		pp->specs = NULL;
		pp->n = 0;
		rc = OUTPOST_OK;
	} else {
		p = outpost_params_parse(ctx, params, len);
		if (p == NULL) {
			parsed_free(pp);
			return OUTPOST_ERR_PARAMS;
		}
		rc = parse_all(ctx, st, type, p, &specs, &n, &opts);
	}
	parsed_free(pp);
	if (rc != OUTPOST_OK)
		goto out;
	results = calloc((size_t)n, sizeof(*results));
	if (results == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = http_run(ctx, st, specs, n, &opts, results, &failed, first_err, sizeof(first_err));
	if (rc != OUTPOST_OK && rc != OUTPOST_ERR_CANCELLED)
		goto out;
	if (!opts.batch) {
		if (results[0] != NULL) {
			if (outpost_set_result(ctx, results[0]) < 0) {
				rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
				goto out;
			}
		}
		if (rc == OUTPOST_ERR_CANCELLED)
			outpost_fail(ctx, rc, "cancelled: %s %s did not finish", specs[0].method,
				     specs[0].url);
		else if (failed)
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s", first_err);
		goto out;
	}
	out = cJSON_CreateObject();
	list = cJSON_CreateArray();
	if (out == NULL || list == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	{
		int succeeded = 0, not_run = 0, bad = 0;

		for (int i = 0; i < n; i++) {
			if (results[i] == NULL) {
				not_run++;
				results[i] = cJSON_CreateObject();
				if (results[i] == NULL)
					continue;
				cJSON_AddNumberToObject(results[i], "index", i);
				if (specs[i].name)
					cJSON_AddStringToObject(results[i], "name", specs[i].name);
				cJSON_AddStringToObject(results[i], "url", specs[i].url);
				cJSON_AddBoolToObject(results[i], "ok", 0);
				cJSON_AddStringToObject(results[i], "error",
							rc == OUTPOST_ERR_CANCELLED
								? "not run: the task was cancelled"
								: "not run: fail_fast stopped the batch");
			} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(results[i], "ok"))) {
				succeeded++;
			} else {
				bad++;
			}
			cJSON_AddItemToArray(list, results[i]);
			results[i] = NULL;
		}
		/* "The first" failure is the lowest index, whatever order they finished in. */
		for (int i = 0; i < n && failed > 0; i++) {
			const cJSON *q = cJSON_GetArrayItem(list, i);
			const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "error"));
			const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "method"));

			if (err == NULL || m == NULL || strncmp(err, "cancelled", 9) == 0)
				continue;
			snprintf(first_err, sizeof(first_err), "requests[%d]%s%s%s %s %s: %s", i,
				 specs[i].name ? " (" : "", specs[i].name ? specs[i].name : "",
				 specs[i].name ? ")" : "", m, specs[i].url, err);
			break;
		}
		cJSON_AddNumberToObject(out, "total", n);
		cJSON_AddNumberToObject(out, "succeeded", succeeded);
		cJSON_AddNumberToObject(out, "failed", bad);
		cJSON_AddNumberToObject(out, "not_run", not_run);
		cJSON_AddNumberToObject(out, "duration", http_now() - t0);
		cJSON_AddItemToObject(out, "requests", list);
		list = NULL;
		if (set_batch_result(ctx, st, out) < 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
			goto out;
		}
		if (rc == OUTPOST_ERR_CANCELLED)
			outpost_fail(ctx, rc, "cancelled: %d of %d requests had finished", succeeded + failed, n);
		else if (failed == 1)
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "1 of %d requests failed: %s", n,
					  first_err);
		else if (failed > 1)
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "%d of %d requests failed; the first: %s", failed, n,
					  first_err);
		else
			outpost_info(ctx, "%d requests succeeded in %.3f s", n, http_now() - t0);
	}
out:
	if (results != NULL)
		for (int i = 0; i < n; i++)
			cJSON_Delete(results[i]);
	free(results);
	cJSON_Delete(list);
	cJSON_Delete(out);
	if (specs != NULL)
		release_all(specs, n);
	cJSON_Delete(p);
	return rc;
}

static const struct outpost_task_type types[] = {
	OUTPOST_TASK_TYPE("http.request",
			  "One HTTP(S) request from the agent's network position, with assertions",
			  request_schema),
	OUTPOST_TASK_TYPE("http.batch",
			  "Many HTTP(S) requests run concurrently over one connection pool",
			  batch_schema),
};

OUTPOST_PLUGIN_DEFINE(.name = "http", .version = OUTPOST_HTTP_VERSION, .vendor = "Outpost",
		      .license = "Apache-2.0",
		      .description = "HTTP(S) requests and batches with libcurl",
		      .types = types, .n_types = OUTPOST_COUNT(types), .init = http_init,
		      .validate = http_validate, .execute = http_execute, .cancel = http_cancel,
		      .shutdown = http_shutdown)
