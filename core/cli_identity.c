/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent rotate-cert`, and the FATAL lines and exit codes the identity commands share. */
#include "cli_identity.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"

int cli_exit_for(op_rc rc, const struct ag_outcome *o)
{
	if (rc == OP_OK)
		return AG_EXIT_OK;
	if (rc == OP_ESTATE && o && (strcmp(o->reason, "agent_revoked") == 0 ||
				     strcmp(o->reason, "agent_not_found") == 0))
		return AG_EXIT_REVOKED;
	if (rc == OP_EPERM && o && strcmp(o->reason, "cert_expired") == 0)
		return AG_EXIT_CERT_EXPIRED;
	if (o && (o->clock || o->net != TP_OK))
		return AG_EXIT_UNREACHABLE;
	if (rc == OP_EINVAL)
		return AG_EXIT_USAGE;
	return AG_EXIT_FAILED;
}

int cli_fatal(const char *what, op_rc rc, const struct op_error *err, const struct ag_outcome *o)
{
	const char *h = o ? o->hint : "";

	fprintf(stderr, "FATAL: %s: %s\n", what, err && err->msg[0] ? err->msg : op_strerror(rc));
	while (h && *h) {
		size_t n = strcspn(h, "\n");

		fprintf(stderr, "  %.*s\n", (int)n, h);
		h += n;
		if (*h == '\n')
			h++;
	}
	return cli_exit_for(rc, o);
}

int cli_load_config(const char *config, struct ag_config *cfg)
{
	struct op_error err = {0};

	if (ag_config_load(config ? config : AG_DEFAULT_CONFIG, cfg, &err) != OP_OK) {
		fprintf(stderr, "FATAL: %s\n", err.msg);
		ag_config_release(cfg);
		return AG_EXIT_USAGE;
	}
	/* a command's own output says what happened: its log lines only when they matter */
	op_log_set_level(cfg->log_level >= OP_LOG_DEBUG ? OP_LOG_DEBUG : OP_LOG_WARN);
	return AG_EXIT_OK;
}

/* ---- rotate-cert ------------------------------------------------------------------------- */

static void rotate_usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent rotate-cert [--config FILE]\n"
		"\n"
		"Renews the agent's client certificate now: a new key made here, a CSR sent to the\n"
		"control plane with the current certificate (also accepted shortly after it expired,\n"
		"within the control plane's grace), the new pair confirmed, then put in place of the\n"
		"old one. The running agent renews by itself at half the certificate's lifetime;\n"
		"it picks up a certificate renewed here at its next connection, with no restart.\n"
		"\n"
		"  --config FILE  the agent config (default " AG_DEFAULT_CONFIG ")\n"
		"\n"
		"Exit status: 0 renewed, 1 failed, 2 bad usage or config, 3 agent revoked or deleted,\n"
		"4 certificate expired beyond the grace (make a new token and reinstall), 5 control\n"
		"plane unreachable or untrusted.\n");
}

/* Loads the config and runs ag_rotate_cert_ex, printing the outcome or the FATAL line. */
int cmd_rotate_cert(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	struct ag_config cfg;
	struct ag_rotation rot;
	struct ag_outcome o;
	struct op_error err = {0};
	char t[40];
	int c, rc;
	op_rc orc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			rotate_usage(stdout);
			return AG_EXIT_OK;
		default:
			rotate_usage(stderr);
			return AG_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return AG_EXIT_USAGE;
	}
	rc = cli_load_config(config, &cfg);
	if (rc != AG_EXIT_OK)
		return rc;
	ag_warn_insecure(&cfg);
	orc = ag_rotate_cert_ex(&cfg, &rot, &o, &err);
	if (orc != OP_OK) {
		rc = cli_fatal("certificate rotation failed", orc, &err, &o);
	} else {
		tp_format_time(rot.not_after, t, sizeof(t));
		if (rot.recovered)
			printf("completed an interrupted rotation first\n");
		printf("certificate rotated for %s: serial %s replaces %s, valid until %s\n",
		       rot.agent_id, rot.new_serial, rot.old_serial, t);
		printf("a running agent uses it from its next connection: no restart needed\n");
	}
	ag_config_release(&cfg);
	return rc;
}
