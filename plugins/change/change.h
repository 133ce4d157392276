/* SPDX-License-Identifier: Apache-2.0 */
/* The change plugin's internals: change type definitions, templates, approvals, local exec. */
#ifndef CHANGE_H
#define CHANGE_H

#include <outpost/sdk.h>

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "op.h"
#include "yamltree.h"

/* ---- settings and state ------------------------------------------------------------------ */

/* What init learned; lives for the worker. */
struct ch_state {
	char *types_dir;    /* the agent's change types (plugins.config.change.types_dir wins) */
	char *bundled_dir;  /* the types installed with the plugin; NULL when turned off */
	char *approval_key; /* PEM public key of the control plane's approval key, or NULL */
	char *agent_id;     /* this agent's id, or NULL (plugin run without --config) */
	char *hostname;
	char *data_dir;     /* per change request directories (backups); NULL: in the workspace */
	char *path;         /* PATH for local commands */
	double kill_grace;  /* SIGTERM to SIGKILL for a local command's process group */
	volatile sig_atomic_t cancelled;
	volatile sig_atomic_t child_pgid; /* the local command running now, or 0 */
};

bool ch_cancelled(outpost_ctx *ctx, struct ch_state *st);

/* ---- definitions (deftype.c) ------------------------------------------------------------- */

enum ch_phase { CH_PRECHECK, CH_APPLY, CH_VERIFY, CH_ROLLBACK, CH_NPHASES };
enum ch_kind { CH_EXEC, CH_SHELL, CH_CALL };

extern const char *const ch_phase_names[CH_NPHASES];

/* One step of a change type, as written (templates not yet rendered). */
struct ch_step {
	int index; /* 1-based, across the phases in order */
	enum ch_phase phase;
	int line;
	char *name;
	char *description; /* NULL when the definition gives none */
	enum ch_kind kind;
	char *type;	    /* CH_CALL: the task type */
	cJSON *exec;	    /* CH_EXEC: array of template strings, or one whole-value template
			     * string; CH_SHELL: the command string */
	cJSON *params;	    /* CH_CALL: the step's params, template strings inside */
	cJSON *env;	    /* object: NAME -> template string, or NULL */
	char *stdin_text;   /* template, or NULL */
	cJSON *timeout;	    /* number of seconds, duration string or whole-value template; NULL */
	cJSON *attempts;    /* integer or whole-value template; NULL: 1 */
	cJSON *interval;    /* as timeout; NULL: 1 s */
	cJSON *exit_codes;  /* array of integers; NULL: [0] */
	cJSON *expect;	    /* array of {"result": path, "<op>": value}; NULL */
	char *when_param;   /* "when: [not] params.NAME": NAME, or NULL */
	bool when_not;
	bool continue_on_error;
};

/* One change type. */
struct ch_type {
	char *name;
	char *description;
	char *file;
	char *digest;	/* "sha256:<hex>" of the canonical JSON of the whole definition */
	cJSON *schema;	/* params_schema, Outpost's subset, with dry_run added */
	struct ch_step *steps;
	size_t n_steps;
};

/* Every change type found, and what was wrong with the files that failed. */
struct ch_catalog {
	struct ch_type *types;
	size_t n;
	struct op_buf errors; /* one line per problem */
	int n_errors;
};

/* Loads the change types of DIRS (NULL entries skipped; a type in a later directory replaces
 * one of the same name from an earlier one). Files that fail are listed in cat->errors.
 * Returns OP_OK, or an error for out of memory. */
op_rc ch_catalog_load(struct ch_catalog *cat, const char *const *dirs, size_t ndirs,
		      struct op_error *err);
/* Loads one definition from TEXT (named FILE). */
op_rc ch_type_parse(const char *file, const char *text, size_t len, struct ch_type *out,
		    struct op_error *err);
