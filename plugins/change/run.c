/* SPDX-License-Identifier: Apache-2.0 */
/* change.apply and change.types: the approval checked again, then the phases, step by step. */
#include "change.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "canonjson.h"
#include "fsutil.h"
#include "schema.h"

/* What became of one step. */
enum st_status { ST_OK, ST_FAILED, ST_SKIPPED, ST_CANCELLED };

static const char *const status_names[] = {"ok", "failed", "skipped", "cancelled"};

/* One change request being run. */
struct run {
	outpost_ctx *ctx;
	struct ch_state *st;
	const struct ch_type *type;
	const char *cr_id;
	const char *action; /* apply, resume, rollback */
	bool dry_run;
	cJSON *params; /* effective params (defaults applied) */
	cJSON *vars;   /* what templates see */
	cJSON *done;   /* "index:name" of steps recorded as done by an earlier attempt */
	cJSON *steps;  /* the result's step list */
	char cr_dir[PATH_MAX];
	char error[1200]; /* why the step that failed failed */
	int rollback_ran;
};

static void label(const struct ch_step *s, char *out, size_t size)
{
	snprintf(out, size, "%s step %d (%s)", ch_phase_names[s->phase], s->index, s->name);
}

static void add_time(cJSON *o, const char *key, double epoch)
{
	char ts[40];

	ch_format_time(epoch, ts, sizeof(ts));
	cJSON_AddStringToObject(o, key, ts);
}

/* A record's common members: which step, in which action, what happened. */
static cJSON *record_new(const struct run *r, const struct ch_step *s, const char *event)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "index", s->index);
	cJSON_AddStringToObject(o, "phase", ch_phase_names[s->phase]);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddStringToObject(o, "event", event);
	cJSON_AddStringToObject(o, "action", r->action);
	return o;
}

/* Hands REC to the host (kept by the control plane beside the task) and frees it. */
static void record_send(struct run *r, cJSON *rec)
{
	if (rec != NULL && outpost_record(r->ctx, rec) < 0)
		outpost_debug(r->ctx, "this agent keeps no step records (plugin ABI < 1.1)");
	cJSON_Delete(rec);
}

/* ---- rendering --------------------------------------------------------------------------- */

/* A step's rendered form: what it will run, with the params filled in. */
struct rendered {
	char **argv; /* exec, shell */
	size_t argc;
	char **envp;
	size_t envc;
	char *stdin_text;
	cJSON *params; /* call */
	double timeout, interval;
	int attempts;
};

static void rendered_release(struct rendered *x)
{
	for (size_t i = 0; i < x->argc; i++)
		free(x->argv[i]);
	for (size_t i = 0; i < x->envc; i++)
		free(x->envp[i]);
	free(x->argv);
	free(x->envp);
	free(x->stdin_text);
	cJSON_Delete(x->params);
	memset(x, 0, sizeof(*x));
}

static int strv_push(char ***v, size_t *n, char *s)
{
	char **g;

	if (s == NULL)
		return -1;
	g = realloc(*v, (*n + 2) * sizeof(**v));
	if (g == NULL) {
		free(s);
		return -1;
	}
	*v = g;
	g[(*n)++] = s;
	g[*n] = NULL;
	return 0;
}

static char *scalar_text(const cJSON *v)
{
	char *s = NULL;

	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
		struct op_buf b = OP_BUF_INIT;

		if (cJSON_IsBool(v))
			op_buf_puts(&b, cJSON_IsTrue(v) ? "true" : "false");
		else if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15)
			op_buf_printf(&b, "%lld", (long long)v->valuedouble);
		else
			op_buf_printf(&b, "%.17g", v->valuedouble);
		s = op_buf_detach(&b);
	}
	return s;
}

/* Adds the arguments a whole-value template stands for: a list is spliced in, a scalar is
 * one argument. */
static int push_value_args(struct rendered *x, const cJSON *v, const char *ref, char *err,
			   size_t errlen)
{
	const cJSON *a;
	int i = 0;

	if (!cJSON_IsArray(v)) {
		char *s = scalar_text(v);

		if (s == NULL) {
			snprintf(err, errlen, "{{ %s }} is a mapping, not an argument", ref);
			return -1;
		}
		return strv_push(&x->argv, &x->argc, s);
	}
	cJSON_ArrayForEach(a, v)
	{
		char *s = scalar_text(a);

		if (s == NULL) {
			snprintf(err, errlen, "{{ %s }}[%d]: an argument must be text or a number",
				 ref, i);
			return -1;
		}
		if (strv_push(&x->argv, &x->argc, s) < 0)
			return -1;
		i++;
	}
	return 0;
}

/* The argv of a local command: each argument rendered as text, a whole-value list spliced
 * in; a shell step is /bin/sh -c with its command as written. */
