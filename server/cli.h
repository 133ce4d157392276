/* SPDX-License-Identifier: Apache-2.0 */
/* The admin CLI: subcommands that talk to a running server over the admin API. */
#ifndef SRV_CLI_H
#define SRV_CLI_H

/* Exit codes of every outpost-server command (docs/server.md). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,	      /* the command failed: the message says why */
	EXIT_USAGE = 2,	      /* bad flags or arguments */
	EXIT_UNREACHABLE = 3, /* cannot reach the server (connect, TLS) */
	EXIT_AUTH = 4,	      /* the admin token was refused (401/403) */
	EXIT_NOT_FOUND = 5,   /* no such agent, task, token, change request (404) */
	EXIT_CONFLICT = 6,    /* not allowed in the current state (409) */
	EXIT_UNAVAILABLE = 7, /* the server is overloaded, stopping or cannot commit (5xx) */
	EXIT_TASK_FAILED = 8, /* task submit --wait: the task ended other than succeeded */
};

/* Runs an admin subcommand (token, admin-token, agents, task, cr, settings, audit, status,
 * whoami). ARGV[0] is the subcommand. Returns an exit code; -1 when ARGV[0] is none of them. */
int cli_main(int argc, char **argv);

#endif
