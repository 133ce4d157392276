/* SPDX-License-Identifier: Apache-2.0 */
/* Asynchronous JSON calls to the control plane over kept-alive connections (curl multi). */
#ifndef AG_RPC_H
#define AG_RPC_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>

#include "op.h"
#include "transport.h"

/*
 * One multi handle, at most two connections to the control plane, both kept alive: one ends
 * up carrying the lease long poll, the other heartbeats, renewals, log chunks and completions
 * (HTTP/1.1 cannot share one between a long poll and the rest). A TLS handshake is then rare.
 * Calls complete from rpc_poll(), on the caller's thread.
 */

struct rpc;
struct rpc_call;

struct rpc_result {
	long status;	       /* 0: no HTTP answer (see fail and error) */
	enum tp_fail fail;
	const cJSON *json;     /* the answer, when JSON */
	const char *reason;    /* its "reason", or NULL */
	const char *message;   /* its "message", or the transport failure's text */
	double latency;	       /* seconds */
	bool aborted;	       /* rpc_abort() was called */
};

typedef void (*rpc_done_fn)(void *ud, const struct rpc_result *r);

op_rc rpc_new(const struct tp_config *tp, struct rpc **out, struct op_error *err);
void rpc_free(struct rpc *rpc);
/* Uses TP for calls started from now on; with FRESH, they open new connections (after a
 * certificate rotation the old ones carry the old identity). */
op_rc rpc_set_config(struct rpc *rpc, const struct tp_config *tp, bool fresh);

/* Starts METHOD PATH with BODY (may be NULL). EXTRA_TIMEOUT adds to the request timeout (the
 * long poll's wait). DONE is called exactly once, unless rpc_free comes first. */
struct rpc_call *rpc_start(struct rpc *rpc, const char *method, const char *path,
			   const cJSON *body, double extra_timeout, rpc_done_fn done, void *ud);
/* Stops CALL; its DONE runs at the next rpc_poll with aborted set. */
void rpc_abort(struct rpc_call *call);

/* Waits up to TIMEOUT_MS for the calls' sockets and the caller's EXTRA descriptors (their
 * revents are filled), then runs the finished calls' callbacks. */
op_rc rpc_poll(struct rpc *rpc, struct curl_waitfd *extra, unsigned n, int timeout_ms,
	       struct op_error *err);
int rpc_active(const struct rpc *rpc);
/* TLS handshakes done so far (connections opened), for status and tests. */
long rpc_connects(const struct rpc *rpc);

#endif
