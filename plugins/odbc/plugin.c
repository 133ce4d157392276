/* SPDX-License-Identifier: Apache-2.0 */
/* The odbc plugin: odbc.query, odbc.script and odbc.export through unixODBC, its descriptor,
 * params schemas and lifecycle callbacks. */
#include "odbc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef OUTPOST_ODBC_VERSION
#define OUTPOST_ODBC_VERSION "0.0.0"
#endif

/* ---- params schemas (Outpost's JSON Schema subset) --------------------------------------- */

#define DURATION(dflt, what)                                                                  \
	"{\"type\": [\"string\", \"number\"], \"default\": " dflt ", \"description\": \"" what \
	"\", \"examples\": [\"30s\", \"2m\", 5]}"

/* Where to connect and as whom: shared by every task type. */
#define CONNECTION_PROPERTIES                                                                 \
	"\"url\": {\"type\": \"string\", \"minLength\": 6, \"maxLength\": 4096,"              \
	"  \"pattern\": \"^jdbc:[A-Za-z0-9]+:\","                                            \
	"  \"description\": \"JDBC-style URL mapped to a driver by plugins.config.odbc.drivers\"," \
	"  \"examples\": [\"jdbc:postgresql://db.example.com:5432/app\","                    \
	"                 \"jdbc:sqlite:/var/lib/app/app.db\"]},"                              \
	"\"connection_string\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 8192,"  \
	"  \"description\": \"an ODBC connection string, without a password\"},"              \
	"\"dsn\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256,"                \
	"  \"pattern\": \"^[^;{}=]+$\", \"description\": \"a data source name from odbc.ini\"}," \
	"\"user\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256},"               \
	"\"user_secret\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 128,"         \
	"  \"description\": \"name of a secret holding the user name\"},"                      \
	"\"password_secret\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 128,"     \
	"  \"description\": \"name of a secret holding the password\"},"                       \
	"\"login_timeout\": " DURATION("\"15s\"", "how long connecting may take") ","         \
	"\"query_timeout\": " DURATION("0", "how long the statement may run; 0: no limit") ","

#define BIND_PARAMS                                                                           \
	"\"params\": {\"type\": \"array\", \"maxItems\": 10000,"                              \
	"  \"description\": \"values bound to the ? markers, in order\","                     \
	"  \"items\": {\"type\": [\"string\", \"number\", \"boolean\", \"null\", \"object\"],"  \
	"    \"additionalProperties\": false, \"required\": [\"type\"],"                       \
	"    \"properties\": {"                                                                \
	"      \"type\": {\"type\": \"string\", \"enum\": [\"string\", \"integer\", \"number\","   \
	"        \"decimal\", \"boolean\", \"date\", \"time\", \"timestamp\", \"binary\"]},"    \
	"      \"value\": {}}}},"

#define SQL_PROPERTY                                                                          \
	"\"sql\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 1048576,"             \
	"  \"description\": \"one SQL statement; ? marks a parameter\"},"

static const char query_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"sql\"],"
	" \"properties\": {" CONNECTION_PROPERTIES SQL_PROPERTY BIND_PARAMS
	"  \"max_rows\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100000,"
	"    \"default\": 1000, \"description\": \"rows kept in the result\"},"
	"  \"rows_as\": {\"type\": \"string\", \"enum\": [\"objects\", \"arrays\"],"
	"    \"default\": \"objects\"}"
	"}}";

static const char script_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false,"
	" \"properties\": {" CONNECTION_PROPERTIES
	"  \"statements\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 10000,"
	"    \"items\": {\"type\": \"string\", \"minLength\": 1}},"
	"  \"script\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 16777216,"
	"    \"description\": \"statements separated by semicolons\"},"
	"  \"transaction\": {\"type\": \"boolean\", \"default\": true,"
	"    \"description\": \"all statements in one transaction, rolled back on error\"}"
	"}}";

static const char export_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"sql\"],"
	" \"properties\": {" CONNECTION_PROPERTIES SQL_PROPERTY BIND_PARAMS
	"  \"format\": {\"type\": \"string\", \"enum\": [\"csv\", \"jsonl\"], \"default\": \"csv\"},"
	"  \"artifact\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z0-9_][A-Za-z0-9._-]*$\","
	"    \"maxLength\": 200, \"description\": \"file name in the workspace's artifacts\"},"
	"  \"header\": {\"type\": \"boolean\", \"default\": true},"
	"  \"delimiter\": {\"type\": \"string\", \"enum\": [\",\", \";\", \"|\", \"\\t\"],"
	"    \"default\": \",\"},"
	"  \"null_as\": {\"type\": \"string\", \"maxLength\": 64, \"default\": \"\"},"
	"  \"max_rows\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 0,"
	"    \"description\": \"stop after this many rows; 0: all\"},"
	"  \"fetch_rows\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100000,"
	"    \"description\": \"rows per fetch (default: plugins.config.odbc.fetch_rows)\"}"
	"}}";

/* ---- lifecycle --------------------------------------------------------------------------- */

