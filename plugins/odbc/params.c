/* SPDX-License-Identifier: Apache-2.0 */
/* Positional parameters: JSON values (plain or {"type", "value"}) to SQLBindParameter. */
#include "odbc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LONG_TEXT 4000   /* longer strings bind as SQL_LONGVARCHAR */
#define LONG_BINARY 8000 /* longer byte strings bind as SQL_LONGVARBINARY */

void od_params_release(struct od_params *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->p[i].owned);
	free(ps->p);
	ps->p = NULL;
	ps->n = 0;
}

static const char *json_kind(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsArray(v))
		return "a list";
	if (cJSON_IsObject(v))
		return "an object";
	return "null";
}

/* "got ..." for messages: strings quoted (cut), other values by kind. */
static void got(const cJSON *v, char *out, size_t outlen)
{
	if (cJSON_IsString(v))
		snprintf(out, outlen, "\"%.60s%s\"", v->valuestring,
			 strlen(v->valuestring) > 60 ? "..." : "");
	else if (cJSON_IsNumber(v))
		snprintf(out, outlen, "%.17g", v->valuedouble);
	else
		snprintf(out, outlen, "%s", json_kind(v));
}

static int digits(const char *p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_date(int y, int m, int d)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (y < 1 || m < 1 || m > 12 || d < 1)
		return false;
	return d <= mdays[m - 1] + (m == 2 && leap(y) ? 1 : 0);
}

/* YYYY-MM-DD at P. Returns 0 or -1. */
static int parse_date(const char *p, SQL_DATE_STRUCT *out)
{
	int y, m, d;

	if (digits(p, 4, &y) < 0 || p[4] != '-' || digits(p + 5, 2, &m) < 0 || p[7] != '-' ||
	    digits(p + 8, 2, &d) < 0 || !valid_date(y, m, d))
		return -1;
	out->year = (SQLSMALLINT)y;
	out->month = (SQLUSMALLINT)m;
	out->day = (SQLUSMALLINT)d;
	return 0;
}

/* HH:MM[:SS[.fraction]] at P; *end is set past it. *frac_digits counts the fraction's digits. */
static int parse_time(const char *p, int *h, int *mi, int *s, unsigned long *nanos,
		      int *frac_digits, const char **end)
{
	*s = 0;
	*nanos = 0;
	*frac_digits = 0;
	if (digits(p, 2, h) < 0 || p[2] != ':' || digits(p + 3, 2, mi) < 0 || *h > 23 || *mi > 59)
		return -1;
	p += 5;
	if (*p == ':') {
		if (digits(p + 1, 2, s) < 0 || *s > 60)
			return -1;
		p += 3;
		if (*p == '.') {
			unsigned long scale = 100000000;

			p++;
			if (!isdigit((unsigned char)*p))
				return -1;
			while (isdigit((unsigned char)*p)) {
				if (*frac_digits < 9) {
					*nanos += (unsigned long)(*p - '0') * scale;
					scale /= 10;
				}
				(*frac_digits)++;
				p++;
			}
		}
	}
	*end = p;
	return 0;
}

/* An integer from a JSON number or a decimal string. */
static int to_int64(const cJSON *v, int64_t *out)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (!isfinite(d) || floor(d) != d || fabs(d) > 9007199254740992.0)
			return -1;
		*out = (int64_t)d;
		return 0;
	}
	if (cJSON_IsString(v)) {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(v->valuestring, &end, 10);
		if (errno || end == v->valuestring || *end)
			return -1;
		*out = n;
		return 0;
	}
	return -1;
}

static bool is_decimal_text(const char *p)
{
	bool digit = false;

	if (*p == '+' || *p == '-')
		p++;
	while (isdigit((unsigned char)*p)) {
		p++;
		digit = true;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			p++;
			digit = true;
		}
	}
	return digit && *p == '\0';
}

