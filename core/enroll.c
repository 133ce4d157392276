/* SPDX-License-Identifier: Apache-2.0 */
/* Enrollment, certificate rotation with recovery, deregistration and GET /agent/self. */
#include "enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "identity.h"
#include "jsonprint.h"
#include "log.h"
#include "secrets.h"
#include "supervisor.h"
#include "workerproc.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

#define LOCK_NAME "rotate.lock"

/* ---- small helpers ----------------------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* As root, gives PATH the owner of REF (the agent's user owns its state dir). */
static void match_owner(const char *path, const char *ref)
{
	struct stat st;

	if (geteuid() != 0 || stat(ref, &st) < 0)
		return;
	if (chown(path, st.st_uid, st.st_gid) < 0)
		op_log_warn("identity", "cannot give %s to uid %u: %s", path, (unsigned)st.st_uid,
			    strerror(errno));
}

static void set_reason(struct ag_outcome *o, const char *reason)
{
	snprintf(o->reason, sizeof(o->reason), "%s", reason ? reason : "");
}

static const char *config_flag(const char *config, char *buf, size_t size)
{
	if (config == NULL || strcmp(config, AG_DEFAULT_CONFIG) == 0)
		return "";
	snprintf(buf, size, " --config %s", config);
	return buf;
}

void ag_reason_hint(const char *reason, const char *config, char *out, size_t size)
{
	char cf[PATH_MAX + 16];
	const char *c = config_flag(config, cf, sizeof(cf));

	out[0] = '\0';
	if (reason == NULL)
		return;
	if (strcmp(reason, "agent_revoked") == 0 || strcmp(reason, "agent_not_found") == 0 ||
	    strcmp(reason, "cert_expired") == 0 || strcmp(reason, "cert_superseded") == 0 ||
	    strcmp(reason, "cert_untrusted") == 0)
		snprintf(out, size,
			 "%s: make a new enrollment token on the control plane (outpost-server token "
			 "create) and enroll this host again:\n"
			 "  outpost-agent uninstall%s\n"
			 "  outpost-agent install --control-plane URL --token-file FILE",
			 strcmp(reason, "cert_expired") == 0
				 ? "the certificate expired longer ago than the control plane accepts "
				   "for a rotation"
			 : strcmp(reason, "cert_superseded") == 0
				 ? "the control plane switched to a newer certificate this host does "
				   "not have"
			 : strcmp(reason, "cert_untrusted") == 0
				 ? "the control plane does not recognise this agent's certificate "
				   "(another control plane, or its CA changed)"
				 : "the agent was revoked or deleted on the control plane",
			 c);
	else if (strcmp(reason, "cert_not_yet_valid") == 0)
		snprintf(out, size,
			 "the host's clock or the control plane's is wrong: synchronize them with NTP "
			 "(timedatectl set-ntp true; timedatectl status)");
	else if (strcmp(reason, "cert_required") == 0)
		snprintf(out, size,
			 "the agent's certificate was not sent: run `outpost-agent check%s`", c);
	else if (strcmp(reason, "overloaded") == 0 || strcmp(reason, "shutting_down") == 0 ||
		 strcmp(reason, "store_unavailable") == 0)
		snprintf(out, size, "the control plane is busy or restarting: try again in a minute");
	else if (strcmp(reason, "bad_csr") == 0 || strcmp(reason, "invalid_field") == 0 ||
		 strcmp(reason, "unknown_field") == 0 || strcmp(reason, "bad_json") == 0)
		snprintf(out, size,
			 "the control plane refused what this agent sent: check that the agent "
			 "(outpost-agent version) and the control plane (GET /health) are compatible");
}

void ag_warn_insecure(const struct ag_config *cfg)
{
	if (!cfg->insecure_skip_verify)
		return;
	op_log_warn(NULL,
		    "INSECURE: TLS verification of the control plane is OFF (insecure_skip_verify): "
		    "anyone on the network path to %s can impersonate it, take this agent's "
		    "credentials and send it tasks",
		    cfg->control_plane ? cfg->control_plane : "the control plane");
	op_log_warn(NULL, "INSECURE: use it for tests only; trust the control plane's CA with "
			  "--ca-cert FILE (ca_file in the config) instead");
}

/* Fills O and ERR for a request that got no HTTP answer. */
static op_rc transport_failed(op_rc rc, const struct tp_response *r, struct ag_outcome *o)
{
	const char *h = tp_hint(r->fail);

	o->net = r->fail;
	o->status = 0;
	snprintf(o->hint, sizeof(o->hint), "%s", h ? h : "");
	return rc;
}

