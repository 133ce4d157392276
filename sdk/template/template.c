/* SPDX-License-Identifier: Apache-2.0 */
/* A template Outpost plugin: task type template.echo returns a greeting built from its params. */
#include <outpost/sdk.h>

#include <string.h>

/* Params of template.echo, in Outpost's JSON Schema subset. The host checks them before
 * validate() is called, so validate() only adds checks a schema cannot express. */
static const char echo_schema[] = "{"
	"\"type\": \"object\","
	"\"additionalProperties\": false,"
	"\"required\": [\"name\"],"
	"\"properties\": {"
	"  \"name\": {\"type\": \"string\", \"minLength\": 1, \"description\": \"who to greet\"},"
	"  \"times\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10, \"default\": 1}"
	"}}";

static int echo_validate(outpost_ctx *ctx, void *state, const char *type, const char *params,
			 size_t len)
{
	cJSON *p = outpost_params_parse(ctx, params, len);
	const char *name = NULL;
	int rc = OUTPOST_OK;

	(void)state;
	(void)type;
	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	if (outpost_req_str(ctx, p, "name", &name) < 0)
		rc = OUTPOST_ERR_PARAMS;
	else if (strchr(name, '\n') != NULL)
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.name: must be one line");
	cJSON_Delete(p);
	return rc;
}

static int echo_execute(outpost_ctx *ctx, void *state, const char *type, const char *params,
			size_t len)
{
	cJSON *p = outpost_params_parse(ctx, params, len);
	cJSON *result = NULL;
	const char *name = NULL;
	int64_t times = 1;
	int rc = OUTPOST_ERR_INTERNAL;

	(void)state;
	(void)type;
	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	if (outpost_req_str(ctx, p, "name", &name) < 0 ||
	    outpost_get_int(ctx, p, "times", &times, 1) < 0) {
		rc = OUTPOST_ERR_PARAMS;
		goto out;
	}
	for (int64_t i = 0; i < times; i++) {
		if (outpost_host->is_cancelled(ctx)) {
			rc = outpost_fail(ctx, OUTPOST_ERR_CANCELLED, "cancelled");
			goto out;
		}
		outpost_info(ctx, "hello, %s", name);
	}
	result = cJSON_CreateObject();
	if (result == NULL || cJSON_AddStringToObject(result, "greeting", name) == NULL ||
	    cJSON_AddNumberToObject(result, "times", (double)times) == NULL ||
	    outpost_set_result(ctx, result) < 0)
		goto out;
	rc = OUTPOST_OK;
out:
	cJSON_Delete(result);
	cJSON_Delete(p);
	return rc;
}

static const struct outpost_task_type types[] = {
	OUTPOST_TASK_TYPE("template.echo", "Greets NAME, TIMES times", echo_schema),
};

OUTPOST_PLUGIN_DEFINE(.name = "template", .version = "1.0.0", .vendor = "Example Corp",
		      .license = "Apache-2.0", .description = "A template to start a plugin from",
		      .types = types, .n_types = OUTPOST_COUNT(types),
		      .validate = echo_validate, .execute = echo_execute)
