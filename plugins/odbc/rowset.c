/* SPDX-License-Identifier: Apache-2.0 */
/* Result sets fetched with row-array binding, column by column, with SQLGetData only for
 * values longer than their bound buffer (and for long columns when the driver needs it). */
#include "odbc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_BOUND_WIDTH 4096       /* a column's first buffer, per cell */
#define LONG_WIDTH 1024            /* first buffer for long or unsized columns */
#define MAX_GROWN_WIDTH (64 * 1024) /* buffers grow to this after truncations */
#define GETDATA_CHUNK (64 * 1024)

static const char *sql_type_name(SQLSMALLINT t)
{
	switch (t) {
	case SQL_CHAR: return "CHAR";
	case SQL_VARCHAR: return "VARCHAR";
	case SQL_LONGVARCHAR: return "LONGVARCHAR";
	case SQL_WCHAR: return "WCHAR";
	case SQL_WVARCHAR: return "WVARCHAR";
	case SQL_WLONGVARCHAR: return "WLONGVARCHAR";
	case SQL_DECIMAL: return "DECIMAL";
	case SQL_NUMERIC: return "NUMERIC";
	case SQL_SMALLINT: return "SMALLINT";
	case SQL_INTEGER: return "INTEGER";
	case SQL_REAL: return "REAL";
	case SQL_FLOAT: return "FLOAT";
	case SQL_DOUBLE: return "DOUBLE";
	case SQL_BIT: return "BIT";
	case SQL_TINYINT: return "TINYINT";
	case SQL_BIGINT: return "BIGINT";
	case SQL_BINARY: return "BINARY";
	case SQL_VARBINARY: return "VARBINARY";
	case SQL_LONGVARBINARY: return "LONGVARBINARY";
	case SQL_TYPE_DATE: case SQL_DATE: return "DATE";
	case SQL_TYPE_TIME: case SQL_TIME: return "TIME";
	case SQL_TYPE_TIMESTAMP: case SQL_TIMESTAMP: return "TIMESTAMP";
	case SQL_GUID: return "GUID";
	default: return "OTHER";
	}
}

static bool is_long_type(SQLSMALLINT t)
{
	return t == SQL_LONGVARCHAR || t == SQL_WLONGVARCHAR || t == SQL_LONGVARBINARY;
}

/* Chooses how column C is fetched and how wide its buffer is. */
static void classify(struct od_col *c, bool is_unsigned)
{
	size_t declared = 0;

	c->variable = false;
	switch (c->sql_type) {
	case SQL_TINYINT:
	case SQL_SMALLINT:
	case SQL_INTEGER:
	case SQL_BIGINT:
		/* As text: the driver copies digits instead of parsing them (psqlODBC holds
		 * text), signed and unsigned alike, and the writers print them as they are. */
		(void)is_unsigned;
		c->kind = OD_K_INT;
		c->ctype = SQL_C_CHAR;
		c->variable = true;
		c->width = 24;
		return;
	case SQL_BIT:
		c->kind = OD_K_BIT;
		c->ctype = SQL_C_BIT;
		c->width = 1;
		return;
	case SQL_TYPE_DATE:
	case SQL_DATE:
		c->kind = OD_K_DATE;
		c->ctype = SQL_C_TYPE_DATE;
		c->width = sizeof(SQL_DATE_STRUCT);
		return;
	case SQL_TYPE_TIMESTAMP:
	case SQL_TIMESTAMP:
		c->kind = OD_K_TIMESTAMP;
		c->ctype = SQL_C_TYPE_TIMESTAMP;
		c->width = sizeof(SQL_TIMESTAMP_STRUCT);
		return;
	case SQL_REAL:
	case SQL_FLOAT:
	case SQL_DOUBLE:
		c->kind = OD_K_FLOAT;
		c->ctype = SQL_C_CHAR;
		c->variable = true;
		c->width = 64;
		return;
	case SQL_DECIMAL:
	case SQL_NUMERIC:
		c->kind = OD_K_DECIMAL;
		c->ctype = SQL_C_CHAR;
		c->variable = true;
		c->width = c->size > 0 && c->size < 1000 ? c->size + 3 : 64;
		if (c->width < 32)
			c->width = 32;
		return;
	case SQL_TYPE_TIME:
	case SQL_TIME:
		c->kind = OD_K_TIME;
		c->ctype = SQL_C_CHAR;
		c->variable = true;
		c->width = 40;
		return;
	case SQL_GUID:
		c->kind = OD_K_GUID;
		c->ctype = SQL_C_CHAR;
		c->variable = true;
		c->width = 40;
		return;
	case SQL_BINARY:
	case SQL_VARBINARY:
	case SQL_LONGVARBINARY:
		c->kind = OD_K_BINARY;
		c->ctype = SQL_C_BINARY;
		declared = c->size;
		break;
	default:
		/* Some drivers report booleans as text (psqlODBC with BoolsAsChar=1). */
		if (strcasecmp(c->type_name, "bool") == 0 || strcasecmp(c->type_name, "boolean") == 0) {
			c->kind = OD_K_BIT;
			c->ctype = SQL_C_BIT;
			c->width = 1;
			return;
		}
		c->kind = OD_K_TEXT;
		c->ctype = SQL_C_CHAR;
		declared = c->size > MAX_BOUND_WIDTH ? MAX_BOUND_WIDTH : c->size * 4; /* UTF-8 */
		break;
	}
	c->variable = true;
	if (declared == 0 || is_long_type(c->sql_type))
		c->width = LONG_WIDTH;
	else
		c->width = (declared > MAX_BOUND_WIDTH ? MAX_BOUND_WIDTH : declared) + 1;
}