static int own_text(struct od_param *p, const char *text, size_t len)
{
	p->owned = malloc(len + 1);
	if (p->owned == NULL)
		return -1;
	memcpy(p->owned, text, len);
	p->owned[len] = '\0';
	p->data = p->owned;
	p->buflen = (SQLLEN)len + 1;
	p->ind = (SQLLEN)len;
	return 0;
}

/* Integers go as decimal text typed SQL_BIGINT: SQLite ODBC converts SQL_C_SBIGINT through a
 * double and loses digits beyond 2^53; text converts exactly everywhere. */
static int set_integer(struct od_param *p, int64_t v)
{
	char digits[24];
	size_t n = od_fmt_i64(digits, v);

	p->ctype = SQL_C_CHAR;
	p->sqltype = SQL_BIGINT;
	p->size = 19;
	return own_text(p, digits, n);
}

static void set_null(struct od_param *p, SQLSMALLINT ctype, SQLSMALLINT sqltype)
{
	p->ctype = ctype;
	p->sqltype = sqltype;
	p->size = 1;
	p->data = &p->v;
	p->buflen = 0;
	p->ind = SQL_NULL_DATA;
}

static void set_string(struct od_param *p, const char *text)
{
	size_t len = strlen(text);

	p->ctype = SQL_C_CHAR;
	p->sqltype = len > LONG_TEXT ? SQL_LONGVARCHAR : SQL_VARCHAR;
	p->size = len ? len : 1;
}

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -1)

