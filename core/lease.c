/* SPDX-License-Identifier: Apache-2.0 */
/* Leases: long poll, hand-over to workers, renewals, log streaming, durable completion. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "agent.h"
#include "canonjson.h"
#include "fsutil.h"
#include "identity.h"
#include "jsonprint.h"
#include "log.h"
#include "outbox.h"
#include "utf8.h"

#define LOG_CHUNK (64 * 1024)	      /* one log call carries at most this */
#define LOG_PENDING_MAX (1024 * 1024) /* per task, waiting to be sent */
#define LOG_FLUSH_S 0.5		      /* how long a log line may wait */
#define FINISH_WAIT_S 10.0	      /* final log chunks before completing anyway */
#define DELIVER_MAX_BACKOFF_S 30.0

static void start_delivery(struct ag_task *t);

static struct ag_task *task_find(struct agent *ag, const char *lease_id)
{
	for (struct ag_task *t = ag->tasks; t; t = t->next)
		if (strcmp(t->lease_id, lease_id) == 0)
			return t;
	return NULL;
}

static void task_unlink_free(struct agent *ag, struct ag_task *t)
{
	for (struct ag_task **pp = &ag->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->renew_call)
		rpc_abort(t->renew_call);
	if (t->log_call)
		rpc_abort(t->log_call);
	if (t->complete_call)
		rpc_abort(t->complete_call);
	if (t->record_call)
		rpc_abort(t->record_call);
	op_buf_release(&t->log);
	cJSON_Delete(t->message);
	cJSON_Delete(t->records);
	free(t);
}

/* A task is finished with once its completion was acknowledged (or it lost its lease) and no
 * call of its is in flight (their callbacks hold the pointer). */
static void task_maybe_free(struct ag_task *t)
{
	if (t->job == NULL && t->renew_call == NULL && t->log_call == NULL &&
	    t->complete_call == NULL && t->record_call == NULL &&
	    (t->lost || t->state == T_COMPLETING) && t->message == NULL &&
	    cJSON_GetArraySize(t->records) == 0)
		task_unlink_free(t->ag, t);
}

int lease_running(const struct agent *ag)
{
	int n = 0;

	for (const struct ag_task *t = ag->tasks; t; t = t->next)
		if (t->job != NULL)
			n++;
	return n;
}

cJSON *lease_running_ids(const struct agent *ag)
{
	cJSON *a = cJSON_CreateArray();

	for (const struct ag_task *t = ag->tasks; a && t; t = t->next)
		if (!t->lost && t->state != T_COMPLETING)
			cJSON_AddItemToArray(a, cJSON_CreateString(t->lease_id));
	return a;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* ---- the task log ------------------------------------------------------------------------ */

static void log_append(struct ag_task *t, const char *data, size_t len)
{
	if (t->lost || t->state == T_COMPLETING)
		return;
	if (t->log.len + len > LOG_PENDING_MAX) {
		t->log_dropped += len;
		return;
	}
	(void)op_buf_append(&t->log, data, len);
}

static void on_log(void *ud, int level, const char *text, size_t len)
{
	struct ag_task *t = ud;
	struct op_buf line = OP_BUF_INIT;
	char ts[40];

	tp_format_time(tp_now(), ts, sizeof(ts));
	if (op_buf_printf(&line, "%s %-5s ", ts + 11, op_log_level_name(level)) == 0 &&
	    op_buf_append(&line, text, len) == 0 && op_buf_append(&line, "\n", 1) == 0)
		log_append(t, line.data, line.len);
	op_buf_release(&line);
}

static void on_output(void *ud, int stream, const char *data, size_t len)
{
	(void)stream;
	log_append(ud, data, len);
}

static void on_progress(void *ud, double fraction, const char *msg)
{
	struct ag_task *t = ud;

	(void)msg;
	t->progress = fraction;
}

/* ---- progress records (change request steps) ------------------------------------------- */

static void record_done(void *ud, const struct rpc_result *r)
{
	struct ag_task *t = ud;
	cJSON *first = cJSON_GetArrayItem(t->records, 0);
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "id"));

	t->record_call = NULL;
	if (r->aborted) {
		task_maybe_free(t);
		return;
	}
	if (r->status == 200 || (r->status >= 400 && r->status < 500 && r->status != 408 &&
				 r->status != 429 && r->status != 403)) {
		if (r->status != 200)
			op_log_warn("lease", "record of task %s refused (%s): dropped", t->task_id,
				    r->reason ? r->reason : "HTTP error");
		if (id)
			ob_ack(t->ag->cfg.state_dir, id);
		cJSON_DeleteItemFromArray(t->records, 0);
		t->record_failures = 0;
		t->record_at = 0;
	} else if (r->status == 403 && r->reason &&
		   (strcmp(r->reason, "agent_revoked") == 0 ||
		    strcmp(r->reason, "agent_not_found") == 0)) {
		ag_revoked(t->ag, r->reason);
	} else {
		double backoff = pow(2, t->record_failures < 5 ? t->record_failures : 5);

		t->record_failures++;
		t->record_at = ag_now() + ag_jitter(backoff, 0.5);
	}
	task_maybe_free(t);
}