static int odbc_init(outpost_ctx *ctx, const char *config, size_t len, void **state)
{
	struct od_state *st;
	cJSON *root = cJSON_ParseWithLength(config, len);
	char err[512];
	int rc = OUTPOST_ERR_INTERNAL;

	if (root == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "init: the settings are not JSON");
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		goto out;
	st->cancel_pipe[0] = st->cancel_pipe[1] = -1;
	if (od_settings_load(&st->settings, cJSON_GetObjectItemCaseSensitive(root, "config"), err,
			     sizeof(err)) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s", err);
		free(st);
		goto out;
	}
	if (pipe2(st->cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		od_settings_release(&st->settings);
		free(st);
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "init: cannot create a pipe");
		goto out;
	}
	*state = st;
	rc = OUTPOST_OK;
out:
	cJSON_Delete(root);
	return rc;
}

static void odbc_shutdown(void *state)
{
	struct od_state *st = state;

	if (st == NULL)
		return;
	od_settings_release(&st->settings);
	for (int i = 0; i < 2; i++)
		if (st->cancel_pipe[i] >= 0)
			close(st->cancel_pipe[i]);
	free(st);
}

/* May run in a signal handler or on another thread: an atomic store and a write(2) only. */
static void odbc_cancel(void *state)
{
	struct od_state *st = state;

	if (st == NULL)
		return;
	atomic_store(&st->cancelled, 1);
	if (st->cancel_pipe[1] >= 0)
		(void)!write(st->cancel_pipe[1], "c", 1);
}

/* ---- validate ---------------------------------------------------------------------------- */

static int check_duration(outpost_ctx *ctx, const cJSON *p, const char *key)
{
	double secs = 0;

	if (outpost_get_duration(ctx, p, key, &secs, 0) < 0)
		return -1;
	if (secs < 0 || secs > 86400) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.%s: must be between 0 and 24h", key);
		return -1;
	}
	return 0;
}

static int odbc_validate(outpost_ctx *ctx, void *state, const char *type, const char *params,
			 size_t len)
{
	struct od_state *st = state;
	struct od_target t;
	cJSON *p = outpost_params_parse(ctx, params, len);
	char err[1024];
	int rc = OUTPOST_ERR_PARAMS;

	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	if (od_target_from_params(&t, &st->settings, p, err, sizeof(err)) < 0) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s", err);
		goto out;
	}
	od_target_release(&t);
	if (cJSON_GetObjectItemCaseSensitive(p, "user") &&
	    cJSON_GetObjectItemCaseSensitive(p, "user_secret")) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS,
			     "params: give user or user_secret, not both");
		goto out;
	}
	if (check_duration(ctx, p, "login_timeout") < 0 ||
	    check_duration(ctx, p, "query_timeout") < 0)
		goto out;
	if (od_params_prepare(cJSON_GetObjectItemCaseSensitive(p, "params"), NULL, err,
			      sizeof(err)) < 0) {
		outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s", err);
		goto out;
	}
	if (strcmp(type, "odbc.script") == 0) {
		bool has_list = cJSON_GetObjectItemCaseSensitive(p, "statements") != NULL;
		bool has_script = cJSON_GetObjectItemCaseSensitive(p, "script") != NULL;

		if (has_list == has_script) {
			outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				     has_list ? "params: give statements or script, not both"
					      : "params: give the SQL to run as statements (a list) "
						"or script (one text, split at semicolons)");
			goto out;
		}
		if (has_script) {
			const cJSON *sc = cJSON_GetObjectItemCaseSensitive(p, "script");
			char **stmts = NULL;
			long n = od_split_script(cJSON_IsString(sc) ? sc->valuestring : "", &stmts);

			od_free_statements(stmts, n < 0 ? 0 : n);
			if (n < 0) {
				rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
				goto out;
			}
			if (n == 0) {
				outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					     "params.script: no statements (only blanks and comments)");
				goto out;
			}
		}
	}
	rc = OUTPOST_OK;
out:
	cJSON_Delete(p);
	return rc;
}

/* ---- execute ----------------------------------------------------------------------------- */

static int odbc_execute(outpost_ctx *ctx, void *state, const char *type, const char *params,
			size_t len)
{
	struct od_state *st = state;
	struct od_session s;
	cJSON *p = outpost_params_parse(ctx, params, len);
	int rc;

	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	rc = od_session_open(&s, ctx, st, p);
	if (rc == OUTPOST_OK) {
		if (strcmp(type, "odbc.query") == 0)
			rc = od_task_query(&s, p);
		else if (strcmp(type, "odbc.script") == 0)
			rc = od_task_script(&s, p);
		else if (strcmp(type, "odbc.export") == 0)
			rc = od_task_export(&s, p);
		else
			rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "odbc: unknown task type %s", type);
	}
	od_session_close(&s);
	cJSON_Delete(p);
	return rc;
}

static const struct outpost_task_type types[] = {
	OUTPOST_TASK_TYPE("odbc.query", "Runs one SQL statement and returns its rows",
			  query_schema),
	OUTPOST_TASK_TYPE("odbc.script",
			  "Runs several statements in one transaction (or with autocommit)",
			  script_schema),
	OUTPOST_TASK_TYPE("odbc.export",
			  "Streams a result set to a CSV or JSON Lines artifact", export_schema),
};

OUTPOST_PLUGIN_DEFINE(.name = "odbc", .version = OUTPOST_ODBC_VERSION, .vendor = "Outpost",
		      .license = "Apache-2.0",
		      .description = "SQL through unixODBC: queries, scripts and exports",
		      .types = types, .n_types = OUTPOST_COUNT(types), .init = odbc_init,
		      .validate = odbc_validate, .execute = odbc_execute, .cancel = odbc_cancel,
		      .shutdown = odbc_shutdown)
