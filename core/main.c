/* SPDX-License-Identifier: Apache-2.0 */
/* outpost-agent: command dispatch. The first thing it does is wipe a --token from its argv.
 *
 * Two programs are built from this file. outpost-agent (OUTPOST_AGENT_FRONT) runs what needs
 * no control plane — plugin run, plugins list, version, help — and links neither libcurl nor
 * OpenSSL's TLS: the ~40 libraries those pull in are a third of a `plugin run`'s start-up.
 * For every other command it execs outpost-agent-net (same process, same arguments), which
 * has them all. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "outpost/plugin.h"

#include "agent.h"
#include "cli.h"
#include "log.h"
#include "workerproc.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("outpost-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Overwrites the value of --token (and --token=...) in place, so /proc/PID/cmdline and ps
 * never show it after start-up (decisions.md 4). The parsers still see a copy. */
static char **protect_argv(int argc, char **argv)
{
	char **copy = calloc((size_t)argc + 1, sizeof(*copy));

	if (copy == NULL)
		return NULL;
	for (int i = 0; i < argc; i++) {
		copy[i] = strdup(argv[i]);
		if (copy[i] == NULL)
			return NULL;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--token") == 0 && i + 1 < argc && strcmp(argv[i + 1], "-") != 0) {
			memset(argv[i + 1], 'x', strlen(argv[i + 1]));
			i++;
		} else if (strncmp(argv[i], "--token=", 8) == 0) {
			memset(argv[i] + 8, 'x', strlen(argv[i] + 8));
		}
	}
	return copy;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  run            run the agent: heartbeat, lease tasks, run them in workers\n"
		"  status         show the running agent's state, leases and last heartbeat\n"
		"  drain          stop taking new leases; running tasks finish\n"
		"  undrain        take leases again\n"
		"  install        enroll this host with the control plane and set up the service\n"
		"  check          check the installed agent: one line per check, and the fix\n"
		"  rotate-cert    renew the agent's client certificate now\n"
		"  uninstall      deregister, stop the service, remove config, key and certificate\n"
		"  plugins list   list the plugins in the plugins directory and their state\n"
		"  plugin run     run one task through a plugin, with no control plane\n"
		"  version        print the version and the plugin ABI\n"
		"\n"
		"Run `outpost-agent COMMAND --help` for a command's options.\n");
}

static int cmd_version(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: outpost-agent version\n\n"
		       "Prints the agent's version and the plugin ABI it hosts (MAJOR.MINOR): a plugin\n"
		       "built for the same major and at most that minor loads.\n");
		return 0;
	}
	if (argc > 1) {
		cli_error("version takes no arguments (got \"%s\")", argv[1]);
		return 2;
	}
	printf("outpost-agent %s (plugin ABI %d.%d)\n", OUTPOST_VERSION, OUTPOST_ABI_MAJOR,
	       OUTPOST_ABI_MINOR);
	return 0;
}

#ifdef OUTPOST_AGENT_FRONT
/* The commands outpost-agent-net runs. */
static bool net_command(const char *cmd)
{
	static const char *const net[] = {"run",   "status", "drain",	  "undrain",
					  "install", "check",  "rotate-cert", "uninstall"};

	for (size_t i = 0; i < OP_ARRAY_LEN(net); i++)
		if (strcmp(cmd, net[i]) == 0)
			return true;
	return false;
}

/* Replaces this process with outpost-agent-net ARGS; returns only when that fails. Tells it
 * where this program is (for the service unit `install` writes). */
static int exec_net(char **args)
{
	char net[PATH_MAX], self[PATH_MAX];
	struct op_error err = {0};
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (wk_locate_program("outpost-agent-net", "OUTPOST_AGENT_NET", OUTPOST_DEFAULT_AGENT_NET,
			      net, sizeof(net), &err) != OP_OK) {
		cli_error("%s", err.msg);
		return 1;
	}
	if (n > 0) {
		self[n] = '\0';
		if (setenv("OUTPOST_AGENT_PATH", self, 1) < 0) {
			cli_error("setenv: %s", strerror(errno));
			return 1;
		}
	}
	execv(net, args);
	cli_error("cannot run %s: %s", net, strerror(errno));
	return 1;
}
#endif

int main(int argc, char **argv)
{
	char **args = protect_argv(argc, argv);
	int rc;

	if (args == NULL) {
		cli_error("out of memory");
		return 1;
	}
#ifndef OUTPOST_AGENT_FRONT
	/* ps and top name it as the user does (an exec'd program is named after its file). */
	(void)prctl(PR_SET_NAME, "outpost-agent", 0, 0, 0);
#endif
	if (argc < 2) {
		usage(stderr);
		rc = 2;
#ifdef OUTPOST_AGENT_FRONT
	} else if (net_command(args[1])) {
		rc = exec_net(args);
#else
	} else if (strcmp(args[1], "run") == 0) {
		rc = cmd_run(argc - 1, args + 1);
	} else if (strcmp(args[1], "drain") == 0 || strcmp(args[1], "undrain") == 0 ||
		   strcmp(args[1], "status") == 0) {
		rc = cmd_ctl(argc - 1, args + 1, args[1]);
	} else if (strcmp(args[1], "install") == 0) {
		rc = cmd_install(argc - 1, args + 1);
	} else if (strcmp(args[1], "check") == 0) {
		rc = cmd_check(argc - 1, args + 1);
	} else if (strcmp(args[1], "rotate-cert") == 0) {
		rc = cmd_rotate_cert(argc - 1, args + 1);
	} else if (strcmp(args[1], "uninstall") == 0) {
		rc = cmd_uninstall(argc - 1, args + 1);
#endif
	} else if (strcmp(args[1], "plugins") == 0) {
		rc = cmd_plugins(argc - 1, args + 1);
	} else if (strcmp(args[1], "plugin") == 0) {
		rc = cmd_plugin(argc - 1, args + 1);
	} else if (strcmp(args[1], "version") == 0 || strcmp(args[1], "--version") == 0) {
		rc = cmd_version(argc - 1, args + 1);
	} else if (strcmp(args[1], "help") == 0 || strcmp(args[1], "--help") == 0 ||
		   strcmp(args[1], "-h") == 0) {
		usage(stdout);
		rc = 0;
	} else {
		cli_error("unknown command \"%s\"", args[1]);
		usage(stderr);
		rc = 2;
	}
	for (int i = 0; i < argc; i++)
		free(args[i]);
	free(args);
	return rc;
}
