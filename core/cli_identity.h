/* SPDX-License-Identifier: Apache-2.0 */
/* What install, check, rotate-cert and uninstall share: FATAL lines, exit codes, the config. */
#ifndef AG_CLI_IDENTITY_H
#define AG_CLI_IDENTITY_H

#include "config.h"
#include "enroll.h"
#include "op.h"

/* The exit code (cli.h's AG_EXIT_*) for a failure RC whose details are in O (may be NULL). */
int cli_exit_for(op_rc rc, const struct ag_outcome *o);

/* Prints `FATAL: WHAT: MESSAGE` to stderr, then O's hint indented under it, and returns the
 * exit code. WHAT is e.g. "enrollment failed" (the seeds' words). */
int cli_fatal(const char *what, op_rc rc, const struct op_error *err, const struct ag_outcome *o);

/* Loads CONFIG (NULL: the default path) into CFG and sets the log level. On failure prints
 * the error (file:line) and returns AG_EXIT_USAGE; CFG is then released. */
int cli_load_config(const char *config, struct ag_config *cfg);

#endif
