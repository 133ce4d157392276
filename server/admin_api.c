/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API (bearer admin tokens): tokens, agents, tasks, change requests, settings,
 * audit. Everything the CLI (and a console) does goes through these routes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonjson.h"
#include "log.h"
#include "schema.h"
#include "server.h"
#include "util.h"

void agent_revoke(struct srv *s, struct store *st, const char *agent_id, const char *by,
		  int64_t now, bool *wake);

#define STR(n) "{\"type\":\"string\",\"maxLength\":" #n "}"
#define NSTR(n) "{\"type\":[\"string\",\"null\"],\"maxLength\":" #n "}"
#define STRLIST "{\"type\":\"array\",\"maxItems\":64,\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128}}"
#define NAME_PATTERN "^[A-Za-z0-9][A-Za-z0-9_.@-]*$"

static const char TOKEN_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
	"\"pool\":" NSTR(128) ",\"environment\":" NSTR(128) ",\"tags\":" STRLIST ","
	"\"ttl\":{\"type\":[\"number\",\"null\"],\"minimum\":1},"
	"\"uses\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000},"
	"\"description\":" STR(1024) "}}";

static const char ADMIN_TOKEN_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"name\"],\"properties\":{"
	"\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64,\"pattern\":\"" NAME_PATTERN "\"},"
	"\"description\":" STR(1024) "}}";

static const char EMPTY_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"reason\":" STR(1024) "}}";

#define TASK_PROPS                                                                              \
	"\"type\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128},"                          \
	"\"params\":{\"type\":\"object\"},\"name\":" STR(256) ","                                   \
	"\"pool\":" NSTR(128) ",\"environment\":" NSTR(128) ",\"tags\":" STRLIST ","              \
	"\"target_host\":" NSTR(253) ",\"target_agent\":" NSTR(64) ","                             \
	"\"timeout\":{\"type\":\"number\",\"minimum\":0.001,\"maximum\":31536000},"               \
	"\"max_attempts\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}"

static const char TASK_SCHEMA[] = "{\"type\":\"object\",\"additionalProperties\":false,"
				  "\"required\":[\"type\"],\"properties\":{" TASK_PROPS "}}";

static const char TASK_BATCH_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"tasks\"],\"properties\":{"
	"\"tasks\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":10000,\"items\":"
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"type\"],\"properties\":{" TASK_PROPS
	"}}}}}";

static const char RESOLVE_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"action\"],\"properties\":{"
	"\"action\":{\"enum\":[\"resume\",\"rollback\",\"abandon\"]},\"reason\":" STR(1024) "}}";

static const char CR_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,"
	"\"required\":[\"change_type\",\"target_agent\"],\"properties\":{"
	"\"change_type\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128},"
	"\"target_agent\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64},"
	"\"params\":{\"type\":\"object\"},\"title\":" STR(256) ",\"description\":" STR(8192) ","
	"\"timeout\":{\"type\":\"number\",\"minimum\":0.001,\"maximum\":31536000}}}";

static const char SETTINGS_SCHEMA[] =
	"{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
	"\"recommended_version\":" NSTR(64) "}}";

/* ---- helpers ----------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void audit_target(struct rq *r, const char *target)
{
	op_strlcpy(r->audit_target, target ? target : "", sizeof(r->audit_target));
}

static void audit_detail(struct rq *r, const char *key, cJSON *v)
{
	if (r->audit_detail == NULL)
		r->audit_detail = cJSON_CreateObject();
	srv_jset(r->audit_detail, key, v);
}

static int query_int(struct rq *r, const char *key, int dflt, int min, int max)
{
	const char *v = rq_query(r, key);
	long long n;

	if (v == NULL || op_parse_i64(v, min, max, &n) < 0)
		return dflt;
	return (int)n;
}

static cJSON *jstr(const char *s)
{
	return cJSON_CreateString(s ? s : "");
}

/* A JSON array of the strings in a comma-separated query value, or NULL. */
static cJSON *query_list(struct rq *r, const char *key)
{
	const char *v = rq_query(r, key);

	return v && *v ? srv_split_csv(v) : NULL;
}

static cJSON *all_agents(struct store *st)
{
	struct store_query q = {NULL, 0, "enrolled_at", false, 0, 0, NULL};
	cJSON *arr = NULL;

	if (st->ops->select(st, T_AGENTS, &q, &arr) != OP_OK)
		return cJSON_CreateArray();
	return arr;
}

/* ---- prelude and audit ------------------------------------------------------------------- */

void admin_prelude(struct rq *r, struct store *st)
{
	cJSON *t = NULL;

	if (store_find(st, T_ADMIN_TOKENS, "hash", r->token_hash, &t) != OP_OK ||
	    srv_jint(t, "revoked_at", 0) > 0) {
		rq_error(r, 401, "auth_invalid", "admin token is not valid (unknown or revoked)");
		cJSON_Delete(t);
		return;
	}
	op_strlcpy(r->admin, srv_jstr(t, "name"), sizeof(r->admin));
	if (r->now_ms - srv_jint(t, "last_used_at", 0) > 60000) {
		cJSON *u = cJSON_CreateObject();

		cJSON_AddNumberToObject(u, "last_used_at", (double)r->now_ms);
		store_update(st, T_ADMIN_TOKENS, r->admin, u);
		cJSON_Delete(u);
	}
	cJSON_Delete(t);
}

/* Runs after the action's savepoint: failed and refused actions are recorded too. */
void admin_audit(struct rq *r, struct store *st)
{
	const char *action = r->route->audit;
	cJSON *rec;

	if (r->admin[0] == '\0' && r->job.failed && str_eq(r->reason, "auth_invalid"))
		action = "auth.failed";
	if (action == NULL)
		return;
	rec = cJSON_CreateObject();
	cJSON_AddNumberToObject(rec, "at", (double)r->now_ms);
	cJSON_AddStringToObject(rec, "actor", r->admin[0] ? r->admin : "-");
	cJSON_AddStringToObject(rec, "action", action);
	if (str_eq(action, "auth.failed"))
		audit_target(r, r->path);
	cJSON_AddStringToObject(rec, "target", r->audit_target);
	cJSON_AddStringToObject(rec, "remote", r->remote);
	cJSON_AddStringToObject(rec, "result", r->job.failed ? (r->reason[0] ? r->reason : "failed") : "ok");
	if (r->audit_detail)
		cJSON_AddItemToObject(rec, "detail", cJSON_Duplicate(r->audit_detail, true));
	if (st->ops->insert(st, T_AUDIT, rec, NULL) != OP_OK)
		op_log_error("audit", "cannot write the audit record of %s by %s: %s", action,
			     r->admin, st->errmsg);
	cJSON_Delete(rec);
}

/* ---- whoami, stats, settings ------------------------------------------------------------ */

static void whoami_run(struct rq *r, struct store *st)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "name", r->admin);
	cJSON_AddStringToObject(o, "server_version", OUTPOST_SERVER_VERSION);
	rq_ok(r, 200, o);
}

static void stats_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *o = cJSON_CreateObject(), *agents = all_agents(st), *by = cJSON_CreateObject(), *c;
	const cJSON *a;
	cJSON *active = cJSON_CreateString("active");
	struct store_cond lc = {"state", SO_EQ, active};
	struct dbq_stats ds;

	cJSON_ArrayForEach(a, agents)
	{
		const char *status = agent_status(s, a, r->now_ms);
		cJSON *n = cJSON_GetObjectItemCaseSensitive(by, status);

		if (n)
			cJSON_SetNumberValue(n, n->valuedouble + 1);
		else
			cJSON_AddNumberToObject(by, status, 1);
	}
	cJSON_AddItemToObject(o, "agents", by);
	if (st->ops->count(st, T_TASKS, NULL, 0, "state", &c) == OP_OK)
		cJSON_AddItemToObject(o, "tasks", c);
	if (st->ops->count(st, T_LEASES, &lc, 1, NULL, &c) == OP_OK) {
		cJSON_AddNumberToObject(o, "active_leases", (double)srv_jint(c, "count", 0));
		cJSON_Delete(c);
	}
	if (st->ops->count(st, T_CRS, NULL, 0, "state", &c) == OP_OK)
		cJSON_AddItemToObject(o, "change_requests", c);
	dbq_get_stats(s->dbq, &ds);
	c = cJSON_AddObjectToObject(o, "database");
	cJSON_AddStringToObject(c, "backend", st->ops->name);
	cJSON_AddNumberToObject(c, "jobs", (double)ds.jobs);
	cJSON_AddNumberToObject(c, "transactions", (double)ds.batches);
	cJSON_AddNumberToObject(c, "largest_batch", (double)ds.max_batch);
	cJSON_AddNumberToObject(c, "commit_failures", (double)ds.commit_failures);
	cJSON_AddNumberToObject(c, "commit_ms_avg",
				ds.batches ? srv_round_ms(ds.commit_ms_total / (double)ds.batches) : 0);
	cJSON_AddNumberToObject(c, "commit_ms_max", srv_round_ms(ds.commit_ms_max));
	cJSON_AddNumberToObject(c, "commit_seconds", srv_round_ms(ds.commit_ms_total / 1000));
	cJSON_AddNumberToObject(c, "run_seconds", srv_round_ms(ds.run_ms_total / 1000));
	cJSON_AddNumberToObject(c, "idle_seconds", srv_round_ms(ds.idle_ms_total / 1000));
	cJSON_AddNumberToObject(o, "requests", (double)s->requests);
	cJSON_AddNumberToObject(o, "waiting_lease_requests", (double)s->nwaiters);
	srv_jadd_time(o, "started_at", s->started_at_ms);
	cJSON_AddStringToObject(o, "version", OUTPOST_SERVER_VERSION);
	rq_ok(r, 200, o);
	cJSON_Delete(agents);
	cJSON_Delete(active);
}

