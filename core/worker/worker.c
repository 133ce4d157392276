/* SPDX-License-Identifier: Apache-2.0 */
/* outpost-worker: a lean process that hosts one plugin for one task (or scans plugins). */

/*
 * The agent spawns this executable with posix_spawn, the socketpair on fd 3 (--fd), stdout and
 * stderr on a pipe it reads as the task's output, an environment holding only what the
 * plugin's config allows, and nothing else open. It links libc and cJSON, never libcurl or
 * OpenSSL: see docs/architecture.md for why (start-up cost).
 *
 * Task mode:  FR_INIT → load + negotiate + init → FR_READY (or FR_LOAD_ERROR, exit 3)
 *             FR_TASK → schema check → validate → execute → FR_DONE, exit 0.
 *             Cancel is SIGTERM; after FR_TASK the parent only sends FR_SECRET answers.
 * Scan mode:  FR_SCAN → for each file: FR_SCAN_BEGIN, load + negotiate + init + shutdown,
 *             FR_SCAN_RESULT; exit 0. A crash here tells the parent which file did it.
 * Fork server: FR_FORKSRV → load + negotiate (no init) → FR_READY (or FR_LOAD_ERROR, exit 3).
 *             Then for each fork request (one byte carrying a socket and a pipe): fork a child
 *             that takes them as fd 3 and stdout/stderr and goes on in task mode from FR_INIT
 *             with the plugin already loaded → FR_FORKED; each child reaped → FR_REAPED.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <outpost/plugin.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "heap.h"
#include "jsonprint.h"
#include "plugin_load.h"
#include "schema.h"

#define EXIT_LOAD_FAILED WK_EXIT_LOAD_FAILED
#define EXIT_PROTOCOL WK_EXIT_PROTOCOL
/* The signal the kernel sends when the agent dies, and how the worker then exits. */
#define AGENT_GONE_SIGNAL SIGHUP
#define EXIT_AGENT_GONE (128 + SIGHUP)

struct outpost_ctx {
	int unused;
};

/* The secrets handed to this task; kept until exit so the pointers stay valid. */
struct secret_copy {
	char *value;
	size_t len;
	struct secret_copy *next;
};

static struct {
	int fd;
	pthread_mutex_t write_lock;
	struct wk_plugin plugin;
	void *state;
	bool plugin_loaded;
	atomic_int cancelled;
	int log_level;
	char workspace[PATH_MAX];
	uint64_t output_limit;
	atomic_ullong output_sent;
	atomic_ullong output_cut;
	/* Secrets are asked for synchronously: after FR_TASK, FR_SECRET answers are the only
	 * frames the parent sends, so the asking thread reads its answer itself. */
	pthread_mutex_t secret_lock; /* one request (secret or step) at a time */
	struct secret_copy *secrets;
	struct op_buf call_out; /* the last step's outcome */
	/* set_error() outside a task (during init) is kept here for the load error */
	bool in_task;
	/* heap in use when the task came and when it set its result (FR_DONE's "heap") */
	size_t heap_base, heap_at_result;
	char init_error[1024];
} W = {
	.fd = -1,
	.write_lock = PTHREAD_MUTEX_INITIALIZER,
	.log_level = OUTPOST_LOG_INFO,
	.secret_lock = PTHREAD_MUTEX_INITIALIZER,
};

static struct outpost_ctx the_ctx;

static int send_frame(uint8_t type, const void *data, size_t len)
{
	int rc;

	pthread_mutex_lock(&W.write_lock);
	rc = fr_write(W.fd, type, data, len);
	pthread_mutex_unlock(&W.write_lock);
	return rc;
}

static int send_json(uint8_t type, const cJSON *obj)
{
	char *text = op_json_print(obj, false);
	int rc;

	if (text == NULL)
		return -1;
	rc = send_frame(type, text, strlen(text));
	cJSON_free(text);
	return rc;
}

/* ---- the host API ------------------------------------------------------------------- */

static void host_log(outpost_ctx *ctx, int level, const char *msg)
{
	struct op_buf b = OP_BUF_INIT;
	unsigned char lv;

	(void)ctx;
	if (msg == NULL || level > W.log_level)
		return;
	lv = (unsigned char)(level < 0 ? 0 : level > 3 ? 3 : level);
	if (op_buf_append(&b, &lv, 1) == 0 && op_buf_puts(&b, msg) == 0)
		(void)send_frame(FR_LOG, b.data, b.len);
	op_buf_release(&b);
}

