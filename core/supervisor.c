/* SPDX-License-Identifier: Apache-2.0 */
/* Workers: spawn, spares, frames, deadlines, cancel, output limits, crash reporting, reaping. */
#include "supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "heap.h"
#include "jsonprint.h"
#include "log.h"
#include "redact.h"
#include "workerproc.h"
#include "units.h"

#define SPARE_RETRY_S 30.0
#define REFILL_DELAY_S 0.05
#define SPARE_HEAP_MIN (256 * 1024)
/* What a task that scales with its params builds for each byte of them: an http.batch of
 * 1,000 GETs grew its heap by 3.9 MB for 50 KB of params (measured). */
#define TASK_HEAP_PER_PARAM_BYTE 96
/* A fork server that died after it was ready is started again after this long. */
#define FORKSRV_RESTART_S 1.0

/* SPAWNING: queued to the spawner thread, no process yet. STARTING: spawned, loading. */
enum ws_state { WS_SPAWNING, WS_STARTING, WS_READY, WS_BUSY, WS_FINISHED };

/* A plugin's fork server (outpost-worker in FR_FORKSRV mode): it loaded the plugin once and
 * forks a task worker per request. Until it is ready, and whenever it is gone, workers are
 * spawned as usual. */
enum fs_state { FS_OFF, FS_SPAWNING, FS_STARTING, FS_READY };

struct sv_forksrv {
	enum fs_state state;
	struct wk_proc proc;
	struct op_buf in, out;
	struct sv_worker *pending, *pending_tail; /* requests not answered yet, in order */
	double start_deadline;
	double retry_at; /* FS_OFF: not started again before then */
};

struct sv_plugin {
	char *name;
	char *path;
	char **types;
	size_t n_types;
	char *init_json;
	struct ag_strlist env_allow;
	bool spare;
	bool fork_server;
	double spare_retry_at;
	/* A spare taken by a task is replaced once that task is done, or after REFILL_DELAY_S
	 * when a slot is free for another task: spawning its successor at hand-over, or while
	 * no task could use it, would only compete with the running ones for the CPU. */
	double refill_after;
	uint64_t heap_hint; /* heap the last task used (FR_DONE): what its next spare prepares */
	struct sv_forksrv fs;
};

struct sv_worker {
	struct sv_worker *next;
	struct sv *sv;
	struct sv_plugin *plugin;
	struct wk_proc proc;
	enum ws_state state;
	struct op_buf in, out;
	struct sv_job *job;
	double start_deadline; /* not READY by then: kill */
	double kill_at;	       /* SIGKILL the group then (0 = not scheduled) */
	bool exited;
	bool kill_when_spawned; /* killed or discarded while still spawning */
	bool term_when_spawned; /* cancelled while still spawning */
	int status;
	struct rusage ru;
	char *load_error;
	/* Born of the plugin's fork server: not our child, its exit comes as FR_REAPED. */
	bool forked;
	int fork_fds[2];	       /* our socket and pipe ends until FR_FORKED */
	struct sv_worker *fork_next;   /* in the fork server's pending list */
	char *gone_reason;	       /* the fork server went and took the worker with it */
};

/* A spawn the spawner thread does off the event loop: posix_spawn blocks its caller until the
 * child has exec'ed, and the loop must keep serving frames meanwhile. The thread also sweeps
 * orphans (w == NULL), keeping the /proc scan off the loop too. */
struct spawn_req {
	struct spawn_req *next;
	struct sv_worker *w; /* a token for the thread: it never touches the worker */
	struct sv_plugin *fs; /* or: start this plugin's fork server (a token too) */
	const char *label;
	const struct ag_strlist *env_allow;
};

struct spawn_done {
	struct sv_worker *w;
	struct sv_plugin *fs;
	struct wk_proc proc;
	op_rc rc;
	char *error; /* malloc'ed, when rc != OP_OK */
};

/* A step (ABI 1.1 call) between the job that asked for it and the job that runs it. */
struct call_link {
	struct sv_job *parent; /* NULL once the parent ended */
	struct sv_job *sub;
	char type[128];
};

struct sv_job {
	struct sv_job *next;
	struct sv *sv;
	struct sv_worker *w;
	struct sv_plugin *plugin;
	char *type;
	char *workspace;
	const struct sv_events *ev;
	void *ud;
	double started, deadline, timeout;
	bool cancel_requested, timed_out, killed, done_frame, reported;
	char *stop_reason;
	int rc;
	struct op_buf result, error;
	/* The result checked as soon as FR_RESULT brings it, while the worker tidies up before
	 * FR_DONE: redacted (with the secrets the redactor had then: result_secrets) and parsed.
	 * A result (result.len > 0) is always one check_result() has seen. */
	struct op_buf result_clean;
	cJSON *result_tree;
	size_t result_secrets;
	uint64_t output_bytes, output_cut;
	bool cut_noted;
	struct op_redactor redactor;
	struct op_buf pending[3]; /* per stream, for redaction across chunk borders */
	struct call_link *step;	  /* the step this job is waiting for */
	bool is_step;		  /* this job is a step: it cannot run steps itself */
};