/* Prometheus text format, for a scraper with an admin token (bearer). */
static void metrics_run(struct rq *r, struct store *st)
{
	static const char *const cols[] = {"state", "last_seen", NULL};
	struct srv *s = r->srv;
	struct store_query q = {NULL, 0, NULL, false, 0, 0, cols};
	struct op_buf b = OP_BUF_INIT;
	cJSON *agents = NULL, *c = NULL, *active = cJSON_CreateString("active");
	struct store_cond lc = {"state", SO_EQ, active};
	const char *statuses[] = {"online", "offline", "draining", "revoked"};
	int counts[4] = {0};
	const cJSON *a;
	struct dbq_stats ds;

	if (st->ops->select(st, T_AGENTS, &q, &agents) == OP_OK) {
		cJSON_ArrayForEach(a, agents)
		{
			const char *status = agent_status(s, a, r->now_ms);

			for (int i = 0; i < 4; i++)
				if (strcmp(status, statuses[i]) == 0)
					counts[i]++;
		}
	}
	op_buf_puts(&b, "# HELP outpost_agents Enrolled agents by status.\n# TYPE outpost_agents gauge\n");
	for (int i = 0; i < 4; i++)
		op_buf_printf(&b, "outpost_agents{status=\"%s\"} %d\n", statuses[i], counts[i]);
	op_buf_puts(&b, "# HELP outpost_tasks Tasks by state.\n# TYPE outpost_tasks gauge\n");
	if (st->ops->count(st, T_TASKS, NULL, 0, "state", &c) == OP_OK) {
		cJSON_ArrayForEach(a, c)
		{
			op_buf_printf(&b, "outpost_tasks{state=\"%s\"} %g\n", a->string, a->valuedouble);
		}
	}
	cJSON_Delete(c);
	c = NULL;
	if (st->ops->count(st, T_LEASES, &lc, 1, NULL, &c) == OP_OK)
		op_buf_printf(&b, "# HELP outpost_active_leases Leases held by agents.\n"
				  "# TYPE outpost_active_leases gauge\noutpost_active_leases %lld\n",
			      (long long)srv_jint(c, "count", 0));
	cJSON_Delete(c);
	dbq_get_stats(s->dbq, &ds);
	op_buf_printf(&b,
		      "# HELP outpost_waiting_lease_requests Long polls waiting for work.\n"
		      "# TYPE outpost_waiting_lease_requests gauge\noutpost_waiting_lease_requests %zu\n"
		      "# HELP outpost_requests_total HTTP requests received.\n"
		      "# TYPE outpost_requests_total counter\noutpost_requests_total %llu\n"
		      "# HELP outpost_responses_5xx_total Responses with a 5xx status.\n"
		      "# TYPE outpost_responses_5xx_total counter\noutpost_responses_5xx_total %llu\n"
		      "# HELP outpost_db_jobs_total Requests and jobs run by the database thread.\n"
		      "# TYPE outpost_db_jobs_total counter\noutpost_db_jobs_total %llu\n"
		      "# HELP outpost_db_transactions_total Transactions committed (each one fsync).\n"
		      "# TYPE outpost_db_transactions_total counter\noutpost_db_transactions_total %llu\n"
		      "# HELP outpost_db_commit_failures_total Transactions that failed to commit.\n"
		      "# TYPE outpost_db_commit_failures_total counter\noutpost_db_commit_failures_total %llu\n"
		      "# HELP outpost_db_commit_seconds_total Time spent committing.\n"
		      "# TYPE outpost_db_commit_seconds_total counter\noutpost_db_commit_seconds_total %.6f\n"
		      "# HELP outpost_db_queue_depth Jobs waiting for the database thread.\n"
		      "# TYPE outpost_db_queue_depth gauge\noutpost_db_queue_depth %llu\n"
		      "# HELP outpost_start_time_seconds When the server started.\n"
		      "# TYPE outpost_start_time_seconds gauge\noutpost_start_time_seconds %.3f\n",
		      s->nwaiters, (unsigned long long)s->requests, (unsigned long long)s->responses_5xx,
		      (unsigned long long)ds.jobs, (unsigned long long)ds.batches,
		      (unsigned long long)ds.commit_failures, ds.commit_ms_total / 1000,
		      (unsigned long long)ds.queued, (double)s->started_at_ms / 1000);
	cJSON_Delete(agents);
	cJSON_Delete(active);
	r->text = op_buf_detach(&b);
	rq_ok(r, 200, NULL);
}

static void settings_view(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *o = cJSON_CreateObject(), *c;
	char *rv = NULL;

	store_meta_get(st, "recommended_version", &rv);
	srv_jadd_str(o, "recommended_version", rv);
	free(rv);
	c = cJSON_AddObjectToObject(o, "server");
	cJSON_AddStringToObject(c, "listen", s->cfg.listen);
	cJSON_AddNumberToObject(c, "heartbeat_interval", srv_round_ms(s->cfg.heartbeat_interval));
	cJSON_AddNumberToObject(c, "offline_after", srv_round_ms(s->cfg.offline_after));
	cJSON_AddNumberToObject(c, "lease_ttl", srv_round_ms(s->cfg.lease_ttl));
	cJSON_AddNumberToObject(c, "long_poll", srv_round_ms(s->cfg.long_poll));
	cJSON_AddNumberToObject(c, "cert_validity", srv_round_ms(s->cfg.cert_validity));
	cJSON_AddNumberToObject(c, "cert_rotation_grace", srv_round_ms(s->cfg.cert_rotation_grace));
	cJSON_AddNumberToObject(c, "restart_lease_grace", srv_round_ms(s->cfg.restart_lease_grace));
	cJSON_AddNumberToObject(c, "approval_validity", srv_round_ms(s->cfg.approval_validity));
	cJSON_AddNumberToObject(c, "cr_required_approvals", s->cfg.cr_required_approvals);
	cJSON_AddBoolToObject(c, "allow_self_approval", s->cfg.allow_self_approval);
	cJSON_AddNumberToObject(c, "max_body", (double)s->cfg.max_body);
	cJSON_AddNumberToObject(c, "max_log_bytes", (double)s->cfg.max_log_bytes);
	rq_ok(r, 200, o);
}

static void settings_set_run(struct rq *r, struct store *st)
{
	const cJSON *rv = cJSON_GetObjectItemCaseSensitive(r->body, "recommended_version");

	audit_target(r, "settings");
	if (rv) {
		if (store_meta_set(st, "recommended_version",
				   cJSON_IsString(rv) && rv->valuestring[0] ? rv->valuestring : NULL) != OP_OK) {
			rq_error(r, 503, "store_unavailable", "cannot save the settings");
			return;
		}
		audit_detail(r, "recommended_version", cJSON_Duplicate(rv, true));
	}
	settings_view(r, st);
}

/* ---- enrollment tokens ------------------------------------------------------------------- */

static cJSON *token_view(const cJSON *t, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	int64_t exp = srv_jint(t, "expires_at", 0);
	const char *status = "active";

	cJSON_AddStringToObject(o, "id", srv_jstr(t, "id"));
	srv_jadd_str(o, "pool", srv_jstr(t, "pool"));
	srv_jadd_str(o, "environment", srv_jstr(t, "environment"));
	cJSON_AddItemToObject(o, "tags", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(t, "tags"), "[]"));
	cJSON_AddNumberToObject(o, "uses", (double)srv_jint(t, "uses", 0));
	cJSON_AddNumberToObject(o, "uses_max", (double)srv_jint(t, "uses_max", 1));
	srv_jadd_time(o, "expires_at", exp);
	srv_jadd_time(o, "created_at", srv_jint(t, "created_at", 0));
	srv_jadd_str(o, "created_by", srv_jstr(t, "created_by"));
	srv_jadd_time(o, "last_used_at", srv_jint(t, "last_used_at", 0));
	srv_jadd_time(o, "revoked_at", srv_jint(t, "revoked_at", 0));
	srv_jadd_str(o, "description", srv_jstr(t, "description"));
	if (srv_jint(t, "revoked_at", 0) > 0)
		status = "revoked";
	else if (exp > 0 && now > exp)
		status = "expired";
	else if (srv_jint(t, "uses", 0) >= srv_jint(t, "uses_max", 1))
		status = "used";
	cJSON_AddStringToObject(o, "status", status);
	return o;
}

static void token_create_run(struct rq *r, struct store *st)
{
	const cJSON *b = r->body, *v;
	char id[32], token[48], hash[65];
	cJSON *rec = cJSON_CreateObject(), *o;
	double ttl = srv_jnum(b, "ttl", 0);

	if (srv_random_id("tok_", 12, id, sizeof(id)) < 0 ||
	    srv_random_id("oe_", 32, token, sizeof(token)) < 0) {
		rq_error(r, 500, "internal", "cannot draw random bytes");
		cJSON_Delete(rec);
		return;
	}
	srv_sha256_hex(token, strlen(token), hash);
	cJSON_AddStringToObject(rec, "id", id);
	cJSON_AddStringToObject(rec, "hash", hash);
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "pool")) && cJSON_IsString(v) && *v->valuestring)
		cJSON_AddStringToObject(rec, "pool", v->valuestring);
	if ((v = cJSON_GetObjectItemCaseSensitive(b, "environment")) && cJSON_IsString(v) &&
	    *v->valuestring)
		cJSON_AddStringToObject(rec, "environment", v->valuestring);
	cJSON_AddItemToObject(rec, "tags", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(b, "tags"), "[]"));
	cJSON_AddNumberToObject(rec, "uses_max", (double)srv_jint(b, "uses", 1));
	cJSON_AddNumberToObject(rec, "uses", 0);
	if (ttl > 0)
		cJSON_AddNumberToObject(rec, "expires_at", (double)r->now_ms + ttl * 1000);
	cJSON_AddNumberToObject(rec, "created_at", (double)r->now_ms);
	cJSON_AddStringToObject(rec, "created_by", r->admin);
	if (srv_jstr(b, "description"))
		cJSON_AddStringToObject(rec, "description", srv_jstr(b, "description"));
	if (store_insert(st, T_ENROLL_TOKENS, rec) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot save the token");
		cJSON_Delete(rec);
		return;
	}
	o = token_view(rec, r->now_ms);
	cJSON_AddStringToObject(o, "token", token); /* shown once, never stored */
	audit_target(r, id);
	audit_detail(r, "pool", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "pool"), true));
	audit_detail(r, "environment",
		     cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "environment"), true));
	audit_detail(r, "uses", cJSON_CreateNumber((double)srv_jint(b, "uses", 1)));
	audit_detail(r, "ttl", ttl > 0 ? cJSON_CreateNumber(ttl) : cJSON_CreateNull());
	cJSON_Delete(rec);
	rq_ok(r, 201, o);
}

