/* SPDX-License-Identifier: Apache-2.0 */
/* The agent API: /health, enrollment, heartbeats, certificate rotation, leases, the reaper. */
#include <event2/bufferevent.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonjson.h"
#include "jsonprint.h"
#include "log.h"
#include "schema.h"
#include "server.h"
#include "units.h"
#include "util.h"

/* ---- body schemas ------------------------------------------------------------------------ */

#define STR(n) "{\"type\":\"string\",\"maxLength\":" #n "}"
#define STRLIST "{\"type\":\"array\",\"maxItems\":256,\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200}}"
#define PLUGINS                                                                                 \
	"{\"type\":\"array\",\"maxItems\":256,\"items\":{\"type\":\"object\",\"required\":[\"name\"]," \
	"\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128},"          \
	"\"version\":" STR(64) ",\"types\":" STRLIST "}}}"
#define CHANGE_TYPES                                                                            \
	"{\"type\":\"array\",\"maxItems\":256,\"items\":{\"type\":\"object\","                       \
	"\"required\":[\"name\",\"digest\"],\"properties\":{"                                       \
	"\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128},"                          \
	"\"digest\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"                        \
	"\"params_schema\":{\"type\":\"object\"},\"description\":" STR(4096) ","                     \
	"\"steps\":{\"type\":\"array\"}}}}"

static const char ENROLL_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,"
	"\"required\":[\"token\",\"csr\",\"hostname\"],\"properties\":{"
	"\"token\":" STR(256) ",\"csr\":" STR(65536) ","
	"\"hostname\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":253},"
	"\"os\":" STR(64) ",\"arch\":" STR(64) ",\"version\":" STR(64) ","
	"\"pool\":{\"type\":[\"string\",\"null\"],\"maxLength\":128},"
	"\"environment\":{\"type\":[\"string\",\"null\"],\"maxLength\":128},"
	"\"tags\":" STRLIST ",\"plugins\":" PLUGINS ",\"task_types\":" STRLIST ","
	"\"change_types\":" CHANGE_TYPES "}}";

static const char HEARTBEAT_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
	"\"state\":{\"enum\":[\"idle\",\"busy\",\"draining\"]},"
	"\"running\":" STRLIST ",\"slots\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100000},"
	"\"versions\":{\"type\":\"object\",\"properties\":{\"agent\":" STR(64) ","
	"\"plugins\":{\"type\":\"object\",\"additionalProperties\":" STR(64) "}}},"
	"\"task_types\":" STRLIST ",\"plugins\":" PLUGINS ",\"change_types\":" CHANGE_TYPES ","
	"\"health\":{\"type\":\"object\",\"properties\":{"
	"\"status\":{\"enum\":[\"ok\",\"degraded\"]},\"problems\":{\"type\":\"array\",\"maxItems\":100},"
	"\"disk_free_bytes\":{\"type\":\"number\"},\"inodes_free\":{\"type\":\"number\"},"
	"\"workspace_writable\":{\"type\":\"boolean\"},"
	"\"last_error\":{\"type\":[\"string\",\"null\"],\"maxLength\":4096}}}}}";

static const char CSR_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"csr\"],"
	"\"properties\":{\"csr\":" STR(65536) "}}";

static const char DEREGISTER_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"reason\":" STR(1024) "}}";

static const char LEASES_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
	"\"slots\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100000},"
	"\"task_types\":" STRLIST ",\"wait\":{\"type\":\"number\",\"minimum\":0,\"maximum\":3600}}}";

static const char RENEW_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"progress\":{}}}";

#define LOG_CHUNK_SCHEMA                                                                           \
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"offset\",\"data\"],"       \
	"\"properties\":{\"offset\":{\"type\":\"integer\",\"minimum\":0},\"data\":{\"type\":\"string\"}}}"
static const char LOGS_SCHEMA[] = LOG_CHUNK_SCHEMA;

static const char COMPLETE_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"status\"],"
	"\"properties\":{\"status\":{\"enum\":[\"succeeded\",\"failed\",\"cancelled\",\"timed_out\","
	"\"crashed\",\"invalid\"]},\"error\":{},\"result\":{},"
	"\"artifacts\":{\"type\":\"array\",\"maxItems\":10000},"
	"\"duration\":{\"type\":\"number\",\"minimum\":0},\"exit_code\":{\"type\":\"integer\"},"
	"\"log\":" LOG_CHUNK_SCHEMA "}}";

static const char RELEASE_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"reason\":" STR(1024) "}}";

static const char ARTIFACT_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"name\",\"content\"],"
	"\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200,"
	"\"pattern\":\"^[A-Za-z0-9_][A-Za-z0-9_.-]*$\"},\"content\":{\"type\":\"string\"},"
	"\"sha256\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{64}$\"},"
	"\"content_type\":" STR(200) "}}";

static const char STEPS_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"step\"],"
	"\"properties\":{\"step\":{\"type\":\"object\"}}}";

/* ---- helpers ----------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void add_secs(cJSON *o, const char *key, double secs)
{
	cJSON_AddNumberToObject(o, key, srv_round_ms(secs));
}

/* Every change type's params_schema must be in the subset, or agents would be told "ok" for a
 * definition the server can never validate against. */
static bool check_change_types(struct rq *r, const cJSON *cts)
{
	const cJSON *ct;
	int i = 0;
	char msg[512];

	cJSON_ArrayForEach(ct, cts)
	{
		const cJSON *sch = cJSON_GetObjectItemCaseSensitive(ct, "params_schema");

		if (sch && op_schema_check(sch, msg, sizeof(msg)) < 0) {
			rq_error(r, 400, "invalid_field", "body.change_types[%d].params_schema: %s", i,
				 msg);
			return false;
		}
		i++;
	}
	return true;
}

/* The task types an agent serves: what it lists, plus what its plugins list. */
static cJSON *collect_types(const cJSON *task_types, const cJSON *plugins)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *v, *p;

	cJSON_ArrayForEach(v, task_types)
	{
		if (cJSON_IsString(v) && !srv_jstrings_contains(out, v->valuestring))
			cJSON_AddItemToArray(out, cJSON_CreateString(v->valuestring));
	}
	cJSON_ArrayForEach(p, plugins)
	{
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(p, "types"))
		{
			if (cJSON_IsString(v) && !srv_jstrings_contains(out, v->valuestring))
				cJSON_AddItemToArray(out, cJSON_CreateString(v->valuestring));
		}
	}
	return out;
}

/* ---- /health ----------------------------------------------------------------------------- */

static bool health_pre(struct rq *r)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", OUTPOST_SERVER_VERSION);
	rq_ok(r, 200, o);
	return true;
}

/* ---- the prelude of every mTLS route ---------------------------------------------------- */

/* What the agent routes need of the agent's record (the whole one is larger: plugins and
 * change types with their schemas). /agent/self reads the rest itself. */
static const char *const AGENT_AUTH_COLS[] = {
	"id",	  "hostname",	 "state",	"revoked_at",	   "cert_serial",    "next_serial",
	"next_not_before", "next_not_after", "pool", "environment", "tags", "task_types", NULL};