static int render_argv(struct run *r, const struct ch_step *s, struct rendered *x, char *err,
		       size_t errlen)
{
	char ref[256];
	const cJSON *a, *v;
	struct op_buf b = OP_BUF_INIT;
	int rc = -1;

	if (s->kind == CH_SHELL) {
		if (strv_push(&x->argv, &x->argc, strdup("/bin/sh")) < 0 ||
		    strv_push(&x->argv, &x->argc, strdup("-c")) < 0 ||
		    strv_push(&x->argv, &x->argc, strdup(s->exec->valuestring)) < 0)
			goto oom;
		return 0;
	}
	if (cJSON_IsString(s->exec)) {
		ch_tpl_whole(s->exec->valuestring, ref, sizeof(ref));
		v = ch_tpl_lookup(r->vars, ref);
		if (v == NULL || cJSON_IsNull(v)) {
			snprintf(err, errlen,
				 "exec: {{ %s }} has no value (the parameter is optional and was not "
				 "given): guard the step with `when: %s`",
				 ref, ref);
			return -1;
		}
		if (push_value_args(x, v, ref, err, errlen) < 0)
			return -1;
	} else {
		cJSON_ArrayForEach(a, s->exec)
		{
			if (ch_tpl_whole(a->valuestring, ref, sizeof(ref)) != NULL &&
			    cJSON_IsArray(ch_tpl_lookup(r->vars, ref))) {
				if (push_value_args(x, ch_tpl_lookup(r->vars, ref), ref, err,
						    errlen) < 0)
					goto out;
				continue;
			}
			if (ch_tpl_render(a->valuestring, r->vars, &b, err, errlen) < 0)
				goto out;
			if (strv_push(&x->argv, &x->argc, strdup(b.data)) < 0)
				goto oom;
		}
	}
	if (x->argc == 0 || x->argv[0][0] == '\0') {
		snprintf(err, errlen, "exec: the command is empty");
		goto out;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	op_buf_release(&b);
	return rc;
}

static int push_env(struct rendered *x, const char *name, const char *value)
{
	struct op_buf b = OP_BUF_INIT;

	if (op_buf_printf(&b, "%s=%s", name, value) < 0) {
		op_buf_release(&b);
		return -1;
	}
	return strv_push(&x->envp, &x->envc, op_buf_detach(&b));
}

/* The environment of a local command: PATH, what the plugin says about the change
 * (OUTPOST_*), every parameter as PARAM_<NAME>, then the step's own env. Nothing else of
 * the agent's environment reaches it. */
static int render_env(struct run *r, const struct ch_step *s, struct rendered *x, char *err,
		      size_t errlen)
{
	const cJSON *p, *e;
	struct op_buf b = OP_BUF_INIT;
	const char *path = r->st->path;
	int rc = -1;

	if (s->env && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(s->env, "PATH")))
		path = NULL; /* the step's own */
	if ((path && push_env(x, "PATH", path) < 0) || push_env(x, "OUTPOST_CR_ID", r->cr_id) < 0 ||
	    push_env(x, "OUTPOST_CHANGE_TYPE", r->type->name) < 0 ||
	    push_env(x, "OUTPOST_ACTION", r->action) < 0 ||
	    push_env(x, "OUTPOST_CR_DIR", r->cr_dir) < 0 ||
	    push_env(x, "OUTPOST_WORKSPACE", outpost_host->workspace(r->ctx)) < 0 ||
	    push_env(x, "OUTPOST_PHASE", ch_phase_names[s->phase]) < 0 ||
	    push_env(x, "OUTPOST_STEP", s->name) < 0)
		goto oom;
	cJSON_ArrayForEach(p, r->params)
	{
		char name[80], *text;

		if (cJSON_IsNull(p))
			continue;
		snprintf(name, sizeof(name), "PARAM_%s", p->string);
		for (char *c = name; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		text = cJSON_IsArray(p) || cJSON_IsObject(p) ? outpost_json_print(p, false)
							       : scalar_text(p);
		if (text == NULL || push_env(x, name, text) < 0) {
			free(text);
			goto oom;
		}
		free(text);
	}
	cJSON_ArrayForEach(e, s->env)
	{
		if (ch_tpl_render(e->valuestring, r->vars, &b, err, errlen) < 0) {
			char inner[600];

			snprintf(inner, sizeof(inner), "%s", err);
			snprintf(err, errlen, "env %s: %s", e->string, inner);
			goto out;
		}
		if (push_env(x, e->string, b.data) < 0)
			goto oom;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	op_buf_release(&b);
	return rc;
}

/* A timeout, interval or count: a literal, or a whole-value template. */
static int render_number(struct run *r, const cJSON *setting, const char *what, bool count,
			 double dflt, double *out, char *err, size_t errlen)
{
	const char *text;
	const cJSON *v;
	char ref[256];
	long long i;
	double d;

	if (setting == NULL) {
		*out = dflt;
		return 0;
	}
	text = setting->valuestring;
	if (ch_tpl_whole(text, ref, sizeof(ref)) != NULL) {
		v = ch_tpl_lookup(r->vars, ref);
		if (cJSON_IsNumber(v) && v->valuedouble > 0 &&
		    (!count || (v->valuedouble == floor(v->valuedouble) && v->valuedouble <= 1000))) {
			*out = v->valuedouble;
			return 0;
		}
		text = cJSON_IsString(v) ? v->valuestring : NULL;
		if (text == NULL) {
			snprintf(err, errlen, "%s: {{ %s }} is not a %s", what, ref,
				 count ? "whole number" : "duration");
			return -1;
		}
	}
	if (count ? op_parse_i64(text, 1, 1000, &i) == 0 : outpost_parse_duration(text, &d) == 0) {
		*out = count ? (double)i : d;
		if (*out > 0)
			return 0;
	}
	snprintf(err, errlen, "%s: \"%s\" is not a %s", what, text,
		 count ? "whole number from 1 to 1000" : "duration such as \"30s\"");
	return -1;
}

/* Renders everything step S needs: its settings, and its argv, env and stdin or its params. */
static int render_step(struct run *r, const struct ch_step *s, struct rendered *x, char *err,
		       size_t errlen)
{
	double attempts;

	memset(x, 0, sizeof(*x));
	if (render_number(r, s->timeout, "timeout", false, 0, &x->timeout, err, errlen) < 0 ||
	    render_number(r, s->interval, "interval", false, 1, &x->interval, err, errlen) < 0 ||
	    render_number(r, s->attempts, "attempts", true, 1, &attempts, err, errlen) < 0)
		return -1;
	x->attempts = (int)attempts;
	if (s->kind == CH_CALL) {
		x->params = ch_tpl_value(s->params, r->vars, true, err, errlen);
		return x->params ? 0 : -1;
	}
	if (render_argv(r, s, x, err, errlen) < 0 || render_env(r, s, x, err, errlen) < 0)
		return -1;
	if (s->stdin_text) {
		struct op_buf b = OP_BUF_INIT;

		if (ch_tpl_render(s->stdin_text, r->vars, &b, err, errlen) < 0) {
			op_buf_release(&b);
			return -1;
		}
		x->stdin_text = op_buf_detach(&b);
		if (x->stdin_text == NULL)
			x->stdin_text = strdup("");
	}
	return 0;
}

/* The command line as a log line: arguments with spaces or quotes are single-quoted. */
static void show_argv(const struct rendered *x, struct op_buf *b)
{
	for (size_t i = 0; i < x->argc; i++) {
		const char *a = x->argv[i];

		if (i)
			op_buf_puts(b, " ");
		if (a[0] != '\0' && strpbrk(a, " \t\n'\"$`\\;&|<>*?()") == NULL) {
			op_buf_printf(b, "%.300s", a);
			continue;
		}
		op_buf_puts(b, "'");
		for (const char *c = a; *c && c - a < 300; c++)
			if (*c == '\'')
				op_buf_puts(b, "'\\''");
			else
				op_buf_append(b, c, 1);
		op_buf_puts(b, "'");
	}
}

/* What the rendered step shows in a dry run and in the result. */
static cJSON *rendered_json(const struct ch_step *s, const struct rendered *x)
{
	cJSON *o = cJSON_CreateObject(), *a;

	if (o == NULL)
		return NULL;
	if (s->kind == CH_CALL) {
		cJSON_AddStringToObject(o, "type", s->type);
		cJSON_AddItemToObject(o, "params", cJSON_Duplicate(x->params, true));
	} else {
		a = cJSON_AddArrayToObject(o, "argv");
		for (size_t i = 0; a && i < x->argc; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(x->argv[i]));
		if (s->env) {
			cJSON *env = cJSON_AddObjectToObject(o, "env");
			const cJSON *e;

			cJSON_ArrayForEach(e, s->env)
			{
				/* the step's own variables, rendered (the last of each name) */
				for (size_t i = x->envc; i-- > 0;) {
					size_t n = strlen(e->string);

					if (strncmp(x->envp[i], e->string, n) == 0 &&
					    x->envp[i][n] == '=') {
						cJSON_AddStringToObject(env, e->string,
									x->envp[i] + n + 1);
						break;
					}
				}
			}
		}
		if (x->stdin_text)
			cJSON_AddNumberToObject(o, "stdin_bytes", (double)strlen(x->stdin_text));
	}
	if (x->timeout > 0)
		cJSON_AddNumberToObject(o, "timeout", x->timeout);
	if (x->attempts > 1)
		cJSON_AddNumberToObject(o, "attempts", x->attempts);
	return o;
}

/* ---- expectations ------------------------------------------------------------------------ */

static bool as_number(const cJSON *v, double *out)
{
	char *end;

	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return true;
	}
	if (cJSON_IsString(v) && v->valuestring[0]) {
		errno = 0;
		*out = strtod(v->valuestring, &end);
		return *end == '\0' && errno == 0 && isfinite(*out);
	}
	return false;
}

/* Equality for expect: JSON equality, or the same text (1 and "1": drivers differ). */
static bool same(const cJSON *a, const cJSON *b)
{
	char *ta, *tb;
	bool eq;

	if (cJSON_Compare(a, b, true))
		return true;
	ta = scalar_text(a);
	tb = scalar_text(b);
	eq = ta && tb && strcmp(ta, tb) == 0;
	free(ta);
	free(tb);
	return eq;
}

static void describe(const cJSON *v, char *out, size_t size)
{
	char *t = v ? outpost_json_print(v, false) : NULL;

	snprintf(out, size, "%.200s%s", t ? t : "absent", t && strlen(t) > 200 ? "..." : "");
	cJSON_free(t);
}

/* Checks RESULT against the step's expect list. Returns 0, or -1 with ERR. */
static int check_expect(struct run *r, const struct ch_step *s, const cJSON *result, char *err,
			size_t errlen)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, s->expect)
	{
		const char *path = cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring;
		const cJSON *actual = ch_tpl_lookup(result, path), *spec = c->child->next;
		const char *op = spec->string;
		cJSON *want = ch_tpl_value(spec, r->vars, false, err, errlen);
		char a[260], w[260];
		double an, wn;
		bool ok = false;

		if (want == NULL)
			return -1;
		describe(actual, a, sizeof(a));
		describe(want, w, sizeof(w));
		if (strcmp(op, "equals") == 0) {
			ok = actual && same(actual, want);
		} else if (strcmp(op, "not_equals") == 0) {
			ok = !(actual && same(actual, want));
		} else if (strcmp(op, "at_least") == 0 || strcmp(op, "at_most") == 0) {
			ok = as_number(actual, &an) && as_number(want, &wn) &&
			     (op[3] == 'l' ? an >= wn : an <= wn);
		} else {
			char *text = scalar_text(actual);
			regex_t rx;

			if (text && cJSON_IsString(want) &&
			    regcomp(&rx, want->valuestring, REG_EXTENDED | REG_NOSUB | REG_NEWLINE) == 0) {
				ok = regexec(&rx, text, 0, NULL, 0) == 0;
				regfree(&rx);
			}
			free(text);
		}
		cJSON_Delete(want);
		if (!ok) {
			snprintf(err, errlen, "expect: result.%s is %s, expected %s %s", path, a,
				 strcmp(op, "equals") == 0	   ? "it to equal"
				 : strcmp(op, "not_equals") == 0 ? "anything but"
				 : strcmp(op, "at_least") == 0	   ? "at least"
				 : strcmp(op, "at_most") == 0	   ? "at most"
								   : "a match for",
				 w);
			return -1;
		}
	}
	return 0;
}