static void token_list_run(struct rq *r, struct store *st)
{
	struct store_query q = {NULL, 0, "created_at", true, 1000, 0, NULL};
	cJSON *arr = NULL, *out = cJSON_CreateArray(), *o;
	const cJSON *t;
	const char *all = rq_query(r, "all");

	if (st->ops->select(st, T_ENROLL_TOKENS, &q, &arr) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot read the tokens");
		cJSON_Delete(out);
		return;
	}
	cJSON_ArrayForEach(t, arr)
	{
		cJSON *v = token_view(t, r->now_ms);

		if ((all == NULL || strcmp(all, "0") == 0) && !str_eq(srv_jstr(v, "status"), "active")) {
			cJSON_Delete(v);
			continue;
		}
		cJSON_AddItemToArray(out, v);
	}
	cJSON_Delete(arr);
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "tokens", out);
	rq_ok(r, 200, o);
}

static void token_revoke_run(struct rq *r, struct store *st)
{
	cJSON *t = NULL, *u;

	audit_target(r, r->param[0]);
	if (store_get(st, T_ENROLL_TOKENS, r->param[0], &t) != OP_OK) {
		rq_error(r, 404, "token_not_found", "no enrollment token %s (token list shows the ids)",
			 r->param[0]);
		return;
	}
	if (srv_jint(t, "revoked_at", 0) == 0) {
		u = cJSON_CreateObject();
		cJSON_AddNumberToObject(u, "revoked_at", (double)r->now_ms);
		cJSON_AddStringToObject(u, "revoked_by", r->admin);
		store_update(st, T_ENROLL_TOKENS, r->param[0], u);
		cJSON_Delete(u);
		srv_jset(t, "revoked_at", cJSON_CreateNumber((double)r->now_ms));
	}
	rq_ok(r, 200, token_view(t, r->now_ms));
	cJSON_Delete(t);
}

/* ---- admin tokens ------------------------------------------------------------------------ */

static cJSON *admin_token_view(const cJSON *t)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "name", srv_jstr(t, "name"));
	cJSON_AddStringToObject(o, "status", srv_jint(t, "revoked_at", 0) > 0 ? "revoked" : "active");
	srv_jadd_time(o, "created_at", srv_jint(t, "created_at", 0));
	srv_jadd_str(o, "created_by", srv_jstr(t, "created_by"));
	srv_jadd_time(o, "last_used_at", srv_jint(t, "last_used_at", 0));
	srv_jadd_time(o, "revoked_at", srv_jint(t, "revoked_at", 0));
	srv_jadd_str(o, "revoked_by", srv_jstr(t, "revoked_by"));
	srv_jadd_str(o, "description", srv_jstr(t, "description"));
	return o;
}

/* Shared with `init` and the offline break-glass command. */
op_rc admin_token_insert(struct store *st, const char *name, const char *by, const char *desc,
			 int64_t now, char *token, size_t tlen);
op_rc admin_token_insert(struct store *st, const char *name, const char *by, const char *desc,
			 int64_t now, char *token, size_t tlen)
{
	char hash[65];
	cJSON *rec;
	op_rc rc;

	if (srv_random_id("oa_", 32, token, tlen) < 0)
		return OP_EIO;
	srv_sha256_hex(token, strlen(token), hash);
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "name", name);
	cJSON_AddStringToObject(rec, "hash", hash);
	cJSON_AddNumberToObject(rec, "created_at", (double)now);
	cJSON_AddStringToObject(rec, "created_by", by);
	if (desc)
		cJSON_AddStringToObject(rec, "description", desc);
	rc = store_insert(st, T_ADMIN_TOKENS, rec);
	cJSON_Delete(rec);
	return rc;
}

static void admin_token_create_run(struct rq *r, struct store *st)
{
	const char *name = srv_jstr(r->body, "name");
	char token[48];
	cJSON *t = NULL, *o;
	op_rc rc;

	audit_target(r, name);
	rc = admin_token_insert(st, name, r->admin, srv_jstr(r->body, "description"), r->now_ms, token,
				sizeof(token));
	if (rc == OP_EEXIST) {
		rq_error(r, 409, "name_taken",
			 "an admin token named %s exists (names stay taken after revocation, for the audit log)",
			 name);
		return;
	}
	if (rc != OP_OK || store_get(st, T_ADMIN_TOKENS, name, &t) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot save the admin token");
		return;
	}
	o = admin_token_view(t);
	cJSON_AddStringToObject(o, "token", token);
	cJSON_Delete(t);
	rq_ok(r, 201, o);
}

static void admin_token_list_run(struct rq *r, struct store *st)
{
	struct store_query q = {NULL, 0, "created_at", false, 0, 0, NULL};
	cJSON *arr = NULL, *out = cJSON_CreateArray(), *o;
	const cJSON *t;

	if (st->ops->select(st, T_ADMIN_TOKENS, &q, &arr) == OP_OK) {
		cJSON_ArrayForEach(t, arr)
		{
			cJSON_AddItemToArray(out, admin_token_view(t));
		}
	}
	cJSON_Delete(arr);
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "admin_tokens", out);
	rq_ok(r, 200, o);
}

static void admin_token_revoke_run(struct rq *r, struct store *st)
{
	cJSON *t = NULL, *u, *cnt = NULL;
	struct store_cond c = {"revoked_at", SO_NULL, NULL};

	audit_target(r, r->param[0]);
	if (store_get(st, T_ADMIN_TOKENS, r->param[0], &t) != OP_OK) {
		rq_error(r, 404, "token_not_found", "no admin token named %s", r->param[0]);
		return;
	}
	if (srv_jint(t, "revoked_at", 0) == 0) {
		if (st->ops->count(st, T_ADMIN_TOKENS, &c, 1, NULL, &cnt) == OP_OK &&
		    srv_jint(cnt, "count", 0) <= 1) {
			rq_error(r, 409, "last_admin_token",
				 "%s is the last active admin token: create another one first", r->param[0]);
			cJSON_Delete(cnt);
			cJSON_Delete(t);
			return;
		}
		cJSON_Delete(cnt);
		u = cJSON_CreateObject();
		cJSON_AddNumberToObject(u, "revoked_at", (double)r->now_ms);
		cJSON_AddStringToObject(u, "revoked_by", r->admin);
		store_update(st, T_ADMIN_TOKENS, r->param[0], u);
		cJSON_Delete(u);
		srv_jset(t, "revoked_at", cJSON_CreateNumber((double)r->now_ms));
		srv_jset(t, "revoked_by", cJSON_CreateString(r->admin));
	}
	rq_ok(r, 200, admin_token_view(t));
	cJSON_Delete(t);
}

/* ---- agents ------------------------------------------------------------------------------ */

static void agents_list_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *agents = all_agents(st), *out = cJSON_CreateArray(), *o;
	cJSON *status = query_list(r, "status");
	const char *pool = rq_query(r, "pool"), *env = rq_query(r, "environment");
	const cJSON *a;

	cJSON_ArrayForEach(a, agents)
	{
		cJSON *v = agent_public(s, a, r->now_ms);

		if ((status && !srv_jstrings_contains(status, srv_jstr(v, "status"))) ||
		    (pool && !str_eq(pool, srv_jstr(a, "pool"))) ||
		    (env && !str_eq(env, srv_jstr(a, "environment"))) ||
		    (status == NULL && str_eq(srv_jstr(v, "status"), "revoked") &&
		     rq_query(r, "all") == NULL)) {
			cJSON_Delete(v);
			continue;
		}
		cJSON_AddItemToArray(out, v);
	}
	cJSON_Delete(agents);
	cJSON_Delete(status);
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "agents", out);
	rq_ok(r, 200, o);
}

static cJSON *get_agent(struct rq *r, struct store *st)
{
	cJSON *a = NULL;

	audit_target(r, r->param[0]);
	if (store_get(st, T_AGENTS, r->param[0], &a) != OP_OK) {
		rq_error(r, 404, "agent_not_found", "no agent %s (agents list shows the ids)", r->param[0]);
		return NULL;
	}
	if (srv_jstr(a, "hostname"))
		audit_detail(r, "hostname", cJSON_CreateString(srv_jstr(a, "hostname")));
	return a;
}

