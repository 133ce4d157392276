/* SPDX-License-Identifier: Apache-2.0 */
/* Task and lease logic shared by the agent and admin APIs: routing, leasing, losing leases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "jsonprint.h"
#include "log.h"
#include "server.h"
#include "util.h"

static const char *const FINAL_STATES[] = {"succeeded", "failed",   "cancelled", "timed_out",
					   "crashed",	"invalid",  "expired",	 "abandoned",
					   "rejected"};

bool task_state_final(const char *state)
{
	for (size_t i = 0; state && i < OP_ARRAY_LEN(FINAL_STATES); i++)
		if (strcmp(state, FINAL_STATES[i]) == 0)
			return true;
	return false;
}

const char *agent_status(struct srv *s, const cJSON *agent, int64_t now)
{
	const char *state = srv_jstr(agent, "state");
	int64_t seen = srv_jint(agent, "last_seen", 0);

	if (state && strcmp(state, "revoked") == 0)
		return "revoked";
	if (seen == 0 || (double)(now - seen) > s->cfg.offline_after * 1000)
		return "offline";
	if (state && strcmp(state, "draining") == 0)
		return "draining";
	return "online";
}

static void copy_item(cJSON *dst, const cJSON *src, const char *key, const char *as)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, key);

	cJSON_AddItemToObject(dst, as ? as : key, v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
}

static void copy_time(cJSON *dst, const cJSON *src, const char *key)
{
	srv_jadd_time(dst, key, srv_jint(src, key, 0));
}

cJSON *agent_public(struct srv *s, const cJSON *a, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *cert;

	copy_item(o, a, "id", NULL);
	copy_item(o, a, "hostname", NULL);
	cJSON_AddStringToObject(o, "status", agent_status(s, a, now));
	copy_item(o, a, "state", NULL);
	copy_item(o, a, "reported_state", NULL);
	copy_item(o, a, "os", NULL);
	copy_item(o, a, "arch", NULL);
	copy_item(o, a, "version", NULL);
	copy_item(o, a, "pool", NULL);
	copy_item(o, a, "environment", NULL);
	copy_item(o, a, "tags", NULL);
	copy_item(o, a, "slots", NULL);
	copy_item(o, a, "running", NULL);
	copy_item(o, a, "task_types", NULL);
	copy_item(o, a, "plugins", NULL);
	copy_item(o, a, "change_types", NULL);
	copy_item(o, a, "versions", NULL);
	copy_item(o, a, "health", NULL);
	copy_time(o, a, "enrolled_at");
	copy_time(o, a, "last_seen");
	copy_item(o, a, "token_id", NULL);
	cert = cJSON_AddObjectToObject(o, "certificate");
	copy_item(cert, a, "cert_serial", "serial");
	srv_jadd_time(cert, "not_before", srv_jint(a, "cert_not_before", 0));
	srv_jadd_time(cert, "not_after", srv_jint(a, "cert_not_after", 0));
	copy_item(cert, a, "next_serial", NULL);
	srv_jadd_time(cert, "rotated_at", srv_jint(a, "rotated_at", 0));
	copy_time(o, a, "revoked_at");
	copy_item(o, a, "revoked_by", NULL);
	copy_item(o, a, "state_changed_by", NULL);
	copy_time(o, a, "state_changed_at");
	return o;
}

cJSON *task_public(const cJSON *t, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	static const char *const keys[] = {"id",	  "name",	  "type",     "state",
					   "reason",	  "params",	  "pool",     "environment",
					   "tags",	  "target_host",  "target_agent", "timeout",
					   "max_attempts", "attempt",	  "error",    "result",
					   "artifacts",	  "duration",	  "submitted_by", "cancel_requested",
					   "cancelled_by", "cr_id",	  "lease_id", "agent_id",
					   "log_size",	  "log_truncated", "mode"};
	static const char *const times[] = {"created_at", "updated_at", "started_at",
					    "finished_at", "not_after"};

	(void)now;
	for (size_t i = 0; i < OP_ARRAY_LEN(keys); i++)
		copy_item(o, t, keys[i], NULL);
	for (size_t i = 0; i < OP_ARRAY_LEN(times); i++)
		copy_time(o, t, times[i]);
	return o;
}

int64_t tasks_next_seq(struct srv *s, struct store *st, enum store_tab t)
{
	int64_t *seq = t == T_CRS ? &s->cr_seq : &s->task_seq;

	if (*seq == 0) {
		struct store_query q = {NULL, 0, "seq", true, 1, 0, NULL};
		cJSON *arr = NULL;

		if (st->ops->select(st, t, &q, &arr) == OP_OK && cJSON_GetArraySize(arr) > 0)
			*seq = srv_jint(cJSON_GetArrayItem(arr, 0), "seq", 0);
		cJSON_Delete(arr);
	}
	return ++*seq;
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

bool task_matches_agent(struct srv *s, const cJSON *t, const cJSON *a, const cJSON *types)
{
	const char *v;

	(void)s;
	if (!srv_jstrings_contains(types, srv_jstr(t, "type") ? srv_jstr(t, "type") : ""))
		return false;
	if ((v = srv_jstr(t, "pool")) && *v && !str_eq(v, srv_jstr(a, "pool")))
		return false;
	if ((v = srv_jstr(t, "environment")) && *v && !str_eq(v, srv_jstr(a, "environment")))
		return false;
	if (!srv_jstrings_subset(cJSON_GetObjectItemCaseSensitive(t, "tags"),
				 cJSON_GetObjectItemCaseSensitive(a, "tags")))
		return false;
	if ((v = srv_jstr(t, "target_host")) && *v &&
	    (srv_jstr(a, "hostname") == NULL || strcasecmp(v, srv_jstr(a, "hostname")) != 0))
		return false;
	if ((v = srv_jstr(t, "target_agent")) && *v && !str_eq(v, srv_jstr(a, "id")))
		return false;
	return true;
}

/* The lease as the agent receives it. */
static cJSON *lease_view(struct srv *s, struct store *st, const cJSON *task, const char *lease_id,
			 int attempt)
{
	cJSON *l = cJSON_CreateObject();
	const char *cr_id = srv_jstr(task, "cr_id");

	cJSON_AddStringToObject(l, "lease_id", lease_id);
	copy_item(l, task, "id", "task_id");
	cJSON_AddNumberToObject(l, "attempt", attempt);
	copy_item(l, task, "max_attempts", NULL);
	copy_item(l, task, "type", NULL);
	copy_item(l, task, "name", NULL);
	copy_item(l, task, "params", NULL);
	cJSON_AddNumberToObject(l, "ttl", srv_round_ms(s->cfg.lease_ttl));
	copy_item(l, task, "timeout", NULL);
	copy_item(l, task, "target_host", NULL);
	copy_item(l, task, "pool", NULL);
	copy_item(l, task, "environment", NULL);
	copy_item(l, task, "tags", NULL);
	copy_time(l, task, "created_at");
	if (cr_id) {
		cJSON *cr = NULL, *steps = NULL, *o = cJSON_AddObjectToObject(l, "change_request");
		struct store_query q;
		cJSON *idv = cJSON_CreateString(cr_id);
		struct store_cond c = {"cr_id", SO_EQ, idv};

		if (store_get(st, T_CRS, cr_id, &cr) == OP_OK) {
			copy_item(o, cr, "payload", NULL);
			copy_item(o, cr, "signature", NULL);
		}
		srv_jadd_str(o, "action", srv_jstr(task, "mode") ? srv_jstr(task, "mode") : "apply");
		memset(&q, 0, sizeof(q));
		q.conds = &c;
		q.nconds = 1;
		q.order = "id";
		if (st->ops->select(st, T_CR_STEPS, &q, &steps) == OP_OK) {
			cJSON *arr = cJSON_AddArrayToObject(o, "steps"), *row;

			cJSON_ArrayForEach(row, steps)
			{
				cJSON *step = cJSON_GetObjectItemCaseSensitive(row, "step");

				if (step)
					cJSON_AddItemToArray(arr, cJSON_Duplicate(step, true));
			}
		}
		cJSON_Delete(steps);
		cJSON_Delete(cr);
		cJSON_Delete(idv);
	}
	return l;
}

