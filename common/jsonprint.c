/* SPDX-License-Identifier: Apache-2.0 */
#include "jsonprint.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The numbers written as raw text while a tree prints, to be turned back afterwards. */
struct marks {
	cJSON **nodes;
	size_t n, cap;
};

/* True when cJSON's own printing of N's number could lose digits: it is not the integer
 * cJSON prints exactly, and "%1.15g" does not read back as the same double. */
static bool lossy(const cJSON *n)
{
	char text[32];
	double d = n->valuedouble;

	if (isnan(d) || isinf(d) || d == (double)n->valueint)
		return false;
	snprintf(text, sizeof(text), "%1.15g", d);
	return strtod(text, NULL) != d;
}

/* Makes N, when it is a lossy number, or each lossy number under it a raw node holding
 * "%1.17g" of it. -1 when out of memory (what was marked is in M, for unmark()). */
static int mark(cJSON *n, struct marks *m)
{
	char text[32];

	if (!cJSON_IsNumber(n)) {
		for (cJSON *c = n->child; c != NULL; c = c->next)
			if (mark(c, m) < 0)
				return -1;
		return 0;
	}
	if (!lossy(n))
		return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		cJSON **nodes = realloc(m->nodes, cap * sizeof(*nodes));

		if (nodes == NULL)
			return -1;
		m->nodes = nodes;
		m->cap = cap;
	}
	snprintf(text, sizeof(text), "%1.17g", n->valuedouble);
	n->valuestring = strdup(text);
	if (n->valuestring == NULL)
		return -1;
	n->type = (n->type & ~0xFF) | cJSON_Raw;
	m->nodes[m->n++] = n;
	return 0;
}

static void unmark(struct marks *m)
{
	for (size_t i = 0; i < m->n; i++) {
		cJSON *n = m->nodes[i];

		free(n->valuestring);
		n->valuestring = NULL;
		n->type = (n->type & ~0xFF) | cJSON_Number;
	}
	free(m->nodes);
}

char *op_json_print(const cJSON *value, bool pretty)
{
	struct marks m = {0};
	/* The tree is the caller's; it is changed only between here and unmark() below. */
	cJSON *v = (cJSON *)(uintptr_t)value;
	char *text = NULL;

	if (v == NULL)
		return NULL;
	if (mark(v, &m) == 0)
		text = pretty ? cJSON_Print(v) : cJSON_PrintUnformatted(v);
	unmark(&m);
	return text;
}