static void host_progress(outpost_ctx *ctx, double fraction, const char *msg)
{
	cJSON *o = cJSON_CreateObject();

	(void)ctx;
	if (o == NULL)
		return;
	cJSON_AddNumberToObject(o, "fraction", fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
	if (msg)
		cJSON_AddStringToObject(o, "message", msg);
	(void)send_json(FR_PROGRESS, o);
	cJSON_Delete(o);
}

static int host_is_cancelled(outpost_ctx *ctx)
{
	(void)ctx;
	return atomic_load(&W.cancelled);
}

/* Bytes of heap in use (mallinfo2 walks the free lists: a few microseconds). */
static size_t heap_in_use(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.uordblks + m.hblkhd;
}

/* The agent parses the result (and refuses one that is not JSON); here only its shape is
 * checked, so a result of megabytes is not parsed twice. */
static int host_set_result(outpost_ctx *ctx, const char *json, size_t len)
{
	size_t a = 0, b = len;

	(void)ctx;
	if (json == NULL)
		return -1;
	while (a < b && (json[a] == ' ' || json[a] == '\n' || json[a] == '\t' || json[a] == '\r'))
		a++;
	while (b > a && (json[b - 1] == ' ' || json[b - 1] == '\n' || json[b - 1] == '\t' ||
			 json[b - 1] == '\r' || json[b - 1] == '\0'))
		b--;
	if (b - a < 2 || json[a] != '{' || json[b - 1] != '}')
		return -1;
	/* The task's heap is near its peak here: its result as a tree and as text. */
	W.heap_at_result = heap_in_use();
	return send_frame(FR_RESULT, json + a, b - a);
}

static void host_set_error(outpost_ctx *ctx, const char *msg)
{
	(void)ctx;
	if (msg == NULL)
		return;
	if (W.in_task)
		(void)send_frame(FR_ERROR, msg, strlen(msg));
	else
		op_strlcpy(W.init_error, msg, sizeof(W.init_error));
}

static int host_output(outpost_ctx *ctx, int stream, const void *data, size_t len)
{
	const char *p = data;
	unsigned long long sent;

	(void)ctx;
	if (stream != OUTPOST_STREAM_STDOUT && stream != OUTPOST_STREAM_STDERR)
		stream = OUTPOST_STREAM_STDOUT;
	while (len > 0) {
		size_t room, n;
		struct op_buf b = OP_BUF_INIT;
		unsigned char s = (unsigned char)stream;
		int rc;

		sent = atomic_load(&W.output_sent);
		room = sent >= W.output_limit ? 0 : (size_t)(W.output_limit - sent);
		if (room == 0) {
			atomic_fetch_add(&W.output_cut, len);
			return -1;
		}
		n = len < 65536 ? len : 65536;
		if (n > room)
			n = room;
		rc = op_buf_append(&b, &s, 1) == 0 && op_buf_append(&b, p, n) == 0
			     ? send_frame(FR_OUTPUT, b.data, b.len)
			     : -1;
		op_buf_release(&b);
		if (rc < 0)
			return -1;
		atomic_fetch_add(&W.output_sent, n);
		p += n;
		len -= n;
	}
	return 0;
}

static bool valid_artifact_name(const char *name)
{
	if (name == NULL || name[0] == '\0' || name[0] == '.' || strlen(name) > 200)
		return false;
	return strchr(name, '/') == NULL;
}

static int host_artifact_open(outpost_ctx *ctx, const char *name, int *fd)
{
	char path[PATH_MAX];
	int f;

	(void)ctx;
	if (!valid_artifact_name(name) || fd == NULL) {
		host_log(ctx, OUTPOST_LOG_ERROR, "artifact name refused: a plain file name is needed");
		return -1;
	}
	if (mkdir("artifacts", 0750) < 0 && errno != EEXIST)
		return -1;
	if (op_snprintf(path, sizeof(path), "artifacts/%s", name) < 0)
		return -1;
	f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (f < 0)
		return -1;
	*fd = f;
	return 0;
}

static const char *host_secret(outpost_ctx *ctx, const char *name, const char *for_host,
			       size_t *len)
{
	struct op_buf answer = OP_BUF_INIT;
	cJSON *req = cJSON_CreateObject();
	struct secret_copy *copy = NULL;
	const char *result = NULL;
	uint8_t type = 0;

	(void)ctx;
	if (req == NULL || name == NULL)
		goto out;
	cJSON_AddStringToObject(req, "name", name);
	if (for_host)
		cJSON_AddStringToObject(req, "host", for_host);
	pthread_mutex_lock(&W.secret_lock);
	if (send_json(FR_SECRET_REQ, req) == 0 && fr_read(W.fd, &type, &answer) == 1 &&
	    type == FR_SECRET && answer.len >= 1 && answer.data[0] == 1) {
		copy = calloc(1, sizeof(*copy));
		if (copy != NULL) {
			copy->len = answer.len - 1;
			copy->value = malloc(copy->len + 1);
			if (copy->value == NULL) {
				free(copy);
			} else {
				memcpy(copy->value, answer.data + 1, copy->len);
				copy->value[copy->len] = '\0';
				copy->next = W.secrets;
				W.secrets = copy;
				result = copy->value;
				if (len)
					*len = copy->len;
			}
		}
	}
	pthread_mutex_unlock(&W.secret_lock);
	if (answer.data)
		explicit_bzero(answer.data, answer.len);
	op_buf_release(&answer);
out:
	cJSON_Delete(req);
	return result;
}

/* A step (ABI 1.1): the agent runs it in a worker of its own and answers with its outcome.
 * Like secrets, it is a synchronous request: the asking thread reads the answer. */
static int host_call(outpost_ctx *ctx, const char *type, const char *params, size_t len,
		     double timeout, const char **outcome, size_t *outcome_len)
{
	cJSON *req = cJSON_CreateObject(), *p = NULL, *answer = NULL;
	uint8_t frame = 0;
	int rc = -1;

	(void)ctx;
	pthread_mutex_lock(&W.secret_lock);
	op_buf_reset(&W.call_out);
	if (req == NULL || type == NULL || params == NULL ||
	    (p = cJSON_ParseWithLength(params, len)) == NULL || !cJSON_IsObject(p)) {
		op_buf_puts(&W.call_out, "{\"started\":false,\"status\":\"invalid\","
					 "\"error\":\"the step's params are not a JSON object\"}");
		goto out;
	}
	cJSON_AddStringToObject(req, "type", type);
	cJSON_AddItemToObject(req, "params", p);
	p = NULL;
	cJSON_AddNumberToObject(req, "timeout", timeout > 0 ? timeout : 0);
	if (send_json(FR_CALL, req) < 0 || fr_read(W.fd, &frame, &W.call_out) != 1 ||
	    frame != FR_CALL_DONE) {
		op_buf_reset(&W.call_out);
		op_buf_puts(&W.call_out, "{\"started\":false,\"status\":\"crashed\","
					 "\"error\":\"the agent did not answer the step\"}");
		goto out;
	}
	answer = cJSON_ParseWithLength(W.call_out.data, W.call_out.len);
	rc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "started")) ? 0 : -1;
