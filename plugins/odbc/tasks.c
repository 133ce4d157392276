/* SPDX-License-Identifier: Apache-2.0 */
/* The three task types: odbc.query, odbc.script and odbc.export. */
#include "odbc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUERY_MAX_BYTES (4u * 1024 * 1024) /* rows kept in a query's result */
#define EXPORT_BUFFER (1u * 1024 * 1024)
#define LOG_EVERY 5.0 /* seconds between progress lines of an export */

static void put_str(struct od_out *o, const char *text)
{
	od_out_put(o, text, strlen(text));
}

static void put_fmt(struct od_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(struct od_out *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		od_out_put(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void put_json(struct od_out *o, const char *text)
{
	od_write_json_string(o, text, strlen(text));
}

/* "dbms": "PostgreSQL 15.20" */
static void put_dbms(struct od_out *o, const struct od_session *s)
{
	char dbms[192];

	snprintf(dbms, sizeof(dbms), "%s%s%s", s->dbms, s->dbms_ver[0] ? " " : "", s->dbms_ver);
	put_str(o, "\"dbms\":");
	put_json(o, dbms);
}

static int set_result(struct od_session *s, struct od_out *o)
{
	if (o->err)
		return od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory building the result");
	if (outpost_host->set_result(s->ctx, o->buf, o->len) < 0)
		return od_fail(s, OUTPOST_ERR_INTERNAL, "the host refused the result (not JSON)");
	return OUTPOST_OK;
}

/* Prepares, binds and executes SQL with params.params. *STMT is set even on failure. */
static int run_statement(struct od_session *s, const cJSON *params, const char *sql,
			 struct od_params *ps, SQLHSTMT *stmt, SQLRETURN *exec_rc)
{
	char err[512];
	int ret;

	if (od_params_prepare(cJSON_GetObjectItemCaseSensitive(params, "params"), ps, err,
			      sizeof(err)) < 0)
		return od_fail(s, OUTPOST_ERR_PARAMS, "%s", err);
	ret = od_stmt_new(s, stmt);
	if (ret != OUTPOST_OK)
		return ret;
	if (ps->n > 0) {
		ret = od_params_bind(s, *stmt, ps);
		if (ret != OUTPOST_OK)
			return ret;
	}
	outpost_debug(s->ctx, "executing with %zu parameters: %s", ps->n, sql);
	*exec_rc = od_exec(s, *stmt, sql);
	if (*exec_rc != SQL_NO_DATA && !SQL_SUCCEEDED(*exec_rc))
		return od_fail_diag(s, SQL_HANDLE_STMT, *stmt, "query failed");
	if (*exec_rc == SQL_SUCCESS_WITH_INFO)
		od_log_info_diag(s, SQL_HANDLE_STMT, *stmt, "the query returned warnings");
	return OUTPOST_OK;
}

/* ---- odbc.query -------------------------------------------------------------------------- */

int od_task_query(struct od_session *s, const cJSON *params)
{
	struct od_params ps = {0};
	struct od_rowset rs = {0};
	struct od_out o = {0};
	struct od_str cols = {0};
	const char *sql = NULL, *rows_as = "objects";
	int64_t max_rows = 1000;
	SQLHSTMT stmt = SQL_NULL_HSTMT;
	SQLRETURN erc = SQL_SUCCESS;
	SQLLEN affected = -1;
	uint64_t kept = 0;
	bool truncated = false, arrays;
	int ret, f;

	if (outpost_req_str(s->ctx, params, "sql", &sql) < 0 ||
	    outpost_get_int(s->ctx, params, "max_rows", &max_rows, 1000) < 0 ||
	    outpost_get_str(s->ctx, params, "rows_as", &rows_as, "objects") < 0)
		return OUTPOST_ERR_PARAMS;
	arrays = strcmp(rows_as, "arrays") == 0;
	ret = run_statement(s, params, sql, &ps, &stmt, &erc);
	if (ret != OUTPOST_OK)
		goto out;
	if (od_out_init(&o, -1, 64 * 1024) < 0) {
		ret = od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (erc != SQL_NO_DATA) {
		ret = od_rowset_open(&rs, s, stmt,
				     (size_t)(max_rows + 1 < s->st->settings.fetch_rows
						      ? max_rows + 1
						      : s->st->settings.fetch_rows));
		if (ret != OUTPOST_OK)
			goto out;
	}
	if (rs.ncols == 0 && !SQL_SUCCEEDED(SQLRowCount(stmt, &affected)))
		affected = -1;
	if (erc == SQL_NO_DATA)
		affected = 0;
	put_str(&o, "{\"columns\":");
	od_rowset_columns_json(&rs, &cols);
	put_str(&o, od_str_cstr(&cols));
	put_str(&o, ",\"rows\":[");
	while (!truncated && (f = od_rowset_next(&rs)) != 0) {
		if (f < 0) {
			ret = -f;
			goto out;
		}
		for (size_t r = 0; r < rs.fetched; r++) {
			if (kept >= (uint64_t)max_rows || o.len > QUERY_MAX_BYTES) {
				truncated = true;
				break;
			}
			if (kept)
				put_str(&o, ",");
			od_write_json_row(&o, &rs, r, arrays);
			kept++;
		}
	}
	put_fmt(&o, "],\"row_count\":%llu,\"truncated\":%s", (unsigned long long)kept,
		truncated ? "true" : "false");
	if (rs.ncols == 0)
		put_fmt(&o, ",\"rows_affected\":%lld", (long long)affected);
	put_str(&o, ",");
	put_dbms(&o, s);
	put_str(&o, "}");
	if (truncated)
		outpost_warn(s->ctx, "the result holds the first %llu rows only (params.max_rows %lld, "
				     "at most 4 MiB); odbc.export streams any number of rows to an "
				     "artifact",
			     (unsigned long long)kept, (long long)max_rows);
	outpost_info(s->ctx, "query returned %llu rows%s", (unsigned long long)kept,
		     truncated ? " (truncated)" : "");
	ret = set_result(s, &o);
out:
	od_rowset_release(&rs);
	od_stmt_free(s, stmt);
	od_params_release(&ps);
	od_out_release(&o);
	od_str_release(&cols);
	return ret;
}

/* ---- odbc.script ------------------------------------------------------------------------- */

static int end_tran(struct od_session *s, SQLSMALLINT how)
{
	SQLRETURN rc = SQLEndTran(SQL_HANDLE_DBC, s->dbc, how);

	return SQL_SUCCEEDED(rc) ? 0 : -1;
}

int od_task_script(struct od_session *s, const cJSON *params)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, "statements");
	const char *script = NULL;
	char **stmts = NULL;
	long n = 0, done = 0;
	bool tx = true;
	struct od_out o = {0};
	SQLLEN *affected = NULL;
	int ret = OUTPOST_ERR_INTERNAL;

	if (outpost_get_str(s->ctx, params, "script", &script, NULL) < 0 ||
	    outpost_get_bool(s->ctx, params, "transaction", &tx, true) < 0)
		return OUTPOST_ERR_PARAMS;
	if (cJSON_IsArray(list)) {
		const cJSON *it;

		n = cJSON_GetArraySize(list);
		stmts = calloc((size_t)(n ? n : 1), sizeof(*stmts));
		if (stmts == NULL)
			return od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
		n = 0;
		cJSON_ArrayForEach(it, list)
		{
			stmts[n] = strdup(cJSON_IsString(it) ? it->valuestring : "");
			if (stmts[n++] == NULL) {
				od_free_statements(stmts, n);
				return od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
			}
		}
	} else {
		n = od_split_script(script ? script : "", &stmts);
		if (n < 0)
			return od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
		if (n == 0) {
			od_free_statements(stmts, n);
			return od_fail(s, OUTPOST_ERR_PARAMS,
				       "params.script: no statements (only blanks and comments)");
		}
	}
	affected = calloc((size_t)n, sizeof(*affected));
	if (affected == NULL || od_out_init(&o, -1, 4096) < 0) {
		ret = od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (tx) {
		if (!SQL_SUCCEEDED(SQLSetConnectAttr(s->dbc, SQL_ATTR_AUTOCOMMIT,
						     (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0))) {
			ret = od_fail_diag(s, SQL_HANDLE_DBC, s->dbc,
					   "cannot start a transaction (the driver refused to turn "
					   "autocommit off; set params.transaction to false)");
			goto out;
		}
		s->autocommit_off = true;
	}
	outpost_info(s->ctx, "running %ld statements %s", n,
		     tx ? "in one transaction" : "with autocommit");
	for (long i = 0; i < n; i++) {
		SQLHSTMT stmt = SQL_NULL_HSTMT;
		SQLRETURN rc;
		char what[64], suffix[256] = "";

		if (od_cancelled(s)) {
			if (tx)
				(void)end_tran(s, SQL_ROLLBACK);
			ret = od_fail(s, OUTPOST_ERR_CANCELLED,
				      "cancelled before statement %ld of %ld%s", i + 1, n,
				      tx ? "; the transaction was rolled back: nothing was changed"
					 : "");
			goto out;
		}
		ret = od_stmt_new(s, &stmt);
		if (ret != OUTPOST_OK)
			goto out;
		rc = od_exec(s, stmt, stmts[i]);
		if (rc != SQL_NO_DATA && !SQL_SUCCEEDED(rc)) {
			snprintf(what, sizeof(what), "statement %ld of %ld failed", i + 1, n);
			if (tx && end_tran(s, SQL_ROLLBACK) == 0)
				snprintf(suffix, sizeof(suffix),
					 "\nthe transaction was rolled back: nothing was changed");
			else if (tx)
				snprintf(suffix, sizeof(suffix),
					 "\nthe rollback failed too: check the database's state");
			else if (i > 0)
				snprintf(suffix, sizeof(suffix),
					 "\nstatements 1-%ld were committed (autocommit); the "
					 "rest did not run",
					 i);
			else
				snprintf(suffix, sizeof(suffix),
					 "\nnothing was changed (autocommit); the rest did not run");
			ret = od_fail_diag_ex(s, SQL_HANDLE_STMT, stmt, what, suffix);
			od_stmt_free(s, stmt);
			put_fmt(&o, "{\"executed\":%ld,\"failed_statement\":%ld,\"committed\":%s,"
				    "\"transaction\":%s}",
				done, i + 1, tx ? "false" : (i > 0 ? "true" : "false"),
				tx ? "true" : "false");
			(void)set_result(s, &o);
			goto out;
		}
		if (rc == SQL_SUCCESS_WITH_INFO)
			od_log_info_diag(s, SQL_HANDLE_STMT, stmt, "warnings");
		if (rc == SQL_NO_DATA || !SQL_SUCCEEDED(SQLRowCount(stmt, &affected[i])))
			affected[i] = rc == SQL_NO_DATA ? 0 : -1;
		od_stmt_free(s, stmt);
		done++;
		outpost_debug(s->ctx, "statement %ld of %ld: %lld rows", i + 1, n,
			      (long long)affected[i]);
	}
	if (tx && end_tran(s, SQL_COMMIT) < 0) {
		ret = od_fail_diag_ex(s, SQL_HANDLE_DBC, s->dbc, "commit failed",
				      "\nthe transaction was not committed");
		(void)end_tran(s, SQL_ROLLBACK);
		goto out;
	}
	put_str(&o, "{\"statements\":[");
	for (long i = 0; i < n; i++)
		put_fmt(&o, "%s{\"index\":%ld,\"rows_affected\":%lld}", i ? "," : "", i + 1,
			(long long)affected[i]);
	put_fmt(&o, "],\"executed\":%ld,\"committed\":true,\"transaction\":%s,", done,
		tx ? "true" : "false");
	put_dbms(&o, s);
	put_str(&o, "}");
	outpost_info(s->ctx, "%ld statements %s", n, tx ? "committed" : "run");
	ret = set_result(s, &o);
out:
	if (tx && s->autocommit_off) {
		(void)SQLSetConnectAttr(s->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_ON, 0);
		s->autocommit_off = false;
	}
	od_free_statements(stmts, n);
	free(affected);
	od_out_release(&o);
	return ret;
}

/* ---- odbc.export ------------------------------------------------------------------------- */

int od_task_export(struct od_session *s, const cJSON *params)
{
	struct od_params ps = {0};
	struct od_rowset rs = {0};
	struct od_out o = {0}, res = {0};
	struct od_str cols = {0};
	struct od_csv csv = {0};
	const char *sql = NULL, *format = "csv", *artifact = NULL, *delim = ",", *null_as = "";
	char name[256];
	bool header = true, jsonl, truncated = false;
	int64_t max_rows = 0, fetch_rows = 0;
	SQLHSTMT stmt = SQL_NULL_HSTMT;
	SQLRETURN erc = SQL_SUCCESS;
	double t0 = od_now(), last_log;
	uint64_t rows = 0;
	int fd = -1, ret, f;

	if (outpost_req_str(s->ctx, params, "sql", &sql) < 0 ||
	    outpost_get_str(s->ctx, params, "format", &format, "csv") < 0 ||
	    outpost_get_str(s->ctx, params, "artifact", &artifact, NULL) < 0 ||
	    outpost_get_bool(s->ctx, params, "header", &header, true) < 0 ||
	    outpost_get_str(s->ctx, params, "delimiter", &delim, ",") < 0 ||
	    outpost_get_str(s->ctx, params, "null_as", &null_as, "") < 0 ||
	    outpost_get_int(s->ctx, params, "max_rows", &max_rows, 0) < 0 ||
	    outpost_get_int(s->ctx, params, "fetch_rows", &fetch_rows, 0) < 0)
		return OUTPOST_ERR_PARAMS;
	jsonl = strcmp(format, "jsonl") == 0;
	snprintf(name, sizeof(name), "%s", artifact ? artifact : jsonl ? "export.jsonl" : "export.csv");
	csv.delim = delim[0] ? delim[0] : ',';
	csv.null_as = null_as;
	csv.null_len = strlen(null_as);

	ret = run_statement(s, params, sql, &ps, &stmt, &erc);
	if (ret != OUTPOST_OK)
		goto out;
	if (erc != SQL_NO_DATA) {
		ret = od_rowset_open(&rs, s, stmt, (size_t)fetch_rows);
		if (ret != OUTPOST_OK)
			goto out;
	}
	if (rs.ncols == 0) {
		ret = od_fail(s, OUTPOST_ERR_FAILED,
			      "the statement returned no result set to export (use odbc.query or "
			      "odbc.script for statements that change data)");
		goto out;
	}
	if (outpost_host->artifact_open(s->ctx, name, &fd) < 0) {
		ret = od_fail(s, OUTPOST_ERR_FAILED,
			      "cannot create artifact %s in the workspace (%s): an artifact of that "
			      "name exists already, or the workspace is not writable",
			      name, outpost_host->workspace(s->ctx));
		fd = -1;
		goto out;
	}
	if (od_out_init(&o, fd, EXPORT_BUFFER) < 0) {
		ret = od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (!jsonl && header)
		od_write_csv_header(&o, &csv, &rs);
	last_log = t0;
	while (!truncated && (f = od_rowset_next(&rs)) != 0) {
		size_t take = rs.fetched;

		if (f < 0) {
			ret = -f;
			goto fail_partial;
		}
		if (max_rows > 0 && rows + take > (uint64_t)max_rows) {
			take = (size_t)((uint64_t)max_rows - rows);
			truncated = true;
		}
		if (jsonl) {
			for (size_t r = 0; r < take; r++) {
				od_write_json_row(&o, &rs, r, false);
				od_out_put(&o, "\n", 1);
			}
		} else {
			for (size_t r = 0; r < take; r++)
				od_write_csv_row(&o, &csv, &rs, r);
		}
		rows += take;
		if (o.err) {
			ret = od_fail(s, OUTPOST_ERR_FAILED, "cannot write artifact %s after %llu rows: %s",
				      name, (unsigned long long)rows, strerror(o.err));
			goto fail_partial;
		}
		if (od_now() - last_log >= LOG_EVERY) {
			last_log = od_now();
			outpost_info(s->ctx, "exported %llu rows (%.1f MB) so far",
				     (unsigned long long)rows, (double)(o.written + o.len) / 1e6);
		}
	}
	if (truncated && max_rows > 0 && rs.fetched > 0 && !rs.done)
		outpost_info(s->ctx, "stopped at params.max_rows (%lld)", (long long)max_rows);
	if (od_out_flush(&o) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		int e = o.err ? o.err : errno;

		fd = -1;
		ret = od_fail(s, OUTPOST_ERR_FAILED, "cannot write artifact %s: %s", name, strerror(e));
		goto out;
	}
	fd = -1;
	{
		double secs = od_now() - t0;

		if (od_out_init(&res, -1, 4096) < 0) {
			ret = od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
			goto out;
		}
		od_rowset_columns_json(&rs, &cols);
		put_str(&res, "{\"artifact\":");
		put_json(&res, name);
		put_fmt(&res, ",\"format\":\"%s\",\"rows\":%llu,\"bytes\":%llu,\"truncated\":%s,"
			      "\"columns\":",
			jsonl ? "jsonl" : "csv", (unsigned long long)rows,
			(unsigned long long)o.written, truncated ? "true" : "false");
		put_str(&res, od_str_cstr(&cols));
		put_fmt(&res, ",\"seconds\":%.3f,\"rows_per_second\":%.0f,", secs,
			secs > 0 ? (double)rows / secs : 0.0);
		put_dbms(&res, s);
		put_str(&res, "}");
		outpost_info(s->ctx, "exported %llu rows (%llu bytes) to %s in %.2f s",
			     (unsigned long long)rows, (unsigned long long)o.written, name, secs);
		if (rs.repairs)
			outpost_debug(s->ctx, "%u values were longer than their buffers and were "
					      "read with SQLGetData", rs.repairs);
		ret = set_result(s, &res);
	}
	goto out;
fail_partial:
	/* A half-written export must not pass for a whole one: empty the artifact. */
	if (fd >= 0 && ftruncate(fd, 0) == 0)
		outpost_warn(s->ctx, "artifact %s was emptied: the export stopped after %llu rows",
			     name, (unsigned long long)rows);
out:
	if (fd >= 0)
		close(fd);
	od_rowset_release(&rs);
	od_stmt_free(s, stmt);
	od_params_release(&ps);
	od_out_release(&o);
	od_out_release(&res);
	od_str_release(&cols);
	return ret;
}