struct sv {
	struct sv_options opts;
	char *worker_path;
	struct sv_plugin *plugins;
	size_t n_plugins;
	struct sv_worker *workers;
	struct sv_job *jobs;
	bool spares_on;
	bool reap_strays;
	/* the spawner thread */
	pthread_t spawner;
	bool spawner_up;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct spawn_req *queue, *queue_tail;
	bool stopping;
	int done_pipe[2]; /* spawner → loop: struct spawn_done records */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *sv_status_name(enum sv_status s)
{
	static const char *const names[] = {"succeeded", "failed",    "invalid",   "cancelled",
					    "timed_out", "crashed",   "load_failed"};

	return (unsigned)s < OP_ARRAY_LEN(names) ? names[s] : "failed";
}

/* Signals W's process group and W itself; nothing while it has no process yet. */
static void kill_worker(struct sv_worker *w, int sig)
{
	if (w->proc.pid <= 0 || w->exited)
		return;
	kill(-w->proc.pid, sig);
	kill(w->proc.pid, sig);
}

static void *spawner_main(void *arg)
{
	struct sv *sv = arg;

	for (;;) {
		struct spawn_req *r;
		struct spawn_done d;
		struct op_error err = {0};

		pthread_mutex_lock(&sv->mu);
		while (sv->queue == NULL && !sv->stopping)
			pthread_cond_wait(&sv->cv, &sv->mu);
		r = sv->queue;
		if (r == NULL) { /* stopping, nothing left */
			pthread_mutex_unlock(&sv->mu);
			return NULL;
		}
		sv->queue = r->next;
		if (sv->queue == NULL)
			sv->queue_tail = NULL;
		pthread_mutex_unlock(&sv->mu);
		if (r->w == NULL && r->fs == NULL) {
			/* Killing a stray can orphan its children to us: sweep until none is left. */
			for (int round = 0; round < 8 && wk_reap_strays() > 0; round++)
				;
			free(r);
			continue;
		}
		memset(&d, 0, sizeof(d));
		d.w = r->w;
		d.fs = r->fs;
		/* A fork server binds every symbol up front, so that its children do not each
		 * write the GOT pages again (a copy-on-write fault per page and child). */
		d.rc = wk_spawn(sv->worker_path, r->label, r->env_allow,
				r->fs ? "LD_BIND_NOW=1" : NULL, true, &d.proc, &err);
		if (d.rc != OP_OK)
			d.error = strdup(err.msg);
		free(r);
		/* A record is far below PIPE_BUF: the write is atomic and never partial. */
		while (write(sv->done_pipe[1], &d, sizeof(d)) < 0 && errno == EINTR)
			;
	}
}

/* Queues R for the spawner thread. */
static void spawner_push(struct sv *sv, struct spawn_req *r)
{
	pthread_mutex_lock(&sv->mu);
	if (sv->queue_tail)
		sv->queue_tail->next = r;
	else
		sv->queue = r;
	sv->queue_tail = r;
	pthread_cond_signal(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
}

/* ---- construction ------------------------------------------------------------------------ */

char *sv_init_json(const struct sv_options *o, const cJSON *settings)
{
	cJSON *root = cJSON_CreateObject(), *agent;
	char *text = NULL;

	if (root == NULL)
		return NULL;
	cJSON_AddItemToObject(root, "config",
			      settings ? cJSON_Duplicate(settings, true) : cJSON_CreateObject());
	agent = cJSON_AddObjectToObject(root, "agent");
	if (agent) {
		if (o->proxy)
			cJSON_AddStringToObject(agent, "proxy", o->proxy);
		else
			cJSON_AddNullToObject(agent, "proxy");
		if (o->no_proxy)
			cJSON_AddStringToObject(agent, "no_proxy", o->no_proxy);
		else
			cJSON_AddNullToObject(agent, "no_proxy");
		if (o->ca_file)
			cJSON_AddStringToObject(agent, "ca_file", o->ca_file);
		else
			cJSON_AddNullToObject(agent, "ca_file");
		if (o->agent_id)
			cJSON_AddStringToObject(agent, "agent_id", o->agent_id);
		if (o->hostname)
			cJSON_AddStringToObject(agent, "hostname", o->hostname);
		if (o->approval_key)
			cJSON_AddStringToObject(agent, "approval_key", o->approval_key);
		if (o->change_types_dir)
			cJSON_AddStringToObject(agent, "change_types_dir", o->change_types_dir);
	}
	text = op_json_print(root, false);
	cJSON_Delete(root);
	return text;
}

op_rc sv_new(const struct sv_options *opts, const struct sv_plugin_spec *plugins, size_t n,
	     struct sv **out, struct op_error *err)
{
	struct sv *sv = calloc(1, sizeof(*sv));
	op_rc rc = OP_OK;

	if (sv == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	sv->opts = *opts;
	sv->spares_on = true;
	sv->done_pipe[0] = sv->done_pipe[1] = -1;
	pthread_mutex_init(&sv->mu, NULL);
	pthread_cond_init(&sv->cv, NULL);
	sv->worker_path = strdup(opts->worker_path);
	sv->plugins = calloc(n ? n : 1, sizeof(*sv->plugins));
	if (sv->worker_path == NULL || sv->plugins == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct sv_plugin *p = &sv->plugins[i];
		const cJSON *allow = cJSON_GetObjectItemCaseSensitive(plugins[i].settings, "env_allow");
		const cJSON *item;

		sv->n_plugins++;
		p->fs.proc.pid = -1;
		p->fs.proc.sock = p->fs.proc.out = p->fs.proc.pidfd = -1;
		p->name = strdup(plugins[i].name);
		p->path = strdup(plugins[i].path);
		p->types = calloc(plugins[i].n_types ? plugins[i].n_types : 1, sizeof(char *));
		p->init_json = sv_init_json(opts, plugins[i].settings);
		p->spare = plugins[i].spare;
		p->fork_server = plugins[i].fork_server;
		if (p->name == NULL || p->path == NULL || p->types == NULL || p->init_json == NULL) {
			rc = op_fail(err, OP_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t t = 0; t < plugins[i].n_types; t++) {
			p->types[t] = strdup(plugins[i].types[t]);
			if (p->types[t] == NULL) {
				rc = op_fail(err, OP_ENOMEM, "out of memory");
				goto out;
			}
			p->n_types++;
		}
		if (allow != NULL && !cJSON_IsArray(allow)) {
			rc = op_fail(err, OP_EINVAL,
				     "plugins.config.%s.env_allow: expected a list of variable names",
				     p->name);
			goto out;
		}
		cJSON_ArrayForEach(item, allow)
		{
			if (!cJSON_IsString(item)) {
				rc = op_fail(err, OP_EINVAL,
					     "plugins.config.%s.env_allow: expected variable names",
					     p->name);
				goto out;
			}
			if (ag_strlist_add(&p->env_allow, item->valuestring) != OP_OK) {
				rc = op_fail(err, OP_ENOMEM, "out of memory");
				goto out;
			}
		}
	}
	if (pipe2(sv->done_pipe, O_CLOEXEC) < 0) {
		rc = op_fail(err, OP_EIO, "cannot create the spawner's pipe: %s", strerror(errno));
		goto out;
	}
	fcntl(sv->done_pipe[0], F_SETFL, O_NONBLOCK);
	if (pthread_create(&sv->spawner, NULL, spawner_main, sv) != 0) {
		rc = op_fail(err, OP_EIO, "cannot start the spawner thread");
		goto out;
	}
	sv->spawner_up = true;
out:
	if (rc != OP_OK) {
		sv_free(sv);
		return rc;
	}
	*out = sv;
	return OP_OK;
}

static void job_free(struct sv_job *j)
{
	free(j->type);
	free(j->workspace);
	free(j->stop_reason);
	op_buf_release(&j->result);
	op_buf_release(&j->result_clean);
	cJSON_Delete(j->result_tree);
	op_buf_release(&j->error);
	for (int i = 0; i < 3; i++)
		op_buf_release(&j->pending[i]);
	op_redactor_release(&j->redactor);
	free(j);
}

/* Redacts and parses J's result (J->result): the worker only checked its shape. */
static void check_result(struct sv_job *j)
{
	cJSON_Delete(j->result_tree);
	j->result_tree = NULL;
	op_buf_reset(&j->result_clean);
	op_heap_prepare_json(j->result.len);
	/* The whole text, not a first value with more after it: it is passed on as is. */
	if (op_redact(&j->redactor, j->result.data, j->result.len, &j->result_clean) == 0 &&
	    j->result_clean.data != NULL)
		j->result_tree = cJSON_ParseWithOpts(j->result_clean.data, NULL, true);
	j->result_secrets = j->redactor.n;
}

static void worker_free(struct sv_worker *w)
{
	for (int i = 0; i < 2; i++)
		if (w->fork_fds[i] >= 0)
			close(w->fork_fds[i]);
	free(w->gone_reason);
	wk_proc_close(&w->proc);
	op_buf_release(&w->in);
	op_buf_release(&w->out);
	free(w->load_error);
	free(w);
}

static void adopt_spawn(struct sv *sv, struct spawn_done *d);
static void finish_job(struct sv_job *j, enum sv_status status, const char *message);

/* Kills and reaps FS's process and closes its channel. Returns its wait status. */
static int fs_close(struct sv_forksrv *fs)
{
	pid_t pid = fs->proc.pid;
	int status = 0;

	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		wk_forget(pid);
	}
	wk_proc_close(&fs->proc);
	fs->proc.pid = -1;
	op_buf_release(&fs->in);
	op_buf_release(&fs->out);
	fs->pending = fs->pending_tail = NULL;
	return status;
}

void sv_free(struct sv *sv)
{
	if (sv == NULL)
		return;
	if (sv->spawner_up) {
		struct spawn_done d;

		pthread_mutex_lock(&sv->mu);
		sv->stopping = true;
		pthread_cond_broadcast(&sv->cv);
		pthread_mutex_unlock(&sv->mu);
		pthread_join(sv->spawner, NULL);
		/* Spawns that finished after the loop stopped looking: adopt them to kill them. */
		while (read(sv->done_pipe[0], &d, sizeof(d)) == (ssize_t)sizeof(d))
			adopt_spawn(sv, &d);
	}
	for (struct spawn_req *r = sv->queue, *next; r; r = next) {
		next = r->next;
		free(r);
	}
	/* Whatever still runs is killed with its process group and reaped. Workers a fork
	 * server forked are its children: they come back to us as it dies, for the sweep. */
	for (struct sv_worker *w = sv->workers, *next; w; w = next) {
		next = w->next;
		if (!w->exited && w->proc.pid > 0) {
			kill_worker(w, SIGKILL);
			if (!w->forked) {
				waitpid(w->proc.pid, NULL, 0);
				wk_forget(w->proc.pid);
			}
		}
		worker_free(w);
	}
	for (size_t i = 0; i < sv->n_plugins; i++)
		(void)fs_close(&sv->plugins[i].fs);
	for (struct sv_job *j = sv->jobs, *next; j; j = next) {
		next = j->next;
		job_free(j);
	}
	wk_reap_strays();
	for (size_t i = 0; i < sv->n_plugins; i++) {
		struct sv_plugin *p = &sv->plugins[i];

		free(p->name);
		free(p->path);
		for (size_t t = 0; t < p->n_types; t++)
			free(p->types[t]);
		free(p->types);
		free(p->init_json);
		ag_strlist_release(&p->env_allow);
	}
	for (int i = 0; i < 2; i++)
		if (sv->done_pipe[i] >= 0)
			close(sv->done_pipe[i]);
	pthread_mutex_destroy(&sv->mu);
	pthread_cond_destroy(&sv->cv);
	free(sv->plugins);
	free(sv->worker_path);
	free(sv);
}

/* The plugin serving TYPE: an exact task type, or "NAME.*" for a plugin not scanned yet
 * (plugin run). */
static struct sv_plugin *plugin_for_type(const struct sv *sv, const char *type)
{
	struct sv_plugin *wildcard = NULL;

	for (size_t i = 0; i < sv->n_plugins; i++)
		for (size_t t = 0; t < sv->plugins[i].n_types; t++) {
			const char *pt = sv->plugins[i].types[t];
			size_t n = strlen(pt);

			if (strcmp(pt, type) == 0)
				return &sv->plugins[i];
			if (n >= 2 && strcmp(pt + n - 2, ".*") == 0 && strncmp(pt, type, n - 1) == 0)
				wildcard = &sv->plugins[i];
		}
	return wildcard;
}

const char *sv_plugin_for_type(const struct sv *sv, const char *type)
{
	const struct sv_plugin *p = plugin_for_type(sv, type);

	return p ? p->name : NULL;
}

/* ---- channels ----------------------------------------------------------------------------- */

/* Writes what OUT holds to non-blocking FD, as far as it takes it. */
static void flush_buf(int fd, struct op_buf *out)
{
	while (out->len > 0 && fd >= 0) {
		/* MSG_NOSIGNAL: a worker that died must not take us down with SIGPIPE. */
		ssize_t n = send(fd, out->data, out->len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EAGAIN: poll says when; EPIPE: the exit path reports it */
		op_buf_consume(out, (size_t)n);
	}
}

/* Reads what non-blocking FD holds into IN and hands each whole frame to ON_FRAME, which
 * returns false to stop. Returns 0 once drained, -1 at EOF, on an error or when stopped, -2
 * on a malformed frame. */
static int read_frames(int fd, struct op_buf *in,
		       bool (*on_frame)(void *arg, uint8_t type, const char *p, size_t len),
		       void *arg)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		long used;
		uint8_t type;
		const char *payload;
		size_t plen;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0 || op_buf_append(in, chunk, (size_t)n) < 0)
			return -1;
		while ((used = fr_parse(in, &type, &payload, &plen)) > 0) {
			bool go_on = on_frame(arg, type, payload, plen);

			op_buf_consume(in, (size_t)used);
			if (!go_on)
				return -1;
		}
		if (used < 0)
			return -2;
	}
}

/* ---- workers ----------------------------------------------------------------------------- */

static int queue_frame(struct sv_worker *w, uint8_t type, const void *data, size_t len)
{
	return fr_encode(&w->out, type, data, len);
}

/* Writes what is queued for W without blocking. */
static void flush_out(struct sv_worker *w)
{
	flush_buf(w->proc.sock, &w->out);
}

/* ---- fork servers ------------------------------------------------------------------------ */

static void adopt_process(struct sv_worker *w);
static void worker_gone(struct sv_worker *w);

/* Writes what is queued for FS without blocking. */
static void fs_flush(struct sv_forksrv *fs)
{
	flush_buf(fs->proc.sock, &fs->out);
}

/* Asks the spawner thread for P's fork server. */
static void fs_start(struct sv *sv, struct sv_plugin *p)
{
	struct spawn_req *r = calloc(1, sizeof(*r));
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (r != NULL && o != NULL && cJSON_AddStringToObject(o, "plugin", p->path) != NULL &&
	    cJSON_AddBoolToObject(o, "unset_bind_now",
				  !wk_env_passes(&p->env_allow, "LD_BIND_NOW")) != NULL &&
	    (text = op_json_print(o, false)) != NULL &&
	    fr_encode(&p->fs.out, FR_FORKSRV, text, strlen(text)) == 0) {
		p->fs.state = FS_SPAWNING;
		r->fs = p;
		r->label = p->name;
		r->env_allow = &p->env_allow;
		spawner_push(sv, r);
		r = NULL;
	} else {
		op_buf_reset(&p->fs.out);
		p->fs.retry_at = now_s() + SPARE_RETRY_S;
	}
	free(r);
	cJSON_free(text);
	cJSON_Delete(o);
}

/* The spawner thread started D->fs's fork server, or failed to. */
static void fs_adopt(struct sv *sv, struct spawn_done *d)
{
	struct sv_forksrv *fs = &d->fs->fs;

	if (d->rc != OP_OK) {
		op_log_warn("supervisor", "cannot start the fork server for %s: %s", d->fs->name,
			    d->error ? d->error : "spawn failed");
		free(d->error);
		fs->state = FS_OFF;
		fs->retry_at = now_s() + SPARE_RETRY_S;
		return;
	}
	fs->proc = d->proc;
	fs->state = FS_STARTING;
	fs->start_deadline = now_s() + sv->opts.start_timeout;
	fs_flush(fs);
}

/* Sends P's fork server a request for W's process: a byte carrying the worker's end of a new
 * socketpair and the write end of its output pipe. False if it could not be sent. */
static bool fs_fork(struct sv_plugin *p, struct sv_worker *w)
{
	int sp[2] = {-1, -1}, pipefd[2] = {-1, -1}, theirs[2];
	bool ok = false;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    pipe2(pipefd, O_CLOEXEC) < 0)
		goto out;
	theirs[0] = sp[1];
	theirs[1] = pipefd[1];
	if (fr_send_fds(p->fs.proc.sock, theirs) < 0)
		goto out; /* full or gone: this worker is spawned; the EOF tells if it is gone */
	fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
	fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
	w->fork_fds[0] = sp[0];
	w->fork_fds[1] = pipefd[0];
	sp[0] = pipefd[0] = -1;
	w->forked = true;
	w->start_deadline = now_s() + w->sv->opts.start_timeout; /* its answer; then the load */
	if (p->fs.pending_tail)
		p->fs.pending_tail->fork_next = w;
	else
		p->fs.pending = w;
	p->fs.pending_tail = w;
	ok = true;
out:
	for (int i = 0; i < 2; i++) {
		if (sp[i] >= 0)
			close(sp[i]);
		if (pipefd[i] >= 0)
			close(pipefd[i]);
	}
	return ok;
}

