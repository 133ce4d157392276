/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket (STATE/control.sock, 0600) and `outpost-agent drain|undrain|status`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "jsonprint.h"
#include "log.h"
#include "outbox.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

static int sock_path(const char *state_dir, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	return op_snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/control.sock", state_dir);
}

int ctl_listen(struct agent *ag)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd;

	if (sock_path(ag->cfg.state_dir, &sa) < 0) {
		op_log_warn("agent", "state_dir too long for a control socket: drain/status unavailable");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(sa.sun_path);
	old = umask(0177); /* the socket is created 0600 */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		umask(old);
		op_log_warn("agent", "cannot open the control socket %s: %s", sa.sun_path,
			    strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	chmod(sa.sun_path, 0600);
	return fd;
}

cJSON *ag_status_json(struct agent *ag)
{
	cJSON *s = cJSON_CreateObject(), *tasks, *hb, *cert, *drain, *plugins;
	double now = tp_now(), mono = ag_now();
	struct ob_list pending;
	char ts[40];
	int running = lease_running(ag);

	if (s == NULL)
		return NULL;
	cJSON_AddStringToObject(s, "version", OUTPOST_VERSION);
	cJSON_AddStringToObject(s, "agent_id", ag->agent_id);
	cJSON_AddStringToObject(s, "hostname", ag->hostname);
	cJSON_AddStringToObject(s, "control_plane", ag->cfg.control_plane ? ag->cfg.control_plane : "");
	cJSON_AddStringToObject(s, "state", ag_draining(ag) ? "draining" : running ? "busy" : "idle");
	drain = cJSON_AddObjectToObject(s, "drain");
	cJSON_AddBoolToObject(drain, "local", ag->drain_local);
	cJSON_AddBoolToObject(drain, "server", ag->drain_server);
	cJSON_AddBoolToObject(drain, "stopping", ag->stopping);
	cJSON_AddNumberToObject(s, "concurrency", ag->cfg.concurrency);
	cJSON_AddNumberToObject(s, "running", running);
	tasks = cJSON_AddArrayToObject(s, "leases");
	for (const struct ag_task *t = ag->tasks; t; t = t->next) {
		cJSON *o = cJSON_CreateObject();
		static const char *const st[] = {"running", "finishing", "completing"};

		cJSON_AddStringToObject(o, "lease_id", t->lease_id);
		cJSON_AddStringToObject(o, "task_id", t->task_id);
		cJSON_AddStringToObject(o, "type", t->type);
		cJSON_AddStringToObject(o, "state", t->lost ? "lost" : st[t->state]);
		cJSON_AddNumberToObject(o, "seconds", t->started ? (double)(long)(mono - t->started) : 0);
		cJSON_AddItemToArray(tasks, o);
	}
	hb = cJSON_AddObjectToObject(s, "heartbeat");
	if (ag->hb_last_ok > 0) {
		tp_format_time(ag->hb_last_ok, ts, sizeof(ts));
		cJSON_AddStringToObject(hb, "last_ok", ts);
		cJSON_AddNumberToObject(hb, "seconds_ago", (double)(long)(now - ag->hb_last_ok));
		cJSON_AddNumberToObject(hb, "latency_ms", (double)(long)(ag->hb_last_latency * 1000));
	}
	cJSON_AddStringToObject(hb, "last_result", ag->hb_last_result[0] ? ag->hb_last_result : "none yet");
	cJSON_AddNumberToObject(hb, "interval", ag->hb_interval);
	cert = cJSON_AddObjectToObject(s, "certificate");
	if (ag->cert_not_after > 0) {
		tp_format_time(ag->cert_not_after, ts, sizeof(ts));
		cJSON_AddStringToObject(cert, "not_after", ts);
		cJSON_AddNumberToObject(cert, "days_left",
					(double)(long)((ag->cert_not_after - now) / 86400));
		tp_format_time(ag->cert_renew_at, ts, sizeof(ts));
		cJSON_AddStringToObject(cert, "renew_at", ts);
	}
	plugins = cJSON_AddObjectToObject(s, "plugins");
	if (ag->plugin_versions) {
		const cJSON *p;

		cJSON_ArrayForEach(p, ag->plugin_versions)
		{
			cJSON_AddStringToObject(plugins, p->string, p->valuestring);
		}
	}
	if (ob_list_pending(ag->cfg.state_dir, &pending, NULL) == OP_OK) {
		cJSON_AddNumberToObject(s, "outbox_pending", (double)pending.n);
		ob_list_release(&pending);
	}
	cJSON_AddNumberToObject(s, "tls_handshakes", (double)rpc_connects(ag->rpc));
	cJSON_AddNumberToObject(s, "workers", ag->sv ? sv_workers(ag->sv) : 0);
	if (ag->last_error[0])
		cJSON_AddStringToObject(s, "last_error", ag->last_error);
	else
		cJSON_AddNullToObject(s, "last_error");
	return s;
}

static void reply(int fd, cJSON *o)
{
	char *text = o ? op_json_print(o, false) : NULL;

	if (text) {
		size_t len = strlen(text);
		const char *p = text;

		while (len > 0) {
			ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			p += w;
			len -= (size_t)w;
		}
		(void)send(fd, "\n", 1, MSG_NOSIGNAL);
	}
	cJSON_free(text);
	cJSON_Delete(o);
}

/* One request per connection: a JSON line {"cmd": "drain"|"undrain"|"status"}. */
void ctl_handle(struct agent *ag, int lfd)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		char buf[512];
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n = 0;
		cJSON *req = NULL, *out = NULL;
		const char *cmd;

		if (poll(&p, 1, 500) > 0)
			n = recv(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		req = cJSON_Parse(buf);
		cmd = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "cmd"));
		if (cmd && strcmp(cmd, "drain") == 0) {
			if (!ag->drain_local)
				op_log_info("agent", "drained locally (outpost-agent drain): no new leases");
			ag->drain_local = true;
			ag->hb_next = 0; /* tell the control plane now */
			sv_set_spares(ag->sv, false);
			out = ag_status_json(ag);
		} else if (cmd && strcmp(cmd, "undrain") == 0) {
			if (ag->drain_local)
				op_log_info("agent", "undrained locally (outpost-agent undrain)");
			ag->drain_local = false;
			ag->hb_next = 0;
			if (!ag_draining(ag)) {
				sv_set_spares(ag->sv, true);
				sv_prestart(ag->sv);
			}
			out = ag_status_json(ag);
		} else if (cmd && strcmp(cmd, "status") == 0) {
			out = ag_status_json(ag);
		} else {
			out = cJSON_CreateObject();
			cJSON_AddStringToObject(out, "error", "unknown command");
		}
		reply(fd, out);
		cJSON_Delete(req);
		close(fd);
	}
}

