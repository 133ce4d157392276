/* SPDX-License-Identifier: Apache-2.0 */
/* The running server: its state, the request context every route works on, and the routes. */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "dbq.h"
#include "pki.h"
#include "store.h"

enum auth_kind {
	AUTH_NONE,
	AUTH_AGENT,	  /* mTLS: a current certificate of ours, an agent neither revoked nor deleted */
	AUTH_AGENT_GRACE, /* the same, but a certificate expired within the rotation grace passes */
	AUTH_ADMIN,	  /* a bearer admin token */
};

struct rq;

struct route {
	const char *method; /* "GET", "POST", "DELETE" */
	const char *pattern; /* "/agent/leases/{}/renew": {} matches one path segment */
	enum auth_kind auth;
	const char *schema; /* JSON Schema (the common/schema.h subset) of the body; NULL: none */
	/* Loop thread, after auth and body checks, before the DB: returns false when it has
	 * already set an error (the request is then answered without touching the DB). */
	bool (*pre)(struct rq *r);
	/* DB thread, inside the batch transaction, after the auth prelude. */
	void (*run)(struct rq *r, struct store *s);
	/* Loop thread after commit; NULL sends the response. */
	void (*done)(struct rq *r);
	/* Admin actions: the name written to the audit log ("task.submit"); NULL: not audited. */
	const char *audit;
	cJSON *compiled; /* SCHEMA parsed at start */
};

struct waiter;

struct rq {
	struct dbjob job; /* first: a job is its request */
	struct srv *srv;
	struct evhttp_request *req;
	const struct route *route;
	char method[8];
	char path[512];
	char param[2][160]; /* the {} segments of the pattern, in order */
	struct evkeyvalq query;
	bool has_query;
	cJSON *body;
	char remote[64];
	int64_t t0_us;
	int64_t now_ms;

	/* agent auth (mTLS) */
	char agent_id[80];
	char serial[65];
	int64_t cert_not_before, cert_not_after;
	bool cert_expired; /* passed only because the route allows the grace */
	cJSON *agent;	   /* DB thread: the agent's record once the prelude passed */

	/* admin auth */
	char token_hash[65];
	char admin[128];

	/* response */
	int status;
	cJSON *resp;
	char *text; /* a text/plain answer instead of JSON (metrics) */
	char reason[48];
	int retry_after; /* seconds; 0: none */
	/* An agent route's body error, reported after the agent checks (a revoked agent hears
	 * agent_revoked whatever it sent). */
	int pend_status;
	cJSON *pend_resp;
	bool no_reply;	 /* done parks the request (long poll) */

	/* audit */
	char audit_target[200];
	cJSON *audit_detail;

	/* route specifics */
	X509_REQ *csr;
	char key_hash[65];
	struct waiter *waiter;
	cJSON *work; /* whatever a route carries between run and done */
};

struct waiter {
	struct rq *r;
	struct event *timer;
	struct event *closed; /* the agent hung up (EV_CLOSED on its socket) */
	struct waiter *prev, *next;
	bool in_flight; /* a dispatch job holds it */
	bool expired;	/* its time ran out while a dispatch job held it */
	int slots;
	cJSON *types;
	char *types_key; /* TYPES printed: waiters with the same list share a "nothing queued" */
};

struct srv {
	struct srv_config cfg;
	struct pki pki;
	struct store *store;
	struct dbq *dbq;
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl;
	struct evconnlistener *listener;
	FILE *access_log;
	bool access_stderr;
	int64_t started_at_ms;
	char url[300];

	/* long-poll lease requests waiting for work */
	struct waiter *waiters;
	size_t nwaiters;
	bool dispatching, dispatch_again;

	struct event *reap_ev, *sigterm_ev, *sigint_ev, *stop_ev;
	struct event *accept_ev; /* re-enables accepting after running out of descriptors */
	struct event *heap_ev;	 /* gives the kept heap back once requests stop (main.c) */
	uint64_t heap_seen;	 /* requests counted at its last tick */
	int64_t heap_busy_us;	 /* when that count last moved */
	bool heap_kept;
	int64_t accept_warned_us;
	bool reaping;
	bool stopping;
	int inflight; /* requests received and not yet answered (parked ones included) */
	int64_t stop_deadline_us;

	/* DB-thread-only counters */
	int64_t task_seq;
	int64_t cr_seq;

	/* figures for /admin/stats */
	uint64_t requests;
	uint64_t responses_5xx;
};

/* http.c */
op_rc srv_http_start(struct srv *s, struct op_error *err);
void srv_http_stop(struct srv *s);
/* Sets R's response: a JSON body (taken) with server_time added. */
void rq_ok(struct rq *r, int status, cJSON *body);
/* Sets R's error response {reason, message, server_time} and marks its job failed. */
void rq_error(struct rq *r, int status, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Sends R's response and frees R (loop thread). */
void rq_send(struct rq *r);
/* A query parameter of R, or NULL. */
const char *rq_query(struct rq *r, const char *key);
/* Submits R's job to the DB thread (again). */
void rq_submit(struct rq *r);

/* agent_api.c */
extern struct route agent_routes[];
extern const size_t agent_routes_n;
void agent_prelude(struct rq *r, struct store *s);
void leases_after_batch(struct srv *s, bool wake);
void leases_cancel_all_waiters(struct srv *s);
/* Runs on the DB thread at start: gives leases in flight the restart grace. */
op_rc leases_restart_grace(struct srv *s, struct store *st, struct op_error *err);
void reaper_start(struct srv *s);

/* admin_api.c */
extern struct route admin_routes[];
extern const size_t admin_routes_n;
void admin_prelude(struct rq *r, struct store *s);
void admin_audit(struct rq *r, struct store *s);

/* tasks.c: task and lease logic shared by both APIs (DB thread) */
cJSON *task_public(const cJSON *task, int64_t now);
cJSON *agent_public(struct srv *s, const cJSON *agent, int64_t now);
const char *agent_status(struct srv *s, const cJSON *agent, int64_t now);
/* Leases up to SLOTS tasks to AGENT (a record) serving TYPES; returns an array of leases. */
cJSON *tasks_acquire(struct srv *s, struct store *st, const cJSON *agent, int slots,
		     const cJSON *types, int64_t now, bool *wake);
/* Ends lease L of TASK as lost (expired, agent revoked): requeue, fail or needs_attention. */
op_rc tasks_lease_lost(struct srv *s, struct store *st, cJSON *lease, const char *why,
		       int64_t now, bool *wake);
/* Why TASK cannot run anywhere, as {status, message, unmatched:[...]} (for queued tasks). */
cJSON *tasks_routing(struct srv *s, struct store *st, const cJSON *task, const cJSON *agents,
		     int64_t now);
bool task_matches_agent(struct srv *s, const cJSON *task, const cJSON *agent, const cJSON *types);
bool task_state_final(const char *state);
int64_t tasks_next_seq(struct srv *s, struct store *st, enum store_tab t);
/* Sets change request CR_ID's state (and updated_at to NOW). */
void tasks_set_cr_state(struct store *st, const char *cr_id, const char *state, int64_t now);

#endif
