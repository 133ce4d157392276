/* SPDX-License-Identifier: Apache-2.0 */
/* outpost-agent: command dispatch. The first thing it does is wipe a --token from its argv. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outpost/plugin.h"

#include "agent.h"
#include "cli.h"
#include "log.h"

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

int main(int argc, char **argv)
{
	char **args = protect_argv(argc, argv);
	int rc;

	if (args == NULL) {
		cli_error("out of memory");
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		rc = 2;
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
