/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor: runs each task in a fresh outpost-worker, keeps spare workers, enforces limits. */
#ifndef AG_SUPERVISOR_H
#define AG_SUPERVISOR_H

#include <cjson/cJSON.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "op.h"

/*
 * Single-threaded and event-driven: the caller polls the descriptors sv_pollfds() gives (with
 * the timeout sv_timeout_ms() gives), then calls sv_handle() and sv_tick(). The agent does
 * this inside its libcurl loop; `plugin run` has a plain poll loop.
 */

struct sv;
struct sv_job;

enum sv_status {
	SV_SUCCEEDED = 0,
	SV_FAILED,
	SV_INVALID,	/* params refused by the schema or validate() */
	SV_CANCELLED,
	SV_TIMED_OUT,
	SV_CRASHED,	/* signal, exit() or a broken channel */
	SV_LOAD_FAILED	/* the plugin could not be loaded or initialised */
};

/* "succeeded", "failed", "invalid", "cancelled", "timed_out", "crashed", "load_failed". */
const char *sv_status_name(enum sv_status s);

struct sv_outcome {
	enum sv_status status;
	const char *error;	 /* the message a user sees, or NULL */
	const cJSON *result;	 /* the plugin's result (redacted), or NULL; valid during done() */
	const char *result_text; /* the same as the JSON text it was parsed from (NUL-terminated),
				  * to pass on without printing it again; NULL with result */
	const cJSON *artifacts;	 /* [{name, size, sha256, path}] */
	double duration;	 /* seconds from hand-over to outcome */
	uint64_t output_bytes;	 /* task output and log bytes passed on */
	uint64_t output_cut;	 /* bytes dropped over the limit */
};

/* What happens as a task runs. Text is already redacted. done() is called exactly once; the
 * job is freed right after it returns. */
struct sv_events {
	void (*log)(void *ud, int level, const char *text, size_t len);
	void (*output)(void *ud, int stream, const char *data, size_t len);
	void (*progress)(void *ud, double fraction, const char *message);
	void (*done)(void *ud, const struct sv_outcome *outcome);
	/* A progress record (ABI 1.1 record), a JSON object, redacted. May be NULL. */
	void (*record)(void *ud, const cJSON *record);
};

/* Looks up secret NAME for a task of TYPE sending it towards HOST (may be NULL). Returns 1 and
 * appends the value to VALUE; 0 when unknown or refused, with the reason in WHY. */
typedef int (*sv_secret_fn)(void *ud, const char *type, const char *name, const char *host,
			    struct op_buf *value, char *why, size_t why_size);

/* A plugin the supervisor may run, as discovery found it. */
struct sv_plugin_spec {
	const char *name;
	const char *path;
	const char *const *types;
	size_t n_types;
	const cJSON *settings;	 /* plugins.config.NAME, may be NULL */
	bool spare;
	bool fork_server;	 /* fork its task workers from a fork server of its own */
};

struct sv_options {
	const char *worker_path;
	uint64_t memory_limit; /* RLIMIT_AS for workers, 0 = none */
	uint64_t spare_heap;   /* heap a spare prepares for its task (workers.spare_heap) */
	int max_tasks;	       /* tasks run at once (concurrency), 0 = not known */
	uint64_t output_limit; /* per task: logs + output */
	double grace;	       /* SIGTERM/cancel → SIGKILL */
	double start_timeout;  /* spawn → plugin loaded */
	int log_level;	       /* what workers send */
	const char *proxy, *no_proxy, *ca_file; /* the agent's network settings, for init */
	/* Who the agent is, for init too (the change plugin checks approvals with them); each
	 * may be NULL (plugin run without an enrolled agent). */
	const char *agent_id, *hostname, *approval_key, *change_types_dir;
	sv_secret_fn secret;
	void *secret_ud;
};

struct sv_task {
	const char *id;
	const char *type;
	const char *params;   /* JSON object text */
	const char *workspace; /* an existing directory */
	double timeout;	      /* seconds, 0 = none */
};

/* The JSON a plugin's init() receives: {"config": SETTINGS, "agent": {proxy, no_proxy, ca_file}}.
 * Free with cJSON_free(). */
char *sv_init_json(const struct sv_options *opts, const cJSON *settings);

op_rc sv_new(const struct sv_options *opts, const struct sv_plugin_spec *plugins, size_t n,
	     struct sv **out, struct op_error *err);
void sv_free(struct sv *sv);

/* The plugin serving TYPE, or NULL. */
const char *sv_plugin_for_type(const struct sv *sv, const char *type);
/* The heap a worker for TYPE prepares before a task whose params are PARAMS_LEN bytes: what
 * the plugin's last task used, else an estimate from the params; up to workers.spare_heap,
 * 0 when that is small or no plugin serves TYPE. */
uint64_t sv_task_heap(const struct sv *sv, const char *type, size_t params_len);
/* Starts spare workers now (otherwise sv_tick does it). */
void sv_prestart(struct sv *sv);
/* Stops keeping spares (drain) or resumes. */
void sv_set_spares(struct sv *sv, bool on);

/* Hands TASK to a worker. The events fire from sv_handle()/sv_tick(). */
op_rc sv_start(struct sv *sv, const struct sv_task *task, const struct sv_events *ev, void *ud,
	       struct sv_job **out, struct op_error *err);
/* Asks the task to stop: cancel() in the plugin, then SIGKILL after the grace. */
void sv_cancel(struct sv_job *job, const char *reason);
/* Kills the job's worker at once; its outcome still arrives through done(). */
void sv_kill(struct sv_job *job, const char *reason);

int sv_pollfds(struct sv *sv, struct pollfd *fds, int max);
void sv_handle(struct sv *sv, const struct pollfd *fds, int n);
/* Milliseconds until the next timer, or -1. */
int sv_timeout_ms(struct sv *sv);
void sv_tick(struct sv *sv);
int sv_running(const struct sv *sv);
/* Worker processes alive (spares and fork servers included), for status and the idle-memory
 * benchmark. */
int sv_workers(const struct sv *sv);
/* Spare workers loaded and waiting for a task. */
int sv_spares_ready(const struct sv *sv);
/* How many descriptors sv_pollfds may return. */
int sv_max_pollfds(const struct sv *sv);

#endif
