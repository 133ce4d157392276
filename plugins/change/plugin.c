/* SPDX-License-Identifier: Apache-2.0 */
/* The change plugin: descriptor, settings and the callbacks the host calls. */
#include "change.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef OUTPOST_CHANGE_VERSION
#define OUTPOST_CHANGE_VERSION "0.0.0"
#endif
#ifndef OUTPOST_CHANGE_BUNDLED_DIR
#define OUTPOST_CHANGE_BUNDLED_DIR "/usr/share/outpost/change-types"
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char apply_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false,"
	" \"required\": [\"cr_id\", \"change_type\", \"params\"],"
	" \"properties\": {"
	"  \"cr_id\": {\"type\": \"string\", \"pattern\": \"^cr_[A-Za-z0-9_-]{1,64}$\","
	"    \"description\": \"the change request\"},"
	"  \"change_type\": {\"type\": \"string\", \"pattern\": \"^[a-z][a-z0-9-]{0,62}$\"},"
	"  \"params\": {\"type\": \"object\", \"description\": \"the approved parameters\"},"
	"  \"change_request\": {\"type\": \"object\", \"description\": \"the signed approval "
	"(payload, signature, action, steps), added by the agent\"}"
	"}}";

static const char types_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {}}";

bool ch_cancelled(outpost_ctx *ctx, struct ch_state *st)
{
	return st->cancelled || outpost_host->is_cancelled(ctx);
}

static void state_free(struct ch_state *st)
{
	if (st == NULL)
		return;
	free(st->types_dir);
	free(st->bundled_dir);
	free(st->approval_key);
	free(st->agent_id);
	free(st->hostname);
	free(st->data_dir);
	free(st->path);
	free(st);
}

/* Copies string setting ITEM into *OUT; ABSOLUTE asks for an absolute path. */
static int str_setting(outpost_ctx *ctx, const cJSON *item, bool absolute, char **out)
{
	if (!cJSON_IsString(item) || item->valuestring[0] == '\0' ||
	    (absolute && item->valuestring[0] != '/'))
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "plugins.config.change.%s: expected %s", item->string,
				    absolute ? "an absolute path" : "a non-empty string");
	free(*out);
	*out = strdup(item->valuestring);
	return *out ? OUTPOST_OK : outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
}

/* Reads plugins.config.change; unknown keys are errors, so a typo never goes unnoticed. */
static int read_settings(outpost_ctx *ctx, struct ch_state *st, const cJSON *cfg)
{
	const cJSON *item;
	bool bundled = true;
	int rc = OUTPOST_OK;

	cJSON_ArrayForEach(item, cfg)
	{
		const char *k = item->string;

		if (strcmp(k, "types_dir") == 0)
			rc = str_setting(ctx, item, true, &st->types_dir);
		else if (strcmp(k, "bundled_dir") == 0)
			rc = str_setting(ctx, item, true, &st->bundled_dir);
		else if (strcmp(k, "approval_key") == 0)
			rc = str_setting(ctx, item, true, &st->approval_key);
		else if (strcmp(k, "data_dir") == 0)
			rc = str_setting(ctx, item, true, &st->data_dir);
		else if (strcmp(k, "path") == 0)
			rc = str_setting(ctx, item, false, &st->path);
		else if (strcmp(k, "bundled") == 0) {
			if (!cJSON_IsBool(item))
				return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
						    "plugins.config.change.bundled: expected true or "
						    "false");
			bundled = cJSON_IsTrue(item);
		} else if (strcmp(k, "kill_grace") == 0) {
			if (outpost_get_duration(ctx, cfg, "kill_grace", &st->kill_grace, 5) < 0)
				return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
						    "plugins.config.change.kill_grace: expected a "
						    "duration such as \"5s\"");
		} else if (strcmp(k, "env_allow") != 0) {
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					    "plugins.config.change: unknown setting \"%s\" (known: "
					    "types_dir, bundled, bundled_dir, approval_key, data_dir, "
					    "path, kill_grace, env_allow)",
					    k);
		}
		if (rc != OUTPOST_OK)
			return rc;
	}
	if (!bundled) {
		free(st->bundled_dir);
		st->bundled_dir = NULL;
	} else if (st->bundled_dir == NULL &&
		   (st->bundled_dir = strdup(OUTPOST_CHANGE_BUNDLED_DIR)) == NULL) {
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	}
	return OUTPOST_OK;
}