static void record_send(struct ag_task *t)
{
	cJSON *first = cJSON_GetArrayItem(t->records, 0);
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(first, "msg");
	const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "path"));

	if (path == NULL || t->record_call || t->ag->quit)
		return;
	t->record_call = rpc_start(t->ag->rpc, "POST", path,
				   cJSON_GetObjectItemCaseSensitive(msg, "body"), 0, record_done, t);
	if (t->record_call == NULL)
		t->record_at = ag_now() + 1;
}

/* Queues MSG (stored as ID in the outbox) for delivery in order. */
static void record_queue(struct ag_task *t, const char *id, cJSON *msg)
{
	cJSON *e = cJSON_CreateObject();

	if (t->records == NULL)
		t->records = cJSON_CreateArray();
	if (e == NULL || t->records == NULL) {
		cJSON_Delete(e);
		cJSON_Delete(msg);
		return;
	}
	cJSON_AddStringToObject(e, "id", id);
	cJSON_AddItemToObject(e, "msg", msg);
	cJSON_AddItemToArray(t->records, e);
}

static void on_record(void *ud, const cJSON *rec)
{
	struct ag_task *t = ud;
	struct op_error err = {0};
	cJSON *msg = cJSON_CreateObject(), *body;
	char id[128], path[160];

	if (msg == NULL)
		return;
	snprintf(id, sizeof(id), "%s-r%04d", t->lease_id, ++t->record_seq);
	snprintf(path, sizeof(path), "/agent/leases/%s/steps", t->lease_id);
	cJSON_AddStringToObject(msg, "path", path);
	body = cJSON_AddObjectToObject(msg, "body");
	cJSON_AddItemToObject(body, "step", cJSON_Duplicate(rec, true));
	cJSON_AddStringToObject(msg, "task_id", t->task_id);
	cJSON_AddStringToObject(msg, "type", t->type);
	cJSON_AddStringToObject(msg, "lease_id", t->lease_id);
	if (ob_put(t->ag->cfg.state_dir, id, msg, &err) != OP_OK)
		op_log_error("outbox", "cannot store a record of task %s durably: %s: sending it "
				       "from memory", t->task_id, err.msg);
	record_queue(t, id, msg);
}

static void log_done(void *ud, const struct rpc_result *r)
{
	struct ag_task *t = ud;
	struct agent *ag = t->ag;
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(r->json, "offset");

	t->log_call = NULL;
	if (r->aborted) {
		t->log_inflight = 0;
		task_maybe_free(t);
		return;
	}
	if (r->status == 200 && cJSON_IsNumber(off)) {
		op_buf_consume(&t->log, t->log_inflight);
		t->log_offset = (uint64_t)off->valuedouble;
	} else if (r->status == 416 && cJSON_IsNumber(off)) {
		/* The server has more (a lost answer) or less than we thought: resume from its
		 * offset, skipping what it already has. */
		uint64_t server = (uint64_t)off->valuedouble;

		if (server > t->log_offset)
			op_buf_consume(&t->log, (size_t)(server - t->log_offset));
		t->log_offset = server;
	} else if (r->status == 409) {
		t->lost = true;
		if (t->job)
			sv_kill(t->job, "lease lost");
	} else if (r->status == 403 &&
		   (r->reason && (strcmp(r->reason, "agent_revoked") == 0 ||
				  strcmp(r->reason, "agent_not_found") == 0))) {
		ag_revoked(ag, r->reason);
	} else {
		op_log_debug("lease", "log chunk for %s not accepted: %s", t->lease_id,
			     r->message ? r->message : "no answer");
	}
	t->log_inflight = 0;
	task_maybe_free(t);
}

/* The next chunk of the task's log, {"offset", "data"}: up to LOG_CHUNK bytes cut at a
 * UTF-8 boundary, or, when FINAL, all of it (a sequence cut short at the end is replaced by
 * the sanitiser). *N is how many bytes of t->log it holds. NULL when there is nothing to
 * send or no memory. */
