/* SPDX-License-Identifier: Apache-2.0 */
/* Writers for result rows: buffered output, CSV (RFC 4180), JSON values, and the formatters
 * behind the type mapping (ISO-8601 dates, base64 bytes, exact numbers). */
#include "odbc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- buffered output --------------------------------------------------------------------- */

int od_out_init(struct od_out *o, int fd, size_t cap)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->cap = cap < 4096 ? 4096 : cap;
	o->buf = malloc(o->cap);
	if (o->buf == NULL) {
		o->err = ENOMEM;
		return -1;
	}
	return 0;
}

void od_out_release(struct od_out *o)
{
	free(o->buf);
	o->buf = NULL;
	o->len = o->cap = 0;
}

int od_out_flush(struct od_out *o)
{
	size_t off = 0;

	if (o->fd < 0 || o->err)
		return o->err ? -1 : 0;
	while (off < o->len) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			o->err = errno;
			return -1;
		}
		off += (size_t)n;
	}
	o->written += o->len;
	o->len = 0;
	return 0;
}

/* Makes room for N bytes: flushes a file buffer, grows a memory one. */
static bool room(struct od_out *o, size_t n)
{
	if (o->err)
		return false;
	if (o->cap - o->len >= n)
		return true;
	if (o->fd >= 0) {
		if (od_out_flush(o) < 0)
			return false;
		if (o->cap >= n)
			return true;
	}
	{
		size_t want = o->cap * 2;
		char *p;

		while (want - o->len < n)
			want *= 2;
		p = realloc(o->buf, want);
		if (p == NULL) {
			o->err = ENOMEM;
			return false;
		}
		o->buf = p;
		o->cap = want;
	}
	return true;
}