/* Leases one candidate T to AGENT; returns the agent's view of the lease, or NULL when the
 * task was taken meanwhile or the store failed. */
static cJSON *lease_one(struct srv *s, struct store *st, const cJSON *t, const cJSON *agent,
			int64_t now)
{
	char lease_id[32];
	cJSON *upd, *lease, *cond_v, *view = NULL;
	struct store_cond fence;
	int changed = 0, attempt;

	if (srv_random_id("lse_", 20, lease_id, sizeof(lease_id)) < 0)
		return NULL;
	attempt = (int)srv_jint(t, "attempt", 0) + 1;
	upd = cJSON_CreateObject();
	cJSON_AddStringToObject(upd, "state", "leased");
	cJSON_AddNumberToObject(upd, "attempt", attempt);
	cJSON_AddStringToObject(upd, "lease_id", lease_id);
	cJSON_AddStringToObject(upd, "agent_id", srv_jstr(agent, "id"));
	cJSON_AddNumberToObject(upd, "updated_at", (double)now);
	cJSON_AddNullToObject(upd, "reason");
	if (srv_jint(t, "started_at", 0) == 0)
		cJSON_AddNumberToObject(upd, "started_at", (double)now);
	cond_v = cJSON_CreateString("queued");
	fence = (struct store_cond){"state", SO_EQ, cond_v};
	if (st->ops->update(st, T_TASKS, srv_jstr(t, "id"), upd, &fence, 1, &changed) != OP_OK ||
	    !changed)
		goto out;
	lease = cJSON_CreateObject();
	cJSON_AddStringToObject(lease, "id", lease_id);
	cJSON_AddStringToObject(lease, "task_id", srv_jstr(t, "id"));
	cJSON_AddStringToObject(lease, "agent_id", srv_jstr(agent, "id"));
	cJSON_AddNumberToObject(lease, "attempt", attempt);
	cJSON_AddStringToObject(lease, "state", "active");
	cJSON_AddNumberToObject(lease, "created_at", (double)now);
	cJSON_AddNumberToObject(lease, "expires_at", (double)now + s->cfg.lease_ttl * 1000);
	cJSON_AddNumberToObject(lease, "log_size", 0);
	cJSON_AddNumberToObject(lease, "log_base", (double)srv_jint(t, "log_size", 0));
	cJSON_AddNumberToObject(lease, "ttl", s->cfg.lease_ttl);
	cJSON_AddBoolToObject(lease, "cancel", srv_jbool(t, "cancel_requested", false));
	if (store_insert(st, T_LEASES, lease) != OP_OK) {
		cJSON_Delete(lease);
		goto out;
	}
	cJSON_Delete(lease);
	if (srv_jstr(t, "cr_id"))
		tasks_set_cr_state(st, srv_jstr(t, "cr_id"), "running", now);
	view = lease_view(s, st, t, lease_id, attempt);
out:
	cJSON_Delete(upd);
	cJSON_Delete(cond_v);
	return view;
}

