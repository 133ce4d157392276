/* SPDX-License-Identifier: Apache-2.0 */
/* The logical schema every storage backend implements, and helpers over the interface. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#define COLS(a) a, OP_ARRAY_LEN(a)

static const struct store_column meta_cols[] = {
	{"key", ST_TEXT},
	{"value", ST_TEXT},
};
static const char *const meta_idx[] = {NULL};

/* Named admin tokens (decisions.md 15): the name is who approves and who the audit names. */
static const struct store_column admin_token_cols[] = {
	{"name", ST_TEXT},	 {"hash", ST_TEXT},	    {"created_at", ST_INT},
	{"created_by", ST_TEXT}, {"revoked_at", ST_INT},    {"revoked_by", ST_TEXT},
	{"last_used_at", ST_INT}, {"description", ST_TEXT},
};
static const char *const admin_token_idx[] = {"UNIQUE hash", NULL};

static const struct store_column enroll_token_cols[] = {
	{"id", ST_TEXT},	  {"hash", ST_TEXT},	     {"pool", ST_TEXT},
	{"environment", ST_TEXT}, {"tags", ST_JSON},	     {"uses_max", ST_INT},
	{"uses", ST_INT},	  {"expires_at", ST_INT},    {"created_at", ST_INT},
	{"created_by", ST_TEXT},  {"revoked_at", ST_INT},    {"revoked_by", ST_TEXT},
	{"last_used_at", ST_INT}, {"description", ST_TEXT},
};
static const char *const enroll_token_idx[] = {"UNIQUE hash", "created_at", NULL};

/* One per (token, public key): the answer a replayed enrollment gets again. */
static const struct store_column enrollment_cols[] = {
	{"id", ST_TEXT},	{"token_id", ST_TEXT},	 {"key_hash", ST_TEXT},
	{"agent_id", ST_TEXT},	{"response", ST_JSON},	 {"created_at", ST_INT},
};
static const char *const enrollment_idx[] = {"created_at", NULL};

static const struct store_column agent_cols[] = {
	{"id", ST_TEXT},
	{"hostname", ST_TEXT},
	{"os", ST_TEXT},
	{"arch", ST_TEXT},
	{"version", ST_TEXT},
	{"pool", ST_TEXT},
	{"environment", ST_TEXT},
	{"tags", ST_JSON},
	{"plugins", ST_JSON},
	{"task_types", ST_JSON},
	{"change_types", ST_JSON},
	{"state", ST_TEXT},	     /* active, draining, revoked */
	{"reported_state", ST_TEXT}, /* idle, busy, draining: what the agent said */
	{"slots", ST_INT},
	{"running", ST_JSON},
	{"health", ST_JSON},
	{"versions", ST_JSON},
	{"enrolled_at", ST_INT},
	{"last_seen", ST_INT},
	{"token_id", ST_TEXT},
	{"cert_serial", ST_TEXT},
	{"cert_not_before", ST_INT},
	{"cert_not_after", ST_INT},
	{"next_serial", ST_TEXT},
	{"next_not_before", ST_INT},
	{"next_not_after", ST_INT},
	{"rotated_at", ST_INT},
	{"revoked_at", ST_INT},
	{"revoked_by", ST_TEXT},
	{"state_changed_by", ST_TEXT},
	{"state_changed_at", ST_INT},
};
static const char *const agent_idx[] = {"hostname", "enrolled_at", NULL};

