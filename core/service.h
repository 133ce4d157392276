/* SPDX-License-Identifier: Apache-2.0 */
/* The agent as a systemd service, its system user, and running helper commands without secrets. */
#ifndef AG_SERVICE_H
#define AG_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "op.h"

#define AG_UNIT_NAME "outpost-agent.service"
#define AG_DEFAULT_USER "outpost-agent"
#define AG_DEFAULT_BIN "/usr/bin/outpost-agent"
#define AG_UNIT_ETC "/etc/systemd/system/outpost-agent.service"
#define AG_UNIT_DROPIN "/etc/systemd/system/outpost-agent.service.d/install.conf"

/* The text of packaging/outpost-agent.service (tests/enroll/service.sh keeps them identical). */
extern const char ag_unit_text[];

/* Whether systemd runs this host (/run/systemd/system exists, as sd_booted() checks). */
bool ag_systemd_running(void);

/* What the unit must know about this installation. */
struct ag_service_spec {
	const char *config; /* the config file */
	const char *user;
	const char *dirs[4]; /* state, workspace, cache, log dir: ReadWritePaths (NULL ends) */
};

/* Writes the unit to /etc/systemd/system unless a package installed one in
 * /usr/lib/systemd/system, a drop-in (outpost-agent.service.d/install.conf) for whatever differs
 * from the unit's defaults (binary, config path, user, directories), then runs systemctl
 * daemon-reload and enable --now. What it did goes to DONE (one line each). */
op_rc ag_service_install(const struct ag_service_spec *s, struct op_buf *done, struct op_error *err);
/* systemctl disable --now, then removes the unit and drop-in that install wrote (files it did
 * not write, such as a packaged unit, stay) and reloads systemd. */
op_rc ag_service_remove(struct op_buf *done, struct op_error *err);
/* systemctl is-active and is-enabled of the unit ("active", "enabled", ...). */
op_rc ag_service_status(char *active, size_t asz, char *enabled, size_t esz, struct op_error *err);

/* Runs ARGV[0] (looked up in /usr/sbin:/usr/bin:/sbin:/bin) with ARGV, stdin on /dev/null, and
 * an environment of PATH and LANG only: a token or secret of ours never reaches it. Its stdout
 * and stderr go to OUT (may be NULL). *STATUS is its exit status, or 128 + the signal. */
op_rc ag_run(const char *const *argv, struct op_buf *out, int *status, struct op_error *err);

/* Looks up user NAME. When it does not exist and CREATE is set, creates it as a system user
 * with its own group, HOME as home (not created) and no login shell (useradd --system), and
 * sets *CREATED. */
op_rc ag_user_ensure(const char *name, bool create, const char *home, uid_t *uid, gid_t *gid,
		     bool *created, struct op_error *err);

#endif
