/* SPDX-License-Identifier: Apache-2.0 */
/* The SDK helper library: negotiation, logging, errors, typed params and results. */
#include <outpost/sdk.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonprint.h"
#include "units.h"

const struct outpost_host_api *outpost_host;

int outpost_sdk_negotiate(struct outpost_negotiate *negotiate, const struct outpost_plugin *desc)
{
	if (negotiate == NULL || negotiate->size < sizeof(struct outpost_negotiate) ||
	    negotiate->host_major != OUTPOST_ABI_MAJOR || negotiate->host == NULL)
		return -1;
	outpost_host = negotiate->host;
	negotiate->plugin = desc;
	return 0;
}

void outpost_logf(outpost_ctx *ctx, int level, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	if (outpost_host == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	outpost_host->log(ctx, level, line);
}

int outpost_fail(outpost_ctx *ctx, int rc, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (outpost_host != NULL)
		outpost_host->set_error(ctx, msg);
	return rc;
}

cJSON *outpost_params_parse(outpost_ctx *ctx, const char *params, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(params, len);

	if (root == NULL)
		outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params: not valid JSON");
	else if (!cJSON_IsObject(root)) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params: expected an object");
		cJSON_Delete(root);
		root = NULL;
	}
	return root;
}

/* Walks a dotted PATH from OBJ. */
static const cJSON *lookup(const cJSON *obj, const char *path)
{
	char part[256];
	const char *p = path;

	while (obj != NULL && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		obj = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, part) : NULL;
		p += n + (dot ? 1 : 0);
	}
	return obj;
}

static const char *type_of(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsArray(v))
		return "a list";
	if (cJSON_IsObject(v))
		return "an object";
	return "null";
}

static int wrong(outpost_ctx *ctx, const char *key, const char *want, const cJSON *v)
{
	outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.%s: expected %s, got %s", key, want,
		     type_of(v));
	return -1;
}

static int missing(outpost_ctx *ctx, const char *key)
{
	outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.%s: required", key);
	return -1;
}

int outpost_get_str(outpost_ctx *ctx, const cJSON *obj, const char *key, const char **out,
		    const char *dflt)
{
	const cJSON *v = lookup(obj, key);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsString(v))
		return wrong(ctx, key, "a string", v);
	*out = v->valuestring;
	return 1;
}

int outpost_get_num(outpost_ctx *ctx, const cJSON *obj, const char *key, double *out, double dflt)
{
	const cJSON *v = lookup(obj, key);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return wrong(ctx, key, "a number", v);
	*out = v->valuedouble;
	return 1;
}

int outpost_get_int(outpost_ctx *ctx, const cJSON *obj, const char *key, int64_t *out,
		    int64_t dflt)
{
	const cJSON *v = lookup(obj, key);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
	    v->valuedouble > 9007199254740992.0 || v->valuedouble < -9007199254740992.0)
		return wrong(ctx, key, "an integer", v);
	*out = (int64_t)v->valuedouble;
	return 1;
}

int outpost_get_bool(outpost_ctx *ctx, const cJSON *obj, const char *key, bool *out, bool dflt)
{
	const cJSON *v = lookup(obj, key);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return wrong(ctx, key, "a boolean", v);
	*out = cJSON_IsTrue(v);
	return 1;
}

int outpost_get_duration(outpost_ctx *ctx, const cJSON *obj, const char *key, double *seconds,
			 double dflt)
{
	const cJSON *v = lookup(obj, key);
	double s;

	if (v == NULL || cJSON_IsNull(v)) {
		*seconds = dflt;
		return 0;
	}
	if (cJSON_IsNumber(v) && v->valuedouble >= 0) {
		*seconds = v->valuedouble;
		return 1;
	}
	if (cJSON_IsString(v) && op_parse_duration(v->valuestring, &s) == 0) {
		*seconds = s;
		return 1;
	}
	if (cJSON_IsString(v)) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS,
			     "params.%s: \"%s\" is not a duration (use e.g. \"500ms\", \"30s\", \"5m\")",
			     key, v->valuestring);
		return -1;
	}
	return wrong(ctx, key, "a duration such as \"30s\"", v);
}

int outpost_get_size(outpost_ctx *ctx, const cJSON *obj, const char *key, uint64_t *bytes,
		     uint64_t dflt)
{
	const cJSON *v = lookup(obj, key);
	uint64_t b;

	if (v == NULL || cJSON_IsNull(v)) {
		*bytes = dflt;
		return 0;
	}
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1.8e19) {
		*bytes = (uint64_t)v->valuedouble;
		return 1;
	}
	if (cJSON_IsString(v) && op_parse_size(v->valuestring, &b) == 0) {
		*bytes = b;
		return 1;
	}
	if (cJSON_IsString(v)) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS,
			     "params.%s: \"%s\" is not a size (use e.g. \"64KiB\", \"10MB\")", key,
			     v->valuestring);
		return -1;
	}
	return wrong(ctx, key, "a size such as \"10MB\"", v);
}