void agent_prelude(struct rq *r, struct store *st)
{
	cJSON *a = NULL;
	op_rc rc = store_get_cols(st, T_AGENTS, r->agent_id, AGENT_AUTH_COLS, &a);
	const char *serial = NULL, *next = NULL;

	if (rc == OP_ENOENT) {
		rq_error(r, 403, "agent_not_found",
			 "agent %s is not registered with this server (it was deleted): "
			 "re-enroll it with a new enrollment token",
			 r->agent_id);
		return;
	}
	if (rc != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot read the agent registry: retry later");
		r->retry_after = 1;
		return;
	}
	if (str_eq(srv_jstr(a, "state"), "revoked")) {
		char t[40];

		srv_fmt_time(srv_jint(a, "revoked_at", 0), t, sizeof(t));
		rq_error(r, 403, "agent_revoked",
			 "agent %s was revoked at %s: re-enroll it with a new enrollment token",
			 r->agent_id, t);
		cJSON_Delete(a);
		return;
	}
	serial = srv_jstr(a, "cert_serial");
	next = srv_jstr(a, "next_serial");
	if (str_eq(serial, r->serial)) {
		/* the current certificate */
	} else if (str_eq(next, r->serial)) {
		/* First use of the rotated certificate: from now on only it is valid (SPIRE's
		 * lesson: a lost rotation response never strands the agent). */
		cJSON *u = cJSON_CreateObject();

		cJSON_AddStringToObject(u, "cert_serial", next);
		cJSON_AddNumberToObject(u, "cert_not_before", (double)srv_jint(a, "next_not_before", 0));
		cJSON_AddNumberToObject(u, "cert_not_after", (double)srv_jint(a, "next_not_after", 0));
		cJSON_AddNullToObject(u, "next_serial");
		cJSON_AddNullToObject(u, "next_not_before");
		cJSON_AddNullToObject(u, "next_not_after");
		store_update(st, T_AGENTS, r->agent_id, u);
		op_log_info("agent", "agent %s switched to its rotated certificate serial=%s",
			    r->agent_id, next);
		srv_jset(a, "cert_serial", cJSON_CreateString(next));
		srv_jset(a, "cert_not_after",
			 cJSON_CreateNumber((double)srv_jint(a, "next_not_after", 0)));
		srv_jset(a, "next_serial", NULL);
		cJSON_Delete(u);
	} else {
		rq_error(r, 403, "cert_superseded",
			 "this certificate (serial %s) was replaced by a newer one: use the agent's newest certificate, "
			 "or re-enroll",
			 r->serial);
		cJSON_Delete(a);
		return;
	}
	r->agent = a;
}

/* ---- enrollment -------------------------------------------------------------------------- */

static bool enroll_pre(struct rq *r)
{
	const char *tok = srv_jstr(r->body, "token");
	char msg[400];

	if (!srv_token_shape_ok(tok, "oe_")) {
		rq_error(r, 401, "token_invalid",
			 "that is not an enrollment token (they start with oe_): create one with "
			 "`outpost-server token create`");
		return false;
	}
	if (pki_csr_check(srv_jstr(r->body, "csr"), &r->csr, r->key_hash, msg, sizeof(msg)) < 0) {
		rq_error(r, 400, "bad_csr", "%s", msg);
		return false;
	}
	return check_change_types(r, cJSON_GetObjectItemCaseSensitive(r->body, "change_types"));
}

static cJSON *enroll_response(struct srv *s, const char *agent_id, const char *cert,
			      int64_t not_after)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "agent_id", agent_id);
	cJSON_AddStringToObject(o, "certificate", cert);
	cJSON_AddStringToObject(o, "ca_certificate", s->pki.ca_pem);
	cJSON_AddStringToObject(o, "approval_public_key", s->pki.approval_pub_pem);
	add_secs(o, "heartbeat_interval", s->cfg.heartbeat_interval);
	add_secs(o, "lease_ttl", s->cfg.lease_ttl);
	add_secs(o, "long_poll", s->cfg.long_poll);
	srv_jadd_time(o, "cert_not_after", not_after);
	return o;
}

static void enroll_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	const cJSON *b = r->body;
	cJSON *tok = NULL, *prev = NULL, *agent = NULL, *resp = NULL, *tags, *types, *u, *e;
	char hash[65], eid[200], agent_id[40], serial[65], t[40];
	char *cert = NULL;
	int64_t nb = 0, na = 0, exp;
	const char *token_id, *pool, *env;
	op_rc rc;

	srv_sha256_hex(srv_jstr(b, "token"), strlen(srv_jstr(b, "token")), hash);
	rc = store_find(st, T_ENROLL_TOKENS, "hash", hash, &tok);
	if (rc == OP_ENOENT) {
		rq_error(r, 401, "token_invalid",
			 "enrollment token is not known to this server: check you copied the whole token, "
			 "or create one with `outpost-server token create`");
		goto out;
	}
	if (rc != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot read enrollment tokens: retry later");
		goto out;
	}
	token_id = srv_jstr(tok, "id");
	if (srv_jint(tok, "revoked_at", 0) > 0) {
		rq_error(r, 401, "token_invalid", "enrollment token %s was revoked: create a new one",
			 token_id);
		goto out;
	}
	/* The same key with the same token shortly after: a lost response. Same answer. */
	snprintf(eid, sizeof(eid), "%s:%s", token_id, r->key_hash);
	if (store_get(st, T_ENROLLMENTS, eid, &prev) == OP_OK &&
	    (double)(r->now_ms - srv_jint(prev, "created_at", 0)) <= s->cfg.enroll_replay_window * 1000 &&
	    store_get(st, T_AGENTS, srv_jstr(prev, "agent_id"), &agent) == OP_OK &&
	    !str_eq(srv_jstr(agent, "state"), "revoked")) {
		resp = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(prev, "response"), true);
		op_log_info("enroll", "agent %s: enrollment replayed with the same key, same answer",
			    srv_jstr(prev, "agent_id"));
		op_strlcpy(r->agent_id, srv_jstr(prev, "agent_id"), sizeof(r->agent_id));
		rq_ok(r, 201, resp);
		goto out;
	}
	exp = srv_jint(tok, "expires_at", 0);
	if (exp > 0 && r->now_ms > exp) {
		srv_fmt_time(exp, t, sizeof(t));
		rq_error(r, 401, "token_expired",
			 "enrollment token %s expired at %s: create a new one with `outpost-server token create`",
			 token_id, t);
		goto out;
	}
	if (srv_jint(tok, "uses", 0) >= srv_jint(tok, "uses_max", 1)) {
		rq_error(r, 409, "token_used", "token has already been used");
		goto out;
	}
	if (srv_random_id("agt_", 16, agent_id, sizeof(agent_id)) < 0 ||
	    pki_issue_client(&s->pki, r->csr, agent_id, (int64_t)s->cfg.cert_validity, &cert, serial,
			     &nb, &na) < 0) {
		rq_error(r, 500, "internal", "cannot issue the client certificate");
		goto out;
	}
	/* The token's pool and environment win over the agent's; tags are the union. */
	pool = srv_jstr(tok, "pool") ? srv_jstr(tok, "pool") : srv_jstr(b, "pool");
	env = srv_jstr(tok, "environment") ? srv_jstr(tok, "environment") : srv_jstr(b, "environment");
	tags = srv_jdup_or(cJSON_GetObjectItemCaseSensitive(tok, "tags"), "[]");
	{
		const cJSON *v;

		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(b, "tags"))
		{
			if (!srv_jstrings_contains(tags, v->valuestring))
				cJSON_AddItemToArray(tags, cJSON_CreateString(v->valuestring));
		}
	}
	types = collect_types(cJSON_GetObjectItemCaseSensitive(b, "task_types"),
			      cJSON_GetObjectItemCaseSensitive(b, "plugins"));
	agent = agent ? (cJSON_Delete(agent), cJSON_CreateObject()) : cJSON_CreateObject();
	cJSON_AddStringToObject(agent, "id", agent_id);
	cJSON_AddStringToObject(agent, "hostname", srv_jstr(b, "hostname"));
	srv_jadd_str(agent, "os", srv_jstr(b, "os"));
	srv_jadd_str(agent, "arch", srv_jstr(b, "arch"));
	srv_jadd_str(agent, "version", srv_jstr(b, "version"));
	srv_jadd_str(agent, "pool", pool);
	srv_jadd_str(agent, "environment", env);
	cJSON_AddItemToObject(agent, "tags", tags);
	cJSON_AddItemToObject(agent, "plugins",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(b, "plugins"), "[]"));
	cJSON_AddItemToObject(agent, "task_types", types);
	cJSON_AddItemToObject(agent, "change_types",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(b, "change_types"), "[]"));
	cJSON_AddStringToObject(agent, "state", "active");
	cJSON_AddNumberToObject(agent, "enrolled_at", (double)r->now_ms);
	cJSON_AddNumberToObject(agent, "last_seen", (double)r->now_ms);
	cJSON_AddStringToObject(agent, "token_id", token_id);
	cJSON_AddStringToObject(agent, "cert_serial", serial);
	cJSON_AddNumberToObject(agent, "cert_not_before", (double)nb);
	cJSON_AddNumberToObject(agent, "cert_not_after", (double)na);
	if (store_insert(st, T_AGENTS, agent) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot record the agent: retry later");
		goto out;
	}
	u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "uses", (double)(srv_jint(tok, "uses", 0) + 1));
	cJSON_AddNumberToObject(u, "last_used_at", (double)r->now_ms);
	store_update(st, T_ENROLL_TOKENS, token_id, u);
	cJSON_Delete(u);
	resp = enroll_response(s, agent_id, cert, na);
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "id", eid);
	cJSON_AddStringToObject(e, "token_id", token_id);
	cJSON_AddStringToObject(e, "key_hash", r->key_hash);
	cJSON_AddStringToObject(e, "agent_id", agent_id);
	cJSON_AddItemToObject(e, "response", cJSON_Duplicate(resp, true));
	cJSON_AddNumberToObject(e, "created_at", (double)r->now_ms);
	if (prev) {
		struct store_cond c = {"id", SO_EQ, cJSON_GetObjectItemCaseSensitive(e, "id")};

		st->ops->remove(st, T_ENROLLMENTS, &c, 1, NULL);
	}
	store_insert(st, T_ENROLLMENTS, e);
	cJSON_Delete(e);
	op_strlcpy(r->agent_id, agent_id, sizeof(r->agent_id));
	op_log_info("enroll", "agent %s enrolled: hostname=%s token=%s serial=%s", agent_id,
		    srv_jstr(b, "hostname"), token_id, serial);
	rq_ok(r, 201, resp);
