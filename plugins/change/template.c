/* SPDX-License-Identifier: Apache-2.0 */
/* {{ params.x }} substitution: checked at load, rendered into argv, env and step params. */
#include "change.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define REF_MAX 256

static const char *const cr_keys[] = {"id", "change_type", "action", "dir"};
static const char *const agent_keys[] = {"id", "hostname"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool seg_char(int c, bool first)
{
	return isalpha(c) || c == '_' || (!first && (isdigit(c) || c == '-'));
}

/* Scans one {{ ... }} starting at S (pointing at "{{"). Writes the trimmed reference to REF
 * and returns the position after "}}", or NULL with ERR set. */
static const char *scan_ref(const char *s, char *ref, size_t reflen, char *err, size_t errlen)
{
	const char *p = s + 2, *end = strstr(p, "}}"), *b, *e;
	size_t n;

	if (end == NULL) {
		snprintf(err, errlen, "unclosed {{ in \"%.80s\"", s);
		return NULL;
	}
	for (b = p; b < end && isspace((unsigned char)*b); b++)
		;
	for (e = end; e > b && isspace((unsigned char)e[-1]); e--)
		;
	n = (size_t)(e - b);
	if (n == 0) {
		snprintf(err, errlen, "empty {{ }}");
		return NULL;
	}
	if (n >= reflen) {
		snprintf(err, errlen, "reference too long in {{ }}");
		return NULL;
	}
	memcpy(ref, b, n);
	ref[n] = '\0';
	/* segments: [A-Za-z_][A-Za-z0-9_-]* or a list index, separated by dots */
	for (const char *q = ref; *q;) {
		bool digits = isdigit((unsigned char)*q);

		if (!digits && !seg_char((unsigned char)*q, true))
			goto bad;
		q++;
		while (*q && *q != '.') {
			if (digits ? !isdigit((unsigned char)*q) : !seg_char((unsigned char)*q, false))
				goto bad;
			q++;
		}
		if (*q == '.') {
			q++;
			if (*q == '\0')
				goto bad;
		}
	}
	return end + 2;
bad:
	snprintf(err, errlen,
		 "{{ %s }} is not a reference: write {{ params.NAME }}, {{ cr.id }}, {{ cr.dir }}, "
		 "{{ workspace }} or {{ agent.id }} (templates hold no expressions)",
		 ref);
	return NULL;
}

/* Checks that REF names something a change can know. */
static int check_ref(const char *ref, const cJSON *params, char *err, size_t errlen)
{
	char head[REF_MAX], *dot, *rest;

	op_strlcpy(head, ref, sizeof(head));
	dot = strchr(head, '.');
	rest = dot ? dot + 1 : NULL;
	if (dot)
		*dot = '\0';
	if (strcmp(head, "params") == 0) {
		char name[REF_MAX];
		char *d;

		if (rest == NULL) {
			snprintf(err, errlen, "{{ params }} needs a parameter name: {{ params.NAME }}");
			return -1;
		}
		op_strlcpy(name, rest, sizeof(name));
		d = strchr(name, '.');
		if (d)
			*d = '\0';
		if (cJSON_GetObjectItemCaseSensitive(params, name) == NULL) {
			snprintf(err, errlen, "{{ %s }}: no parameter \"%s\" is declared under params",
				 ref, name);
			return -1;
		}
		return 0;
	}
	if (strcmp(head, "cr") == 0 && rest && in_list(rest, cr_keys, OP_ARRAY_LEN(cr_keys)))
		return 0;
	if (strcmp(head, "agent") == 0 && rest &&
	    in_list(rest, agent_keys, OP_ARRAY_LEN(agent_keys)))
		return 0;
	if (strcmp(head, "workspace") == 0 && rest == NULL)
		return 0;
	snprintf(err, errlen,
		 "{{ %s }}: unknown reference (known: params.NAME, cr.id, cr.change_type, cr.action, "
		 "cr.dir, workspace, agent.id, agent.hostname)",
		 ref);
	return -1;
}

bool ch_tpl_has(const char *text)
{
	return text != NULL && strstr(text, "{{") != NULL;
}

int ch_tpl_check(const char *text, const cJSON *params, char *err, size_t errlen)
{
	const char *p = text;
	char ref[REF_MAX];

	while ((p = strstr(p, "{{")) != NULL) {
		p = scan_ref(p, ref, sizeof(ref), err, errlen);
		if (p == NULL || check_ref(ref, params, err, errlen) < 0)
			return -1;
	}
	return 0;
}

const char *ch_tpl_whole(const char *text, char *ref, size_t reflen)
{
	const char *b = text, *after;
	char err[256];

	while (isspace((unsigned char)*b))
		b++;
	if (strncmp(b, "{{", 2) != 0)
		return NULL;
	after = scan_ref(b, ref, reflen, err, sizeof(err));
	if (after == NULL)
		return NULL;
	while (isspace((unsigned char)*after))
		after++;
	return *after == '\0' ? ref : NULL;
}

const cJSON *ch_tpl_lookup(const cJSON *vars, const char *ref)
{
	char buf[REF_MAX], *save = NULL, *seg;
	const cJSON *v = vars;

	if (op_strlcpy(buf, ref, sizeof(buf)) < 0)
		return NULL;
	for (seg = strtok_r(buf, ".", &save); seg && v; seg = strtok_r(NULL, ".", &save)) {
		if (cJSON_IsArray(v) && isdigit((unsigned char)*seg)) {
			long long i;

			if (op_parse_i64(seg, 0, 1000000, &i) < 0)
				return NULL;
			v = cJSON_GetArrayItem(v, (int)i);
		} else {
			v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, seg) : NULL;
		}
	}
	return v;
}