static cJSON *log_chunk(const struct ag_task *t, bool final, size_t *n)
{
	struct op_buf data = OP_BUF_INIT;
	cJSON *body;

	*n = t->log.len < LOG_CHUNK || final ? t->log.len : LOG_CHUNK;
	if (!final)
		*n = op_utf8_boundary(t->log.data, *n);
	if (*n == 0 && t->log.len >= 4)
		*n = 1; /* an invalid byte: let the sanitiser replace it */
	if (*n == 0 || op_utf8_append(&data, t->log.data, *n) < 0)
		return NULL;
	body = cJSON_CreateObject();
	if (body != NULL && (cJSON_AddNumberToObject(body, "offset", (double)t->log_offset) == NULL ||
			     cJSON_AddStringToObject(body, "data", data.data) == NULL)) {
		cJSON_Delete(body);
		body = NULL;
	}
	op_buf_release(&data);
	return body;
}

/* Sends the next log chunk when one is due and none is in flight. */
static void log_flush(struct ag_task *t, bool force)
{
	struct agent *ag = t->ag;
	cJSON *body;
	char path[160];
	size_t n;

	if (t->log_call || t->lost || t->log.len == 0)
		return;
	if (!force && t->log.len < LOG_CHUNK / 4 && ag_now() - t->log_last < LOG_FLUSH_S)
		return;
	t->log_last = ag_now();
	body = log_chunk(t, false, &n);
	if (body == NULL)
		return;
	snprintf(path, sizeof(path), "/agent/leases/%s/logs", t->lease_id);
	t->log_call = rpc_start(ag->rpc, "POST", path, body, 0, log_done, t);
	/* The server counts bytes of what it received: the sanitised text may be longer. */
	if (t->log_call)
		t->log_inflight = n;
	cJSON_Delete(body);
}

/* ---- renewals ---------------------------------------------------------------------------- */

static void renew_done(void *ud, const struct rpc_result *r)
{
	struct ag_task *t = ud;
	struct agent *ag = t->ag;

	t->renew_call = NULL;
	if (r->aborted) {
		task_maybe_free(t);
		return;
	}
	if (r->status == 200) {
		const cJSON *cancel = cJSON_GetObjectItemCaseSensitive(r->json, "cancel");

		t->ttl = jnum(r->json, "ttl", t->ttl);
		t->renew_at = ag_now() + t->ttl / 3;
		if (cJSON_IsTrue(cancel) && t->job && !t->cancelled) {
			t->cancelled = true;
			op_log_info("lease", "cancelling task %s: cancelled on the control plane",
				    t->task_id);
			sv_cancel(t->job, "cancelled on the control plane");
		}
	} else if (r->status == 409) {
		op_log_warn("lease",
			    "lease %s of task %s was lost (expired or given to another agent): "
			    "stopping the task and dropping its result",
			    t->lease_id, t->task_id);
		t->lost = true;
		if (t->job)
			sv_kill(t->job, "lease lost");
		ob_ack(ag->cfg.state_dir, t->lease_id);
		ob_lease_end(ag->cfg.state_dir, t->lease_id);
		cJSON_Delete(t->message);
		t->message = NULL;
	} else if (r->status == 403 && r->reason &&
		   (strcmp(r->reason, "agent_revoked") == 0 ||
		    strcmp(r->reason, "agent_not_found") == 0)) {
		ag_revoked(ag, r->reason);
	} else if (r->status == 403 && r->reason && strcmp(r->reason, "cert_expired") == 0) {
		ag_cert_expired(ag);
		t->renew_at = ag_now() + 1;
	} else if (r->status == 403 && r->reason && strcmp(r->reason, "cert_superseded") == 0) {
		ag_cert_superseded(ag);
		t->renew_at = ag_now() + 1;
	} else {
		/* Transient: try again soon, well before the TTL runs out. */
		double retry = t->ttl / 10;

		t->renew_at = ag_now() + (retry < 1 ? retry : 1);
		ag_set_error(ag, "renewing lease %s: %s", t->lease_id,
			     r->message ? r->message : "no answer");
	}
	task_maybe_free(t);
}

static void renew(struct ag_task *t)
{
	cJSON *body = cJSON_CreateObject();
	char path[160];

	if (body == NULL)
		return;
	if (t->job)
		cJSON_AddNumberToObject(body, "progress", t->progress);
	snprintf(path, sizeof(path), "/agent/leases/%s/renew", t->lease_id);
	t->renew_call = rpc_start(t->ag->rpc, "POST", path, body, 0, renew_done, t);
	if (t->renew_call == NULL)
		t->renew_at = ag_now() + 1;
	cJSON_Delete(body);
}

/* ---- outcomes and delivery ----------------------------------------------------------------- */

