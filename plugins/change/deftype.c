/* SPDX-License-Identifier: Apache-2.0 */
/* Change type definitions: YAML files loaded, checked with file:line errors, and digested. */
#include "change.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "canonjson.h"
#include "fsutil.h"
#include "schema.h"

const char *const ch_phase_names[CH_NPHASES] = {"precheck", "apply", "verify", "rollback"};

static const char *const top_keys[] = {"name",	  "description", "params", "precheck",
				       "apply",	  "verify",	 "rollback"};
static const char *const step_keys[] = {"name",	    "description", "when",	 "exec",
					"shell",    "type",	   "params",	 "env",
					"stdin",    "timeout",	   "attempts",	 "interval",
					"exit_codes", "expect",	   "continue_on_error"};
static const char *const expect_ops[] = {"equals", "not_equals", "at_least", "at_most",
					 "matches"};

#define MAX_DEF_BYTES (1024 * 1024)

/* The parse of one file: where errors go and what has been declared so far. */
struct parse {
	const char *file;
	struct op_error *err;
	const cJSON *params; /* declared params: name -> schema */
	struct ch_type *t;
};

static op_rc perr(struct parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Sets the error "FILE:LINE: message". */
static op_rc perr(struct parse *p, int line, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return op_fail(p->err, OP_EINVAL, "%s:%d: %s", p->file, line, msg);
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static void join_list(const char *const *list, size_t n, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strncat(out, ", ", size - strlen(out) - 1);
		strncat(out, list[i], size - strlen(out) - 1);
	}
}

static bool matches(const char *s, const char *re)
{
	regex_t rx;
	bool ok;

	if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
		return false;
	ok = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return ok;
}

/* The text of scalar N, or NULL. */
static const char *ytext(const struct op_ynode *n)
{
	return n != NULL && n->kind == OP_Y_SCALAR ? n->value : NULL;
}

static int key_line(const struct op_ynode *map, const char *key)
{
	for (size_t i = 0; map && i < map->n; i++)
		if (strcmp(map->keys[i], key) == 0)
			return map->key_lines[i];
	return map ? map->line : 1;
}

/* A boolean scalar: 1 true, 0 false, -1 not a boolean. */
static int ybool(const struct op_ynode *n)
{
	const char *v = ytext(n);

	if (v == NULL || n->quoted)
		return -1;
	if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "True") == 0)
		return 1;
	if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "False") == 0)
		return 0;
	return -1;
}

/* Checks the templates of one string of step STEP; WHAT names where it is ("exec[1]"). */
static op_rc check_tpl(struct parse *p, int line, const char *step, const char *what,
		       const char *text)
{
	char msg[600];

	if (ch_tpl_check(text, p->params, msg, sizeof(msg)) < 0)
		return perr(p, line, "step \"%s\": %s: %s", step, what, msg);
	return OP_OK;
}

/* Checks every string inside V (step params, expect values) for templates. */
static op_rc check_tpl_tree(struct parse *p, int line, const char *step, const char *what,
			    const cJSON *v)
{
	const cJSON *c;
	op_rc rc;

	if (cJSON_IsString(v))
		return check_tpl(p, line, step, what, v->valuestring);
	cJSON_ArrayForEach(c, v)
	{
		rc = check_tpl_tree(p, line, step, what, c);
		if (rc != OP_OK)
			return rc;
	}
	return OP_OK;
}

/* ---- params ------------------------------------------------------------------------------ */

/* Builds the type's params_schema from its `params:` mapping: each parameter a schema of
 * Outpost's subset plus `required: true|false`; `dry_run` is added to every type. */