/* W's fork request went unanswered: its process is spawned instead. */
static void respawn_plain(struct sv *sv, struct sv_worker *w)
{
	struct spawn_req *r = calloc(1, sizeof(*r));

	for (int i = 0; i < 2; i++)
		if (w->fork_fds[i] >= 0)
			close(w->fork_fds[i]);
	w->fork_fds[0] = w->fork_fds[1] = -1;
	w->forked = false;
	w->fork_next = NULL;
	if (r == NULL) {
		struct spawn_done d = {.w = w, .rc = OP_ENOMEM, .error = strdup("out of memory")};

		adopt_spawn(sv, &d);
		return;
	}
	r->w = w;
	r->label = w->plugin->name;
	r->env_allow = &w->plugin->env_allow;
	spawner_push(sv, r);
}

/* P's fork server is gone (or is put down): what it had not forked yet is spawned, what it had
 * forked went with it (PR_SET_PDEATHSIG), and it is started again later. */
static void fs_gone(struct sv *sv, struct sv_plugin *p)
{
	struct sv_forksrv *fs = &p->fs;
	struct sv_worker *pending = fs->pending;
	bool was_ready = fs->state == FS_READY;
	char how[64], reason[256];

	wk_describe_status(fs_close(fs), how, sizeof(how));
	fs->state = FS_OFF;
	fs->retry_at = now_s() + (was_ready ? FORKSRV_RESTART_S : SPARE_RETRY_S);
	op_log_warn("supervisor", "the fork server for %s ended (%s); workers are spawned %s",
		    p->name, how, was_ready ? "until it is back" : "without it for now");
	sv->reap_strays = true;
	for (struct sv_worker *w = pending, *next; w; w = next) {
		next = w->fork_next;
		respawn_plain(sv, w);
	}
	snprintf(reason, sizeof(reason),
		 "the fork server for plugin %s ended (%s) and took the task's worker with it",
		 p->name, how);
	for (struct sv_worker *w = sv->workers; w; w = w->next)
		if (w->forked && w->plugin == p && !w->exited && w->proc.pid > 0) {
			free(w->gone_reason);
			w->gone_reason = strdup(reason);
			/* What PR_SET_PDEATHSIG sent it already: its handler takes the processes
			 * it started along, which a SIGKILL would cut short. */
			kill_worker(w, SIGHUP);
			w->status = 0;
			worker_gone(w);
		}
}

static void fs_on_frame(struct sv *sv, struct sv_plugin *p, uint8_t type, const char *payload,
			size_t len)
{
	struct sv_forksrv *fs = &p->fs;
	cJSON *o = len ? cJSON_ParseWithLength(payload, len) : NULL;
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
	struct sv_worker *w;

	switch (type) {
	case FR_READY:
		if (fs->state == FS_STARTING)
			fs->state = FS_READY;
		break;
	case FR_LOAD_ERROR: {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");

		/* It exits now; the workers spawned meanwhile report the error with their task. */
		op_log_warn("supervisor", "the fork server for %s could not load it: %s", p->name,
			    cJSON_IsString(m) ? m->valuestring : "load failed");
		break;
	}
	case FR_FORKED:
		w = fs->pending;
		if (w == NULL)
			break;
		fs->pending = w->fork_next;
		if (fs->pending == NULL)
			fs->pending_tail = NULL;
		w->fork_next = NULL;
		if (!cJSON_IsNumber(pid) || pid->valuedouble <= 0 || pid->valuedouble > INT_MAX) {
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");

			op_log_warn("supervisor", "the fork server for %s: %s", p->name,
				    cJSON_IsString(e) ? e->valuestring : "a malformed answer");
			respawn_plain(sv, w);
			break;
		}
		w->proc.pid = (pid_t)pid->valuedouble;
		w->proc.sock = w->fork_fds[0];
		w->proc.out = w->fork_fds[1];
		w->fork_fds[0] = w->fork_fds[1] = -1;
		adopt_process(w);
		break;
	case FR_REAPED: {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
		const cJSON *rss = cJSON_GetObjectItemCaseSensitive(o, "maxrss");

		if (!cJSON_IsNumber(pid) || !cJSON_IsNumber(st))
			break;
		for (w = sv->workers; w; w = w->next)
			if (w->forked && !w->exited && w->proc.pid == (pid_t)pid->valuedouble) {
				w->status = st->valueint;
				memset(&w->ru, 0, sizeof(w->ru));
				w->ru.ru_maxrss = cJSON_IsNumber(rss) ? (long)rss->valuedouble : 0;
				worker_gone(w);
				break;
			}
		break;
	}
	default:
		op_log_warn("supervisor", "the fork server for %s sent an unknown frame type %u",
			    p->name, type);
		break;
	}
	cJSON_Delete(o);
}