static void deliver_done(void *ud, const struct rpc_result *r)
{
	struct ag_task *t = ud;
	struct agent *ag = t->ag;
	bool release = strstr(jstr(t->message, "path") ? jstr(t->message, "path") : "", "/release") != NULL;

	t->complete_call = NULL;
	if (r->aborted) {
		task_maybe_free(t);
		return;
	}
	if (r->status == 200 || r->status == 409 || r->status == 404) {
		if (r->status == 200)
			op_log_info("lease", "task %s %s: %s", t->task_id,
				    release ? "released" : "reported",
				    release ? jstr(cJSON_GetObjectItemCaseSensitive(t->message, "body"),
						   "reason")
					    : jstr(cJSON_GetObjectItemCaseSensitive(t->message, "body"),
						   "status"));
		else
			op_log_warn("lease",
				    "the control plane no longer holds lease %s of task %s (%s): its "
				    "result is dropped (the task was requeued or finished elsewhere)",
				    t->lease_id, t->task_id, r->reason ? r->reason : "not found");
		ob_ack(ag->cfg.state_dir, t->lease_id);
		ob_lease_end(ag->cfg.state_dir, t->lease_id);
		cJSON_Delete(t->message);
		t->message = NULL;
		t->lost = true;
		if (r->status == 200)
			ag->m.completions_total++;
	} else if (r->status == 403 && r->reason &&
		   (strcmp(r->reason, "agent_revoked") == 0 ||
		    strcmp(r->reason, "agent_not_found") == 0)) {
		ag_revoked(ag, r->reason);
	} else {
		double backoff = pow(2, t->deliver_failures < 6 ? t->deliver_failures : 6);

		if (r->status == 403 && r->reason && strcmp(r->reason, "cert_expired") == 0)
			ag_cert_expired(ag);
		t->deliver_failures++;
		if (backoff > DELIVER_MAX_BACKOFF_S)
			backoff = DELIVER_MAX_BACKOFF_S;
		t->deliver_at = ag_now() + ag_jitter(backoff, 0.5);
		ag_set_error(ag, "reporting task %s: %s (retrying in %.0fs)", t->task_id,
			     r->message ? r->message : "no answer", backoff);
	}
	task_maybe_free(t);
}

static void start_delivery(struct ag_task *t)
{
	const char *path = jstr(t->message, "path");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(t->message, "body");

	if (t->complete_call || path == NULL || t->ag->quit)
		return;
	t->complete_call = rpc_start(t->ag->rpc, "POST", path, body, 0, deliver_done, t);
	if (t->complete_call == NULL)
		t->deliver_at = ag_now() + 1;
}

/* Stores MESSAGE durably (outbox) and starts delivering it. A full disk does not lose it:
 * it stays in memory, is sent anyway, and the failure is logged loudly. */
static void queue_message(struct ag_task *t, cJSON *message)
{
	struct op_error err = {0};

	cJSON_AddStringToObject(message, "task_id", t->task_id);
	cJSON_AddStringToObject(message, "type", t->type);
	if (ob_put(t->ag->cfg.state_dir, t->lease_id, message, &err) != OP_OK) {
		const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(message, "path"));
		size_t len = path ? strlen(path) : 0;
		bool release = len >= 8 && strcmp(path + len - 8, "/release") == 0;

		op_log_error("outbox",
			     "cannot store the %s of task %s durably: %s: sending it from memory "
			     "(it is lost if the agent stops before the control plane has it)",
			     release ? "release" : "result", t->task_id, err.msg);
		ag_set_error(t->ag, "outbox: %s", err.msg);
	}
	cJSON_Delete(t->message);
	t->message = message;
	t->deliver_at = 0;
}

static cJSON *release_message(const struct ag_task *t, const char *reason)
{
	cJSON *m = cJSON_CreateObject(), *body;
	char path[160];

	if (m == NULL)
		return NULL;
	snprintf(path, sizeof(path), "/agent/leases/%s/release", t->lease_id);
	cJSON_AddStringToObject(m, "path", path);
	body = cJSON_AddObjectToObject(m, "body");
	cJSON_AddStringToObject(body, "reason", reason);
	return m;
}

/* RESULT_TEXT is the result as the plugin gave it (validated and redacted by the supervisor):
 * it goes in as raw text, so a result of megabytes is not copied node by node and printed
 * twice more (outbox, request). LOG, when not NULL, is the end of the task's log, which the
 * completion carries (taken over). */
static cJSON *complete_message(const struct ag_task *t, const char *status, const char *error,
			       const char *result_text, const cJSON *artifacts, double duration,
			       cJSON *log)
{
	cJSON *m = cJSON_CreateObject(), *body, *res;
	char path[160];

	if (m == NULL)
		return NULL;
	snprintf(path, sizeof(path), "/agent/leases/%s/complete", t->lease_id);
	cJSON_AddStringToObject(m, "path", path);
	body = cJSON_AddObjectToObject(m, "body");
	cJSON_AddStringToObject(body, "status", status);
	if (error)
		cJSON_AddStringToObject(body, "error", error);
	res = result_text ? cJSON_CreateRaw(result_text) : NULL;
	if (res)
		cJSON_AddItemToObject(body, "result", res);
	if (artifacts)
		cJSON_AddItemToObject(body, "artifacts", cJSON_Duplicate(artifacts, true));
	cJSON_AddNumberToObject(body, "duration", floor(duration * 1000) / 1000);
	if (log)
		cJSON_AddItemToObject(body, "log", log);
	return m;
}

