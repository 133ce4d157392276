/* SPDX-License-Identifier: Apache-2.0 */
/* The Outpost plugin ABI, major version 1: the only contract between a plugin and the host. */
#ifndef OUTPOST_PLUGIN_H
#define OUTPOST_PLUGIN_H

/*
 * A plugin is a shared object that exports exactly one symbol, OUTPOST_PLUGIN_ENTRY
 * ("outpost_plugin_v1"). The host dlopen()s it (RTLD_NOW | RTLD_LOCAL) inside an
 * `outpost-worker` process, calls the entry with a struct outpost_negotiate, and gets back a
 * descriptor. Everything crosses as plain C: fixed-width integers, NUL-terminated UTF-8
 * strings, and JSON text with a length. No library types cross the boundary.
 *
 * Versioning rules (docs/plugin-abi.md has the full story):
 *  - A new major renames the entry symbol (outpost_plugin_v2); an old plugin then fails at
 *    dlsym with a message that names both versions.
 *  - Minors only append fields at the end of structs. Every struct starts with its size; the
 *    host copies min(size, sizeof) into a zeroed struct, so a plugin built for an older minor
 *    loads with its missing fields read as NULL/0.
 *  - The host refuses a plugin whose abi_minor is newer than its own.
 *  - A plugin that wants a service added in a later minor probes for it with
 *    OUTPOST_HOST_HAS(host, field) before calling it.
 *
 * Memory: nobody frees the other side's memory. Strings the host returns stay valid until
 * the call that received them returns (or, for secret() and workspace(), until the task ends).
 * Strings the plugin passes to the host are copied before the host call returns.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OUTPOST_ABI_MAJOR 1
#define OUTPOST_ABI_MINOR 1
#define OUTPOST_PLUGIN_ENTRY outpost_plugin_v1
#define OUTPOST_PLUGIN_ENTRY_NAME "outpost_plugin_v1"

#if defined(__GNUC__)
#define OUTPOST_EXPORT __attribute__((visibility("default")))
#else
#define OUTPOST_EXPORT
#endif

/* What a plugin callback returns. Append-only. */
enum outpost_rc {
	OUTPOST_OK = 0,
	OUTPOST_ERR_PARAMS = 1,    /* the task's params are invalid: nothing was done */
	OUTPOST_ERR_FAILED = 2,    /* the task ran and failed (an assertion, a remote error) */
	OUTPOST_ERR_CANCELLED = 3, /* the task stopped because it was cancelled */
	OUTPOST_ERR_TIMEOUT = 4,   /* the task's own time limit passed */
	OUTPOST_ERR_INTERNAL = 5,  /* the plugin itself failed (out of memory, a bug) */
	OUTPOST_ERR_DENIED = 6     /* a secret or resource was refused by policy */
};

/* Log levels for host->log(). */
enum outpost_log_level {
	OUTPOST_LOG_ERROR = 0,
	OUTPOST_LOG_WARN = 1,
	OUTPOST_LOG_INFO = 2,
	OUTPOST_LOG_DEBUG = 3
};

/* Streams for host->output(): the task's own output, as a remote command would print it. */
enum outpost_stream {
	OUTPOST_STREAM_STDOUT = 1,
	OUTPOST_STREAM_STDERR = 2
};

/* One call's context: init, validate or execute. Owned by the host. */
typedef struct outpost_ctx outpost_ctx;

/*
 * Services the host offers to a plugin. Valid for the life of the process.
 * Every function is safe to call from the thread that runs the callback; log, output,
 * progress and is_cancelled are also safe from other threads of the plugin.
 */
struct outpost_host_api {
	uint32_t size;      /* sizeof(struct outpost_host_api) as the host was built */
	uint16_t abi_major; /* OUTPOST_ABI_MAJOR of the host */
	uint16_t abi_minor; /* highest minor the host implements */