/* ---- running one attempt ----------------------------------------------------------------- */

static bool code_ok(const struct ch_step *s, int code)
{
	const cJSON *c;

	if (s->exit_codes == NULL)
		return code == 0;
	cJSON_ArrayForEach(c, s->exit_codes)
	if ((int)c->valuedouble == code)
		return true;
	return false;
}

/* The last non-empty line of CAP, for messages ("exit status 1: nginx: [emerg] ..."). */
static void last_line(const struct op_buf *cap, char *out, size_t size)
{
	size_t end = cap->len, start;

	out[0] = '\0';
	while (end > 0 && (cap->data[end - 1] == '\n' || cap->data[end - 1] == '\r' ||
			   cap->data[end - 1] == ' '))
		end--;
	for (start = end; start > 0 && cap->data[start - 1] != '\n'; start--)
		;
	if (end > start)
		snprintf(out, size, "%.*s", (int)(end - start > 300 ? 300 : end - start),
			 cap->data + start);
}

/* One attempt of a local command; its exit code and output digest go into REC. */
static enum st_status exec_once(struct run *r, const struct ch_step *s, const struct rendered *x,
				cJSON *rec)
{
	struct ch_exec_spec spec = {0};
	struct ch_exec_result res;
	enum st_status status = ST_FAILED;
	cJSON *result = NULL, *out;
	char lbl[200], tail[320];

	label(s, lbl, sizeof(lbl));
	spec.argv = x->argv;
	spec.envp = x->envp;
	spec.stdin_data = x->stdin_text;
	spec.stdin_len = x->stdin_text ? strlen(x->stdin_text) : 0;
	spec.timeout = x->timeout;
	spec.label = lbl;
	ch_exec_run(r->ctx, r->st, &spec, &res);
	cJSON_DeleteItemFromObjectCaseSensitive(rec, "exit_code");
	cJSON_DeleteItemFromObjectCaseSensitive(rec, "output");
	if (res.started) {
		if (res.signal == 0 && !res.cancelled && !res.timed_out)
			cJSON_AddNumberToObject(rec, "exit_code", res.exit_code);
		out = cJSON_AddObjectToObject(rec, "output");
		cJSON_AddStringToObject(out, "sha256", res.output_sha256);
		cJSON_AddNumberToObject(out, "bytes", (double)res.output_bytes);
	}
	last_line(res.err_cap.len ? &res.err_cap : &res.out_cap, tail, sizeof(tail));
	if (res.cancelled) {
		status = ST_CANCELLED;
		snprintf(r->error, sizeof(r->error), "%s", res.error);
	} else if (!res.started || res.timed_out || res.signal) {
		snprintf(r->error, sizeof(r->error), "%s", res.error);
	} else if (!code_ok(s, res.exit_code)) {
		snprintf(r->error, sizeof(r->error), "exit status %d%s%s", res.exit_code,
			 tail[0] ? ": " : "", tail);
	} else if (s->expect) {
		result = cJSON_CreateObject();
		cJSON_AddNumberToObject(result, "exit_code", res.exit_code);
		cJSON_AddStringToObject(result, "stdout", res.out_cap.data ? res.out_cap.data : "");
		cJSON_AddStringToObject(result, "stderr", res.err_cap.data ? res.err_cap.data : "");
		if (check_expect(r, s, result, r->error, sizeof(r->error)) == 0)
			status = ST_OK;
	} else {
		status = ST_OK;
	}
	cJSON_Delete(result);
	ch_exec_result_release(&res);
	return status;
}