struct fs_frame_arg {
	struct sv *sv;
	struct sv_plugin *p;
};

static bool fs_frame(void *arg, uint8_t type, const char *payload, size_t len)
{
	struct fs_frame_arg *a = arg;

	fs_on_frame(a->sv, a->p, type, payload, len);
	return true;
}

/* Reads what P's fork server sent. Returns -1 at EOF or on error. */
static int fs_read(struct sv *sv, struct sv_plugin *p)
{
	struct fs_frame_arg a = {sv, p};

	return read_frames(p->fs.proc.sock, &p->fs.in, fs_frame, &a) < 0 ? -1 : 0;
}

/* What the fork server itself prints (a library's constructor): dropped. */
static void fs_drain_output(struct sv_forksrv *fs)
{
	char chunk[4096];
	ssize_t n;

	while ((n = read(fs->proc.out, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
		;
	if (n == 0) {
		close(fs->proc.out);
		fs->proc.out = -1;
	}
}

/* The heap a worker for P prepares before its task: what P's last task used and a quarter
 * more. With no task of P seen yet (plugin run, an agent's first task of P), a task whose
 * params are PARAMS_LEN bytes gets TASK_HEAP_PER_PARAM_BYTE times that: what a batch builds
 * (its transfers, its results) grows with its requests; a spare (PARAMS_LEN 0) gets none.
 * Up to workers.spare_heap; none under SPARE_HEAP_MIN (a few faults cost less than the
 * populating), so a plugin whose tasks build little holds no more memory than its code. */
static uint64_t task_heap(const struct sv *sv, const struct sv_plugin *p, size_t params_len)
{
	uint64_t want = p->heap_hint > 0 ? p->heap_hint + p->heap_hint / 4
					 : (uint64_t)params_len * TASK_HEAP_PER_PARAM_BYTE;

	if (want < SPARE_HEAP_MIN)
		return 0;
	return want < sv->opts.spare_heap ? want : sv->opts.spare_heap;
}

uint64_t sv_task_heap(const struct sv *sv, const char *type, size_t params_len)
{
	const struct sv_plugin *p = plugin_for_type(sv, type);

	return p ? task_heap(sv, p, params_len) : 0;
}

/* Creates a worker for P with FR_INIT queued and asks the spawner thread for its process.
 * Frames queued meanwhile (the task, a cancel) go out once it exists. The worker prepares
 * the heap its task will use (task_heap): a SPARE while it waits, a worker spawned for a
 * task whose params are PARAMS_LEN bytes before it reads them. */
static struct sv_worker *spawn_worker(struct sv *sv, struct sv_plugin *p, bool spare,
				      size_t params_len, struct op_error *err)
{
	struct sv_worker *w = calloc(1, sizeof(*w));
	struct spawn_req *r = calloc(1, sizeof(*r));
	cJSON *init = NULL;
	char *text = NULL;
	uint64_t heap;

	if (w != NULL) {
		w->sv = sv;
		w->plugin = p;
		w->proc.pid = -1;
		w->proc.sock = w->proc.out = w->proc.pidfd = -1;
		w->fork_fds[0] = w->fork_fds[1] = -1;
	}
	if (w == NULL || r == NULL)
		goto fail;
	init = cJSON_CreateObject();
	if (init == NULL)
		goto fail;
	cJSON_AddStringToObject(init, "plugin", p->path);
	cJSON_AddItemToObject(init, "config", cJSON_Parse(p->init_json));
	cJSON_AddNumberToObject(init, "log_level", sv->opts.log_level);
#ifdef OUTPOST_SANITIZER_BUILD
	/* ASan reserves terabytes of address space: no RLIMIT_AS here (decisions.md 11). */
#else
	if (sv->opts.memory_limit > 0)
		cJSON_AddNumberToObject(init, "memory_limit", (double)sv->opts.memory_limit);
#endif
	heap = task_heap(sv, p, spare ? 0 : params_len);
	if (heap > 0)
		cJSON_AddNumberToObject(init, "heap", (double)heap);
	text = op_json_print(init, false);
	if (text == NULL || queue_frame(w, FR_INIT, text, strlen(text)) < 0)
		goto fail;
	cJSON_free(text);
	cJSON_Delete(init);
	w->state = WS_SPAWNING;
	w->next = sv->workers;
	sv->workers = w;
	if (p->fork_server) {
		if (p->fs.state == FS_READY && fs_fork(p, w)) {
			free(r);
			return w;
		}
		if (p->fs.state == FS_OFF && now_s() >= p->fs.retry_at)
			fs_start(sv, p);
	}
	r->w = w;
	r->label = p->name;
	r->env_allow = &p->env_allow;
	spawner_push(sv, r);
	return w;
fail:
	cJSON_free(text);
	cJSON_Delete(init);
	if (w)
		worker_free(w);
	free(r);
	op_fail(err, OP_ENOMEM, "out of memory");
	return NULL;
}

/* W has its process now (W->proc): it starts loading. */
static void adopt_process(struct sv_worker *w)
{
	w->state = WS_STARTING;
	w->start_deadline = now_s() + w->sv->opts.start_timeout;
	if (w->kill_when_spawned) {
		kill_worker(w, SIGKILL);
		return;
	}
	if (w->term_when_spawned)
		kill(w->proc.pid, SIGTERM);
	flush_out(w);
}

/* The spawner thread's answer for D->w: the worker now has a process, or failed to start. */
static void adopt_spawn(struct sv *sv, struct spawn_done *d)
{
	struct sv_worker *w = d->w;

	if (d->fs != NULL) {
		fs_adopt(sv, d);
		return;
	}

	if (d->rc != OP_OK) {
		char msg[1200];

		snprintf(msg, sizeof(msg), "%s", d->error ? d->error : "cannot start a worker");
		free(d->error);
		w->exited = true;
		w->state = WS_FINISHED;
		if (w->job) {
			finish_job(w->job, SV_LOAD_FAILED, msg);
		} else {
			op_log_warn("supervisor", "cannot start a spare worker for %s: %s",
				    w->plugin->name, msg);
			w->plugin->spare_retry_at = now_s() + SPARE_RETRY_S;
		}
		return;
	}
	w->proc = d->proc;
	adopt_process(w);
}

static void read_spawns(struct sv *sv)
{
	struct spawn_done d;

	while (read(sv->done_pipe[0], &d, sizeof(d)) == (ssize_t)sizeof(d))
		adopt_spawn(sv, &d);
}

void sv_set_spares(struct sv *sv, bool on)
{
	sv->spares_on = on;
	if (on)
		return;
	for (struct sv_worker *w = sv->workers; w; w = w->next) {
		if (w->job == NULL && w->state == WS_SPAWNING) {
			w->kill_when_spawned = true;
			continue;
		}
		if (w->job == NULL && (w->state == WS_READY || w->state == WS_STARTING) &&
		    w->proc.sock >= 0) {
			/* Closing the channel tells an idle spare to exit. */
			close(w->proc.sock);
			w->proc.sock = -1;
			w->state = WS_FINISHED;
			w->kill_at = now_s() + w->sv->opts.grace;
		}
	}
}

static void refill_spares(struct sv *sv)
{
	double now = now_s();
	int tasks = 0;
	bool slots_full;

	if (!sv->spares_on)
		return;
	for (const struct sv_job *j = sv->jobs; j; j = j->next)
		tasks += !j->is_step; /* a step runs inside its task's slot */
	slots_full = sv->opts.max_tasks > 0 && tasks >= sv->opts.max_tasks;
	for (size_t i = 0; i < sv->n_plugins; i++) {
		struct sv_plugin *p = &sv->plugins[i];
		struct op_error err = {0};
		bool have = false;

		if (!p->spare || now < p->spare_retry_at || now < p->refill_after ||
		    (p->refill_after > 0 && slots_full))
			continue;
		for (struct sv_worker *w = sv->workers; w; w = w->next)
			if (w->plugin == p && w->job == NULL && !w->kill_when_spawned &&
			    (w->state == WS_SPAWNING || w->state == WS_STARTING ||
			     w->state == WS_READY))
				have = true;
		if (have)
			continue;
		if (spawn_worker(sv, p, true, 0, &err) == NULL) {
			op_log_warn("supervisor", "cannot start a spare worker for %s: %s", p->name,
				    err.msg);
			p->spare_retry_at = now + SPARE_RETRY_S;
		}
	}
}

void sv_prestart(struct sv *sv)
{
	refill_spares(sv);
}

/* ---- job reporting ----------------------------------------------------------------------- */

static void emit_log(struct sv_job *j, int level, const char *text, size_t len);
static int read_pipe(struct sv_worker *w);
static void close_pipe(struct sv_worker *w);

/* Accounts LEN more bytes of output; returns how many may pass. */
static size_t budget(struct sv_job *j, size_t len)
{
	uint64_t limit = j->sv->opts.output_limit;
	size_t pass;

	if (limit == 0 || j->output_bytes >= limit) {
		pass = limit == 0 ? len : 0;
	} else {
		pass = (uint64_t)len <= limit - j->output_bytes ? len : (size_t)(limit - j->output_bytes);
	}
	j->output_bytes += pass;
	j->output_cut += len - pass;
	if (pass < len && !j->cut_noted) {
		char msg[160], lim[32];

		j->cut_noted = true;
		snprintf(lim, sizeof(lim), "%llu bytes", (unsigned long long)limit);
		snprintf(msg, sizeof(msg),
			 "task output reached the limit of %s (workers.output_limit): the rest is dropped",
			 lim);
		if (j->ev->log)
			j->ev->log(j->ud, OP_LOG_WARN, msg, strlen(msg));
	}
	return pass;
}

static void emit_log(struct sv_job *j, int level, const char *text, size_t len)
{
	struct op_buf clean = OP_BUF_INIT;
	size_t pass = budget(j, len);

	if (pass == 0 || j->ev->log == NULL)
		return;
	if (op_redact(&j->redactor, text, pass, &clean) == 0 && clean.data)
		j->ev->log(j->ud, level, clean.data, clean.len);
	op_buf_release(&clean);
}

static void emit_output(struct sv_job *j, int stream, const char *data, size_t len, bool final)
{
	struct op_buf clean = OP_BUF_INIT;
	struct op_buf *pending = &j->pending[stream == 1 ? 1 : 2];
	size_t pass = len ? budget(j, len) : 0;

	if (pass > 0 && op_buf_append(pending, data, pass) < 0)
		return;
	if (op_redact_stream(&j->redactor, pending, final, &clean) == 0 && clean.len > 0 &&
	    j->ev->output)
		j->ev->output(j->ud, stream == 1 ? 1 : 2, clean.data, clean.len);
	op_buf_release(&clean);
}

static cJSON *list_artifacts(const char *workspace)
{
	cJSON *list = cJSON_CreateArray();
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (list == NULL || op_snprintf(dir, sizeof(dir), "%s/artifacts", workspace) < 0)
		return list;
	d = opendir(dir);
	if (d == NULL)
		return list;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX + 256], hex[65];
		unsigned char md[32], buf[65536];
		unsigned int mdlen = 0;
		struct stat st;
		EVP_MD_CTX *ctx;
		cJSON *a;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		ctx = EVP_MD_CTX_new();
		if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
			ssize_t n;

			while ((n = read(fd, buf, sizeof(buf))) > 0)
				EVP_DigestUpdate(ctx, buf, (size_t)n);
			EVP_DigestFinal_ex(ctx, md, &mdlen);
		}
		EVP_MD_CTX_free(ctx);
		close(fd);
		for (unsigned int i = 0; i < mdlen && i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		hex[mdlen == 32 ? 64 : 0] = '\0';
		a = cJSON_CreateObject();
		if (a == NULL)
			continue;
		cJSON_AddStringToObject(a, "name", e->d_name);
		cJSON_AddNumberToObject(a, "size", (double)st.st_size);
		cJSON_AddStringToObject(a, "sha256", hex);
		cJSON_AddStringToObject(a, "path", path);
		cJSON_AddItemToArray(list, a);
	}
	closedir(d);
	return list;
}

static void unlink_job(struct sv *sv, struct sv_job *j)
{
	for (struct sv_job **pp = &sv->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			return;
		}
}

/* Reports J's outcome once and frees it. */
static void finish_job(struct sv_job *j, enum sv_status status, const char *message)
{
	struct sv *sv = j->sv;
	struct sv_outcome o;
	struct op_buf error = OP_BUF_INIT;
	cJSON *artifacts, *parsed = NULL;
	char bad[256];

	if (j->reported)
		return;
	j->reported = true;
	emit_output(j, 1, NULL, 0, true);
	emit_output(j, 2, NULL, 0, true);
	if (j->result.len > 0) {
		/* again if a secret the worker asked for since could be in it */
		if (j->result_secrets != j->redactor.n)
			check_result(j);
		parsed = j->result_tree;
		j->result_tree = NULL;
		if (parsed == NULL && status == SV_SUCCEEDED) {
			snprintf(bad, sizeof(bad), "plugin %s set a result that is not valid JSON",
				 j->plugin->name);
			status = SV_FAILED;
			message = bad;
		}
	}
	if (message != NULL)
		op_redact(&j->redactor, message, strlen(message), &error);
	artifacts = list_artifacts(j->workspace);
	memset(&o, 0, sizeof(o));
	o.status = status;
	o.error = error.data;
	o.result = parsed;
	o.result_text = parsed ? j->result_clean.data : NULL;
	o.artifacts = artifacts;
	o.duration = now_s() - j->started;
	o.output_bytes = j->output_bytes;
	o.output_cut = j->output_cut;
	if (j->w)
		j->w->job = NULL;
	j->plugin->refill_after = 0;
	if (j->step) {
		/* The task ended while its step runs: the step goes too. */
		j->step->parent = NULL;
		sv_kill(j->step->sub, "the task that ran this step ended");
		j->step = NULL;
	}
	unlink_job(sv, j);
	if (j->ev->done)
		j->ev->done(j->ud, &o);
	cJSON_Delete(artifacts);
	cJSON_Delete(parsed);
	op_buf_release(&error);
	job_free(j);
}

static const char *plugin_error(struct sv_job *j, const char *fallback)
{
	return j->error.len ? j->error.data : fallback;
}

/* The outcome once the worker sent FR_DONE. */
static void finish_from_done(struct sv_job *j)
{
	char msg[1536], dur[32];

	if (j->timed_out) {
		op_format_duration(j->timeout, dur, sizeof(dur));
		snprintf(msg, sizeof(msg), "task timed out after %s", dur);
		finish_job(j, SV_TIMED_OUT, msg);
		return;
	}
	switch (j->rc) {
	case 0:
		finish_job(j, SV_SUCCEEDED, NULL);
		return;
	case 1:
		finish_job(j, SV_INVALID, plugin_error(j, "invalid params"));
		return;
	case 3:
		if (j->cancel_requested) {
			snprintf(msg, sizeof(msg), "cancelled: %s",
				 j->stop_reason ? j->stop_reason : "on request");
			finish_job(j, SV_CANCELLED, j->error.len ? j->error.data : msg);
		} else {
			finish_job(j, SV_CANCELLED, plugin_error(j, "cancelled"));
		}
		return;
	case 4:
		finish_job(j, SV_TIMED_OUT, plugin_error(j, "the task's own time limit passed"));
		return;
	default:
		snprintf(msg, sizeof(msg), "plugin %s reported a failure without a message (code %d)",
			 j->plugin->name, j->rc);
		finish_job(j, SV_FAILED, plugin_error(j, msg));
		return;
	}
}

/* The outcome when the worker ended without FR_DONE. */
static void finish_from_exit(struct sv_worker *w)
{
	struct sv_job *j = w->job;
	char how[64], msg[1700], dur[32], grace[32];
	uint64_t limit = w->sv->opts.memory_limit;

	if (j == NULL)
		return;
	wk_describe_status(w->status, how, sizeof(how));
	op_format_duration(w->sv->opts.grace, grace, sizeof(grace));
	if (w->load_error) {
		finish_job(j, SV_LOAD_FAILED, w->load_error);
		return;
	}
	if (j->timed_out) {
		op_format_duration(j->timeout, dur, sizeof(dur));
		snprintf(msg, sizeof(msg), "task timed out after %s%s", dur,
			 j->killed ? "; the plugin did not stop and was killed" : "");
		finish_job(j, SV_TIMED_OUT, msg);
		return;
	}
	if (j->cancel_requested) {
		snprintf(msg, sizeof(msg), "cancelled: %s%s",
			 j->stop_reason ? j->stop_reason : "on request",
			 j->killed ? " (the plugin did not stop within " : "");
		if (j->killed) {
			strncat(msg, grace, sizeof(msg) - strlen(msg) - 1);
			strncat(msg, " and was killed)", sizeof(msg) - strlen(msg) - 1);
		}
		finish_job(j, SV_CANCELLED, msg);
		return;
	}
	if (w->gone_reason) {
		finish_job(j, SV_CRASHED, w->gone_reason);
		return;
	}
	if (w->state == WS_STARTING) {
		snprintf(msg, sizeof(msg), "plugin %s crashed while loading: %s", w->plugin->name, how);
		finish_job(j, SV_LOAD_FAILED, msg);
		return;
	}
	if (WIFSIGNALED(w->status)) {
		snprintf(msg, sizeof(msg), "plugin %s crashed: %s", w->plugin->name, how);
		if (limit > 0 && (uint64_t)w->ru.ru_maxrss * 1024 >= limit / 10 * 8) {
			char used[64];

			snprintf(used, sizeof(used), "; it had used %lld MiB of its %llu MiB memory limit",
				 (long long)w->ru.ru_maxrss / 1024,
				 (unsigned long long)(limit >> 20));
			strncat(msg, used, sizeof(msg) - strlen(msg) - 1);
			strncat(msg, " (workers.memory_limit)", sizeof(msg) - strlen(msg) - 1);
		}
	} else if (WIFEXITED(w->status) && WEXITSTATUS(w->status) == WK_EXIT_PROTOCOL) {
		snprintf(msg, sizeof(msg),
			 "the worker for plugin %s could not read its task: out of memory%s, or a "
			 "broken channel to the agent",
			 w->plugin->name, limit ? " (workers.memory_limit)" : "");
	} else if (WIFEXITED(w->status)) {
		snprintf(msg, sizeof(msg),
			 "plugin %s ended the worker with %s before finishing the task (it called exit())",
			 w->plugin->name, how);
	} else {
		snprintf(msg, sizeof(msg), "plugin %s: the worker ended unexpectedly (%s)",
			 w->plugin->name, how);
	}
	if (j->error.len) {
		strncat(msg, ": ", sizeof(msg) - strlen(msg) - 1);
		strncat(msg, j->error.data, sizeof(msg) - strlen(msg) - 1);
	}
	finish_job(j, SV_CRASHED, msg);
}

/* ---- frames from a worker ---------------------------------------------------------------- */

static void answer_secret(struct sv_worker *w, const char *payload, size_t len)
{
	struct sv_job *j = w->job;
	cJSON *req = cJSON_ParseWithLength(payload, len);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(req, "host");
	struct op_buf value = OP_BUF_INIT, frame = OP_BUF_INIT;
	char why[512] = "";
	unsigned char found = 0;

	if (j != NULL && cJSON_IsString(name) && w->sv->opts.secret != NULL &&
	    w->sv->opts.secret(w->sv->opts.secret_ud, j->type, name->valuestring,
			       cJSON_IsString(host) ? host->valuestring : NULL, &value, why,
			       sizeof(why)) == 1)
		found = 1;
	if (found) {
		(void)op_redactor_add(&j->redactor, value.data ? value.data : "", value.len);
	} else if (j != NULL) {
		char msg[768];

		snprintf(msg, sizeof(msg), "secret \"%s\" refused: %s",
			 cJSON_IsString(name) ? name->valuestring : "?", why[0] ? why : "unknown secret");
		op_log_warn("supervisor", "%s task_type=%s", msg, j->type);
		if (j->ev->log)
			j->ev->log(j->ud, OP_LOG_WARN, msg, strlen(msg));
	}
	if (op_buf_append(&frame, &found, 1) == 0 &&
	    (value.len == 0 || op_buf_append(&frame, value.data, value.len) == 0))
		(void)queue_frame(w, FR_SECRET, frame.data, frame.len);
	if (value.data)
		explicit_bzero(value.data, value.len);
	if (frame.data)
		explicit_bzero(frame.data, frame.len);
	op_buf_release(&value);
	op_buf_release(&frame);
	cJSON_Delete(req);
	flush_out(w);
}

/* ---- steps (ABI 1.1 call) ----------------------------------------------------------------- */

static void answer_step(struct sv_worker *w, cJSON *outcome)
{
	char *text = outcome ? op_json_print(outcome, false) : NULL;

	if (text == NULL) {
		const char *oom = "{\"started\":false,\"status\":\"crashed\","
				  "\"error\":\"out of memory\"}";

		(void)queue_frame(w, FR_CALL_DONE, oom, strlen(oom));
	} else {
		(void)queue_frame(w, FR_CALL_DONE, text, strlen(text));
	}
	cJSON_free(text);
	flush_out(w);
}

static void refuse_step(struct sv_worker *w, const char *why)
{
	cJSON *o = cJSON_CreateObject();

	if (o) {
		cJSON_AddBoolToObject(o, "started", 0);
		cJSON_AddStringToObject(o, "status", "invalid");
		cJSON_AddStringToObject(o, "error", why);
	}
	answer_step(w, o);
	cJSON_Delete(o);
}

static void step_log(void *ud, int level, const char *text, size_t len)
{
	struct call_link *l = ud;
	struct op_buf line = OP_BUF_INIT;

	if (l->parent == NULL)
		return;
	if (op_buf_printf(&line, "[%s] ", l->type) == 0 && op_buf_append(&line, text, len) == 0)
		emit_log(l->parent, level, line.data, line.len);
	op_buf_release(&line);
}

static void step_output(void *ud, int stream, const char *data, size_t len)
{
	struct call_link *l = ud;

	if (l->parent)
		emit_output(l->parent, stream, data, len, false);
}

static void step_done(void *ud, const struct sv_outcome *o)
{
	struct call_link *l = ud;
	struct sv_job *parent = l->parent;
	cJSON *out = cJSON_CreateObject();

	if (parent != NULL && out != NULL) {
		cJSON_AddBoolToObject(out, "started", 1);
		cJSON_AddStringToObject(out, "status", sv_status_name(o->status));
		if (o->error)
			cJSON_AddStringToObject(out, "error", o->error);
		else
			cJSON_AddNullToObject(out, "error");
		cJSON_AddItemToObject(out, "result",
				      o->result ? cJSON_Duplicate(o->result, true) : cJSON_CreateNull());
		cJSON_AddItemToObject(out, "artifacts", cJSON_Duplicate(o->artifacts, true));
		cJSON_AddNumberToObject(out, "duration", o->duration);
		parent->step = NULL;
		if (parent->w && !parent->w->exited && parent->w->proc.sock >= 0)
			answer_step(parent->w, out);
	}
	cJSON_Delete(out);
	free(l);
}

/* A worker asks to run a step: another plugin's task in a worker of its own. */
static void start_step(struct sv_worker *w, const char *p, size_t len)
{
	static const struct sv_events ev = {step_log, step_output, NULL, step_done, NULL};
	struct sv_job *j = w->job;
	cJSON *req = cJSON_ParseWithLength(p, len);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "type"));
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(req, "timeout");
	struct op_error err = {0};
	struct call_link *l = NULL;
	struct sv_task t;
	char *ptext = NULL, why[600];
	double timeout = cJSON_IsNumber(to) ? to->valuedouble : 0, left;

	if (j == NULL || type == NULL || !cJSON_IsObject(params)) {
		refuse_step(w, "malformed step request");
		goto out;
	}
	if (j->is_step) {
		refuse_step(w, "a step cannot run steps of its own");
		goto out;
	}
	if (j->step != NULL) {
		refuse_step(w, "another step of this task is running");
		goto out;
	}
	if (plugin_for_type(w->sv, type) == NULL) {
		snprintf(why, sizeof(why), "no enabled plugin on this agent serves task type %s", type);
		refuse_step(w, why);
		goto out;
	}
	if (j->deadline) {
		left = j->deadline - now_s();
		if (left < 0.001)
			left = 0.001;
		if (timeout <= 0 || timeout > left)
			timeout = left;
	}
	l = calloc(1, sizeof(*l));
	ptext = op_json_print(params, false);
	if (l == NULL || ptext == NULL) {
		refuse_step(w, "out of memory");
		free(l);
		goto out;
	}
	l->parent = j;
	op_strlcpy(l->type, type, sizeof(l->type));
	t.id = "step";
	t.type = type;
	t.params = ptext;
	t.workspace = j->workspace;
	t.timeout = timeout;
	if (sv_start(w->sv, &t, &ev, l, &l->sub, &err) != OP_OK) {
		refuse_step(w, err.msg);
		free(l);
		goto out;
	}
	l->sub->is_step = true;
	j->step = l;