static void agent_show_run(struct rq *r, struct store *st)
{
	cJSON *a = get_agent(r, st), *o, *ls = NULL, *me, *active;
	struct store_cond c[2];
	struct store_query q = {c, 2, NULL, false, 0, 0, NULL};

	if (a == NULL)
		return;
	o = agent_public(r->srv, a, r->now_ms);
	me = cJSON_CreateString(r->param[0]);
	active = cJSON_CreateString("active");
	c[0] = (struct store_cond){"agent_id", SO_EQ, me};
	c[1] = (struct store_cond){"state", SO_EQ, active};
	if (st->ops->select(st, T_LEASES, &q, &ls) == OP_OK) {
		cJSON *arr = cJSON_AddArrayToObject(o, "leases");
		const cJSON *l;

		cJSON_ArrayForEach(l, ls)
		{
			cJSON *v = cJSON_CreateObject();

			cJSON_AddStringToObject(v, "lease_id", srv_jstr(l, "id"));
			cJSON_AddStringToObject(v, "task_id", srv_jstr(l, "task_id"));
			srv_jadd_time(v, "expires_at", srv_jint(l, "expires_at", 0));
			cJSON_AddItemToArray(arr, v);
		}
	}
	cJSON_Delete(ls);
	cJSON_Delete(me);
	cJSON_Delete(active);
	cJSON_Delete(a);
	rq_ok(r, 200, o);
}

static void agent_set_state(struct rq *r, struct store *st, const char *from, const char *to)
{
	cJSON *a = get_agent(r, st), *u;

	if (a == NULL)
		return;
	if (str_eq(srv_jstr(a, "state"), "revoked")) {
		rq_error(r, 409, "agent_revoked", "agent %s is revoked", r->param[0]);
		cJSON_Delete(a);
		return;
	}
	if (str_eq(srv_jstr(a, "state"), from)) {
		u = cJSON_CreateObject();
		cJSON_AddStringToObject(u, "state", to);
		cJSON_AddStringToObject(u, "state_changed_by", r->admin);
		cJSON_AddNumberToObject(u, "state_changed_at", (double)r->now_ms);
		store_update(st, T_AGENTS, r->param[0], u);
		cJSON_Delete(u);
		srv_jset(a, "state", cJSON_CreateString(to));
		srv_jset(a, "state_changed_by", cJSON_CreateString(r->admin));
		srv_jset(a, "state_changed_at", cJSON_CreateNumber((double)r->now_ms));
		if (str_eq(to, "active"))
			r->job.wake = true;
	}
	rq_ok(r, 200, agent_public(r->srv, a, r->now_ms));
	cJSON_Delete(a);
}

static void agent_drain_run(struct rq *r, struct store *st)
{
	agent_set_state(r, st, "active", "draining");
}

static void agent_undrain_run(struct rq *r, struct store *st)
{
	agent_set_state(r, st, "draining", "active");
}

static void agent_revoke_run(struct rq *r, struct store *st)
{
	cJSON *a = get_agent(r, st);
	bool wake = false;

	if (a == NULL)
		return;
	if (!str_eq(srv_jstr(a, "state"), "revoked")) {
		char by[160];

		snprintf(by, sizeof(by), "admin:%s", r->admin);
		agent_revoke(r->srv, st, r->param[0], by, r->now_ms, &wake);
		r->job.wake = wake;
		cJSON_Delete(a);
		a = NULL;
		store_get(st, T_AGENTS, r->param[0], &a);
		op_log_info("agent", "agent %s revoked by %s", r->param[0], r->admin);
	}
	rq_ok(r, 200, agent_public(r->srv, a, r->now_ms));
	cJSON_Delete(a);
}

static void agent_delete_run(struct rq *r, struct store *st)
{
	cJSON *a = get_agent(r, st), *o, *idv;
	struct store_cond c;
	bool wake = false;

	if (a == NULL)
		return;
	if (!str_eq(srv_jstr(a, "state"), "revoked")) {
		char by[160];

		snprintf(by, sizeof(by), "admin:%s", r->admin);
		agent_revoke(r->srv, st, r->param[0], by, r->now_ms, &wake);
	}
	idv = cJSON_CreateString(r->param[0]);
	c = (struct store_cond){"id", SO_EQ, idv};
	st->ops->remove(st, T_AGENTS, &c, 1, NULL);
	cJSON_Delete(idv);
	r->job.wake = wake;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "agent_id", r->param[0]);
	cJSON_AddBoolToObject(o, "deleted", true);
	op_log_info("agent", "agent %s deleted by %s", r->param[0], r->admin);
	cJSON_Delete(a);
	rq_ok(r, 200, o);
}

/* ---- tasks ------------------------------------------------------------------------------- */

static bool task_body_ok(struct rq *r, const cJSON *t, const char *where)
{
	if (str_eq(srv_jstr(t, "type"), "change.apply")) {
		rq_error(r, 400, "reserved_type",
			 "%stype change.apply is reserved for approved change requests: use `outpost-server cr create`",
			 where);
		return false;
	}
	return true;
}

static bool task_pre(struct rq *r)
{
	return task_body_ok(r, r->body, "");
}

static bool task_batch_pre(struct rq *r)
{
	const cJSON *t;
	int i = 0;
	char where[64];

	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r->body, "tasks"))
	{
		snprintf(where, sizeof(where), "tasks[%d]: ", i++);
		if (!task_body_ok(r, t, where))
			return false;
	}
	return true;
}

static cJSON *task_insert(struct rq *r, struct store *st, const cJSON *b)
{
	struct srv *s = r->srv;
	cJSON *t = cJSON_CreateObject();
	const cJSON *v;
	char id[32];
	static const char *const opt[] = {"name", "pool", "environment", "target_host", "target_agent"};

	if (srv_random_id("tsk_", 16, id, sizeof(id)) < 0) {
		cJSON_Delete(t);
		return NULL;
	}
	cJSON_AddStringToObject(t, "id", id);
	cJSON_AddNumberToObject(t, "seq", (double)tasks_next_seq(s, st, T_TASKS));
	cJSON_AddStringToObject(t, "type", srv_jstr(b, "type"));
	cJSON_AddItemToObject(t, "params", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(b, "params"), "{}"));
	for (size_t i = 0; i < OP_ARRAY_LEN(opt); i++)
		if ((v = cJSON_GetObjectItemCaseSensitive(b, opt[i])) && cJSON_IsString(v) &&
		    *v->valuestring)
			cJSON_AddStringToObject(t, opt[i], v->valuestring);
	cJSON_AddItemToObject(t, "tags", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(b, "tags"), "[]"));
	cJSON_AddNumberToObject(t, "timeout", srv_jnum(b, "timeout", s->cfg.default_task_timeout));
	cJSON_AddNumberToObject(t, "max_attempts",
				(double)srv_jint(b, "max_attempts", s->cfg.default_max_attempts));
	cJSON_AddNumberToObject(t, "attempt", 0);
	cJSON_AddStringToObject(t, "state", "queued");
	cJSON_AddNumberToObject(t, "created_at", (double)r->now_ms);
	cJSON_AddNumberToObject(t, "updated_at", (double)r->now_ms);
	cJSON_AddStringToObject(t, "submitted_by", r->admin);
	cJSON_AddNumberToObject(t, "log_size", 0);
	if (store_insert(st, T_TASKS, t) != OP_OK) {
		cJSON_Delete(t);
		return NULL;
	}
	return t;
}

static void task_submit_run(struct rq *r, struct store *st)
{
	cJSON *t = task_insert(r, st, r->body), *o, *agents;

	if (t == NULL) {
		rq_error(r, 503, "store_unavailable", "cannot save the task");
		return;
	}
	audit_target(r, srv_jstr(t, "id"));
	audit_detail(r, "type", cJSON_CreateString(srv_jstr(t, "type")));
	o = task_public(t, r->now_ms);
	agents = all_agents(st);
	cJSON_AddItemToObject(o, "routing", tasks_routing(r->srv, st, t, agents, r->now_ms));
	cJSON_Delete(agents);
	cJSON_Delete(t);
	r->job.wake = true;
	rq_ok(r, 201, o);
}

static void task_batch_run(struct rq *r, struct store *st)
{
	cJSON *ids = cJSON_CreateArray(), *o;
	const cJSON *b;

	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(r->body, "tasks"))
	{
		cJSON *t = task_insert(r, st, b);

		if (t == NULL) {
			rq_error(r, 503, "store_unavailable", "cannot save the tasks");
			cJSON_Delete(ids);
			return;
		}
		cJSON_AddItemToArray(ids, cJSON_CreateString(srv_jstr(t, "id")));
		cJSON_Delete(t);
	}
	audit_target(r, "tasks");
	audit_detail(r, "count", cJSON_CreateNumber(cJSON_GetArraySize(ids)));
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "task_ids", ids);
	r->job.wake = true;
	rq_ok(r, 201, o);
}

static void task_list_run(struct rq *r, struct store *st)
{
	cJSON *states = query_list(r, "state"), *type = NULL, *agentv = NULL, *arr = NULL;
	cJSON *out = cJSON_CreateArray(), *agents = NULL, *o, *crv = NULL;
	struct store_cond c[4];
	size_t n = 0;
	int limit = query_int(r, "limit", 100, 1, 10000);
	const cJSON *t;

	if (states) {
		c[n++] = (struct store_cond){"state", SO_IN, states};
	}
	if (rq_query(r, "type")) {
		type = cJSON_CreateString(rq_query(r, "type"));
		c[n++] = (struct store_cond){"type", SO_EQ, type};
	}
	if (rq_query(r, "agent")) {
		agentv = cJSON_CreateString(rq_query(r, "agent"));
		c[n++] = (struct store_cond){"agent_id", SO_EQ, agentv};
	}
	if (rq_query(r, "cr")) {
		crv = cJSON_CreateString(rq_query(r, "cr"));
		c[n++] = (struct store_cond){"cr_id", SO_EQ, crv};
	}
	{
		struct store_query q = {c, n, "seq", true, limit, query_int(r, "offset", 0, 0, 1 << 30), NULL};

		if (st->ops->select(st, T_TASKS, &q, &arr) != OP_OK) {
			rq_error(r, 503, "store_unavailable", "cannot read the tasks");
			goto out;
		}
	}
	cJSON_ArrayForEach(t, arr)
	{
		cJSON *v = task_public(t, r->now_ms);

		if (str_eq(srv_jstr(t, "state"), "queued")) {
			if (agents == NULL)
				agents = all_agents(st);
			cJSON_AddItemToObject(v, "routing", tasks_routing(r->srv, st, t, agents, r->now_ms));
		}
		cJSON_AddItemToArray(out, v);
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "tasks", out);
	out = NULL;
	rq_ok(r, 200, o);
out:
	cJSON_Delete(out);
	cJSON_Delete(arr);
	cJSON_Delete(agents);
	cJSON_Delete(states);
	cJSON_Delete(type);
	cJSON_Delete(agentv);
	cJSON_Delete(crv);
}