static void on_done(void *ud, const struct sv_outcome *o)
{
	struct ag_task *t = ud;
	struct agent *ag = t->ag;
	const char *status = sv_status_name(o->status);
	cJSON *msg, *tail = NULL;
	size_t n;

	t->job = NULL;
	metrics_observe_task(ag, t->type, status, o->duration);
	if (t->lost) {
		op_log_info("lease", "task %s ended after its lease was lost: result dropped",
			    t->task_id);
		task_maybe_free(t);
		return;
	}
	/* A cancel the control plane asked for reads as cancelled, whatever the plugin did. */
	if (t->cancelled && o->status != SV_SUCCEEDED)
		status = "cancelled";
	if (o->output_cut) {
		char note[160];

		snprintf(note, sizeof(note),
			 "[outpost] %llu bytes of output over workers.output_limit were dropped\n",
			 (unsigned long long)o->output_cut);
		log_append(t, note, strlen(note));
	}
	if (t->log_dropped) {
		char note[160];

		snprintf(note, sizeof(note),
			 "[outpost] %llu bytes of log were dropped: the control plane did not keep up\n",
			 (unsigned long long)t->log_dropped);
		log_append(t, note, strlen(note));
	}
	op_log_info("lease", "task %s (%s) %s in %.3fs%s%s", t->task_id, t->type, status,
		    o->duration, o->error ? ": " : "", o->error ? o->error : "");
	/* The end of the log rides with the completion when it fits in one chunk and nothing
	 * is in flight before it: one round trip (and one commit) fewer for every task. */
	if (t->log_call == NULL && t->log.len > 0 && t->log.len <= LOG_CHUNK &&
	    (tail = log_chunk(t, true, &n)) != NULL)
		op_buf_consume(&t->log, n);
	msg = complete_message(t, status, o->error, o->result_text, o->artifacts, o->duration,
			       tail);
	if (msg)
		queue_message(t, msg);
	else
		cJSON_Delete(tail);
	t->state = T_FINISHING;
	t->finishing_since = ag_now();
	log_flush(t, true);
	if (t->log.len == 0 && t->log_call == NULL && cJSON_GetArraySize(t->records) == 0) {
		/* Nothing left to stream: report now, not at the loop's next turn. */
		t->state = T_COMPLETING;
		start_delivery(t);
	}
}

/* ---- taking a lease ---------------------------------------------------------------------- */

/* Verifies a change request's approval before its task runs (decisions.md 14). */
static bool approval_ok(struct agent *ag, const cJSON *lease, char *why, size_t size)
{
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(lease, "change_request");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(cr, "payload");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(lease, "params");
	const char *sig = jstr(cr, "signature");
	struct op_buf canon = OP_BUF_INIT;
	struct op_error err = {0};
	char key[PATH_MAX];
	double not_after;
	bool ok = false;

	if (!cJSON_IsObject(payload) || sig == NULL) {
		snprintf(why, size, "the lease carries no signed approval");
		goto out;
	}
	if (op_json_canonical(payload, &canon) < 0) {
		snprintf(why, size, "the approval cannot be put in canonical form");
		goto out;
	}
	id_path(ag->cfg.state_dir, ID_APPROVAL, key, sizeof(key));
	if (id_verify(key, canon.data, canon.len, sig, &err) != OP_OK) {
		snprintf(why, size, "%s", err.msg);
		goto out;
	}
	if (jstr(payload, "target_agent_id") == NULL ||
	    strcmp(jstr(payload, "target_agent_id"), ag->agent_id) != 0) {
		snprintf(why, size, "the approval targets agent %s, this is %s",
			 jstr(payload, "target_agent_id") ? jstr(payload, "target_agent_id") : "?",
			 ag->agent_id);
		goto out;
	}
	if (jstr(payload, "cr_id") == NULL || jstr(params, "cr_id") == NULL ||
	    strcmp(jstr(payload, "cr_id"), jstr(params, "cr_id")) != 0 ||
	    jstr(payload, "change_type") == NULL || jstr(params, "change_type") == NULL ||
	    strcmp(jstr(payload, "change_type"), jstr(params, "change_type")) != 0 ||
	    !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(payload, "params"),
			   cJSON_GetObjectItemCaseSensitive(params, "params"), true)) {
		snprintf(why, size, "the task's change request, type or parameters differ from "
				    "the approved ones");
		goto out;
	}
	if (tp_parse_time(jstr(payload, "not_after"), &not_after) < 0 || not_after < tp_now()) {
		snprintf(why, size, "the approval expired (not_after %s)",
			 jstr(payload, "not_after") ? jstr(payload, "not_after") : "missing");
		goto out;
	}
	ok = true;
