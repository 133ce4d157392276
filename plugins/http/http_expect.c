/* SPDX-License-Identifier: Apache-2.0 */
/* Assertions on a response (params.expect) and the JSON path subset they use. */
#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON paths: $, .name, ['name'] / ["name"], [N] (N < 0 counts from the end) -------- */

/* One step of a path: a member name (copied into NAME) or an index. Returns the position
 * after the step, or NULL with WHY set. */
static const char *path_step(const char *p, char *name, size_t namelen, bool *is_index,
			     long *index, char *why, size_t whylen)
{
	size_t n = 0;

	if (*p == '.') {
		p++;
		while (*p && *p != '.' && *p != '[') {
			if (n + 1 >= namelen) {
				snprintf(why, whylen, "member name too long");
				return NULL;
			}
			name[n++] = *p++;
		}
		if (n == 0) {
			snprintf(why, whylen, "empty member name after '.'");
			return NULL;
		}
		name[n] = '\0';
		*is_index = false;
		return p;
	}
	if (*p == '[' && (p[1] == '\'' || p[1] == '"')) {
		char q = p[1];

		p += 2;
		while (*p && *p != q) {
			if (n + 1 >= namelen) {
				snprintf(why, whylen, "member name too long");
				return NULL;
			}
			name[n++] = *p++;
		}
		if (*p != q || p[1] != ']') {
			snprintf(why, whylen, "unterminated [%c...%c]", q, q);
			return NULL;
		}
		name[n] = '\0';
		*is_index = false;
		return p + 2;
	}
	if (*p == '[') {
		char *end;
		long v;

		p++;
		if (!isdigit((unsigned char)*p) && *p != '-') {
			snprintf(why, whylen, "expected an index, 'name' or \"name\" after '['");
			return NULL;
		}
		v = strtol(p, &end, 10);
		if (end == p || *end != ']') {
			snprintf(why, whylen, "expected ']' after the index");
			return NULL;
		}
		*index = v;
		*is_index = true;
		return end + 1;
	}
	snprintf(why, whylen, "expected '.name', '[N]' or '[\"name\"]' at \"%s\"", p);
	return NULL;
}

int http_json_path_check(const char *path, char *why, size_t whylen)
{
	char name[256];
	bool is_index;
	long index;
	const char *p = path;

	if (*p != '$') {
		snprintf(why, whylen, "a JSON path starts with $ (e.g. $.items[0].id)");
		return -1;
	}
	p++;
	while (*p) {
		p = path_step(p, name, sizeof(name), &is_index, &index, why, whylen);
		if (p == NULL)
			return -1;
	}
	return 0;
}

const cJSON *http_json_path(const cJSON *root, const char *path, char *why, size_t whylen)
{
	char name[256], at[512];
	const cJSON *node = root;
	bool is_index;
	long index;
	const char *p = path + 1;

	snprintf(at, sizeof(at), "$");
	while (*p) {
		const char *next = path_step(p, name, sizeof(name), &is_index, &index, why, whylen);

		if (next == NULL)
			return NULL;
		if (is_index) {
			int size;

			if (!cJSON_IsArray(node)) {
				snprintf(why, whylen, "%s is not a list", at);
				return NULL;
			}
			size = cJSON_GetArraySize(node);
			if (index < 0)
				index += size;
			if (index < 0 || index >= size) {
				snprintf(why, whylen, "%s has %d items, no [%.*s]", at, size,
					 (int)(next - p - 2), p + 1);
				return NULL;
			}
			node = cJSON_GetArrayItem(node, (int)index);
		} else {
			if (!cJSON_IsObject(node)) {
				snprintf(why, whylen, "%s is not an object", at);
				return NULL;
			}
			node = cJSON_GetObjectItemCaseSensitive(node, name);
			if (node == NULL) {
				snprintf(why, whylen, "no member \"%s\" in %s", name, at);
				return NULL;
			}
		}
		snprintf(at + strlen(at), sizeof(at) - strlen(at), "%.*s", (int)(next - p), p);
		p = next;
	}
	return node;
}

/* ---- assertions ---------------------------------------------------------------------- */