static cJSON *get_task(struct rq *r, struct store *st)
{
	cJSON *t = NULL;

	audit_target(r, r->param[0]);
	if (store_get(st, T_TASKS, r->param[0], &t) != OP_OK) {
		rq_error(r, 404, "task_not_found", "no task %s", r->param[0]);
		return NULL;
	}
	return t;
}

static void task_show_run(struct rq *r, struct store *st)
{
	cJSON *t = get_task(r, st), *o, *ls = NULL, *idv;
	struct store_cond c;
	struct store_query q = {&c, 1, "created_at", false, 0, 0, NULL};

	if (t == NULL)
		return;
	o = task_public(t, r->now_ms);
	if (str_eq(srv_jstr(t, "state"), "queued")) {
		cJSON *agents = all_agents(st);

		cJSON_AddItemToObject(o, "routing", tasks_routing(r->srv, st, t, agents, r->now_ms));
		cJSON_Delete(agents);
	}
	idv = cJSON_CreateString(r->param[0]);
	c = (struct store_cond){"task_id", SO_EQ, idv};
	if (st->ops->select(st, T_LEASES, &q, &ls) == OP_OK) {
		cJSON *arr = cJSON_AddArrayToObject(o, "leases");
		const cJSON *l;

		cJSON_ArrayForEach(l, ls)
		{
			cJSON *v = cJSON_CreateObject();

			cJSON_AddStringToObject(v, "lease_id", srv_jstr(l, "id"));
			cJSON_AddStringToObject(v, "agent_id", srv_jstr(l, "agent_id"));
			cJSON_AddNumberToObject(v, "attempt", (double)srv_jint(l, "attempt", 0));
			cJSON_AddStringToObject(v, "state", srv_jstr(l, "state"));
			srv_jadd_str(v, "status", srv_jstr(l, "status"));
			srv_jadd_time(v, "created_at", srv_jint(l, "created_at", 0));
			srv_jadd_time(v, "expires_at", srv_jint(l, "expires_at", 0));
			srv_jadd_time(v, "ended_at", srv_jint(l, "ended_at", 0));
			cJSON_AddItemToObject(v, "progress",
					      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(l, "progress"), "null"));
			cJSON_AddItemToArray(arr, v);
		}
	}
	cJSON_Delete(ls);
	cJSON_Delete(idv);
	cJSON_Delete(t);
	rq_ok(r, 200, o);
}

static void task_logs_run(struct rq *r, struct store *st)
{
	cJSON *t = get_task(r, st), *chunks = NULL, *idv, *offv, *o;
	int64_t from = 0, size, pos;
	int limit = query_int(r, "limit", 1 << 20, 1, 16 << 20);
	const char *q_off = rq_query(r, "offset");
	long long ll;
	struct store_cond c[2];
	struct store_query q = {c, 2, "tend", false, 1024, 0, NULL};
	struct op_buf out = OP_BUF_INIT;
	const cJSON *ch;

	if (t == NULL)
		return;
	if (q_off && op_parse_i64(q_off, 0, 1LL << 50, &ll) == 0)
		from = ll;
	size = srv_jint(t, "log_size", 0);
	if (from > size)
		from = size;
	idv = cJSON_CreateString(r->param[0]);
	offv = cJSON_CreateNumber((double)from);
	c[0] = (struct store_cond){"task_id", SO_EQ, idv};
	c[1] = (struct store_cond){"tend", SO_GT, offv};
	pos = from;
	if (st->ops->select(st, T_LOGS, &q, &chunks) == OP_OK) {
		cJSON_ArrayForEach(ch, chunks)
		{
			int64_t toff = srv_jint(ch, "toff", 0), tend = srv_jint(ch, "tend", 0);
			const char *data = srv_jstr(ch, "data");
			int64_t skip = pos > toff ? pos - toff : 0, n = tend - toff - skip;

			if (data == NULL || toff > pos || (int64_t)out.len >= limit)
				break;
			if ((int64_t)out.len + n > limit)
				n = limit - (int64_t)out.len;
			op_buf_append(&out, data + skip, (size_t)n);
			pos += n;
		}
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "task_id", r->param[0]);
	cJSON_AddNumberToObject(o, "offset", (double)from);
	cJSON_AddNumberToObject(o, "next_offset", (double)pos);
	cJSON_AddNumberToObject(o, "size", (double)size);
	cJSON_AddStringToObject(o, "data", out.data ? out.data : "");
	cJSON_AddStringToObject(o, "state", srv_jstr(t, "state"));
	cJSON_AddBoolToObject(o, "final", task_state_final(srv_jstr(t, "state")));
	cJSON_AddBoolToObject(o, "truncated", srv_jbool(t, "log_truncated", false));
	op_buf_release(&out);
	cJSON_Delete(chunks);
	cJSON_Delete(idv);
	cJSON_Delete(offv);
	cJSON_Delete(t);
	rq_ok(r, 200, o);
}

static void set_cr(struct store *st, const char *cr_id, const char *state, const char *by,
		   const char *resolution, int64_t now)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddStringToObject(u, "state", state);
	cJSON_AddNumberToObject(u, "updated_at", (double)now);
	if (by)
		cJSON_AddStringToObject(u, "resolved_by", by);
	if (resolution)
		cJSON_AddStringToObject(u, "resolution", resolution);
	store_update(st, T_CRS, cr_id, u);
	cJSON_Delete(u);
}

static void task_cancel_run(struct rq *r, struct store *st)
{
	cJSON *t = get_task(r, st), *u;
	const char *state;
	char reason[300];

	if (t == NULL)
		return;
	state = srv_jstr(t, "state");
	snprintf(reason, sizeof(reason), "cancelled by %s", r->admin);
	if (task_state_final(state)) {
		rq_error(r, 409, "task_finished", "task %s already finished (%s)", r->param[0], state);
		cJSON_Delete(t);
		return;
	}
	u = cJSON_CreateObject();
	cJSON_AddBoolToObject(u, "cancel_requested", true);
	cJSON_AddStringToObject(u, "cancelled_by", r->admin);
	cJSON_AddNumberToObject(u, "updated_at", (double)r->now_ms);
	if (!str_eq(state, "leased")) {
		/* queued, needs_attention: nothing runs it, so it ends now */
		cJSON_AddStringToObject(u, "state", "cancelled");
		cJSON_AddStringToObject(u, "reason", reason);
		cJSON_AddNumberToObject(u, "finished_at", (double)r->now_ms);
		if (srv_jstr(t, "cr_id"))
			set_cr(st, srv_jstr(t, "cr_id"), "cancelled", r->admin, "cancelled", r->now_ms);
	} else if (srv_jstr(t, "lease_id")) {
		cJSON *lu = cJSON_CreateObject();

		cJSON_AddBoolToObject(lu, "cancel", true);
		store_update(st, T_LEASES, srv_jstr(t, "lease_id"), lu);
		cJSON_Delete(lu);
	}
	store_update(st, T_TASKS, r->param[0], u);
	cJSON_Delete(u);
	cJSON_Delete(t);
	store_get(st, T_TASKS, r->param[0], &t);
	rq_ok(r, 200, task_public(t, r->now_ms));
	cJSON_Delete(t);
}

static void artifacts_list_run(struct rq *r, struct store *st)
{
	static const char *const cols[] = {"name", "size", "sha256", "content_type", "agent_id",
					   "lease_id", "created_at", NULL};
	cJSON *t = get_task(r, st), *idv, *rows = NULL, *out, *o;
	struct store_cond c;
	struct store_query q = {&c, 1, "id", false, 0, 0, cols};
	const cJSON *row;

	if (t == NULL)
		return;
	idv = cJSON_CreateString(r->param[0]);
	c = (struct store_cond){"task_id", SO_EQ, idv};
	out = cJSON_CreateArray();
	if (st->ops->select(st, T_ARTIFACTS, &q, &rows) == OP_OK) {
		cJSON_ArrayForEach(row, rows)
		{
			cJSON *v = cJSON_Duplicate(row, true);

			cJSON_DeleteItemFromObject(v, "created_at");
			srv_jadd_time(v, "created_at", srv_jint(row, "created_at", 0));
			cJSON_AddItemToArray(out, v);
		}
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "task_id", r->param[0]);
	cJSON_AddItemToObject(o, "uploaded", out);
	cJSON_AddItemToObject(o, "reported", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(t, "artifacts"), "[]"));
	rq_ok(r, 200, o);
	cJSON_Delete(rows);
	cJSON_Delete(idv);
	cJSON_Delete(t);
}