/* One attempt of a task step through the host; its status and result digest go into REC,
 * its result (when small) into *RESULT_OUT. */
static enum st_status call_once(struct run *r, const struct ch_step *s, const struct rendered *x,
				cJSON *rec, cJSON **result_out)
{
	cJSON *outcome = NULL, *out;
	const cJSON *result;
	const char *status, *error;
	struct op_buf canon = OP_BUF_INIT;
	enum st_status rc = ST_FAILED;
	char tag[72];

	cJSON_DeleteItemFromObjectCaseSensitive(rec, "step_status");
	cJSON_DeleteItemFromObjectCaseSensitive(rec, "output");
	if (outpost_call(r->ctx, s->type, x->params, x->timeout, &outcome) < 0) {
		error = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(outcome, "error"));
		snprintf(r->error, sizeof(r->error), "%s could not start: %s", s->type,
			 error ? error : "this agent cannot run steps (plugin ABI < 1.1)");
		goto out;
	}
	status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(outcome, "status"));
	error = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(outcome, "error"));
	result = cJSON_GetObjectItemCaseSensitive(outcome, "result");
	cJSON_AddStringToObject(rec, "step_status", status ? status : "?");
	if (result != NULL && !cJSON_IsNull(result) && op_json_canonical(result, &canon) == 0) {
		ch_sha256_tag(canon.data, canon.len, tag);
		out = cJSON_AddObjectToObject(rec, "output");
		cJSON_AddStringToObject(out, "sha256", tag);
		cJSON_AddNumberToObject(out, "bytes", (double)canon.len);
		if (result_out && canon.len <= 4096) {
			cJSON_Delete(*result_out);
			*result_out = cJSON_Duplicate(result, true);
		}
	}
	if (status == NULL || strcmp(status, "succeeded") != 0) {
		if (status && strcmp(status, "cancelled") == 0 && ch_cancelled(r->ctx, r->st))
			rc = ST_CANCELLED;
		snprintf(r->error, sizeof(r->error), "%s %s%s%s", s->type, status ? status : "failed",
			 error ? ": " : "", error ? error : "");
		goto out;
	}
	if (s->expect && check_expect(r, s, result, r->error, sizeof(r->error)) < 0)
		goto out;
	rc = ST_OK;
out:
	op_buf_release(&canon);
	cJSON_Delete(outcome);
	return rc;
}

