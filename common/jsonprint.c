/* SPDX-License-Identifier: Apache-2.0 */
#include "jsonprint.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for "%1.17g" of any double ("-2.2250738585072014e-308") and its NUL. */
#define NUM_TEXT 26

/* The numbers written as raw text while a tree prints, to be turned back afterwards. */
struct marks {
	cJSON **nodes;
	char *texts; /* NUM_TEXT bytes a node */
	size_t n;
};

/* True for a number cJSON would print with "%1.15g" and a loose round-trip check: not an
 * integer it prints exactly as one, not NaN or infinity (printed as null). */
static bool is_fraction(const cJSON *n)
{
	double d = n->valuedouble;

	return cJSON_IsNumber(n) && !isnan(d) && !isinf(d) && d != (double)n->valueint;
}

static size_t count(const cJSON *n)
{
	size_t k = 0;

	if (is_fraction(n))
		return 1;
	for (const cJSON *c = n->child; c != NULL; c = c->next)
		k += count(c);
	return k;
}

/* Writes each such number under N as raw text of its own: "%1.15g" when that reads back as
 * the same double, otherwise "%1.17g", which always does. cJSON then copies the text instead
 * of printing the number itself. */
static void mark(cJSON *n, struct marks *m)
{
	char *text;

	if (!is_fraction(n)) {
		for (cJSON *c = n->child; c != NULL; c = c->next)
			mark(c, m);
		return;
	}
	text = m->texts + m->n * NUM_TEXT;
	snprintf(text, NUM_TEXT, "%1.15g", n->valuedouble);
	if (strtod(text, NULL) != n->valuedouble)
		snprintf(text, NUM_TEXT, "%1.17g", n->valuedouble);
	n->valuestring = text;
	n->type = (n->type & ~0xFF) | cJSON_Raw;
	m->nodes[m->n++] = n;
}

static void unmark(struct marks *m)
{
	for (size_t i = 0; i < m->n; i++) {
		cJSON *n = m->nodes[i];

		n->valuestring = NULL;
		n->type = (n->type & ~0xFF) | cJSON_Number;
	}
}

char *op_json_print(const cJSON *value, bool pretty)
{
	/* The tree is the caller's; it is changed only between here and unmark() below. */
	cJSON *v = (cJSON *)(uintptr_t)value;
	struct marks m = {0};
	char *text = NULL;
	size_t k;

	if (v == NULL)
		return NULL;
	k = count(v);
	if (k > 0) {
		m.nodes = malloc(k * sizeof(*m.nodes));
		m.texts = malloc(k * NUM_TEXT);
		if (m.nodes == NULL || m.texts == NULL)
			goto out;
		mark(v, &m);
	}
	text = pretty ? cJSON_Print(v) : cJSON_PrintUnformatted(v);
	unmark(&m);
out:
	free(m.nodes);
	free(m.texts);
	return text;
}