void od_out_put(struct od_out *o, const void *p, size_t n)
{
	if (n == 0 || !room(o, n))
		return;
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static inline void put1(struct od_out *o, char c)
{
	if (o->len < o->cap || room(o, 1))
		o->buf[o->len++] = c;
}

/* ---- formatters -------------------------------------------------------------------------- */

size_t od_fmt_u64(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t od_fmt_i64(char *out, int64_t v)
{
	if (v < 0) {
		out[0] = '-';
		return 1 + od_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
	}
	return od_fmt_u64(out, (uint64_t)v);
}

static void two(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

static size_t year(char *out, int y)
{
	if (y >= 0 && y <= 9999) {
		two(out, (unsigned)y / 100);
		two(out + 2, (unsigned)y % 100);
		return 4;
	}
	return (size_t)snprintf(out, 8, "%+05d", y);
}

size_t od_fmt_date(char *out, const SQL_DATE_STRUCT *d)
{
	size_t n = year(out, d->year);

	out[n] = '-';
	two(out + n + 1, d->month);
	out[n + 3] = '-';
	two(out + n + 4, d->day);
	return n + 6;
}

size_t od_fmt_timestamp(char *out, const SQL_TIMESTAMP_STRUCT *ts)
{
	size_t n = year(out, ts->year);
	unsigned long f = ts->fraction;

	out[n] = '-';
	two(out + n + 1, ts->month);
	out[n + 3] = '-';
	two(out + n + 4, ts->day);
	out[n + 6] = 'T';
	two(out + n + 7, ts->hour);
	out[n + 9] = ':';
	two(out + n + 10, ts->minute);
	out[n + 12] = ':';
	two(out + n + 13, ts->second);
	n += 15;
	if (f > 0 && f < 1000000000ul) {
		int digits = 9;

		while (f % 10 == 0) {
			f /= 10;
			digits--;
		}
		out[n++] = '.';
		for (int i = digits - 1; i >= 0; i--) {
			out[n + (size_t)i] = (char)('0' + f % 10);
			f /= 10;
		}
		n += (size_t)digits;
	}
	return n;
}

bool od_is_json_number(const char *p, size_t len)
{
	const char *e = p + len;

	if (p < e && *p == '-')
		p++;
	if (p == e || !isdigit((unsigned char)*p))
		return false;
	if (*p == '0')
		p++;
	else
		while (p < e && isdigit((unsigned char)*p))
			p++;
	if (p < e && *p == '.') {
		p++;
		if (p == e || !isdigit((unsigned char)*p))
			return false;
		while (p < e && isdigit((unsigned char)*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p == e || !isdigit((unsigned char)*p))
			return false;
		while (p < e && isdigit((unsigned char)*p))
			p++;
	}
	return p == e;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t od_base64(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

int od_base64_decode(const char *text, unsigned char **out, size_t *outlen)
{
	size_t len = strlen(text), n = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;
	unsigned char *buf = malloc(len / 4 * 3 + 3);

	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		const char *p;

		if (c == '=') {
			pad++;
			continue;
		}
		if (c == '\n' || c == '\r')
			continue;
		p = c ? strchr(b64, c) : NULL;
		if (p == NULL || pad) {
			free(buf);
			return -1;
		}
		acc = (acc << 6) | (unsigned)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (pad > 2 || bits >= 6) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

/* ---- JSON -------------------------------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at P (at most LEFT bytes), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned c = p[0];

	if (c < 0xC2 || c > 0xF4)
		return 0;
	if (c < 0xE0)
		return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c < 0xF0) {
		if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
		return 0;
	if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
		return 0;
	return 4;
}

void od_write_json_string(struct od_out *o, const char *text, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)text, *e = p + len;

	put1(o, '"');
	while (p < e) {
		const unsigned char *run = p;

		while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			od_out_put(o, run, (size_t)(p - run));
		if (p >= e)
			break;
		if (*p >= 0x80) {
			size_t n = utf8_seq(p, (size_t)(e - p));

			if (n) {
				od_out_put(o, p, n);
				p += n;
			} else {
				od_out_put(o, "\\ufffd", 6);
				p++;
			}
			continue;
		}
		switch (*p) {
		case '"': od_out_put(o, "\\\"", 2); break;
		case '\\': od_out_put(o, "\\\\", 2); break;
		case '\n': od_out_put(o, "\\n", 2); break;
		case '\r': od_out_put(o, "\\r", 2); break;
		case '\t': od_out_put(o, "\\t", 2); break;
		case '\b': od_out_put(o, "\\b", 2); break;
		case '\f': od_out_put(o, "\\f", 2); break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

			od_out_put(o, u, 6);
		}
		}
		p++;
	}
	put1(o, '"');
}

void od_str_json(struct od_str *s, const char *text)
{
	struct od_out o;

	if (od_out_init(&o, -1, strlen(text) + 16) < 0) {
		s->oom = true;
		return;
	}
	od_write_json_string(&o, text, strlen(text));
	if (o.err)
		s->oom = true;
	else
		od_str_put(s, o.buf, o.len);
	od_out_release(&o);
}

static void put_base64(struct od_out *o, const unsigned char *p, size_t len)
{
	char chunk[4096];

	while (len > 0) {
		size_t n = len > 3 * 1024 ? 3 * 1024 : len;

		od_out_put(o, chunk, od_base64(p, n, chunk));
		p += n;
		len -= n;
	}
}

static void put_lower(struct od_out *o, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		put1(o, (char)tolower((unsigned char)p[i]));
}

/* A non-text cell (fixed kinds) formatted into BUF; returns its length. */
static size_t fixed_text(enum od_kind kind, const struct od_cell *v, char *buf)
{
	switch (kind) {
	case OD_K_BIT:
		if (*v->p) {
			memcpy(buf, "true", 4);
			return 4;
		}
		memcpy(buf, "false", 5);
		return 5;
	case OD_K_DATE: {
		SQL_DATE_STRUCT d;

		memcpy(&d, v->p, sizeof(d));
		return od_fmt_date(buf, &d);
	}
	case OD_K_TIMESTAMP: {
		SQL_TIMESTAMP_STRUCT ts;

		memcpy(&ts, v->p, sizeof(ts));
		return od_fmt_timestamp(buf, &ts);
	}
	default:
		return 0;
	}
}

/* How an integer's text goes into JSON: 1 as a number, 0 as a string (more than 15 digits:
 * DBL_DIG, what survives any reader or writer of JSON that goes through a double, as
 * JavaScript's does), -1 not an integer at all (also a string). */
static int json_integer(const char *p, size_t len)
{
	size_t i = len > 0 && p[0] == '-' ? 1 : 0, digits = len - i;

	if (digits == 0)
		return -1;
	for (; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	return digits <= 15 ? 1 : 0;
}

void od_write_json_row(struct od_out *o, const struct od_rowset *rs, size_t r, bool as_array)
{
	put1(o, as_array ? '[' : '{');
	for (SQLSMALLINT c = 0; c < rs->ncols; c++) {
		const struct od_col *col = &rs->cols[c];
		struct od_cell v;
		char buf[48];

		if (c)
			put1(o, ',');
		if (!as_array) {
			od_out_put(o, col->json_name, strlen(col->json_name));
			put1(o, ':');
		}
		od_rowset_cell(rs, r, c, &v);
		if (v.null) {
			od_out_put(o, "null", 4);
			continue;
		}
		switch (col->kind) {
		case OD_K_INT:
			if (json_integer(v.p, v.len) == 1)
				od_out_put(o, v.p, v.len);
			else
				od_write_json_string(o, v.p, v.len);
			break;
		case OD_K_BIT:
			od_out_put(o, buf, fixed_text(col->kind, &v, buf));
			break;
		case OD_K_DATE:
		case OD_K_TIMESTAMP:
			put1(o, '"');
			od_out_put(o, buf, fixed_text(col->kind, &v, buf));
			put1(o, '"');
			break;
		case OD_K_FLOAT:
			if (od_is_json_number(v.p, v.len))
				od_out_put(o, v.p, v.len);
			else
				od_write_json_string(o, v.p, v.len); /* NaN, Infinity */
			break;
		case OD_K_GUID:
			put1(o, '"');
			put_lower(o, v.p, v.len);
			put1(o, '"');
			break;
		case OD_K_BINARY:
			put1(o, '"');
			put_base64(o, (const unsigned char *)v.p, v.len);
			put1(o, '"');
			break;
		default:
			od_write_json_string(o, v.p, v.len);
		}
	}
	put1(o, as_array ? ']' : '}');
}

/* ---- CSV --------------------------------------------------------------------------------- */

/* Writes a text field, quoted when it holds the delimiter, a quote or a line break. An empty
 * string is written "" so that it differs from NULL. */
static void csv_text(struct od_out *o, const struct od_csv *csv, const char *p, size_t len)
{
	size_t i;

	if (len == 0) {
		od_out_put(o, "\"\"", 2);
		return;
	}
	for (i = 0; i < len; i++) {
		char c = p[i];

		if (c == csv->delim || c == '"' || c == '\n' || c == '\r')
			break;
	}
	if (i == len) {
		od_out_put(o, p, len);
		return;
	}
	put1(o, '"');
	while (len > 0) {
		const char *q = memchr(p, '"', len);
		size_t n = q ? (size_t)(q - p) + 1 : len;

		od_out_put(o, p, n);
		if (q)
			put1(o, '"');
		p += n;
		len -= n;
	}
	put1(o, '"');
}

void od_write_csv_header(struct od_out *o, const struct od_csv *csv, const struct od_rowset *rs)
{
	for (SQLSMALLINT c = 0; c < rs->ncols; c++) {
		if (c)
			put1(o, csv->delim);
		csv_text(o, csv, rs->cols[c].name, strlen(rs->cols[c].name));
	}
	put1(o, '\n');
}

void od_write_csv_row(struct od_out *o, const struct od_csv *csv, const struct od_rowset *rs,
		      size_t r)
{
	for (SQLSMALLINT c = 0; c < rs->ncols; c++) {
		const struct od_col *col = &rs->cols[c];
		struct od_cell v;
		char buf[48];

		if (c)
			put1(o, csv->delim);
		od_rowset_cell(rs, r, c, &v);
		if (v.null) {
			od_out_put(o, csv->null_as, csv->null_len);
			continue;
		}
		switch (col->kind) {
		case OD_K_BIT:
		case OD_K_DATE:
		case OD_K_TIMESTAMP:
			od_out_put(o, buf, fixed_text(col->kind, &v, buf));
			break;
		case OD_K_GUID:
			put_lower(o, v.p, v.len);
			break;
		case OD_K_BINARY:
			if (v.len == 0)
				od_out_put(o, "\"\"", 2);
			else
				put_base64(o, (const unsigned char *)v.p, v.len);
			break;
		default:
			csv_text(o, csv, v.p, v.len);
		}
	}
	put1(o, '\n');
}