out:
	free(cert);
	cJSON_Delete(tok);
	cJSON_Delete(prev);
	cJSON_Delete(agent);
}

/* ---- heartbeat, self, deregister, rotate-cert ------------------------------------------- */

static bool heartbeat_pre(struct rq *r)
{
	return check_change_types(r, cJSON_GetObjectItemCaseSensitive(r->body, "change_types"));
}

static void heartbeat_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	const cJSON *b = r->body, *v;
	cJSON *u = cJSON_CreateObject(), *o, *cancel, *mine = NULL, *rec = NULL;
	cJSON *me = cJSON_CreateString(r->agent_id), *active = cJSON_CreateString("active");
	cJSON *yes = cJSON_CreateTrue();
	struct store_cond conds[3] = {{"agent_id", SO_EQ, me}, {"state", SO_EQ, active},
				      {"cancel", SO_EQ, yes}};
	struct store_query q = {conds, 3, NULL, false, 1000, 0, NULL};
	const cJSON *versions = cJSON_GetObjectItemCaseSensitive(b, "versions");
	char *recommended = NULL;
	int64_t life;

	cJSON_AddNumberToObject(u, "last_seen", (double)r->now_ms);
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "state")))
		cJSON_AddItemToObject(u, "reported_state", cJSON_Duplicate(v, true));
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "slots")))
		cJSON_AddItemToObject(u, "slots", cJSON_Duplicate(v, true));
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "running")))
		cJSON_AddItemToObject(u, "running", cJSON_Duplicate(v, true));
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "health")))
		cJSON_AddItemToObject(u, "health", cJSON_Duplicate(v, true));
	if (versions) {
		cJSON_AddItemToObject(u, "versions", cJSON_Duplicate(versions, true));
		if (srv_jstr(versions, "agent"))
			cJSON_AddStringToObject(u, "version", srv_jstr(versions, "agent"));
	}
	if (cJSON_GetObjectItemCaseSensitive(b, "task_types") ||
	    cJSON_GetObjectItemCaseSensitive(b, "plugins")) {
		const cJSON *plugins = cJSON_GetObjectItemCaseSensitive(b, "plugins");

		cJSON_AddItemToObject(u, "task_types",
				      collect_types(cJSON_GetObjectItemCaseSensitive(b, "task_types"),
						    plugins));
		if (plugins)
			cJSON_AddItemToObject(u, "plugins", cJSON_Duplicate(plugins, true));
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "change_types")))
		cJSON_AddItemToObject(u, "change_types", cJSON_Duplicate(v, true));
	if (store_update(st, T_AGENTS, r->agent_id, u) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot record the heartbeat: retry later");
		r->retry_after = 1;
		goto out;
	}

	o = cJSON_CreateObject();
	add_secs(o, "heartbeat_interval", s->cfg.heartbeat_interval);
	cJSON_AddStringToObject(o, "desired_state",
				str_eq(srv_jstr(r->agent, "state"), "draining") ? "drain" : "run");
	cancel = cJSON_AddArrayToObject(o, "cancel");
	/* Leases whose task was cancelled, and leases the agent runs that are no longer its own. */
	if (st->ops->select(st, T_LEASES, &q, &mine) == OP_OK) {
		const cJSON *l;

		cJSON_ArrayForEach(l, mine)
		{
			cJSON_AddItemToArray(cancel, cJSON_CreateString(srv_jstr(l, "id")));
		}
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(b, "running"))
	{
		if (srv_jstrings_contains(cancel, v->valuestring))
			continue;
		if (store_get(st, T_LEASES, v->valuestring, &rec) != OP_OK ||
		    !str_eq(srv_jstr(rec, "agent_id"), r->agent_id) ||
		    !str_eq(srv_jstr(rec, "state"), "active"))
			cJSON_AddItemToArray(cancel, cJSON_CreateString(v->valuestring));
		cJSON_Delete(rec);
		rec = NULL;
	}
	life = r->cert_not_after - r->cert_not_before;
	cJSON_AddBoolToObject(o, "renew_cert",
			      r->cert_expired || r->now_ms >= r->cert_not_before + life / 2);
	srv_jadd_time(o, "cert_not_after", r->cert_not_after);
	store_meta_get(st, "recommended_version", &recommended);
	srv_jadd_str(o, "recommended_version", recommended);
	free(recommended);
	rq_ok(r, 200, o);
out:
	cJSON_Delete(u);
	cJSON_Delete(mine);
	cJSON_Delete(me);
	cJSON_Delete(active);
	cJSON_Delete(yes);
}

static void self_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *o;

	cJSON_Delete(r->agent);
	r->agent = NULL;
	if (store_get(st, T_AGENTS, r->agent_id, &r->agent) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot read the agent registry: retry later");
		return;
	}
	o = agent_public(s, r->agent, r->now_ms);

	add_secs(o, "heartbeat_interval", s->cfg.heartbeat_interval);
	add_secs(o, "lease_ttl", s->cfg.lease_ttl);
	add_secs(o, "long_poll", s->cfg.long_poll);
	cJSON_AddStringToObject(o, "desired_state",
				str_eq(srv_jstr(r->agent, "state"), "draining") ? "drain" : "run");
	rq_ok(r, 200, o);
}

/* Ends every active lease of AGENT_ID (revoked or deregistered) at once. */
static void lose_agent_leases(struct srv *s, struct store *st, const char *agent_id,
			      const char *why, int64_t now, bool *wake)
{
	cJSON *me = cJSON_CreateString(agent_id), *active = cJSON_CreateString("active"), *ls = NULL;
	struct store_cond c[2] = {{"agent_id", SO_EQ, me}, {"state", SO_EQ, active}};
	struct store_query q = {c, 2, NULL, false, 0, 0, NULL};
	cJSON *l;

	if (st->ops->select(st, T_LEASES, &q, &ls) == OP_OK) {
		cJSON_ArrayForEach(l, ls)
		{
			tasks_lease_lost(s, st, l, why, now, wake);
		}
	}
	cJSON_Delete(ls);
	cJSON_Delete(me);
	cJSON_Delete(active);
}

/* Shared with the admin API through this file's one caller there. */
void agent_revoke(struct srv *s, struct store *st, const char *agent_id, const char *by,
		  int64_t now, bool *wake);
void agent_revoke(struct srv *s, struct store *st, const char *agent_id, const char *by,
		  int64_t now, bool *wake)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddStringToObject(u, "state", "revoked");
	cJSON_AddNumberToObject(u, "revoked_at", (double)now);
	cJSON_AddStringToObject(u, "revoked_by", by);
	cJSON_AddStringToObject(u, "state_changed_by", by);
	cJSON_AddNumberToObject(u, "state_changed_at", (double)now);
	store_update(st, T_AGENTS, agent_id, u);
	cJSON_Delete(u);
	lose_agent_leases(s, st, agent_id, "lost: agent revoked", now, wake);
}

static void deregister_run(struct rq *r, struct store *st)
{
	cJSON *o = cJSON_CreateObject();
	bool wake = false;

	agent_revoke(r->srv, st, r->agent_id, "agent (deregistered)", r->now_ms, &wake);
	r->job.wake = wake;
	op_log_info("agent", "agent %s deregistered itself%s%s", r->agent_id,
		    srv_jstr(r->body, "reason") ? ": " : "",
		    srv_jstr(r->body, "reason") ? srv_jstr(r->body, "reason") : "");
	cJSON_AddBoolToObject(o, "deregistered", true);
	cJSON_AddStringToObject(o, "agent_id", r->agent_id);
	rq_ok(r, 200, o);
}

