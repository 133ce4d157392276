/* SPDX-License-Identifier: Apache-2.0 */
/* The running agent (`outpost-agent run`): its state, shared by the loop, leases and heartbeat. */
#ifndef AG_AGENT_H
#define AG_AGENT_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "discovery.h"
#include "rpc.h"
#include "supervisor.h"
#include "transport.h"

/* Exit codes of `outpost-agent run` (docs/operations.md). 3 and 4 are terminal: the systemd
 * unit does not restart on them (RestartPreventExitStatus). */
enum {
	RUN_OK = 0,
	RUN_ERROR = 1,	      /* could not start (see the message) */
	RUN_USAGE = 2,	      /* bad arguments or config */
	RUN_REVOKED = 3,      /* agent revoked or deleted on the control plane */
	RUN_CERT_EXPIRED = 4  /* certificate expired beyond the rotation grace */
};

enum ag_task_state {
	T_RUNNING,    /* a worker runs it */
	T_FINISHING,  /* outcome stored; last log chunks going out */
	T_COMPLETING  /* completion being delivered (also: left over from before a restart) */
};

struct agent;

/* One lease, from hand-over to the acknowledged completion. */
struct ag_task {
	struct ag_task *next;
	struct agent *ag;
	char lease_id[96];
	char task_id[96];
	char type[128];
	enum ag_task_state state;
	struct sv *sv;	      /* the supervisor generation that runs it */
	struct sv_job *job;   /* NULL once its outcome arrived */
	double ttl;
	double timeout;
	double renew_at;      /* monotonic */
	double started;	      /* monotonic */
	double finishing_since;
	bool lost;	      /* 409 lease_lost: the result is dropped */
	bool cancelled;	      /* the control plane asked to stop it */
	bool is_change;       /* a change.apply task */
	struct rpc_call *renew_call, *log_call, *complete_call;
	struct op_buf log;    /* text not yet sent */
	uint64_t log_offset;  /* server offset of log's first byte */
	size_t log_inflight;
	double log_last;      /* when the last chunk went out (monotonic) */
	uint64_t log_dropped;
	cJSON *message;	      /* the outbox record being delivered */
	double deliver_at;    /* next delivery attempt (monotonic) */
	int deliver_failures;
	char workspace[PATH_MAX];
	double progress;
	/* progress records (ABI 1.1 record): [{"id", "msg"}], delivered in order before the
	 * completion, and even after the lease was lost */
	cJSON *records;
	int record_seq;
	struct rpc_call *record_call;
	double record_at;
	int record_failures;
};

struct ag_metrics {
	double hb_buckets[10];
	uint64_t hb_count[11];
	double hb_sum;
	uint64_t hb_failures;
	uint64_t leases_total;
	uint64_t completions_total;
	cJSON *durations; /* {"type|outcome": {"count", "sum"}} */
};

struct agent {
	char *config_path;
	struct ag_config cfg;
	cJSON *identity;	 /* agent.json */
	char agent_id[96];
	char hostname[256];
	struct tp_config tp;
	struct rpc *rpc;
	struct sv *sv;		 /* the current supervisor generation */
	struct sv *old_sv[4];	 /* earlier generations still finishing tasks */
	char worker[PATH_MAX];
	char approval_key[PATH_MAX];
	struct sv_options svopts;
	struct dc_result plugins;
	cJSON *task_types;	 /* served task types */
	cJSON *plugin_versions;	 /* name → version */
	cJSON *plugins_json;	 /* for heartbeats */
	cJSON *change_types;	 /* from the change.types task, for heartbeats */
	struct sv_job *inventory_job;
	/* The inventory (task and change types, plugins) goes out with a heartbeat while
	 * inventory_gen differs from inventory_acked; a heartbeat's 200 acknowledges the
	 * generation it carried, so a change made while it was in flight is sent again. */
	unsigned inventory_gen;
	unsigned inventory_acked;
	unsigned hb_inventory_gen;

	/* state */
	bool drain_local;	 /* `outpost-agent drain` */
	bool drain_server;	 /* desired_state: drain */
	bool stopping;		 /* SIGTERM: drain then exit */
	double stop_deadline;	 /* then cancel what still runs */
	bool stop_now;		 /* second SIGTERM */
	bool quit;
	int exit_code;
	char last_error[512];

	/* heartbeat */
	double hb_interval;
	double hb_next;
	struct rpc_call *hb_call;
	int hb_failures;
	double hb_last_ok;	 /* wall clock */
	double hb_last_latency;
	char hb_last_result[256];
	double lease_ttl;
	double long_poll;

	/* leasing */
	struct rpc_call *lease_call;
	double lease_next;
	int lease_failures;
	struct ag_task *tasks;

	/* certificate */
	double cert_not_before, cert_not_after;
	double cert_renew_at;
	bool cert_expired_seen;

	/* local endpoints */
	int sigfd;
	int ctl_fd;
	int metrics_fd;
	struct ag_metrics m;
	double next_housekeeping;
	bool heap_kept;		 /* op_heap_retain() took */
	double heap_release_at;	 /* the freed heap goes back to the kernel then (0: done) */
};

/* Loop plumbing shared by the agent's files. */
double ag_now(void); /* monotonic seconds */
double ag_jitter(double seconds, double fraction);
bool ag_draining(const struct agent *ag);
int ag_free_slots(const struct agent *ag);
void ag_set_error(struct agent *ag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 403 agent_revoked / agent_not_found from any call: terminal. */
void ag_revoked(struct agent *ag, const char *reason);
/* A call answered cert_expired: rotate now, or stop with RUN_CERT_EXPIRED. */
void ag_cert_expired(struct agent *ag);
/* A call answered cert_superseded: a rotation's answer was lost; finish it. */
void ag_cert_superseded(struct agent *ag);

/* lease.c */
void lease_tick(struct agent *ag);
void lease_load_outbox(struct agent *ag);
void lease_cancel(struct agent *ag, const char *lease_id, const char *why);
void lease_cancel_all(struct agent *ag, const char *why, bool kill);
int lease_running(const struct agent *ag);
double lease_next_timer(const struct agent *ag);
void lease_free_all(struct agent *ag);
cJSON *lease_running_ids(const struct agent *ag);

/* health.c */
cJSON *health_report(struct agent *ag);
void health_housekeeping(struct agent *ag);

/* ctl.c: the control socket STATE/control.sock */
int ctl_listen(struct agent *ag);
void ctl_handle(struct agent *ag, int fd);
cJSON *ag_status_json(struct agent *ag);
int cmd_ctl(int argc, char **argv, const char *command);

/* metrics.c */
int metrics_listen(struct agent *ag);
void metrics_handle(struct agent *ag, int fd);
void metrics_observe_heartbeat(struct agent *ag, double latency, bool ok);
void metrics_observe_task(struct agent *ag, const char *type, const char *outcome, double secs);
void metrics_release(struct ag_metrics *m);

int cmd_run(int argc, char **argv);

#endif