static void artifact_get_run(struct rq *r, struct store *st)
{
	cJSON *idv = cJSON_CreateString(r->param[0]), *nv = cJSON_CreateString(r->param[1]), *rows = NULL;
	struct store_cond c[2] = {{"task_id", SO_EQ, idv}, {"name", SO_EQ, nv}};
	struct store_query q = {c, 2, NULL, false, 1, 0, NULL};

	audit_target(r, r->param[0]);
	if (st->ops->select(st, T_ARTIFACTS, &q, &rows) != OP_OK || cJSON_GetArraySize(rows) == 0) {
		rq_error(r, 404, "artifact_not_found", "task %s has no uploaded artifact %s", r->param[0],
			 r->param[1]);
	} else {
		cJSON *v = cJSON_DetachItemFromArray(rows, 0);
		int64_t at = srv_jint(v, "created_at", 0);

		cJSON_DeleteItemFromObject(v, "created_at");
		cJSON_DeleteItemFromObject(v, "id");
		srv_jadd_time(v, "created_at", at);
		rq_ok(r, 200, v);
	}
	cJSON_Delete(rows);
	cJSON_Delete(idv);
	cJSON_Delete(nv);
}

/* ---- change requests --------------------------------------------------------------------- */

static const cJSON *find_change_type(const cJSON *agent, const char *name)
{
	const cJSON *ct;

	cJSON_ArrayForEach(ct, cJSON_GetObjectItemCaseSensitive(agent, "change_types"))
	{
		if (str_eq(srv_jstr(ct, "name"), name))
			return ct;
	}
	return NULL;
}

static cJSON *cr_view(struct store *st, const cJSON *cr, bool full, int required)
{
	cJSON *o = cJSON_CreateObject();
	static const char *const keys[] = {"id", "title", "change_type", "definition_digest",
					   "target_agent_id", "target_hostname", "state",
					   "requested_by", "approvers", "rejected_by",
					   "reject_reason", "task_id", "timeout", "resolution",
					   "resolved_by"};
	const cJSON *v;

	for (size_t i = 0; i < OP_ARRAY_LEN(keys); i++) {
		v = cJSON_GetObjectItemCaseSensitive(cr, keys[i]);
		cJSON_AddItemToObject(o, keys[i], v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
	}
	cJSON_AddNumberToObject(o, "approvals_required", required);
	srv_jadd_time(o, "created_at", srv_jint(cr, "created_at", 0));
	srv_jadd_time(o, "updated_at", srv_jint(cr, "updated_at", 0));
	srv_jadd_time(o, "approved_at", srv_jint(cr, "approved_at", 0));
	srv_jadd_time(o, "not_after", srv_jint(cr, "not_after", 0));
	if (!full)
		return o;
	cJSON_AddItemToObject(o, "description",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "description"), "null"));
	cJSON_AddItemToObject(o, "params", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "params"), "{}"));
	cJSON_AddItemToObject(o, "definition",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "definition"), "null"));
	cJSON_AddItemToObject(o, "payload", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "payload"), "null"));
	cJSON_AddItemToObject(o, "signature",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "signature"), "null"));
	{
		cJSON *idv = cJSON_CreateString(srv_jstr(cr, "id")), *rows = NULL;
		struct store_cond c = {"cr_id", SO_EQ, idv};
		struct store_query q = {&c, 1, "id", false, 0, 0, NULL};
		cJSON *steps = cJSON_AddArrayToObject(o, "steps");

		if (st->ops->select(st, T_CR_STEPS, &q, &rows) == OP_OK) {
			const cJSON *row;

			cJSON_ArrayForEach(row, rows)
			{
				cJSON *s = cJSON_CreateObject();

				cJSON_AddItemToObject(s, "step", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(row, "step"), "{}"));
				cJSON_AddNumberToObject(s, "attempt", (double)srv_jint(row, "attempt", 0));
				srv_jadd_str(s, "lease_id", srv_jstr(row, "lease_id"));
				srv_jadd_time(s, "received_at", srv_jint(row, "received_at", 0));
				cJSON_AddBoolToObject(s, "late", srv_jbool(row, "late", false));
				cJSON_AddItemToArray(steps, s);
			}
		}
		cJSON_Delete(rows);
		cJSON_Delete(idv);
	}
	return o;
}

static void cr_create_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	const cJSON *b = r->body, *ct;
	cJSON *agent = NULL, *params = NULL, *cr = NULL;
	const char *target = srv_jstr(b, "target_agent"), *type = srv_jstr(b, "change_type");
	char id[32], err[600];

	audit_detail(r, "change_type", cJSON_CreateString(type));
	audit_detail(r, "target_agent", cJSON_CreateString(target));
	if (store_get(st, T_AGENTS, target, &agent) != OP_OK) {
		rq_error(r, 404, "agent_not_found", "no agent %s (agents list shows the ids)", target);
		goto out;
	}
	if (str_eq(srv_jstr(agent, "state"), "revoked")) {
		rq_error(r, 409, "agent_revoked", "agent %s (%s) is revoked", target,
			 srv_jstr(agent, "hostname"));
		goto out;
	}
	ct = find_change_type(agent, type);
	if (ct == NULL) {
		struct op_buf names = OP_BUF_INIT;
		const cJSON *c;

		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(agent, "change_types"))
		{
			op_buf_printf(&names, "%s%s", names.len ? ", " : "", srv_jstr(c, "name"));
		}
		rq_error(r, 400, "unknown_change_type",
			 "agent %s (%s) has no change type %s; it reports: %s", target,
			 srv_jstr(agent, "hostname"), type, names.data ? names.data : "none");
		op_buf_release(&names);
		goto out;
	}
	params = srv_jdup_or(cJSON_GetObjectItemCaseSensitive(b, "params"), "{}");
	{
		const cJSON *schema = cJSON_GetObjectItemCaseSensitive(ct, "params_schema");

		if (schema && (op_schema_apply_defaults(schema, params) < 0 ||
			       op_schema_validate(schema, params, "params", err, sizeof(err)) < 0)) {
			rq_error(r, 400, "invalid_params", "%s (change type %s on %s)", err, type,
				 srv_jstr(agent, "hostname"));
			goto out;
		}
	}
	if (srv_random_id("cr_", 12, id, sizeof(id)) < 0) {
		rq_error(r, 500, "internal", "cannot draw random bytes");
		goto out;
	}
	cr = cJSON_CreateObject();
	cJSON_AddStringToObject(cr, "id", id);
	cJSON_AddNumberToObject(cr, "seq", (double)tasks_next_seq(s, st, T_CRS));
	cJSON_AddStringToObject(cr, "title", srv_jstr(b, "title") ? srv_jstr(b, "title") : type);
	if (srv_jstr(b, "description"))
		cJSON_AddStringToObject(cr, "description", srv_jstr(b, "description"));
	cJSON_AddStringToObject(cr, "change_type", type);
	cJSON_AddStringToObject(cr, "definition_digest", srv_jstr(ct, "digest"));
	cJSON_AddItemToObject(cr, "definition", cJSON_Duplicate(ct, true));
	cJSON_AddItemToObject(cr, "params", params);
	params = NULL;
	cJSON_AddStringToObject(cr, "target_agent_id", target);
	srv_jadd_str(cr, "target_hostname", srv_jstr(agent, "hostname"));
	cJSON_AddStringToObject(cr, "state", "pending");
	cJSON_AddStringToObject(cr, "requested_by", r->admin);
	cJSON_AddNumberToObject(cr, "created_at", (double)r->now_ms);
	cJSON_AddNumberToObject(cr, "updated_at", (double)r->now_ms);
	cJSON_AddItemToObject(cr, "approvers", cJSON_CreateArray());
	cJSON_AddNumberToObject(cr, "timeout", srv_jnum(b, "timeout", s->cfg.default_task_timeout));
	if (store_insert(st, T_CRS, cr) != OP_OK) {
		rq_error(r, 503, "store_unavailable", "cannot save the change request");
		goto out;
	}
	audit_target(r, id);
	rq_ok(r, 201, cr_view(st, cr, true, s->cfg.cr_required_approvals));
out:
	cJSON_Delete(agent);
	cJSON_Delete(params);
	cJSON_Delete(cr);
}

static cJSON *get_cr(struct rq *r, struct store *st)
{
	cJSON *cr = NULL;

	audit_target(r, r->param[0]);
	if (store_get(st, T_CRS, r->param[0], &cr) != OP_OK) {
		rq_error(r, 404, "cr_not_found", "no change request %s", r->param[0]);
		return NULL;
	}
	return cr;
}

static void cr_show_run(struct rq *r, struct store *st)
{
	cJSON *cr = get_cr(r, st), *o, *t = NULL;

	if (cr == NULL)
		return;
	o = cr_view(st, cr, true, r->srv->cfg.cr_required_approvals);
	if (srv_jstr(cr, "task_id") && store_get(st, T_TASKS, srv_jstr(cr, "task_id"), &t) == OP_OK) {
		cJSON *tv = cJSON_CreateObject();

		cJSON_AddStringToObject(tv, "id", srv_jstr(t, "id"));
		cJSON_AddStringToObject(tv, "state", srv_jstr(t, "state"));
		srv_jadd_str(tv, "reason", srv_jstr(t, "reason"));
		cJSON_AddNumberToObject(tv, "attempt", (double)srv_jint(t, "attempt", 0));
		srv_jadd_str(tv, "mode", srv_jstr(t, "mode"));
		cJSON_AddItemToObject(o, "task", tv);
		cJSON_Delete(t);
	}
	cJSON_Delete(cr);
	rq_ok(r, 200, o);
}

static void cr_list_run(struct rq *r, struct store *st)
{
	cJSON *states = query_list(r, "state"), *arr = NULL, *out = cJSON_CreateArray(), *o;
	struct store_cond c;
	struct store_query q = {&c, states ? 1 : 0, "seq", true, query_int(r, "limit", 100, 1, 10000), 0, NULL};
	const cJSON *cr;

	if (states)
		c = (struct store_cond){"state", SO_IN, states};
	if (st->ops->select(st, T_CRS, &q, &arr) == OP_OK) {
		cJSON_ArrayForEach(cr, arr)
		{
			cJSON_AddItemToArray(out, cr_view(st, cr, false, r->srv->cfg.cr_required_approvals));
		}
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "change_requests", out);
	cJSON_Delete(arr);
	cJSON_Delete(states);
	rq_ok(r, 200, o);
}