out:
	cJSON_free(ptext);
	cJSON_Delete(req);
}

static void on_frame(struct sv_worker *w, uint8_t type, const char *p, size_t len)
{
	struct sv_job *j = w->job;

	switch (type) {
	case FR_READY:
		if (w->state == WS_STARTING)
			w->state = j ? WS_BUSY : WS_READY;
		if (j)
			j->started = j->started ? j->started : now_s();
		break;
	case FR_LOAD_ERROR: {
		cJSON *o = cJSON_ParseWithLength(p, len);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");

		free(w->load_error);
		w->load_error = strdup(cJSON_IsString(m) ? m->valuestring : "the plugin failed to load");
		if (j == NULL) {
			op_log_error("supervisor", "spare worker for %s: %s", w->plugin->name,
				     w->load_error ? w->load_error : "load failed");
			w->plugin->spare_retry_at = now_s() + SPARE_RETRY_S;
		} else {
			finish_job(j, SV_LOAD_FAILED, w->load_error);
		}
		cJSON_Delete(o);
		w->state = WS_FINISHED;
		w->kill_at = now_s() + w->sv->opts.grace;
		break;
	}
	case FR_LOG:
		if (j && len >= 1)
			emit_log(j, (unsigned char)p[0], p + 1, len - 1);
		break;
	case FR_OUTPUT:
		if (j && len >= 1)
			emit_output(j, (unsigned char)p[0], p + 1, len - 1, false);
		break;
	case FR_PROGRESS:
		if (j && j->ev->progress) {
			cJSON *o = cJSON_ParseWithLength(p, len);
			const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "fraction");
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");

			if (cJSON_IsNumber(f))
				j->ev->progress(j->ud, f->valuedouble,
						cJSON_IsString(m) ? m->valuestring : NULL);
			cJSON_Delete(o);
		}
		break;
	case FR_RESULT:
		if (j) {
			op_buf_reset(&j->result);
			if (op_buf_append(&j->result, p, len) == 0)
				check_result(j);
		}
		break;
	case FR_ERROR:
		if (j) {
			op_buf_reset(&j->error);
			(void)op_buf_append(&j->error, p, len);
		}
		break;
	case FR_SECRET_REQ:
		answer_secret(w, p, len);
		break;
	case FR_CALL:
		start_step(w, p, len);
		break;
	case FR_RECORD:
		if (j && j->ev->record) {
			struct op_buf clean = OP_BUF_INIT;
			cJSON *rec = NULL;

			if (op_redact(&j->redactor, p, len, &clean) == 0 && clean.data)
				rec = cJSON_ParseWithLength(clean.data, clean.len);
			if (cJSON_IsObject(rec))
				j->ev->record(j->ud, rec);
			cJSON_Delete(rec);
			op_buf_release(&clean);
		}
		break;
	case FR_DONE:
		/* Output the plugin wrote before it finished is in the pipe already. */
		if (w->proc.out >= 0 && read_pipe(w) < 0)
			close_pipe(w);
		if (j) {
			cJSON *o = cJSON_ParseWithLength(p, len);
			const cJSON *rc = cJSON_GetObjectItemCaseSensitive(o, "rc");
			const cJSON *heap = cJSON_GetObjectItemCaseSensitive(o, "heap");

			j->rc = cJSON_IsNumber(rc) ? rc->valueint : 5;
			w->plugin->heap_hint = cJSON_IsNumber(heap) && heap->valuedouble > 0 &&
						       heap->valuedouble < 1e15
						   ? (uint64_t)heap->valuedouble
						   : 0;
			j->done_frame = true;
			cJSON_Delete(o);
			finish_from_done(j);
		}
		w->state = WS_FINISHED;
		w->kill_at = now_s() + w->sv->opts.grace;
		break;
	default:
		op_log_warn("supervisor", "worker for %s sent an unknown frame type %u", w->plugin->name,
			    type);
		break;
	}
}

