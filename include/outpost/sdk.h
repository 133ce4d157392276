/* SPDX-License-Identifier: Apache-2.0 */
/* The Outpost SDK: helpers that make a plugin short to write on top of the ABI in plugin.h. */
#ifndef OUTPOST_SDK_H
#define OUTPOST_SDK_H

/*
 * Link the helper library (CMake: outpost_add_plugin() does it; pkg-config: outpost-sdk).
 * It is static, position independent and built with hidden visibility, so every plugin carries
 * its own private copy and exports nothing but its entry point.
 *
 * Params arrive as JSON text; the helpers parse them with cJSON and give typed access that
 * records a precise error ("params.timeout: expected a duration such as \"30s\", got true")
 * on the context, so a plugin can validate with a few lines and return OUTPOST_ERR_PARAMS.
 */

#include <outpost/plugin.h>

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The host API table, set by the entry point that OUTPOST_PLUGIN_DEFINE generates. */
extern const struct outpost_host_api *outpost_host;

/* Used by OUTPOST_PLUGIN_DEFINE; not for direct use. */
int outpost_sdk_negotiate(struct outpost_negotiate *negotiate, const struct outpost_plugin *desc);

/*
 * Defines the plugin's descriptor and its exported entry point. The arguments are designated
 * initialisers for struct outpost_plugin, without size and ABI version:
 *
 *   static const struct outpost_task_type types[] = {
 *       OUTPOST_TASK_TYPE("hello.greet", "Greets someone", "{\"type\":\"object\"}"),
 *   };
 *   OUTPOST_PLUGIN_DEFINE(.name = "hello", .version = "1.0.0", .types = types,
 *                         .n_types = OUTPOST_COUNT(types), .execute = greet);
 */
#define OUTPOST_PLUGIN_DEFINE(...)                                                            \
	static const struct outpost_plugin outpost_sdk_descriptor_ = {                        \
		.size = sizeof(struct outpost_plugin),                                        \
		.abi_major = OUTPOST_ABI_MAJOR,                                               \
		.abi_minor = OUTPOST_ABI_MINOR,                                               \
		__VA_ARGS__};                                                                 \
	OUTPOST_EXPORT int OUTPOST_PLUGIN_ENTRY(struct outpost_negotiate *negotiate);        \
	OUTPOST_EXPORT int OUTPOST_PLUGIN_ENTRY(struct outpost_negotiate *negotiate)         \
	{                                                                                     \
		return outpost_sdk_negotiate(negotiate, &outpost_sdk_descriptor_);            \
	}

/* One entry of a task type table. */
#define OUTPOST_TASK_TYPE(name_, description_, schema_)                                       \
	{                                                                                     \
		sizeof(struct outpost_task_type), (name_), (description_), (schema_)          \
	}

#define OUTPOST_COUNT(array) ((uint32_t)(sizeof(array) / sizeof((array)[0])))

/* ---- logging and errors -------------------------------------------------------------- */