/* Converts one typed value {"type": T, "value": V}. */
static int typed(const char *where, const cJSON *obj, struct od_param *p, char *err,
		 size_t errlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "value");
	const char *type = cJSON_IsString(t) ? t->valuestring : "";
	char g[96];

	got(v, g, sizeof(g));
	if (strcmp(type, "string") == 0) {
		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_CHAR, SQL_VARCHAR), 0;
		if (!cJSON_IsString(v))
			return FAIL("%s.value: expected a string, got %s", where, g);
		set_string(p, v->valuestring);
		return own_text(p, v->valuestring, strlen(v->valuestring)) < 0
			       ? FAIL("out of memory")
			       : 0;
	}
	if (strcmp(type, "integer") == 0) {
		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_SBIGINT, SQL_BIGINT), 0;
		if (to_int64(v, &p->v.i) < 0)
			return FAIL("%s.value: expected an integer (a number, or a string of digits "
				    "beyond 2^53), got %s",
				    where, g);
		return set_integer(p, p->v.i) < 0 ? FAIL("out of memory") : 0;
	}
	if (strcmp(type, "number") == 0) {
		char *end = NULL;

		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_DOUBLE, SQL_DOUBLE), 0;
		if (cJSON_IsNumber(v))
			p->v.d = v->valuedouble;
		else if (cJSON_IsString(v) && (p->v.d = strtod(v->valuestring, &end), 1) &&
			 end != v->valuestring && *end == '\0')
			;
		else
			return FAIL("%s.value: expected a number, got %s", where, g);
		p->ctype = SQL_C_DOUBLE;
		p->sqltype = SQL_DOUBLE;
		p->size = 15;
		p->data = &p->v.d;
		return 0;
	}
	if (strcmp(type, "decimal") == 0) {
		char num[64];
		const char *text, *dot;

		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_CHAR, SQL_DECIMAL), 0;
		if (cJSON_IsNumber(v)) {
			snprintf(num, sizeof(num), "%.15g", v->valuedouble);
			text = num;
		} else if (cJSON_IsString(v)) {
			text = v->valuestring;
		} else {
			text = "";
		}
		if (!is_decimal_text(text))
			return FAIL("%s.value: expected a decimal such as \"12.50\", got %s", where,
				    g);
		dot = strchr(text, '.');
		p->ctype = SQL_C_CHAR;
		p->sqltype = SQL_DECIMAL;
		p->digits = dot ? (SQLSMALLINT)strlen(dot + 1) : 0;
		p->size = 0;
		for (const char *c = text; *c; c++)
			p->size += isdigit((unsigned char)*c) ? 1 : 0;
		if ((SQLULEN)p->digits > p->size)
			p->size = (SQLULEN)p->digits;
		return own_text(p, text, strlen(text)) < 0 ? FAIL("out of memory") : 0;
	}
	if (strcmp(type, "boolean") == 0) {
		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_BIT, SQL_BIT), 0;
		if (!cJSON_IsBool(v))
			return FAIL("%s.value: expected true or false, got %s", where, g);
		p->ctype = SQL_C_BIT;
		p->sqltype = SQL_BIT;
		p->size = 1;
		p->v.b = cJSON_IsTrue(v) ? 1 : 0;
		p->data = &p->v.b;
		return 0;
	}
	if (strcmp(type, "date") == 0) {
		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_TYPE_DATE, SQL_TYPE_DATE), 0;
		if (!cJSON_IsString(v) || strlen(v->valuestring) != 10 ||
		    parse_date(v->valuestring, &p->v.date) < 0)
			return FAIL("%s.value: expected a date such as \"2024-01-31\", got %s", where,
				    g);
		p->ctype = SQL_C_TYPE_DATE;
		p->sqltype = SQL_TYPE_DATE;
		p->size = 10;
		p->data = &p->v.date;
		return 0;
	}
	if (strcmp(type, "time") == 0) {
		int h, mi, s, fd;
		unsigned long ns;
		const char *end;

		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_CHAR, SQL_TYPE_TIME), 0;
		if (!cJSON_IsString(v) ||
		    parse_time(v->valuestring, &h, &mi, &s, &ns, &fd, &end) < 0 || *end)
			return FAIL("%s.value: expected a time such as \"13:45:00\" or "
				    "\"13:45:00.250\", got %s",
				    where, g);
		p->ctype = SQL_C_CHAR;
		p->sqltype = SQL_TYPE_TIME;
		p->size = strlen(v->valuestring);
		p->digits = (SQLSMALLINT)(fd > 9 ? 9 : fd);
		return own_text(p, v->valuestring, strlen(v->valuestring)) < 0
			       ? FAIL("out of memory")
			       : 0;
	}
	if (strcmp(type, "timestamp") == 0) {
		const char *s = cJSON_IsString(v) ? v->valuestring : "", *end = s;
		int h, mi, sec, fd;
		unsigned long ns;

		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_TYPE_TIMESTAMP, SQL_TYPE_TIMESTAMP), 0;
		if (strlen(s) < 16 || parse_date(s, &p->v.date) < 0 ||
		    (s[10] != 'T' && s[10] != ' ') ||
		    parse_time(s + 11, &h, &mi, &sec, &ns, &fd, &end) < 0)
			return FAIL("%s.value: expected a date-time such as "
				    "\"2024-01-31T13:45:00.250\", got %s",
				    where, g);
		if (*end != '\0')
			return FAIL("%s.value: expected a date-time without a time zone, such as "
				    "\"2024-01-31T13:45:00\" (convert it to the database's zone, or "
				    "pass a string and cast it in SQL), got %s",
				    where, g);
		{
			SQL_DATE_STRUCT d = p->v.date;

			p->v.ts.year = d.year;
			p->v.ts.month = d.month;
			p->v.ts.day = d.day;
		}
		p->v.ts.hour = (SQLUSMALLINT)h;
		p->v.ts.minute = (SQLUSMALLINT)mi;
		p->v.ts.second = (SQLUSMALLINT)sec;
		p->v.ts.fraction = (SQLUINTEGER)ns;
		p->ctype = SQL_C_TYPE_TIMESTAMP;
		p->sqltype = SQL_TYPE_TIMESTAMP;
		p->digits = (SQLSMALLINT)(fd > 9 ? 9 : fd);
		p->size = (SQLULEN)(19 + (p->digits ? 1 + p->digits : 0));
		p->data = &p->v.ts;
		return 0;
	}
	if (strcmp(type, "binary") == 0) {
		unsigned char *bytes = NULL;
		size_t n = 0;

		if (v == NULL || cJSON_IsNull(v))
			return set_null(p, SQL_C_BINARY, SQL_VARBINARY), 0;
		if (!cJSON_IsString(v) || od_base64_decode(v->valuestring, &bytes, &n) < 0)
			return FAIL("%s.value: expected base64 bytes such as \"AP8=\", got %s", where,
				    g);
		p->owned = (char *)bytes;
		p->data = bytes;
		p->ctype = SQL_C_BINARY;
		p->sqltype = n > LONG_BINARY ? SQL_LONGVARBINARY : SQL_VARBINARY;
		p->size = n ? n : 1;
		p->buflen = (SQLLEN)n;
		p->ind = (SQLLEN)n;
		return 0;
	}
	return FAIL("%s.type: expected one of string, integer, number, decimal, boolean, date, "
		    "time, timestamp, binary, got %s",
		    where, cJSON_IsString(t) ? type : json_kind(t));
}