static bool rotate_pre(struct rq *r)
{
	char msg[400];

	if (pki_csr_check(srv_jstr(r->body, "csr"), &r->csr, r->key_hash, msg, sizeof(msg)) < 0) {
		rq_error(r, 400, "bad_csr", "%s", msg);
		return false;
	}
	return true;
}

static void rotate_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	char serial[65];
	char *cert = NULL;
	int64_t nb = 0, na = 0;
	cJSON *u, *o;

	if (pki_issue_client(&s->pki, r->csr, r->agent_id, (int64_t)s->cfg.cert_validity, &cert,
			     serial, &nb, &na) < 0) {
		rq_error(r, 500, "internal", "cannot issue the client certificate");
		return;
	}
	/* Old and new serial stay valid until the new one is first used (agent_prelude). */
	u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "next_serial", serial);
	cJSON_AddNumberToObject(u, "next_not_before", (double)nb);
	cJSON_AddNumberToObject(u, "next_not_after", (double)na);
	cJSON_AddNumberToObject(u, "rotated_at", (double)r->now_ms);
	store_update(st, T_AGENTS, r->agent_id, u);
	cJSON_Delete(u);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "agent_id", r->agent_id);
	cJSON_AddStringToObject(o, "certificate", cert);
	cJSON_AddStringToObject(o, "ca_certificate", s->pki.ca_pem);
	srv_jadd_time(o, "cert_not_after", na);
	op_log_info("agent", "agent %s rotated its certificate: new serial=%s%s", r->agent_id,
		    serial, r->cert_expired ? " (the old one had expired)" : "");
	free(cert);
	rq_ok(r, 200, o);
}

/* ---- leases: long poll ------------------------------------------------------------------ */

static void waiter_remove(struct srv *s, struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		s->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	s->nwaiters--;
	if (w->timer)
		event_free(w->timer);
	if (w->closed)
		event_free(w->closed);
	cJSON_Delete(w->types);
	cJSON_free(w->types_key);
	w->r->waiter = NULL;
	free(w);
}

static void waiter_answer_empty(struct srv *s, struct waiter *w)
{
	struct rq *r = w->r;

	waiter_remove(s, w);
	r->status = 204;
	rq_send(r);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	if (w->in_flight) {
		w->expired = true;
		return;
	}
	waiter_answer_empty(w->r->srv, w);
}

/* The agent closed the connection of a waiting lease request (it restarted, or gave up):
 * forget the request, or a task would be leased to nobody and wait out the TTL. libevent
 * reads nothing while a request is pending, so the socket is watched for EV_CLOSED. */
static void waiter_closed(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	if (w->in_flight) {
		w->expired = true;
		return;
	}
	op_log_debug("lease", "agent %s hung up its waiting lease request", w->r->agent_id);
	waiter_answer_empty(w->r->srv, w);
}

static void leases_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	const cJSON *types = cJSON_GetObjectItemCaseSensitive(r->body, "task_types");
	int slots = (int)srv_jint(r->body, "slots", 1);
	cJSON *leases, *o;
	bool wake = false;

	if (str_eq(srv_jstr(r->agent, "state"), "draining")) {
		rq_error(r, 409, "agent_draining",
			 "agent %s is draining: it gets no new leases until `outpost-server agents undrain`",
			 r->agent_id);
		return;
	}
	if (types == NULL)
		types = cJSON_GetObjectItemCaseSensitive(r->agent, "task_types");
	if (slots > s->cfg.max_slots)
		slots = s->cfg.max_slots;
	leases = tasks_acquire(s, st, r->agent, slots, types, r->now_ms, &wake);
	if (cJSON_GetArraySize(leases) > 0) {
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "leases", leases);
		rq_ok(r, 200, o);
		return;
	}
	cJSON_Delete(leases);
	if (srv_jnum(r->body, "wait", 0) > 0 && slots > 0 && cJSON_GetArraySize(types) > 0) {
		r->no_reply = true;
		r->work = cJSON_Duplicate(types, true);
		return;
	}
	r->status = 204;
}

static void leases_done(struct rq *r)
{
	struct srv *s = r->srv;
	struct waiter *w;
	double wait;
	struct timeval tv;

	if (!r->no_reply) {
		rq_send(r);
		return;
	}
	r->no_reply = false;
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		r->status = 204;
		rq_send(r);
		return;
	}
	wait = srv_jnum(r->body, "wait", 0);
	if (wait > s->cfg.long_poll)
		wait = s->cfg.long_poll;
	w->r = r;
	w->slots = (int)srv_jint(r->body, "slots", 1);
	if (w->slots > s->cfg.max_slots)
		w->slots = s->cfg.max_slots;
	w->types = r->work;
	w->types_key = op_json_print(w->types, false);
	r->work = NULL;
	r->waiter = w;
	w->timer = evtimer_new(s->base, waiter_timeout, w);
	{
		struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
		struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
		evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

		if (fd >= 0 && (w->closed = event_new(s->base, fd, EV_CLOSED, waiter_closed, w)))
			event_add(w->closed, NULL);
	}
	tv.tv_sec = (time_t)wait;
	tv.tv_usec = (suseconds_t)((wait - (double)tv.tv_sec) * 1e6);
	evtimer_add(w->timer, &tv);
	w->next = s->waiters;
	if (s->waiters)
		s->waiters->prev = w;
	s->waiters = w;
	s->nwaiters++;
}

struct dispatch {
	struct dbjob job;
	struct srv *s;
	struct waiter **ws;
	size_t n;
};

static void dispatch_run(struct dbjob *j, struct store *st)
{
	struct dispatch *d = (struct dispatch *)j;
	int64_t now = srv_now_ms();
	/* type lists known to have nothing queued: most waiters share one or a few */
	const char *empty[16];
	size_t nempty = 0;

	for (size_t i = 0; i < d->n; i++) {
		struct rq *r = d->ws[i]->r;
		cJSON *agent = NULL, *leases;
		const char *key = d->ws[i]->types_key;
		bool wake = false, skip = false;

		for (size_t k = 0; key && k < nempty && !skip; k++)
			skip = strcmp(empty[k], key) == 0;
		if (skip)
			continue;
		if (store_get_cols(st, T_AGENTS, r->agent_id, AGENT_AUTH_COLS, &agent) != OP_OK ||
		    !str_eq(srv_jstr(agent, "state"), "active")) {
			cJSON_Delete(agent);
			continue;
		}
		leases = tasks_acquire(d->s, st, agent, d->ws[i]->slots, d->ws[i]->types, now, &wake);
		if (cJSON_GetArraySize(leases) > 0) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddItemToObject(o, "leases", leases);
			rq_ok(r, 200, o);
		} else {
			/* Nothing for this agent; when nothing at all is queued of these types,
			 * skip every other waiter with the same list. */
			cJSON *tq = cJSON_CreateString("queued"), *cnt = NULL;
			struct store_cond c[2] = {{"state", SO_EQ, tq},
						  {"type", SO_IN, d->ws[i]->types}};

			if (st->ops->count(st, T_TASKS, c, 2, NULL, &cnt) == OP_OK &&
			    srv_jint(cnt, "count", 1) == 0 && key && nempty < OP_ARRAY_LEN(empty))
				empty[nempty++] = key;
			cJSON_Delete(cnt);
			cJSON_Delete(tq);
			cJSON_Delete(leases);
		}
		cJSON_Delete(agent);
	}
}

static void kick(struct srv *s);

static void dispatch_done(struct dbjob *j)
{
	struct dispatch *d = (struct dispatch *)j;
	struct srv *s = d->s;

	for (size_t i = 0; i < d->n; i++) {
		struct waiter *w = d->ws[i];
		struct rq *r = w->r;

		w->in_flight = false;
		if (r->status == 200 && !j->store_error) {
			waiter_remove(s, w);
			rq_send(r);
		} else if (w->expired || s->stopping) {
			waiter_answer_empty(s, w);
		} else if (r->status != 0) {
			cJSON_Delete(r->resp);
			r->resp = NULL;
			r->status = 0;
		}
	}
	free(d->ws);
	free(d);
	s->dispatching = false;
	if (s->dispatch_again) {
		s->dispatch_again = false;
		kick(s);
	}
}

