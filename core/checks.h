/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent check` as data: each check of an installed agent with its status and its fix. */
#ifndef AG_CHECKS_H
#define AG_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

#include "op.h"

enum ag_check_status {
	AG_CHECK_OK,
	AG_CHECK_WARN,
	AG_CHECK_FAIL,
	AG_CHECK_SKIP /* could not be checked because an earlier check failed, or not applicable */
};

struct ag_check {
	char name[32];	  /* "config", "control-plane", "tls", "clock", "certificate", ... */
	enum ag_check_status status;
	char message[1024]; /* what was found */
	char fix[1024];	  /* what to do, "" when nothing */
};

struct ag_check_report {
	struct ag_check *v;
	size_t n;
	size_t n_warn, n_fail;
	char config[4096]; /* the config file checked */
};

/* Runs every check of the agent configured by CONFIG (NULL: the default path), in order:
 * config, tls (and the insecure warning), control-plane, clock, certificate, key,
 * registration, state-dir, workspace-dir, cache-dir, disk, workspace-size, plugins, secrets,
 * service. A failed check never stops the others unless they depend on it (those are SKIP).
 * Returns OP_OK with the findings in REP, or OP_ENOMEM. */
op_rc ag_checks_run(const char *config, struct ag_check_report *rep, struct op_error *err);
void ag_check_report_release(struct ag_check_report *rep);

/* "OK", "WARN", "FAIL", "SKIP". */
const char *ag_check_status_name(enum ag_check_status s);

#endif