static bool worker_frame(void *arg, uint8_t type, const char *payload, size_t len)
{
	struct sv_worker *w = arg;

	on_frame(w, type, payload, len);
	return w->proc.sock >= 0; /* the frame may have ended the channel */
}

/* Reads what the worker's socket holds. Returns -1 at EOF or on error. */
static int read_sock(struct sv_worker *w)
{
	int rc = read_frames(w->proc.sock, &w->in, worker_frame, w);

	if (rc == -2)
		op_log_error("supervisor", "worker for %s sent a malformed frame", w->plugin->name);
	return rc < 0 ? -1 : 0;
}

static int read_pipe(struct sv_worker *w)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(w->proc.out, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		if (w->job)
			emit_output(w->job, 2, chunk, (size_t)n, false);
		/* Without a job (a spare's stray prints) the bytes are dropped. */
	}
}

static void close_sock(struct sv_worker *w)
{
	if (w->proc.sock >= 0)
		close(w->proc.sock);
	w->proc.sock = -1;
}

static void close_pipe(struct sv_worker *w)
{
	if (w->proc.out >= 0)
		close(w->proc.out);
	w->proc.out = -1;
}

/* W has ended, with W->status and W->ru set: reports its job and marks it for cleanup. */
static void worker_gone(struct sv_worker *w)
{
	w->exited = true;
	/* Drain what it wrote before dying, then judge. */
	if (w->proc.sock >= 0) {
		(void)read_sock(w);
		close_sock(w);
	}
	if (w->proc.out >= 0) {
		(void)read_pipe(w);
		close_pipe(w);
	}
	/* Its process group: children it left. (Not for a worker whose fork server went: it is
	 * still taking what it started along, and the sweep gets what remains.) */
	if (w->proc.pid > 0 && w->gone_reason == NULL)
		kill(-w->proc.pid, SIGKILL);
	if (w->proc.pidfd >= 0)
		close(w->proc.pidfd);
	w->proc.pidfd = -1;
	w->sv->reap_strays = true;
	if (w->job)
		finish_from_exit(w);
	w->state = WS_FINISHED;
}

