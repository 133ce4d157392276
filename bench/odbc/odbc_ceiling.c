/* SPDX-License-Identifier: Apache-2.0 */
/* The ODBC ceiling: a minimal client that binds every column as text with a row array and
 * writes CSV, to show how fast the driver itself can go. Not an Outpost component. */

/*
 * usage: odbc-ceiling CONNECTION_STRING SQL OUT.csv [ROWS_PER_FETCH]
 * Prints "ROWS rows" on stderr. Values are assumed to fit their buffers (at most 1 KiB, or the
 * column's declared size); it is a measuring stick, not a general exporter.
 */
#include <fcntl.h>
#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 20];
static size_t out_len;
static int out_fd;

static void flush_out(void)
{
	size_t off = 0;

	while (off < out_len) {
		ssize_t n = write(out_fd, out + off, out_len - off);

		if (n < 0) {
			perror("write");
			exit(1);
		}
		off += (size_t)n;
	}
	out_len = 0;
}

static void put(const char *p, size_t n)
{
	if (out_len + n > sizeof(out))
		flush_out();
	memcpy(out + out_len, p, n);
	out_len += n;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void put_field(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == ',' || v[i] == '"' || v[i] == '\n' || v[i] == '\r')
			break;
	if (i == n) {
		put(v, n);
		return;
	}
	put("\"", 1);
	for (i = 0; i < n; i++) {
		if (v[i] == '"')
			put("\"", 1);
		put(v + i, 1);
	}
	put("\"", 1);
}

static void die(SQLSMALLINT type, SQLHANDLE h, const char *what)
{
	SQLCHAR state[6], msg[1024];
	SQLINTEGER native;
	SQLSMALLINT len;

	fprintf(stderr, "odbc-ceiling: %s failed\n", what);
	for (SQLSMALLINT i = 1;
	     SQLGetDiagRec(type, h, i, state, &native, msg, sizeof(msg), &len) == SQL_SUCCESS; i++)
		fprintf(stderr, "  [%s] %s\n", state, msg);
	exit(1);
}

int main(int argc, char **argv)
{
	SQLHENV env;
	SQLHDBC dbc;
	SQLHSTMT st;
	SQLSMALLINT ncols;
	SQLULEN fetched = 0, rows = argc > 4 ? (SQLULEN)strtoul(argv[4], NULL, 10) : 2000;
	unsigned long long total = 0;
	char **buf;
	SQLLEN **ind, *width;
	SQLRETURN rc;

	if (argc < 4 || rows == 0) {
		fprintf(stderr, "usage: odbc-ceiling CONNECTION_STRING SQL OUT.csv [ROWS]\n");
		return 2;
	}
	out_fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out_fd < 0) {
		perror(argv[3]);
		return 1;
	}
	SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
	SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
	SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
	if (!SQL_SUCCEEDED(SQLDriverConnect(dbc, NULL, (SQLCHAR *)argv[1], SQL_NTS, NULL, 0, NULL,
					    SQL_DRIVER_NOPROMPT)))
		die(SQL_HANDLE_DBC, dbc, "connect");
	SQLAllocHandle(SQL_HANDLE_STMT, dbc, &st);
	if (!SQL_SUCCEEDED(SQLExecDirect(st, (SQLCHAR *)argv[2], SQL_NTS)))
		die(SQL_HANDLE_STMT, st, "execute");
	SQLNumResultCols(st, &ncols);
	buf = calloc((size_t)ncols, sizeof(*buf));
	ind = calloc((size_t)ncols, sizeof(*ind));
	width = calloc((size_t)ncols, sizeof(*width));
	SQLSetStmtAttr(st, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)rows, 0);
	SQLSetStmtAttr(st, SQL_ATTR_ROWS_FETCHED_PTR, &fetched, 0);
	for (SQLSMALLINT c = 0; c < ncols; c++) {
		SQLCHAR name[256];
		SQLSMALLINT name_len, type, digits, nullable;
		SQLULEN size;

		SQLDescribeCol(st, (SQLUSMALLINT)(c + 1), name, sizeof(name), &name_len, &type, &size,
			       &digits, &nullable);
		width[c] = (SQLLEN)(size == 0 || size > 1024 ? 1024 : size + 40);
		buf[c] = malloc((size_t)width[c] * rows);
		ind[c] = malloc(sizeof(SQLLEN) * rows);
		SQLBindCol(st, (SQLUSMALLINT)(c + 1), SQL_C_CHAR, buf[c], width[c], ind[c]);
		if (c)
			put(",", 1);
		put_field((const char *)name, (size_t)name_len);
	}
	put("\n", 1);
	while ((rc = SQLFetch(st)) != SQL_NO_DATA) {
		if (!SQL_SUCCEEDED(rc))
			die(SQL_HANDLE_STMT, st, "fetch");
		for (SQLULEN r = 0; r < fetched; r++) {
			for (SQLSMALLINT c = 0; c < ncols; c++) {
				SQLLEN n = ind[c][r];

				if (c)
					put(",", 1);
				if (n != SQL_NULL_DATA)
					put_field(buf[c] + (size_t)width[c] * r, (size_t)n);
			}
			put("\n", 1);
		}
		total += fetched;
	}
	flush_out();
	close(out_fd);
	fprintf(stderr, "%llu rows\n", total);
	return 0;
}
