/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent run`: the daemon's loop, heartbeat, signals, drain, reload, certificate renewal. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "enroll.h"
#include "fsutil.h"
#include "heap.h"
#include "identity.h"
#include "log.h"
#include "outbox.h"
#include "secrets.h"
#include "units.h"
#include "workerproc.h"

#ifdef OUTPOST_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

#define HOUSEKEEPING_S 60.0
/* How long the agent keeps freed heap after its last task (see op_heap_retain). */
#define HEAP_DECAY_S 10.0

double ag_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SECONDS ± FRACTION, uniformly: spreads a fleet's calls so restarts do not synchronise it. */
double ag_jitter(double seconds, double fraction)
{
	double r = (double)random() / (double)RAND_MAX; /* not security-relevant */

	return seconds * (1 - fraction + 2 * fraction * r);
}

bool ag_draining(const struct agent *ag)
{
	return ag->drain_local || ag->drain_server || ag->stopping;
}

int ag_free_slots(const struct agent *ag)
{
	return ag->cfg.concurrency - lease_running(ag);
}

void ag_set_error(struct agent *ag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ag->last_error, sizeof(ag->last_error), fmt, ap);
	va_end(ap);
}

/* A terminal state (revoked, certificate beyond renewal): what runs is killed, the loop ends
 * with CODE, which the unit does not restart on. */
static void stop_terminal(struct agent *ag, int code, const char *why)
{
	lease_cancel_all(ag, why, true);
	ag->quit = true;
	ag->exit_code = code;
}

void ag_revoked(struct agent *ag, const char *reason)
{
	if (ag->quit)
		return;
	/* The seed's words, which operators search for. */
	op_log(OP_LOG_ERROR, NULL, "heartbeat rejected: agent not found or revoked");
	op_log_error("agent",
		     "the control plane says %s: this agent's registration was revoked or deleted. "
		     "Stopping; re-enroll with a new token (outpost-agent uninstall, then "
		     "outpost-agent install --control-plane URL --token NEW_TOKEN)",
		     reason);
	stop_terminal(ag, RUN_REVOKED, "the agent was revoked");
}

/* ---- certificate ------------------------------------------------------------------------- */

static void load_cert_times(struct agent *ag)
{
	char path[PATH_MAX];
	struct id_cert_info info;

	id_path(ag->cfg.state_dir, ID_CERT, path, sizeof(path));
	if (id_cert_info(path, &info, NULL) != OP_OK)
		return;
	ag->cert_not_before = info.not_before;
	ag->cert_not_after = info.not_after;
	/* Renew at about half the lifetime, jittered, with no restart (SPIRE's rhythm). */
	ag->cert_renew_at = ag_cert_renew_at(info.not_before, info.not_after,
					     (double)random() / ((double)RAND_MAX + 1));
}

static void cert_terminal(struct agent *ag, const char *why)
{
	op_log(OP_LOG_ERROR, NULL,
	       "certificate expired: %s. Create a new enrollment token and reinstall "
	       "(outpost-agent uninstall, then outpost-agent install --control-plane URL --token "
	       "NEW_TOKEN)",
	       why);
	stop_terminal(ag, RUN_CERT_EXPIRED, "the agent's certificate expired");
}

/* Rotates now; afterwards calls use new connections with the new identity. Returns the
 * rotation's op_rc; terminal outcomes (expired beyond the grace, revoked) stop the agent. */
static op_rc rotate(struct agent *ag)
{
	struct op_error err = {0};
	op_rc rc;

	op_log_info("identity", "renewing the client certificate (it expires in %.1f h)",
		    (ag->cert_not_after - tp_now()) / 3600);
	rc = ag_rotate_cert(&ag->cfg, &err);
	if (rc == OP_OK) {
		rpc_set_config(ag->rpc, &ag->tp, true);
		load_cert_times(ag);
		op_log_info("identity", "client certificate renewed");
	} else if (rc == OP_EPERM) {
		cert_terminal(ag, err.msg);
	} else if (rc == OP_ESTATE) {
		ag_revoked(ag, "agent_revoked");
	} else {
		op_log_error("identity", "certificate renewal failed: %s", err.msg);
		ag_set_error(ag, "certificate renewal: %s", err.msg);
	}
	return rc;
}

void ag_cert_expired(struct agent *ag)
{
	if (ag->cert_expired_seen || ag->quit)
		return;
	ag->cert_expired_seen = true;
	if (rotate(ag) == OP_OK)
		ag->cert_expired_seen = false;
	else if (!ag->quit)
		ag->cert_renew_at = tp_now() + 30; /* transient: try again soon */
}

void ag_cert_superseded(struct agent *ag)
{
	struct op_error err = {0};
	bool recovered = false;

	/* Our new certificate was used and the answer lost: finish that rotation. */
	if (ag_identity_recover(&ag->cfg, &recovered, &err) != OP_OK)
		op_log_warn("identity", "%s", err.msg);
	rpc_set_config(ag->rpc, &ag->tp, true);
	load_cert_times(ag);
}

/* ---- inventory: plugins and task types ----------------------------------------------------- */

/* Discovers plugins and builds a supervisor generation for them. */
static op_rc load_plugins(struct agent *ag, struct sv **out, struct op_error *err)
{
	struct dc_options d;
	struct dc_result found;
	struct sv_plugin_spec *specs = NULL;
	const char **types = NULL;
	size_t n = 0, nt = 0, total_types = 0;
	char cache[PATH_MAX];
	op_rc rc;

	memset(&d, 0, sizeof(d));
	d.dir = ag->cfg.plugins_dir;
	d.cfg = &ag->cfg;
	d.sv = &ag->svopts;
	ag_config_state_path(&ag->cfg, "plugin-cache.json", cache, sizeof(cache));
	d.cache_path = cache;
	rc = dc_discover(&d, &found, err);
	if (rc != OP_OK)
		return rc;
	for (size_t i = 0; i < found.n; i++)
		total_types += (size_t)cJSON_GetArraySize(dc_plugin_types(&found.v[i]));
	specs = calloc(found.n ? found.n : 1, sizeof(*specs));
	types = calloc(total_types ? total_types : 1, sizeof(*types));
	if (specs == NULL || types == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	cJSON_Delete(ag->task_types);
	cJSON_Delete(ag->plugin_versions);
	cJSON_Delete(ag->plugins_json);
	ag->task_types = cJSON_CreateArray();
	ag->plugin_versions = cJSON_CreateObject();
	ag->plugins_json = cJSON_CreateArray();
	for (size_t i = 0; i < found.n; i++) {
		const struct dc_plugin *p = &found.v[i];
		const cJSON *t, *ver = cJSON_GetObjectItemCaseSensitive(p->descriptor, "version");
		cJSON *pj, *pt;

		if (p->state != DC_LOADED) {
			if (p->state != DC_DISABLED)
				op_log_warn("plugins", "%s: %s: %s", p->file, dc_state_name(p->state),
					    p->reason ? p->reason : "");
			continue;
		}
		specs[n].name = dc_plugin_name(p);
		specs[n].path = p->file;
		specs[n].types = types + nt;
		specs[n].settings = ag_config_plugin_settings(&ag->cfg, specs[n].name);
		specs[n].spare = ag_plugin_switch_for(&ag->cfg.spare, specs[n].name);
		specs[n].fork_server = ag_plugin_switch_for(&ag->cfg.fork_server, specs[n].name);
		pj = cJSON_CreateObject();
		cJSON_AddStringToObject(pj, "name", specs[n].name);
		cJSON_AddStringToObject(pj, "version", cJSON_IsString(ver) ? ver->valuestring : "");
		pt = cJSON_AddArrayToObject(pj, "types");
		cJSON_ArrayForEach(t, dc_plugin_types(p))
		{
			const cJSON *tn = cJSON_GetObjectItemCaseSensitive(t, "name");

			if (!cJSON_IsString(tn))
				continue;
			types[nt++] = tn->valuestring;
			specs[n].n_types++;
			cJSON_AddItemToArray(ag->task_types, cJSON_CreateString(tn->valuestring));
			cJSON_AddItemToArray(pt, cJSON_CreateString(tn->valuestring));
		}
		cJSON_AddItemToArray(ag->plugins_json, pj);
		cJSON_AddStringToObject(ag->plugin_versions, specs[n].name,
					cJSON_IsString(ver) ? ver->valuestring : "");
		op_log_info("plugins", "loaded %s %s from %s", specs[n].name,
			    cJSON_IsString(ver) ? ver->valuestring : "", p->file);
		n++;
	}
	rc = sv_new(&ag->svopts, specs, n, out, err);
	if (rc == OP_OK) {
		dc_result_release(&ag->plugins);
		ag->plugins = found;
		memset(&found, 0, sizeof(found));
		ag->inventory_gen++;
	}
out:
	free(specs);
	free(types);
	dc_result_release(&found);
	return rc;
}

/* ---- change types ------------------------------------------------------------------------ */

static void inventory_done(void *ud, const struct sv_outcome *o)
{
	struct agent *ag = ud;
	const cJSON *types = cJSON_GetObjectItemCaseSensitive(o->result, "change_types");

	ag->inventory_job = NULL;
	if (o->status != SV_SUCCEEDED || !cJSON_IsArray(types)) {
		const cJSON *e, *errors = cJSON_GetObjectItemCaseSensitive(o->result, "errors");

		op_log_error("agent", "cannot read the change types: %s",
			     o->error ? o->error : "change.types returned no list");
		/* Every problem, not only the first the error names. */
		if (cJSON_GetArraySize(errors) > 1)
			cJSON_ArrayForEach(e, errors)
				if (cJSON_IsString(e))
					op_log_error("agent", "change types: %s", e->valuestring);
		if (ag->change_types != NULL)
			op_log_info("agent", "keeping the %d change type(s) read before",
				    cJSON_GetArraySize(ag->change_types));
		return;
	}
	cJSON_Delete(ag->change_types);
	ag->change_types = cJSON_Duplicate(types, true);
	ag->inventory_gen++;
	op_log_info("agent", "%d change type(s) available", cJSON_GetArraySize(types));
}

/* The control plane learns this agent's change types (name, parameter schema, digest of the
 * definition: decisions.md 13) from the plugin that serves change.types, asked at start and
 * at every reload. */
static void load_change_types(struct agent *ag)
{
	static const struct sv_events ev = {NULL, NULL, NULL, inventory_done, NULL};
	struct sv_task t = {"inventory", "change.types", "{}", NULL, 60};
	struct op_error err = {0};
	char ws[PATH_MAX];

	if (ag->inventory_job != NULL || sv_plugin_for_type(ag->sv, "change.types") == NULL)
		return;
	snprintf(ws, sizeof(ws), "%s/.inventory", ag->cfg.workspace_dir);
	t.workspace = ws;
	if (op_mkdir_p(ws, 0750, &err) != OP_OK ||
	    sv_start(ag->sv, &t, &ev, ag, &ag->inventory_job, &err) != OP_OK)
		op_log_error("agent", "cannot read the change types: %s", err.msg);
}

/* ---- heartbeat --------------------------------------------------------------------------- */

static void heartbeat_done(void *ud, const struct rpc_result *r)
{
	struct agent *ag = ud;
	const cJSON *v;
	char ts[40];

	ag->hb_call = NULL;
	if (r->aborted)
		return;
	metrics_observe_heartbeat(ag, r->latency, r->status == 200);
	if (r->status == 200) {
		bool was_draining = ag->drain_server;

		ag->hb_failures = 0;
		ag->hb_last_ok = tp_now();
		ag->hb_last_latency = r->latency;
		snprintf(ag->hb_last_result, sizeof(ag->hb_last_result), "ok");
		ag->inventory_acked = ag->hb_inventory_gen;
		v = cJSON_GetObjectItemCaseSensitive(r->json, "heartbeat_interval");
		if (cJSON_IsNumber(v) && v->valuedouble > 0)
			ag->hb_interval = v->valuedouble;
		v = cJSON_GetObjectItemCaseSensitive(r->json, "desired_state");
		if (cJSON_IsString(v))
			ag->drain_server = strcmp(v->valuestring, "drain") == 0;
		if (ag->drain_server != was_draining)
			op_log_info("agent", "the control plane %s this agent",
				    ag->drain_server ? "drained" : "undrained");
		v = cJSON_GetObjectItemCaseSensitive(r->json, "cancel");
		{
			const cJSON *id;

			cJSON_ArrayForEach(id, v)
			{
				if (cJSON_IsString(id))
					lease_cancel(ag, id->valuestring,
						     "cancelled on the control plane");
			}
		}
		v = cJSON_GetObjectItemCaseSensitive(r->json, "renew_cert");
		if (cJSON_IsTrue(v) && ag->cert_renew_at > tp_now())
			ag->cert_renew_at = tp_now();
		ag->hb_next = ag_now() + ag_jitter(ag->hb_interval, 0.2);
		return;
	}
	if (r->status == 403 && r->reason &&
	    (strcmp(r->reason, "agent_revoked") == 0 || strcmp(r->reason, "agent_not_found") == 0)) {
		ag_revoked(ag, r->reason);
		return;
	}
	if (r->status == 403 && r->reason && strcmp(r->reason, "cert_expired") == 0) {
		ag_cert_expired(ag);
		ag->hb_next = ag_now() + 1;
		return;
	}
	if (r->status == 403 && r->reason && strcmp(r->reason, "cert_superseded") == 0) {
		ag_cert_superseded(ag);
		ag->hb_next = ag_now() + 1;
		return;
	}
	/* 5xx, 429, maintenance, network: back off with jitter; never exit, never crash. */
	ag->hb_failures++;
	{
		double backoff = pow(2, ag->hb_failures < 5 ? ag->hb_failures : 5);

		if (backoff > ag->hb_interval)
			backoff = ag->hb_interval;
		ag->hb_next = ag_now() + ag_jitter(backoff, 0.5);
		tp_format_time(tp_now(), ts, sizeof(ts));
		snprintf(ag->hb_last_result, sizeof(ag->hb_last_result), "%s at %s",
			 r->message ? r->message : "failed", ts);
		ag_set_error(ag, "heartbeat: %s", r->message ? r->message : "no answer");
		op_log_warn("heartbeat", "heartbeat failed: %s (HTTP %ld); retrying in %.1fs",
			    r->message ? r->message : "no answer", r->status, backoff);
	}
}

static void heartbeat(struct agent *ag)
{
	cJSON *body = cJSON_CreateObject(), *versions;
	int running = lease_running(ag);

	if (body == NULL)
		return;
	cJSON_AddStringToObject(body, "state",
				ag_draining(ag) ? "draining" : running ? "busy" : "idle");
	cJSON_AddItemToObject(body, "running", lease_running_ids(ag));
	cJSON_AddNumberToObject(body, "slots", ag_free_slots(ag) > 0 ? ag_free_slots(ag) : 0);
	versions = cJSON_AddObjectToObject(body, "versions");
	cJSON_AddStringToObject(versions, "agent", OUTPOST_VERSION);
	cJSON_AddItemToObject(versions, "plugins", cJSON_Duplicate(ag->plugin_versions, true));
	ag->hb_inventory_gen = ag->inventory_acked;
	if (ag->inventory_gen != ag->inventory_acked) {
		ag->hb_inventory_gen = ag->inventory_gen;
		cJSON_AddItemToObject(body, "task_types", cJSON_Duplicate(ag->task_types, true));
		cJSON_AddItemToObject(body, "plugins", cJSON_Duplicate(ag->plugins_json, true));
		if (ag->change_types)
			cJSON_AddItemToObject(body, "change_types",
					      cJSON_Duplicate(ag->change_types, true));
	}
	cJSON_AddItemToObject(body, "health", health_report(ag));
	ag->hb_call = rpc_start(ag->rpc, "POST", "/agent/heartbeat", body, 0, heartbeat_done, ag);
	if (ag->hb_call == NULL)
		ag->hb_next = ag_now() + 1;
	cJSON_Delete(body);
}

/* ---- signals, reload, drain -------------------------------------------------------------- */

static void reload(struct agent *ag)
{
	struct ag_config fresh;
	struct op_error err = {0};
	struct sv *next = NULL;

	op_log_info("agent", "SIGHUP: reloading %s and rescanning plugins", ag->config_path);
	if (ag_config_load(ag->config_path, &fresh, &err) != OP_OK) {
		op_log_error("agent", "reload refused, keeping the running config: %s", err.msg);
		ag_config_release(&fresh);
		return;
	}
	/* What a reload changes: logging, concurrency, limits, plugins and secrets. Identity,
	 * state dir and control plane need a restart. */
	if (strcmp(fresh.state_dir, ag->cfg.state_dir) != 0 ||
	    (fresh.control_plane && ag->cfg.control_plane &&
	     strcmp(fresh.control_plane, ag->cfg.control_plane) != 0))
		op_log_warn("agent", "state_dir and control_plane changes take effect at restart");
	op_log_set_level(fresh.log_level);
	{
		/* Keep the running control plane, identity and places. */
		char *keep[] = {ag->cfg.state_dir, ag->cfg.control_plane, ag->cfg.workspace_dir};
		char *take[] = {fresh.state_dir, fresh.control_plane, fresh.workspace_dir};

		fresh.state_dir = keep[0];
		fresh.control_plane = keep[1];
		fresh.workspace_dir = keep[2];
		ag->cfg.state_dir = take[0];
		ag->cfg.control_plane = take[1];
		ag->cfg.workspace_dir = take[2];
	}
	{
		struct ag_config old = ag->cfg;

		ag->cfg = fresh;
		fresh = old;
	}
	ag_config_release(&fresh);
	ag->svopts.memory_limit = ag->cfg.memory_limit;
	ag->svopts.spare_heap = ag->cfg.spare_heap;
	ag->svopts.max_tasks = ag->cfg.concurrency;
	ag->svopts.output_limit = ag->cfg.output_limit;
	ag->svopts.grace = ag->cfg.worker_grace;
	ag->svopts.start_timeout = ag->cfg.worker_start_timeout;
	ag->svopts.log_level = ag->cfg.log_level;
	ag->svopts.proxy = ag->cfg.https_proxy;
	ag->svopts.no_proxy = ag->cfg.no_proxy;
	ag->svopts.ca_file = ag->cfg.ca_file;
	ag->svopts.change_types_dir = ag->cfg.change_types_dir;
	ag->svopts.secret_ud = &ag->cfg;
	op_log_redact_clear();
	ag_secrets_redact_all(&ag->cfg);
	if (load_plugins(ag, &next, &err) != OP_OK) {
		op_log_error("agent", "plugin rescan failed, keeping the loaded plugins: %s", err.msg);
		return;
	}
	/* The old generation finishes its tasks; new tasks go to the new one. */
	sv_set_spares(ag->sv, false);
	for (size_t i = 0; i < OP_ARRAY_LEN(ag->old_sv); i++)
		if (ag->old_sv[i] == NULL) {
			ag->old_sv[i] = ag->sv;
			ag->sv = NULL;
			break;
		}
	if (ag->sv != NULL) /* too many generations in flight: the oldest is dropped hard */
		sv_free(ag->sv);
	ag->sv = next;
	ag->inventory_job = NULL; /* the old generation reports to nobody now */
	load_change_types(ag);
	if (!ag_draining(ag))
		sv_prestart(ag->sv);
}

static void start_stopping(struct agent *ag)
{
	ag->stopping = true;
	ag->stop_deadline = ag_now() + ag->cfg.drain_grace;
	ag->hb_next = 0; /* tell the control plane now */
	sv_set_spares(ag->sv, false);
	op_log_info("agent",
		    "stopping: no new leases; %d running task(s) may finish within %.0fs "
		    "(drain_grace); send SIGTERM again to cancel them now",
		    lease_running(ag), ag->cfg.drain_grace);
#ifdef OUTPOST_HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
#endif
}

static void on_signal(struct agent *ag)
{
	struct signalfd_siginfo si;

	while (read(ag->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!ag->stopping) {
				start_stopping(ag);
			} else if (!ag->stop_now) {
				ag->stop_now = true;
				op_log_info("agent", "second %s: cancelling running tasks now",
					    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
				lease_cancel_all(ag, "the agent is shutting down", false);
			}
			break;
		case SIGHUP:
			reload(ag);
			break;
		default:
			break;
		}
	}
}

/* ---- start-up ---------------------------------------------------------------------------- */

/* At every start (decisions.md 3): a skewed clock is reported with its figure and the fix. */
static void check_clock(struct agent *ag)
{
	struct ag_outcome o;
	struct op_error err = {0};

	memset(&o, 0, sizeof(o));
	if (ag_clock_check(&ag->tp, &o, &err) == OP_OK)
		return;
	if (o.clock)
		op_log(OP_LOG_ERROR, NULL, "%s%s%s", err.msg, o.hint[0] ? " " : "", o.hint);
	else
		op_log_warn("agent", "cannot read the control plane's time: %s", err.msg);
}

static int agent_init(struct agent *ag, struct op_error *err)
{
	struct utsname un;
	sigset_t mask;
	const char *host;

	/* Blocked before any thread exists (the spawner, curl's resolver): every thread inherits
	 * the mask, so these signals only ever arrive through the signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ag_config_load(ag->config_path, &ag->cfg, err) != OP_OK)
		return RUN_USAGE;
	op_log_set_level(ag->cfg.log_level);
	if (ag->cfg.log_file &&
	    op_log_set_file(ag->cfg.log_file, ag->cfg.log_max_size, ag->cfg.log_keep, err) != OP_OK)
		return RUN_USAGE;
	ag_warn_insecure(&ag->cfg);
	{
		bool recovered = false;

		/* A rotation a crash interrupted is finished (or undone) first. */
		if (ag_identity_recover(&ag->cfg, &recovered, err) != OP_OK)
			op_log_warn("identity", "%s", err->msg);
		if (recovered)
			op_log_info("identity", "finished a certificate rotation interrupted earlier");
	}
	if (id_load_agent(ag->cfg.state_dir, &ag->identity, err) != OP_OK)
		return RUN_USAGE;
	op_strlcpy(ag->agent_id, id_agent_id(ag->identity), sizeof(ag->agent_id));
	host = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ag->identity, "hostname"));
	if (host == NULL && uname(&un) == 0)
		host = un.nodename;
	op_strlcpy(ag->hostname, host ? host : "localhost", sizeof(ag->hostname));
	ag->hb_interval = 15;
	ag->lease_ttl = 60;
	ag->long_poll = 25;
	{
		const cJSON *v;

		v = cJSON_GetObjectItemCaseSensitive(ag->identity, "heartbeat_interval");
		if (cJSON_IsNumber(v) && v->valuedouble > 0)
			ag->hb_interval = v->valuedouble;
		v = cJSON_GetObjectItemCaseSensitive(ag->identity, "lease_ttl");
		if (cJSON_IsNumber(v) && v->valuedouble > 0)
			ag->lease_ttl = v->valuedouble;
		v = cJSON_GetObjectItemCaseSensitive(ag->identity, "long_poll");
		if (cJSON_IsNumber(v) && v->valuedouble >= 0)
			ag->long_poll = v->valuedouble;
	}
	if (tp_config_from(&ag->tp, &ag->cfg, true, err) != OP_OK)
		return RUN_USAGE;
	if (rpc_new(&ag->tp, &ag->rpc, err) != OP_OK)
		return RUN_ERROR;
	load_cert_times(ag);
	if (wk_locate(ag->cfg.worker_path, ag->worker, sizeof(ag->worker), err) != OP_OK)
		return RUN_ERROR;
	if (op_mkdir_p(ag->cfg.workspace_dir, 0750, err) != OP_OK ||
	    ob_init(ag->cfg.state_dir, err) != OP_OK)
		return RUN_ERROR;
	ag->svopts.worker_path = ag->worker;
	ag->svopts.memory_limit = ag->cfg.memory_limit;
	ag->svopts.spare_heap = ag->cfg.spare_heap;
	ag->svopts.max_tasks = ag->cfg.concurrency;
	ag->svopts.output_limit = ag->cfg.output_limit;
	ag->svopts.grace = ag->cfg.worker_grace;
	ag->svopts.start_timeout = ag->cfg.worker_start_timeout;
	ag->svopts.log_level = ag->cfg.log_level;
	ag->svopts.proxy = ag->cfg.https_proxy;
	ag->svopts.no_proxy = ag->cfg.no_proxy;
	ag->svopts.ca_file = ag->cfg.ca_file;
	ag->svopts.secret = ag_secret_lookup;
	ag->svopts.secret_ud = &ag->cfg;
	ag->svopts.agent_id = ag->agent_id;
	ag->svopts.hostname = ag->hostname;
	id_path(ag->cfg.state_dir, ID_APPROVAL, ag->approval_key, sizeof(ag->approval_key));
	ag->svopts.approval_key = ag->approval_key;
	ag->svopts.change_types_dir = ag->cfg.change_types_dir;
	ag_secrets_redact_all(&ag->cfg);
	wk_become_subreaper();
	if (load_plugins(ag, &ag->sv, err) != OP_OK)
		return RUN_ERROR;
	ag->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ag->sigfd < 0) {
		op_fail(err, OP_EIO, "signalfd: %s", strerror(errno));
		return RUN_ERROR;
	}
	ag->ctl_fd = ctl_listen(ag);
	ag->metrics_fd = metrics_listen(ag);
	srandom((unsigned)(getpid() ^ (unsigned)time(NULL)));
	lease_load_outbox(ag);
	check_clock(ag);
	op_log_info("agent",
		    "outpost-agent %s running as %s on %s; control plane %s; %d task type(s); "
		    "concurrency %d",
		    OUTPOST_VERSION, ag->agent_id, ag->hostname, ag->cfg.control_plane,
		    cJSON_GetArraySize(ag->task_types), ag->cfg.concurrency);
	load_change_types(ag);
	/* Results of megabytes, one task after another: the heap they were built in is kept for
	 * the next one (no page faults on the result path) and given back once tasks stop. */
	ag->heap_kept = op_heap_retain(0);
	if (!ag->heap_kept)
		op_log_debug("agent", "the allocator keeps its own heap settings");
	sv_prestart(ag->sv);
	/* The first heartbeat goes out at once; later ones every interval ± 20 %. */
	ag->hb_next = 0;
	ag->lease_next = 0;
	return RUN_OK;
}

static void agent_release(struct agent *ag)
{
	for (size_t i = 0; i < OP_ARRAY_LEN(ag->old_sv); i++)
		sv_free(ag->old_sv[i]);
	sv_free(ag->sv);
	rpc_free(ag->rpc);
	lease_free_all(ag);
	dc_result_release(&ag->plugins);
	tp_config_release(&ag->tp);
	cJSON_Delete(ag->identity);
	cJSON_Delete(ag->task_types);
	cJSON_Delete(ag->plugin_versions);
	cJSON_Delete(ag->plugins_json);
	cJSON_Delete(ag->change_types);
	metrics_release(&ag->m);
	if (ag->sigfd > 0)
		close(ag->sigfd);
	if (ag->ctl_fd > 0) {
		char path[PATH_MAX];

		close(ag->ctl_fd);
		ag_config_state_path(&ag->cfg, "control.sock", path, sizeof(path));
		unlink(path);
	}
	if (ag->metrics_fd > 0)
		close(ag->metrics_fd);
	ag_config_release(&ag->cfg);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static double min_due(double a, double b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static int loop(struct agent *ag)
{
	struct pollfd *pfds = NULL;
	struct curl_waitfd *wfds = NULL;
	int cap = 0;
#ifdef OUTPOST_HAVE_SYSTEMD
	uint64_t wd_usec = 0;
	double wd_next = 0;

	if (sd_watchdog_enabled(0, &wd_usec) <= 0)
		wd_usec = 0;
	sd_notify(0, "READY=1\nSTATUS=running");
#endif
	for (;;) {
		struct sv *gens[1 + OP_ARRAY_LEN(ag->old_sv)];
		int ngens = 0, n = 0, need, timeout_ms;
		double now = ag_now(), due;
		struct op_error err = {0};

		/* Timers. */
		if (!ag->quit && ag->hb_call == NULL && now >= ag->hb_next)
			heartbeat(ag);
		lease_tick(ag);
		if (!ag->quit && ag->cert_renew_at > 0 && tp_now() >= ag->cert_renew_at) {
			if (rotate(ag) != OP_OK && !ag->quit)
				ag->cert_renew_at = tp_now() + ag_jitter(600, 0.2);
		}
		if (now >= ag->next_housekeeping) {
			health_housekeeping(ag);
			ag->next_housekeeping = now + HOUSEKEEPING_S;
		}
		if (!ag->heap_kept) {
			/* nothing kept, nothing to give back */
		} else if (ag->tasks != NULL) {
			ag->heap_release_at = now + HEAP_DECAY_S;
		} else if (ag->heap_release_at > 0 && now >= ag->heap_release_at) {
			op_log_debug("agent", "no task for %.0fs: the heap kept for results goes back "
				     "to the system", HEAP_DECAY_S);
			op_heap_release();
			ag->heap_release_at = 0;
		}
		/* Old supervisor generations go once their tasks are done. */
		for (size_t i = 0; i < OP_ARRAY_LEN(ag->old_sv); i++)
			if (ag->old_sv[i] && sv_running(ag->old_sv[i]) == 0) {
				sv_free(ag->old_sv[i]);
				ag->old_sv[i] = NULL;
			}
		/* Stopping: when nothing runs (and what is left to report had its chance). */
		if (ag->stopping && !ag->stop_now && now >= ag->stop_deadline && lease_running(ag) > 0) {
			op_log_warn("agent", "drain_grace passed: cancelling %d running task(s)",
				    lease_running(ag));
			ag->stop_now = true;
			lease_cancel_all(ag, "the agent is shutting down (drain_grace passed)", false);
		}
		if (ag->stopping && lease_running(ag) == 0) {
			bool delivering = false;

			for (const struct ag_task *t = ag->tasks; t; t = t->next)
				if (t->complete_call || t->state == T_FINISHING)
					delivering = true;
			if (!delivering || now >= ag->stop_deadline + 5) {
				op_log_info("agent", "stopped%s",
					    delivering ? " (undelivered results stay in the outbox)" : "");
				ag->quit = true;
			}
		}
		if (ag->quit)
			break;
		/* What to wait for: every supervisor generation alive now (the timers above may
		 * have freed one, or a reload made a new one). */
		gens[ngens++] = ag->sv;
		for (size_t i = 0; i < OP_ARRAY_LEN(ag->old_sv); i++)
			if (ag->old_sv[i])
				gens[ngens++] = ag->old_sv[i];
		need = 4;
		for (int g = 0; g < ngens; g++)
			need += sv_max_pollfds(gens[g]);
		if (need > cap) {
			struct pollfd *p = realloc(pfds, (size_t)need * sizeof(*p));
			struct curl_waitfd *w = realloc(wfds, (size_t)need * sizeof(*w));

			if (p)
				pfds = p;
			if (w)
				wfds = w;
			if (p == NULL || w == NULL)
				break;
			cap = need;
		}
		for (int g = 0; g < ngens; g++)
			n += sv_pollfds(gens[g], pfds + n, cap - n - 3);
		pfds[n].fd = ag->sigfd;
		pfds[n++].events = POLLIN;
		if (ag->ctl_fd >= 0) {
			pfds[n].fd = ag->ctl_fd;
			pfds[n++].events = POLLIN;
		}
		if (ag->metrics_fd >= 0) {
			pfds[n].fd = ag->metrics_fd;
			pfds[n++].events = POLLIN;
		}
		for (int i = 0; i < n; i++) {
			wfds[i].fd = pfds[i].fd;
			wfds[i].events = (short)pfds[i].events;
			wfds[i].revents = 0;
		}
		due = ag->hb_call ? 0 : ag->hb_next;
		due = min_due(due, lease_next_timer(ag));
		due = min_due(due, ag->next_housekeeping);
		due = min_due(due, ag->heap_release_at);
		if (ag->stopping)
			due = min_due(due, ag->stop_deadline);
		timeout_ms = due > 0 ? (int)ceil((due - now) * 1000) : 60000;
		if (timeout_ms < 0)
			timeout_ms = 0;
		if (ag->cert_renew_at > 0) {
			double c = (ag->cert_renew_at - tp_now()) * 1000;

			if (c < timeout_ms)
				timeout_ms = c < 0 ? 0 : (int)c;
		}
		for (int g = 0; g < ngens; g++) {
			int t = sv_timeout_ms(gens[g]);

			if (t >= 0 && t < timeout_ms)
				timeout_ms = t;
		}
#ifdef OUTPOST_HAVE_SYSTEMD
		if (wd_usec) {
			if (now >= wd_next) {
				sd_notify(0, "WATCHDOG=1");
				wd_next = now + (double)wd_usec / 2e6;
			}
			if ((wd_next - now) * 1000 < timeout_ms)
				timeout_ms = (int)((wd_next - now) * 1000) + 1;
		}
#endif
		if (rpc_poll(ag->rpc, wfds, (unsigned)n, timeout_ms, &err) != OP_OK) {
			op_log_error("agent", "%s", err.msg);
			usleep(100000);
			continue;
		}
		for (int i = 0; i < n; i++)
			pfds[i].revents = wfds[i].revents;
		/* Workers first: a signal (SIGHUP: a new generation) may change the generations. */
		for (int g = 0; g < ngens; g++) {
			sv_handle(gens[g], pfds, n);
			sv_tick(gens[g]);
		}
		for (int i = 0; i < n; i++) {
			if (pfds[i].revents == 0)
				continue;
			if (pfds[i].fd == ag->sigfd)
				on_signal(ag);
			else if (pfds[i].fd == ag->ctl_fd)
				ctl_handle(ag, ag->ctl_fd);
			else if (pfds[i].fd == ag->metrics_fd)
				metrics_handle(ag, ag->metrics_fd);
		}
	}
	free(pfds);
	free(wfds);
	return ag->exit_code;
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent run [--config FILE] [--log-level LEVEL]\n"
		"\n"
		"Runs the agent: heartbeats, leases tasks and runs them in workers until stopped.\n"
		"SIGTERM drains (no new leases; running tasks finish within drain_grace, then are\n"
		"cancelled); a second SIGTERM cancels at once. SIGHUP reloads the config and\n"
		"rescans plugins.\n"
		"\n"
		"  --config FILE      the agent config (default %s)\n"
		"  --log-level LEVEL  error, warn, info or debug (overrides log.level)\n"
		"\n"
		"Exit status: 0 stopped, 1 could not start, 2 bad config or arguments, 3 the agent was\n"
		"revoked or deleted on the control plane, 4 its certificate expired beyond renewal.\n",
		AG_DEFAULT_CONFIG);
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct agent ag;
	struct op_error err = {0};
	const char *level = NULL;
	int c, rc;

	memset(&ag, 0, sizeof(ag));
	ag.sigfd = ag.ctl_fd = ag.metrics_fd = -1;
	ag.config_path = AG_DEFAULT_CONFIG;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ag.config_path = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'h':
			run_usage(stdout);
			return RUN_OK;
		default:
			run_usage(stderr);
			return RUN_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return RUN_USAGE;
	}
	if (level && op_log_level_parse(level) < 0) {
		cli_error("--log-level: expected error, warn, info or debug, got \"%s\"", level);
		return RUN_USAGE;
	}
	rc = agent_init(&ag, &err);
	if (level) {
		ag.cfg.log_level = op_log_level_parse(level);
		op_log_set_level(ag.cfg.log_level);
	}
	if (rc != RUN_OK) {
		op_log(OP_LOG_ERROR, NULL, "%s", err.msg);
		agent_release(&ag);
		return rc;
	}
	rc = loop(&ag);
	agent_release(&ag);
	return rc;
}