/* Appends scalar V as text. Returns 0, or -1 for lists and objects. */
static int append_scalar(struct op_buf *out, const cJSON *v)
{
	if (cJSON_IsString(v))
		return op_buf_puts(out, v->valuestring);
	if (cJSON_IsBool(v))
		return op_buf_puts(out, cJSON_IsTrue(v) ? "true" : "false");
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			return op_buf_printf(out, "%lld", (long long)d);
		return op_buf_printf(out, "%.17g", d);
	}
	return -1;
}

static void no_value(const char *ref, char *err, size_t errlen)
{
	if (strncmp(ref, "params.", 7) == 0)
		snprintf(err, errlen,
			 "{{ %s }} has no value (the parameter is optional and was not given): guard "
			 "the step with `when: %s`",
			 ref, ref);
	else
		snprintf(err, errlen, "{{ %s }} has no value here", ref);
}

int ch_tpl_render(const char *text, const cJSON *vars, struct op_buf *out, char *err,
		  size_t errlen)
{
	const char *p = text, *open;
	char ref[REF_MAX];

	op_buf_reset(out);
	if (op_buf_puts(out, "") < 0)
		goto oom;
	while ((open = strstr(p, "{{")) != NULL) {
		const cJSON *v;

		if (op_buf_append(out, p, (size_t)(open - p)) < 0)
			goto oom;
		p = scan_ref(open, ref, sizeof(ref), err, errlen);
		if (p == NULL)
			return -1;
		v = ch_tpl_lookup(vars, ref);
		if (v == NULL || cJSON_IsNull(v)) {
			no_value(ref, err, errlen);
			return -1;
		}
		if (append_scalar(out, v) < 0) {
			snprintf(err, errlen,
				 "{{ %s }} is a %s: it can only stand alone as a whole value, not inside "
				 "text",
				 ref, cJSON_IsArray(v) ? "list" : "mapping");
			return -1;
		}
	}
	if (op_buf_puts(out, p) < 0)
		goto oom;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

cJSON *ch_tpl_value(const cJSON *value, const cJSON *vars, bool omit_absent, char *err,
		    size_t errlen)
{
	cJSON *out = NULL, *item;
	const cJSON *v;
	char ref[REF_MAX];

	if (cJSON_IsString(value)) {
		struct op_buf b = OP_BUF_INIT;

		if (ch_tpl_whole(value->valuestring, ref, sizeof(ref)) != NULL) {
			v = ch_tpl_lookup(vars, ref);
			if (v == NULL || cJSON_IsNull(v)) {
				no_value(ref, err, errlen);
				return NULL;
			}
			out = cJSON_Duplicate(v, true);
		} else if (ch_tpl_render(value->valuestring, vars, &b, err, errlen) == 0) {
			out = cJSON_CreateString(b.data);
		} else {
			op_buf_release(&b);
			return NULL;
		}
		op_buf_release(&b);
		goto check;
	}
	if (cJSON_IsArray(value) || cJSON_IsObject(value)) {
		out = cJSON_IsArray(value) ? cJSON_CreateArray() : cJSON_CreateObject();
		if (out == NULL)
			goto check;
		cJSON_ArrayForEach(v, value)
		{
			/* a member that names an optional parameter that was not given is left out */
			if (omit_absent && cJSON_IsObject(value) && cJSON_IsString(v) &&
			    ch_tpl_whole(v->valuestring, ref, sizeof(ref)) != NULL) {
				const cJSON *got = ch_tpl_lookup(vars, ref);

				if (got == NULL || cJSON_IsNull(got))
					continue;
			}
			item = ch_tpl_value(v, vars, omit_absent, err, errlen);
			if (item == NULL) {
				cJSON_Delete(out);
				return NULL;
			}
			if (cJSON_IsArray(out))
				cJSON_AddItemToArray(out, item);
			else
				cJSON_AddItemToObject(out, v->string, item);
		}
		return out;
	}
	out = cJSON_Duplicate(value, true);
check:
	if (out == NULL)
		snprintf(err, errlen, "out of memory");
	return out;
}

bool ch_truthy(const cJSON *v)
{
	if (v == NULL || cJSON_IsNull(v) || cJSON_IsFalse(v))
		return false;
	if (cJSON_IsString(v))
		return v->valuestring[0] != '\0';
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0;
	if (cJSON_IsArray(v) || cJSON_IsObject(v))
		return v->child != NULL;
	return true;
}
