/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent uninstall`: deregister, stop the service, remove config and identity, keep logs. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_identity.h"
#include "config.h"
#include "enroll.h"
#include "fsutil.h"
#include "identity.h"
#include "log.h"
#include "service.h"

static void uninstall_usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent uninstall [--config FILE] [--keep-state] [--no-service]\n"
		"\n"
		"Deregisters the agent from the control plane when it is reachable (the control plane\n"
		"then refuses its certificate), stops and disables outpost-agent.service where systemd\n"
		"runs, and removes the config file, the agent's key, certificate and agent id. Logs\n"
		"are kept. Without --keep-state it also removes the task workspaces and caches that\n"
		"install created.\n"
		"\n"
		"  --config FILE  the agent config (default " AG_DEFAULT_CONFIG ")\n"
		"  --keep-state   keep task workspaces, artifacts and caches (only the identity goes)\n"
		"  --no-service   leave the systemd service alone\n"
		"\n"
		"Exit status: 0 uninstalled (also when the control plane could not be told: the\n"
		"output says how to revoke the agent there), 1 something could not be removed, 2 bad\n"
		"usage or no config.\n");
}

static bool in_list(const cJSON *arr, const char *s)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, arr)
	{
		if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
			return true;
	}
	return false;
}

/* Whether NAME in DIR is the log file LOG or one of its rotations (kept: "keeps logs"). */
static bool is_log(const char *dir, const char *name, const char *log)
{
	const char *slash = log ? strrchr(log, '/') : NULL;
	size_t dl, bl;

	if (slash == NULL)
		return false;
	dl = (size_t)(slash - log);
	bl = strlen(slash + 1);
	return strlen(dir) == dl && strncmp(dir, log, dl) == 0 && strncmp(name, slash + 1, bl) == 0 &&
	       (name[bl] == '\0' || name[bl] == '.');
}

/* Removes everything in DIR but the log files, then DIR when it is empty. */
static op_rc empty_dir(const char *dir, const char *log, struct op_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	op_rc rc = OP_OK;

	if (d == NULL)
		return errno == ENOENT ? OP_OK
				       : op_fail(err, OP_EIO, "cannot read %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL && rc == OP_OK) {
		char p[PATH_MAX];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    is_log(dir, e->d_name, log))
			continue;
		if (op_snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) == 0)
			rc = op_rm_rf(p, err);
	}
	closedir(d);
	(void)rmdir(dir);
	return rc;
}

/* Deregisters, stops the service, removes config and identity, then (without --keep-state)
 * the workspaces, caches and dirs install created; logs stay. */
int cmd_uninstall(int argc, char **argv)
{
	enum { O_KEEP = 256, O_NO_SERVICE };
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"keep-state", no_argument, NULL, O_KEEP},
		{"no-service", no_argument, NULL, O_NO_SERVICE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = AG_DEFAULT_CONFIG;
	struct ag_config cfg;
	struct ag_outcome o;
	struct op_error err = {0};
	struct op_buf done = OP_BUF_INIT;
	bool keep = false, no_service = false;
	cJSON *agent = NULL;
	const cJSON *created = NULL;
	char path[PATH_MAX], work[PATH_MAX + 8], abs_config[PATH_MAX];
	int c, rc = AG_EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case O_KEEP:
			keep = true;
			break;
		case O_NO_SERVICE:
			no_service = true;
			break;
		case 'h':
			uninstall_usage(stdout);
			return AG_EXIT_OK;
		default:
			uninstall_usage(stderr);
			return AG_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return AG_EXIT_USAGE;
	}
	if (access(config, F_OK) < 0 && errno == ENOENT) {
		fprintf(stderr, "FATAL: %s not found: nothing to uninstall (pass --config FILE for "
				"another installation)\n",
			config);
		return AG_EXIT_USAGE;
	}
	if (realpath(config, abs_config) != NULL)
		config = abs_config;
	rc = cli_load_config(config, &cfg);
	if (rc != AG_EXIT_OK)
		return rc;
	ag_warn_insecure(&cfg);

	/* 1. tell the control plane */
	if (id_load_agent(cfg.state_dir, &agent, &err) == OP_OK) {
		const char *id = id_agent_id(agent);

		created = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(agent, "install"), "created_dirs");
		if (ag_deregister(&cfg, "uninstall", &o, &err) == OP_OK)
			printf(o.reason[0] ? "%s was already revoked or deleted on %s\n"
					   : "deregistered %s from %s\n",
			       id, cfg.control_plane);
		else
			fprintf(stderr,
				"WARN: could not deregister %s: %s\n"
				"  the control plane lists it until an operator revokes it:\n"
				"  outpost-server agents revoke %s\n",
				id, err.msg, id);
	} else {
		printf("no enrollment in %s: nothing to deregister\n", cfg.state_dir);
	}

	/* 2. the service */
	if (!no_service && ag_systemd_running()) {
		if (geteuid() != 0) {
			fprintf(stderr, "WARN: not root: the systemd service is left as it is\n");
		} else {
			if (ag_service_remove(&done, &err) != OP_OK) {
				fprintf(stderr, "ERROR: %s\n", err.msg);
				rc = AG_EXIT_FAILED;
			}
			if (done.data)
				fputs(done.data, stdout);
		}
	}

	/* 3. config and identity */
	if (unlink(config) < 0 && errno != ENOENT) {
		fprintf(stderr, "ERROR: cannot remove %s: %s\n", config, strerror(errno));
		rc = AG_EXIT_FAILED;
	} else {
		printf("removed %s\n", config);
	}
	ag_identity_remove(cfg.state_dir);
	id_path(cfg.state_dir, ID_SERVER_CA, path, sizeof(path));
	(void)unlink(path);
	ag_config_state_path(&cfg, "plugin-cache.json", path, sizeof(path));
	(void)unlink(path);
	printf("removed the agent's key, certificate and id from %s\n", cfg.state_dir);

	/* 4. work and caches */
	snprintf(work, sizeof(work), "%s/work", cfg.state_dir);
	if (keep) {
		printf("kept %s (--keep-state)\n", cfg.state_dir);
	} else {
		if (in_list(created, cfg.workspace_dir) || strcmp(cfg.workspace_dir, work) == 0) {
			if (op_rm_rf(cfg.workspace_dir, &err) != OP_OK) {
				fprintf(stderr, "ERROR: %s\n", err.msg);
				rc = AG_EXIT_FAILED;
			}
		}
		if (in_list(created, cfg.cache_dir) && op_rm_rf(cfg.cache_dir, &err) != OP_OK) {
			fprintf(stderr, "ERROR: %s\n", err.msg);
			rc = AG_EXIT_FAILED;
		}
		/* a state dir install made goes (but the logs); one that existed stays */
		if (in_list(created, cfg.state_dir) &&
		    empty_dir(cfg.state_dir, cfg.log_file, &err) != OP_OK) {
			fprintf(stderr, "ERROR: %s\n", err.msg);
			rc = AG_EXIT_FAILED;
		}
		printf("removed the task workspaces and caches install created\n");
	}
	{
		char dir[PATH_MAX];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", config);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (in_list(created, dir))
				(void)rmdir(dir);
		}
	}
	if (cfg.log_file)
		printf("kept the logs: %s*\n", cfg.log_file);
	if (ag_systemd_running())
		printf("kept the journal: journalctl -u outpost-agent\n");
	op_buf_release(&done);
	cJSON_Delete(agent);
	ag_config_release(&cfg);
	return rc;
}