/* Offers new work to every waiting lease request, in one DB job. */
static void kick(struct srv *s)
{
	struct dispatch *d;
	struct waiter *w, *next;
	size_t n = 0;

	if (s->nwaiters == 0 || s->stopping)
		return;
	if (s->dispatching) {
		s->dispatch_again = true;
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL || (d->ws = calloc(s->nwaiters, sizeof(*d->ws))) == NULL) {
		free(d);
		return;
	}
	for (w = s->waiters; w; w = next) {
		next = w->next;
		if (evhttp_request_get_connection(w->r->req) == NULL) {
			waiter_answer_empty(s, w); /* the agent hung up: libevent frees it */
			continue;
		}
		w->in_flight = true;
		d->ws[n++] = w;
	}
	if (n == 0) {
		free(d->ws);
		free(d);
		return;
	}
	d->s = s;
	d->n = n;
	d->job.run = dispatch_run;
	d->job.done = dispatch_done;
	s->dispatching = true;
	dbq_submit(s->dbq, &d->job);
}

void leases_after_batch(struct srv *s, bool wake)
{
	if (wake)
		kick(s);
}

void leases_cancel_all_waiters(struct srv *s)
{
	struct waiter *w, *next;

	for (w = s->waiters; w; w = next) {
		next = w->next;
		if (!w->in_flight)
			waiter_answer_empty(s, w);
	}
}

/* ---- leases: renew, logs, complete, release, steps -------------------------------------- */

/* The lease of R's path when it is active, this agent's and not past its expiry; otherwise
 * sets 409 lease_lost and returns NULL. */
static cJSON *fenced_lease(struct rq *r, struct store *st)
{
	cJSON *l = NULL;
	const char *id = r->param[0];

	if (store_get(st, T_LEASES, id, &l) != OP_OK || !str_eq(srv_jstr(l, "agent_id"), r->agent_id)) {
		rq_error(r, 409, "lease_lost", "lease %s is not held by agent %s", id, r->agent_id);
		cJSON_Delete(l);
		return NULL;
	}
	if (!str_eq(srv_jstr(l, "state"), "active")) {
		rq_error(r, 409, "lease_lost", "lease %s is no longer active (%s%s%s): drop the task's result",
			 id, srv_jstr(l, "state"), srv_jstr(l, "status") ? ": " : "",
			 srv_jstr(l, "status") ? srv_jstr(l, "status") : "");
		cJSON_Delete(l);
		return NULL;
	}
	if (srv_jint(l, "expires_at", 0) < r->now_ms) {
		rq_error(r, 409, "lease_lost", "lease %s expired: drop the task's result", id);
		cJSON_Delete(l);
		return NULL;
	}
	return l;
}

static void renew_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *l = fenced_lease(r, st), *t = NULL, *u, *o;
	const cJSON *progress = cJSON_GetObjectItemCaseSensitive(r->body, "progress");
	bool cancel;

	if (l == NULL)
		return;
	u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "expires_at", (double)r->now_ms + s->cfg.lease_ttl * 1000);
	cJSON_AddNumberToObject(u, "renewed_at", (double)r->now_ms);
	if (progress)
		cJSON_AddItemToObject(u, "progress", cJSON_Duplicate(progress, true));
	store_update(st, T_LEASES, r->param[0], u);
	cJSON_Delete(u);
	{
		static const char *const cols[] = {"id", "cancel_requested", "timeout", "started_at", NULL};

		store_get_cols(st, T_TASKS, srv_jstr(l, "task_id"), cols, &t);
	}
	cancel = srv_jbool(l, "cancel", false) || srv_jbool(t, "cancel_requested", false);
	/* The server's own backstop for the task timeout: the agent enforces it first. */
	if (t && srv_jnum(t, "timeout", 0) > 0 && srv_jint(t, "started_at", 0) > 0 &&
	    (double)(r->now_ms - srv_jint(l, "created_at", 0)) >
		    (srv_jnum(t, "timeout", 0) + s->cfg.lease_ttl) * 1000)
		cancel = true;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "lease_id", r->param[0]);
	add_secs(o, "ttl", s->cfg.lease_ttl);
	cJSON_AddBoolToObject(o, "cancel", cancel);
	rq_ok(r, 200, o);
	cJSON_Delete(t);
	cJSON_Delete(l);
}

static const char *const TASK_LOG_COLS[] = {"id", "log_size", NULL};

enum log_append { LOG_APPENDED, LOG_OFFSET_MISMATCH, LOG_TASK_GONE, LOG_STORE_FAILED };

/* Appends DATA, which starts at byte OFFSET of lease L's log, to its task's log (capped at
 * max_log_bytes). *HAVE is what the server had of the lease's log before; *TRUNCATED says
 * that the cap cut the chunk. */
static enum log_append append_log(struct rq *r, struct store *st, const cJSON *l, int64_t offset,
				  const char *data, int64_t *have, bool *truncated)
{
	struct srv *s = r->srv;
	cJSON *t = NULL, *chunk, *u;
	size_t len = strlen(data);
	int64_t tsize, keep;
	char header[300];
	enum log_append rc = LOG_APPENDED;

	*have = srv_jint(l, "log_size", 0);
	*truncated = false;
	if (offset != *have)
		return LOG_OFFSET_MISMATCH;
	if (store_get_cols(st, T_TASKS, srv_jstr(l, "task_id"), TASK_LOG_COLS, &t) != OP_OK)
		return LOG_TASK_GONE;
	tsize = srv_jint(t, "log_size", 0);
	if (len > 0 && *have == 0 && tsize > 0) {
		/* A later attempt: mark where it starts in the task's log. */
		int n = snprintf(header, sizeof(header), "\n--- attempt %lld (agent %s, lease %s) ---\n",
				 (long long)srv_jint(l, "attempt", 0), r->agent_id, r->param[0]);

		chunk = cJSON_CreateObject();
		cJSON_AddStringToObject(chunk, "task_id", srv_jstr(t, "id"));
		cJSON_AddStringToObject(chunk, "lease_id", r->param[0]);
		cJSON_AddNumberToObject(chunk, "offset", -1);
		cJSON_AddNumberToObject(chunk, "toff", (double)tsize);
		cJSON_AddNumberToObject(chunk, "tend", (double)(tsize + n));
		cJSON_AddStringToObject(chunk, "data", header);
		cJSON_AddNumberToObject(chunk, "at", (double)r->now_ms);
		st->ops->insert(st, T_LOGS, chunk, NULL);
		cJSON_Delete(chunk);
		tsize += n;
	}
	keep = (int64_t)len;
	if ((uint64_t)(tsize + keep) > s->cfg.max_log_bytes)
		keep = (int64_t)s->cfg.max_log_bytes > tsize ? (int64_t)s->cfg.max_log_bytes - tsize : 0;
	while (keep > 0 && keep < (int64_t)len && (data[keep] & 0xC0) == 0x80)
		keep--; /* never cut a UTF-8 sequence */
	if (keep > 0) {
		char *part = strndup(data, (size_t)keep);

		chunk = cJSON_CreateObject();
		cJSON_AddStringToObject(chunk, "task_id", srv_jstr(t, "id"));
		cJSON_AddStringToObject(chunk, "lease_id", r->param[0]);
		cJSON_AddNumberToObject(chunk, "offset", (double)offset);
		cJSON_AddNumberToObject(chunk, "toff", (double)tsize);
		cJSON_AddNumberToObject(chunk, "tend", (double)(tsize + keep));
		cJSON_AddStringToObject(chunk, "data", part ? part : "");
		cJSON_AddNumberToObject(chunk, "at", (double)r->now_ms);
		if (st->ops->insert(st, T_LOGS, chunk, NULL) != OP_OK)
			rc = LOG_STORE_FAILED;
		cJSON_Delete(chunk);
		free(part);
		if (rc != LOG_APPENDED)
			goto out;
	}
	u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "log_size", (double)(*have + (int64_t)len));
	store_update(st, T_LEASES, r->param[0], u);
	cJSON_Delete(u);
	u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "log_size", (double)(tsize + keep));
	if (keep < (int64_t)len)
		cJSON_AddBoolToObject(u, "log_truncated", true);
	store_update(st, T_TASKS, srv_jstr(t, "id"), u);
	cJSON_Delete(u);
	*truncated = keep < (int64_t)len;