out:
	*outcome = W.call_out.data;
	if (outcome_len)
		*outcome_len = W.call_out.len;
	pthread_mutex_unlock(&W.secret_lock);
	cJSON_Delete(answer);
	cJSON_Delete(p);
	cJSON_Delete(req);
	return rc;
}

static int host_record(outpost_ctx *ctx, const char *json, size_t len)
{
	size_t a = 0;

	(void)ctx;
	if (json == NULL)
		return -1;
	while (a < len && (json[a] == ' ' || json[a] == '\n' || json[a] == '\t'))
		a++;
	if (a == len || json[a] != '{')
		return -1;
	return send_frame(FR_RECORD, json, len);
}

static const char *host_workspace(outpost_ctx *ctx)
{
	(void)ctx;
	return W.workspace;
}

static const struct outpost_host_api host_api = {
	.size = sizeof(struct outpost_host_api),
	.abi_major = OUTPOST_ABI_MAJOR,
	.abi_minor = OUTPOST_ABI_MINOR,
	.log = host_log,
	.progress = host_progress,
	.is_cancelled = host_is_cancelled,
	.set_result = host_set_result,
	.set_error = host_set_error,
	.output = host_output,
	.artifact_open = host_artifact_open,
	.secret = host_secret,
	.workspace = host_workspace,
	.call = host_call,
	.record = host_record,
};