static op_rc parse_params(struct parse *p, const struct op_ynode *node)
{
	cJSON *schema = cJSON_CreateObject(), *props, *req, *dry;
	char msg[600];
	op_rc rc = OP_OK;

	if (schema == NULL)
		return op_fail(p->err, OP_ENOMEM, "out of memory");
	cJSON_AddStringToObject(schema, "type", "object");
	cJSON_AddBoolToObject(schema, "additionalProperties", 0);
	req = cJSON_AddArrayToObject(schema, "required");
	props = cJSON_AddObjectToObject(schema, "properties");
	if (node != NULL && node->kind != OP_Y_MAP) {
		rc = perr(p, node->line,
			  "params must be a mapping of parameter names to their schemas, e.g. "
			  "params: {unit: {type: string, required: true}}");
		goto out;
	}
	for (size_t i = 0; node && i < node->n; i++) {
		const char *name = node->keys[i];
		const struct op_ynode *pn = node->items[i], *rq;
		int line = node->key_lines[i], b = 0;
		cJSON *ps;

		if (!matches(name, "^[a-z][a-z0-9_]{0,63}$")) {
			rc = perr(p, line,
				  "params.%s: a parameter name is lowercase letters, digits and _ "
				  "(^[a-z][a-z0-9_]{0,63}$)",
				  name);
			goto out;
		}
		if (strcmp(name, "dry_run") == 0) {
			rc = perr(p, line,
				  "params.dry_run is reserved: every change type has it (render and "
				  "check the steps, run none)");
			goto out;
		}
		if (pn == NULL || pn->kind != OP_Y_MAP) {
			rc = perr(p, line, "params.%s must be a mapping with at least a type, e.g. "
					   "{type: string}",
				  name);
			goto out;
		}
		rq = op_ymap_get(pn, "required");
		if (rq != NULL && (b = ybool(rq)) < 0) {
			rc = perr(p, key_line(pn, "required"),
				  "params.%s.required: expected true or false (whether the parameter "
				  "must be given)",
				  name);
			goto out;
		}
		if (op_ymap_get(pn, "type") == NULL) {
			rc = perr(p, line,
				  "params.%s: type is required (string, integer, number, boolean, "
				  "array or object)",
				  name);
			goto out;
		}
		if (b == 1 && op_ymap_get(pn, "default") != NULL) {
			rc = perr(p, key_line(pn, "default"),
				  "params.%s: a required parameter cannot have a default", name);
			goto out;
		}
		ps = op_ynode_to_json(pn);
		if (ps == NULL) {
			rc = op_fail(p->err, OP_ENOMEM, "out of memory");
			goto out;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(ps, "required");
		cJSON_AddItemToObject(props, name, ps);
		if (op_schema_check(ps, msg, sizeof(msg)) < 0) {
			rc = perr(p, line, "params.%s: %s", name, msg);
			goto out;
		}
		if (cJSON_GetObjectItemCaseSensitive(ps, "default")) {
			char root[100];

			snprintf(root, sizeof(root), "params.%s.default", name);
			if (op_schema_validate(ps, cJSON_GetObjectItemCaseSensitive(ps, "default"),
					       root, msg, sizeof(msg)) < 0) {
				rc = perr(p, key_line(pn, "default"), "%s", msg);
				goto out;
			}
		}
		if (b == 1)
			cJSON_AddItemToArray(req, cJSON_CreateString(name));
	}
	dry = cJSON_AddObjectToObject(props, "dry_run");
	if (dry == NULL) {
		rc = op_fail(p->err, OP_ENOMEM, "out of memory");
		goto out;
	}
	cJSON_AddStringToObject(dry, "type", "boolean");
	cJSON_AddBoolToObject(dry, "default", 0);
	cJSON_AddStringToObject(dry, "description",
				"render and check every step, run none (a dry run)");
	if (op_schema_check(schema, msg, sizeof(msg)) < 0) {
		rc = perr(p, node ? node->line : 1, "params: %s", msg);
		goto out;
	}
	p->t->schema = schema;
	p->params = props;
	schema = NULL;
out:
	cJSON_Delete(schema);
	return rc;
}

/* ---- steps ------------------------------------------------------------------------------- */

/* A duration, a count, or a whole-value template: stored as its text. */
static op_rc scalar_setting(struct parse *p, const struct op_ynode *step, const char *key,
			    const char *sname, bool integer, cJSON **out)
{
	const struct op_ynode *n = op_ymap_get(step, key);
	const char *v = ytext(n);
	char ref[256], msg[600];
	double d;
	long long i;

	if (n == NULL)
		return OP_OK;
	if (v == NULL)
		return perr(p, key_line(step, key), "step \"%s\": %s must be a scalar", sname, key);
	if (ch_tpl_whole(v, ref, sizeof(ref)) != NULL) {
		if (ch_tpl_check(v, p->params, msg, sizeof(msg)) < 0)
			return perr(p, key_line(step, key), "step \"%s\": %s: %s", sname, key, msg);
	} else if (ch_tpl_has(v)) {
		return perr(p, key_line(step, key),
			    "step \"%s\": %s: a template here must be the whole value, e.g. "
			    "\"{{ params.%s }}\"",
			    sname, key, key);
	} else if (integer ? op_parse_i64(v, 1, 1000, &i) < 0
			   : (outpost_parse_duration(v, &d) < 0 || d <= 0)) {
		return perr(p, key_line(step, key),
			    integer ? "step \"%s\": %s: expected a whole number from 1 to 1000, got "
				      "\"%s\""
				    : "step \"%s\": %s: expected a duration such as \"30s\" or "
				      "\"5m\", got \"%s\"",
			    sname, key, v);
	}
	*out = cJSON_CreateString(v);
	return *out ? OP_OK : op_fail(p->err, OP_ENOMEM, "out of memory");
}

/* exec and shell: an argv list, one whole-value template standing for a list, or (with
 * shell: true) a command string that holds no template. */
static op_rc parse_exec(struct parse *p, const struct op_ynode *sn, struct ch_step *s)
{
	const struct op_ynode *ex = op_ymap_get(sn, "exec"), *sh = op_ymap_get(sn, "shell");
	int line = key_line(sn, "exec"), shell = 0;
	char ref[256], what[32];
	op_rc rc;

	if (sh != NULL && (shell = ybool(sh)) < 0)
		return perr(p, key_line(sn, "shell"), "step \"%s\": shell: expected true or false",
			    s->name);
	if (shell) {
		if (ytext(ex) == NULL || ex->value[0] == '\0')
			return perr(p, line,
				    "step \"%s\": with shell: true, exec is one command string for "
				    "/bin/sh -c",
				    s->name);
		if (ch_tpl_has(ex->value))
			return perr(p, line,
				    "step \"%s\": a shell command cannot hold {{ }}: values would "
				    "become shell code; pass them as environment variables "
				    "(\"$PARAM_NAME\", or env:)",
				    s->name);
		s->kind = CH_SHELL;
		s->exec = cJSON_CreateString(ex->value);
		return s->exec ? OP_OK : op_fail(p->err, OP_ENOMEM, "out of memory");
	}
	s->kind = CH_EXEC;
	if (ytext(ex) != NULL) {
		if (ch_tpl_whole(ex->value, ref, sizeof(ref)) == NULL)
			return perr(p, line,
				    "step \"%s\": exec is a list of arguments, e.g. [systemctl, "
				    "restart, \"{{ params.unit }}\"] (no shell); a command string "
				    "needs shell: true",
				    s->name);
		rc = check_tpl(p, line, s->name, "exec", ex->value);
		if (rc != OP_OK)
			return rc;
		s->exec = cJSON_CreateString(ex->value);
		return s->exec ? OP_OK : op_fail(p->err, OP_ENOMEM, "out of memory");
	}
	if (ex->kind != OP_Y_SEQ || ex->n == 0)
		return perr(p, line, "step \"%s\": exec is a non-empty list of arguments", s->name);
	s->exec = cJSON_CreateArray();
	if (s->exec == NULL)
		return op_fail(p->err, OP_ENOMEM, "out of memory");
	for (size_t i = 0; i < ex->n; i++) {
		const char *v = ytext(ex->items[i]);

		if (v == NULL)
			return perr(p, ex->items[i]->line,
				    "step \"%s\": exec[%zu] must be a string, not a %s", s->name, i,
				    op_ykind_name(ex->items[i]->kind));
		snprintf(what, sizeof(what), "exec[%zu]", i);
		rc = check_tpl(p, ex->items[i]->line, s->name, what, v);
		if (rc != OP_OK)
			return rc;
		cJSON_AddItemToArray(s->exec, cJSON_CreateString(v));
	}
	return OP_OK;
}

/* What only local commands take: env (names not reserved), stdin, exit_codes. */
static op_rc parse_exec_options(struct parse *p, const struct op_ynode *sn, struct ch_step *s)
{
	const struct op_ynode *env = op_ymap_get(sn, "env"), *in = op_ymap_get(sn, "stdin");
	const struct op_ynode *codes = op_ymap_get(sn, "exit_codes");
	op_rc rc;

	if (env != NULL) {
		if (env->kind != OP_Y_MAP)
			return perr(p, key_line(sn, "env"),
				    "step \"%s\": env must be a mapping of variable names to values",
				    s->name);
		s->env = cJSON_CreateObject();
		if (s->env == NULL)
			return op_fail(p->err, OP_ENOMEM, "out of memory");
		for (size_t i = 0; i < env->n; i++) {
			const char *k = env->keys[i], *v = ytext(env->items[i]);

			if (!matches(k, "^[A-Za-z_][A-Za-z0-9_]{0,127}$"))
				return perr(p, env->key_lines[i],
					    "step \"%s\": env: \"%s\" is not a variable name", s->name,
					    k);
			if (strncmp(k, "OUTPOST_", 8) == 0 || strncmp(k, "PARAM_", 6) == 0)
				return perr(p, env->key_lines[i],
					    "step \"%s\": env: %s: names starting with OUTPOST_ or "
					    "PARAM_ are set by the plugin",
					    s->name, k);
			if (v == NULL)
				return perr(p, env->key_lines[i],
					    "step \"%s\": env: %s must be a string", s->name, k);
			rc = check_tpl(p, env->key_lines[i], s->name, "env", v);
			if (rc != OP_OK)
				return rc;
			cJSON_AddItemToObject(s->env, k, cJSON_CreateString(v));
		}
	}
	if (in != NULL) {
		if (ytext(in) == NULL)
			return perr(p, key_line(sn, "stdin"), "step \"%s\": stdin must be a string",
				    s->name);
		rc = check_tpl(p, key_line(sn, "stdin"), s->name, "stdin", in->value);
		if (rc != OP_OK)
			return rc;
		s->stdin_text = strdup(in->value);
		if (s->stdin_text == NULL)
			return op_fail(p->err, OP_ENOMEM, "out of memory");
	}
	if (codes != NULL) {
		if (codes->kind != OP_Y_SEQ || codes->n == 0)
			return perr(p, key_line(sn, "exit_codes"),
				    "step \"%s\": exit_codes is a non-empty list of exit codes, "
				    "e.g. [0, 3]",
				    s->name);
		s->exit_codes = cJSON_CreateArray();
		for (size_t i = 0; i < codes->n; i++) {
			long long c;

			if (ytext(codes->items[i]) == NULL ||
			    op_parse_i64(codes->items[i]->value, 0, 255, &c) < 0)
				return perr(p, codes->items[i]->line,
					    "step \"%s\": exit_codes[%zu]: expected a number from 0 "
					    "to 255",
					    s->name, i);
			cJSON_AddItemToArray(s->exit_codes, cJSON_CreateNumber((double)c));
		}
	}
	return OP_OK;
}

/* expect: a list of {result: PATH, <one check>: value}; regular expressions compiled now. */
static op_rc parse_expect(struct parse *p, const struct op_ynode *sn, struct ch_step *s)
{
	const struct op_ynode *ex = op_ymap_get(sn, "expect");
	char known[200], ref[256];

	if (ex == NULL)
		return OP_OK;
	join_list(expect_ops, OP_ARRAY_LEN(expect_ops), known, sizeof(known));
	if (ex->kind != OP_Y_SEQ || ex->n == 0)
		return perr(p, key_line(sn, "expect"),
			    "step \"%s\": expect is a list of checks, e.g. [{result: row_count, "
			    "at_least: 1}]",
			    s->name);
	s->expect = cJSON_CreateArray();
	if (s->expect == NULL)
		return op_fail(p->err, OP_ENOMEM, "out of memory");
	for (size_t i = 0; i < ex->n; i++) {
		const struct op_ynode *c = ex->items[i];
		const char *path = ytext(op_ymap_get(c, "result")), *op = NULL;
		cJSON *check, *val;
		op_rc rc;

		if (c->kind != OP_Y_MAP || path == NULL || path[0] == '\0')
			return perr(p, c->line,
				    "step \"%s\": expect[%zu] needs result: (a path into the step's "
				    "result, e.g. rows.0.n) and one of %s",
				    s->name, i, known);
		for (size_t k = 0; k < c->n; k++) {
			if (strcmp(c->keys[k], "result") == 0)
				continue;
			if (!in_list(c->keys[k], expect_ops, OP_ARRAY_LEN(expect_ops)))
				return perr(p, c->key_lines[k],
					    "step \"%s\": expect[%zu]: unknown check \"%s\" (known: "
					    "%s)",
					    s->name, i, c->keys[k], known);
			if (op != NULL)
				return perr(p, c->key_lines[k],
					    "step \"%s\": expect[%zu]: one check per item (%s and %s)",
					    s->name, i, op, c->keys[k]);
			op = c->keys[k];
		}
		if (op == NULL)
			return perr(p, c->line, "step \"%s\": expect[%zu]: no check (one of %s)",
				    s->name, i, known);
		val = op_ynode_to_json(op_ymap_get(c, op));
		check = cJSON_CreateObject();
		if (val == NULL || check == NULL) {
			cJSON_Delete(val);
			cJSON_Delete(check);
			return op_fail(p->err, OP_ENOMEM, "out of memory");
		}
		cJSON_AddStringToObject(check, "result", path);
		cJSON_AddItemToObject(check, op, val);
		cJSON_AddItemToArray(s->expect, check);
		rc = check_tpl_tree(p, c->line, s->name, "expect", val);
		if (rc != OP_OK)
			return rc;
		if (strcmp(op, "matches") == 0) {
			regex_t rx;

			if (!cJSON_IsString(val))
				return perr(p, c->line,
					    "step \"%s\": expect[%zu].matches: expected a regular "
					    "expression",
					    s->name, i);
			if (!ch_tpl_has(val->valuestring)) {
				if (regcomp(&rx, val->valuestring, REG_EXTENDED | REG_NOSUB) != 0)
					return perr(p, c->line,
						    "step \"%s\": expect[%zu].matches: not a POSIX "
						    "extended regular expression",
						    s->name, i);
				regfree(&rx);
			}
		}
		if ((strcmp(op, "at_least") == 0 || strcmp(op, "at_most") == 0) &&
		    !cJSON_IsNumber(val) &&
		    !(cJSON_IsString(val) && ch_tpl_whole(val->valuestring, ref, sizeof(ref))))
			return perr(p, c->line, "step \"%s\": expect[%zu].%s: expected a number",
				    s->name, i, op);
	}
	return OP_OK;
}

/* when: "params.NAME" or "not params.NAME", NAME declared. */
static op_rc parse_when(struct parse *p, const struct op_ynode *sn, struct ch_step *s)
{
	const struct op_ynode *w = op_ymap_get(sn, "when");
	const char *v = ytext(w), *name;

	if (w == NULL)
		return OP_OK;
	if (v == NULL)
		goto bad;
	s->when_not = strncmp(v, "not ", 4) == 0;
	name = s->when_not ? v + 4 : v;
	while (*name == ' ')
		name++;
	if (strncmp(name, "params.", 7) != 0 || !matches(name + 7, "^[a-z][a-z0-9_]*$"))
		goto bad;
	if (cJSON_GetObjectItemCaseSensitive(p->params, name + 7) == NULL)
		return perr(p, key_line(sn, "when"),
			    "step \"%s\": when: no parameter \"%s\" is declared under params",
			    s->name, name + 7);
	s->when_param = strdup(name + 7);
	return s->when_param ? OP_OK : op_fail(p->err, OP_ENOMEM, "out of memory");
bad:
	return perr(p, key_line(sn, "when"),
		    "step \"%s\": when: expected \"params.NAME\" or \"not params.NAME\"",
		    s ? s->name : "?");
}

/* Parses one step mapping SN of phase PH into S. */
static op_rc parse_step(struct parse *p, const struct op_ynode *sn, enum ch_phase ph,
			struct ch_step *s)
{
	const char *name = ytext(op_ymap_get(sn, "name")), *desc, *type;
	const struct op_ynode *ex, *ty, *pa, *coe;
	char known[400];
	op_rc rc;
	int b;

	s->phase = ph;
	s->line = sn->line;
	if (sn->kind != OP_Y_MAP)
		return perr(p, sn->line,
			    "%s: a step is a mapping with a name and exec or type, not a %s",
			    ch_phase_names[ph], op_ykind_name(sn->kind));
	join_list(step_keys, OP_ARRAY_LEN(step_keys), known, sizeof(known));
	for (size_t i = 0; i < sn->n; i++)
		if (!in_list(sn->keys[i], step_keys, OP_ARRAY_LEN(step_keys)))
			return perr(p, sn->key_lines[i], "%s step: unknown key \"%s\" (known: %s)",
				    ch_phase_names[ph], sn->keys[i], known);
	if (name == NULL || name[0] == '\0' || strlen(name) > 128)
		return perr(p, sn->line, "%s step: name is required (up to 128 characters)",
			    ch_phase_names[ph]);
	s->name = strdup(name);
	if (s->name == NULL)
		return op_fail(p->err, OP_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->t->n_steps; i++)
		if (strcmp(p->t->steps[i].name, name) == 0)
			return perr(p, key_line(sn, "name"),
				    "step name \"%s\" is used twice (first on line %d): step names "
				    "are unique in a change type",
				    name, p->t->steps[i].line);
	desc = ytext(op_ymap_get(sn, "description"));
	if (op_ymap_get(sn, "description") && desc == NULL)
		return perr(p, key_line(sn, "description"), "step \"%s\": description must be text",
			    name);
	if (desc && (s->description = strdup(desc)) == NULL)
		return op_fail(p->err, OP_ENOMEM, "out of memory");
	ex = op_ymap_get(sn, "exec");
	ty = op_ymap_get(sn, "type");
	pa = op_ymap_get(sn, "params");
	if (ex != NULL && ty != NULL)
		return perr(p, key_line(sn, "type"),
			    "step \"%s\": give exec (a local command) or type (a task of another "
			    "plugin), not both",
			    name);
	if (ex == NULL && ty == NULL)
		return perr(p, sn->line,
			    "step \"%s\" does nothing: give exec (a local command) or type (a task "
			    "of another plugin)",
			    name);
	if (ty != NULL) {
		static const char *const exec_only[] = {"shell", "env", "stdin", "exit_codes"};

		for (size_t i = 0; i < OP_ARRAY_LEN(exec_only); i++)
			if (op_ymap_get(sn, exec_only[i]))
				return perr(p, key_line(sn, exec_only[i]),
					    "step \"%s\": %s goes with exec, not with type", name,
					    exec_only[i]);
		type = ytext(ty);
		if (type == NULL || !matches(type, "^[a-z0-9_-]+\\.[a-z0-9_.-]+$"))
			return perr(p, key_line(sn, "type"),
				    "step \"%s\": type must be a task type such as odbc.query or "
				    "http.request",
				    name);
		if (strncmp(type, "change.", 7) == 0)
			return perr(p, key_line(sn, "type"),
				    "step \"%s\": a step cannot run %s (steps do not nest)", name,
				    type);
		s->kind = CH_CALL;
		s->type = strdup(type);
		if (pa != NULL && pa->kind != OP_Y_MAP)
			return perr(p, key_line(sn, "params"),
				    "step \"%s\": params must be a mapping (the %s task's params)",
				    name, type);
		s->params = pa ? op_ynode_to_json(pa) : cJSON_CreateObject();
		if (s->type == NULL || s->params == NULL)
			return op_fail(p->err, OP_ENOMEM, "out of memory");
		rc = check_tpl_tree(p, key_line(sn, "params"), name, "params", s->params);
		if (rc != OP_OK)
			return rc;
	} else {
		if (pa != NULL)
			return perr(p, key_line(sn, "params"),
				    "step \"%s\": params goes with type (a task of another plugin); "
				    "an exec step takes env and stdin",
				    name);
		rc = parse_exec(p, sn, s);
		if (rc == OP_OK)
			rc = parse_exec_options(p, sn, s);
		if (rc != OP_OK)
			return rc;
	}
	rc = scalar_setting(p, sn, "timeout", name, false, &s->timeout);
	if (rc == OP_OK)
		rc = scalar_setting(p, sn, "interval", name, false, &s->interval);
	if (rc == OP_OK)
		rc = scalar_setting(p, sn, "attempts", name, true, &s->attempts);
	if (rc == OP_OK)
		rc = parse_expect(p, sn, s);
	if (rc == OP_OK)
		rc = parse_when(p, sn, s);
	if (rc != OP_OK)
		return rc;
	coe = op_ymap_get(sn, "continue_on_error");
	if (coe != NULL) {
		if ((b = ybool(coe)) < 0)
			return perr(p, key_line(sn, "continue_on_error"),
				    "step \"%s\": continue_on_error: expected true or false", name);
		s->continue_on_error = b == 1;
	}
	return OP_OK;
}

/* The four phases in order; steps are numbered across them (what the server shows). */
static op_rc parse_phases(struct parse *p, const struct op_ynode *root)
{
	size_t total = 0;
	op_rc rc;

	for (int ph = 0; ph < CH_NPHASES; ph++) {
		const struct op_ynode *list = op_ymap_get(root, ch_phase_names[ph]);

		if (list != NULL && list->kind != OP_Y_SEQ &&
		    !(list->kind == OP_Y_SCALAR && !list->quoted &&
		      (list->value[0] == '\0' || strcmp(list->value, "~") == 0 ||
		       strcmp(list->value, "null") == 0)))
			return perr(p, key_line(root, ch_phase_names[ph]),
				    "%s must be a list of steps", ch_phase_names[ph]);
		if (list != NULL && list->kind == OP_Y_SEQ)
			total += list->n;
		if (ph == CH_APPLY && (list == NULL || list->kind != OP_Y_SEQ || list->n == 0))
			return perr(p, list ? key_line(root, "apply") : 1,
				    "apply: at least one step is required");
	}
	if (total > 200)
		return perr(p, 1, "too many steps (%zu, at most 200)", total);
	p->t->steps = calloc(total, sizeof(*p->t->steps));
	if (p->t->steps == NULL)
		return op_fail(p->err, OP_ENOMEM, "out of memory");
	for (int ph = 0; ph < CH_NPHASES; ph++) {
		const struct op_ynode *list = op_ymap_get(root, ch_phase_names[ph]);

		for (size_t i = 0; list && list->kind == OP_Y_SEQ && i < list->n; i++) {
			struct ch_step *s = &p->t->steps[p->t->n_steps];

			rc = parse_step(p, list->items[i], (enum ch_phase)ph, s);
			p->t->n_steps++; /* counted even when it failed: released with the rest */
			if (rc != OP_OK)
				return rc;
			s->index = (int)p->t->n_steps;
		}
	}
	return OP_OK;
}

/* ---- one file ---------------------------------------------------------------------------- */

op_rc ch_type_parse(const char *file, const char *text, size_t len, struct ch_type *out,
		    struct op_error *err)
{
	struct op_ydoc doc = {0};
	struct ch_type t = {0};
	struct parse p = {file, err, NULL, &t};
	struct op_buf canon = OP_BUF_INIT;
	const struct op_ynode *root;
	const char *name, *desc;
	cJSON *json = NULL;
	char known[200], digest[72];
	op_rc rc;

	rc = op_yaml_parse(file, text, len, &doc, err);
	if (rc != OP_OK)
		return rc;
	root = doc.root;
	if (root == NULL || root->kind != OP_Y_MAP) {
		rc = perr(&p, root ? root->line : 1,
			  "a change type is a mapping with name, description, params and the "
			  "phases precheck, apply, verify, rollback");
		goto out;
	}
	join_list(top_keys, OP_ARRAY_LEN(top_keys), known, sizeof(known));
	for (size_t i = 0; i < root->n; i++)
		if (!in_list(root->keys[i], top_keys, OP_ARRAY_LEN(top_keys))) {
			rc = perr(&p, root->key_lines[i], "unknown key \"%s\" (known: %s)",
				  root->keys[i], known);
			goto out;
		}
	name = ytext(op_ymap_get(root, "name"));
	if (name == NULL) {
		rc = perr(&p, key_line(root, "name"), "name is required");
		goto out;
	}
	if (!matches(name, "^[a-z][a-z0-9-]{0,62}$")) {
		rc = perr(&p, key_line(root, "name"),
			  "name \"%s\" is not valid: lowercase letters, digits and dashes, "
			  "starting with a letter (^[a-z][a-z0-9-]{0,62}$)",
			  name);
		goto out;
	}
	desc = ytext(op_ymap_get(root, "description"));
	if (desc == NULL || desc[0] == '\0') {
		rc = perr(&p, key_line(root, "description"),
			  "description is required: one line that tells an approver what the "
			  "change does");
		goto out;
	}
	t.name = strdup(name);
	t.description = strdup(desc);
	t.file = strdup(file);
	if (t.name == NULL || t.description == NULL || t.file == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	rc = parse_params(&p, op_ymap_get(root, "params"));
	if (rc == OP_OK)
		rc = parse_phases(&p, root);
	if (rc != OP_OK)
		goto out;
	json = op_ynode_to_json(root);
	if (json == NULL || op_json_canonical(json, &canon) < 0) {
		rc = op_fail(err, OP_ENOMEM, "%s: cannot put the definition in canonical form", file);
		goto out;
	}
	ch_sha256_tag(canon.data, canon.len, digest);
	t.digest = strdup(digest);
	if (t.digest == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	*out = t;
	memset(&t, 0, sizeof(t));
out:
	ch_type_release(&t);
	cJSON_Delete(json);
	op_buf_release(&canon);
	op_ydoc_release(&doc);
	return rc;
}

void ch_type_release(struct ch_type *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_steps; i++) {
		struct ch_step *s = &t->steps[i];

		free(s->name);
		free(s->description);
		free(s->type);
		free(s->stdin_text);
		free(s->when_param);
		cJSON_Delete(s->exec);
		cJSON_Delete(s->params);
		cJSON_Delete(s->env);
		cJSON_Delete(s->timeout);
		cJSON_Delete(s->attempts);
		cJSON_Delete(s->interval);
		cJSON_Delete(s->exit_codes);
		cJSON_Delete(s->expect);
	}
	free(t->steps);
	free(t->name);
	free(t->description);
	free(t->file);
	free(t->digest);
	cJSON_Delete(t->schema);
	memset(t, 0, sizeof(*t));
}

/* ---- directories ------------------------------------------------------------------------- */

static void add_error(struct ch_catalog *cat, const char *msg)
{
	if (cat->errors.len)
		op_buf_puts(&cat->errors, "\n");
	op_buf_puts(&cat->errors, msg);
	cat->n_errors++;
}

/* Files and directories that define what runs as the agent must not be writable by others. */
static bool safe_mode(struct ch_catalog *cat, const char *path, const struct stat *st,
		      const char *what)
{
	char msg[PATH_MAX + 200];

	if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(msg, sizeof(msg),
			 "refusing change type %s %s: it is writable by group or others (mode "
			 "0%03o): run chmod go-w %s",
			 what, path, (unsigned)(st->st_mode & 0777), path);
		add_error(cat, msg);
		return false;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(msg, sizeof(msg),
			 "refusing change type %s %s: it is owned by uid %u, not by root or the "
			 "agent's user",
			 what, path, (unsigned)st->st_uid);
		add_error(cat, msg);
		return false;
	}
	return true;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
			       (l > 4 && strcmp(n + l - 4, ".yml") == 0));
}

