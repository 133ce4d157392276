/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent plugins list` and `outpost-agent plugin run`: plugins without a control plane. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "discovery.h"
#include "fsutil.h"
#include "heap.h"
#include "identity.h"
#include "jsonprint.h"
#include "log.h"
#include "secrets.h"
#include "workerproc.h"
#include "supervisor.h"
#include "units.h"

struct plugin_env {
	struct ag_config cfg;
	char worker[PATH_MAX];
	char agent_id[96], hostname[256], approval_key[PATH_MAX];
	struct sv_options sv;
	struct dc_result found;
	bool have_cfg, have_found;
};

/* Loads the config (or defaults), applies --plugins-dir, locates the worker, discovers. */
static int plugin_env_init(struct plugin_env *pe, const char *config, const char *plugins_dir,
			   bool use_cache, const char *only_stem, bool check_only)
{
	struct op_error err = {0};
	struct dc_options dopts;
	char cache[PATH_MAX];
	op_rc rc;

	memset(pe, 0, sizeof(*pe));
	rc = config ? ag_config_load(config, &pe->cfg, &err) : ag_config_defaults(&pe->cfg, &err);
	if (rc == OP_OK && config == NULL)
		rc = ag_config_env(&pe->cfg, &err);
	if (rc != OP_OK) {
		cli_error("%s", err.msg);
		ag_config_release(&pe->cfg);
		return RUN_EXIT_BAD_TASK;
	}
	pe->have_cfg = true;
	op_log_set_level(pe->cfg.log_level);
	if (plugins_dir) {
		free(pe->cfg.plugins_dir);
		pe->cfg.plugins_dir = strdup(plugins_dir);
	}
	if (wk_locate(pe->cfg.worker_path, pe->worker, sizeof(pe->worker), &err) != OP_OK) {
		cli_error("%s", err.msg);
		return RUN_EXIT_PLUGIN;
	}
	pe->sv.worker_path = pe->worker;
	pe->sv.memory_limit = pe->cfg.memory_limit;
	pe->sv.spare_heap = pe->cfg.spare_heap;
	pe->sv.output_limit = pe->cfg.output_limit;
	pe->sv.grace = pe->cfg.worker_grace;
	pe->sv.start_timeout = pe->cfg.worker_start_timeout;
	pe->sv.log_level = pe->cfg.log_level;
	pe->sv.proxy = pe->cfg.https_proxy;
	pe->sv.no_proxy = pe->cfg.no_proxy;
	pe->sv.ca_file = pe->cfg.ca_file;
	pe->sv.change_types_dir = pe->cfg.change_types_dir;
	/* An enrolled agent's identity, when --config names one: as the agent would run it. */
	if (config != NULL) {
		cJSON *agent = NULL;

		if (id_load_agent(pe->cfg.state_dir, &agent, NULL) == OP_OK) {
			const char *host = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(agent, "hostname"));

			op_strlcpy(pe->agent_id, id_agent_id(agent), sizeof(pe->agent_id));
			op_strlcpy(pe->hostname, host ? host : "", sizeof(pe->hostname));
			pe->sv.agent_id = pe->agent_id;
			pe->sv.hostname = pe->hostname[0] ? pe->hostname : NULL;
			id_path(pe->cfg.state_dir, ID_APPROVAL, pe->approval_key,
				sizeof(pe->approval_key));
			if (access(pe->approval_key, R_OK) == 0)
				pe->sv.approval_key = pe->approval_key;
		}
		cJSON_Delete(agent);
	}
	pe->sv.secret = ag_secret_lookup;
	pe->sv.secret_ud = &pe->cfg;
	memset(&dopts, 0, sizeof(dopts));
	dopts.dir = pe->cfg.plugins_dir;
	dopts.cfg = &pe->cfg;
	dopts.sv = &pe->sv;
	dopts.only_stem = only_stem;
	dopts.check_only = check_only;
	if (use_cache && config != NULL) {
		struct stat st;

		ag_config_state_path(&pe->cfg, "plugin-cache.json", cache, sizeof(cache));
		if (stat(pe->cfg.state_dir, &st) == 0 && access(pe->cfg.state_dir, W_OK) == 0)
			dopts.cache_path = cache;
	}
	if (dc_discover(&dopts, &pe->found, &err) != OP_OK) {
		cli_error("%s", err.msg);
		return RUN_EXIT_PLUGIN;
	}
	pe->have_found = true;
	return RUN_EXIT_OK;
}

static void plugin_env_release(struct plugin_env *pe)
{
	if (pe->have_found)
		dc_result_release(&pe->found);
	if (pe->have_cfg)
		ag_config_release(&pe->cfg);
}

static void types_csv(const struct dc_plugin *p, char *out, size_t size)
{
	const cJSON *t;

	out[0] = '\0';
	cJSON_ArrayForEach(t, dc_plugin_types(p))
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");

		if (!cJSON_IsString(n))
			continue;
		if (out[0])
			strncat(out, ",", size - strlen(out) - 1);
		strncat(out, n->valuestring, size - strlen(out) - 1);
	}
}

static const char *desc_str(const struct dc_plugin *p, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(p->descriptor, key);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : "-";
}

/* ---- plugins list ------------------------------------------------------------------------ */

static void plugins_usage(FILE *f)
{
	fprintf(f, "usage: outpost-agent plugins list [--plugins-dir DIR] [--config FILE] [--json]\n"
		   "\n"
		   "Lists the plugins in the plugins directory: name, version, plugin ABI, the task\n"
		   "types each serves, and whether it loaded or why it was refused.\n"
		   "\n"
		   "  --plugins-dir DIR  the directory to scan (default: plugins.dir of the config)\n"
		   "  --config FILE      agent config for plugins.enabled and plugin settings\n"
		   "  --json             one JSON array instead of a table\n"
		   "\n"
		   "Exit status: 0 listed (whatever each plugin's state), 3 the directory is unusable.\n");
}

int cmd_plugins(int argc, char **argv)
{
	static const struct option opts[] = {
		{"plugins-dir", required_argument, NULL, 'd'},
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *config = NULL;
	struct plugin_env pe;
	bool json = false;
	int c, rc;

	if (argc < 2 || strcmp(argv[1], "list") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			plugins_usage(stdout);
			return 0;
		}
		plugins_usage(stderr);
		return 2;
	}
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			plugins_usage(stdout);
			return 0;
		default:
			plugins_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return 2;
	}
	rc = plugin_env_init(&pe, config, dir, true, NULL, false);
	if (rc != RUN_EXIT_OK) {
		plugin_env_release(&pe);
		return rc;
	}
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		char *text;

		for (size_t i = 0; arr && i < pe.found.n; i++) {
			const struct dc_plugin *p = &pe.found.v[i];
			cJSON *o = cJSON_CreateObject(), *types;
			const cJSON *t;

			if (o == NULL)
				break;
			cJSON_AddStringToObject(o, "file", p->file);
			cJSON_AddStringToObject(o, "name", dc_plugin_name(p));
			cJSON_AddStringToObject(o, "state", dc_state_name(p->state));
			if (p->descriptor) {
				cJSON_AddStringToObject(o, "version", desc_str(p, "version"));
				cJSON_AddStringToObject(o, "abi", desc_str(p, "abi"));
				cJSON_AddStringToObject(o, "vendor", desc_str(p, "vendor"));
				cJSON_AddStringToObject(o, "license", desc_str(p, "license"));
				cJSON_AddStringToObject(o, "description", desc_str(p, "description"));
			}
			types = cJSON_AddArrayToObject(o, "types");
			cJSON_ArrayForEach(t, dc_plugin_types(p))
			{
				const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");

				if (cJSON_IsString(n))
					cJSON_AddItemToArray(types, cJSON_CreateString(n->valuestring));
			}
			if (p->reason)
				cJSON_AddStringToObject(o, "reason", p->reason);
			if (p->stage)
				cJSON_AddStringToObject(o, "stage", p->stage);
			cJSON_AddItemToArray(arr, o);
		}
		text = op_json_print(arr, true);
		if (text)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(arr);
	} else {
		printf("%-12s %-10s %-5s %-36s %s\n", "NAME", "VERSION", "ABI", "TYPES", "STATUS");
		for (size_t i = 0; i < pe.found.n; i++) {
			const struct dc_plugin *p = &pe.found.v[i];
			char types[512];

			types_csv(p, types, sizeof(types));
			printf("%-12s %-10s %-5s %-36s %s%s%s\n", dc_plugin_name(p),
			       desc_str(p, "version"), desc_str(p, "abi"), types[0] ? types : "-",
			       dc_state_name(p->state), p->reason ? ": " : "",
			       p->reason ? p->reason : "");
		}
		if (pe.found.n == 0)
			printf("(no plugins in %s)\n", pe.cfg.plugins_dir);
	}
	plugin_env_release(&pe);
	return 0;
}

/* ---- plugin run -------------------------------------------------------------------------- */

struct run_state {
	bool done;
	int exit_code;
	char *envelope; /* the outcome as printed: compact for pipes, indented for a terminal */
	cJSON *records;
};

static void run_log(void *ud, int level, const char *text, size_t len)
{
	(void)ud;
	fprintf(stderr, "%s task: %.*s\n", op_log_level_name(level), (int)len, text);
}

static void run_output(void *ud, int stream, const char *data, size_t len)
{
	(void)ud;
	(void)stream;
	fwrite(data, 1, len, stderr);
}

static void run_record(void *ud, const cJSON *rec)
{
	struct run_state *rs = ud;
	char *text = op_json_print(rec, false);

	if (text)
		fprintf(stderr, "RECORD %s\n", text);
	cJSON_free(text);
	if (rs->records == NULL)
		rs->records = cJSON_CreateArray();
	if (rs->records)
		cJSON_AddItemToArray(rs->records, cJSON_Duplicate(rec, true));
}

static void run_done(void *ud, const struct sv_outcome *o)
{
	struct run_state *rs = ud;
	cJSON *env = cJSON_CreateObject();
	bool pretty = isatty(1);

	rs->done = true;
	switch (o->status) {
	case SV_SUCCEEDED:
		rs->exit_code = RUN_EXIT_OK;
		break;
	case SV_INVALID:
		rs->exit_code = RUN_EXIT_BAD_TASK;
		break;
	case SV_LOAD_FAILED:
		rs->exit_code = RUN_EXIT_PLUGIN;
		break;
	case SV_CRASHED:
	case SV_TIMED_OUT:
		rs->exit_code = RUN_EXIT_CRASHED;
		break;
	default:
		rs->exit_code = RUN_EXIT_FAILED;
		break;
	}
	if (env == NULL)
		return;
	cJSON_AddStringToObject(env, "status", sv_status_name(o->status));
	if (o->error)
		cJSON_AddStringToObject(env, "error", o->error);
	else
		cJSON_AddNullToObject(env, "error");
	/* For a pipe the result's text as the plugin wrote it (secrets redacted), which is what
	 * the agent sends the control plane. Indented for a terminal, from the tree: a
	 * reference, not a copy, printed before done() returns (a batch result can be
	 * megabytes). */
	if (o->result_text && !pretty)
		cJSON_AddRawToObject(env, "result", o->result_text);
	else if (o->result)
		cJSON_AddItemReferenceToObject(env, "result", (cJSON *)(uintptr_t)o->result);
	else
		cJSON_AddNullToObject(env, "result");
	cJSON_AddItemReferenceToObject(env, "artifacts", (cJSON *)(uintptr_t)o->artifacts);
	cJSON_AddNumberToObject(env, "duration", (double)(long long)(o->duration * 1000) / 1000);
	if (o->output_cut)
		cJSON_AddNumberToObject(env, "output_cut", (double)o->output_cut);
	if (rs->records) {
		cJSON_AddItemToObject(env, "records", rs->records);
		rs->records = NULL;
	}
	rs->envelope = op_json_print(env, pretty);
	cJSON_Delete(env);
	if (o->status != SV_SUCCEEDED)
		fprintf(stderr, "ERROR: task %s: %s\n", sv_status_name(o->status),
			o->error ? o->error : "(no message)");
}

/* Where a JSON parse stopped, as line:column. */
static void json_position(const char *text, const char *at, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (const char *p = text; at && p < at && *p; p++) {
		if (*p == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

struct task_file {
	char *type;
	char *params;
	double timeout;
};

static int read_task(const char *path, struct task_file *t)
{
	struct op_buf text = OP_BUF_INIT;
	struct op_error err = {0};
	const char *name = strcmp(path, "-") == 0 ? "task (stdin)" : path;
	cJSON *root = NULL;
	const cJSON *item;
	int rc = RUN_EXIT_BAD_TASK;

	memset(t, 0, sizeof(*t));
	if (strcmp(path, "-") == 0) {
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
			if (op_buf_append(&text, chunk, n) < 0)
				break;
		if (text.data == NULL)
			op_buf_reserve(&text, 0);
	} else if (op_read_file(path, 16 * 1024 * 1024, &text, &err) != OP_OK) {
		cli_error("cannot read the task file: %s", err.msg);
		goto out;
	}
	op_heap_prepare_json(text.len); /* a batch's file can be megabytes */
	root = cJSON_ParseWithLength(text.data, text.len);
	if (root == NULL) {
		int line, col;

		json_position(text.data, cJSON_GetErrorPtr(), &line, &col);
		cli_error("%s:%d:%d: not valid JSON", name, line, col);
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		cli_error("%s: expected a JSON object like {\"type\": \"http.request\", \"params\": {...}}",
			  name);
		goto out;
	}
	cJSON_ArrayForEach(item, root)
	{
		if (strcmp(item->string, "type") != 0 && strcmp(item->string, "params") != 0 &&
		    strcmp(item->string, "timeout") != 0) {
			cli_error("%s: unknown field \"%s\" (a task file has type, params, timeout)",
				  name, item->string);
			goto out;
		}
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (item == NULL) {
		cli_error("%s: missing \"type\" (the task type, e.g. \"http.request\")", name);
		goto out;
	}
	if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
		cli_error("%s: \"type\" must be a non-empty string", name);
		goto out;
	}
	t->type = strdup(item->valuestring);
	item = cJSON_GetObjectItemCaseSensitive(root, "params");
	if (item != NULL && !cJSON_IsObject(item)) {
		cli_error("%s: \"params\" must be an object", name);
		goto out;
	}
	t->params = item ? op_json_print(item, false) : strdup("{}");
	item = cJSON_GetObjectItemCaseSensitive(root, "timeout");
	if (item != NULL) {
		if (cJSON_IsNumber(item) && item->valuedouble > 0) {
			t->timeout = item->valuedouble;
		} else if (!cJSON_IsString(item) ||
			   op_parse_duration(item->valuestring, &t->timeout) < 0 || t->timeout <= 0) {
			cli_error("%s: \"timeout\" must be a duration such as \"30s\" or \"5m\"", name);
			goto out;
		}
	}
	if (t->type == NULL || t->params == NULL) {
		cli_error("out of memory");
		goto out;
	}
	rc = RUN_EXIT_OK;
out:
	cJSON_Delete(root);
	op_buf_release(&text);
	return rc;
}

static void plugin_run_usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent plugin run --task FILE.json [--plugins-dir DIR] [--secrets FILE]\n"
		"                                [--workspace DIR] [--config FILE]\n"
		"\n"
		"Runs one task through a worker exactly as the agent would, with no control plane.\n"
		"Logs and task output go to stderr; the outcome goes to stdout as JSON:\n"
		"  {\"status\", \"error\", \"result\", \"artifacts\", \"duration\"}\n"
		"\n"
		"  --task FILE.json   {\"type\": \"http.request\", \"params\": {...}, \"timeout\": \"30s\"};\n"
		"                     - reads it from stdin\n"
		"  --plugins-dir DIR  where the plugins are (default: plugins.dir of the config)\n"
		"  --secrets FILE     YAML with a secrets: section shaped like the agent config's\n"
		"  --workspace DIR    the task's workspace (default: a new temp dir, printed)\n"
		"  --config FILE      an agent config: plugins.enabled, plugin settings, limits\n"
		"\n"
		"Exit status: 0 succeeded, 1 the task failed or was cancelled, 2 bad task file or\n"
		"params, 3 plugin refused or failed to load, 4 plugin crashed or timed out.\n");
}

static int plugin_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"task", required_argument, NULL, 't'},
		{"plugins-dir", required_argument, NULL, 'd'},
		{"secrets", required_argument, NULL, 's'},
		{"workspace", required_argument, NULL, 'w'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *task_path = NULL, *dir = NULL, *secrets = NULL, *workspace = NULL,
		   *config = NULL;
	struct plugin_env pe;
	struct task_file task = {0};
	struct run_state rs = {0};
	struct sv *sv = NULL;
	struct sv_job *job = NULL;
	struct sv_plugin_spec *specs = NULL;
	size_t n_specs = 0;
	char wild[64][136];
	struct sv_events ev = {run_log, run_output, NULL, run_done, run_record};
	struct op_error err = {0};
	const struct dc_plugin *chosen = NULL, *direct = NULL;
	const char ***types = NULL;
	char ws[PATH_MAX];
	struct pollfd *fds = NULL;
	sigset_t mask;
	int sfd = -1, c, rc, interrupts = 0;
	bool env_ready = false;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			task_path = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 's':
			secrets = optarg;
			break;
		case 'w':
			workspace = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			plugin_run_usage(stdout);
			return 0;
		default:
			plugin_run_usage(stderr);
			return RUN_EXIT_BAD_TASK;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return RUN_EXIT_BAD_TASK;
	}
	if (task_path == NULL) {
		cli_error("plugin run needs --task FILE.json (see --help)");
		return RUN_EXIT_BAD_TASK;
	}
	/* One task and exit: the heap may as well stay, and the result's is prepared (heap.h).
	 * Without it (a sanitizer's allocator) the task runs all the same. */
	(void)op_heap_retain(0);
	rc = read_task(task_path, &task);
	if (rc != RUN_EXIT_OK)
		goto out;
	/* By convention plugin NAME serves NAME.verb from NAME.so: when that file is there and
	 * safe, the task's worker is the only one to open it (its load errors are the task's),
	 * and the other safe plugins serve "NAME.*" for steps (ABI 1.1 calls). Otherwise scan the
	 * directory to say what serves what. */
	{
		size_t dot = strcspn(task.type, ".");

		rc = plugin_env_init(&pe, config, dir, false, NULL, true);
		env_ready = true;
		if (rc != RUN_EXIT_OK)
			goto out;
		for (size_t i = 0; i < pe.found.n; i++)
			if (pe.found.v[i].state == DC_LOADED && strlen(pe.found.v[i].stem) == dot &&
			    strncmp(pe.found.v[i].stem, task.type, dot) == 0)
				direct = &pe.found.v[i];
		if (direct == NULL) {
			plugin_env_release(&pe);
			env_ready = false;
			rc = plugin_env_init(&pe, config, dir, false, NULL, false);
			env_ready = true;
			if (rc != RUN_EXIT_OK)
				goto out;
		}
	}
	if (secrets && ag_config_load_secrets(secrets, &pe.cfg, &err) != OP_OK) {
		cli_error("%s", err.msg);
		rc = RUN_EXIT_BAD_TASK;
		goto out;
	}
	ag_secrets_redact_all(&pe.cfg);
	/* The plugin serving the type; or why none does. */
	chosen = direct;
	for (size_t i = 0; direct == NULL && i < pe.found.n && chosen == NULL; i++) {
		const struct dc_plugin *p = &pe.found.v[i];
		const cJSON *t;

		cJSON_ArrayForEach(t, dc_plugin_types(p))
		{
			const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");

			if (p->state == DC_LOADED && cJSON_IsString(n) &&
			    strcmp(n->valuestring, task.type) == 0)
				chosen = p;
		}
	}
	if (chosen == NULL) {
		size_t dot = strcspn(task.type, ".");

		for (size_t i = 0; i < pe.found.n; i++) {
			const struct dc_plugin *p = &pe.found.v[i];

			if (p->state != DC_LOADED && strlen(p->stem) == dot &&
			    strncmp(p->stem, task.type, dot) == 0) {
				char msg[1536];
				cJSON *env = cJSON_CreateObject();

				snprintf(msg, sizeof(msg), "plugin %s cannot run %s: %s: %s", p->stem,
					 task.type, dc_state_name(p->state), p->reason ? p->reason : "");
				cli_error("%s", msg);
				/* The outcome on stdout, as for any task that ran. */
				if (env != NULL) {
					char *text;

					cJSON_AddStringToObject(env, "status", "load_failed");
					cJSON_AddStringToObject(env, "error", msg);
					cJSON_AddNullToObject(env, "result");
					cJSON_AddArrayToObject(env, "artifacts");
					cJSON_AddNumberToObject(env, "duration", 0);
					text = isatty(1) ? op_json_print(env, true)
							 : op_json_print(env, false);
					if (text)
						printf("%s\n", text);
					cJSON_free(text);
					cJSON_Delete(env);
				}
				rc = RUN_EXIT_PLUGIN;
				goto out;
			}
		}
		{
			char avail[1024] = "";

			for (size_t i = 0; i < pe.found.n; i++) {
				char tl[512];

				if (pe.found.v[i].state != DC_LOADED)
					continue;
				types_csv(&pe.found.v[i], tl, sizeof(tl));
				if (avail[0])
					strncat(avail, "; ", sizeof(avail) - strlen(avail) - 1);
				strncat(avail, tl, sizeof(avail) - strlen(avail) - 1);
			}
			cli_error("unknown task type %s: no enabled plugin in %s serves it (available: %s)",
				  task.type, pe.cfg.plugins_dir, avail[0] ? avail : "none");
		}
		rc = RUN_EXIT_BAD_TASK;
		goto out;
	}
	/* Workspace. */
	if (workspace) {
		if (op_mkdir_p(workspace, 0750, &err) != OP_OK ||
		    realpath(workspace, ws) == NULL) {
			cli_error("workspace %s: %s", workspace, err.msg[0] ? err.msg : strerror(errno));
			rc = RUN_EXIT_BAD_TASK;
			goto out;
		}
	} else {
		const char *tmp = getenv("TMPDIR");

		snprintf(ws, sizeof(ws), "%s/outpost-task.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(ws) == NULL) {
			cli_error("cannot create a workspace in %s: %s", tmp ? tmp : "/tmp",
				  strerror(errno));
			rc = RUN_EXIT_BAD_TASK;
			goto out;
		}
		fprintf(stderr, "workspace: %s\n", ws);
	}
	/* No spare: exactly the agent's path for a task without a spare worker. */
	specs = calloc(pe.found.n, sizeof(*specs));
	types = calloc(pe.found.n, sizeof(*types));
	if (specs == NULL || types == NULL) {
		rc = RUN_EXIT_PLUGIN;
		goto out;
	}
	for (size_t i = 0; i < pe.found.n; i++) {
		const struct dc_plugin *p = &pe.found.v[i];
		const cJSON *tl = dc_plugin_types(p), *t;
		size_t k = 0;

		if (p->state != DC_LOADED)
			continue;
		types[n_specs] = calloc((size_t)cJSON_GetArraySize(tl) + 1, sizeof(char *));
		if (types[n_specs] == NULL) {
			rc = RUN_EXIT_PLUGIN;
			goto out;
		}
		cJSON_ArrayForEach(t, tl)
		{
			const cJSON *nm = cJSON_GetObjectItemCaseSensitive(t, "name");

			if (cJSON_IsString(nm))
				types[n_specs][k++] = nm->valuestring;
		}
		if (p->descriptor == NULL) {
			/* Not scanned: NAME.so serves NAME.* (the worker says if it does not). */
			snprintf(wild[n_specs < 64 ? n_specs : 63], sizeof(wild[0]), "%s.*", p->stem);
			types[n_specs][k++] = wild[n_specs < 64 ? n_specs : 63];
		}
		specs[n_specs].name = dc_plugin_name(p);
		specs[n_specs].path = p->file;
		specs[n_specs].types = types[n_specs];
		specs[n_specs].n_types = k;
		specs[n_specs].settings = ag_config_plugin_settings(&pe.cfg, specs[n_specs].name);
		specs[n_specs].spare = false;
		specs[n_specs].fork_server = false; /* one task: nothing to fork it from */
		n_specs++;
		if (n_specs >= 64)
			break;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	wk_become_subreaper();
	if (sv_new(&pe.sv, specs, n_specs, &sv, &err) != OP_OK) {
		cli_error("%s", err.msg);
		rc = RUN_EXIT_PLUGIN;
		goto out;
	}
	{
		struct sv_task st = {"local", task.type, task.params, ws, task.timeout};

		if (sv_start(sv, &st, &ev, &rs, &job, &err) != OP_OK) {
			cli_error("%s", err.msg);
			rc = RUN_EXIT_PLUGIN;
			goto out;
		}
		/* While the worker loads: the heap this process takes the result into, as much
		 * as the worker prepares for building it (heap.h). */
		op_heap_prepare_idle(sv_task_heap(sv, task.type, strlen(task.params)));
	}
	while (!rs.done) {
		int max = sv_max_pollfds(sv) + 1, n, r;
		struct pollfd *grown = realloc(fds, (size_t)max * sizeof(*fds));

		if (grown == NULL)
			break;
		fds = grown;
		n = sv_pollfds(sv, fds, max - 1);
		fds[n].fd = sfd;
		fds[n].events = POLLIN;
		fds[n].revents = 0;
		r = poll(fds, (nfds_t)n + 1, sv_timeout_ms(sv));
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && fds[n].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				interrupts++;
				if (!rs.done && interrupts == 1) {
					fprintf(stderr, "interrupted by signal %u: cancelling the task (again to kill it)\n", si.ssi_signo);
					sv_cancel(job, "interrupted");
				} else if (!rs.done) {
					sv_kill(job, "interrupted twice");
				}
			}
		}
		if (r > 0)
			sv_handle(sv, fds, n);
		sv_tick(sv);
	}
	/* Let the worker finish exiting, so nothing is left behind. */
	for (int i = 0; i < 200 && sv_workers(sv) > 0; i++) {
		int max = sv_max_pollfds(sv), n;
		struct pollfd *grown = realloc(fds, (size_t)(max ? max : 1) * sizeof(*fds));

		if (grown == NULL)
			break;
		fds = grown;
		n = sv_pollfds(sv, fds, max);
		if (poll(fds, (nfds_t)n, 50) > 0)
			sv_handle(sv, fds, n);
		sv_tick(sv);
	}
	if (rs.envelope)
		printf("%s\n", rs.envelope);
	rc = rs.done ? rs.exit_code : RUN_EXIT_CRASHED;
out:
	sv_free(sv);
	free(fds);
	for (size_t i = 0; types && i < n_specs; i++)
		free(types[i]);
	free(types);
	free(specs);
	if (sfd >= 0)
		close(sfd);
	cJSON_free(rs.envelope);
	cJSON_Delete(rs.records);
	free(task.type);
	cJSON_free(task.params);
	if (env_ready)
		plugin_env_release(&pe);
	return rc;
}

int cmd_plugin(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return plugin_run(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		plugin_run_usage(stdout);
		return 0;
	}
	plugin_run_usage(stderr);
	return RUN_EXIT_BAD_TASK;
}