/* ---- clocks ------------------------------------------------------------------------------ */

op_rc ag_clock_check(const struct tp_config *tc, struct ag_outcome *o, struct op_error *err)
{
	struct tp_response r;
	char host_t[40], srv_t[40];
	double skew = 0, now;
	op_rc rc;

	rc = tp_clock_skew(tc, &skew, &r, err);
	if (rc != OP_OK) {
		if (r.fail != TP_OK)
			transport_failed(rc, &r, o);
		else
			o->status = r.status;
		tp_response_release(&r);
		return rc;
	}
	tp_response_release(&r);
	o->skew = skew;
	o->skew_measured = true;
	if (fabs(skew) <= AG_MAX_CLOCK_SKEW)
		return OP_OK;
	now = tp_now();
	tp_format_time(now, host_t, sizeof(host_t));
	tp_format_time(now - skew, srv_t, sizeof(srv_t));
	o->clock = true;
	snprintf(o->hint, sizeof(o->hint),
		 "clock skew: this host's clock is %.0f s %s the control plane's (host %s, control "
		 "plane %s); more than %.0f s apart, certificates are refused\n"
		 "fix: synchronize the clock with NTP: timedatectl set-ntp true, then timedatectl "
		 "status (or chronyc makestep)",
		 fabs(skew), skew < 0 ? "behind" : "ahead of", host_t, srv_t, AG_MAX_CLOCK_SKEW);
	if (skew < 0)
		return op_fail(err, OP_ETLS, "certificate validation error: certificate not yet valid");
	return op_fail(err, OP_ETLS, "clock skew too large: host is %.0f s ahead of the control plane",
		       skew);
}

/* ---- plugins ----------------------------------------------------------------------------- */

op_rc ag_plugins_scan(const struct ag_config *cfg, struct dc_result *out, struct op_error *err)
{
	char worker[PATH_MAX];
	struct sv_options sv;
	struct dc_options d;
	op_rc rc;

	rc = wk_locate(cfg->worker_path, worker, sizeof(worker), err);
	if (rc != OP_OK)
		return rc;
	memset(&sv, 0, sizeof(sv));
	sv.worker_path = worker;
	sv.memory_limit = cfg->memory_limit;
	sv.output_limit = cfg->output_limit;
	sv.grace = cfg->worker_grace;
	sv.start_timeout = cfg->worker_start_timeout;
	sv.log_level = cfg->log_level;
	sv.proxy = cfg->https_proxy;
	sv.no_proxy = cfg->no_proxy;
	sv.ca_file = cfg->ca_file;
	sv.secret = ag_secret_lookup;
	sv.secret_ud = (void *)cfg;
	memset(&d, 0, sizeof(d));
	d.dir = cfg->plugins_dir;
	d.cfg = cfg;
	d.sv = &sv;
	return dc_discover(&d, out, err);
}

cJSON *ag_plugins_report(const struct dc_result *r)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; arr && i < r->n; i++) {
		const struct dc_plugin *p = &r->v[i];
		cJSON *o, *types;
		const cJSON *t;
		const char *version = jstr(p->descriptor, "version");

		if (p->state != DC_LOADED)
			continue;
		o = cJSON_CreateObject();
		if (o == NULL || !cJSON_AddItemToArray(arr, o))
			break;
		cJSON_AddStringToObject(o, "name", dc_plugin_name(p));
		cJSON_AddStringToObject(o, "version", version ? version : "");
		types = cJSON_AddArrayToObject(o, "types");
		cJSON_ArrayForEach(t, dc_plugin_types(p))
		{
			const char *n = jstr(t, "name");

			if (n)
				cJSON_AddItemToArray(types, cJSON_CreateString(n));
		}
	}
	return arr;
}

/* ---- enrollment -------------------------------------------------------------------------- */

void ag_identity_remove(const char *state_dir)
{
	static const enum id_file files[] = {ID_KEY,	  ID_CERT,    ID_CA,	    ID_APPROVAL,
					     ID_KEY_NEW, ID_CERT_NEW, ID_AGENT};
	char path[PATH_MAX];

	for (size_t i = 0; i < OP_ARRAY_LEN(files); i++) {
		id_path(state_dir, files[i], path, sizeof(path));
		(void)unlink(path);
	}
	snprintf(path, sizeof(path), "%s/" LOCK_NAME, state_dir);
	(void)unlink(path);
	(void)op_fsync_parent(path);
}

