/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent check`: one line per check, OK / WARN / FAIL and the fix, or --json. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "checks.h"
#include "cli.h"
#include "config.h"
#include "enroll.h"
#include "jsonprint.h"

static void check_usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent check [--config FILE] [--json]\n"
		"\n"
		"Checks an installed agent and says what to fix: the config, the control plane\n"
		"(GET /health), TLS trust, the clock against the control plane's, the client\n"
		"certificate and its key, the registration (not revoked), the state, workspace and\n"
		"cache directories (writable by the agent's user), free disk space and inodes, the\n"
		"workspace size, the plugins, secrets without an allow list, and the service.\n"
		"\n"
		"  --config FILE  the agent config (default " AG_DEFAULT_CONFIG ")\n"
		"  --json         one JSON object: {\"config\", \"ok\", \"checks\": [{\"name\", \"status\",\n"
		"                 \"message\", \"fix\"}]}\n"
		"\n"
		"Exit status: 0 nothing failed (warnings allowed), 1 a check failed, 2 bad usage.\n");
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Runs ag_checks_run and prints its report as lines or JSON; exit 1 on any FAIL. */
int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	struct ag_check_report rep;
	struct op_error err = {0};
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			check_usage(stdout);
			return AG_EXIT_OK;
		default:
			check_usage(stderr);
			return AG_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return AG_EXIT_USAGE;
	}
	/* The loud warning first, as every command that talks to the control plane prints it. */
	{
		struct ag_config cfg;
		struct op_error e = {0};

		if (ag_config_load(config ? config : AG_DEFAULT_CONFIG, &cfg, &e) == OP_OK)
			ag_warn_insecure(&cfg);
		ag_config_release(&cfg);
	}
	if (ag_checks_run(config, &rep, &err) != OP_OK) {
		cli_error("%s", err.msg);
		return AG_EXIT_FAILED;
	}
	if (json) {
		cJSON *o = cJSON_CreateObject(), *arr;
		char *text;

		cJSON_AddStringToObject(o, "config", rep.config);
		cJSON_AddBoolToObject(o, "ok", rep.n_fail == 0);
		cJSON_AddNumberToObject(o, "warnings", (double)rep.n_warn);
		cJSON_AddNumberToObject(o, "failures", (double)rep.n_fail);
		arr = cJSON_AddArrayToObject(o, "checks");
		for (size_t i = 0; arr && i < rep.n; i++) {
			cJSON *c1 = cJSON_CreateObject();
			char st[8];

			snprintf(st, sizeof(st), "%s", ag_check_status_name(rep.v[i].status));
			lower(st);
			cJSON_AddStringToObject(c1, "name", rep.v[i].name);
			cJSON_AddStringToObject(c1, "status", st);
			cJSON_AddStringToObject(c1, "message", rep.v[i].message);
			if (rep.v[i].fix[0])
				cJSON_AddStringToObject(c1, "fix", rep.v[i].fix);
			else
				cJSON_AddNullToObject(c1, "fix");
			cJSON_AddItemToArray(arr, c1);
		}
		text = op_json_print(o, true);
		if (text)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(o);
	} else {
		for (size_t i = 0; i < rep.n; i++) {
			const struct ag_check *k = &rep.v[i];

			printf("%-4s  %-14s %s%s%s\n", ag_check_status_name(k->status), k->name,
			       k->message, k->fix[0] && k->status != AG_CHECK_OK ? "; fix: " : "",
			       k->fix[0] && k->status != AG_CHECK_OK ? k->fix : "");
		}
		printf("%zu checks: %zu failed, %zu warnings\n", rep.n, rep.n_fail, rep.n_warn);
	}
	c = rep.n_fail ? AG_EXIT_FAILED : AG_EXIT_OK;
	ag_check_report_release(&rep);
	return c;
}