static int bind_col(struct od_rowset *rs, SQLSMALLINT i)
{
	struct od_col *c = &rs->cols[i];
	char *buf = realloc(c->buf, c->width * rs->rows);

	if (buf == NULL)
		return -1;
	c->buf = buf;
	if (!c->bound)
		return 0;
	if (!SQL_SUCCEEDED(SQLBindCol(rs->stmt, (SQLUSMALLINT)(i + 1), c->ctype, c->buf,
				      (SQLLEN)c->width, c->ind)))
		return -2;
	return 0;
}

void od_rowset_release(struct od_rowset *rs)
{
	if (rs->cols) {
		for (SQLSMALLINT i = 0; i < rs->ncols; i++) {
			free(rs->cols[i].name);
			free(rs->cols[i].json_name);
			free(rs->cols[i].buf);
			free(rs->cols[i].ind);
		}
		free(rs->cols);
	}
	free(rs->status);
	free(rs->spill_off);
	free(rs->spill_len);
	od_str_release(&rs->spill);
	memset(rs, 0, sizeof(*rs));
}

static size_t row_width(const struct od_rowset *rs)
{
	size_t w = 0;

	for (SQLSMALLINT i = 0; i < rs->ncols; i++)
		w += rs->cols[i].bound ? rs->cols[i].width + sizeof(SQLLEN) : 0;
	return w ? w : 1;
}

/* NAME for column I, made unique among the columns before it ("id", "id_2", ...): rows are
 * JSON objects keyed by it. An unnamed column is "columnN". */
static char *unique_name(const struct od_rowset *rs, SQLSMALLINT i, const char *name)
{
	char buf[600];

	if (name == NULL) {
		snprintf(buf, sizeof(buf), "column%d", i + 1);
		name = buf;
	}
	for (int n = 1;; n++) {
		char cand[640];
		bool taken = false;

		if (n == 1)
			snprintf(cand, sizeof(cand), "%s", name);
		else
			snprintf(cand, sizeof(cand), "%s_%d", name, n);
		for (SQLSMALLINT j = 0; j < i && !taken; j++)
			taken = strcmp(rs->cols[j].name, cand) == 0;
		if (!taken)
			return strdup(cand);
	}
}