static const char *go_arch(const char *machine)
{
	if (strcmp(machine, "x86_64") == 0)
		return "amd64";
	if (strcmp(machine, "aarch64") == 0)
		return "arm64";
	if (strncmp(machine, "armv7", 5) == 0)
		return "arm";
	if (strcmp(machine, "i686") == 0 || strcmp(machine, "i386") == 0)
		return "386";
	return machine;
}

/* The body of POST /agent/enroll: token, CSR, what the host is and what it serves. */
static cJSON *enroll_body(const struct ag_enroll_req *req, const char *csr, const char *hostname)
{
	const struct ag_config *cfg = req->cfg;
	cJSON *b = cJSON_CreateObject(), *tags;
	struct utsname u;

	if (b == NULL)
		return NULL;
	if (uname(&u) < 0)
		snprintf(u.machine, sizeof(u.machine), "unknown");
	cJSON_AddStringToObject(b, "token", req->token);
	cJSON_AddStringToObject(b, "csr", csr);
	cJSON_AddStringToObject(b, "hostname", hostname);
	cJSON_AddStringToObject(b, "os", "linux");
	cJSON_AddStringToObject(b, "arch", go_arch(u.machine));
	cJSON_AddStringToObject(b, "version", OUTPOST_VERSION);
	if (cfg->pool)
		cJSON_AddStringToObject(b, "pool", cfg->pool);
	if (cfg->environment)
		cJSON_AddStringToObject(b, "environment", cfg->environment);
	tags = cJSON_AddArrayToObject(b, "tags");
	for (size_t i = 0; tags && i < cfg->tags.n; i++)
		cJSON_AddItemToArray(tags, cJSON_CreateString(cfg->tags.v[i]));
	cJSON_AddItemToObject(b, "plugins", req->plugins ? cJSON_Duplicate(req->plugins, true)
							  : cJSON_CreateArray());
	return b;
}

/* Overwrites the token inside BODY before it is freed. */
static void wipe_token(cJSON *body)
{
	cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "token");

	if (cJSON_IsString(t) && t->valuestring)
		explicit_bzero(t->valuestring, strlen(t->valuestring));
}

/* The refusal of POST /agent/enroll, as the seeds word it. */
static op_rc enroll_refused(const struct tp_config *tc, const struct tp_response *r,
			    struct ag_outcome *o, struct op_error *err)
{
	const char *reason = tp_reason(r), *msg = tp_message(r);

	o->status = r->status;
	set_reason(o, reason);
	if (reason == NULL) {
		snprintf(o->hint, sizeof(o->hint),
			 "check that --control-plane is the URL of the control plane (it answers GET "
			 "/health with its version)");
		return op_fail(err, OP_EPROTO,
			       "Post \"%s/agent/enroll\": the answer (HTTP %ld) is not a control "
			       "plane's",
			       tc->base_url, r->status);
	}
	if (strcmp(reason, "token_used") == 0) {
		snprintf(o->hint, sizeof(o->hint),
			 "enrollment tokens are single-use: make a new one on the control plane "
			 "(outpost-server token create) and run install again with it");
		return op_fail(err, OP_EREMOTE, "token has already been used");
	}
	if (strcmp(reason, "token_invalid") == 0)
		snprintf(o->hint, sizeof(o->hint),
			 "copy the whole token (oe_ and 32 letters and digits) from the control plane "
			 "that made it, or make a new one: outpost-server token create");
	else if (strcmp(reason, "token_expired") == 0)
		snprintf(o->hint, sizeof(o->hint),
			 "make a new token: outpost-server token create (--ttl sets how long it lasts)");
	else
		ag_reason_hint(reason, NULL, o->hint, sizeof(o->hint));
	if (o->hint[0] == '\0' && (r->status == 429 || r->status >= 500))
		snprintf(o->hint, sizeof(o->hint),
			 "the control plane is busy or unavailable: try again in a minute");
	return op_fail(err, OP_EREMOTE, "%s (HTTP %ld %s)", msg ? msg : "refused", r->status,
		       reason);
}

static op_rc write_text(const char *path, const char *text, mode_t mode, struct op_error *err)
{
	return op_write_file_atomic(path, text, strlen(text), mode, err);
}

static int json_int(const cJSON *o, const char *key, int dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e6
		       ? (int)ceil(v->valuedouble)
		       : dflt;
}

