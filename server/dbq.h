/* SPDX-License-Identifier: Apache-2.0 */
/* The DB thread: it owns the store, runs queued jobs in batches, one transaction and one
 * fsync per batch (group commit), and hands each job back to the event loop after commit. */
#ifndef SRV_DBQ_H
#define SRV_DBQ_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "op.h"
#include "store.h"

/*
 * A job's life: dbq_submit (loop thread) → run (DB thread, inside the batch's transaction,
 * inside a savepoint of its own) → the batch commits → done (loop thread). A job that sets
 * FAILED in run is rolled back to its savepoint; the rest of the batch is unaffected. When the
 * commit itself fails, every job of the batch gets STORE_ERROR set before done: none of its
 * writes happened, and the response must say so (503). So a response that acknowledges a
 * write is only ever sent after that write is durable.
 */
struct dbjob {
	void (*run)(struct dbjob *j, struct store *s);
	void (*done)(struct dbjob *j);
	/* DB thread, after run's savepoint was released or rolled back, still inside the batch
	 * transaction (the audit log records failed actions too). May be NULL. */
	void (*after)(struct dbjob *j, struct store *s);
	bool failed;
	bool store_error;
	bool wake; /* run made work leasable: the loop offers it to waiting lease requests */
	int64_t queued_us;
	struct dbjob *next;
};

struct dbq_stats {
	uint64_t jobs;
	uint64_t batches;
	uint64_t commit_failures;
	uint64_t max_batch;
	double commit_ms_total; /* in COMMIT (the fsync) */
	double run_ms_total;	/* running jobs */
	double idle_ms_total;	/* waiting for work */
	double commit_ms_max;
	uint64_t queued;
};

struct dbq;

/* Starts the DB thread on store S; finished jobs come back on BASE. AFTER_BATCH (may be NULL)
 * runs on the loop after each delivered batch, with WAKE true when a job set it. */
op_rc dbq_start(struct dbq **out, struct store *s, struct event_base *base,
		void (*after_batch)(void *arg, bool wake), void *arg, struct op_error *err);
/* Queues J (any thread). */
void dbq_submit(struct dbq *q, struct dbjob *j);
/* Runs J on the calling thread at once, in a transaction of its own (before the thread
 * starts or after it stopped: start-up and offline commands). Returns J's outcome. */
op_rc dbq_run_now(struct store *s, struct dbjob *j);
/* Waits for the queue to drain, stops the thread and delivers what finished. */
void dbq_stop(struct dbq *q);
void dbq_get_stats(struct dbq *q, struct dbq_stats *out);
/* Jobs waiting for the DB thread right now. */
uint64_t dbq_depth(struct dbq *q);

#endif