/* ---- the client side ----------------------------------------------------------------------- */

static int ctl_call(const char *state_dir, const char *cmd, cJSON **out)
{
	struct sockaddr_un sa;
	char req[64], buf[65536];
	size_t got = 0;
	int fd;

	if (sock_path(state_dir, &sa) < 0) {
		cli_error("state_dir %s is too long for a control socket", state_dir);
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		if (e == EACCES || e == EPERM)
			cli_error("cannot reach the agent: permission denied on %s: run as root or as "
				  "the agent's user",
				  sa.sun_path);
		else
			cli_error("the agent is not running (no control socket at %s): start it with "
				  "`systemctl start outpost-agent` or `outpost-agent run`",
				  sa.sun_path);
		return 1;
	}
	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}\n", cmd);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		cli_error("cannot talk to the agent: %s", strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0 || (got += (size_t)n) >= sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[got] = '\0';
	*out = cJSON_Parse(buf);
	if (*out == NULL) {
		cli_error("the agent gave no answer on %s", sa.sun_path);
		return 1;
	}
	return 0;
}

static const char *or_dash(const char *s)
{
	return s ? s : "-";
}

static void print_status(const cJSON *s)
{
	const cJSON *hb = cJSON_GetObjectItemCaseSensitive(s, "heartbeat");
	const cJSON *cert = cJSON_GetObjectItemCaseSensitive(s, "certificate");
	const cJSON *drain = cJSON_GetObjectItemCaseSensitive(s, "drain");
	const cJSON *l, *p;
	const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "last_error"));
	char why[128] = "";