/* ---- cancellation ------------------------------------------------------------------- */

/* The agent cancels with SIGTERM: on request to the worker, at the deadline to its group. */

static void request_cancel(void)
{
	if (atomic_exchange(&W.cancelled, 1) == 0 && W.plugin_loaded && W.plugin.desc.cancel)
		W.plugin.desc.cancel(W.state);
}

static void on_sigterm(int sig)
{
	(void)sig;
	request_cancel();
}

/* ---- the agent is gone --------------------------------------------------------------- */

/* Kills each child of thread TID (digits) and the process group it leads: a change step's
 * command and what it started in its group. Async-signal-safe. */
static void kill_children_of(const char *tid)
{
	static const char pre[] = "/proc/self/task/", post[] = "/children";
	char path[64], buf[4096];
	size_t len = strlen(tid);
	long long pid = -1;
	ssize_t n;
	int fd;

	if (sizeof(pre) + len + sizeof(post) > sizeof(path))
		return;
	memcpy(path, pre, sizeof(pre) - 1);
	memcpy(path + sizeof(pre) - 1, tid, len);
	memcpy(path + sizeof(pre) - 1 + len, post, sizeof(post));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* "PID PID ... ": a number counts once its space has been read, so one cut between two
	 * reads is carried over, never taken for a shorter PID. */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				pid = (pid < 0 ? 0 : pid * 10) + (buf[i] - '0');
			} else {
				if (pid > 0) {
					kill((pid_t)-pid, SIGKILL);
					kill((pid_t)pid, SIGKILL);
				}
				pid = -1;
			}
		}
	}
	close(fd);
}

/* PR_SET_PDEATHSIG: the agent died (kill -9 included). The worker goes too, and takes what it
 * started with it — a command a plugin runs in a process group of its own would otherwise
 * outlive both. Only async-signal-safe calls (getdents64, no opendir). */
static void on_agent_gone(int sig)
{
	char buf[2048];
	ssize_t n;
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	(void)sig;
	if (fd >= 0) {
		while ((n = getdents64(fd, buf, sizeof(buf))) > 0) {
			for (ssize_t off = 0; off < n;) {
				struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);

				off += d->d_reclen;
				if (d->d_name[0] >= '0' && d->d_name[0] <= '9')
					kill_children_of(d->d_name);
			}
		}
		close(fd);
	}
	_exit(EXIT_AGENT_GONE);
}

/* The fork server's handler: it only goes. Each worker it forked gets its own SIGHUP from
 * PR_SET_PDEATHSIG as it does and takes what it started along (on_agent_gone); killing them
 * from here would stop them before they could. */
static void on_agent_gone_forksrv(int sig)
{
	(void)sig;
	_exit(EXIT_AGENT_GONE);
}

/* ---- task mode ---------------------------------------------------------------------- */

static void send_load_error(const char *stage, const char *message)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return;
	cJSON_AddStringToObject(o, "stage", stage);
	cJSON_AddStringToObject(o, "message", message);
	(void)send_json(FR_LOAD_ERROR, o);
	cJSON_Delete(o);
}

static void send_done(int rc)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return;
	cJSON_AddNumberToObject(o, "rc", rc);
	cJSON_AddNumberToObject(o, "cut", (double)atomic_load(&W.output_cut));
	/* What the task's heap grew by, for the size of the next spare's (prepare_heap). */
	if (W.heap_at_result > W.heap_base)
		cJSON_AddNumberToObject(o, "heap", (double)(W.heap_at_result - W.heap_base));
	(void)send_json(FR_DONE, o);
	cJSON_Delete(o);
}

static void apply_memory_limit(const cJSON *init)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(init, "memory_limit");
	struct rlimit rl;

	if (!cJSON_IsNumber(m) || m->valuedouble <= 0)
		return;
	rl.rlim_cur = rl.rlim_max = (rlim_t)m->valuedouble;
	(void)setrlimit(RLIMIT_AS, &rl);
}

