/* SPDX-License-Identifier: Apache-2.0 */
#include "jsonprint.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for "%1.17g" of any double ("-2.2250738585072014e-308") and its NUL. */
#define NUM_TEXT 26

#define MARK_BLOCK 256

/* The numbers written as raw text while a tree prints, to be turned back afterwards: in
 * blocks, so that a text stays where it is while more are added (one walk of the tree). */
struct marks {
	struct marks *next;
	size_t n;
	cJSON *nodes[MARK_BLOCK];
	char texts[MARK_BLOCK][NUM_TEXT];
};

/* A number cJSON would print: not NaN or infinity (those it prints as null). The type test
 * is cJSON_IsNumber's, inline: this runs once a node. */
static bool is_printed_number(const cJSON *n)
{
	return (n->type & 0xFF) == cJSON_Number && !isnan(n->valuedouble) &&
	       !isinf(n->valuedouble);
}

/* Below 2^53 every integer is a double, and every double below it that is an integer too. */
#define EXACT_INT 9007199254740992.0

/* Writes K (|K| < 2^53) with DECIMALS digits after a decimal point, trailing zeros dropped:
 * 1500 with 3 is "1.5", 42 with 0 is "42". */
static void write_scaled(long long k, int decimals, char *text)
{
	char digits[24];
	int n = 0, point;
	unsigned long long u = k < 0 ? (unsigned long long)-k : (unsigned long long)k;

	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	while (n <= decimals) /* at least one digit before the point */
		digits[n++] = '0';
	if (k < 0)
		*text++ = '-';
	point = decimals;
	while (point > 0 && digits[decimals - point] == '0')
		point--; /* trailing zeros of the fraction */
	for (int i = n - 1; i >= decimals; i--)
		*text++ = digits[i];
	if (point > 0) {
		*text++ = '.';
		for (int i = decimals - 1; i >= decimals - point; i--)
			*text++ = digits[i];
	}
	*text = '\0';
}

/*
 * The text of D that reads back as D. Integers and decimals of up to 9 places (the seconds,
 * milliseconds and microseconds results are full of) are written from integers: D = K / 10^s
 * exactly as IEEE divides, so the decimal K·10^-s, which strtod rounds correctly, is D again.
 * Anything else gets "%1.15g" when that reads back as D, else "%1.17g", which always does.
 */
static void number_text(double d, char *text)
{
	static const double scale[] = {1.0, 1e3, 1e6, 1e9};

	if (fabs(d) < EXACT_INT) {
		for (int i = 0; i < 4; i++) {
			double x = d * scale[i];
			long long k;

			if (fabs(x) >= EXACT_INT)
				break;
			k = llround(x);
			if ((double)k / scale[i] == d) {
				write_scaled(k, 3 * i, text);
				return;
			}
		}
	}
	snprintf(text, NUM_TEXT, "%1.15g", d);
	if (strtod(text, NULL) != d)
		snprintf(text, NUM_TEXT, "%1.17g", d);
}

/* Writes each number under N as raw text of its own (number_text), which cJSON then copies
 * instead of printing the number itself. *HEAD is the newest block. -1 when out of memory
 * (what was marked is on the list still). */
static int mark(cJSON *n, struct marks **head)
{
	struct marks *m = *head;
	char *text;

	if (!is_printed_number(n)) {
		for (cJSON *c = n->child; c != NULL; c = c->next)
			if (mark(c, head) < 0)
				return -1;
		return 0;
	}
	if (m == NULL || m->n == MARK_BLOCK) {
		m = malloc(sizeof(*m));
		if (m == NULL)
			return -1;
		m->next = *head;
		m->n = 0;
		*head = m;
	}
	text = m->texts[m->n];
	number_text(n->valuedouble, text);
	n->valuestring = text;
	n->type = (n->type & ~0xFF) | cJSON_Raw;
	m->nodes[m->n++] = n;
	return 0;
}

/* Turns the marked nodes back into numbers and frees the blocks. */
static void unmark(struct marks *m)
{
	while (m != NULL) {
		struct marks *next = m->next;

		for (size_t i = 0; i < m->n; i++) {
			m->nodes[i]->valuestring = NULL;
			m->nodes[i]->type = (m->nodes[i]->type & ~0xFF) | cJSON_Number;
		}
		free(m);
		m = next;
	}
}

char *op_json_print(const cJSON *value, bool pretty)
{
	/* The tree is the caller's; it is changed only between here and unmark() below. */
	cJSON *v = (cJSON *)(uintptr_t)value;
	struct marks *m = NULL;
	char *text = NULL;

	if (v == NULL)
		return NULL;
	if (mark(v, &m) == 0)
		text = pretty ? cJSON_Print(v) : cJSON_PrintUnformatted(v);
	unmark(m);
	return text;
}