out:
	op_buf_release(&canon);
	return ok;
}

static struct ag_task *task_new(struct agent *ag, const char *lease_id, const char *task_id,
				const char *type)
{
	struct ag_task *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ag = ag;
	op_strlcpy(t->lease_id, lease_id, sizeof(t->lease_id));
	op_strlcpy(t->task_id, task_id ? task_id : "?", sizeof(t->task_id));
	op_strlcpy(t->type, type ? type : "?", sizeof(t->type));
	t->next = ag->tasks;
	ag->tasks = t;
	return t;
}

/* Gives back or fails a lease that will not run, durably like any outcome. */
static void refuse(struct ag_task *t, bool release, const char *why)
{
	cJSON *msg;

	op_log_warn("lease", "not running task %s (%s): %s", t->task_id, t->type, why);
	if (release)
		msg = release_message(t, why);
	else
		msg = complete_message(t, "failed", why, NULL, NULL, 0, NULL);
	t->state = T_COMPLETING;
	if (msg)
		queue_message(t, msg);
}

static void take_lease(struct agent *ag, const cJSON *lease)
{
	const char *lease_id = jstr(lease, "lease_id"), *task_id = jstr(lease, "task_id");
	const char *type = jstr(lease, "type"), *target = jstr(lease, "target_host");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(lease, "params");
	struct op_error err = {0};
	struct sv_task st;
	struct ag_task *t;
	cJSON *record;
	char *ptext = NULL, why[600];

	if (lease_id == NULL || type == NULL || task_find(ag, lease_id)) {
		op_log_warn("lease", "ignoring a malformed or duplicate lease");
		return;
	}
	t = task_new(ag, lease_id, task_id, type);
	if (t == NULL)
		return;
	ag->m.leases_total++;
	t->ttl = jnum(lease, "ttl", ag->lease_ttl);
	t->timeout = jnum(lease, "timeout", 0);
	t->started = ag_now();
	t->renew_at = t->started + t->ttl / 3;
	t->is_change = strcmp(type, "change.apply") == 0;
	/* A lease for another host is given back, never run. */
	if (target != NULL && *target && strcasecmp(target, ag->hostname) != 0) {
		snprintf(why, sizeof(why), "the task targets host %s and this agent runs on %s",
			 target, ag->hostname);
		refuse(t, true, why);
		return;
	}
	if (ag_draining(ag)) {
		refuse(t, true, "the agent is draining");
		return;
	}
	if (sv_plugin_for_type(ag->sv, type) == NULL) {
		snprintf(why, sizeof(why), "no enabled plugin on this agent serves task type %s",
			 type);
		refuse(t, true, why);
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(lease, "change_request") != NULL || t->is_change) {
		if (!approval_ok(ag, lease, why, sizeof(why))) {
			char msg[700];

			snprintf(msg, sizeof(msg), "change request approval refused by the agent: %s",
				 why);
			refuse(t, false, msg);
			return;
		}
	}
	/* Recorded before it runs: after a crash the agent knows it had this lease. */
	record = cJSON_Duplicate(lease, true);
	if (record)
		cJSON_AddNumberToObject(record, "received_at", tp_now());
	if (record == NULL || ob_lease_begin(ag->cfg.state_dir, lease_id, record, &err) != OP_OK) {
		snprintf(why, sizeof(why), "cannot record the lease in the state dir: %s", err.msg);
		cJSON_Delete(record);
		ag_set_error(ag, "%s", why);
		refuse(t, true, why);
		return;
	}
	cJSON_Delete(record);
	snprintf(t->workspace, sizeof(t->workspace), "%s/%s", ag->cfg.workspace_dir, lease_id);
	if (op_mkdir_p(t->workspace, 0750, &err) != OP_OK) {
		snprintf(why, sizeof(why), "cannot create the task workspace: %s", err.msg);
		ag_set_error(ag, "%s", why);
		refuse(t, true, why);
		return;
	}
	/* A change request's task gets its signed approval too: the change plugin checks it
	 * against its own definition (decisions.md 14) and resumes or rolls back as asked. */
	if (t->is_change && cJSON_IsObject(params)) {
		cJSON *p = cJSON_Duplicate(params, true);

		if (p) {
			cJSON_AddItemToObject(
				p, "change_request",
				cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(lease, "change_request"),
						true));
			ptext = op_json_print(p, false);
			cJSON_Delete(p);
		}
	} else {
		ptext = params ? op_json_print(params, false) : NULL;
	}
	st.id = lease_id;
	st.type = type;
	st.params = ptext ? ptext : "{}";
	st.workspace = t->workspace;
	st.timeout = t->timeout;
	{
		static const struct sv_events ev = {on_log, on_output, on_progress, on_done,
						    on_record};

		t->sv = ag->sv;
		if (sv_start(ag->sv, &st, &ev, t, &t->job, &err) != OP_OK) {
			t->job = NULL;
			refuse(t, false, err.msg);
		} else {
			op_log_info("lease", "running task %s (%s) lease=%s attempt=%d", t->task_id,
				    type, lease_id, (int)jnum(lease, "attempt", 1));
			t->state = T_RUNNING;
		}
	}
	cJSON_free(ptext);
}

