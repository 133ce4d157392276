/* SPDX-License-Identifier: Apache-2.0 */
/* Redaction: a plain scan for each secret value plus a scan for token prefixes. */
#include "redact.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ASCII only, whatever the locale: tokens and secrets are matched byte for byte. */
static int is_word_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '_';
}

/* Outpost tokens look like oe_XXXX (enrollment) and oa_XXXX (admin): see server/tokens. */
static size_t token_at(const char *s, size_t left)
{
	size_t n;

	if (left < 3 || s[0] != 'o' || (s[1] != 'e' && s[1] != 'a') || s[2] != '_')
		return 0;
	for (n = 3; n < left && (is_word_char(s[n]) || s[n] == '-'); n++)
		;
	return n >= 3 + 16 ? n : 0;
}

/* Bytes that JSON escapes: a value starting with one starts with a backslash when escaped. */
static int json_escaped(unsigned char c)
{
	return c == '"' || c == '\\' || c < 0x20;
}

int op_redactor_add(struct op_redactor *r, const char *value, size_t len)
{
	char **values;
	size_t *lens;
	char *copy;

	if (len < 4)
		return 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->lens[i] == len && memcmp(r->values[i], value, len) == 0)
			return 0;
	values = realloc(r->values, (r->n + 1) * sizeof(*values));
	if (values == NULL)
		return -1;
	r->values = values;
	lens = realloc(r->lens, (r->n + 1) * sizeof(*lens));
	if (lens == NULL)
		return -1;
	r->lens = lens;
	copy = malloc(len + 1);
	if (copy == NULL)
		return -1;
	memcpy(copy, value, len);
	copy[len] = '\0';
	r->values[r->n] = copy;
	r->lens[r->n] = len;
	r->n++;
	r->starts[(unsigned char)value[0]] = 1;
	if (json_escaped((unsigned char)value[0]))
		r->starts['\\'] = 1;
	return 0;
}

void op_redactor_release(struct op_redactor *r)
{
	for (size_t i = 0; i < r->n; i++) {
		explicit_bzero(r->values[i], r->lens[i]);
		free(r->values[i]);
	}
	free(r->values);
	free(r->lens);
	r->values = NULL;
	r->lens = NULL;
	r->n = 0;
	memset(r->starts, 0, sizeof(r->starts));
}

/* The length of the secret starting at S, or 0. Checks raw and JSON-escaped forms. */
static size_t secret_at(const struct op_redactor *r, const char *s, size_t left)
{
	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		const char *v = r->values[i];
		size_t j = 0, k = 0;

		if (r->lens[i] <= left && memcmp(s, v, r->lens[i]) == 0)
			return r->lens[i];
		/* The JSON-escaped form: \" \\ \n \t \r \/ and \u00XX for control bytes. */
		while (j < r->lens[i] && k < left) {
			unsigned char c = (unsigned char)v[j];

			if (json_escaped(c)) {
				if (s[k] != '\\')
					break;
				k++;
				if (k >= left)
					break;
				if ((c == '"' && s[k] == '"') || (c == '\\' && s[k] == '\\') ||
				    (c == '\n' && s[k] == 'n') || (c == '\t' && s[k] == 't') ||
				    (c == '\r' && s[k] == 'r')) {
					k++;
				} else if (s[k] == 'u' && k + 4 < left) {
					char hex[5] = {s[k + 1], s[k + 2], s[k + 3], s[k + 4], 0};

					if (strtoul(hex, NULL, 16) != c)
						break;
					k += 5;
				} else {
					break;
				}
			} else if ((unsigned char)s[k] == c) {
				k++;
			} else {
				break;
			}
			j++;
		}
		if (j == r->lens[i] && k > r->lens[i])
			return k;
	}
	return 0;
}

/* The first I from FROM on (or STOP) where a secret or a token may start: most text has
 * none, and this loop is all it costs. */
static size_t next_candidate(const struct op_redactor *r, const char *in, size_t from,
			     size_t stop)
{
	size_t i = from;

	if (i >= stop)
		return i;
	if (r == NULL || r->n == 0) {
		const char *o = memchr(in + i, 'o', stop - i);

		return o ? (size_t)(o - in) : stop;
	}
	while (i < stop && in[i] != 'o' && !r->starts[(unsigned char)in[i]])
		i++;
	return i;
}

/* Redacts IN[0..len) into OUT, but only matches that start before STOP; returns how many
 * input bytes were consumed (at least STOP, more when a match runs past it). */
static size_t redact_part(const struct op_redactor *r, const char *in, size_t len, size_t stop,
			  struct op_buf *out, int *oom)
{
	size_t i = 0, start = 0;

	while ((i = next_candidate(r, in, i, stop)) < stop) {
		size_t n = secret_at(r, in + i, len - i);

		if (n == 0 && (i == 0 || !is_word_char(in[i - 1])))
			n = token_at(in + i, len - i);
		if (n > 0) {
			if (op_buf_append(out, in + start, i - start) < 0 ||
			    op_buf_puts(out, OP_REDACTED) < 0)
				*oom = 1;
			i += n;
			start = i;
		} else {
			i++;
		}
	}
	if (op_buf_append(out, in + start, i - start) < 0)
		*oom = 1;
	return i;
}

int op_redact(const struct op_redactor *r, const char *in, size_t len, struct op_buf *out)
{
	int oom = 0;

	redact_part(r, in, len, len, out, &oom);
	return oom ? -1 : 0;
}

size_t op_redact_holdback(const struct op_redactor *r)
{
	size_t h = 128; /* tokens are far shorter than this */

	for (size_t i = 0; r != NULL && i < r->n; i++)
		if (r->lens[i] * 6 > h)
			h = r->lens[i] * 6; /* the JSON-escaped form may be 6 bytes a byte */
	return h;
}

int op_redact_stream(const struct op_redactor *r, struct op_buf *pending, int final,
		     struct op_buf *out)
{
	size_t hold = final ? 0 : op_redact_holdback(r), stop, used;
	int oom = 0;

	if (pending->len <= hold)
		return 0;
	stop = pending->len - hold;
	used = redact_part(r, pending->data, pending->len, stop, out, &oom);
	op_buf_consume(pending, used);
	return oom ? -1 : 0;
}

int op_redact_needed(const struct op_redactor *r, const char *text, size_t len)
{
	for (size_t i = 0; (i = next_candidate(r, text, i, len)) < len; i++) {
		if (secret_at(r, text + i, len - i))
			return 1;
		if ((i == 0 || !is_word_char(text[i - 1])) && token_at(text + i, len - i))
			return 1;
	}
	return 0;
}