/* The queued tasks of TYPES oldest first, a page at a time (most often the first candidate
 * fits), until SLOTS leases or 512 candidates looked at. Earlier jobs of the same batch have
 * already changed the rows they took, so they are not seen again. */
cJSON *tasks_acquire(struct srv *s, struct store *st, const cJSON *agent, int slots,
		     const cJSON *types, int64_t now, bool *wake)
{
	cJSON *out = cJSON_CreateArray(), *stq = cJSON_CreateString("queued");
	struct store_cond conds[2] = {{"state", SO_EQ, stq}, {"type", SO_IN, types}};
	static const char *const cols[] = {
		"id",	       "type",	     "name",	     "params",	   "pool",	 "environment",
		"tags",	       "target_host", "target_agent", "timeout",   "max_attempts", "attempt",
		"started_at",  "created_at", "cr_id",	     "mode",	   "released_agent",
		"released_until", "not_after", "cancel_requested", "log_size", NULL};
	int page = slots * 2 < 8 ? 8 : slots * 2, seen = 0;
	struct store_query q = {conds, 2, "seq", false, page, 0, cols};

	(void)wake;
	if (slots <= 0 || cJSON_GetArraySize(types) == 0)
		goto out;
	while (cJSON_GetArraySize(out) < slots && seen < 512) {
		cJSON *cands = NULL;
		const cJSON *t;
		int n, skipped = 0;

		if (st->ops->select(st, T_TASKS, &q, &cands) != OP_OK)
			break;
		n = cJSON_GetArraySize(cands);
		cJSON_ArrayForEach(t, cands)
		{
			const char *rel = srv_jstr(t, "released_agent");
			int64_t na = srv_jint(t, "not_after", 0);
			cJSON *view;

			if (cJSON_GetArraySize(out) >= slots)
				break;
			if (!task_matches_agent(s, t, agent, types) ||
			    (rel && str_eq(rel, srv_jstr(agent, "id")) &&
			     srv_jint(t, "released_until", 0) > now) ||
			    (na > 0 && na < now)) { /* an approval that ran out: the reaper expires it */
				skipped++;
				continue;
			}
			view = lease_one(s, st, t, agent, now);
			if (view)
				cJSON_AddItemToArray(out, view);
			else
				skipped++;
		}
		cJSON_Delete(cands);
		seen += n;
		if (n < page)
			break;
		/* leased rows left the queue; skipped ones are still ahead of the next page */
		q.offset += skipped;
	}
out:
	cJSON_Delete(stq);
	return out;
}