static void add_failure(cJSON *failures, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_failure(cJSON *failures, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddItemToArray(failures, cJSON_CreateString(msg));
}

/* The first bytes of a body, printable, for messages. */
static void snippet(const char *body, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < size && i < 80; i++) {
		unsigned char c = (unsigned char)body[i];

		out[o++] = c >= 0x20 && c != 0x7f ? (char)c : ' ';
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	if (len > 80 && o + 4 < size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void format_ranges(const struct http_spec *spec, char *out, size_t size)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < spec->n_status; i++) {
		const struct http_range *r = &spec->status[i];
		const char *sep = i == 0 ? "" : i == spec->n_status - 1 ? " or " : ", ";

		if (r->lo == r->hi)
			snprintf(out + o, size - o, "%s%d", sep, r->lo);
		else if (r->lo % 100 == 0 && r->hi == r->lo + 99)
			snprintf(out + o, size - o, "%s%dxx", sep, r->lo / 100);
		else if (r->lo % 100 == 0 && r->hi % 100 == 99)
			snprintf(out + o, size - o, "%s%dxx-%dxx", sep, r->lo / 100, r->hi / 100);
		else
			snprintf(out + o, size - o, "%s%d-%d", sep, r->lo, r->hi);
		o = strlen(out);
	}
}

void http_expect_check(const struct http_spec *spec, CURL *easy, long status,
		       const char *body, size_t body_len, bool cut, double total,
		       cJSON *failures)
{
	char a[64], b[64], snip[128];
	bool ok = false;

	for (int i = 0; i < spec->n_status; i++)
		if (status >= spec->status[i].lo && status <= spec->status[i].hi)
			ok = true;
	if (!ok) {
		char ranges[512];

		format_ranges(spec, ranges, sizeof(ranges));
		add_failure(failures, "expected status %s, got %ld%s", ranges, status,
			    spec->status_default ? " (set expect.status to accept it)" : "");
	}
	for (int i = 0; i < spec->n_exp_headers; i++) {
		const struct http_expect_header *h = &spec->exp_headers[i];
		struct curl_header *hv = NULL;

		if (curl_easy_header(easy, h->name, 0, CURLH_HEADER, -1, &hv) != CURLHE_OK ||
		    hv == NULL)
			add_failure(failures,
				    "expect.headers.%s: the response has no %s header (expected one "
				    "matching \"%s\")",
				    h->name, h->name, h->pattern);
		else if (regexec(&h->re, hv->value, 0, NULL, 0) != 0)
			add_failure(failures, "expect.headers.%s: expected to match \"%s\", got \"%s\"",
				    h->name, h->pattern, hv->value);
	}
	if (spec->body_re_compiled && regexec(&spec->body_re, body ? body : "", 0, NULL, 0) != 0) {
		snippet(body ? body : "", body_len, snip, sizeof(snip));
		if (cut) {
			http_fmt_size(spec->max_text, a, sizeof(a));
			add_failure(failures,
				    "expect.body_regex: \"%s\" not found in the first %s of the body "
				    "(raise response.max_text to search more), which starts: %s",
				    spec->body_pattern, a, snip);
		} else {
			add_failure(failures,
				    "expect.body_regex: \"%s\" not found in the body (%zu bytes), which "
				    "starts: %s",
				    spec->body_pattern, body_len, snip);
		}
	}
	if (spec->n_exp_json > 0) {
		cJSON *doc = NULL;

		if (cut) {
			http_fmt_size(spec->max_text, a, sizeof(a));
			add_failure(failures,
				    "expect.json: the body is longer than response.max_text (%s) and "
				    "was cut; raise response.max_text",
				    a);
		} else if ((doc = cJSON_ParseWithLength(body ? body : "", body_len)) == NULL) {
			snippet(body ? body : "", body_len, snip, sizeof(snip));
			add_failure(failures, "expect.json: the body is not JSON; it starts: %s", snip);
		} else {
			for (int i = 0; i < spec->n_exp_json; i++) {
				const struct http_expect_json *j = &spec->exp_json[i];
				char why[512];
				const cJSON *got = http_json_path(doc, j->path, why, sizeof(why));

				if (got == NULL) {
					add_failure(failures, "expect.json[\"%s\"]: not found: %s",
						    j->path, why);
				} else if (!cJSON_Compare(got, j->value, true)) {
					char *w = outpost_json_print(j->value, false);
					char *g = outpost_json_print(got, false);

					add_failure(failures, "expect.json[\"%s\"]: expected %.200s, got %.200s",
						    j->path, w ? w : "?", g ? g : "?");
					free(w);
					free(g);
				}
			}
		}
		cJSON_Delete(doc);
	}
	if (spec->max_latency >= 0 && total > spec->max_latency) {
		http_fmt_duration(spec->max_latency, a, sizeof(a));
		http_fmt_duration(total, b, sizeof(b));
		add_failure(failures, "expect.max_latency: expected at most %s, took %s", a, b);
	}
}
