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

/* Shared by the subcommands: prints "outpost-agent: MESSAGE" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