static const struct store_column task_cols[] = {
	{"id", ST_TEXT},
	{"seq", ST_INT},
	{"name", ST_TEXT},
	{"type", ST_TEXT},
	{"params", ST_JSON},
	{"pool", ST_TEXT},
	{"environment", ST_TEXT},
	{"tags", ST_JSON},
	{"target_host", ST_TEXT},
	{"target_agent", ST_TEXT},
	{"timeout", ST_REAL},
	{"max_attempts", ST_INT},
	{"attempt", ST_INT},
	{"state", ST_TEXT},
	{"reason", ST_TEXT},
	{"error", ST_JSON},
	{"result", ST_JSON},
	{"artifacts", ST_JSON},
	{"duration", ST_REAL},
	{"created_at", ST_INT},
	{"updated_at", ST_INT},
	{"started_at", ST_INT},
	{"finished_at", ST_INT},
	{"submitted_by", ST_TEXT},
	{"cancel_requested", ST_BOOL},
	{"cancelled_by", ST_TEXT},
	{"cr_id", ST_TEXT},
	{"lease_id", ST_TEXT},
	{"agent_id", ST_TEXT},
	{"not_after", ST_INT},
	{"released_agent", ST_TEXT},
	{"released_until", ST_INT},
	{"log_size", ST_INT},
	{"log_truncated", ST_BOOL},
	{"mode", ST_TEXT}, /* change.apply: apply, resume, rollback */
};
static const char *const task_idx[] = {"state,type,seq", "seq", "cr_id", "finished_at", NULL};

static const struct store_column lease_cols[] = {
	{"id", ST_TEXT},	    {"task_id", ST_TEXT},     {"agent_id", ST_TEXT},
	{"attempt", ST_INT},	    {"state", ST_TEXT},	      {"created_at", ST_INT},
	{"expires_at", ST_INT},	    {"renewed_at", ST_INT},   {"ended_at", ST_INT},
	{"status", ST_TEXT},	    {"progress", ST_JSON},    {"log_size", ST_INT},
	{"log_base", ST_INT},	    {"cancel", ST_BOOL},      {"ttl", ST_REAL},
};
static const char *const lease_idx[] = {"state,expires_at", "agent_id,state", "task_id", NULL};

/* Log chunks: OFFSET is within the lease's log, TOFF..TEND within the task's whole log. */
static const struct store_column log_cols[] = {
	{"id", ST_INT},	      {"task_id", ST_TEXT}, {"lease_id", ST_TEXT}, {"offset", ST_INT},
	{"toff", ST_INT},     {"tend", ST_INT},	    {"data", ST_TEXT},	   {"at", ST_INT},
};
static const char *const log_idx[] = {"task_id,tend", NULL};

static const struct store_column cr_cols[] = {
	{"id", ST_TEXT},
	{"seq", ST_INT},
	{"title", ST_TEXT},
	{"description", ST_TEXT},
	{"change_type", ST_TEXT},
	{"definition_digest", ST_TEXT},
	{"definition", ST_JSON},
	{"params", ST_JSON},
	{"target_agent_id", ST_TEXT},
	{"target_hostname", ST_TEXT},
	{"state", ST_TEXT},
	{"requested_by", ST_TEXT},
	{"created_at", ST_INT},
	{"updated_at", ST_INT},
	{"approvers", ST_JSON},
	{"approved_at", ST_INT},
	{"rejected_by", ST_TEXT},
	{"reject_reason", ST_TEXT},
	{"not_after", ST_INT},
	{"payload", ST_JSON},
	{"signature", ST_TEXT},
	{"task_id", ST_TEXT},
	{"timeout", ST_REAL},
	{"resolution", ST_TEXT},
	{"resolved_by", ST_TEXT},
};
static const char *const cr_idx[] = {"seq", "state", NULL};

static const struct store_column cr_step_cols[] = {
	{"id", ST_INT},	       {"cr_id", ST_TEXT}, {"task_id", ST_TEXT}, {"lease_id", ST_TEXT},
	{"attempt", ST_INT},   {"step", ST_JSON},  {"digest", ST_TEXT},	 {"received_at", ST_INT},
	{"late", ST_BOOL},
};
static const char *const cr_step_idx[] = {"cr_id,id", "UNIQUE lease_id,digest", NULL};

static const struct store_column audit_cols[] = {
	{"id", ST_INT},	    {"at", ST_INT},	   {"actor", ST_TEXT}, {"action", ST_TEXT},
	{"target", ST_TEXT}, {"remote", ST_TEXT},  {"result", ST_TEXT}, {"detail", ST_JSON},
};
static const char *const audit_idx[] = {"at", "actor", NULL};