void tasks_set_cr_state(struct store *st, const char *cr_id, const char *state, int64_t now)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddStringToObject(u, "state", state);
	cJSON_AddNumberToObject(u, "updated_at", (double)now);
	store_update(st, T_CRS, cr_id, u);
	cJSON_Delete(u);
}

op_rc tasks_lease_lost(struct srv *s, struct store *st, cJSON *lease, const char *why,
		       int64_t now, bool *wake)
{
	cJSON *lu = cJSON_CreateObject(), *task = NULL, *tu = NULL;
	const char *lease_id = srv_jstr(lease, "id"), *task_id = srv_jstr(lease, "task_id");
	char reason[300];
	op_rc rc;
	int attempt, max;

	cJSON_AddStringToObject(lu, "state", "expired");
	cJSON_AddNumberToObject(lu, "ended_at", (double)now);
	cJSON_AddStringToObject(lu, "status", why);
	rc = store_update(st, T_LEASES, lease_id, lu);
	cJSON_Delete(lu);
	if (rc != OP_OK)
		return rc;
	if (store_get(st, T_TASKS, task_id, &task) != OP_OK)
		return OP_OK;
	if (!str_eq(srv_jstr(task, "state"), "leased") || !str_eq(srv_jstr(task, "lease_id"), lease_id))
		goto out;
	attempt = (int)srv_jint(task, "attempt", 1);
	max = (int)srv_jint(task, "max_attempts", 1);
	tu = cJSON_CreateObject();
	cJSON_AddNumberToObject(tu, "updated_at", (double)now);
	if (srv_jbool(task, "cancel_requested", false)) {
		cJSON_AddStringToObject(tu, "state", "cancelled");
		snprintf(reason, sizeof(reason), "cancelled (the agent did not confirm: %s)", why);
		cJSON_AddStringToObject(tu, "reason", reason);
		cJSON_AddNumberToObject(tu, "finished_at", (double)now);
		if (srv_jstr(task, "cr_id"))
			tasks_set_cr_state(st, srv_jstr(task, "cr_id"), "cancelled", now);
	} else if (srv_jstr(task, "cr_id")) {
		/* decisions.md 16: a change is never retried blindly. */
		cJSON_AddStringToObject(tu, "state", "needs_attention");
		snprintf(reason, sizeof(reason),
			 "lease lost (%s) during attempt %d: choose resume, rollback or abandon", why,
			 attempt);
		cJSON_AddStringToObject(tu, "reason", reason);
		tasks_set_cr_state(st, srv_jstr(task, "cr_id"), "needs_attention", now);
	} else if (attempt < max) {
		cJSON_AddStringToObject(tu, "state", "queued");
		snprintf(reason, sizeof(reason), "requeued: lease %s (attempt %d of %d)", why, attempt,
			 max);
		cJSON_AddStringToObject(tu, "reason", reason);
		*wake = true;
	} else {
		cJSON *e = cJSON_CreateObject();

		cJSON_AddStringToObject(tu, "state", "failed");
		cJSON_AddStringToObject(tu, "reason", "lease_expired");
		cJSON_AddStringToObject(e, "reason", "lease_expired");
		snprintf(reason, sizeof(reason), "lease %s on the last of %d attempts", why, max);
		cJSON_AddStringToObject(e, "message", reason);
		cJSON_AddItemToObject(tu, "error", e);
		cJSON_AddNumberToObject(tu, "finished_at", (double)now);
	}
	rc = store_update(st, T_TASKS, task_id, tu);
	op_log_info("lease", "lease %s of task %s %s: task %s", lease_id, task_id, why,
		    srv_jstr(tu, "state"));
out:
	cJSON_Delete(tu);
	cJSON_Delete(task);
	return rc;
}