int od_rowset_open(struct od_rowset *rs, struct od_session *s, SQLHSTMT stmt, size_t max_rows)
{
	SQLSMALLINT n = 0;
	SQLUSMALLINT gd = s->getdata_ext;
	bool any_variable = false, unbind_rest = false;
	size_t rows;
	int ret = OUTPOST_ERR_INTERNAL;

	memset(rs, 0, sizeof(*rs));
	rs->s = s;
	rs->stmt = stmt;
	if (!SQL_SUCCEEDED(SQLNumResultCols(stmt, &n)))
		return od_fail_diag(s, SQL_HANDLE_STMT, stmt, "cannot describe the result");
	rs->ncols = n;
	if (n == 0)
		return OUTPOST_OK;
	rs->cols = calloc((size_t)n, sizeof(*rs->cols));
	if (rs->cols == NULL)
		goto oom;
	for (SQLSMALLINT i = 0; i < n; i++) {
		struct od_col *c = &rs->cols[i];
		SQLCHAR name[512];
		SQLSMALLINT name_len = 0;
		SQLLEN is_unsigned = SQL_FALSE;
		struct od_str js = {0};

		if (!SQL_SUCCEEDED(SQLDescribeCol(stmt, (SQLUSMALLINT)(i + 1), name, sizeof(name),
						  &name_len, &c->sql_type, &c->size, &c->digits,
						  &c->nullable))) {
			char what[64];

			snprintf(what, sizeof(what), "cannot describe column %d", i + 1);
			ret = od_fail_diag(s, SQL_HANDLE_STMT, stmt, what);
			goto fail;
		}
		if (!SQL_SUCCEEDED(SQLColAttribute(stmt, (SQLUSMALLINT)(i + 1), SQL_DESC_TYPE_NAME,
						   c->type_name, sizeof(c->type_name), NULL, NULL)))
			c->type_name[0] = '\0';
		(void)SQLColAttribute(stmt, (SQLUSMALLINT)(i + 1), SQL_DESC_UNSIGNED, NULL, 0, NULL,
				      &is_unsigned);
		c->name = unique_name(rs, i, name[0] ? (const char *)name : NULL);
		od_str_json(&js, c->name ? c->name : "");
		c->json_name = js.p;
		if (c->name == NULL || c->json_name == NULL || js.oom)
			goto oom;
		classify(c, is_unsigned == SQL_TRUE);
		c->bound = true;
		any_variable = any_variable || c->variable;
	}

	/*
	 * Values longer than their buffer are read again with SQLSetPos + SQLGetData; that needs
	 * SQL_GD_BLOCK and SQL_GD_BOUND (psqlODBC has both). Without them, a result with text or
	 * bytes is fetched one row at a time, and without SQL_GD_BOUND long columns are not
	 * bound at all (read with SQLGetData, in column order unless SQL_GD_ANY_ORDER).
	 */
	rs->block_repair = (gd & SQL_GD_BLOCK) && (gd & SQL_GD_BOUND);
	rows = max_rows ? max_rows : (size_t)s->st->settings.fetch_rows;
	if (!rs->block_repair && any_variable)
		rows = 1;
	if (!(gd & SQL_GD_BOUND)) {
		for (SQLSMALLINT i = 0; i < n; i++) {
			struct od_col *c = &rs->cols[i];

			if (c->variable && (is_long_type(c->sql_type) || c->size == 0 ||
					    c->width >= MAX_BOUND_WIDTH))
				c->bound = false;
			if (unbind_rest)
				c->bound = false;
			if (!c->bound && !(gd & SQL_GD_ANY_ORDER))
				unbind_rest = true;
		}
	}
	while (rows > 1 && rows * row_width(rs) > s->st->settings.buffer_memory)
		rows /= 2;
	if (rows < 1)
		rows = 1;
	rs->rows = rows;
	rs->status = calloc(rows, sizeof(*rs->status));
	rs->spill_off = calloc(rows * (size_t)n, sizeof(*rs->spill_off));
	rs->spill_len = calloc(rows * (size_t)n, sizeof(*rs->spill_len));
	if (rs->status == NULL || rs->spill_off == NULL || rs->spill_len == NULL)
		goto oom;
	if (!SQL_SUCCEEDED(SQLSetStmtAttr(stmt, SQL_ATTR_ROW_BIND_TYPE,
					  (SQLPOINTER)SQL_BIND_BY_COLUMN, 0)) ||
	    !SQL_SUCCEEDED(SQLSetStmtAttr(stmt, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)rows, 0)) ||
	    !SQL_SUCCEEDED(SQLSetStmtAttr(stmt, SQL_ATTR_ROWS_FETCHED_PTR, &rs->fetched, 0)) ||
	    !SQL_SUCCEEDED(SQLSetStmtAttr(stmt, SQL_ATTR_ROW_STATUS_PTR, rs->status, 0))) {
		ret = od_fail_diag(s, SQL_HANDLE_STMT, stmt, "cannot set up row-array fetches");
		goto fail;
	}
	for (SQLSMALLINT i = 0; i < n; i++) {
		int b;

		rs->cols[i].ind = calloc(rows, sizeof(SQLLEN));
		if (rs->cols[i].ind == NULL)
			goto oom;
		b = bind_col(rs, i);
		if (b == -1)
			goto oom;
		if (b == -2) {
			char what[96];

			snprintf(what, sizeof(what), "cannot bind column %d (%s)", i + 1,
				 rs->cols[i].name);
			ret = od_fail_diag(s, SQL_HANDLE_STMT, stmt, what);
			goto fail;
		}
	}
	outpost_debug(s->ctx, "fetching %zu rows at a time (%zu bytes per row bound%s)", rows,
		      row_width(rs), rs->block_repair ? "" : "; no SQLGetData in blocks");
	return OUTPOST_OK;