/* W's pidfd is readable (or, without pidfds, it may have ended): reaps our child. */
static void on_exit_(struct sv_worker *w)
{
	pid_t got;

	do {
		got = wait4(w->proc.pid, &w->status, WNOHANG, &w->ru);
	} while (got < 0 && errno == EINTR);
	if (got == 0)
		return; /* a stale event for a reused descriptor: it has not exited */
	wk_forget(w->proc.pid);
	worker_gone(w);
}

/* ---- the public event API ---------------------------------------------------------------- */

op_rc sv_start(struct sv *sv, const struct sv_task *task, const struct sv_events *ev, void *ud,
	       struct sv_job **out, struct op_error *err)
{
	struct sv_plugin *p = plugin_for_type(sv, task->type);
	const char *ptext = task->params ? task->params : "{}";
	struct sv_worker *w = NULL;
	struct sv_job *j;
	cJSON *frame = NULL, *check;
	char *text = NULL;
	op_rc rc = OP_OK;

	if (p == NULL)
		return op_fail(err, OP_ENOENT, "no enabled plugin serves task type %s", task->type);
	/* Checked here, passed on as they are: the worker parses them again (a batch's params
	 * can be megabytes). */
	check = cJSON_ParseWithOpts(ptext, NULL, true);
	if (check == NULL)
		return op_fail(err, OP_EINVAL, "task params are not valid JSON");
	cJSON_Delete(check);
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	j->sv = sv;
	j->plugin = p;
	j->ev = ev;
	j->ud = ud;
	j->timeout = task->timeout;
	j->type = strdup(task->type);
	j->workspace = strdup(task->workspace);
	frame = cJSON_CreateObject();
	if (j->type == NULL || j->workspace == NULL || frame == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	cJSON_AddStringToObject(frame, "id", task->id ? task->id : "");
	cJSON_AddStringToObject(frame, "type", task->type);
	cJSON_AddStringToObject(frame, "workspace", task->workspace);
	if (sv->opts.output_limit)
		cJSON_AddNumberToObject(frame, "output_limit", (double)sv->opts.output_limit);
	if (cJSON_AddRawToObject(frame, "params", ptext) != NULL)
		text = op_json_print(frame, false);
	if (text == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	/* A waiting spare of this plugin, or a fresh worker. */
	for (struct sv_worker *c = sv->workers; c; c = c->next)
		if (c->plugin == p && c->job == NULL && !c->kill_when_spawned &&
		    (c->state == WS_READY || c->state == WS_STARTING || c->state == WS_SPAWNING) &&
		    (c->state == WS_SPAWNING || c->proc.sock >= 0) &&
		    (w == NULL || c->state == WS_READY))
			w = c;
	if (w == NULL) {
		w = spawn_worker(sv, p, false, strlen(ptext), err);
		if (w == NULL) {
			rc = err ? err->rc : OP_EIO;
			goto out;
		}
	}
	if (queue_frame(w, FR_TASK, text, strlen(text)) < 0) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	j->w = w;
	w->job = j;
	if (w->state == WS_READY)
		w->state = WS_BUSY;
	if (p->spare)
		p->refill_after = now_s() + REFILL_DELAY_S;
	j->started = now_s();
	j->deadline = task->timeout > 0 ? j->started + task->timeout : 0;
	j->next = sv->jobs;
	sv->jobs = j;
	flush_out(w);
	*out = j;
	j = NULL;
out:
	cJSON_Delete(frame);
	cJSON_free(text);
	if (j)
		job_free(j);
	return rc;
}

void sv_cancel(struct sv_job *j, const char *reason)
{
	struct sv_worker *w = j->w;

	if (j->cancel_requested || j->reported)
		return;
	j->cancel_requested = true;
	free(j->stop_reason);
	j->stop_reason = strdup(reason ? reason : "on request");
	if (j->step)
		sv_cancel(j->step->sub, reason);
	if (w == NULL || w->exited)
		return;
	/* SIGTERM to the worker alone: its handler calls the plugin's cancel(). While it is
	 * still spawning, the adoption sends it. */
	if (w->proc.pid > 0)
		kill(w->proc.pid, SIGTERM);
	else
		w->term_when_spawned = true;
	if (w->kill_at == 0 || w->kill_at > now_s() + w->sv->opts.grace)
		w->kill_at = now_s() + w->sv->opts.grace;
}

void sv_kill(struct sv_job *j, const char *reason)
{
	struct sv_worker *w = j->w;

	if (j->reported)
		return;
	if (!j->cancel_requested) {
		j->cancel_requested = true;
		free(j->stop_reason);
		j->stop_reason = strdup(reason ? reason : "killed");
	}
	if (j->step)
		sv_kill(j->step->sub, reason);
	if (w && !w->exited) {
		if (w->state == WS_SPAWNING)
			w->kill_when_spawned = true;
		kill_worker(w, SIGKILL);
	}
}

int sv_max_pollfds(const struct sv *sv)
{
	int n = 0;

	for (const struct sv_worker *w = sv->workers; w; w = w->next)
		n += 3;
	return n + 1 + 2 * (int)sv->n_plugins; /* the spawner's pipe, the fork servers */
}

/* Adds FD (when open) to FDS[N] with EVENTS; returns the new count. */
static int add_fd(struct pollfd *fds, int n, int fd, short events)
{
	if (fd < 0)
		return n;
	fds[n].fd = fd;
	fds[n].events = events;
	fds[n].revents = 0;
	return n + 1;
}

/* A worker's or fork server's channel and output pipe: POLLOUT too while OUT holds frames. */
static int add_channel(struct pollfd *fds, int n, const struct wk_proc *p,
		       const struct op_buf *out)
{
	n = add_fd(fds, n, p->sock, (short)(POLLIN | (out->len ? POLLOUT : 0)));
	return add_fd(fds, n, p->out, POLLIN);
}

int sv_pollfds(struct sv *sv, struct pollfd *fds, int max)
{
	int n = 0;

	if (max > 0)
		n = add_fd(fds, n, sv->done_pipe[0], POLLIN);
	for (size_t i = 0; i < sv->n_plugins && n + 2 <= max; i++)
		n = add_channel(fds, n, &sv->plugins[i].fs.proc, &sv->plugins[i].fs.out);
	for (struct sv_worker *w = sv->workers; w && n + 3 <= max; w = w->next) {
		n = add_channel(fds, n, &w->proc, &w->out);
		n = add_fd(fds, n, w->proc.pidfd, POLLIN);
	}
	return n;
}

/* Serves FD if it is a fork server's. */
static bool handle_fs(struct sv *sv, const struct pollfd *fd)
{
	for (size_t i = 0; i < sv->n_plugins; i++) {
		struct sv_plugin *p = &sv->plugins[i];

		if (fd->fd == p->fs.proc.sock && p->fs.proc.sock >= 0) {
			if (fd->revents & POLLOUT)
				fs_flush(&p->fs);
			if ((fd->revents & (POLLIN | POLLHUP | POLLERR)) && fs_read(sv, p) < 0)
				fs_gone(sv, p);
			return true;
		}
		if (fd->fd == p->fs.proc.out && p->fs.proc.out >= 0) {
			fs_drain_output(&p->fs);
			return true;
		}
	}
	return false;
}

void sv_handle(struct sv *sv, const struct pollfd *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i].revents == 0)
			continue;
		if (fds[i].fd == sv->done_pipe[0]) {
			read_spawns(sv);
			continue;
		}
		if (handle_fs(sv, &fds[i]))
			continue;
		for (struct sv_worker *w = sv->workers; w; w = w->next) {
			if (fds[i].fd == w->proc.sock && w->proc.sock >= 0) {
				if (fds[i].revents & POLLOUT)
					flush_out(w);
				if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && read_sock(w) < 0)
					close_sock(w);
				break;
			}
			if (fds[i].fd == w->proc.out && w->proc.out >= 0) {
				if (read_pipe(w) < 0)
					close_pipe(w);
				break;
			}
			if (fds[i].fd == w->proc.pidfd && w->proc.pidfd >= 0) {
				on_exit_(w);
				break;
			}
		}
	}
}