/* Sleeps SECS unless the task is cancelled first. */
static bool pause_for(struct run *r, double secs)
{
	double until = ch_monotonic() + secs;

	while (ch_monotonic() < until) {
		struct timespec ts = {0, 50 * 1000 * 1000};

		if (ch_cancelled(r->ctx, r->st))
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

/* ---- one step ---------------------------------------------------------------------------- */

static bool recorded_done(const struct run *r, const struct ch_step *s)
{
	char key[200];

	snprintf(key, sizeof(key), "%d:%s", s->index, s->name);
	return cJSON_GetObjectItemCaseSensitive(r->done, key) != NULL;
}

/* Runs (or, in a dry run, renders) step S, records its start and end, and adds it to the
 * result. Returns what became of it; r->error says why when it failed. */
static enum st_status run_step(struct run *r, const struct ch_step *s)
{
	struct rendered x = {0};
	enum st_status status = ST_FAILED;
	cJSON *rec = NULL, *entry, *result = NULL;
	double started, t0;
	char lbl[200], err[900], ts[40];
	const cJSON *w;
	int attempt = 0;

	label(s, lbl, sizeof(lbl));
	r->error[0] = '\0';
	w = s->when_param ? cJSON_GetObjectItemCaseSensitive(r->params, s->when_param) : NULL;
	if (!r->dry_run && recorded_done(r, s)) {
		outpost_info(r->ctx, "%s: done in an earlier attempt, skipped", lbl);
		rec = record_new(r, s, "end");
		cJSON_AddStringToObject(rec, "status", "skipped");
		cJSON_AddStringToObject(rec, "reason", "recorded as done by an earlier attempt");
		add_time(rec, "at", ch_now());
		status = ST_SKIPPED;
		goto out;
	}
	if (s->when_param && ch_truthy(w) == s->when_not) {
		snprintf(err, sizeof(err), "when: %sparams.%s (it is %s)", s->when_not ? "not " : "",
			 s->when_param, s->when_not ? "set" : "not set");
		outpost_info(r->ctx, "%s: skipped: %s", lbl, err);
		rec = record_new(r, s, r->dry_run ? "dry_run" : "end");
		cJSON_AddStringToObject(rec, "status", "skipped");
		cJSON_AddStringToObject(rec, "reason", err);
		add_time(rec, "at", ch_now());
		status = ST_SKIPPED;
		goto out;
	}
	if (render_step(r, s, &x, err, sizeof(err)) < 0) {
		snprintf(r->error, sizeof(r->error), "%s", err);
		outpost_error(r->ctx, "%s: %s", lbl, err);
		rec = record_new(r, s, r->dry_run ? "dry_run" : "end");
		cJSON_AddStringToObject(rec, "status", r->dry_run ? "invalid" : "failed");
		cJSON_AddStringToObject(rec, "error", err);
		add_time(rec, "at", ch_now());
		goto out;
	}
	if (r->dry_run) {
		char *path = s->kind == CH_CALL ? NULL : ch_which(x.argv[0], r->st->path);

		rec = record_new(r, s, "dry_run");
		add_time(rec, "at", ch_now());
		cJSON_AddItemToObject(rec, "would_run", rendered_json(s, &x));
		if (s->kind != CH_CALL && path == NULL) {
			snprintf(r->error, sizeof(r->error), "exec: %s: %s", x.argv[0],
				 strchr(x.argv[0], '/') ? "no such executable file"
							: "command not found in PATH");
			cJSON_AddStringToObject(rec, "status", "invalid");
			cJSON_AddStringToObject(rec, "error", r->error);
			outpost_error(r->ctx, "%s: %s", lbl, r->error);
		} else {
			cJSON_AddStringToObject(rec, "status", "ok");
			outpost_info(r->ctx, "%s: would run %s", lbl,
				     s->kind == CH_CALL ? s->type : x.argv[0]);
			status = ST_OK;
		}
		free(path);
		goto out;
	}
	/* start */
	started = ch_now();
	t0 = ch_monotonic();
	rec = record_new(r, s, "start");
	cJSON_AddStringToObject(rec, "kind", s->kind == CH_CALL ? s->type
					     : s->kind == CH_SHELL ? "shell"
								   : "exec");
	add_time(rec, "at", started);
	record_send(r, rec);
	if (s->kind == CH_CALL) {
		outpost_info(r->ctx, "%s: %s", lbl, s->type);
	} else {
		struct op_buf shown = OP_BUF_INIT;

		show_argv(&x, &shown);
		outpost_info(r->ctx, "%s: %s", lbl, shown.data ? shown.data : "");
		op_buf_release(&shown);
	}
	rec = record_new(r, s, "end");
	cJSON_AddStringToObject(rec, "status", "running"); /* set below, kept in this place */
	for (attempt = 1; attempt <= x.attempts; attempt++) {
		status = s->kind == CH_CALL ? call_once(r, s, &x, rec, &result)
					    : exec_once(r, s, &x, rec);
		if (status != ST_FAILED || attempt == x.attempts)
			break;
		outpost_info(r->ctx, "%s: attempt %d of %d failed: %s; again in %gs", lbl, attempt,
			     x.attempts, r->error, x.interval);
		if (!pause_for(r, x.interval)) {
			status = ST_CANCELLED;
			snprintf(r->error, sizeof(r->error), "cancelled");
			break;
		}
	}
	cJSON_ReplaceItemInObjectCaseSensitive(rec, "status", cJSON_CreateString(status_names[status]));
	ch_format_time(ch_now(), ts, sizeof(ts));
	cJSON_AddStringToObject(rec, "at", ts);
	add_time(rec, "started_at", started);
	cJSON_AddNumberToObject(rec, "duration", floor((ch_monotonic() - t0) * 1000) / 1000);
	cJSON_AddNumberToObject(rec, "attempts", attempt > x.attempts ? x.attempts : attempt);
	if (status != ST_OK)
		cJSON_AddStringToObject(rec, "error", r->error);
	if (status == ST_OK)
		outpost_info(r->ctx, "%s: ok", lbl);
	else
		outpost_error(r->ctx, "%s: %s", lbl, r->error);
out:
	entry = cJSON_Duplicate(rec, true);
	if (entry != NULL) {
		cJSON_DeleteItemFromObjectCaseSensitive(entry, "event");
		if (result)
			cJSON_AddItemToObject(entry, "result", cJSON_Duplicate(result, true));
		cJSON_AddItemToArray(r->steps, entry);
	}
	record_send(r, rec);
	cJSON_Delete(result);
	rendered_release(&x);
	return status;
}

/* Runs the steps of phase PH in order; stops at the first failure unless the step may fail.
 * Returns the failing step, or NULL when the phase went through. *CANCELLED is set when the
 * task was cancelled. */
static const struct ch_step *run_phase(struct run *r, enum ch_phase ph, bool *cancelled,
				       char *why, size_t whylen)
{
	const struct ch_step *failed = NULL;
	char lbl[200];

	for (size_t i = 0; i < r->type->n_steps; i++) {
		const struct ch_step *s = &r->type->steps[i];
		enum st_status st;

		if (s->phase != ph)
			continue;
		label(s, lbl, sizeof(lbl));
		if (!r->dry_run && ch_cancelled(r->ctx, r->st)) {
			*cancelled = true;
			snprintf(why, whylen, "cancelled before %s", lbl);
			return s;
		}
		st = run_step(r, s);
		if (ph == CH_ROLLBACK && !r->dry_run && (st == ST_OK || st == ST_FAILED))
			r->rollback_ran++;
		if (st == ST_CANCELLED) {
			*cancelled = true;
			snprintf(why, whylen, "%s: %s", lbl, r->error);
			return s;
		}
		if (st != ST_FAILED)
			continue;
		if (s->continue_on_error && !r->dry_run) {
			outpost_warn(r->ctx, "%s failed; continuing (continue_on_error)", lbl);
			continue;
		}
		if (failed == NULL) {
			failed = s;
			snprintf(why, whylen, r->dry_run ? "%s: %s" : "%s failed: %s", lbl, r->error);
		}
		if (!r->dry_run)
			return failed;
	}
	return failed;
}

/* ---- the approval, checked again in the plugin ------------------------------------------- */

static const char *jstr(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Checks the signed approval against this agent, the task and the local definition
 * (decisions.md 14). Returns 0, or -1 with the reason in WHY. */
static int approval_check(struct run *r, const cJSON *task, const struct ch_catalog *cat,
			  char *why, size_t whylen)
{
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(task, "change_request");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(cr, "payload");
	const cJSON *approvers = cJSON_GetObjectItemCaseSensitive(payload, "approvers"), *a;
	const char *sig = jstr(cr, "signature"), *target, *ctype, *digest;
	struct op_buf canon = OP_BUF_INIT;
	double not_after;
	int rc = -1;

	if (!cJSON_IsObject(payload) || sig == NULL) {
		snprintf(why, whylen,
			 "the task carries no signed approval (change_request.payload and "
			 ".signature): change.apply runs only change requests approved on the "
			 "control plane");
		goto out;
	}
	if (r->st->approval_key == NULL) {
		snprintf(why, whylen,
			 "there is no approval key to check the signature with: this agent is not "
			 "enrolled (its approval.pem is missing) and plugins.config.change."
			 "approval_key is not set");
		goto out;
	}
	if (op_json_canonical(payload, &canon) < 0) {
		snprintf(why, whylen, "the approval cannot be put in canonical form");
		goto out;
	}
	if (ch_verify_signature(r->st->approval_key, canon.data, canon.len, sig, why, whylen) < 0)
		goto out;
	target = jstr(payload, "target_agent_id");
	if (r->st->agent_id == NULL) {
		snprintf(why, whylen,
			 "this agent's id is unknown (not enrolled, or plugin run without "
			 "--config), so the change request's target (%s) cannot be checked",
			 target ? target : "none");
		goto out;
	}
	if (target == NULL || strcmp(target, r->st->agent_id) != 0) {
		snprintf(why, whylen,
			 "change request %s targets agent %s, but this is agent %s (%s): it runs "
			 "only on its target",
			 jstr(payload, "cr_id") ? jstr(payload, "cr_id") : "?", target ? target : "none",
			 r->st->agent_id, r->st->hostname ? r->st->hostname : "?");
		goto out;
	}
	if (jstr(payload, "cr_id") == NULL || strcmp(jstr(payload, "cr_id"), r->cr_id) != 0) {
		snprintf(why, whylen, "the approval is for change request %s, the task is for %s",
			 jstr(payload, "cr_id") ? jstr(payload, "cr_id") : "none", r->cr_id);
		goto out;
	}
	ctype = jstr(payload, "change_type");
	if (ctype == NULL || strcmp(ctype, jstr(task, "change_type")) != 0) {
		snprintf(why, whylen, "the approval is for change type %s, the task asks for %s",
			 ctype ? ctype : "none", jstr(task, "change_type"));
		goto out;
	}
	if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(payload, "params"),
			   cJSON_GetObjectItemCaseSensitive(task, "params"), true)) {
		snprintf(why, whylen, "the task's parameters differ from the approved ones");
		goto out;
	}
	if (!cJSON_IsArray(approvers) || cJSON_GetArraySize(approvers) == 0) {
		snprintf(why, whylen, "the approval names no approvers");
		goto out;
	}
	cJSON_ArrayForEach(a, approvers)
	if (!cJSON_IsString(a) || a->valuestring[0] == '\0') {
		snprintf(why, whylen, "the approval's approvers are not names");
		goto out;
	}
	if (ch_parse_time(jstr(payload, "not_after"), &not_after) < 0) {
		snprintf(why, whylen, "the approval has no valid not_after");
		goto out;
	}
	if (not_after < ch_now()) {
		snprintf(why, whylen, "the approval expired at %s: approve the change again",
			 jstr(payload, "not_after"));
		goto out;
	}
	r->type = ch_catalog_find(cat, ctype);
	if (r->type == NULL) {
		snprintf(why, whylen, "this agent has no change type \"%s\"%s%s", ctype,
			 cat->n_errors ? "; some definitions failed to load: " : "",
			 cat->n_errors ? cat->errors.data : "");
		goto out;
	}
	digest = jstr(payload, "definition_digest");
	if (digest == NULL || strcmp(digest, r->type->digest) != 0) {
		snprintf(why, whylen,
			 "the definition of change type %s on this agent (%s, %s) is not the one "
			 "that was approved (%s): it changed since; create a new change request",
			 ctype, r->type->file, r->type->digest, digest ? digest : "none");
		goto out;
	}
	rc = 0;
out:
	op_buf_release(&canon);
	return rc;
}

/* Steps an earlier attempt recorded as done: "index:name" keys. For a rollback, only
 * rollback steps of an earlier rollback count. */
static cJSON *done_steps(const cJSON *records, bool rollback)
{
	cJSON *done = cJSON_CreateObject();
	const cJSON *rec;

	cJSON_ArrayForEach(rec, records)
	{
		const char *ev = jstr(rec, "event"), *status = jstr(rec, "status");
		const char *action = jstr(rec, "action"), *name = jstr(rec, "name");
		const cJSON *idx = cJSON_GetObjectItemCaseSensitive(rec, "index");
		char key[200];

		if (ev == NULL || strcmp(ev, "end") != 0 || status == NULL || name == NULL ||
		    !cJSON_IsNumber(idx) ||
		    (strcmp(status, "ok") != 0 && strcmp(status, "skipped") != 0))
			continue;
		if (rollback != (action != NULL && strcmp(action, "rollback") == 0))
			continue;
		snprintf(key, sizeof(key), "%d:%s", (int)idx->valuedouble, name);
		if (done && cJSON_GetObjectItemCaseSensitive(done, key) == NULL)
			cJSON_AddTrueToObject(done, key);
	}
	return done;
}

static void refuse_record(outpost_ctx *ctx, const char *action, const char *why)
{
	cJSON *rec = cJSON_CreateObject();

	if (rec == NULL)
		return;
	cJSON_AddStringToObject(rec, "event", "refused");
	cJSON_AddStringToObject(rec, "action", action);
	cJSON_AddStringToObject(rec, "reason", why);
	add_time(rec, "at", ch_now());
	(void)outpost_record(ctx, rec);
	cJSON_Delete(rec);
}

/* The per change request directory ({{ cr.dir }}): survives across leases (backups). */
static int cr_dir(struct run *r, bool create, char *why, size_t whylen)
{
	struct op_error err = {0};
	char base[PATH_MAX];

	if (r->st->data_dir)
		snprintf(base, sizeof(base), "%s", r->st->data_dir);
	else
		snprintf(base, sizeof(base), "%s/changes", outpost_host->workspace(r->ctx));
	if (op_snprintf(r->cr_dir, sizeof(r->cr_dir), "%s/%s", base, r->cr_id) < 0) {
		snprintf(why, whylen, "the change request directory's path is too long");
		return -1;
	}
	if (create && op_mkdir_p(r->cr_dir, 0700, &err) != OP_OK) {
		snprintf(why, whylen, "cannot create the change request directory: %s", err.msg);
		return -1;
	}
	return 0;
}

/* What templates see: params, cr, workspace, agent. */
static cJSON *make_vars(struct run *r)
{
	cJSON *v = cJSON_CreateObject(), *cr, *agent;

	if (v == NULL)
		return NULL;
	cJSON_AddItemToObject(v, "params", cJSON_Duplicate(r->params, true));
	cr = cJSON_AddObjectToObject(v, "cr");
	cJSON_AddStringToObject(cr, "id", r->cr_id);
	cJSON_AddStringToObject(cr, "change_type", r->type->name);
	cJSON_AddStringToObject(cr, "action", r->action);
	cJSON_AddStringToObject(cr, "dir", r->cr_dir);
	cJSON_AddStringToObject(v, "workspace", outpost_host->workspace(r->ctx));
	agent = cJSON_AddObjectToObject(v, "agent");
	cJSON_AddStringToObject(agent, "id", r->st->agent_id ? r->st->agent_id : "");
	cJSON_AddStringToObject(agent, "hostname", r->st->hostname ? r->st->hostname : "");
	return v;
}

/* Where change types come from: the bundled ones first, the agent's own replace them. */
static void dirs_of(const struct ch_state *st, const char **dirs)
{
	dirs[0] = st->bundled_dir;
	dirs[1] = st->types_dir;
}

/* change.apply: the approval checked, then the phases for the action asked (apply, resume,
 * rollback) or a dry run; the result lists every step, the records went out as it ran. */
int ch_apply(outpost_ctx *ctx, struct ch_state *st, const cJSON *task)
{
	struct run r = {0};
	struct ch_catalog cat = {0};
	struct op_error err = {0};
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(task, "change_request");
	const char *dirs[2], *outcome = "succeeded";
	const struct ch_step *failed;
	cJSON *result = NULL;
	char why[2048], msg[3000] = "";
	bool cancelled = false, ok;
	int rc = OUTPOST_ERR_INTERNAL;

	r.ctx = ctx;
	r.st = st;
	r.cr_id = jstr(task, "cr_id");
	r.action = jstr(cr, "action") ? jstr(cr, "action") : "apply";
	r.steps = cJSON_CreateArray();
	result = cJSON_CreateObject();
	if (r.steps == NULL || result == NULL)
		goto out;
	cJSON_AddStringToObject(result, "cr_id", r.cr_id);
	cJSON_AddStringToObject(result, "change_type", jstr(task, "change_type"));
	cJSON_AddStringToObject(result, "action", r.action);
	dirs_of(st, dirs);
	if (ch_catalog_load(&cat, dirs, 2, &err) != OP_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "%s", err.msg);
		goto out;
	}
	if (strcmp(r.action, "apply") != 0 && strcmp(r.action, "resume") != 0 &&
	    strcmp(r.action, "rollback") != 0) {
		snprintf(why, sizeof(why), "unknown action \"%s\" (apply, resume or rollback)",
			 r.action);
		goto refused;
	}
	if (approval_check(&r, task, &cat, why, sizeof(why)) < 0)
		goto refused;
	r.params = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(task, "params"), true);
	if (r.params == NULL)
		goto out;
	if (op_schema_validate(r.type->schema, r.params, "params", why, sizeof(why)) < 0)
		goto refused;
	if (op_schema_apply_defaults(r.type->schema, r.params) < 0)
		goto out;
	r.dry_run = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.params, "dry_run"));
	if (cr_dir(&r, !r.dry_run, why, sizeof(why)) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s", why);
		goto out;
	}
	r.vars = make_vars(&r);
	r.done = strcmp(r.action, "apply") == 0
			 ? cJSON_CreateObject()
			 : done_steps(cJSON_GetObjectItemCaseSensitive(cr, "steps"),
				      strcmp(r.action, "rollback") == 0);
	if (r.vars == NULL || r.done == NULL)
		goto out;
	cJSON_AddStringToObject(result, "digest", r.type->digest);
	cJSON_AddBoolToObject(result, "dry_run", r.dry_run);
	outpost_info(ctx, "change request %s: %s%s (%s), %s", r.cr_id, r.type->name,
		     r.dry_run ? " dry run" : "", r.type->digest, r.action);
	why[0] = '\0';
	if (r.dry_run) {
		/* every step of every phase rendered and checked; nothing runs */
		for (int ph = 0; ph < CH_NPHASES; ph++) {
			char one[1200];

			failed = run_phase(&r, (enum ch_phase)ph, &cancelled, one, sizeof(one));
			if (failed && why[0] == '\0')
				snprintf(why, sizeof(why), "%s", one);
		}
		outcome = why[0] ? "invalid" : "dry_run";
		if (why[0])
			snprintf(msg, sizeof(msg), "dry run: %s", why);
		goto done;
	}
	if (strcmp(r.action, "rollback") == 0) {
		failed = run_phase(&r, CH_ROLLBACK, &cancelled, why, sizeof(why));
		outcome = cancelled ? "cancelled" : failed ? "rollback_failed" : "rolled_back";
		if (cancelled)
			snprintf(msg, sizeof(msg), "rollback %s", why);
		else if (failed)
			snprintf(msg, sizeof(msg), "rollback: %s: the host needs attention", why);
		else
			msg[0] = '\0';
		goto done;
	}
	failed = run_phase(&r, CH_PRECHECK, &cancelled, why, sizeof(why));
	if (failed && !cancelled) {
		outcome = "precheck_failed";
		snprintf(msg, sizeof(msg), "%s: nothing was changed", why);
		goto done;
	}
	if (!failed)
		failed = run_phase(&r, CH_APPLY, &cancelled, why, sizeof(why));
	if (!failed)
		failed = run_phase(&r, CH_VERIFY, &cancelled, why, sizeof(why));
	if (cancelled) {
		outcome = "cancelled";
		snprintf(msg, sizeof(msg), "%s: the change is incomplete and was not rolled back",
			 why);
	} else if (failed) {
		char rwhy[1200];
		bool rcancel = false;
		const struct ch_step *rfailed;
		int n_rollback = 0;

		for (size_t i = 0; i < r.type->n_steps; i++)
			n_rollback += r.type->steps[i].phase == CH_ROLLBACK;
		if (n_rollback == 0) {
			outcome = "failed";
			snprintf(msg, sizeof(msg), "%s; change type %s has no rollback steps", why,
				 r.type->name);
			goto done;
		}
		outpost_warn(ctx, "%s: rolling back", why);
		rfailed = run_phase(&r, CH_ROLLBACK, &rcancel, rwhy, sizeof(rwhy));
		if (rcancel) {
			outcome = "cancelled";
			snprintf(msg, sizeof(msg), "%s; the rollback was cancelled (%s)", why, rwhy);
		} else if (rfailed) {
			outcome = "rollback_failed";
			snprintf(msg, sizeof(msg), "%s; rollback: %s: the host needs attention", why,
				 rwhy);
		} else if (r.rollback_ran == 0) {
			outcome = "failed";
			snprintf(msg, sizeof(msg),
				 "%s; no rollback step applies to these parameters: nothing was "
				 "rolled back",
				 why);
		} else {
			outcome = "rolled_back";
			snprintf(msg, sizeof(msg), "%s; rolled back (%d rollback step%s ran)", why,
				 r.rollback_ran, r.rollback_ran == 1 ? "" : "s");
		}
	}