oom:
	ret = od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory for the result's buffers");
fail:
	od_rowset_release(rs);
	return ret;
}

/* Grows the buffers of columns that overflowed in the last block, within buffer_memory. */
static int grow_columns(struct od_rowset *rs)
{
	for (SQLSMALLINT i = 0; i < rs->ncols; i++) {
		struct od_col *c = &rs->cols[i];
		size_t want = c->width, old = c->width;
		int b;

		if (!c->bound || c->truncated_last == 0)
			continue;
		c->truncated_last = 0;
		while (want <= c->max_seen + 1 && want < MAX_GROWN_WIDTH)
			want *= 2;
		if (want > MAX_GROWN_WIDTH)
			want = MAX_GROWN_WIDTH;
		if (want == old ||
		    rs->rows * (row_width(rs) + want - old) > rs->s->st->settings.buffer_memory)
			continue;
		c->width = want;
		b = bind_col(rs, i);
		if (b == -1) {
			c->width = old;
			return od_fail(rs->s, OUTPOST_ERR_INTERNAL, "out of memory");
		}
		if (b == -2)
			return od_fail_diag(rs->s, SQL_HANDLE_STMT, rs->stmt, "cannot bind again");
		outpost_debug(rs->s->ctx, "column %s: buffer grown to %zu bytes", c->name, want);
	}
	return OUTPOST_OK;
}

/* Reads the whole value of column I in row R with SQLGetData into the spill buffer. */
static int get_whole(struct od_rowset *rs, size_t r, SQLSMALLINT i)
{
	struct od_col *c = &rs->cols[i];
	size_t idx = r * (size_t)rs->ncols + (size_t)i, start;
	bool text = c->ctype == SQL_C_CHAR;

	if (rs->rows > 1 &&
	    !SQL_SUCCEEDED(SQLSetPos(rs->stmt, (SQLSETPOSIROW)(r + 1), SQL_POSITION,
				     SQL_LOCK_NO_CHANGE))) {
		char what[128];

		snprintf(what, sizeof(what), "cannot position on row %llu to read column %s",
			 (unsigned long long)(rs->total_rows + r + 1), c->name);
		return od_fail_diag(rs->s, SQL_HANDLE_STMT, rs->stmt, what);
	}
	start = rs->spill.len;
	for (;;) {
		SQLLEN ind = 0;
		SQLRETURN rc;
		size_t room, got;

		if (!od_str_reserve(&rs->spill, GETDATA_CHUNK + 1))
			return od_fail(rs->s, OUTPOST_ERR_INTERNAL, "out of memory reading column %s",
				       c->name);
		room = rs->spill.cap - rs->spill.len - 1;
		if (room > GETDATA_CHUNK)
			room = GETDATA_CHUNK;
		rc = SQLGetData(rs->stmt, (SQLUSMALLINT)(i + 1), c->ctype, rs->spill.p + rs->spill.len,
				(SQLLEN)room, &ind);
		if (rc == SQL_NO_DATA)
			break;
		if (!SQL_SUCCEEDED(rc)) {
			char what[128];

			snprintf(what, sizeof(what), "cannot read column %s of row %llu", c->name,
				 (unsigned long long)(rs->total_rows + r + 1));
			return od_fail_diag(rs->s, SQL_HANDLE_STMT, rs->stmt, what);
		}
		if (ind == SQL_NULL_DATA) {
			rs->spill_off[idx] = start + 1;
			rs->spill_len[idx] = (size_t)-1;
			return OUTPOST_OK;
		}
		if (ind == SQL_NO_TOTAL || (size_t)ind > room - (text ? 1 : 0))
			got = room - (text ? 1 : 0);
		else
			got = (size_t)ind;
		rs->spill.len += got;
		if (rc == SQL_SUCCESS)
			break;
	}
	rs->spill.p[rs->spill.len] = '\0';
	rs->spill_off[idx] = start + 1;
	rs->spill_len[idx] = rs->spill.len - start;
	if (rs->spill_len[idx] > c->max_seen)
		c->max_seen = rs->spill_len[idx];
	rs->repairs++;
	return OUTPOST_OK;
}