/*
 * INIT's "heap" asks the worker to map and touch that much heap before its task: a spare
 * while it waits, a worker started for a task before it reads it. The agent sizes it after
 * what the plugin's last task used (FR_DONE's "heap"), or else after the task's params, up
 * to workers.spare_heap. A page touched for the first time costs a fault, and on virtual
 * machines a fault costs ~10 us: a task that builds a few MB of results would pay that on
 * its critical path, page by page. op_heap_prepare() populates the range in a call a block,
 * at a fraction of the cost a page, and frees it into malloc's heap, which keeps it
 * (op_heap_retain): large blocks come from the heap instead of fresh mmaps, and the heap is
 * not trimmed. With no task waiting yet it writes each page as well (op_heap_prepare_idle).
 * Best effort: under workers.memory_limit, or on a kernel without MADV_POPULATE_WRITE
 * (before 5.14), it does less or nothing and the task runs all the same.
 */
static void prepare_heap(const cJSON *init)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(init, "heap");
	struct pollfd task = {.fd = W.fd, .events = POLLIN};
	size_t bytes;

	if (!cJSON_IsNumber(h) || h->valuedouble < 4096 || h->valuedouble > 1073741824.0)
		return;
	bytes = (size_t)h->valuedouble;
	/* kept up to twice the block: freeing it must not trim it */
	if (!op_heap_retain(2 * bytes))
		return;
	if (poll(&task, 1, 0) == 0)
		op_heap_prepare_idle(bytes);
	else
		op_heap_prepare(bytes);
}

/* Loads the plugin named in INIT and runs its init(). Sends FR_READY or FR_LOAD_ERROR. */
static int load_for_task(const cJSON *init)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(init, "plugin");
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(init, "config");
	const cJSON *level = cJSON_GetObjectItemCaseSensitive(init, "log_level");
	struct op_error err = {0};
	const char *stage = WK_STAGE_LOAD;
	char *config_text = NULL;
	int rc = -1;

	if (cJSON_IsNumber(level))
		W.log_level = level->valueint;
	if (!cJSON_IsString(path)) {
		send_load_error(WK_STAGE_LOAD, "worker: FR_INIT without a plugin path");
		return -1;
	}
	if (W.plugin_loaded) { /* forked from a fork server: loaded already */
		if (strcmp(W.plugin.path, path->valuestring) != 0) {
			send_load_error(WK_STAGE_LOAD, "worker: FR_INIT names another plugin than "
						       "the fork server loaded");
			return -1;
		}
	} else if (wk_plugin_load(path->valuestring, &host_api, &W.plugin, &stage, &err) !=
		   OP_OK) {
		send_load_error(stage, err.msg);
		return -1;
	}
	W.plugin_loaded = true;
	config_text = config ? op_json_print(config, false) : strdup("{\"config\":{},\"agent\":{}}");
	if (config_text == NULL) {
		send_load_error(WK_STAGE_INIT, "worker: out of memory");
		goto out;
	}
	if (W.plugin.desc.init != NULL) {
		int irc = W.plugin.desc.init(&the_ctx, config_text, strlen(config_text), &W.state);

		if (irc != OUTPOST_OK) {
			char msg[1536];

			if (W.init_error[0])
				snprintf(msg, sizeof(msg), "plugin %s failed to initialise: %s",
					 W.plugin.desc.name, W.init_error);
			else
				snprintf(msg, sizeof(msg),
					 "plugin %s failed to initialise (init returned %d)",
					 W.plugin.desc.name, irc);
			send_load_error(WK_STAGE_INIT, msg);
			goto out;
		}
	}
	/* The parent knows the descriptor from discovery: READY carries nothing. */
	if (send_frame(FR_READY, NULL, 0) < 0)
		goto out;
	rc = 0;
out:
	free(config_text);
	return rc;
}