done:
	ok = strcmp(outcome, "succeeded") == 0 || strcmp(outcome, "dry_run") == 0 ||
	     (strcmp(outcome, "rolled_back") == 0 && strcmp(r.action, "rollback") == 0);
	cJSON_AddStringToObject(result, "outcome", outcome);
	if (!ok)
		cJSON_AddStringToObject(result, "error", msg);
	cJSON_AddItemToObject(result, "steps", r.steps);
	r.steps = NULL;
	outpost_set_result(ctx, result);
	if (ok) {
		outpost_info(ctx, "change request %s: %s", r.cr_id, outcome);
		rc = OUTPOST_OK;
	} else if (strcmp(outcome, "cancelled") == 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_CANCELLED, "%s", msg);
	} else {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s", msg);
	}
	goto out;
refused:
	outpost_error(ctx, "change request %s refused: %s", r.cr_id ? r.cr_id : "?", why);
	refuse_record(ctx, r.action, why);
	cJSON_AddStringToObject(result, "outcome", "refused");
	cJSON_AddStringToObject(result, "error", why);
	outpost_set_result(ctx, result);
	rc = outpost_fail(ctx, OUTPOST_ERR_DENIED, "change request %s refused: %s",
			  r.cr_id ? r.cr_id : "?", why);
out:
	cJSON_Delete(result);
	cJSON_Delete(r.steps);
	cJSON_Delete(r.params);
	cJSON_Delete(r.vars);
	cJSON_Delete(r.done);
	ch_catalog_release(&cat);
	return rc;
}