int od_rowset_next(struct od_rowset *rs)
{
	struct od_session *s = rs->s;
	SQLRETURN rc;
	int ret;

	if (rs->done || rs->ncols == 0)
		return 0;
	if (od_cancelled(s))
		return -od_fail(s, OUTPOST_ERR_CANCELLED, "cancelled after %llu rows",
				(unsigned long long)rs->total_rows);
	if (rs->fetched > 0) {
		ret = grow_columns(rs);
		if (ret != OUTPOST_OK)
			return -ret;
		memset(rs->spill_off, 0, rs->fetched * (size_t)rs->ncols * sizeof(*rs->spill_off));
	}
	od_str_reset(&rs->spill);
	rs->fetched = 0;
	rc = SQLFetch(rs->stmt);
	if (rc == SQL_NO_DATA) {
		rs->done = true;
		rs->fetched = 0;
		return 0;
	}
	if (!SQL_SUCCEEDED(rc)) {
		char what[96];

		snprintf(what, sizeof(what), "fetch failed after %llu rows",
			 (unsigned long long)rs->total_rows);
		return -od_fail_diag(s, SQL_HANDLE_STMT, rs->stmt, what);
	}
	if (rs->rows == 1 && rs->fetched == 0)
		rs->fetched = 1; /* drivers that ignore SQL_ATTR_ROWS_FETCHED_PTR for one row */
	for (size_t r = 0; r < rs->fetched; r++)
		if (rs->status[r] == SQL_ROW_ERROR) {
			char what[96];

			snprintf(what, sizeof(what), "row %llu could not be read",
				 (unsigned long long)(rs->total_rows + r + 1));
			return -od_fail_diag(s, SQL_HANDLE_STMT, rs->stmt, what);
		}
	for (SQLSMALLINT i = 0; i < rs->ncols; i++) {
		struct od_col *c = &rs->cols[i];

		if (!c->bound) {
			for (size_t r = 0; r < rs->fetched; r++)
				if ((ret = get_whole(rs, r, i)) != OUTPOST_OK)
					return -ret;
			continue;
		}
		if (!c->variable)
			continue;
		for (size_t r = 0; r < rs->fetched; r++) {
			SQLLEN ind = c->ind[r];
			size_t fits = c->ctype == SQL_C_CHAR ? c->width - 1 : c->width;

			if (ind == SQL_NULL_DATA || (ind >= 0 && (size_t)ind <= fits))
				continue;
			if (!(s->getdata_ext & SQL_GD_BOUND))
				return -od_fail(s, OUTPOST_ERR_FAILED,
						"column %s of row %llu is longer than the %zu bytes the "
						"driver declared, and the driver cannot return the rest "
						"(no SQL_GD_BOUND)",
						c->name, (unsigned long long)(rs->total_rows + r + 1),
						fits);
			c->truncated_last++;
			if ((ret = get_whole(rs, r, i)) != OUTPOST_OK)
				return -ret;
		}
	}
	rs->total_rows += rs->fetched;
	return 1;
}

void od_rowset_cell(const struct od_rowset *rs, size_t r, SQLSMALLINT c, struct od_cell *out)
{
	const struct od_col *col = &rs->cols[c];
	size_t idx = r * (size_t)rs->ncols + (size_t)c;
	SQLLEN ind;

	if (rs->spill_off[idx]) {
		out->null = rs->spill_len[idx] == (size_t)-1;
		out->p = rs->spill.p + rs->spill_off[idx] - 1;
		out->len = out->null ? 0 : rs->spill_len[idx];
		return;
	}
	ind = col->ind[r];
	out->p = col->buf + r * col->width;
	if (ind == SQL_NULL_DATA) {
		out->null = true;
		out->len = 0;
		return;
	}
	out->null = false;
	out->len = col->variable ? (size_t)ind : col->width;
}

void od_rowset_columns_json(const struct od_rowset *rs, struct od_str *out)
{
	od_str_put(out, "[", 1);
	for (SQLSMALLINT i = 0; i < rs->ncols; i++) {
		const struct od_col *c = &rs->cols[i];

		od_str_printf(out, "%s{\"name\":%s,\"type\":\"%s\",\"db_type\":", i ? "," : "",
			      c->json_name, sql_type_name(c->sql_type));
		od_str_json(out, c->type_name);
		od_str_printf(out, ",\"nullable\":%s}",
			      c->nullable == SQL_NO_NULLS ? "false" : "true");
	}
	od_str_put(out, "]", 1);
}