out:
	cJSON_Delete(t);
	return rc;
}

static void logs_run(struct rq *r, struct store *st)
{
	cJSON *l = fenced_lease(r, st), *o;
	int64_t offset = srv_jint(r->body, "offset", 0), have;
	bool truncated;

	if (l == NULL)
		return;
	switch (append_log(r, st, l, offset, srv_jstr(r->body, "data"), &have, &truncated)) {
	case LOG_OFFSET_MISMATCH:
		rq_error(r, 416, "offset_mismatch",
			 "log chunk starts at offset %lld but the server has %lld bytes of this lease's log: resend from %lld",
			 (long long)offset, (long long)have, (long long)have);
		cJSON_AddNumberToObject(r->resp, "offset", (double)have);
		break;
	case LOG_TASK_GONE:
		rq_error(r, 409, "lease_lost", "the task of lease %s is gone", r->param[0]);
		break;
	case LOG_STORE_FAILED:
		rq_error(r, 503, "store_unavailable", "cannot store the log chunk: retry later");
		break;
	case LOG_APPENDED:
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "offset",
					(double)(have + (int64_t)strlen(srv_jstr(r->body, "data"))));
		if (truncated)
			cJSON_AddBoolToObject(o, "truncated", true);
		rq_ok(r, 200, o);
		break;
	}
	cJSON_Delete(l);
}

static const char *cr_state_for(const char *status)
{
	if (strcmp(status, "succeeded") == 0)
		return "succeeded";
	if (strcmp(status, "cancelled") == 0)
		return "cancelled";
	return "failed";
}

static const char *const TASK_CR_COLS[] = {"id", "cr_id", NULL};

static void complete_run(struct rq *r, struct store *st)
{
	cJSON *l = NULL, *t = NULL, *u, *o, *v;
	const char *status = srv_jstr(r->body, "status");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(r->body, "error");

	/* A replay of a completion already recorded: acknowledged again, marked duplicate. */
	if (store_get(st, T_LEASES, r->param[0], &l) == OP_OK &&
	    str_eq(srv_jstr(l, "agent_id"), r->agent_id) && str_eq(srv_jstr(l, "state"), "completed")) {
		o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "acknowledged", true);
		cJSON_AddBoolToObject(o, "duplicate", true);
		cJSON_AddStringToObject(o, "task_id", srv_jstr(l, "task_id"));
		rq_ok(r, 200, o);
		cJSON_Delete(l);
		return;
	}
	cJSON_Delete(l);
	l = fenced_lease(r, st);
	if (l == NULL)
		return;
	/* The end of the task's log, sent with the completion (protocol.md). The result
	 * matters more than a log chunk out of step: that one is dropped with a warning. */
	if ((v = cJSON_GetObjectItemCaseSensitive(r->body, "log"))) {
		int64_t offset = srv_jint(v, "offset", 0), have;
		bool truncated;
		enum log_append la = append_log(r, st, l, offset, srv_jstr(v, "data"), &have,
						&truncated);

		if (la != LOG_APPENDED)
			op_log_warn("agent",
				    "lease %s: the log chunk sent with the completion was not stored "
				    "(%s; offset %lld, the server has %lld bytes)",
				    r->param[0],
				    la == LOG_OFFSET_MISMATCH ? "offset mismatch"
							      : la == LOG_TASK_GONE ? "task gone"
										    : "store error",
				    (long long)offset, (long long)have);
	}
	u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "state", "completed");
	cJSON_AddStringToObject(u, "status", status);
	cJSON_AddNumberToObject(u, "ended_at", (double)r->now_ms);
	store_update(st, T_LEASES, r->param[0], u);
	cJSON_Delete(u);

	u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "state", status);
	if (cJSON_IsString(err))
		cJSON_AddStringToObject(u, "reason", err->valuestring);
	else if (srv_jstr(err, "reason"))
		cJSON_AddStringToObject(u, "reason", srv_jstr(err, "reason"));
	else if (srv_jstr(err, "message"))
		cJSON_AddStringToObject(u, "reason", srv_jstr(err, "message"));
	else
		cJSON_AddNullToObject(u, "reason");
	if (err)
		cJSON_AddItemToObject(u, "error", cJSON_Duplicate(err, true));
	/* Moved, not copied: a result can be megabytes, and the body is done with. */
	if ((v = cJSON_DetachItemFromObjectCaseSensitive(r->body, "result")))
		cJSON_AddItemToObject(u, "result", v);
	if ((v = cJSON_DetachItemFromObjectCaseSensitive(r->body, "artifacts")))
		cJSON_AddItemToObject(u, "artifacts", v);
	if ((v = cJSON_GetObjectItemCaseSensitive(r->body, "duration")))
		cJSON_AddItemToObject(u, "duration", cJSON_Duplicate(v, true));
	cJSON_AddNumberToObject(u, "finished_at", (double)r->now_ms);
	cJSON_AddNumberToObject(u, "updated_at", (double)r->now_ms);
	store_update(st, T_TASKS, srv_jstr(l, "task_id"), u);
	cJSON_Delete(u);
	if (store_get_cols(st, T_TASKS, srv_jstr(l, "task_id"), TASK_CR_COLS, &t) == OP_OK &&
	    srv_jstr(t, "cr_id"))
		tasks_set_cr_state(st, srv_jstr(t, "cr_id"), cr_state_for(status), r->now_ms);
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "acknowledged", true);
	cJSON_AddStringToObject(o, "task_id", srv_jstr(l, "task_id"));
	cJSON_AddStringToObject(o, "state", status);
	rq_ok(r, 200, o);
	cJSON_Delete(t);
	cJSON_Delete(l);
}

static void release_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *l = fenced_lease(r, st), *t = NULL, *u, *o;
	const char *why = srv_jstr(r->body, "reason");
	char reason[1200];

	if (l == NULL)
		return;
	u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "state", "released");
	cJSON_AddStringToObject(u, "status", why ? why : "released");
	cJSON_AddNumberToObject(u, "ended_at", (double)r->now_ms);
	store_update(st, T_LEASES, r->param[0], u);
	cJSON_Delete(u);
	if (store_get(st, T_TASKS, srv_jstr(l, "task_id"), &t) == OP_OK &&
	    str_eq(srv_jstr(t, "lease_id"), r->param[0]) && str_eq(srv_jstr(t, "state"), "leased")) {
		u = cJSON_CreateObject();
		if (srv_jbool(t, "cancel_requested", false)) {
			cJSON_AddStringToObject(u, "state", "cancelled");
			cJSON_AddNumberToObject(u, "finished_at", (double)r->now_ms);
		} else {
			cJSON_AddStringToObject(u, "state", "queued");
			/* A release does not spend an attempt. */
			cJSON_AddNumberToObject(u, "attempt", (double)(srv_jint(t, "attempt", 1) - 1));
			cJSON_AddStringToObject(u, "released_agent", r->agent_id);
			cJSON_AddNumberToObject(u, "released_until",
						(double)r->now_ms + s->cfg.release_backoff * 1000);
			r->job.wake = true;
		}
		snprintf(reason, sizeof(reason), "released by agent %s%s%s", r->agent_id,
			 why ? ": " : "", why ? why : "");
		cJSON_AddStringToObject(u, "reason", reason);
		cJSON_AddNumberToObject(u, "updated_at", (double)r->now_ms);
		store_update(st, T_TASKS, srv_jstr(t, "id"), u);
		cJSON_Delete(u);
		if (srv_jstr(t, "cr_id")) {
			u = cJSON_CreateObject();
			cJSON_AddStringToObject(u, "state", "approved");
			store_update(st, T_CRS, srv_jstr(t, "cr_id"), u);
			cJSON_Delete(u);
		}
	}
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "released", true);
	cJSON_AddStringToObject(o, "task_id", srv_jstr(l, "task_id"));
	rq_ok(r, 200, o);
	cJSON_Delete(t);
	cJSON_Delete(l);
}

static void kick_later_cb(evutil_socket_t fd, short what, void *arg)
{
	kick(arg);
}

/* After a release, the agent that released waits out release_backoff; when it ends, the
 * waiting lease requests (perhaps that agent's) hear of the task again. */
