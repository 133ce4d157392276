/* SPDX-License-Identifier: Apache-2.0 */
/* Splits an SQL script into statements at top-level semicolons. */
#include "odbc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void od_free_statements(char **stmts, long n)
{
	for (long i = 0; i < n; i++)
		free(stmts[i]);
	free(stmts);
}

/* The end of the whitespace and comments that start [P, E). */
static const char *skip_blank(const char *p, const char *e)
{
	for (;;) {
		while (p < e && isspace((unsigned char)*p))
			p++;
		if (p + 1 < e && p[0] == '-' && p[1] == '-') {
			while (p < e && *p != '\n')
				p++;
		} else if (p + 1 < e && p[0] == '/' && p[1] == '*') {
			const char *q = p + 2;

			while (q + 1 < e && !(q[0] == '*' && q[1] == '/'))
				q++;
			p = q + 1 < e ? q + 2 : e;
		} else {
			return p;
		}
	}
}

/* Appends [P, E) to the list without its leading comments (some drivers split statements at
 * semicolons inside them) and surrounding whitespace. */
static int push(char ***list, long *n, long *cap, const char *p, const char *e)
{
	char *s;

	p = skip_blank(p, e);
	while (e > p && isspace((unsigned char)e[-1]))
		e--;
	if (p == e)
		return 0;
	if (*n == *cap) {
		long want = *cap ? *cap * 2 : 16;
		char **l = realloc(*list, (size_t)want * sizeof(*l));

		if (l == NULL)
			return -1;
		*list = l;
		*cap = want;
	}
	s = malloc((size_t)(e - p) + 1);
	if (s == NULL)
		return -1;
	memcpy(s, p, (size_t)(e - p));
	s[e - p] = '\0';
	(*list)[(*n)++] = s;
	return 0;
}

/* Length of a PostgreSQL dollar-quote tag ($$ or $name$) at P, or 0. */
static size_t dollar_tag(const char *p)
{
	const char *q = p + 1;

	if (*p != '$')
		return 0;
	if (*q == '$')
		return 2;
	if (!(isalpha((unsigned char)*q) || *q == '_'))
		return 0;
	while (isalnum((unsigned char)*q) || *q == '_')
		q++;
	return *q == '$' ? (size_t)(q - p) + 1 : 0;
}

/*
 * Statements end at ';' outside of: '...' strings ('' escapes; E'...' also \ escapes),
 * "..." and `...` and [...] identifiers, line (--) and block comments, and $tag$...$tag$ bodies.
 * Procedural blocks whose bodies hold bare semicolons (SQLite triggers, BEGIN ... END) need
 * params.statements instead.
 */
long od_split_script(const char *script, char ***stmts)
{
	const char *p = script, *start = script;
	char **list = NULL;
	long n = 0, cap = 0;

	while (*p) {
		size_t tag;

		if (*p == '\'') {
			bool backslash = p > script && (p[-1] == 'E' || p[-1] == 'e') &&
					 (p - 1 == script || !isalnum((unsigned char)p[-2]));

			for (p++; *p; p++) {
				if (backslash && *p == '\\' && p[1]) {
					p++;
				} else if (*p == '\'') {
					if (p[1] == '\'')
						p++;
					else
						break;
				}
			}
			if (*p)
				p++;
		} else if (*p == '"' || *p == '`' || *p == '[') {
			char close = *p == '[' ? ']' : *p;

			for (p++; *p; p++) {
				if (*p == close) {
					if (p[1] == close && close != ']')
						p++;
					else
						break;
				}
			}
			if (*p)
				p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			const char *end = strstr(p + 2, "*/");

			p = end ? end + 2 : p + strlen(p);
		} else if ((tag = dollar_tag(p)) > 0 &&
			   (p == script || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
			const char *end = p + tag;

			for (;;) {
				end = strchr(end, '$');
				if (end == NULL || strncmp(end, p, tag) == 0)
					break;
				end++;
			}
			p = end ? end + tag : p + strlen(p);
		} else if (*p == ';') {
			if (push(&list, &n, &cap, start, p) < 0)
				goto oom;
			start = ++p;
		} else {
			p++;
		}
	}
	if (push(&list, &n, &cap, start, p) < 0)
		goto oom;
	if (list == NULL) {
		list = malloc(sizeof(*list));
		if (list == NULL)
			goto oom;
	}
	*stmts = list;
	return n;
oom:
	od_free_statements(list, n);
	return -1;
}