void outpost_logf(outpost_ctx *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define outpost_error(ctx, ...) outpost_logf((ctx), OUTPOST_LOG_ERROR, __VA_ARGS__)
#define outpost_warn(ctx, ...) outpost_logf((ctx), OUTPOST_LOG_WARN, __VA_ARGS__)
#define outpost_info(ctx, ...) outpost_logf((ctx), OUTPOST_LOG_INFO, __VA_ARGS__)
#define outpost_debug(ctx, ...) outpost_logf((ctx), OUTPOST_LOG_DEBUG, __VA_ARGS__)

/* Sets the call's error message and returns RC, for `return outpost_fail(ctx, ...);`. */
int outpost_fail(outpost_ctx *ctx, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- params -------------------------------------------------------------------------- */

/* Parses PARAMS; on failure sets the error and returns NULL. Free with cJSON_Delete(). */
cJSON *outpost_params_parse(outpost_ctx *ctx, const char *params, size_t len);

/*
 * Typed getters. KEY names a member of OBJ, or a dotted path into nested objects
 * ("tls.ca_file"); an error names it as "params.KEY". Each returns:
 *   1  the member is present and of the right type: *out is set;
 *   0  it is absent (or null): *out is set to the default given;
 *  -1  it is present with the wrong type: the error is set on ctx, *out is untouched.
 * The _req variants treat an absent member as an error and return -1.
 */
int outpost_get_str(outpost_ctx *ctx, const cJSON *obj, const char *key, const char **out,
		    const char *dflt);
int outpost_get_int(outpost_ctx *ctx, const cJSON *obj, const char *key, int64_t *out,
		    int64_t dflt);
int outpost_get_num(outpost_ctx *ctx, const cJSON *obj, const char *key, double *out,
		    double dflt);
int outpost_get_bool(outpost_ctx *ctx, const cJSON *obj, const char *key, bool *out, bool dflt);
/* A duration: a number of seconds or a string such as "250ms", "30s", "5m", "1h30m". */
int outpost_get_duration(outpost_ctx *ctx, const cJSON *obj, const char *key, double *seconds,
			 double dflt);
/* A size: a number of bytes or a string such as "512", "64KiB", "10MB", "1GiB". */
int outpost_get_size(outpost_ctx *ctx, const cJSON *obj, const char *key, uint64_t *bytes,
		     uint64_t dflt);
int outpost_get_obj(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out);
int outpost_get_arr(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out);
int outpost_req_str(outpost_ctx *ctx, const cJSON *obj, const char *key, const char **out);
int outpost_req_int(outpost_ctx *ctx, const cJSON *obj, const char *key, int64_t *out);
int outpost_req_obj(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out);
int outpost_req_arr(outpost_ctx *ctx, const cJSON *obj, const char *key, const cJSON **out);

/* Parsers behind the getters, for values found some other way. Return 0 or -1. */
int outpost_parse_duration(const char *text, double *seconds);
int outpost_parse_size(const char *text, uint64_t *bytes);

/* ---- results, secrets, artifacts ------------------------------------------------------- */

/* Serialises RESULT and hands it to the host. Returns 0 or -1 (out of memory). Numbers keep
 * every digit, as with outpost_json_print(). */
int outpost_set_result(outpost_ctx *ctx, const cJSON *result);

/* VALUE as JSON text, compact or PRETTY, like cJSON_PrintUnformatted / cJSON_Print except
 * that every number reads back as the same double (cJSON alone writes 0.30000000000000004
 * as 0.3). Free with cJSON_free(); NULL when out of memory. Not for a tree another thread
 * reads at the same time. */
char *outpost_json_print(const cJSON *value, bool pretty);

/* The secret NAME for use towards FOR_HOST (may be NULL). On refusal sets the error and
 * returns NULL; the caller returns OUTPOST_ERR_DENIED. The value stays the host's. */
const char *outpost_secret(outpost_ctx *ctx, const char *name, const char *for_host,
			   size_t *len);

/* Runs a step: task TYPE of another plugin with PARAMS, through the host (ABI 1.1, see
 * outpost_host_api.call). *OUTCOME (free with cJSON_Delete) is the step's outcome object.
 * Returns 0 when the step ran (look at its "status"), or -1 with the error set on ctx when it
 * could not start, or when the agent is older than ABI 1.1. */
int outpost_call(outpost_ctx *ctx, const char *type, const cJSON *params, double timeout,
		 cJSON **outcome);

/* Hands RECORD (a JSON object) to the host as a record of the task's progress (ABI 1.1,
 * outpost_host_api.record). Returns 0, or -1 (not an object, or an agent older than 1.1). */
int outpost_record(outpost_ctx *ctx, const cJSON *record);

/* Writes LEN bytes to the task output stream, retrying as needed. */
int outpost_output(outpost_ctx *ctx, int stream, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* OUTPOST_SDK_H */
