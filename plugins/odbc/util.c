/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of the odbc plugin: growable strings, connection-string syntax, redaction. */
#include "odbc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- od_str ------------------------------------------------------------------------------ */

static bool str_reserve(struct od_str *s, size_t extra)
{
	size_t want;
	char *p;

	if (s->oom)
		return false;
	if (s->len + extra + 1 <= s->cap)
		return true;
	want = s->cap ? s->cap : 64;
	while (want < s->len + extra + 1)
		want *= 2;
	p = realloc(s->p, want);
	if (p == NULL) {
		s->oom = true;
		return false;
	}
	s->p = p;
	s->cap = want;
	return true;
}

bool od_str_reserve(struct od_str *s, size_t extra)
{
	return str_reserve(s, extra);
}

void od_str_put(struct od_str *s, const void *data, size_t len)
{
	if (!str_reserve(s, len))
		return;
	if (len)
		memcpy(s->p + s->len, data, len);
	s->len += len;
	s->p[s->len] = '\0';
}

void od_str_puts(struct od_str *s, const char *text)
{
	od_str_put(s, text, strlen(text));
}

void od_str_vprintf(struct od_str *s, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || !str_reserve(s, (size_t)n))
		return;
	vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
	s->len += (size_t)n;
}

void od_str_printf(struct od_str *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	od_str_vprintf(s, fmt, ap);
	va_end(ap);
}

void od_str_reset(struct od_str *s)
{
	s->len = 0;
	if (s->p)
		s->p[0] = '\0';
}

void od_str_release(struct od_str *s)
{
	free(s->p);
	s->p = NULL;
	s->len = s->cap = 0;
	s->oom = false;
}

const char *od_str_cstr(const struct od_str *s)
{
	return s->p && !s->oom ? s->p : "";
}

double od_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- connection strings ------------------------------------------------------------------ */

/*
 * ODBC connection strings are KEY=VALUE pairs separated by ';'. A value may be wrapped in
 * braces, inside which ';' is literal and '}' is written '}}'. Drivers differ in what else they
 * accept, so values are braced whenever they hold anything but plain characters.
 */
void od_connstr_append(struct od_str *s, const char *key, const char *value, size_t len)
{
	bool brace = len > 0 && (isspace((unsigned char)value[0]) ||
				 isspace((unsigned char)value[len - 1]));
	size_t i;

	for (i = 0; i < len && !brace; i++)
		if (value[i] == ';' || value[i] == '{' || value[i] == '}' || value[i] == '=')
			brace = true;
	if (s->len > 0 && s->p[s->len - 1] != ';')
		od_str_put(s, ";", 1);
	od_str_puts(s, key);
	od_str_put(s, "=", 1);
	if (!brace) {
		od_str_put(s, value, len);
	} else {
		od_str_put(s, "{", 1);
		for (i = 0; i < len; i++) {
			od_str_put(s, value + i, 1);
			if (value[i] == '}')
				od_str_put(s, "}", 1);
		}
		od_str_put(s, "}", 1);
	}
	od_str_put(s, ";", 1);
}

/* Reads the pair at *CUR: key into KEY, value (braces resolved) into VAL. Returns 1, 0 at
 * the end, -1 on a malformed string (an unterminated brace). */
static int connstr_next(const char **cur, struct od_str *key, struct od_str *val)
{
	const char *p = *cur;

	od_str_reset(key);
	od_str_reset(val);
	while (*p == ';' || isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		*cur = p;
		return 0;
	}
	while (*p && *p != '=' && *p != ';')
		od_str_put(key, p++, 1);
	while (key->len > 0 && isspace((unsigned char)key->p[key->len - 1]))
		key->p[--key->len] = '\0';
	if (*p == '=') {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '{') {
			p++;
			for (;;) {
				if (*p == '\0')
					return -1;
				if (*p == '}') {
					if (p[1] == '}') {
						od_str_put(val, "}", 1);
						p += 2;
						continue;
					}
					p++;
					break;
				}
				od_str_put(val, p++, 1);
			}
			while (*p && *p != ';')
				p++;
		} else {
			while (*p && *p != ';')
				od_str_put(val, p++, 1);
			while (val->len > 0 && isspace((unsigned char)val->p[val->len - 1]))
				val->p[--val->len] = '\0';
		}
	}
	*cur = p;
	return 1;
}