/* Takes what the agent says about itself: id, hostname, approval key, change types dir. */
static int read_agent(outpost_ctx *ctx, struct ch_state *st, const cJSON *agent)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(agent, "agent_id"));
	const char *host = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(agent, "hostname"));
	const char *key =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(agent, "approval_key"));
	const char *dir =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(agent, "change_types_dir"));

	if ((id && (st->agent_id = strdup(id)) == NULL) ||
	    (host && (st->hostname = strdup(host)) == NULL) ||
	    (key && st->approval_key == NULL && (st->approval_key = strdup(key)) == NULL) ||
	    (dir && st->types_dir == NULL && (st->types_dir = strdup(dir)) == NULL))
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	/* Backups and other per change request files live beside the agent's state. */
	if (key && st->data_dir == NULL) {
		const char *slash = strrchr(key, '/');
		struct op_buf b = OP_BUF_INIT;

		if (slash && op_buf_printf(&b, "%.*s/changes", (int)(slash - key), key) == 0)
			st->data_dir = op_buf_detach(&b);
		op_buf_release(&b);
	}
	return OUTPOST_OK;
}

/* Settings and what the agent says about itself; definitions are read per task, so a
 * spare worker never runs an edited file's old version. */
static int change_init(outpost_ctx *ctx, const char *config, size_t len, void **state)
{
	struct ch_state *st = calloc(1, sizeof(*st));
	cJSON *root = NULL;
	const cJSON *cfg;
	int rc;

	if (st == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	st->kill_grace = 5;
	root = cJSON_ParseWithLength(config, len);
	cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
	if (cfg != NULL && !cJSON_IsObject(cfg) && !cJSON_IsNull(cfg)) {
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				  "plugins.config.change: expected a mapping of settings");
		goto fail;
	}
	rc = read_settings(ctx, st, cJSON_IsObject(cfg) ? cfg : NULL);
	if (rc == OUTPOST_OK)
		rc = read_agent(ctx, st, cJSON_GetObjectItemCaseSensitive(root, "agent"));
	if (rc == OUTPOST_OK && st->path == NULL && (st->path = strdup(DEFAULT_PATH)) == NULL)
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	if (rc != OUTPOST_OK)
		goto fail;
	/* A command that closes its stdin early must not kill the worker. */
	signal(SIGPIPE, SIG_IGN);
	cJSON_Delete(root);
	*state = st;
	return OUTPOST_OK;
fail:
	cJSON_Delete(root);
	state_free(st);
	return rc;
}

/* Both task types; the host checked PARAMS against their schemas already. */
static int change_execute(outpost_ctx *ctx, void *state, const char *type, const char *params,
			  size_t len)
{
	cJSON *p = outpost_params_parse(ctx, params, len);
	int rc;

	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	if (strcmp(type, "change.apply") == 0)
		rc = ch_apply(ctx, state, p);
	else if (strcmp(type, "change.types") == 0)
		rc = ch_list_types(ctx, state);
	else
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "unknown task type %s", type);
	cJSON_Delete(p);
	return rc;
}

/* May run in a signal handler: a flag, and SIGTERM to the running command's group. */
static void change_cancel(void *state)
{
	struct ch_state *st = state;
	pid_t pgid;

	if (st == NULL)
		return;
	st->cancelled = 1;
	pgid = (pid_t)st->child_pgid;
	if (pgid > 0)
		kill(-pgid, SIGTERM);
}

static void change_shutdown(void *state)
{
	state_free(state);
}

static const struct outpost_task_type types[] = {
	OUTPOST_TASK_TYPE("change.apply",
			  "Runs an approved change request: precheck, apply, verify, rollback",
			  apply_schema),
	OUTPOST_TASK_TYPE("change.types",
			  "Lists the change types defined on this agent (name, params schema, "
			  "steps, digest)",
			  types_schema),
};

OUTPOST_PLUGIN_DEFINE(.name = "change", .version = OUTPOST_CHANGE_VERSION, .vendor = "Outpost",
		      .license = "Apache-2.0",
		      .description = "Approved changes on this host, step by step, from change "
				     "types defined in YAML",
		      .types = types, .n_types = OUTPOST_COUNT(types), .init = change_init,
		      .execute = change_execute, .cancel = change_cancel,
		      .shutdown = change_shutdown)