static void release_done(struct rq *r)
{
	struct srv *s = r->srv;

	if (!r->job.failed && !r->job.store_error) {
		double secs = s->cfg.release_backoff + 0.05;
		struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};

		/* one timer per release (libevent frees it after it fires, or with the base) */
		event_base_once(s->base, -1, EV_TIMEOUT, kick_later_cb, s, &tv);
	}
	rq_send(r);
}

/* A change request's step record (decisions.md 16). Accepted from the lease's own agent even
 * after the lease was lost: the record of what happened on the host must survive that. */
static void steps_run(struct rq *r, struct store *st)
{
	cJSON *l = NULL, *t = NULL, *rec, *o;
	const cJSON *step = cJSON_GetObjectItemCaseSensitive(r->body, "step");
	struct op_buf canon = OP_BUF_INIT;
	char digest[65];
	bool late;
	op_rc rc;

	if (store_get(st, T_LEASES, r->param[0], &l) != OP_OK ||
	    !str_eq(srv_jstr(l, "agent_id"), r->agent_id)) {
		rq_error(r, 409, "lease_lost", "lease %s is not held by agent %s", r->param[0],
			 r->agent_id);
		goto out;
	}
	if (store_get(st, T_TASKS, srv_jstr(l, "task_id"), &t) != OP_OK || !srv_jstr(t, "cr_id")) {
		rq_error(r, 400, "not_a_change_request",
			 "lease %s is not a change request's task: steps are recorded for change.apply only",
			 r->param[0]);
		goto out;
	}
	if (op_json_canonical(step, &canon) < 0) {
		rq_error(r, 400, "invalid_field", "body.step cannot be put in canonical form");
		goto out;
	}
	srv_sha256_hex(canon.data, canon.len, digest);
	late = !str_eq(srv_jstr(l, "state"), "active") && !str_eq(srv_jstr(l, "state"), "completed");
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "cr_id", srv_jstr(t, "cr_id"));
	cJSON_AddStringToObject(rec, "task_id", srv_jstr(t, "id"));
	cJSON_AddStringToObject(rec, "lease_id", r->param[0]);
	cJSON_AddNumberToObject(rec, "attempt", (double)srv_jint(l, "attempt", 0));
	cJSON_AddItemToObject(rec, "step", cJSON_Duplicate(step, true));
	cJSON_AddStringToObject(rec, "digest", digest);
	cJSON_AddNumberToObject(rec, "received_at", (double)r->now_ms);
	cJSON_AddBoolToObject(rec, "late", late);
	rc = st->ops->insert(st, T_CR_STEPS, rec, NULL);
	cJSON_Delete(rec);
	if (rc != OP_OK && rc != OP_EEXIST) {
		rq_error(r, 503, "store_unavailable", "cannot record the step: retry later");
		goto out;
	}
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "recorded", true);
	if (rc == OP_EEXIST)
		cJSON_AddBoolToObject(o, "duplicate", true);
	cJSON_AddBoolToObject(o, "lease_active", str_eq(srv_jstr(l, "state"), "active"));
	rq_ok(r, 200, o);
out:
	op_buf_release(&canon);
	cJSON_Delete(t);
	cJSON_Delete(l);
}

/* A small artifact uploaded to the server (decisions.md 17): fenced like the other lease
 * calls; the same name and bytes again is a replay, other bytes under that name a conflict. */
static void artifact_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *l = fenced_lease(r, st), *rec = NULL, *prev = NULL, *o, *tv, *nv;
	const char *name = srv_jstr(r->body, "name"), *want = srv_jstr(r->body, "sha256");
	unsigned char *bytes = NULL;
	long n;
	char sha[65];
	op_rc rc;

	if (l == NULL)
		return;
	if (s->cfg.max_artifact_bytes == 0) {
		rq_error(r, 403, "uploads_disabled",
			 "this server takes no artifact uploads (max_artifact_bytes is 0): keep artifacts on the host");
		goto out;
	}
	n = srv_b64_decode(srv_jstr(r->body, "content"), &bytes);
	if (n < 0) {
		rq_error(r, 400, "invalid_field", "body.content: not base64");
		goto out;
	}
	if ((uint64_t)n > s->cfg.max_artifact_bytes) {
		rq_error(r, 413, "artifact_too_large",
			 "artifact %s has %ld bytes, more than the server keeps (%llu): keep it on the host",
			 name, n, (unsigned long long)s->cfg.max_artifact_bytes);
		goto out;
	}
	srv_sha256_hex(bytes, (size_t)n, sha);
	if (want && strcmp(want, sha) != 0) {
		rq_error(r, 400, "checksum_mismatch", "artifact %s: sha256 is %s, the body says %s", name,
			 sha, want);
		goto out;
	}
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "task_id", srv_jstr(l, "task_id"));
	cJSON_AddStringToObject(rec, "lease_id", r->param[0]);
	cJSON_AddStringToObject(rec, "agent_id", r->agent_id);
	cJSON_AddStringToObject(rec, "name", name);
	cJSON_AddNumberToObject(rec, "size", (double)n);
	cJSON_AddStringToObject(rec, "sha256", sha);
	srv_jadd_str(rec, "content_type", srv_jstr(r->body, "content_type"));
	cJSON_AddStringToObject(rec, "content", srv_jstr(r->body, "content"));
	cJSON_AddNumberToObject(rec, "created_at", (double)r->now_ms);
	rc = st->ops->insert(st, T_ARTIFACTS, rec, NULL);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddNumberToObject(o, "size", (double)n);
	cJSON_AddStringToObject(o, "sha256", sha);
	if (rc == OP_EEXIST) {
		struct store_cond c[2];
		struct store_query q = {c, 2, NULL, false, 1, 0, NULL};

		tv = cJSON_CreateString(srv_jstr(l, "task_id"));
		nv = cJSON_CreateString(name);
		c[0] = (struct store_cond){"task_id", SO_EQ, tv};
		c[1] = (struct store_cond){"name", SO_EQ, nv};
		st->ops->select(st, T_ARTIFACTS, &q, &prev);
		cJSON_Delete(tv);
		cJSON_Delete(nv);
		if (str_eq(srv_jstr(cJSON_GetArrayItem(prev, 0), "sha256"), sha)) {
			cJSON_AddBoolToObject(o, "duplicate", true);
			rq_ok(r, 200, o);
		} else {
			cJSON_Delete(o);
			rq_error(r, 409, "artifact_exists",
				 "task %s already has an artifact named %s with other content",
				 srv_jstr(l, "task_id"), name);
		}
		goto out;
	}
	if (rc != OP_OK) {
		cJSON_Delete(o);
		rq_error(r, 503, "store_unavailable", "cannot store the artifact: retry later");
		goto out;
	}
	rq_ok(r, 201, o);
out:
	free(bytes);
	cJSON_Delete(prev);
	cJSON_Delete(rec);
	cJSON_Delete(l);
}

/* ---- the reaper -------------------------------------------------------------------------- */

struct reap {
	struct dbjob job;
	struct srv *s;
	bool housekeeping;
};

/* Retention: finished tasks (not change requests') with their logs, leases and artifacts,
 * 500 per run; audit entries past audit_retention. */
static void prune(struct srv *s, struct store *st, int64_t now)
{
	static const char *const cols[] = {"id", NULL};
	static const enum store_tab deps[] = {T_LOGS, T_LEASES, T_ARTIFACTS};
	cJSON *rows = NULL, *cut, *zero = cJSON_CreateNumber(0);
	const cJSON *t;
	int n = 0;

	if (s->cfg.retention > 0) {
		struct store_cond c[3];
		struct store_query q = {c, 3, "finished_at", false, 500, 0, cols};

		cut = cJSON_CreateNumber((double)now - s->cfg.retention * 1000);
		c[0] = (struct store_cond){"finished_at", SO_LT, cut};
		c[1] = (struct store_cond){"finished_at", SO_GT, zero};
		c[2] = (struct store_cond){"cr_id", SO_NULL, NULL};
		if (st->ops->select(st, T_TASKS, &q, &rows) == OP_OK) {
			cJSON_ArrayForEach(t, rows)
			{
				const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
				struct store_cond dc = {"task_id", SO_EQ, id}, tc = {"id", SO_EQ, id};

				for (size_t i = 0; i < OP_ARRAY_LEN(deps); i++)
					st->ops->remove(st, deps[i], &dc, 1, NULL);
				st->ops->remove(st, T_TASKS, &tc, 1, NULL);
				n++;
			}
		}
		cJSON_Delete(rows);
		cJSON_Delete(cut);
		if (n > 0)
			op_log_info("retention", "deleted %d tasks finished more than %.0f days ago", n,
				    s->cfg.retention / 86400);
	}
	if (s->cfg.audit_retention > 0) {
		struct store_cond c;

		cut = cJSON_CreateNumber((double)now - s->cfg.audit_retention * 1000);
		c = (struct store_cond){"at", SO_LT, cut};
		st->ops->remove(st, T_AUDIT, &c, 1, &n);
		cJSON_Delete(cut);
	}
	cJSON_Delete(zero);
}