int od_connstr_get(const char *cs, const char *key, char *out, size_t outlen)
{
	struct od_str k = {0}, v = {0};
	const char *cur = cs;
	int rc, found = 0;

	while ((rc = connstr_next(&cur, &k, &v)) > 0) {
		if (strcasecmp(od_str_cstr(&k), key) == 0) {
			snprintf(out, outlen, "%s", od_str_cstr(&v));
			found = 1;
		}
	}
	od_str_release(&k);
	od_str_release(&v);
	return rc < 0 ? -1 : found;
}

int od_connstr_each(const char *cs, int (*fn)(void *arg, const char *key, const char *val),
		    void *arg)
{
	struct od_str k = {0}, v = {0};
	const char *cur = cs;
	int rc;

	while ((rc = connstr_next(&cur, &k, &v)) > 0) {
		rc = fn(arg, od_str_cstr(&k), od_str_cstr(&v));
		if (rc != 0)
			break;
	}
	od_str_release(&k);
	od_str_release(&v);
	return rc;
}

/* ---- redaction --------------------------------------------------------------------------- */

void od_redactor_add(struct od_redactor *r, const char *value, size_t len)
{
	/* One- and two-character values would turn ordinary text into noise. */
	if (value == NULL || len < 3 || r->n >= sizeof(r->values) / sizeof(r->values[0]))
		return;
	r->values[r->n] = value;
	r->lens[r->n] = len;
	r->n++;
}

static const char redacted[] = "[REDACTED]";

/* Length of VALUE at P in one of the forms drivers echo it: raw (mode 0), %-encoded with lower
 * or upper-case hex (modes 1, 2: psqlODBC's out-connection strings), or with '}' doubled as
 * inside an ODBC brace value (mode 3: psqlODBC quotes a braced UID that way). 0: no match. */
static size_t match_form(const char *v, size_t n, const char *p, size_t left, int mode)
{
	static const char hex[] = "0123456789abcdef0123456789ABCDEF";
	size_t j, k = 0;

	for (j = 0; j < n; j++) {
		unsigned char c = (unsigned char)v[j];

		if (mode == 3 && c == '}') {
			if (k + 2 > left || p[k] != '}' || p[k + 1] != '}')
				return 0;
			k += 2;
		} else if ((mode == 1 || mode == 2) &&
			   !(isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')) {
			const char *h = hex + (mode == 2 ? 16 : 0);

			if (k + 3 > left || p[k] != '%' || p[k + 1] != h[c >> 4] ||
			    p[k + 2] != h[c & 15])
				return 0;
			k += 3;
		} else {
			if (k >= left || p[k] != (char)c)
				return 0;
			k++;
		}
	}
	return k;
}

/* Length of a registered value, in any form it is echoed in, at P; or 0. */
static size_t secret_at(const struct od_redactor *r, const char *p, size_t left)
{
	for (size_t i = 0; i < r->n; i++)
		for (int mode = 0; mode < 4; mode++) {
			size_t k = match_form(r->values[i], r->lens[i], p, left, mode);

			if (k > 0)
				return k;
		}
	return 0;
}

/* Length of "PWD=" / "password=" (any case) at P when P starts a key, else 0. */
static size_t password_key_at(const char *text, const char *p)
{
	static const char *const keys[] = {"pwd", "password", "passwd"};

	if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t n = strlen(keys[i]);
		const char *q = p + n;

		if (strncasecmp(p, keys[i], n) != 0)
			continue;
		while (*q == ' ')
			q++;
		if (*q == '=' || (*q == ':' && q[1] == ' '))
			return (size_t)(q - p) + 1;
	}
	return 0;
}

void od_redact(const struct od_redactor *r, const char *text, struct od_str *out)
{
	const char *p = text;
	size_t left = strlen(text);

	while (*p) {
		size_t n = r ? secret_at(r, p, left) : 0;

		if (n > 0) {
			od_str_puts(out, redacted);
			p += n;
			left -= n;
			continue;
		}
		n = password_key_at(text, p);
		if (n > 0) {
			const char *v = p + n;

			while (*v == ' ')
				v++;
			od_str_put(out, p, (size_t)(v - p));
			if (*v == '{') {
				v++;
				while (*v && !(*v == '}' && v[1] != '}'))
					v += (*v == '}') ? 2 : 1;
				if (*v == '}')
					v++;
			} else {
				while (*v && *v != ';' && *v != '&' && *v != ' ' && *v != '\n' &&
				       *v != '"' && *v != '\'')
					v++;
			}
			od_str_puts(out, redacted);
			left -= (size_t)(v - p);
			p = v;
			continue;
		}
		od_str_put(out, p, 1);
		p++;
		left--;
	}
	if (out->p == NULL)
		od_str_put(out, "", 0);
}