/* Small artifacts a task uploaded (decisions.md 17); CONTENT is base64. */
static const struct store_column artifact_cols[] = {
	{"id", ST_INT},		{"task_id", ST_TEXT},	 {"lease_id", ST_TEXT}, {"agent_id", ST_TEXT},
	{"name", ST_TEXT},	{"size", ST_INT},	 {"sha256", ST_TEXT},	{"content_type", ST_TEXT},
	{"content", ST_TEXT},	{"created_at", ST_INT},
};
static const char *const artifact_idx[] = {"UNIQUE task_id,name", NULL};

const struct store_table store_tables[T__COUNT] = {
	[T_META] = {"meta", "key", false, COLS(meta_cols), meta_idx},
	[T_ADMIN_TOKENS] = {"admin_tokens", "name", false, COLS(admin_token_cols), admin_token_idx},
	[T_ENROLL_TOKENS] = {"enroll_tokens", "id", false, COLS(enroll_token_cols), enroll_token_idx},
	[T_ENROLLMENTS] = {"enrollments", "id", false, COLS(enrollment_cols), enrollment_idx},
	[T_AGENTS] = {"agents", "id", false, COLS(agent_cols), agent_idx},
	[T_TASKS] = {"tasks", "id", false, COLS(task_cols), task_idx},
	[T_LEASES] = {"leases", "id", false, COLS(lease_cols), lease_idx},
	[T_LOGS] = {"logs", "id", true, COLS(log_cols), log_idx},
	[T_CRS] = {"change_requests", "id", false, COLS(cr_cols), cr_idx},
	[T_CR_STEPS] = {"cr_steps", "id", true, COLS(cr_step_cols), cr_step_idx},
	[T_AUDIT] = {"audit", "id", true, COLS(audit_cols), audit_idx},
	[T_ARTIFACTS] = {"artifacts", "id", true, COLS(artifact_cols), artifact_idx},
};

const struct store_column *store_column(enum store_tab t, const char *col)
{
	const struct store_table *tab = &store_tables[t];

	for (size_t i = 0; i < tab->ncols; i++)
		if (strcmp(tab->cols[i].name, col) == 0)
			return &tab->cols[i];
	return NULL;
}

op_rc store_select_eq(struct store *s, enum store_tab t, const char *col, const char *value,
		      int limit, cJSON **out)
{
	cJSON *v = cJSON_CreateString(value);
	struct store_cond c = {col, SO_EQ, v};
	struct store_query q = {&c, 1, NULL, false, limit, 0, NULL};
	op_rc rc;

	if (v == NULL)
		return OP_ENOMEM;
	rc = s->ops->select(s, t, &q, out);
	cJSON_Delete(v);
	return rc;
}

op_rc store_find(struct store *s, enum store_tab t, const char *col, const char *value,
		 cJSON **out)
{
	cJSON *arr = NULL;
	op_rc rc = store_select_eq(s, t, col, value, 1, &arr);

	if (rc != OP_OK)
		return rc;
	if (cJSON_GetArraySize(arr) == 0) {
		cJSON_Delete(arr);
		return OP_ENOENT;
	}
	*out = cJSON_DetachItemFromArray(arr, 0);
	cJSON_Delete(arr);
	return OP_OK;
}

op_rc store_meta_get(struct store *s, const char *key, char **value)
{
	cJSON *rec = NULL;
	const cJSON *v;
	op_rc rc = store_get(s, T_META, key, &rec);

	*value = NULL;
	if (rc != OP_OK)
		return rc;
	v = cJSON_GetObjectItemCaseSensitive(rec, "value");
	if (cJSON_IsString(v))
		*value = strdup(v->valuestring);
	cJSON_Delete(rec);
	return OP_OK;
}

op_rc store_meta_set(struct store *s, const char *key, const char *value)
{
	cJSON *rec = cJSON_CreateObject();
	int changed = 0;
	op_rc rc = OP_ENOMEM;

	if (rec == NULL)
		return OP_ENOMEM;
	if (value)
		cJSON_AddStringToObject(rec, "value", value);
	else
		cJSON_AddNullToObject(rec, "value");
	rc = s->ops->update(s, T_META, key, rec, NULL, 0, &changed);
	if (rc == OP_OK && !changed) {
		cJSON_AddStringToObject(rec, "key", key);
		rc = store_insert(s, T_META, rec);
	}
	cJSON_Delete(rec);
	return rc;
}