	/* A log line for the task log. The host redacts secrets and adds timestamps. */
	void (*log)(outpost_ctx *ctx, int level, const char *msg);
	/* Progress of the current task, fraction in [0, 1]; msg may be NULL. */
	void (*progress)(outpost_ctx *ctx, double fraction, const char *msg);
	/* Non-zero once the task has been cancelled or its deadline is near. */
	int (*is_cancelled)(outpost_ctx *ctx);
	/* The task's result, a JSON object. Last call wins. Returns 0, or -1 if not JSON. */
	int (*set_result)(outpost_ctx *ctx, const char *json, size_t len);
	/* A human message saying why the call failed; shown to the user as the task's error. */
	void (*set_error)(outpost_ctx *ctx, const char *msg);
	/* Task output (stdout/stderr of a remote command, say), streamed to the task log. The
	 * host cuts it at the configured limit. Returns 0, or -1 when the output was cut. */
	int (*output)(outpost_ctx *ctx, int stream, const void *data, size_t len);
	/* Creates artifact NAME (a plain file name, no '/') in the task workspace and returns a
	 * file descriptor open for writing in *fd. The plugin closes it. Returns 0 or -1. */
	int (*artifact_open)(outpost_ctx *ctx, const char *name, int *fd);
	/* The value of secret NAME, to be used towards FOR_HOST (a host name, or NULL when the
	 * secret is not sent anywhere). NULL when unknown or refused by the secret's policy;
	 * the reason is logged. The value may hold NUL bytes: *len is its length. */
	const char *(*secret)(outpost_ctx *ctx, const char *name, const char *for_host, size_t *len);
	/* The task workspace: an absolute path, also the worker's working directory. */
	const char *(*workspace)(outpost_ctx *ctx);

	/* ---- ABI 1.1 ---- */

	/* Runs a task of another plugin (a step) through the host and waits for it: in a worker
	 * of its own, with the host's limits and secret policy for TYPE, in this task's
	 * workspace, its log and output streamed into this task's log. Cancelling this task
	 * cancels the step. TYPE and PARAMS (a JSON object, LEN bytes) as a task's; TIMEOUT in
	 * seconds (0: what is left of this task's time). *OUTCOME (valid until the next call or
	 * the task's end, *OUTCOME_LEN bytes) is JSON: {"started": true|false, "status":
	 * "succeeded|failed|invalid|cancelled|timed_out|crashed|load_failed", "error": "..."|null,
	 * "result": {...}|null, "artifacts": [...], "duration": seconds}. Returns 0 when the step
	 * ran, whatever its status; -1 when it could not start ("error" says why: no plugin
	 * serves TYPE, a step calling a step, ...). Probe with OUTPOST_HOST_HAS(host, call). */
	int (*call)(outpost_ctx *ctx, const char *type, const char *params, size_t len,
		    double timeout, const char **outcome, size_t *outcome_len);
	/* A structured record of this task's progress (a JSON object), kept by the control plane
	 * beside the task: the change plugin records each step's start and end. The agent
	 * delivers records in order and durably (its outbox), even after the task's lease was
	 * lost or the agent restarted. Returns 0, or -1 when JSON is not an object. Probe with
	 * OUTPOST_HOST_HAS(host, record). */
	int (*record)(outpost_ctx *ctx, const char *json, size_t len);
};

/* True when the host's API table has FIELD (it was built for a minor that has it). */
#define OUTPOST_HOST_HAS(api, field)                                                          \
	((api) != NULL &&                                                                     \
	 (api)->size >= offsetof(struct outpost_host_api, field) + sizeof((api)->field) &&    \
	 (api)->field != NULL)

/* A task type a plugin serves. */
struct outpost_task_type {
	uint32_t size;             /* sizeof(struct outpost_task_type) */
	const char *name;          /* "<plugin>.<verb>", e.g. "http.request" */
	const char *description;   /* one line */
	const char *params_schema; /* JSON Schema (Outpost's subset, docs/plugin-abi.md) or NULL */
};

