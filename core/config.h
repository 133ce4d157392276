/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's configuration: /etc/outpost-agent/config.yaml, typed, with OUTPOST_* overrides. */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

#define AG_DEFAULT_CONFIG "/etc/outpost-agent/config.yaml"
#define AG_DEFAULT_CONFIG_DIR "/etc/outpost-agent"
#define AG_DEFAULT_STATE_DIR "/var/lib/outpost-agent"
#define AG_DEFAULT_CACHE_DIR "/var/cache/outpost-agent"

struct ag_strlist {
	char **v;
	size_t n;
};

/* A secret the agent can hand to plugins by name (decisions.md 18). */
struct ag_secret {
	char *name;
	char *from;		     /* "file:/path" or "env:VAR" */
	bool fenced;		     /* has an allow: list */
	struct ag_strlist types;     /* allowed task types (glob), empty = any */
	struct ag_strlist hosts;     /* allowed hosts (glob), empty = any */
	int line;
};

/* A setting that is true or false for all plugins (`spare: false`) or per plugin
 * (`spare: {default: true, odbc: false}`). */
struct ag_plugin_switch {
	bool on;	    /* the default; first, so that a plain boolean sets it */
	cJSON *overrides; /* name → bool, or NULL */
};

struct ag_config {
	char *file; /* where it came from, or NULL for defaults only */

	/* control plane */
	char *control_plane;
	char *ca_file;
	bool insecure_skip_verify;
	char *pinned_pubkey;
	char *https_proxy;
	char *no_proxy;
	double connect_timeout;
	double request_timeout;
	double tcp_keepalive;

	/* identity and places */
	char *state_dir;
	char *workspace_dir;
	char *cache_dir;
	char *user;
	char *pool;
	char *environment;
	struct ag_strlist tags;

	/* running */
	int concurrency;
	double drain_grace;
	uint64_t min_free_disk;
	uint64_t min_free_inodes;
	double workspace_max_age;
	char *metrics_listen;
	char *change_types_dir;

	/* logging */
	int log_level;
	char *log_file;
	uint64_t log_max_size;
	int log_keep;

	/* plugins and workers */
	char *plugins_dir;
	bool plugins_all;	  /* plugins.enabled absent: every plugin in the directory */
	struct ag_strlist plugins_enabled;
	cJSON *plugins_config;	  /* name → settings object (never NULL after load) */
	char *worker_path;
	struct ag_plugin_switch spare;
	struct ag_plugin_switch fork_server;
	uint64_t spare_heap; /* heap a spare worker maps and touches while it waits, 0 = none */
	uint64_t memory_limit;
	uint64_t output_limit;
	double worker_grace;
	double worker_start_timeout;
	double scan_timeout;

	struct ag_secret *secrets;
	size_t n_secrets;
};

/* Fills CFG with the defaults (no file). */
op_rc ag_config_defaults(struct ag_config *cfg, struct op_error *err);
/* Loads PATH over the defaults, then applies OUTPOST_* environment overrides. Errors name
 * FILE:LINE and the key, or the environment variable. */
op_rc ag_config_load(const char *path, struct ag_config *cfg, struct op_error *err);
/* Applies OUTPOST_* overrides to CFG (ag_config_load calls it). */
op_rc ag_config_env(struct ag_config *cfg, struct op_error *err);
/* Parses a YAML document's `secrets:` section only (plugin run --secrets). */
op_rc ag_config_load_secrets(const char *path, struct ag_config *cfg, struct op_error *err);
void ag_config_release(struct ag_config *cfg);

/* SW's value for plugin NAME: its override, else the default. */
bool ag_plugin_switch_for(const struct ag_plugin_switch *sw, const char *name);
/* Plugin NAME's settings object, or NULL when the config has none. */
const cJSON *ag_config_plugin_settings(const struct ag_config *cfg, const char *name);
/* Whether the plugin whose file stem is STEM is enabled. */
bool ag_config_plugin_enabled(const struct ag_config *cfg, const char *stem);

/* Paths derived from state_dir. */
void ag_config_state_path(const struct ag_config *cfg, const char *name, char *out, size_t size);

bool ag_strlist_has(const struct ag_strlist *l, const char *s);
op_rc ag_strlist_add(struct ag_strlist *l, const char *s);
void ag_strlist_release(struct ag_strlist *l);
/* Splits "a,b,c" (spaces trimmed, empties dropped) into L. */
op_rc ag_strlist_split(struct ag_strlist *l, const char *csv);

#endif
