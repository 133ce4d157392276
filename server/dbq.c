/* SPDX-License-Identifier: Apache-2.0 */
/* The DB thread and its group commit. */
#include "dbq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define MAX_BATCH 1024

struct dbq {
	struct store *store;
	struct event_base *base;
	struct event *done_ev;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dbjob *head, *tail;   /* queued */
	struct dbjob *done_head, *done_tail; /* committed, for the loop */
	bool done_wake;
	bool stopping;
	bool running;
	void (*after_batch)(void *arg, bool wake);
	void *arg;
	struct dbq_stats stats;
};

static void run_batch(struct dbq *q, struct dbjob *batch)
{
	struct store *s = q->store;
	struct dbjob *j;
	int64_t t0;
	bool ok = true, wake = false;
	size_t n = 0;
	int64_t r0 = srv_mono_us();
	double commit_ms;

	if (s->ops->begin(s) != OP_OK) {
		op_log_error("store", "cannot begin a transaction: %s", s->errmsg);
		ok = false;
	}
	for (j = batch; ok && j; j = j->next) {
		if (s->ops->savepoint(s) != OP_OK) {
			op_log_error("store", "cannot open a savepoint: %s", s->errmsg);
			ok = false;
			break;
		}
		j->run(j, s);
		if (j->failed) {
			if (s->ops->rollback_to(s) != OP_OK) {
				ok = false;
				break;
			}
		} else if (s->ops->release(s) != OP_OK) {
			ok = false;
			break;
		}
		if (j->after)
			j->after(j, s);
		n++;
	}
	t0 = srv_mono_us();
	if (ok && s->ops->commit(s) != OP_OK) {
		op_log_error("store", "commit failed: %s", s->errmsg);
		ok = false;
	}
	if (!ok) {
		(void)s->ops->rollback(s);
		q->stats.commit_failures++;
	}
	commit_ms = (double)(srv_mono_us() - t0) / 1000.0;
	pthread_mutex_lock(&q->lock);
	q->stats.commit_ms_total += commit_ms;
	q->stats.run_ms_total += (double)(t0 - r0) / 1000.0;
	if (commit_ms > q->stats.commit_ms_max)
		q->stats.commit_ms_max = commit_ms;
	q->stats.batches++;
	if (n > q->stats.max_batch)
		q->stats.max_batch = n;
	for (j = batch; j; j = j->next) {
		q->stats.jobs++;
		if (!ok)
			j->store_error = true;
		else if (j->wake && !j->failed)
			wake = true;
	}
	q->done_wake |= wake;
	for (j = batch; j && j->next; j = j->next)
		;
	if (q->done_tail)
		q->done_tail->next = batch;
	else
		q->done_head = batch;
	q->done_tail = j;
	pthread_mutex_unlock(&q->lock);
	event_active(q->done_ev, EV_READ, 0);
}

static void *db_thread(void *arg)
{
	struct dbq *q = arg;

	for (;;) {
		struct dbjob *batch, *last;
		size_t n = 1;

		int64_t w0 = srv_mono_us();

		pthread_mutex_lock(&q->lock);
		while (q->head == NULL && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		q->stats.idle_ms_total += (double)(srv_mono_us() - w0) / 1000.0;
		if (q->head == NULL && q->stopping) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		batch = last = q->head;
		while (last->next && n < MAX_BATCH) {
			last = last->next;
			n++;
		}
		q->head = last->next;
		if (q->head == NULL)
			q->tail = NULL;
		last->next = NULL;
		q->stats.queued -= n;
		pthread_mutex_unlock(&q->lock);
		run_batch(q, batch);
	}
	return NULL;
}

/* Loop thread: hands every committed job to its done callback. */
static void deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dbq *q = arg;
	struct dbjob *j, *next;
	bool wake;

	pthread_mutex_lock(&q->lock);
	j = q->done_head;
	q->done_head = q->done_tail = NULL;
	wake = q->done_wake;
	q->done_wake = false;
	pthread_mutex_unlock(&q->lock);
	for (; j; j = next) {
		next = j->next;
		j->next = NULL;
		j->done(j);
	}
	if (q->after_batch)
		q->after_batch(q->arg, wake);
}

op_rc dbq_start(struct dbq **out, struct store *s, struct event_base *base,
		void (*after_batch)(void *arg, bool wake), void *arg, struct op_error *err)
{
	struct dbq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	q->store = s;
	q->base = base;
	q->after_batch = after_batch;
	q->arg = arg;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->done_ev = event_new(base, -1, 0, deliver, q);
	if (q->done_ev == NULL || pthread_create(&q->thread, NULL, db_thread, q) != 0) {
		if (q->done_ev)
			event_free(q->done_ev);
		free(q);
		return op_fail(err, OP_ENOMEM, "cannot start the database thread");
	}
	q->running = true;
	*out = q;
	return OP_OK;
}

void dbq_submit(struct dbq *q, struct dbjob *j)
{
	j->next = NULL;
	j->failed = j->store_error = j->wake = false;
	j->queued_us = srv_mono_us();
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->stats.queued++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

op_rc dbq_run_now(struct store *s, struct dbjob *j)
{
	op_rc rc;

	j->failed = j->store_error = false;
	if ((rc = s->ops->begin(s)) != OP_OK)
		return rc;
	j->run(j, s);
	if (j->failed) {
		(void)s->ops->rollback(s);
		return OP_EINVAL;
	}
	if (j->after)
		j->after(j, s);
	rc = s->ops->commit(s);
	if (rc != OP_OK) {
		(void)s->ops->rollback(s);
		j->store_error = true;
	}
	return rc;
}

void dbq_stop(struct dbq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (q->running)
		pthread_join(q->thread, NULL);
	deliver(-1, 0, q);
	event_free(q->done_ev);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

void dbq_get_stats(struct dbq *q, struct dbq_stats *out)
{
	pthread_mutex_lock(&q->lock);
	*out = q->stats;
	pthread_mutex_unlock(&q->lock);
}

uint64_t dbq_depth(struct dbq *q)
{
	uint64_t n;

	pthread_mutex_lock(&q->lock);
	n = q->stats.queued;
	pthread_mutex_unlock(&q->lock);
	return n;
}
