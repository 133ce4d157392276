/* SPDX-License-Identifier: Apache-2.0 */
/* The server's settings: defaults, the data dir's server.yaml, and `serve` flags over both. */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "op.h"

#define SRV_CONFIG_FILE "server.yaml"
#define SRV_ADMIN_FILE "admin.yaml"
#define SRV_DB_FILE "outpost.db"
#define SRV_LOCK_FILE "server.lock"

struct srv_config {
	char data_dir[4096];
	char listen[256];
	double heartbeat_interval;   /* s: what agents are told */
	double offline_after;        /* s: 0 = 3 heartbeat intervals */
	double lease_ttl;            /* s */
	double long_poll;            /* s: the longest a lease request waits, <= 25 */
	double cert_validity;        /* s: client certificates */
	double cert_rotation_grace;  /* s: rotate-cert accepts a cert expired this long ago */
	double restart_lease_grace;  /* s: leases in flight at start live at least this long */
	double enroll_replay_window; /* s: the same CSR + token gets the same answer */
	double idle_timeout;         /* s: keep-alive; 0 = max(90, 3 heartbeats + long poll) */
	double release_backoff;      /* s: a released task skips that agent for this long */
	double approval_validity;    /* s: an approved change request must start within this */
	double default_task_timeout; /* s */
	double retention;	     /* s: finished tasks are deleted this long after; 0 keeps */
	double audit_retention;	     /* s: audit entries are deleted this long after; 0 keeps */
	int default_max_attempts;
	int max_slots;
	int max_queue; /* jobs waiting for the database before requests get 503 overloaded */
	uint64_t max_body;      /* bytes of a request body */
	uint64_t max_log_bytes; /* bytes of log kept per task */
	uint64_t max_artifact_bytes; /* an uploaded artifact's size; 0: uploads refused */
	int cr_required_approvals;
	bool allow_self_approval;
	char access_log[4096]; /* "" or "stderr", "off", or a path */
	char log_level[16];
	char log_file[4096];
};

/* Fills C with the defaults. */
void srv_config_defaults(struct srv_config *c);
/* Applies PATH (YAML); a missing file is fine when OPTIONAL. Errors name file:line and key. */
op_rc srv_config_load(struct srv_config *c, const char *path, bool optional, struct op_error *err);
/* Applies one setting by name ("heartbeat_interval" or "heartbeat-interval") from text. */
op_rc srv_config_set(struct srv_config *c, const char *key, const char *value,
		     struct op_error *err);
/* True when KEY (with dashes) is a setting `serve` takes as a flag. */
bool srv_config_is_key(const char *key);
/* Fills the derived values and checks the whole; returns OP_EINVAL with a message. */
op_rc srv_config_finish(struct srv_config *c, struct op_error *err);
/* Writes the commented default file init creates. */
void srv_config_write_default(FILE *f, const char *listen);
/* Prints every setting with its description (for --help). */
void srv_config_print_help(FILE *f);

#endif
