/* SPDX-License-Identifier: Apache-2.0 */
/* outpost-agent's subcommands and their exit codes. */
#ifndef AG_CLI_H
#define AG_CLI_H

/* Exit codes of `plugin run` (decisions.md 9), documented in docs/sdk.md. */
enum {
	RUN_EXIT_OK = 0,
	RUN_EXIT_FAILED = 1,
	RUN_EXIT_BAD_TASK = 2,
	RUN_EXIT_PLUGIN = 3,
	RUN_EXIT_CRASHED = 4
};

int cmd_plugins(int argc, char **argv);
int cmd_plugin(int argc, char **argv);

/* Exit codes of install, check, rotate-cert, uninstall and run: docs/operations.md. The unit's
 * RestartPreventExitStatus= lists the ones a restart cannot fix (2, 3, 4). */
enum {
	AG_EXIT_OK = 0,
	AG_EXIT_FAILED = 1,	  /* refused or failed; check: a check failed */
	AG_EXIT_USAGE = 2,	  /* bad usage or config */
	AG_EXIT_REVOKED = 3,	  /* the agent was revoked or deleted on the control plane */
	AG_EXIT_CERT_EXPIRED = 4, /* the certificate expired beyond the rotation grace */
	AG_EXIT_UNREACHABLE = 5,  /* control plane unreachable or untrusted, or clocks too far apart */
	AG_EXIT_ENROLLED = 6	  /* install: this host is already enrolled */
};

int cmd_install(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_rotate_cert(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);

/* Shared by the subcommands: prints "outpost-agent: MESSAGE" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