/*
 * The plugin's descriptor. Static storage in the plugin; the host copies it.
 *
 * init      once per worker, before any task: CONFIG is JSON
 *           {"config": {...the agent config's plugins.config.NAME...},
 *            "agent": {"proxy": ..., "no_proxy": ..., "ca_file": ...}}.
 *           Sets *state to whatever the plugin wants back in the other callbacks.
 * validate  checks PARAMS for task type TYPE without side effects. The host has already
 *           checked them against the type's params_schema.
 * execute   runs the task, blocking, and reports through the host API.
 * cancel    may be called from another thread while execute runs; must only set a flag or
 *           do something equally async-signal-safe. May be NULL.
 * shutdown  releases STATE. May be NULL.
 */
struct outpost_plugin {
	uint32_t size;      /* sizeof(struct outpost_plugin) as the plugin was built */
	uint16_t abi_major; /* OUTPOST_ABI_MAJOR the plugin was built for */
	uint16_t abi_minor; /* OUTPOST_ABI_MINOR the plugin was built for */
	const char *name;   /* [a-z0-9_-]+, unique among loaded plugins */
	const char *version;
	const char *vendor;
	const char *license;
	const char *description;
	const struct outpost_task_type *types;
	uint32_t n_types;
	int (*init)(outpost_ctx *ctx, const char *config, size_t len, void **state);
	int (*validate)(outpost_ctx *ctx, void *state, const char *type, const char *params,
			size_t len);
	int (*execute)(outpost_ctx *ctx, void *state, const char *type, const char *params,
		       size_t len);
	void (*cancel)(void *state);
	void (*shutdown)(void *state);
};

/* Passed to the entry point. The host fills the first four fields; the plugin sets plugin. */
struct outpost_negotiate {
	uint32_t size;       /* sizeof(struct outpost_negotiate) as the host was built */
	uint16_t host_major; /* OUTPOST_ABI_MAJOR of the host */
	uint16_t host_minor; /* OUTPOST_ABI_MINOR of the host */
	const struct outpost_host_api *host;
	const struct outpost_plugin *plugin; /* out: the plugin's descriptor */
};

/* The entry point's type: returns 0, or non-zero to refuse loading (e.g. a host too old). */
typedef int (*outpost_plugin_entry_fn)(struct outpost_negotiate *negotiate);

/* The smallest descriptor the host accepts: everything up to and including execute. */
#define OUTPOST_PLUGIN_MIN_SIZE                                                               \
	(offsetof(struct outpost_plugin, execute) + sizeof(void (*)(void)))

#if defined(__x86_64__) || defined(__aarch64__)
/* ABI 1.0 and 1.1 layouts, pinned on LP64. A minor may only add fields after the last one. */
_Static_assert(offsetof(struct outpost_host_api, log) == 8, "ABI 1.0 layout");
_Static_assert(offsetof(struct outpost_host_api, workspace) == 72, "ABI 1.0 layout");
_Static_assert(offsetof(struct outpost_host_api, call) == 80, "ABI 1.1 layout");
_Static_assert(offsetof(struct outpost_host_api, record) == 88, "ABI 1.1 layout");
_Static_assert(sizeof(struct outpost_host_api) == 96, "ABI 1.1 layout");
_Static_assert(sizeof(struct outpost_task_type) == 32, "ABI 1.0 layout");
_Static_assert(offsetof(struct outpost_plugin, name) == 8, "ABI 1.0 layout");
_Static_assert(offsetof(struct outpost_plugin, types) == 48, "ABI 1.0 layout");
_Static_assert(offsetof(struct outpost_plugin, init) == 64, "ABI 1.0 layout");
_Static_assert(offsetof(struct outpost_plugin, execute) == 80, "ABI 1.0 layout");
_Static_assert(sizeof(struct outpost_plugin) == 104, "ABI 1.0 layout");
_Static_assert(sizeof(struct outpost_negotiate) == 24, "ABI 1.0 layout");
#endif

#ifdef __cplusplus
}
#endif
#endif /* OUTPOST_PLUGIN_H */