/* Checks the 201 answer and writes agent.crt, ca.crt, approval.pem and, last, agent.json. */
static op_rc store_enrollment(const struct ag_enroll_req *req, const struct tp_response *r,
			      const char *hostname, struct ag_enrollment *out,
			      struct op_error *err)
{
	const struct ag_config *cfg = req->cfg;
	const char *id = jstr(r->json, "agent_id"), *cert = jstr(r->json, "certificate");
	const char *ca = jstr(r->json, "ca_certificate");
	const char *approval = jstr(r->json, "approval_public_key");
	char path[PATH_MAX], key[PATH_MAX], when[40];
	struct id_cert_info ci;
	cJSON *agent = NULL;
	char *text = NULL;
	const cJSON *item;
	op_rc rc;

	if (id == NULL || cert == NULL || ca == NULL || strlen(id) >= sizeof(out->agent_id))
		return op_fail(err, OP_EPROTO,
			       "the control plane's answer lacks agent_id, certificate or "
			       "ca_certificate");
	rc = id_cert_info_text(cert, &ci, err);
	if (rc != OP_OK)
		return op_prefix(err, "the certificate the control plane issued");
	if (strcmp(ci.subject_cn, id) != 0)
		return op_fail(err, OP_EPROTO,
			       "the certificate the control plane issued names %s, not agent %s",
			       ci.subject_cn, id);
	id_path(cfg->state_dir, ID_CERT, path, sizeof(path));
	id_path(cfg->state_dir, ID_KEY, key, sizeof(key));
	rc = write_text(path, cert, 0644, err);
	if (rc == OP_OK)
		rc = id_key_matches(path, key, err);
	if (rc != OP_OK)
		return rc;
	id_path(cfg->state_dir, ID_CA, path, sizeof(path));
	rc = write_text(path, ca, 0644, err);
	if (rc != OP_OK)
		return rc;
	if (approval) {
		id_path(cfg->state_dir, ID_APPROVAL, path, sizeof(path));
		rc = write_text(path, approval, 0644, err);
		if (rc != OP_OK)
			return rc;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->agent_id, sizeof(out->agent_id), "%s", id);
	snprintf(out->hostname, sizeof(out->hostname), "%s", hostname);
	out->cert_not_after = ci.not_after;
	out->heartbeat_interval = json_int(r->json, "heartbeat_interval", 15);
	out->lease_ttl = json_int(r->json, "lease_ttl", 60);
	out->long_poll = json_int(r->json, "long_poll", 25);