static void reap_run(struct dbjob *j, struct store *st)
{
	struct reap *rp = (struct reap *)j;
	struct srv *s = rp->s;
	int64_t now = srv_now_ms();
	cJSON *active = cJSON_CreateString("active"), *nowv = cJSON_CreateNumber((double)now);
	cJSON *ls = NULL, *l;
	struct store_cond c[2] = {{"state", SO_EQ, active}, {"expires_at", SO_LT, nowv}};
	struct store_query q = {c, 2, "expires_at", false, 500, 0, NULL};
	bool wake = false;

	if (st->ops->select(st, T_LEASES, &q, &ls) == OP_OK) {
		cJSON_ArrayForEach(l, ls)
		{
			tasks_lease_lost(s, st, l, "expired", now, &wake);
		}
	}
	cJSON_Delete(ls);
	ls = NULL;
	/* Approved change requests whose approval ran out before they started. */
	{
		cJSON *queued = cJSON_CreateString("queued"), *zero = cJSON_CreateNumber(0);
		struct store_cond cc[3] = {{"state", SO_EQ, queued}, {"not_after", SO_LT, nowv},
					   {"not_after", SO_GT, zero}};
		struct store_query cq = {cc, 3, NULL, false, 100, 0, NULL};

		if (st->ops->select(st, T_TASKS, &cq, &ls) == OP_OK) {
			cJSON_ArrayForEach(l, ls)
			{
				cJSON *u = cJSON_CreateObject();

				cJSON_AddStringToObject(u, "state", "expired");
				cJSON_AddStringToObject(u, "reason",
							"the approval ran out before the target agent took the task");
				cJSON_AddNumberToObject(u, "finished_at", (double)now);
				store_update(st, T_TASKS, srv_jstr(l, "id"), u);
				if (srv_jstr(l, "cr_id"))
					tasks_set_cr_state(st, srv_jstr(l, "cr_id"), "expired", now);
				cJSON_Delete(u);
			}
		}
		cJSON_Delete(ls);
		cJSON_Delete(queued);
		cJSON_Delete(zero);
	}
	if (rp->housekeeping) {
		cJSON *old = cJSON_CreateNumber((double)now - s->cfg.enroll_replay_window * 1000);
		struct store_cond ec = {"created_at", SO_LT, old};

		st->ops->remove(st, T_ENROLLMENTS, &ec, 1, NULL);
		cJSON_Delete(old);
		prune(s, st, now);
	}
	cJSON_Delete(active);
	cJSON_Delete(nowv);
	j->wake = wake;
}

static void reap_done(struct dbjob *j)
{
	struct reap *rp = (struct reap *)j;

	rp->s->reaping = false;
	free(rp);
}

static void reap_tick(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	static int64_t last_hk;
	int64_t now = srv_mono_us() / 1000, every = 600000;
	struct reap *rp;

	if (s->reaping || s->stopping)
		return;
	rp = calloc(1, sizeof(*rp));
	if (rp == NULL)
		return;
	rp->s = s;
	/* housekeeping every 10 minutes, or more often when a retention is short (tests) */
	if (s->cfg.retention > 0 && s->cfg.retention * 250 < (double)every)
		every = (int64_t)(s->cfg.retention * 250);
	rp->housekeeping = last_hk == 0 || now - last_hk >= every;
	if (rp->housekeeping)
		last_hk = now;
	rp->job.run = reap_run;
	rp->job.done = reap_done;
	s->reaping = true;
	dbq_submit(s->dbq, &rp->job);
}

void reaper_start(struct srv *s)
{
	double every = s->cfg.lease_ttl / 4;
	struct timeval tv;

	if (every > 1)
		every = 1;
	if (every < 0.05)
		every = 0.05;
	tv.tv_sec = (time_t)every;
	tv.tv_usec = (suseconds_t)((every - (double)tv.tv_sec) * 1e6);
	s->reap_ev = event_new(s->base, -1, EV_PERSIST, reap_tick, s);
	event_add(s->reap_ev, &tv);
}

op_rc leases_restart_grace(struct srv *s, struct store *st, struct op_error *err)
{
	int64_t now = srv_now_ms(), until = now + (int64_t)(s->cfg.restart_lease_grace * 1000);
	cJSON *active = cJSON_CreateString("active"), *untilv = cJSON_CreateNumber((double)until);
	cJSON *ls = NULL, *l;
	struct store_cond c[2] = {{"state", SO_EQ, active}, {"expires_at", SO_LT, untilv}};
	struct store_query q = {c, 2, NULL, false, 0, 0, NULL};
	op_rc rc;
	int n = 0;

	if ((rc = st->ops->begin(st)) != OP_OK)
		goto out;
	rc = st->ops->select(st, T_LEASES, &q, &ls);
	cJSON_ArrayForEach(l, ls)
	{
		cJSON *u = cJSON_CreateObject();

		cJSON_AddNumberToObject(u, "expires_at", (double)until);
		if (rc == OP_OK)
			rc = store_update(st, T_LEASES, srv_jstr(l, "id"), u);
		cJSON_Delete(u);
		n++;
	}
	if (rc == OP_OK)
		rc = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (rc == OP_OK && n > 0)
		op_log_info("lease", "%d leases in flight get a grace of %.1fs after the restart", n,
			    s->cfg.restart_lease_grace);
out:
	if (rc != OP_OK)
		op_fail(err, rc, "cannot extend the leases in flight: %s", st->errmsg);
	cJSON_Delete(ls);
	cJSON_Delete(active);
	cJSON_Delete(untilv);
	return rc;
}

/* ---- the table ---------------------------------------------------------------------------- */

struct route agent_routes[] = {
	{"GET", "/health", AUTH_NONE, NULL, health_pre, NULL, NULL, NULL, NULL},
	{"POST", "/agent/enroll", AUTH_NONE, ENROLL_SCHEMA, enroll_pre, enroll_run, NULL, NULL, NULL},
	{"POST", "/agent/heartbeat", AUTH_AGENT, HEARTBEAT_SCHEMA, heartbeat_pre, heartbeat_run, NULL,
	 NULL, NULL},
	{"GET", "/agent/self", AUTH_AGENT, NULL, NULL, self_run, NULL, NULL, NULL},
	{"POST", "/agent/deregister", AUTH_AGENT, DEREGISTER_SCHEMA, NULL, deregister_run, NULL, NULL,
	 NULL},
	{"POST", "/agent/rotate-cert", AUTH_AGENT_GRACE, CSR_SCHEMA, rotate_pre, rotate_run, NULL, NULL,
	 NULL},
	{"POST", "/agent/leases", AUTH_AGENT, LEASES_SCHEMA, NULL, leases_run, leases_done, NULL, NULL},
	{"POST", "/agent/leases/{}/renew", AUTH_AGENT, RENEW_SCHEMA, NULL, renew_run, NULL, NULL, NULL},
	{"POST", "/agent/leases/{}/logs", AUTH_AGENT, LOGS_SCHEMA, NULL, logs_run, NULL, NULL, NULL},
	{"POST", "/agent/leases/{}/complete", AUTH_AGENT, COMPLETE_SCHEMA, NULL, complete_run, NULL,
	 NULL, NULL},
	{"POST", "/agent/leases/{}/release", AUTH_AGENT, RELEASE_SCHEMA, NULL, release_run,
	 release_done, NULL, NULL},
	{"POST", "/agent/leases/{}/steps", AUTH_AGENT, STEPS_SCHEMA, NULL, steps_run, NULL, NULL, NULL},
	{"POST", "/agent/leases/{}/artifacts", AUTH_AGENT, ARTIFACT_SCHEMA, NULL, artifact_run, NULL,
	 NULL, NULL},
};
const size_t agent_routes_n = OP_ARRAY_LEN(agent_routes);