/* change.types: every type that loads; the task fails when a definition does not. */
int ch_list_types(outpost_ctx *ctx, struct ch_state *st)
{
	struct ch_catalog cat = {0};
	struct op_error err = {0};
	const char *dirs[2];
	cJSON *result = cJSON_CreateObject(), *list;
	int rc = OUTPOST_OK;

	dirs_of(st, dirs);
	if (result == NULL || ch_catalog_load(&cat, dirs, 2, &err) != OP_OK) {
		cJSON_Delete(result);
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "%s", err.msg[0] ? err.msg : "out of memory");
	}
	list = cJSON_AddArrayToObject(result, "change_types");
	for (size_t i = 0; list && i < cat.n; i++) {
		cJSON_AddItemToArray(list, ch_type_describe(&cat.types[i]));
		outpost_info(ctx, "change type %s (%s) from %s", cat.types[i].name,
			     cat.types[i].digest, cat.types[i].file);
	}
	if (cat.n_errors) {
		cJSON *errs = cJSON_AddArrayToObject(result, "errors");
		char *copy = strdup(cat.errors.data), *save = NULL;

		for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
		     l = strtok_r(NULL, "\n", &save)) {
			cJSON_AddItemToArray(errs, cJSON_CreateString(l));
			outpost_error(ctx, "%s", l);
		}
		free(copy);
		if (cat.n_errors == 1)
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s", cat.errors.data);
		else
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "%d problems with change type definitions (the result lists "
					  "them all); the first: %.*s",
					  cat.n_errors, (int)strcspn(cat.errors.data, "\n"),
					  cat.errors.data);
	}
	outpost_set_result(ctx, result);
	cJSON_Delete(result);
	ch_catalog_release(&cat);
	return rc;
}