	agent = cJSON_CreateObject();
	if (agent == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	cJSON_AddStringToObject(agent, "agent_id", id);
	cJSON_AddStringToObject(agent, "control_plane", cfg->control_plane);
	cJSON_AddStringToObject(agent, "hostname", hostname);
	cJSON_AddNumberToObject(agent, "heartbeat_interval", out->heartbeat_interval);
	cJSON_AddNumberToObject(agent, "lease_ttl", out->lease_ttl);
	cJSON_AddNumberToObject(agent, "long_poll", out->long_poll);
	tp_format_time(tp_now(), when, sizeof(when));
	cJSON_AddStringToObject(agent, "enrolled_at", when);
	tp_format_time(ci.not_after, when, sizeof(when));
	cJSON_AddStringToObject(agent, "cert_not_after", when);
	cJSON_AddStringToObject(agent, "version", OUTPOST_VERSION);
	cJSON_ArrayForEach(item, req->extra)
	{
		if (item->string && cJSON_GetObjectItemCaseSensitive(agent, item->string) == NULL)
			cJSON_AddItemToObject(agent, item->string, cJSON_Duplicate(item, true));
	}
	text = op_json_print(agent, true);
	if (text == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	id_path(cfg->state_dir, ID_AGENT, path, sizeof(path));
	rc = write_text(path, text, 0644, err);
out:
	cJSON_free(text);
	cJSON_Delete(agent);
	return rc;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

op_rc ag_enroll(const struct ag_enroll_req *req, struct ag_enrollment *out, struct ag_outcome *o,
		struct op_error *err)
{
	const struct ag_config *cfg = req->cfg;
	char key[PATH_MAX], hostname[256];
	struct op_buf csr = OP_BUF_INIT;
	struct tp_response r;
	struct tp_config tc;
	bool have_tc = false, have_r = false, made_key = false;
	cJSON *body = NULL;
	op_rc rc;

	memset(o, 0, sizeof(*o));
	memset(&r, 0, sizeof(r));
	rc = tp_config_from(&tc, cfg, false, err);
	if (rc != OP_OK)
		goto out;
	have_tc = true;

	/* The clocks first, over TLS without date checks, so a skewed clock shows its figure. A
	 * transport failure other than a timeout falls through: the POST below fails the same
	 * way at once, and its message names the enrollment URL users search for. */
	rc = ag_clock_check(&tc, o, err);
	if (rc != OP_OK && (o->clock || o->net == TP_OK || o->net == TP_TIMEOUT))
		goto out;
	if (rc != OP_OK)
		op_log_debug("enroll", "GET /health failed (%s); trying the enrollment anyway",
			     err ? err->msg : "");
	rc = OP_OK;

	if (req->hostname)
		snprintf(hostname, sizeof(hostname), "%s", req->hostname);
	else if (gethostname(hostname, sizeof(hostname)) < 0 || hostname[0] == '\0')
		snprintf(hostname, sizeof(hostname), "localhost");
	hostname[sizeof(hostname) - 1] = '\0';

	id_path(cfg->state_dir, ID_KEY, key, sizeof(key));
	made_key = true;
	rc = id_generate_key(key, err);
	if (rc == OP_OK)
		rc = id_make_csr(key, hostname, &csr, err);
	if (rc != OP_OK)
		goto out;
	body = enroll_body(req, csr.data, hostname);
	if (body == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	/* A lost answer is safe to ask again with the same CSR (the control plane's replay
	 * window), so transient failures after the request may have arrived are retried. */
	for (int attempt = 0;; attempt++) {
		bool again;

		if (have_r)
			tp_response_release(&r);
		rc = tp_request(&tc, "POST", "/agent/enroll", body, &r, err);
		have_r = true;
		again = attempt < 2 && ((rc != OP_OK && r.fail == TP_NET) ||
					(rc == OP_OK && (r.status == 429 || r.status == 502 ||
							 r.status == 503 || r.status == 504)));
		if (!again)
			break;
		op_log_debug("enroll", "enrollment attempt %d: %s", attempt + 1,
			     rc != OP_OK && err ? err->msg : "busy");
		sleep_s(1 << attempt);
	}
	wipe_token(body);
	if (rc != OP_OK) {
		transport_failed(rc, &r, o);
		goto out;
	}
	if (r.status != 201) {
		rc = enroll_refused(&tc, &r, o, err);
		goto out;
	}
	o->status = r.status;
	rc = store_enrollment(req, &r, hostname, out, err);
out:
	if (rc != OP_OK && made_key)
		ag_identity_remove(cfg->state_dir);
	if (body)
		wipe_token(body);
	cJSON_Delete(body);
	op_buf_release(&csr);
	if (have_r)
		tp_response_release(&r);
	if (have_tc)
		tp_config_release(&tc);
	return rc;
}

/* ---- agent routes with the certificate --------------------------------------------------- */

/* A refusal of an mTLS route: OP_ESTATE for the terminal reasons, OP_EPERM for a certificate
 * expired beyond the grace, OP_EREMOTE otherwise. */
static op_rc agent_refused(const struct ag_config *cfg, const char *what,
			   const struct tp_response *r, struct ag_outcome *o, struct op_error *err)
{
	const char *reason = tp_reason(r), *msg = tp_message(r);

	o->status = r->status;
	set_reason(o, reason);
	ag_reason_hint(reason, cfg->file, o->hint, sizeof(o->hint));
	if (reason == NULL)
		return op_fail(err, OP_EPROTO, "%s: the answer (HTTP %ld) is not a control plane's",
			       what, r->status);
	if (strcmp(reason, "agent_revoked") == 0 || strcmp(reason, "agent_not_found") == 0)
		return op_fail(err, OP_ESTATE, "agent not found or revoked");
	if (strcmp(reason, "cert_expired") == 0)
		return op_fail(err, OP_EPERM, "%s", msg ? msg : "certificate expired");
	return op_fail(err, OP_EREMOTE, "%s: %s (HTTP %ld %s)", what, msg ? msg : "refused",
		       r->status, reason);
}

/* GET /agent/self with the pair in CERT and KEY. */
static op_rc self_with(const struct ag_config *cfg, const char *cert, const char *key,
		       cJSON **record, struct ag_outcome *o, struct op_error *err)
{
	struct tp_config tc;
	struct tp_response r;
	op_rc rc;

	rc = tp_config_from(&tc, cfg, true, err);
	if (rc != OP_OK)
		return rc;
	if (cert) {
		free(tc.cert_file);
		free(tc.key_file);
		tc.cert_file = strdup(cert);
		tc.key_file = strdup(key);
		if (tc.cert_file == NULL || tc.key_file == NULL) {
			tp_config_release(&tc);
			return op_fail(err, OP_ENOMEM, "out of memory");
		}
	}
	rc = tp_request(&tc, "GET", "/agent/self", NULL, &r, err);
	if (rc != OP_OK)
		transport_failed(rc, &r, o);
	else if (r.status != 200)
		rc = agent_refused(cfg, "GET /agent/self", &r, o, err);
	else if (!cJSON_IsObject(r.json))
		rc = op_fail(err, OP_EPROTO, "GET /agent/self: the answer is not a JSON object");
	else if (record) {
		o->status = r.status;
		*record = r.json;
		r.json = NULL;
	}
	tp_response_release(&r);
	tp_config_release(&tc);
	return rc;
}

op_rc ag_self(const struct ag_config *cfg, cJSON **record, struct ag_outcome *o,
	      struct op_error *err)
{
	memset(o, 0, sizeof(*o));
	return self_with(cfg, NULL, NULL, record, o, err);
}

op_rc ag_deregister(const struct ag_config *cfg, const char *reason, struct ag_outcome *o,
		    struct op_error *err)
{
	struct tp_config tc;
	struct tp_response r;
	cJSON *body = cJSON_CreateObject();
	op_rc rc;

	memset(o, 0, sizeof(*o));
	if (body == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	if (reason)
		cJSON_AddStringToObject(body, "reason", reason);
	rc = tp_config_from(&tc, cfg, true, err);
	if (rc != OP_OK) {
		cJSON_Delete(body);
		return rc;
	}
	rc = tp_request(&tc, "POST", "/agent/deregister", body, &r, err);
	if (rc != OP_OK) {
		transport_failed(rc, &r, o);
	} else if (r.status != 200) {
		rc = agent_refused(cfg, "POST /agent/deregister", &r, o, err);
		if (rc == OP_ESTATE) { /* already revoked or deleted: nothing left to do */
			o->hint[0] = '\0';
			rc = OP_OK;
		}
	} else {
		o->status = r.status;
	}
	tp_response_release(&r);
	tp_config_release(&tc);
	cJSON_Delete(body);
	return rc;
}

/* ---- rotation ---------------------------------------------------------------------------- */

struct id_paths {
	char key[PATH_MAX], cert[PATH_MAX], key_new[PATH_MAX], cert_new[PATH_MAX];
	char ca[PATH_MAX], agent[PATH_MAX], lock[PATH_MAX];
};

static void paths_of(const struct ag_config *cfg, struct id_paths *p)
{
	id_path(cfg->state_dir, ID_KEY, p->key, sizeof(p->key));
	id_path(cfg->state_dir, ID_CERT, p->cert, sizeof(p->cert));
	id_path(cfg->state_dir, ID_KEY_NEW, p->key_new, sizeof(p->key_new));
	id_path(cfg->state_dir, ID_CERT_NEW, p->cert_new, sizeof(p->cert_new));
	id_path(cfg->state_dir, ID_CA, p->ca, sizeof(p->ca));
	id_path(cfg->state_dir, ID_AGENT, p->agent, sizeof(p->agent));
	snprintf(p->lock, sizeof(p->lock), "%s/" LOCK_NAME, cfg->state_dir);
}

/* Takes STATE/rotate.lock (blocking): one rotation at a time, CLI or run loop. */
static op_rc lock_identity(const struct id_paths *p, int *fd, struct op_error *err)
{
	int f = open(p->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (f < 0)
		return op_fail(err, OP_EIO, "cannot open %s: %s (run as the agent's user or root)",
			       p->lock, strerror(errno));
	match_owner(p->lock, p->key);
	while (flock(f, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(f);
			return op_fail(err, OP_EIO, "cannot lock %s: %s", p->lock, strerror(errno));
		}
	}
	*fd = f;
	return OP_OK;
}

static void unlock_identity(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

/* Renames the confirmed new pair over the old one: the key first, so a crash in between
 * leaves agent.crt.new matching agent.key, which recovery completes. */
static op_rc promote(const struct ag_config *cfg, const struct id_paths *p, struct op_error *err)
{
	struct id_cert_info ci;
	struct op_buf text = OP_BUF_INIT;
	cJSON *agent = NULL;
	char when[40], *out = NULL;

	if (rename(p->key_new, p->key) < 0 || rename(p->cert_new, p->cert) < 0)
		return op_fail(err, OP_EIO, "cannot put the new certificate in place in %s: %s",
			       cfg->state_dir, strerror(errno));
	if (op_fsync_parent(p->key) < 0)
		op_log_warn("identity", "cannot fsync %s: %s", cfg->state_dir, strerror(errno));
	/* agent.json's cert_not_after is informative: best effort. */
	if (id_cert_info(p->cert, &ci, NULL) == OP_OK && op_read_file(p->agent, 1 << 20, &text, NULL) == OP_OK &&
	    (agent = cJSON_ParseWithLength(text.data, text.len)) != NULL) {
		tp_format_time(ci.not_after, when, sizeof(when));
		cJSON_DeleteItemFromObjectCaseSensitive(agent, "cert_not_after");
		cJSON_AddStringToObject(agent, "cert_not_after", when);
		out = op_json_print(agent, true);
		if (out && write_text(p->agent, out, 0644, NULL) == OP_OK)
			match_owner(p->agent, p->key);
	}
	cJSON_free(out);
	cJSON_Delete(agent);
	op_buf_release(&text);
	return OP_OK;
}

/* Confirms the pending pair with GET /agent/self and promotes it, or discards what cannot be
 * used. Lock held. */
static op_rc recover_locked(const struct ag_config *cfg, const struct id_paths *p, bool *recovered,
			    struct ag_outcome *out, struct op_error *err)
{
	bool kn = file_exists(p->key_new), cn = file_exists(p->cert_new);
	struct ag_outcome o;
	op_rc rc;

	*recovered = false;
	if (!kn && !cn)
		return OP_OK;
	if (!kn) { /* the key was renamed, the certificate not yet */
		if (id_key_matches(p->cert_new, p->key, NULL) == OP_OK) {
			if (rename(p->cert_new, p->cert) < 0)
				return op_fail(err, OP_EIO, "cannot rename %s: %s", p->cert_new,
					       strerror(errno));
			(void)op_fsync_parent(p->cert);
			*recovered = true;
			op_log_info("identity", "completed an interrupted certificate rotation");
		} else {
			(void)unlink(p->cert_new);
		}
		return OP_OK;
	}
	if (!cn || id_key_matches(p->cert_new, p->key_new, NULL) != OP_OK) {
		/* no certificate came back for the new key: the old pair is still the one */
		(void)unlink(p->key_new);
		(void)unlink(p->cert_new);
		return OP_OK;
	}
	memset(&o, 0, sizeof(o));
	rc = self_with(cfg, p->cert_new, p->key_new, NULL, &o, err);
	if (rc == OP_OK) {
		rc = promote(cfg, p, err);
		if (rc == OP_OK) {
			*recovered = true;
			op_log_info("identity", "completed an interrupted certificate rotation");
		}
		return rc;
	}
	if (o.net != TP_OK) {
		if (out)
			*out = o;
		return op_prefix(err, "an interrupted certificate rotation could not be confirmed "
				      "(the current certificate stays in use)");
	}
	op_log_warn("identity", "discarded the certificate of an interrupted rotation: %s",
		    err ? err->msg : o.reason);
	(void)unlink(p->key_new);
	(void)unlink(p->cert_new);
	op_error_clear(err);
	return OP_OK;
}

op_rc ag_identity_recover(const struct ag_config *cfg, bool *recovered, struct op_error *err)
{
	struct id_paths p;
	bool done = false;
	int fd = -1;
	op_rc rc;

	paths_of(cfg, &p);
	if (!file_exists(p.key_new) && !file_exists(p.cert_new)) {
		if (recovered)
			*recovered = false;
		return OP_OK;
	}
	rc = lock_identity(&p, &fd, err);
	if (rc == OP_OK)
		rc = recover_locked(cfg, &p, &done, NULL, err);
	unlock_identity(fd);
	if (recovered)
		*recovered = done;
	return rc;
}

double ag_cert_renew_at(double not_before, double not_after, double u)
{
	double life = not_after - not_before;

	if (u < 0)
		u = 0;
	if (u >= 1)
		u = 0.999999;
	return not_before + life * (0.5 + 0.2 * (u - 0.5));
}

/* Writes the new CA bundle when the control plane's changed. */
static void update_ca(const struct id_paths *p, const char *ca)
{
	struct op_buf old = OP_BUF_INIT;

	if (ca == NULL)
		return;
	if (op_read_file(p->ca, 1 << 20, &old, NULL) != OP_OK || strcmp(old.data, ca) != 0) {
		if (write_text(p->ca, ca, 0644, NULL) == OP_OK)
			match_owner(p->ca, p->key);
	}
	op_buf_release(&old);
}

op_rc ag_rotate_cert_ex(const struct ag_config *cfg, struct ag_rotation *out, struct ag_outcome *o,
			struct op_error *err)
{
	struct id_paths p;
	struct id_cert_info old, neu;
	struct op_buf csr = OP_BUF_INIT;
	struct tp_config tc;
	struct tp_response r;
	bool have_tc = false, have_r = false, new_key = false, pending = false;
	cJSON *agent = NULL, *body = NULL;
	const char *id, *cert;
	int fd = -1;
	op_rc rc;

	memset(o, 0, sizeof(*o));
	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	paths_of(cfg, &p);
	rc = id_load_agent(cfg->state_dir, &agent, err);
	if (rc != OP_OK)
		return rc;
	rc = lock_identity(&p, &fd, err);
	if (rc != OP_OK)
		goto out;
	rc = recover_locked(cfg, &p, &out->recovered, o, err);
	if (rc != OP_OK)
		goto out;
	id = id_agent_id(agent);
	snprintf(out->agent_id, sizeof(out->agent_id), "%s", id);
	rc = id_cert_info(p.cert, &old, err);
	if (rc != OP_OK)
		goto out;
	snprintf(out->old_serial, sizeof(out->old_serial), "%s", old.serial);

	new_key = true;
	rc = id_generate_key(p.key_new, err);
	if (rc == OP_OK) {
		match_owner(p.key_new, p.key);
		rc = id_make_csr(p.key_new, id, &csr, err);
	}
	if (rc != OP_OK)
		goto out;
	body = cJSON_CreateObject();
	if (body == NULL || !cJSON_AddStringToObject(body, "csr", csr.data)) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	rc = tp_config_from(&tc, cfg, true, err);
	if (rc != OP_OK)
		goto out;
	have_tc = true;
	rc = tp_request(&tc, "POST", "/agent/rotate-cert", body, &r, err);
	have_r = true;
	if (rc != OP_OK) {
		transport_failed(rc, &r, o);
		goto out;
	}
	if (r.status != 200) {
		rc = agent_refused(cfg, "POST /agent/rotate-cert", &r, o, err);
		if (rc == OP_EPERM) {
			char t[40];

			tp_format_time(old.not_after, t, sizeof(t));
			rc = op_fail(err, OP_EPERM,
				     "the certificate expired at %s, longer ago than the control plane "
				     "accepts for a rotation",
				     t);
		}
		goto out;
	}
	o->status = r.status;
	cert = jstr(r.json, "certificate");
	if (cert == NULL || id_cert_info_text(cert, &neu, err) != OP_OK ||
	    strcmp(neu.subject_cn, id) != 0) {
		rc = op_fail(err, OP_EPROTO,
			     "POST /agent/rotate-cert: the answer holds no certificate for %s", id);
		goto out;
	}
	rc = write_text(p.cert_new, cert, 0644, err);
	if (rc == OP_OK) {
		match_owner(p.cert_new, p.key);
		rc = id_key_matches(p.cert_new, p.key_new, err);
	}
	if (rc != OP_OK)
		goto out;
	update_ca(&p, jstr(r.json, "ca_certificate"));

	/* Confirm: the first use of the new certificate switches the control plane to it. */
	rc = self_with(cfg, p.cert_new, p.key_new, NULL, o, err);
	if (rc != OP_OK && o->net != TP_OK) {
		pending = true; /* it may have arrived: keep both, recovery decides */
		op_prefix(err, "the new certificate is saved as %s but could not be confirmed "
			       "(the current one stays in use until it is)",
			  p.cert_new);
		goto out;
	}
	if (rc != OP_OK) {
		op_prefix(err, "the control plane refused the new certificate");
		goto out;
	}
	rc = promote(cfg, &p, err);
	if (rc != OP_OK)
		goto out;
	snprintf(out->new_serial, sizeof(out->new_serial), "%s", neu.serial);
	out->not_after = neu.not_after;
	op_log_info("identity", "certificate rotated: serial %s replaces %s, valid until %s",
		    neu.serial, old.serial, jstr(r.json, "cert_not_after") ? jstr(r.json, "cert_not_after") : "?");
out:
	if (rc != OP_OK && new_key && !pending) {
		(void)unlink(p.key_new);
		(void)unlink(p.cert_new);
	}
	unlock_identity(fd);
	cJSON_Delete(body);
	cJSON_Delete(agent);
	op_buf_release(&csr);
	if (have_r)
		tp_response_release(&r);
	if (have_tc)
		tp_config_release(&tc);
	return rc;
}

op_rc ag_rotate_cert(const struct ag_config *cfg, struct op_error *err)
{
	struct ag_rotation rot;
	struct ag_outcome o;

	return ag_rotate_cert_ex(cfg, &rot, &o, err);
}