/* ---- the long poll ----------------------------------------------------------------------- */

static void lease_done(void *ud, const struct rpc_result *r)
{
	struct agent *ag = ud;
	const cJSON *leases, *l;

	ag->lease_call = NULL;
	if (r->aborted)
		return;
	if (r->status == 200 || r->status == 204) {
		ag->lease_failures = 0;
		ag->lease_next = 0;
		leases = cJSON_GetObjectItemCaseSensitive(r->json, "leases");
		cJSON_ArrayForEach(l, leases)
		{
			take_lease(ag, l);
		}
		return;
	}
	if (r->status == 409 && r->reason && strcmp(r->reason, "agent_draining") == 0) {
		ag->drain_server = true;
		ag->lease_next = ag_now() + ag->hb_interval;
		return;
	}
	if (r->status == 403 && r->reason &&
	    (strcmp(r->reason, "agent_revoked") == 0 || strcmp(r->reason, "agent_not_found") == 0)) {
		ag_revoked(ag, r->reason);
		return;
	}
	if (r->status == 403 && r->reason && strcmp(r->reason, "cert_expired") == 0)
		ag_cert_expired(ag);
	ag->lease_failures++;
	{
		double backoff = pow(2, ag->lease_failures < 6 ? ag->lease_failures : 6);

		ag->lease_next = ag_now() + ag_jitter(backoff, 0.5);
		ag_set_error(ag, "leasing: %s", r->message ? r->message : "no answer");
		op_log_warn("lease", "lease request failed: %s (HTTP %ld); retrying in %.0fs",
			    r->message ? r->message : "no answer", r->status, backoff);
	}
}

static void poll_leases(struct agent *ag)
{
	int slots = ag_free_slots(ag);
	cJSON *body;

	if (ag->lease_call != NULL || slots <= 0 || ag_draining(ag) || ag->quit ||
	    ag_now() < ag->lease_next || ag->task_types == NULL ||
	    cJSON_GetArraySize(ag->task_types) == 0)
		return;
	body = cJSON_CreateObject();
	if (body == NULL)
		return;
	cJSON_AddNumberToObject(body, "slots", slots);
	cJSON_AddItemToObject(body, "task_types", cJSON_Duplicate(ag->task_types, true));
	cJSON_AddNumberToObject(body, "wait", ag->long_poll);
	ag->lease_call = rpc_start(ag->rpc, "POST", "/agent/leases", body, ag->long_poll,
				   lease_done, ag);
	if (ag->lease_call == NULL)
		ag->lease_next = ag_now() + 1;
	cJSON_Delete(body);
}

/* ---- the tick ---------------------------------------------------------------------------- */

void lease_tick(struct agent *ag)
{
	double now = ag_now();

	/* A long poll in flight when leasing stops (drain) is not aborted: the control plane may
	 * be handing it a lease at that very moment, which would then wait for its TTL. It
	 * finishes, and a lease it brings is given back (take_lease). */
	for (struct ag_task *t = ag->tasks, *next; t; t = next) {
		next = t->next;
		/* Renewed until its completion is acknowledged (an outcome left from before a
		 * restart has no TTL: its lease is the control plane's business by now). */
		if (!t->lost && t->ttl > 0 && t->renew_call == NULL && now >= t->renew_at &&
		    !ag->quit)
			renew(t);
		if (!t->lost && t->log.len > 0)
			log_flush(t, t->state == T_FINISHING);
		if (t->state == T_FINISHING &&
		    ((t->log.len == 0 && t->log_call == NULL) || t->lost ||
		     now - t->finishing_since > FINISH_WAIT_S))
			t->state = T_COMPLETING;
		if (cJSON_GetArraySize(t->records) > 0 && t->record_call == NULL &&
		    now >= t->record_at)
			record_send(t);
		/* The completion goes after the records, so the step record is whole first. */
		if (t->state == T_COMPLETING && t->message && t->complete_call == NULL &&
		    now >= t->deliver_at && cJSON_GetArraySize(t->records) == 0)
			start_delivery(t);
		task_maybe_free(t);
	}
	poll_leases(ag);
}