static double min_timer(double a, double b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

int sv_timeout_ms(struct sv *sv)
{
	double next = 0, now = now_s();

	for (struct sv_worker *w = sv->workers; w; w = w->next) {
		if (w->exited)
			return 0; /* cleanup pending */
		if (w->state == WS_SPAWNING)
			continue;
		if (w->proc.pidfd < 0 && !w->forked)
			next = min_timer(next, now + 0.02); /* no pidfd: poll for its exit */
		next = min_timer(next, w->kill_at);
		if (w->state == WS_STARTING)
			next = min_timer(next, w->start_deadline);
		if (w->job && !w->job->timed_out)
			next = min_timer(next, w->job->deadline);
	}
	for (size_t i = 0; i < sv->n_plugins; i++) {
		if (sv->plugins[i].spare && sv->plugins[i].spare_retry_at > now)
			next = min_timer(next, sv->plugins[i].spare_retry_at);
		if (sv->plugins[i].spare && sv->plugins[i].refill_after > now)
			next = min_timer(next, sv->plugins[i].refill_after);
		if (sv->plugins[i].fs.state == FS_STARTING)
			next = min_timer(next, sv->plugins[i].fs.start_deadline);
		if (sv->plugins[i].fs.pending)
			next = min_timer(next, sv->plugins[i].fs.pending->start_deadline);
	}
	if (next == 0)
		return -1;
	if (next <= now)
		return 0;
	return (int)ceil((next - now) * 1000);
}

void sv_tick(struct sv *sv)
{
	double now = now_s();

	for (struct sv_worker *w = sv->workers; w; w = w->next) {
		struct sv_job *j = w->job;

		if (w->exited || w->state == WS_SPAWNING)
			continue;
		if (w->proc.pidfd < 0 && !w->forked) {
			on_exit_(w); /* waitpid(WNOHANG): returns at once while it runs */
			if (w->exited)
				continue;
		}
		if (j && j->deadline && !j->timed_out && now >= j->deadline) {
			j->timed_out = true;
			kill_worker(w, SIGTERM);
			w->kill_at = now + sv->opts.grace;
		}
		if (w->state == WS_STARTING && now >= w->start_deadline && w->kill_at == 0) {
			char msg[256];

			snprintf(msg, sizeof(msg),
				 "plugin %s did not finish loading within %.0fs (workers.start_timeout)",
				 w->plugin->name, sv->opts.start_timeout);
			free(w->load_error);
			w->load_error = strdup(msg);
			if (j == NULL)
				w->plugin->spare_retry_at = now + SPARE_RETRY_S;
			kill_worker(w, SIGKILL);
			w->kill_at = now;
		}
		if (w->kill_at && now >= w->kill_at) {
			if (j && !j->reported)
				j->killed = true;
			kill_worker(w, SIGKILL);
			w->kill_at = now + 1; /* again in a second if it is somehow still there */
		}
	}
	for (size_t i = 0; i < sv->n_plugins; i++) {
		struct sv_plugin *p = &sv->plugins[i];

		if (p->fs.state == FS_STARTING && now >= p->fs.start_deadline) {
			op_log_warn("supervisor",
				    "the fork server for %s did not load it within %.0fs "
				    "(workers.start_timeout)",
				    p->name, sv->opts.start_timeout);
			fs_gone(sv, p);
		} else if (p->fs.pending && now >= p->fs.pending->start_deadline) {
			op_log_warn("supervisor",
				    "the fork server for %s did not answer a fork request within "
				    "%.0fs (workers.start_timeout)",
				    p->name, sv->opts.start_timeout);
			fs_gone(sv, p);
		}
	}
	/* Drop workers that are gone and have no job left to report. */
	for (struct sv_worker **pp = &sv->workers; *pp;) {
		struct sv_worker *w = *pp;

		if (w->exited && w->job == NULL) {
			*pp = w->next;
			worker_free(w);
		} else {
			pp = &w->next;
		}
	}
	if (sv->reap_strays) {
		struct spawn_req *r = calloc(1, sizeof(*r));

		sv->reap_strays = false;
		if (r != NULL)
			spawner_push(sv, r); /* w == NULL: a sweep */
	}
	refill_spares(sv);
}

int sv_running(const struct sv *sv)
{
	int n = 0;

	for (const struct sv_job *j = sv->jobs; j; j = j->next)
		n++;
	return n;
}

int sv_workers(const struct sv *sv)
{
	int n = 0;

	for (const struct sv_worker *w = sv->workers; w; w = w->next)
		if (!w->exited)
			n++;
	for (size_t i = 0; i < sv->n_plugins; i++)
		if (sv->plugins[i].fs.proc.pid > 0)
			n++;
	return n;
}

int sv_spares_ready(const struct sv *sv)
{
	int n = 0;

	for (const struct sv_worker *w = sv->workers; w; w = w->next)
		if (w->state == WS_READY && w->job == NULL && !w->exited)
			n++;
	return n;
}