int od_params_prepare(const cJSON *list, struct od_params *out, char *err, size_t errlen)
{
	struct od_params ps = {0};
	const cJSON *v;
	size_t i = 0;
	int n;

	if (list == NULL || cJSON_IsNull(list)) {
		if (out)
			*out = ps;
		return 0;
	}
	if (!cJSON_IsArray(list))
		return FAIL("params.params: expected a list, got %s", json_kind(list));
	n = cJSON_GetArraySize(list);
	ps.p = calloc((size_t)(n ? n : 1), sizeof(*ps.p));
	if (ps.p == NULL)
		return FAIL("out of memory");
	ps.n = (size_t)n;
	cJSON_ArrayForEach(v, list)
	{
		struct od_param *p = &ps.p[i];
		char where[48];
		int rc = 0;

		snprintf(where, sizeof(where), "params.params[%zu]", i);
		if (cJSON_IsNull(v)) {
			set_null(p, SQL_C_CHAR, SQL_VARCHAR);
		} else if (cJSON_IsBool(v)) {
			p->ctype = SQL_C_BIT;
			p->sqltype = SQL_BIT;
			p->size = 1;
			p->v.b = cJSON_IsTrue(v) ? 1 : 0;
			p->data = &p->v.b;
		} else if (cJSON_IsNumber(v)) {
			double d = v->valuedouble;

			if (isfinite(d) && floor(d) == d && fabs(d) <= 9007199254740992.0) {
				if (set_integer(p, (int64_t)d) < 0)
					rc = FAIL("out of memory");
			} else {
				p->ctype = SQL_C_DOUBLE;
				p->sqltype = SQL_DOUBLE;
				p->size = 15;
				p->v.d = d;
				p->data = &p->v.d;
			}
		} else if (cJSON_IsString(v)) {
			set_string(p, v->valuestring);
			rc = own_text(p, v->valuestring, strlen(v->valuestring)) < 0
				     ? FAIL("out of memory")
				     : 0;
		} else if (cJSON_IsObject(v)) {
			rc = typed(where, v, p, err, errlen);
		} else {
			rc = FAIL("%s: expected a string, number, boolean, null or {\"type\", "
				  "\"value\"}, got %s",
				  where, json_kind(v));
		}
		if (rc < 0) {
			od_params_release(&ps);
			return -1;
		}
		i++;
	}
	if (out)
		*out = ps;
	else
		od_params_release(&ps);
	return 0;
}

int od_params_bind(struct od_session *s, SQLHSTMT stmt, struct od_params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct od_param *p = &ps->p[i];
		SQLRETURN rc = SQLBindParameter(stmt, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT,
						p->ctype, p->sqltype, p->size, p->digits, p->data,
						p->buflen, &p->ind);

		if (!SQL_SUCCEEDED(rc)) {
			char what[64];

			snprintf(what, sizeof(what), "cannot bind params.params[%zu]", i);
			return od_fail_diag(s, SQL_HANDLE_STMT, stmt, what);
		}
	}
	return OUTPOST_OK;
}