/* Checks PARAMS against the type's schema and fills its defaults; then validate(). */
static int run_task(cJSON *task)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(task, "type");
	cJSON *params = cJSON_GetObjectItemCaseSensitive(task, "params");
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(task, "workspace");
	const cJSON *limit = cJSON_GetObjectItemCaseSensitive(task, "output_limit");
	cJSON *effective = NULL;
	char *text = NULL;
	char msg[1024];
	int idx, rc = OUTPOST_ERR_INTERNAL;

	if (!cJSON_IsString(type) || !cJSON_IsString(ws)) {
		host_set_error(&the_ctx, "worker: malformed task frame");
		return OUTPOST_ERR_INTERNAL;
	}
	W.output_limit = cJSON_IsNumber(limit) && limit->valuedouble > 0
				 ? (uint64_t)limit->valuedouble
				 : UINT64_MAX;
	if (op_strlcpy(W.workspace, ws->valuestring, sizeof(W.workspace)) < 0 ||
	    chdir(W.workspace) < 0) {
		snprintf(msg, sizeof(msg), "cannot enter workspace %s: %s", ws->valuestring,
			 strerror(errno));
		host_set_error(&the_ctx, msg);
		return OUTPOST_ERR_INTERNAL;
	}
	idx = wk_plugin_find_type(&W.plugin, type->valuestring);
	if (idx < 0) {
		snprintf(msg, sizeof(msg), "plugin %s does not serve task type %s",
			 W.plugin.desc.name, type->valuestring);
		host_set_error(&the_ctx, msg);
		return OUTPOST_ERR_PARAMS;
	}
	/* Taken out of the task, not copied: the task is not used after this. */
	effective = params ? cJSON_DetachItemViaPointer(task, params) : cJSON_CreateObject();
	if (effective == NULL)
		goto out;
	if (W.plugin.schemas[idx] != NULL) {
		if (op_schema_validate(W.plugin.schemas[idx], effective, "params", msg,
				       sizeof(msg)) < 0) {
			host_set_error(&the_ctx, msg);
			rc = OUTPOST_ERR_PARAMS;
			goto out;
		}
		if (op_schema_apply_defaults(W.plugin.schemas[idx], effective) < 0)
			goto out;
	}
	text = op_json_print(effective, false);
	if (text == NULL)
		goto out;
	if (W.plugin.desc.validate != NULL) {
		rc = W.plugin.desc.validate(&the_ctx, W.state, type->valuestring, text, strlen(text));
		if (rc != OUTPOST_OK)
			goto out;
	}
	if (atomic_load(&W.cancelled)) {
		host_set_error(&the_ctx, "cancelled before it started");
		rc = OUTPOST_ERR_CANCELLED;
		goto out;
	}
	rc = W.plugin.desc.execute(&the_ctx, W.state, type->valuestring, text, strlen(text));
out:
	free(text);
	cJSON_Delete(effective);
	return rc;
}

static int task_mode(const cJSON *init)
{
	struct op_buf in = OP_BUF_INIT;
	cJSON *task = NULL;
	uint8_t type;
	int rc;

	apply_memory_limit(init);
	if (load_for_task(init) < 0)
		return EXIT_LOAD_FAILED;
	prepare_heap(init);
	W.heap_base = heap_in_use();
	rc = fr_read(W.fd, &type, &in);
	if (rc <= 0 || type != FR_TASK) {
		op_buf_release(&in);
		return rc == 0 ? 0 : EXIT_PROTOCOL; /* a spare worker told to go away */
	}
	task = cJSON_ParseWithLength(in.data, in.len);
	op_buf_release(&in);
	if (task == NULL)
		return EXIT_PROTOCOL;
	W.in_task = true;
	rc = run_task(task);
	cJSON_Delete(task);
	fflush(NULL); /* what the plugin printf()ed reaches the parent before FR_DONE */
	send_done(rc);
	if (W.plugin.desc.shutdown != NULL)
		W.plugin.desc.shutdown(W.state);
	return 0;
}

/* ---- fork-server mode ------------------------------------------------------------------ */

/* forksrv_mode's return in a forked child: go on in task mode on the new fd 3. */
#define FORKED_CHILD (-1)

/* The fork server's frames are built on the stack and written directly (it has one thread):
 * every page it writes between forks costs a copy-on-write fault, so it writes few. */
static void send_forked(pid_t pid, const char *error)
{
	char text[320];
	int n = error ? snprintf(text, sizeof(text), "{\"error\":\"%s\"}", error)
		      : snprintf(text, sizeof(text), "{\"pid\":%d}", (int)pid);

	(void)fr_write(W.fd, FR_FORKED, text, (size_t)n);
}

/* Reaps every child that has ended and tells the agent how each ended. */
static void reap_children(void)
{
	struct rusage ru;
	char text[128];
	int status, n;
	pid_t pid;

	while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
		n = snprintf(text, sizeof(text), "{\"pid\":%d,\"status\":%d,\"maxrss\":%ld}",
			     (int)pid, status, ru.ru_maxrss);
		(void)fr_write(W.fd, FR_REAPED, text, (size_t)n);
	}
}

