/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON Schema subset validator over cJSON. */
#include "schema.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonprint.h"

static const char *const known_keywords[] = {
	"type",	     "properties", "required",	"additionalProperties", "items",
	"enum",	     "minimum",	   "maximum",	"minLength",		"maxLength",
	"minItems",  "maxItems",   "pattern",	"default",		"title",
	"description", "examples", "format",	"$schema",		"$id",
	"$comment",
};

static const char *const type_names[] = {"object",  "array",   "string", "integer",
					 "number",  "boolean", "null"};

static bool is_type_name(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (strcmp(s, type_names[i]) == 0)
			return true;
	return false;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
							  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int check_at(const cJSON *schema, const char *where, char *err, size_t errlen)
{
	const cJSON *kw, *item;
	char sub[512];

	if (!cJSON_IsObject(schema))
		return fail(err, errlen, "schema%s%s: must be an object", *where ? " at " : "",
			    where);
	cJSON_ArrayForEach(kw, schema)
	{
		size_t i;
		bool known = false;

		for (i = 0; i < sizeof(known_keywords) / sizeof(known_keywords[0]); i++)
			if (strcmp(kw->string, known_keywords[i]) == 0)
				known = true;
		if (!known)
			return fail(err, errlen, "schema at %s: unsupported keyword \"%s\"",
				    *where ? where : "root", kw->string);
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "type");
	if (kw != NULL) {
		if (cJSON_IsString(kw)) {
			if (!is_type_name(kw->valuestring))
				return fail(err, errlen, "schema at %s: unknown type \"%s\"",
					    *where ? where : "root", kw->valuestring);
		} else if (cJSON_IsArray(kw)) {
			cJSON_ArrayForEach(item, kw)
			{
				if (!cJSON_IsString(item) || !is_type_name(item->valuestring))
					return fail(err, errlen,
						    "schema at %s: \"type\" lists an unknown type%s",
						    *where ? where : "root", "");
			}
		} else {
			return fail(err, errlen, "schema at %s: \"type\" must be a string or a list%s",
				    *where ? where : "root", "");
		}
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "properties");
	if (kw != NULL) {
		if (!cJSON_IsObject(kw))
			return fail(err, errlen, "schema at %s: \"properties\" must be an object%s",
				    *where ? where : "root", "");
		cJSON_ArrayForEach(item, kw)
		{
			snprintf(sub, sizeof(sub), "%s.%s", where, item->string);
			if (check_at(item, sub, err, errlen) < 0)
				return -1;
		}
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "required");
	if (kw != NULL) {
		if (!cJSON_IsArray(kw))
			return fail(err, errlen, "schema at %s: \"required\" must be a list%s",
				    *where ? where : "root", "");
		cJSON_ArrayForEach(item, kw)
		{
			if (!cJSON_IsString(item))
				return fail(err, errlen,
					    "schema at %s: \"required\" must list strings%s",
					    *where ? where : "root", "");
		}
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
	if (kw != NULL && !cJSON_IsBool(kw)) {
		snprintf(sub, sizeof(sub), "%s.*", where);
		if (check_at(kw, sub, err, errlen) < 0)
			return -1;
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "items");
	if (kw != NULL) {
		snprintf(sub, sizeof(sub), "%s[]", where);
		if (check_at(kw, sub, err, errlen) < 0)
			return -1;
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "enum");
	if (kw != NULL && !cJSON_IsArray(kw))
		return fail(err, errlen, "schema at %s: \"enum\" must be a list%s",
			    *where ? where : "root", "");
	{
		static const char *const numeric[] = {"minimum",  "maximum",  "minLength",
						       "maxLength", "minItems", "maxItems"};
		size_t i;

		for (i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
			kw = cJSON_GetObjectItemCaseSensitive(schema, numeric[i]);
			if (kw != NULL && !cJSON_IsNumber(kw))
				return fail(err, errlen, "schema at %s: \"%s\" must be a number",
					    *where ? where : "root", numeric[i]);
		}
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "pattern");
	if (kw != NULL) {
		regex_t re;

		if (!cJSON_IsString(kw))
			return fail(err, errlen, "schema at %s: \"pattern\" must be a string%s",
				    *where ? where : "root", "");
		if (regcomp(&re, kw->valuestring, REG_EXTENDED | REG_NOSUB) != 0)
			return fail(err, errlen, "schema at %s: \"pattern\" %s is not a valid regex",
				    *where ? where : "root", kw->valuestring);
		regfree(&re);
	}
	return 0;
}

int op_schema_check(const cJSON *schema, char *err, size_t errlen)
{
	return check_at(schema, "", err, errlen);
}

static const char *json_type_name(const cJSON *v)
{
	if (cJSON_IsObject(v))
		return "object";
	if (cJSON_IsArray(v))
		return "array";
	if (cJSON_IsString(v))
		return "string";
	if (cJSON_IsNumber(v))
		return "number";
	if (cJSON_IsBool(v))
		return "boolean";
	if (cJSON_IsNull(v))
		return "null";
	return "invalid";
}

static bool is_integer(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
	       floor(v->valuedouble) == v->valuedouble && fabs(v->valuedouble) <= 9007199254740992.0;
}

static bool matches_type(const char *t, const cJSON *v)
{
	if (strcmp(t, "integer") == 0)
		return is_integer(v);
	if (strcmp(t, "number") == 0)
		return cJSON_IsNumber(v);
	return strcmp(t, json_type_name(v)) == 0;
}

static size_t utf8_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* Patterns compiled once per validation, however many values they check (a batch of 1,000
 * items has one pattern node per field). */
struct re_cache {
	const cJSON *node;
	regex_t re;
	int ok;
	struct re_cache *next;
};

struct vctx {
	struct re_cache *res;
	char *err;
	size_t errlen;
};

static regex_t *pattern_of(struct vctx *c, const cJSON *kw)
{
	struct re_cache *e;

	for (e = c->res; e; e = e->next)
		if (e->node == kw)
			return e->ok ? &e->re : NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->node = kw;
	e->ok = regcomp(&e->re, kw->valuestring, REG_EXTENDED | REG_NOSUB) == 0;
	e->next = c->res;
	c->res = e;
	return e->ok ? &e->re : NULL;
}

static int validate_at(struct vctx *c, const cJSON *schema, const cJSON *v, const char *path)
{
	char *err = c->err;
	size_t errlen = c->errlen;
	const cJSON *kw, *item;
	char sub[512];

	kw = cJSON_GetObjectItemCaseSensitive(schema, "type");
	if (cJSON_IsString(kw) && !matches_type(kw->valuestring, v)) {
		snprintf(err, errlen, "%s: expected %s, got %s", path, kw->valuestring,
			 json_type_name(v));
		return -1;
	}
	if (cJSON_IsArray(kw)) {
		bool ok = false;
		char names[128] = "";

		cJSON_ArrayForEach(item, kw)
		{
			if (matches_type(item->valuestring, v))
				ok = true;
			if (names[0])
				strncat(names, " or ", sizeof(names) - strlen(names) - 1);
			strncat(names, item->valuestring, sizeof(names) - strlen(names) - 1);
		}
		if (!ok) {
			snprintf(err, errlen, "%s: expected %s, got %s", path, names,
				 json_type_name(v));
			return -1;
		}
	}
	kw = cJSON_GetObjectItemCaseSensitive(schema, "enum");
	if (cJSON_IsArray(kw)) {
		bool ok = false;

		cJSON_ArrayForEach(item, kw)
		{
			if (cJSON_Compare(item, v, true))
				ok = true;
		}
		if (!ok) {
			char *list = op_json_print(kw, false); /* only to say what was expected */

			snprintf(err, errlen, "%s: must be one of %s", path, list ? list : "the enum");
			cJSON_free(list);
			return -1;
		}
	}
	if (cJSON_IsNumber(v)) {
		kw = cJSON_GetObjectItemCaseSensitive(schema, "minimum");
		if (cJSON_IsNumber(kw) && v->valuedouble < kw->valuedouble) {
			snprintf(err, errlen, "%s: must be >= %g, got %g", path, kw->valuedouble,
				 v->valuedouble);
			return -1;
		}
		kw = cJSON_GetObjectItemCaseSensitive(schema, "maximum");
		if (cJSON_IsNumber(kw) && v->valuedouble > kw->valuedouble) {
			snprintf(err, errlen, "%s: must be <= %g, got %g", path, kw->valuedouble,
				 v->valuedouble);
			return -1;
		}
	}
	if (cJSON_IsString(v)) {
		size_t n = utf8_length(v->valuestring);

		kw = cJSON_GetObjectItemCaseSensitive(schema, "minLength");
		if (cJSON_IsNumber(kw) && (double)n < kw->valuedouble) {
			snprintf(err, errlen, "%s: must be at least %g characters long", path,
				 kw->valuedouble);
			return -1;
		}
		kw = cJSON_GetObjectItemCaseSensitive(schema, "maxLength");
		if (cJSON_IsNumber(kw) && (double)n > kw->valuedouble) {
			snprintf(err, errlen, "%s: must be at most %g characters long", path,
				 kw->valuedouble);
			return -1;
		}
		kw = cJSON_GetObjectItemCaseSensitive(schema, "pattern");
		if (cJSON_IsString(kw)) {
			regex_t *re = pattern_of(c, kw);

			if (re == NULL) {
				snprintf(err, errlen, "%s: schema pattern %s is not a valid regex",
					 path, kw->valuestring);
				return -1;
			}
			if (regexec(re, v->valuestring, 0, NULL, 0) != 0) {
				snprintf(err, errlen, "%s: does not match pattern %s", path,
					 kw->valuestring);
				return -1;
			}
		}
	}
	if (cJSON_IsArray(v)) {
		int n = cJSON_GetArraySize(v), i = 0;

		kw = cJSON_GetObjectItemCaseSensitive(schema, "minItems");
		if (cJSON_IsNumber(kw) && n < kw->valuedouble) {
			snprintf(err, errlen, "%s: must have at least %g items", path,
				 kw->valuedouble);
			return -1;
		}
		kw = cJSON_GetObjectItemCaseSensitive(schema, "maxItems");
		if (cJSON_IsNumber(kw) && n > kw->valuedouble) {
			snprintf(err, errlen, "%s: must have at most %g items", path,
				 kw->valuedouble);
			return -1;
		}
		kw = cJSON_GetObjectItemCaseSensitive(schema, "items");
		if (cJSON_IsObject(kw)) {
			cJSON_ArrayForEach(item, v)
			{
				snprintf(sub, sizeof(sub), "%s[%d]", path, i++);
				if (validate_at(c, kw, item, sub) < 0)
					return -1;
			}
		}
	}
	if (cJSON_IsObject(v)) {
		const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
		const cJSON *extra = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");

		kw = cJSON_GetObjectItemCaseSensitive(schema, "required");
		cJSON_ArrayForEach(item, kw)
		{
			const cJSON *m;

			if (!cJSON_IsString(item))
				continue;
			m = cJSON_GetObjectItemCaseSensitive(v, item->valuestring);
			if (m == NULL) {
				snprintf(err, errlen, "%s.%s: required", path, item->valuestring);
				return -1;
			}
		}
		cJSON_ArrayForEach(item, v)
		{
			const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, item->string);

			snprintf(sub, sizeof(sub), "%s.%s", path, item->string);
			if (ps != NULL) {
				if (validate_at(c, ps, item, sub) < 0)
					return -1;
			} else if (cJSON_IsFalse(extra)) {
				snprintf(err, errlen, "%s: unknown field", sub);
				return -1;
			} else if (cJSON_IsObject(extra)) {
				if (validate_at(c, extra, item, sub) < 0)
					return -1;
			}
		}
	}
	return 0;
}

int op_schema_validate(const cJSON *schema, const cJSON *instance, const char *root, char *err,
		       size_t errlen)
{
	struct vctx c = {NULL, err, errlen};
	int rc;

	if (schema == NULL)
		return 0;
	rc = validate_at(&c, schema, instance, root ? root : "value");
	while (c.res) {
		struct re_cache *next = c.res->next;

		if (c.res->ok)
			regfree(&c.res->re);
		free(c.res);
		c.res = next;
	}
	return rc;
}

int op_schema_apply_defaults(const cJSON *schema, cJSON *instance)
{
	const cJSON *props, *ps;

	if (!cJSON_IsObject(instance))
		return 0;
	props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
	cJSON_ArrayForEach(ps, props)
	{
		cJSON *m = cJSON_GetObjectItemCaseSensitive(instance, ps->string);
		const cJSON *dflt = cJSON_GetObjectItemCaseSensitive(ps, "default");

		if (m == NULL && dflt != NULL) {
			cJSON *copy = cJSON_Duplicate(dflt, true);

			if (copy == NULL || !cJSON_AddItemToObject(instance, ps->string, copy)) {
				cJSON_Delete(copy);
				return -1;
			}
		} else if (m != NULL && op_schema_apply_defaults(ps, m) < 0) {
			return -1;
		}
	}
	return 0;
}