#define S(o, k) or_dash(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive((o), (k))))
#define N(o, k) (cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive((o), (k))))
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(drain, "stopping")))
		snprintf(why, sizeof(why), " (stopping)");
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(drain, "local")))
		snprintf(why, sizeof(why), " (drained locally: outpost-agent undrain resumes)");
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(drain, "server")))
		snprintf(why, sizeof(why), " (drained on the control plane)");
	printf("Agent:           %s (%s), outpost-agent %s\n", S(s, "agent_id"), S(s, "hostname"),
	       S(s, "version"));
	printf("Control plane:   %s\n", S(s, "control_plane"));
	printf("State:           %s%s\n", S(s, "state"), why);
	printf("Tasks:           %.0f running, concurrency %.0f\n", N(s, "running"),
	       N(s, "concurrency"));
	cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "leases"))
	{
		printf("  %-24s %-24s %-18s %s %.0fs\n", S(l, "lease_id"), S(l, "task_id"),
		       S(l, "type"), S(l, "state"), N(l, "seconds"));
	}
	if (cJSON_GetObjectItemCaseSensitive(hb, "last_ok"))
		printf("Last heartbeat:  %s (%.0fs ago, %.0f ms), last result: %s\n",
		       S(hb, "last_ok"), N(hb, "seconds_ago"), N(hb, "latency_ms"),
		       S(hb, "last_result"));
	else
		printf("Last heartbeat:  none acknowledged yet (%s)\n", S(hb, "last_result"));
	if (cJSON_GetObjectItemCaseSensitive(cert, "not_after"))
		printf("Certificate:     expires %s (%.0f days), renewal due %s\n",
		       S(cert, "not_after"), N(cert, "days_left"), S(cert, "renew_at"));
	printf("Plugins:        ");
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(s, "plugins"))
	{
		printf(" %s %s", p->string, or_dash(cJSON_GetStringValue(p)));
	}
	printf("\nOutbox:          %.0f result(s) waiting for the control plane\n",
	       N(s, "outbox_pending"));
	printf("Connections:     %.0f TLS handshake(s) since start\n", N(s, "tls_handshakes"));
	printf("Last error:      %s\n", err ? err : "-");
#undef S
#undef N
}

static void ctl_usage(FILE *f, const char *command)
{
	if (strcmp(command, "status") == 0)
		fprintf(f, "usage: outpost-agent status [--config FILE] [--json]\n\n"
			   "Shows the running agent's state, leases, last heartbeat and its latency, and\n"
			   "certificate expiry, through its control socket (STATE_DIR/control.sock, mode\n"
			   "0600: run it as root or as the agent's user).\n\n"
			   "  --config FILE  the agent config (default /etc/outpost-agent/config.yaml)\n"
			   "  --json         one JSON object instead of the text\n");
	else if (strcmp(command, "drain") == 0)
		fprintf(f, "usage: outpost-agent drain [--config FILE]\n\n"
			   "Drains the running agent through its control socket: it takes no new leases,\n"
			   "keeps heartbeating (state draining) and lets running tasks finish. This lasts\n"
			   "until `outpost-agent undrain` or the agent's restart; `outpost-server agents\n"
			   "drain ID` drains it on the control plane instead, across restarts.\n\n"
			   "  --config FILE  the agent config (default /etc/outpost-agent/config.yaml)\n");
	else
		fprintf(f, "usage: outpost-agent undrain [--config FILE]\n\n"
			   "Undrains the running agent through its control socket: it takes leases again,\n"
			   "unless the control plane drained it (then: outpost-server agents undrain ID).\n\n"
			   "  --config FILE  the agent config (default /etc/outpost-agent/config.yaml)\n");
	fprintf(f, "\nExit status: 0 done, 1 the agent is not reachable, 2 bad arguments.\n");
}

int cmd_ctl(int argc, char **argv, const char *command)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = AG_DEFAULT_CONFIG;
	struct ag_config cfg;
	struct op_error err = {0};
	bool json = false;
	cJSON *out = NULL;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			ctl_usage(stdout, command);
			return 0;
		default:
			ctl_usage(stderr, command);
			return 2;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return 2;
	}
	if (ag_config_load(config, &cfg, &err) != OP_OK) {
		cli_error("%s", err.msg);
		ag_config_release(&cfg);
		return 2;
	}
	rc = ctl_call(cfg.state_dir, command, &out);
	if (rc == 0) {
		if (json || strcmp(command, "status") != 0) {
			char *text = json ? op_json_print(out, true) : NULL;

			if (text)
				printf("%s\n", text);
			else
				printf("%s: agent %s is %s\n", command,
				       or_dash(cJSON_GetStringValue(
					       cJSON_GetObjectItemCaseSensitive(out, "agent_id"))),
				       or_dash(cJSON_GetStringValue(
					       cJSON_GetObjectItemCaseSensitive(out, "state"))));
			cJSON_free(text);
		} else {
			print_status(out);
		}
	}
	cJSON_Delete(out);
	ag_config_release(&cfg);
	return rc;
}