int outpost_get_obj(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out)
{
	const cJSON *v = lookup(obj, key);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = NULL;
		return 0;
	}
	if (!cJSON_IsObject(v))
		return wrong(ctx, key, "an object", v);
	*out = v;
	return 1;
}

int outpost_get_arr(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out)
{
	const cJSON *v = lookup(obj, key);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = NULL;
		return 0;
	}
	if (!cJSON_IsArray(v))
		return wrong(ctx, key, "a list", v);
	*out = v;
	return 1;
}

int outpost_req_str(outpost_ctx *ctx, const cJSON *obj, const char *key, const char **out)
{
	int rc = outpost_get_str(ctx, obj, key, out, NULL);

	return rc == 0 ? missing(ctx, key) : rc;
}

int outpost_req_int(outpost_ctx *ctx, const cJSON *obj, const char *key, int64_t *out)
{
	int rc = outpost_get_int(ctx, obj, key, out, 0);

	return rc == 0 ? missing(ctx, key) : rc;
}

int outpost_req_obj(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out)
{
	int rc = outpost_get_obj(ctx, obj, key, out);

	return rc == 0 ? missing(ctx, key) : rc;
}

int outpost_req_arr(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out)
{
	int rc = outpost_get_arr(ctx, obj, key, out);

	return rc == 0 ? missing(ctx, key) : rc;
}

int outpost_parse_duration(const char *text, double *seconds)
{
	return op_parse_duration(text, seconds);
}

int outpost_parse_size(const char *text, uint64_t *bytes)
{
	return op_parse_size(text, bytes);
}

char *outpost_json_print(const cJSON *value, bool pretty)
{
	return op_json_print(value, pretty);
}

int outpost_set_result(outpost_ctx *ctx, const cJSON *result)
{
	char *text = op_json_print(result, false);
	int rc;

	if (text == NULL)
		return -1;
	rc = outpost_host->set_result(ctx, text, strlen(text));
	cJSON_free(text);
	return rc;
}

const char *outpost_secret(outpost_ctx *ctx, const char *name, const char *for_host, size_t *len)
{
	size_t n = 0;
	const char *v = outpost_host->secret(ctx, name, for_host, &n);

	if (v == NULL) {
		if (for_host)
			outpost_fail(ctx, OUTPOST_ERR_DENIED,
				     "secret \"%s\" is not available for %s (unknown, or refused by its allow list)",
				     name, for_host);
		else
			outpost_fail(ctx, OUTPOST_ERR_DENIED,
				     "secret \"%s\" is not available (unknown, or refused by its allow list)",
				     name);
		return NULL;
	}
	if (len)
		*len = n;
	return v;
}

int outpost_output(outpost_ctx *ctx, int stream, const void *data, size_t len)
{
	return outpost_host->output(ctx, stream, data, len);
}

int outpost_call(outpost_ctx *ctx, const char *type, const cJSON *params, double timeout,
		 cJSON **outcome)
{
	const char *out = NULL;
	size_t out_len = 0;
	char *text;
	int rc;

	*outcome = NULL;
	if (!OUTPOST_HOST_HAS(outpost_host, call)) {
		outpost_fail(ctx, OUTPOST_ERR_INTERNAL,
			     "this agent cannot run steps (it speaks plugin ABI %u.%u; steps need 1.1)",
			     outpost_host->abi_major, outpost_host->abi_minor);
		return -1;
	}
	text = params ? op_json_print(params, false) : NULL;
	rc = outpost_host->call(ctx, type, text ? text : "{}", text ? strlen(text) : 2, timeout, &out,
				&out_len);
	cJSON_free(text);
	if (out != NULL)
		*outcome = cJSON_ParseWithLength(out, out_len);
	if (rc != 0) {
		const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*outcome, "error"));

		outpost_fail(ctx, OUTPOST_ERR_FAILED, "step %s could not start: %s", type,
			     why ? why : "unknown reason");
		return -1;
	}
	return *outcome ? 0 : -1;
}

int outpost_record(outpost_ctx *ctx, const cJSON *record)
{
	char *text;
	int rc;

	if (!OUTPOST_HOST_HAS(outpost_host, record) || !cJSON_IsObject(record))
		return -1;
	text = op_json_print(record, false);
	if (text == NULL)
		return -1;
	rc = outpost_host->record(ctx, text, strlen(text));
	cJSON_free(text);
	return rc;
}