/* In the child: the request's socket becomes fd 3 and its pipe stdout and stderr; nothing
 * else stays open, the signals are as a spawned worker has them, and the child is in a
 * process group of its own and goes when the fork server goes. Returns 0 or -1. */
static int become_task_worker(pid_t server, int sfd, const int fds[2])
{
	struct sigaction sa;
	sigset_t none;

	close(sfd);
	if (dup2(fds[0], 3) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
		return -1;
	closefrom(4);
	W.fd = 3;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigterm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_agent_gone;
	sigfillset(&sa.sa_mask);
	sigaction(AGENT_GONE_SIGNAL, &sa, NULL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	(void)setpgid(0, 0);
	(void)prctl(PR_SET_NAME, "outpost-worker");
	if (prctl(PR_SET_PDEATHSIG, AGENT_GONE_SIGNAL) < 0 || getppid() != server)
		return -1;
	return 0;
}

/* Loads the plugin once, then forks a task worker per request: each task still gets a process
 * of its own, without paying for execve, the loader and the dlopen again. */
static int forksrv_mode(const cJSON *req)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "plugin");
	struct op_error err = {0};
	const char *stage = WK_STAGE_LOAD;
	struct pollfd pfd[2];
	struct sigaction sa;
	sigset_t chld;
	pid_t self = getpid();
	int sfd;

	if (!cJSON_IsString(path)) {
		send_load_error(WK_STAGE_LOAD, "worker: FR_FORKSRV without a plugin path");
		return EXIT_LOAD_FAILED;
	}
	if (wk_plugin_load(path->valuestring, &host_api, &W.plugin, &stage, &err) != OP_OK) {
		send_load_error(stage, err.msg);
		return EXIT_LOAD_FAILED;
	}
	W.plugin_loaded = true;
	(void)prctl(PR_SET_NAME, "outpost-forksrv"); /* what ps and top show for it */
	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_agent_gone_forksrv;
	sigaction(AGENT_GONE_SIGNAL, &sa, NULL);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "unset_bind_now")))
		unsetenv("LD_BIND_NOW"); /* ours, for the loader: not for the plugin's commands */
	/* The fork server itself has no task to cancel: SIGTERM ends it. */
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		send_load_error(WK_STAGE_LOAD, "worker: signalfd failed");
		return EXIT_LOAD_FAILED;
	}
	if (send_frame(FR_READY, NULL, 0) < 0)
		return EXIT_PROTOCOL;
	pfd[0].fd = W.fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		int fds[2], rc;
		pid_t pid;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return EXIT_PROTOCOL;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
			reap_children();
		}
		if (pfd[0].revents == 0)
			continue;
		rc = fr_recv_fds(W.fd, fds);
		if (rc == 0)
			return 0; /* the agent closed the channel: the children go too (PDEATHSIG) */
		if (rc < 0) {
			send_forked(-1, "malformed fork request");
			continue;
		}
		pid = fork();
		if (pid == 0) {
			if (become_task_worker(self, sfd, fds) < 0)
				_exit(EXIT_PROTOCOL);
			return FORKED_CHILD;
		}
		close(fds[0]);
		close(fds[1]);
		if (pid < 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "fork failed: %s", strerrorname_np(errno));
			send_forked(-1, msg);
			continue;
		}
		/* Also here, so that a kill of the group right after FR_FORKED reaches it. */
		(void)setpgid(pid, pid);
		send_forked(pid, NULL);
	}
}

/* ---- scan mode ---------------------------------------------------------------------- */