cJSON *tasks_routing(struct srv *s, struct store *st, const cJSON *t, const cJSON *agents,
		     int64_t now)
{
	enum { C_TYPE, C_POOL, C_ENV, C_TAGS, C_HOST, C_AGENT, C_N };
	bool any[C_N] = {false};
	bool used[C_N] = {true, false, false, false, false, false};
	const char *type = srv_jstr(t, "type"), *v;
	const cJSON *a;
	int eligible = 0, ready = 0, registered = 0;
	cJSON *o = cJSON_CreateObject(), *unmatched;
	char desc[C_N][300];

	(void)st;
	snprintf(desc[C_TYPE], sizeof(desc[0]), "type=%s (no agent serves it)", type ? type : "");
	used[C_POOL] = (v = srv_jstr(t, "pool")) && *v;
	snprintf(desc[C_POOL], sizeof(desc[0]), "pool=%s", v ? v : "");
	used[C_ENV] = (v = srv_jstr(t, "environment")) && *v;
	snprintf(desc[C_ENV], sizeof(desc[0]), "environment=%s", v ? v : "");
	used[C_TAGS] = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t, "tags")) > 0;
	{
		char *tags = op_json_print(cJSON_GetObjectItemCaseSensitive(t, "tags"), false);

		snprintf(desc[C_TAGS], sizeof(desc[0]), "tags=%s", tags ? tags : "[]");
		cJSON_free(tags);
	}
	used[C_HOST] = (v = srv_jstr(t, "target_host")) && *v;
	snprintf(desc[C_HOST], sizeof(desc[0]), "target_host=%s", v ? v : "");
	used[C_AGENT] = (v = srv_jstr(t, "target_agent")) && *v;
	snprintf(desc[C_AGENT], sizeof(desc[0]), "target_agent=%s", v ? v : "");

	cJSON_ArrayForEach(a, agents)
	{
		bool m[C_N];
		const char *status = agent_status(s, a, now);
		const cJSON *types = cJSON_GetObjectItemCaseSensitive(a, "task_types");
		bool all = true;

		if (strcmp(status, "revoked") == 0)
			continue;
		registered++;
		m[C_TYPE] = type && srv_jstrings_contains(types, type);
		m[C_POOL] = !used[C_POOL] || str_eq(srv_jstr(t, "pool"), srv_jstr(a, "pool"));
		m[C_ENV] = !used[C_ENV] ||
			   str_eq(srv_jstr(t, "environment"), srv_jstr(a, "environment"));
		m[C_TAGS] = srv_jstrings_subset(cJSON_GetObjectItemCaseSensitive(t, "tags"),
						cJSON_GetObjectItemCaseSensitive(a, "tags"));
		m[C_HOST] = !used[C_HOST] ||
			    (srv_jstr(a, "hostname") &&
			     strcasecmp(srv_jstr(t, "target_host"), srv_jstr(a, "hostname")) == 0);
		m[C_AGENT] = !used[C_AGENT] || str_eq(srv_jstr(t, "target_agent"), srv_jstr(a, "id"));
		for (int i = 0; i < C_N; i++) {
			any[i] |= m[i];
			all &= m[i];
		}
		if (all) {
			eligible++;
			if (strcmp(status, "online") == 0)
				ready++;
		}
	}
	cJSON_AddNumberToObject(o, "eligible_agents", eligible);
	cJSON_AddNumberToObject(o, "online_agents", ready);
	if (ready > 0) {
		cJSON_AddStringToObject(o, "status", "ready");
		cJSON_AddStringToObject(o, "message", "waiting for a free slot on an eligible agent");
	} else if (eligible > 0) {
		cJSON_AddStringToObject(o, "status", "waiting");
		cJSON_AddStringToObject(o, "message",
					"eligible agents exist but none is online and undrained");
	} else {
		struct op_buf msg = OP_BUF_INIT;
		int k = 0;

		cJSON_AddStringToObject(o, "status", "unroutable");
		unmatched = cJSON_AddArrayToObject(o, "unmatched");
		op_buf_puts(&msg, "unroutable: no eligible agent");
		for (int i = 0; i < C_N; i++) {
			if (!used[i] || any[i])
				continue;
			cJSON_AddItemToArray(unmatched, cJSON_CreateString(desc[i]));
			op_buf_printf(&msg, "%s%s", k++ ? ", " : " (no agent matches ", desc[i]);
		}
		if (k > 0)
			op_buf_puts(&msg, ")");
		else if (registered == 0)
			op_buf_puts(&msg, " (no agent is enrolled)");
		else
			op_buf_puts(&msg, " (each constraint matches some agent, but no agent matches all)");
		cJSON_AddStringToObject(o, "message", msg.data ? msg.data : "unroutable: no eligible agent");
		op_buf_release(&msg);
	}
	return o;
}
