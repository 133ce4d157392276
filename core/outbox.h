/* SPDX-License-Identifier: Apache-2.0 */
/* Durable records in the state dir: leases being run, and messages not yet acknowledged. */
#ifndef AG_OUTBOX_H
#define AG_OUTBOX_H

#include <cjson/cJSON.h>

#include "op.h"

/*
 * STATE/leases/LEASE.json   written (fsync) before a task starts, removed once its
 *                           completion (or release) is acknowledged: after a crash or kill -9
 *                           the agent finds the leases it was running.
 * STATE/outbox/LEASE.json   the completion, written (write, fsync, rename) before it is sent,
 *                           removed once the control plane acknowledged it; re-sent with backoff
 *                           until then, across restarts.
 */

struct ob_entry {
	char lease_id[96];
	cJSON *doc; /* the record as stored */
};

struct ob_list {
	struct ob_entry *v;
	size_t n;
};

op_rc ob_init(const char *state_dir, struct op_error *err);

op_rc ob_lease_begin(const char *state_dir, const char *lease_id, const cJSON *record,
		     struct op_error *err);
void ob_lease_end(const char *state_dir, const char *lease_id);

/* Stores the message to deliver for LEASE_ID: {"path": "/agent/leases/ID/complete",
 * "body": {...}, "task_id", "type"}. */
op_rc ob_put(const char *state_dir, const char *lease_id, const cJSON *msg, struct op_error *err);
void ob_ack(const char *state_dir, const char *lease_id);

/* What is stored: the pending messages, and the lease records (with or without a message). */
op_rc ob_list_pending(const char *state_dir, struct ob_list *out, struct op_error *err);
op_rc ob_list_leases(const char *state_dir, struct ob_list *out, struct op_error *err);
void ob_list_release(struct ob_list *l);
/* Whether LEASE_ID has a pending message. */
int ob_has(const char *state_dir, const char *lease_id);

#endif