static void scan_one(const char *path, const cJSON *configs)
{
	struct wk_plugin p;
	struct op_error err = {0};
	const char *stage = WK_STAGE_LOAD;
	cJSON *out = cJSON_CreateObject();

	if (out == NULL)
		return;
	cJSON_AddStringToObject(out, "path", path);
	(void)send_frame(FR_SCAN_BEGIN, path, strlen(path));
	if (wk_plugin_load(path, &host_api, &p, &stage, &err) != OP_OK) {
		cJSON_AddBoolToObject(out, "ok", 0);
		cJSON_AddStringToObject(out, "stage", stage);
		cJSON_AddStringToObject(out, "message", err.msg);
	} else {
		void *state = NULL;
		int irc = OUTPOST_OK;

		W.init_error[0] = '\0';
		if (p.desc.init != NULL) {
			const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(configs, path);
			char *text = cfg ? op_json_print(cfg, false)
					 : strdup("{\"config\":{},\"agent\":{}}");

			irc = text ? p.desc.init(&the_ctx, text, strlen(text), &state)
				   : OUTPOST_ERR_INTERNAL;
			free(text);
			if (irc == OUTPOST_OK && p.desc.shutdown != NULL)
				p.desc.shutdown(state);
		}
		if (irc != OUTPOST_OK) {
			char msg[1536];

			if (W.init_error[0])
				snprintf(msg, sizeof(msg), "plugin %s failed to initialise: %s",
					 p.desc.name, W.init_error);
			else
				snprintf(msg, sizeof(msg),
					 "plugin %s failed to initialise (init returned %d)",
					 p.desc.name, irc);
			cJSON_AddBoolToObject(out, "ok", 0);
			cJSON_AddStringToObject(out, "stage", WK_STAGE_INIT);
			cJSON_AddStringToObject(out, "message", msg);
		} else {
			cJSON_AddBoolToObject(out, "ok", 1);
			cJSON_AddItemToObject(out, "descriptor", wk_plugin_describe(&p));
		}
		wk_plugin_release(&p);
	}
	(void)send_json(FR_SCAN_RESULT, out);
	cJSON_Delete(out);
}

static int scan_mode(const cJSON *scan)
{
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(scan, "files");
	const cJSON *configs = cJSON_GetObjectItemCaseSensitive(scan, "config");
	const cJSON *f;

	cJSON_ArrayForEach(f, files)
	{
		if (cJSON_IsString(f))
			scan_one(f->valuestring, configs);
	}
	return 0;
}

/* ---- main --------------------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: outpost-worker --fd N [LABEL]\n"
			"outpost-worker is started by outpost-agent; it is not meant to be run by hand.\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct op_buf in = OP_BUF_INIT;
	struct sigaction sa;
	cJSON *first = NULL;
	long long fd;
	bool forked = false;
	uint8_t type;
	int rc, st;

	if (argc < 3 || strcmp(argv[1], "--fd") != 0 || op_parse_i64(argv[2], 3, INT_MAX, &fd) < 0)
		return usage();
	W.fd = (int)fd;
	{
		int stype = 0;
		socklen_t sl = sizeof(stype);

		if (getsockopt(W.fd, SOL_SOCKET, SO_TYPE, &stype, &sl) < 0)
			return usage();
	}
	/* A worker never outlives the agent that started it (a kill -9 of the agent included),
	 * nor does what it started. */
	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_agent_gone;
	sigaction(AGENT_GONE_SIGNAL, &sa, NULL);
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, AGENT_GONE_SIGNAL);
	sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);
	/* (An agent gone before this call shows as the end of the socket at the first read.) */
	if (prctl(PR_SET_PDEATHSIG, AGENT_GONE_SIGNAL) < 0)
		return EXIT_AGENT_GONE;
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_sigterm;
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	do {
		rc = fr_read(W.fd, &type, &in);
		if (rc <= 0)
			return rc == 0 ? 0 : EXIT_PROTOCOL;
		first = cJSON_ParseWithLength(in.data, in.len);
		op_buf_release(&in);
		if (first == NULL)
			return EXIT_PROTOCOL;
		if (type == FR_INIT)
			st = task_mode(first);
		else if (forked)
			st = EXIT_PROTOCOL; /* a forked worker takes FR_INIT only */
		else if (type == FR_SCAN)
			st = scan_mode(first);
		else if (type == FR_FORKSRV)
			st = forksrv_mode(first); /* FORKED_CHILD in a child: read its FR_INIT */
		else
			st = EXIT_PROTOCOL;
		cJSON_Delete(first);
		forked = st == FORKED_CHILD;
	} while (forked);
	for (struct secret_copy *s = W.secrets, *next; s; s = next) {
		next = s->next;
		explicit_bzero(s->value, s->len);
		free(s->value);
		free(s);
	}
	if (W.plugin_loaded)
		wk_plugin_release(&W.plugin);
	op_buf_release(&W.call_out);
	/* _exit: a plugin's threads may still run; atexit handlers of its libraries must not. */
	fflush(NULL);
	_exit(st);
}