/* Signs the approved change request (decisions.md 14) and records payload and signature. */
static bool cr_sign(struct rq *r, struct store *st, cJSON *cr, int64_t not_after)
{
	cJSON *payload = cJSON_CreateObject(), *u;
	struct op_buf canon = OP_BUF_INIT;
	char *sig = NULL, t[40];
	bool ok = false;

	cJSON_AddStringToObject(payload, "cr_id", srv_jstr(cr, "id"));
	cJSON_AddStringToObject(payload, "change_type", srv_jstr(cr, "change_type"));
	cJSON_AddStringToObject(payload, "definition_digest", srv_jstr(cr, "definition_digest"));
	cJSON_AddItemToObject(payload, "params",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "params"), "{}"));
	cJSON_AddStringToObject(payload, "target_agent_id", srv_jstr(cr, "target_agent_id"));
	cJSON_AddItemToObject(payload, "approvers",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "approvers"), "[]"));
	srv_fmt_time(not_after, t, sizeof(t));
	cJSON_AddStringToObject(payload, "not_after", t);
	if (op_json_canonical(payload, &canon) < 0 ||
	    pki_sign_approval(&r->srv->pki, canon.data, canon.len, &sig) < 0) {
		rq_error(r, 500, "internal", "cannot sign the change request");
		goto out;
	}
	u = cJSON_CreateObject();
	cJSON_AddItemToObject(u, "payload", cJSON_Duplicate(payload, true));
	cJSON_AddStringToObject(u, "signature", sig);
	cJSON_AddNumberToObject(u, "not_after", (double)not_after);
	store_update(st, T_CRS, srv_jstr(cr, "id"), u);
	cJSON_Delete(u);
	ok = true;
out:
	free(sig);
	op_buf_release(&canon);
	cJSON_Delete(payload);
	return ok;
}

static bool cr_definition_current(struct rq *r, struct store *st, const cJSON *cr)
{
	cJSON *agent = NULL;
	const cJSON *ct;
	bool ok = false;

	if (store_get(st, T_AGENTS, srv_jstr(cr, "target_agent_id"), &agent) != OP_OK ||
	    str_eq(srv_jstr(agent, "state"), "revoked")) {
		rq_error(r, 409, "agent_revoked", "the target agent %s is gone or revoked",
			 srv_jstr(cr, "target_agent_id"));
		goto out;
	}
	ct = find_change_type(agent, srv_jstr(cr, "change_type"));
	if (ct == NULL || !str_eq(srv_jstr(ct, "digest"), srv_jstr(cr, "definition_digest"))) {
		rq_error(r, 409, "definition_changed",
			 "agent %s (%s) now reports a different definition of %s than the one reviewed: "
			 "create the change request again",
			 srv_jstr(cr, "target_agent_id"), srv_jstr(agent, "hostname"),
			 srv_jstr(cr, "change_type"));
		goto out;
	}
	ok = true;
out:
	cJSON_Delete(agent);
	return ok;
}

static cJSON *cr_task(struct rq *r, struct store *st, const cJSON *cr, const char *mode,
		      int64_t not_after)
{
	struct srv *s = r->srv;
	cJSON *t = cJSON_CreateObject(), *params = cJSON_CreateObject();
	char id[32];

	if (srv_random_id("tsk_", 16, id, sizeof(id)) < 0) {
		cJSON_Delete(t);
		cJSON_Delete(params);
		return NULL;
	}
	cJSON_AddStringToObject(params, "cr_id", srv_jstr(cr, "id"));
	cJSON_AddStringToObject(params, "change_type", srv_jstr(cr, "change_type"));
	cJSON_AddItemToObject(params, "params",
			      srv_jdup_or(cJSON_GetObjectItemCaseSensitive(cr, "params"), "{}"));
	cJSON_AddStringToObject(t, "id", id);
	cJSON_AddNumberToObject(t, "seq", (double)tasks_next_seq(s, st, T_TASKS));
	cJSON_AddStringToObject(t, "name", srv_jstr(cr, "title") ? srv_jstr(cr, "title") : "change");
	cJSON_AddStringToObject(t, "type", "change.apply");
	cJSON_AddItemToObject(t, "params", params);
	cJSON_AddItemToObject(t, "tags", cJSON_CreateArray());
	cJSON_AddStringToObject(t, "target_agent", srv_jstr(cr, "target_agent_id"));
	cJSON_AddNumberToObject(t, "timeout", srv_jnum(cr, "timeout", s->cfg.default_task_timeout));
	cJSON_AddNumberToObject(t, "max_attempts", 1);
	cJSON_AddNumberToObject(t, "attempt", 0);
	cJSON_AddStringToObject(t, "state", "queued");
	cJSON_AddNumberToObject(t, "created_at", (double)r->now_ms);
	cJSON_AddNumberToObject(t, "updated_at", (double)r->now_ms);
	cJSON_AddStringToObject(t, "submitted_by", r->admin);
	cJSON_AddStringToObject(t, "cr_id", srv_jstr(cr, "id"));
	cJSON_AddNumberToObject(t, "not_after", (double)not_after);
	cJSON_AddStringToObject(t, "mode", mode);
	cJSON_AddNumberToObject(t, "log_size", 0);
	if (store_insert(st, T_TASKS, t) != OP_OK) {
		cJSON_Delete(t);
		return NULL;
	}
	return t;
}

static void cr_approve_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *cr = get_cr(r, st), *approvers, *u, *t = NULL;
	int64_t not_after;

	if (cr == NULL)
		return;
	if (!str_eq(srv_jstr(cr, "state"), "pending")) {
		rq_error(r, 409, "cr_not_pending", "change request %s is %s, not pending", r->param[0],
			 srv_jstr(cr, "state"));
		goto out;
	}
	if (str_eq(srv_jstr(cr, "requested_by"), r->admin) && !s->cfg.allow_self_approval) {
		rq_error(r, 403, "self_approval",
			 "%s requested change request %s and cannot approve it: another admin token's "
			 "holder must (or set allow_self_approval: true in server.yaml)",
			 r->admin, r->param[0]);
		goto out;
	}
	approvers = cJSON_GetObjectItemCaseSensitive(cr, "approvers");
	if (!cJSON_IsArray(approvers)) {
		approvers = cJSON_CreateArray();
		srv_jset(cr, "approvers", approvers);
	}
	if (srv_jstrings_contains(approvers, r->admin)) {
		rq_error(r, 409, "already_approved", "%s already approved change request %s", r->admin,
			 r->param[0]);
		goto out;
	}
	if (!cr_definition_current(r, st, cr))
		goto out;
	cJSON_AddItemToArray(approvers, cJSON_CreateString(r->admin));
	u = cJSON_CreateObject();
	cJSON_AddItemToObject(u, "approvers", cJSON_Duplicate(approvers, true));
	cJSON_AddNumberToObject(u, "updated_at", (double)r->now_ms);
	if (cJSON_GetArraySize(approvers) >= s->cfg.cr_required_approvals) {
		not_after = r->now_ms + (int64_t)(s->cfg.approval_validity * 1000);
		if (!cr_sign(r, st, cr, not_after)) {
			cJSON_Delete(u);
			goto out;
		}
		t = cr_task(r, st, cr, "apply", not_after);
		if (t == NULL) {
			rq_error(r, 503, "store_unavailable", "cannot create the change request's task");
			cJSON_Delete(u);
			goto out;
		}
		cJSON_AddStringToObject(u, "state", "approved");
		cJSON_AddNumberToObject(u, "approved_at", (double)r->now_ms);
		cJSON_AddStringToObject(u, "task_id", srv_jstr(t, "id"));
		r->job.wake = true;
		op_log_info("cr", "change request %s approved by %s: task %s", r->param[0], r->admin,
			    srv_jstr(t, "id"));
	}
	store_update(st, T_CRS, r->param[0], u);
	cJSON_Delete(u);
	cJSON_Delete(cr);
	cr = NULL;
	store_get(st, T_CRS, r->param[0], &cr);
	rq_ok(r, 200, cr_view(st, cr, true, s->cfg.cr_required_approvals));
out:
	cJSON_Delete(t);
	cJSON_Delete(cr);
}

static void cr_reject_run(struct rq *r, struct store *st)
{
	cJSON *cr = get_cr(r, st), *u, *t = NULL;
	const char *state;

	if (cr == NULL)
		return;
	state = srv_jstr(cr, "state");
	if (str_eq(state, "approved") && srv_jstr(cr, "task_id") &&
	    store_get(st, T_TASKS, srv_jstr(cr, "task_id"), &t) == OP_OK &&
	    str_eq(srv_jstr(t, "state"), "queued")) {
		/* approved but not started: the task goes too */
		u = cJSON_CreateObject();
		cJSON_AddStringToObject(u, "state", "cancelled");
		cJSON_AddStringToObject(u, "reason", "change request rejected");
		cJSON_AddNumberToObject(u, "finished_at", (double)r->now_ms);
		store_update(st, T_TASKS, srv_jstr(t, "id"), u);
		cJSON_Delete(u);
	} else if (!str_eq(state, "pending")) {
		rq_error(r, 409, "cr_not_pending", "change request %s is %s: it can no longer be rejected",
			 r->param[0], state);
		cJSON_Delete(cr);
		return;
	}
	u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "state", "rejected");
	cJSON_AddStringToObject(u, "rejected_by", r->admin);
	if (srv_jstr(r->body, "reason"))
		cJSON_AddStringToObject(u, "reject_reason", srv_jstr(r->body, "reason"));
	cJSON_AddNumberToObject(u, "updated_at", (double)r->now_ms);
	store_update(st, T_CRS, r->param[0], u);
	cJSON_Delete(u);
	cJSON_Delete(cr);
	cJSON_Delete(t);
	cr = NULL;
	store_get(st, T_CRS, r->param[0], &cr);
	rq_ok(r, 200, cr_view(st, cr, true, r->srv->cfg.cr_required_approvals));
	cJSON_Delete(cr);
}