const struct ch_type *ch_catalog_find(const struct ch_catalog *cat, const char *name);
void ch_catalog_release(struct ch_catalog *cat);
void ch_type_release(struct ch_type *t);
/* The change.types entry of T: name, description, digest, params_schema, steps, source. */
cJSON *ch_type_describe(const struct ch_type *t);

/* ---- templates (template.c) -------------------------------------------------------------- */

/* Checks the {{ }} references of TEXT against the declared PARAMS (object of param schemas).
 * Returns 0, or -1 with a message in ERR. */
int ch_tpl_check(const char *text, const cJSON *params, char *err, size_t errlen);
/* True when TEXT holds a {{ anywhere. */
bool ch_tpl_has(const char *text);
/* The reference when TEXT is exactly one {{ ref }} (whitespace around allowed), else NULL.
 * Writes into REF. */
const char *ch_tpl_whole(const char *text, char *ref, size_t reflen);
/* Renders TEXT to a string with VARS ({"params", "cr", "workspace", "agent"}). */
int ch_tpl_render(const char *text, const cJSON *vars, struct op_buf *out, char *err,
		  size_t errlen);
/* Renders a template value: a whole-value template keeps the value's JSON type; other
 * strings are rendered as text; objects and arrays are rendered member by member. With
 * OMIT_ABSENT, an object member that is a whole-value reference to an optional parameter
 * that was not given is left out. Returns a new value, or NULL with ERR set. */
cJSON *ch_tpl_value(const cJSON *value, const cJSON *vars, bool omit_absent, char *err,
		    size_t errlen);
/* The value REF names in VARS, or NULL. */
const cJSON *ch_tpl_lookup(const cJSON *vars, const char *ref);
/* Truthiness for "when": absent, null, false, "", 0, [] and {} are false. */
bool ch_truthy(const cJSON *v);

/* ---- approvals (approval.c) -------------------------------------------------------------- */

/* Verifies SIG_B64 over DATA with the PEM public key at KEY_PATH. Returns 0, or -1 with ERR. */
int ch_verify_signature(const char *key_path, const void *data, size_t len, const char *sig_b64,
			char *err, size_t errlen);
/* sha256 of DATA as "sha256:<hex>" into OUT (72 bytes). */
void ch_sha256_tag(const void *data, size_t len, char out[72]);
/* Parses an RFC 3339 time; returns 0 and *epoch, or -1. */
int ch_parse_time(const char *s, double *epoch);
/* The current time as RFC 3339 UTC with milliseconds. */
void ch_format_time(double epoch, char *out, size_t size);
double ch_now(void);
double ch_monotonic(void);

/* ---- local commands (exec.c) ------------------------------------------------------------- */

struct ch_exec_spec {
	char **argv;	    /* argv[0] resolved against PATH unless it holds a '/' */
	char **envp;
	const char *stdin_data; /* NULL: /dev/null */
	size_t stdin_len;
	double timeout; /* seconds; 0: none but the task's own */
	const char *label; /* for messages: "apply step 2 (restart)" */
};

struct ch_exec_result {
	int exit_code; /* -1 when killed by a signal or not started */
	int signal;
	bool timed_out;
	bool cancelled;
	bool started;
	uint64_t output_bytes;
	char output_sha256[72];
	struct op_buf out_cap, err_cap; /* the first ch_capture_limit bytes of each stream */
	char error[512];
};

#define CH_CAPTURE_LIMIT (64 * 1024)

/* Resolves NAME against PATH like execvp. Returns a malloc'ed path, or NULL. */
char *ch_which(const char *name, const char *path);
/* Runs SPEC in a process group of its own, streaming its output to the task log. */
void ch_exec_run(outpost_ctx *ctx, struct ch_state *st, const struct ch_exec_spec *spec,
		 struct ch_exec_result *res);
void ch_exec_result_release(struct ch_exec_result *res);

/* ---- running a change (run.c) ------------------------------------------------------------ */

int ch_apply(outpost_ctx *ctx, struct ch_state *st, const cJSON *params);
int ch_list_types(outpost_ctx *ctx, struct ch_state *st);

#endif