double lease_next_timer(const struct agent *ag)
{
	double next = ag->lease_call || ag_draining(ag) || ag_free_slots(ag) <= 0 ? 0 : ag->lease_next;

	for (const struct ag_task *t = ag->tasks; t; t = t->next) {
		if (!t->lost && t->ttl > 0 && t->renew_call == NULL &&
		    (next == 0 || t->renew_at < next))
			next = t->renew_at;
		if (t->log.len > 0 && t->log_call == NULL) {
			double due = t->log_last + LOG_FLUSH_S;

			if (next == 0 || due < next)
				next = due;
		}
		if (t->state == T_FINISHING) {
			double due = t->log.len == 0 && t->log_call == NULL
					     ? ag_now()
					     : t->finishing_since + FINISH_WAIT_S;

			if (next == 0 || due < next)
				next = due;
		}
		if (t->state == T_COMPLETING && t->message && t->complete_call == NULL &&
		    (next == 0 || t->deliver_at < next))
			next = t->deliver_at;
		if (cJSON_GetArraySize(t->records) > 0 && t->record_call == NULL &&
		    (next == 0 || t->record_at < next))
			next = t->record_at > 0 ? t->record_at : ag_now();
	}
	return next;
}

void lease_cancel(struct agent *ag, const char *lease_id, const char *why)
{
	struct ag_task *t = task_find(ag, lease_id);

	if (t == NULL || t->job == NULL || t->cancelled)
		return;
	t->cancelled = true;
	op_log_info("lease", "cancelling task %s: %s", t->task_id, why);
	sv_cancel(t->job, why);
}

void lease_cancel_all(struct agent *ag, const char *why, bool kill)
{
	for (struct ag_task *t = ag->tasks; t; t = t->next) {
		if (t->job == NULL)
			continue;
		if (kill) {
			sv_kill(t->job, why);
		} else if (!t->cancelled) {
			t->cancelled = true;
			sv_cancel(t->job, why);
		}
	}
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct ob_entry *)a)->lease_id, ((const struct ob_entry *)b)->lease_id);
}

/* At start-up: completions not yet acknowledged are delivered again; leases that were running
 * when the agent stopped (crash, kill -9) are given back, so they run again without waiting
 * for their TTL. */
void lease_load_outbox(struct agent *ag)
{
	struct ob_list pending, leases;
	struct op_error err = {0};

	if (ob_list_pending(ag->cfg.state_dir, &pending, &err) != OP_OK) {
		op_log_error("outbox", "%s", err.msg);
		return;
	}
	/* Records (LEASE-rNNNN) first, in order; the completion (LEASE) of each lease after. */
	if (pending.n > 1)
		qsort(pending.v, pending.n, sizeof(*pending.v), by_id);
	for (size_t i = 0; i < pending.n; i++) {
		const char *lease = jstr(pending.v[i].doc, "lease_id");
		bool is_record = strstr(pending.v[i].lease_id, "-r") != NULL && lease != NULL;
		struct ag_task *t = task_find(ag, is_record ? lease : pending.v[i].lease_id);

		if (t == NULL)
			t = task_new(ag, is_record ? lease : pending.v[i].lease_id,
				     jstr(pending.v[i].doc, "task_id"), jstr(pending.v[i].doc, "type"));
		if (t == NULL)
			break;
		t->state = T_COMPLETING;
		if (is_record) {
			record_queue(t, pending.v[i].lease_id, pending.v[i].doc);
		} else {
			t->message = pending.v[i].doc;
			op_log_info("outbox", "delivering the stored outcome of task %s (lease %s)",
				    t->task_id, t->lease_id);
		}
		pending.v[i].doc = NULL;
	}
	ob_list_release(&pending);
	if (ob_list_leases(ag->cfg.state_dir, &leases, &err) != OP_OK) {
		op_log_error("outbox", "%s", err.msg);
		return;
	}
	for (size_t i = 0; i < leases.n; i++) {
		struct ag_task *t = task_find(ag, leases.v[i].lease_id);

		if (t != NULL && t->message != NULL)
			continue; /* its outcome is stored: delivered above */
		if (t == NULL)
			t = task_new(ag, leases.v[i].lease_id, jstr(leases.v[i].doc, "task_id"),
				     jstr(leases.v[i].doc, "type"));
		if (t == NULL)
			break;
		op_log_warn("lease",
			    "task %s (%s) was running when the agent stopped: giving its lease back",
			    t->task_id, t->type);
		refuse(t, true, "the agent restarted while the task ran");
	}
	ob_list_release(&leases);
}

void lease_free_all(struct agent *ag)
{
	while (ag->tasks) {
		struct ag_task *t = ag->tasks;

		ag->tasks = t->next;
		op_buf_release(&t->log);
		cJSON_Delete(t->message);
		cJSON_Delete(t->records);
		free(t);
	}
}