/* needs_attention → resume, rollback (a fresh signature, same approvers) or abandon. */
static void task_resolve_run(struct rq *r, struct store *st)
{
	struct srv *s = r->srv;
	cJSON *t = get_task(r, st), *cr = NULL, *u = NULL;
	const char *action = srv_jstr(r->body, "action");
	char reason[300];

	if (t == NULL)
		return;
	audit_detail(r, "action", cJSON_CreateString(action));
	if (!str_eq(srv_jstr(t, "state"), "needs_attention") || !srv_jstr(t, "cr_id") ||
	    store_get(st, T_CRS, srv_jstr(t, "cr_id"), &cr) != OP_OK) {
		rq_error(r, 409, "not_needs_attention",
			 "task %s is %s: only a change request's task in needs_attention can be resolved",
			 r->param[0], srv_jstr(t, "state"));
		goto out;
	}
	u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "updated_at", (double)r->now_ms);
	if (str_eq(action, "abandon")) {
		snprintf(reason, sizeof(reason), "abandoned by %s", r->admin);
		cJSON_AddStringToObject(u, "state", "abandoned");
		cJSON_AddStringToObject(u, "reason", reason);
		cJSON_AddNumberToObject(u, "finished_at", (double)r->now_ms);
		set_cr(st, srv_jstr(cr, "id"), "abandoned", r->admin, "abandon", r->now_ms);
	} else {
		int64_t not_after = r->now_ms + (int64_t)(s->cfg.approval_validity * 1000);

		if (!cr_definition_current(r, st, cr) || !cr_sign(r, st, cr, not_after))
			goto out;
		snprintf(reason, sizeof(reason), "%s requested by %s", action, r->admin);
		cJSON_AddStringToObject(u, "state", "queued");
		cJSON_AddStringToObject(u, "mode", action);
		cJSON_AddStringToObject(u, "reason", reason);
		cJSON_AddNumberToObject(u, "not_after", (double)not_after);
		cJSON_AddNumberToObject(u, "max_attempts", (double)(srv_jint(t, "attempt", 0) + 1));
		set_cr(st, srv_jstr(cr, "id"), "approved", r->admin, action, r->now_ms);
		r->job.wake = true;
	}
	store_update(st, T_TASKS, r->param[0], u);
	cJSON_Delete(t);
	t = NULL;
	store_get(st, T_TASKS, r->param[0], &t);
	rq_ok(r, 200, task_public(t, r->now_ms));
out:
	cJSON_Delete(u);
	cJSON_Delete(cr);
	cJSON_Delete(t);
}

/* ---- audit log --------------------------------------------------------------------------- */

static void audit_list_run(struct rq *r, struct store *st)
{
	cJSON *arr = NULL, *out = cJSON_CreateArray(), *o, *actor = NULL, *action = NULL, *since = NULL;
	struct store_cond c[3];
	size_t n = 0;
	const cJSON *a;
	int64_t ms;

	if (rq_query(r, "actor")) {
		actor = cJSON_CreateString(rq_query(r, "actor"));
		c[n++] = (struct store_cond){"actor", SO_EQ, actor};
	}
	if (rq_query(r, "action")) {
		action = cJSON_CreateString(rq_query(r, "action"));
		c[n++] = (struct store_cond){"action", SO_EQ, action};
	}
	if (rq_query(r, "since")) {
		if (srv_parse_time(rq_query(r, "since"), &ms) < 0) {
			rq_error(r, 400, "invalid_field", "since: expected an RFC 3339 UTC time such as 2026-11-23T10:00:00Z");
			goto out;
		}
		since = cJSON_CreateNumber((double)ms);
		c[n++] = (struct store_cond){"at", SO_GE, since};
	}
	{
		struct store_query q = {c, n, "id", true, query_int(r, "limit", 100, 1, 10000), 0, NULL};

		if (st->ops->select(st, T_AUDIT, &q, &arr) != OP_OK) {
			rq_error(r, 503, "store_unavailable", "cannot read the audit log");
			goto out;
		}
	}
	cJSON_ArrayForEach(a, arr)
	{
		cJSON *v = cJSON_CreateObject();

		cJSON_AddNumberToObject(v, "id", (double)srv_jint(a, "id", 0));
		srv_jadd_time(v, "at", srv_jint(a, "at", 0));
		cJSON_AddItemToObject(v, "actor", jstr(srv_jstr(a, "actor")));
		cJSON_AddItemToObject(v, "action", jstr(srv_jstr(a, "action")));
		cJSON_AddItemToObject(v, "target", jstr(srv_jstr(a, "target")));
		cJSON_AddItemToObject(v, "remote", jstr(srv_jstr(a, "remote")));
		cJSON_AddItemToObject(v, "result", jstr(srv_jstr(a, "result")));
		cJSON_AddItemToObject(v, "detail", srv_jdup_or(cJSON_GetObjectItemCaseSensitive(a, "detail"), "{}"));
		cJSON_AddItemToArray(out, v);
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "entries", out);
	out = NULL;
	rq_ok(r, 200, o);
out:
	cJSON_Delete(out);
	cJSON_Delete(arr);
	cJSON_Delete(actor);
	cJSON_Delete(action);
	cJSON_Delete(since);
}

/* ---- the table ---------------------------------------------------------------------------- */

#define ADMIN(m, p, schema, pre, run, audit) {m, p, AUTH_ADMIN, schema, pre, run, NULL, audit, NULL}

struct route admin_routes[] = {
	ADMIN("GET", "/admin/whoami", NULL, NULL, whoami_run, NULL),
	ADMIN("GET", "/admin/stats", NULL, NULL, stats_run, NULL),
	ADMIN("GET", "/admin/metrics", NULL, NULL, metrics_run, NULL),
	ADMIN("GET", "/admin/settings", NULL, NULL, settings_view, NULL),
	ADMIN("POST", "/admin/settings", SETTINGS_SCHEMA, NULL, settings_set_run, "settings.update"),
	ADMIN("POST", "/admin/tokens", TOKEN_SCHEMA, NULL, token_create_run, "token.create"),
	ADMIN("GET", "/admin/tokens", NULL, NULL, token_list_run, NULL),
	ADMIN("POST", "/admin/tokens/{}/revoke", EMPTY_SCHEMA, NULL, token_revoke_run, "token.revoke"),
	ADMIN("POST", "/admin/admin-tokens", ADMIN_TOKEN_SCHEMA, NULL, admin_token_create_run,
	      "admin_token.create"),
	ADMIN("GET", "/admin/admin-tokens", NULL, NULL, admin_token_list_run, NULL),
	ADMIN("POST", "/admin/admin-tokens/{}/revoke", EMPTY_SCHEMA, NULL, admin_token_revoke_run,
	      "admin_token.revoke"),
	ADMIN("GET", "/admin/agents", NULL, NULL, agents_list_run, NULL),
	ADMIN("GET", "/admin/agents/{}", NULL, NULL, agent_show_run, NULL),
	ADMIN("DELETE", "/admin/agents/{}", NULL, NULL, agent_delete_run, "agent.delete"),
	ADMIN("POST", "/admin/agents/{}/drain", EMPTY_SCHEMA, NULL, agent_drain_run, "agent.drain"),
	ADMIN("POST", "/admin/agents/{}/undrain", EMPTY_SCHEMA, NULL, agent_undrain_run, "agent.undrain"),
	ADMIN("POST", "/admin/agents/{}/revoke", EMPTY_SCHEMA, NULL, agent_revoke_run, "agent.revoke"),
	ADMIN("POST", "/admin/tasks", TASK_SCHEMA, task_pre, task_submit_run, "task.submit"),
	ADMIN("POST", "/admin/tasks/batch", TASK_BATCH_SCHEMA, task_batch_pre, task_batch_run,
	      "task.submit_batch"),
	ADMIN("GET", "/admin/tasks", NULL, NULL, task_list_run, NULL),
	ADMIN("GET", "/admin/tasks/{}", NULL, NULL, task_show_run, NULL),
	ADMIN("GET", "/admin/tasks/{}/logs", NULL, NULL, task_logs_run, NULL),
	ADMIN("GET", "/admin/tasks/{}/artifacts", NULL, NULL, artifacts_list_run, NULL),
	ADMIN("GET", "/admin/tasks/{}/artifacts/{}", NULL, NULL, artifact_get_run, NULL),
	ADMIN("POST", "/admin/tasks/{}/cancel", EMPTY_SCHEMA, NULL, task_cancel_run, "task.cancel"),
	ADMIN("POST", "/admin/tasks/{}/resolve", RESOLVE_SCHEMA, NULL, task_resolve_run, "task.resolve"),
	ADMIN("POST", "/admin/change-requests", CR_SCHEMA, NULL, cr_create_run, "cr.create"),
	ADMIN("GET", "/admin/change-requests", NULL, NULL, cr_list_run, NULL),
	ADMIN("GET", "/admin/change-requests/{}", NULL, NULL, cr_show_run, NULL),
	ADMIN("POST", "/admin/change-requests/{}/approve", EMPTY_SCHEMA, NULL, cr_approve_run,
	      "cr.approve"),
	ADMIN("POST", "/admin/change-requests/{}/reject", EMPTY_SCHEMA, NULL, cr_reject_run, "cr.reject"),
	ADMIN("GET", "/admin/audit", NULL, NULL, audit_list_run, NULL),
};
const size_t admin_routes_n = OP_ARRAY_LEN(admin_routes);