/* Adds T to CAT: replaces a type of the same name from an earlier directory (FIRST_OF_DIR
 * is where this directory's types start); a second one in the same directory is an error. */
static op_rc catalog_add(struct ch_catalog *cat, struct ch_type *t, size_t first_of_dir)
{
	char msg[PATH_MAX * 2 + 100];
	struct ch_type *grown;

	for (size_t i = 0; i < cat->n; i++) {
		if (strcmp(cat->types[i].name, t->name) != 0)
			continue;
		if (i >= first_of_dir) {
			snprintf(msg, sizeof(msg), "%s: change type \"%s\" is already defined in %s",
				 t->file, t->name, cat->types[i].file);
			add_error(cat, msg);
			ch_type_release(t);
			return OP_OK;
		}
		ch_type_release(&cat->types[i]);
		cat->types[i] = *t;
		return OP_OK;
	}
	grown = realloc(cat->types, (cat->n + 1) * sizeof(*cat->types));
	if (grown == NULL) {
		ch_type_release(t);
		return OP_ENOMEM;
	}
	cat->types = grown;
	cat->types[cat->n++] = *t;
	return OP_OK;
}

/* Loads the *.yaml files of DIR in name order; a missing DIR has no types and is no error. */
static op_rc load_dir(struct ch_catalog *cat, const char *dir, struct op_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, msg[PATH_MAX + 200];
	size_t n = 0, cap = 0, first = cat->n;
	struct stat st;
	op_rc rc = OP_OK;

	if (d == NULL) {
		if (errno != ENOENT) {
			snprintf(msg, sizeof(msg), "cannot read the change types directory %s: %s",
				 dir, strerror(errno));
			add_error(cat, msg);
		}
		return OP_OK;
	}
	if (fstat(dirfd(d), &st) < 0 || !safe_mode(cat, dir, &st, "directory"))
		goto out;
	while ((e = readdir(d)) != NULL) {
		if (!yaml_name(e->d_name))
			continue;
		if (n == cap) {
			char **g = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));

			if (g == NULL) {
				rc = op_fail(err, OP_ENOMEM, "out of memory");
				goto out;
			}
			names = g;
		}
		if ((names[n] = strdup(e->d_name)) == NULL) {
			rc = op_fail(err, OP_ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct op_buf text = OP_BUF_INIT;
		struct op_error e1 = {0};
		struct ch_type t = {0};

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (!safe_mode(cat, path, &st, "file"))
			continue;
		if (op_read_file(path, MAX_DEF_BYTES, &text, &e1) != OP_OK ||
		    ch_type_parse(path, text.data, text.len, &t, &e1) != OP_OK) {
			add_error(cat, e1.msg);
		} else if (catalog_add(cat, &t, first) != OP_OK) {
			rc = op_fail(err, OP_ENOMEM, "out of memory");
		}
		op_buf_release(&text);
		if (rc != OP_OK)
			goto out;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

op_rc ch_catalog_load(struct ch_catalog *cat, const char *const *dirs, size_t ndirs,
		      struct op_error *err)
{
	op_rc rc = OP_OK;

	memset(cat, 0, sizeof(*cat));
	for (size_t i = 0; i < ndirs && rc == OP_OK; i++)
		if (dirs[i] != NULL && dirs[i][0] != '\0')
			rc = load_dir(cat, dirs[i], err);
	if (rc != OP_OK)
		ch_catalog_release(cat);
	return rc;
}

const struct ch_type *ch_catalog_find(const struct ch_catalog *cat, const char *name)
{
	for (size_t i = 0; name && i < cat->n; i++)
		if (strcmp(cat->types[i].name, name) == 0)
			return &cat->types[i];
	return NULL;
}

void ch_catalog_release(struct ch_catalog *cat)
{
	for (size_t i = 0; i < cat->n; i++)
		ch_type_release(&cat->types[i]);
	free(cat->types);
	op_buf_release(&cat->errors);
	memset(cat, 0, sizeof(*cat));
}

/* What an approver reads for a step that has no description: what it runs, as written. */
static void step_summary(const struct ch_step *s, struct op_buf *b)
{
	const cJSON *a;

	if (s->description) {
		op_buf_puts(b, s->description);
	} else if (s->kind == CH_CALL) {
		op_buf_printf(b, "runs %s", s->type);
	} else if (s->kind == CH_SHELL) {
		const char *nl = strchr(s->exec->valuestring, '\n');
		int n = nl ? (int)(nl - s->exec->valuestring) : (int)strlen(s->exec->valuestring);

		op_buf_printf(b, "sh -c '%.*s%s'", n > 160 ? 160 : n, s->exec->valuestring,
			      (nl && nl[1]) || n > 160 ? " ..." : "");
	} else if (cJSON_IsString(s->exec)) {
		op_buf_printf(b, "runs %s", s->exec->valuestring);
	} else {
		op_buf_puts(b, "runs");
		cJSON_ArrayForEach(a, s->exec)
		op_buf_printf(b, " %s", a->valuestring);
	}
	if (s->when_param)
		op_buf_printf(b, " (when %sparams.%s)", s->when_not ? "not " : "", s->when_param);
}

cJSON *ch_type_describe(const struct ch_type *t)
{
	cJSON *o = cJSON_CreateObject(), *steps;
	struct op_buf b = OP_BUF_INIT;

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "name", t->name);
	cJSON_AddStringToObject(o, "description", t->description);
	cJSON_AddStringToObject(o, "digest", t->digest);
	cJSON_AddItemToObject(o, "params_schema", cJSON_Duplicate(t->schema, true));
	steps = cJSON_AddArrayToObject(o, "steps");
	for (size_t i = 0; steps && i < t->n_steps; i++) {
		cJSON *s = cJSON_CreateObject();

		op_buf_reset(&b);
		step_summary(&t->steps[i], &b);
		cJSON_AddStringToObject(s, "name", t->steps[i].name);
		cJSON_AddStringToObject(s, "phase", ch_phase_names[t->steps[i].phase]);
		cJSON_AddStringToObject(s, "description", b.data ? b.data : "");
		cJSON_AddItemToArray(steps, s);
	}
	cJSON_AddStringToObject(o, "source", t->file);
	op_buf_release(&b);
	return o;
}
