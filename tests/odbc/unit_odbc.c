/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the odbc plugin's internals: connection strings, JDBC URLs, redaction, the
 * script splitter, bound values and the formatters behind the type mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "odbc.h"

static struct od_settings settings;

static int setup(void **state)
{
	char err[256];

	(void)state;
	return od_settings_load(&settings, NULL, err, sizeof(err));
}

static int teardown(void **state)
{
	(void)state;
	od_settings_release(&settings);
	return 0;
}

static void test_connstr_append(void **state)
{
	struct od_str s = {0};

	(void)state;
	od_connstr_append(&s, "UID", "app", 3);
	od_connstr_append(&s, "PWD", "a;b}c", 5);
	od_connstr_append(&s, "X", " pad ", 5);
	assert_string_equal(od_str_cstr(&s), "UID=app;PWD={a;b}}c};X={ pad };");
	od_str_release(&s);
}

static void test_connstr_get(void **state)
{
	char v[64];

	(void)state;
	assert_int_equal(od_connstr_get("Driver=x;PWD={a;b}}c};Server = db ;", "pwd", v, sizeof(v)), 1);
	assert_string_equal(v, "a;b}c");
	assert_int_equal(od_connstr_get("Driver=x;Server = db ;", "server", v, sizeof(v)), 1);
	assert_string_equal(v, "db");
	assert_int_equal(od_connstr_get("Driver=x", "server", v, sizeof(v)), 0);
	assert_int_equal(od_connstr_get("Driver={x;Server=y", "server", v, sizeof(v)), -1);
}

static void redact(const struct od_redactor *r, const char *in, const char *want)
{
	struct od_str out = {0};

	od_redact(r, in, &out);
	assert_string_equal(od_str_cstr(&out), want);
	od_str_release(&out);
}

static void test_redact(void **state)
{
	struct od_redactor r = {0};
	const char *pw = "se;cr}et{pw";

	(void)state;
	od_redactor_add(&r, pw, strlen(pw));
	od_redactor_add(&r, "ab", 2); /* too short: ignored */
	assert_int_equal(r.n, 1);
	redact(&r, "user se;cr}et{pw failed", "user [REDACTED] failed");
	redact(&r, "PWD=se%3bcr%7det%7bpw;X=1", "PWD=[REDACTED];X=1");
	redact(&r, "got se%3Bcr%7Det%7Bpw", "got [REDACTED]");
	redact(&r, "user \"{se;cr}}et{pw}\"", "user \"{[REDACTED]}\"");
	redact(NULL, "Driver=x;PWD={a;b}}c};UID=u", "Driver=x;PWD=[REDACTED];UID=u");
	redact(NULL, "jdbc:x://h/d?user=u&password=hunter2&ssl=1",
	       "jdbc:x://h/d?user=u&password=[REDACTED]&ssl=1");
	redact(NULL, "Password: hunter2 then", "Password: [REDACTED] then");
	redact(NULL, "no secrets, pwdx=1", "no secrets, pwdx=1");
}

static void target(const char *field, const char *value, const char *want_conn,
		   const char *want_display, const char *want_host, const char *want_err)
{
	cJSON *p = cJSON_CreateObject();
	struct od_target t;
	char err[1024] = "";
	int rc;

	cJSON_AddStringToObject(p, field, value);
	rc = od_target_from_params(&t, &settings, p, err, sizeof(err));
	if (want_err) {
		assert_int_equal(rc, -1);
		assert_string_equal(err, want_err);
	} else {
		if (rc != 0)
			fail_msg("%s", err);
		assert_string_equal(t.conn, want_conn);
		assert_string_equal(t.display, want_display);
		if (want_host)
			assert_string_equal(t.host, want_host);
		else
			assert_null(t.host);
		od_target_release(&t);
	}
	cJSON_Delete(p);
}

static void test_urls(void **state)
{
	(void)state;
	target("url", "jdbc:postgresql://db.example.com/app?sslmode=require&user=me",
	       "Driver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so;Server=db.example.com;"
	       "Port=5432;Database=app;UseDeclareFetch=1;Fetch=10000;BoolsAsChar=0;"
	       "sslmode=require;",
	       "PostgreSQL server db.example.com:5432 (database app)", "db.example.com", NULL);
	target("url", "jdbc:postgresql://[::1]:6432/my%20db",
	       "Driver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so;Server=::1;Port=6432;"
	       "Database=my db;UseDeclareFetch=1;Fetch=10000;BoolsAsChar=0",
	       "PostgreSQL server ::1:6432 (database my db)", "::1", NULL);
	target("url", "jdbc:sqlserver://sql1\\INST:1444;databaseName=erp;encrypt=true",
	       "Driver=/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so;Server=sql1;Port=1444;"
	       "Database=erp;ClientCharset=UTF-8;Instance=INST;encrypt=true;",
	       "SQL Server server sql1:1444 (database erp)", "sql1", NULL);
	target("url", "jdbc:sqlite:/var/lib/app/a;b.db",
	       "Driver=/usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so;"
	       "Database={/var/lib/app/a;b.db};StepAPI=1",
	       "SQLite database /var/lib/app/a;b.db", NULL, NULL);
	target("url", "jdbc:mysql://db/app", "Driver=/usr/lib/x86_64-linux-gnu/odbc/libmaodbc.so;"
	       "Server=db;Port=3306;Database=app;", "MySQL server db:3306 (database app)", "db", NULL);
	target("url", "jdbc:postgresql://db/app?user=u&pwd=x", NULL, NULL, NULL,
	       "params.url: a password in the URL is refused; name a secret in "
	       "params.password_secret");
	target("url", "jdbc:postgresql://db/a%zz", NULL, NULL, NULL,
	       "params.url: expected a JDBC URL such as jdbc:postgresql://host:5432/db or "
	       "jdbc:sqlite:/path/file.db, got \"jdbc:postgresql://db/a%zz\"");
	target("url", "jdbc:postgresql://db:x/app", NULL, NULL, NULL,
	       "params.url: the port must be a number 1-65535, got \"x\"");
}

static void test_connection_strings(void **state)
{
	(void)state;
	target("connection_string", "Driver={PostgreSQL Unicode};Server=tcp:db,6000;Database=x",
	       "Driver={PostgreSQL Unicode};Server=tcp:db,6000;Database=x",
	       "the database server db:6000", "db", NULL);
	target("connection_string", "DSN=warehouse;Fetch=100", "DSN=warehouse;Fetch=100",
	       "data source warehouse", NULL, NULL);
	target("connection_string", "Driver=/usr/lib/x86_64-linux-gnu/odbc/../../../../tmp/x.so",
	       NULL, NULL, NULL,
	       "params.connection_string: driver "
	       "/usr/lib/x86_64-linux-gnu/odbc/../../../../tmp/x.so must be an absolute path or "
	       "a driver name from odbcinst.ini");
	target("connection_string", "Driver=x;Password={p}", NULL, NULL, NULL,
	       "params.connection_string: a password is refused here (Password=); name a secret "
	       "in params.password_secret");
	target("dsn", "warehouse", "DSN=warehouse;", "data source warehouse", NULL, NULL);
}

static void test_settings(void **state)
{
	struct od_settings s;
	char err[512];
	cJSON *c = cJSON_Parse("{\"env_allow\": [\"ODBCINI\"], \"fetch_rows\": 500,"
			       " \"buffer_memory\": \"1MiB\", \"cancel_drivers\": [\"libmsodbcsql-18.so\"],"
			       " \"drivers\": {\"postgresql\": {\"options\": \"Fetch=500\"},"
			       "  \"duck\": {\"driver\": \"/opt/duckdb/libduckdb_odbc.so\","
			       "   \"template\": \"Database={path}\", \"label\": \"DuckDB\"}}}");

	(void)state;
	assert_int_equal(od_settings_load(&s, c, err, sizeof(err)), 0);
	assert_int_equal(s.fetch_rows, 500);
	assert_int_equal(s.buffer_memory, 1024 * 1024);
	assert_string_equal(od_settings_driver(&s, "postgresql")->options, "Fetch=500");
	assert_string_equal(od_settings_driver(&s, "postgresql")->template,
			    "Server={host};Port={port};Database={database}");
	assert_string_equal(od_settings_driver(&s, "duck")->label, "DuckDB");
	assert_true(od_settings_cancel_safe(&s, "/opt/x/libmsodbcsql-18.so"));
	assert_false(od_settings_cancel_safe(&s, "psqlodbcw.so"));
	assert_true(od_settings_cancel_safe(&settings, "psqlodbcw.so"));
	assert_false(od_settings_cancel_safe(&settings, "libsqlite3odbc.so"));
	od_settings_release(&s);
	cJSON_Delete(c);
}

static void split(const char *script, long want_n, const char *const *want)
{
	char **stmts = NULL;
	long n = od_split_script(script, &stmts);

	assert_int_equal(n, want_n);
	for (long i = 0; i < n; i++)
		assert_string_equal(stmts[i], want[i]);
	od_free_statements(stmts, n);
}

static void test_split(void **state)
{
	static const char *const a[] = {"select 'a;b'", "select \"x;y\" from t",
					"insert into t values ('it''s; ok')"};
	static const char *const b[] = {"create function f() returns int as $$ select 1; $$ "
					"language sql",
					"do $body$ begin perform 1; end $body$"};
	static const char *const c[] = {"select 1 /* in; side */ + 2", "select E'\\';'"};
	static const char *const d[] = {"select 1"};

	(void)state;
	split("select 'a;b'; select \"x;y\" from t;\n-- note; here\ninsert into t values ('it''s; ok');",
	      3, a);
	split("create function f() returns int as $$ select 1; $$ language sql; do $body$ begin "
	      "perform 1; end $body$;",
	      2, b);
	split("select 1 /* in; side */ + 2; select E'\\';';", 2, c);
	split(" ;; -- only\n;/* x */ select 1", 1, d);
	split("-- nothing\n ; ", 0, NULL);
}

static void test_formatters(void **state)
{
	char buf[64];
	SQL_TIMESTAMP_STRUCT ts = {2024, 2, 29, 13, 5, 9, 125000000};
	SQL_DATE_STRUCT d = {999, 1, 2};
	unsigned char *bytes;
	size_t n;

	(void)state;
	buf[od_fmt_i64(buf, INT64_MIN)] = '\0';
	assert_string_equal(buf, "-9223372036854775808");
	buf[od_fmt_u64(buf, UINT64_MAX)] = '\0';
	assert_string_equal(buf, "18446744073709551615");
	buf[od_fmt_timestamp(buf, &ts)] = '\0';
	assert_string_equal(buf, "2024-02-29T13:05:09.125");
	ts.fraction = 0;
	buf[od_fmt_timestamp(buf, &ts)] = '\0';
	assert_string_equal(buf, "2024-02-29T13:05:09");
	ts.fraction = 1;
	buf[od_fmt_timestamp(buf, &ts)] = '\0';
	assert_string_equal(buf, "2024-02-29T13:05:09.000000001");
	buf[od_fmt_date(buf, &d)] = '\0';
	assert_string_equal(buf, "0999-01-02");
	assert_true(od_is_json_number("-0.5e+10", 8));
	assert_true(od_is_json_number("0", 1));
	assert_false(od_is_json_number("NaN", 3));
	assert_false(od_is_json_number("01", 2));
	assert_false(od_is_json_number("1.", 2));
	assert_false(od_is_json_number("+1", 2));
	assert_false(od_is_json_number("", 0));
	buf[od_base64((const unsigned char *)"\x00\xff\x10\x01", 4, buf)] = '\0';
	assert_string_equal(buf, "AP8QAQ==");
	assert_int_equal(od_base64_decode("AP8QAQ==", &bytes, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(bytes, "\x00\xff\x10\x01", 4);
	free(bytes);
	assert_int_equal(od_base64_decode("AP8=QQ", &bytes, &n), -1);
	assert_int_equal(od_base64_decode("A", &bytes, &n), -1);
}

static void test_json_string(void **state)
{
	struct od_out o;

	(void)state;
	assert_int_equal(od_out_init(&o, -1, 16), 0);
	od_write_json_string(&o, "a\"\\\n\x01\xc3\xa9\xff\xe2\x98\x83", 11);
	od_out_put(&o, "", 1);
	assert_string_equal(o.buf, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\\ufffd\xe2\x98\x83\"");
	od_out_release(&o);
}

static void test_params(void **state)
{
	struct od_params ps;
	char err[512];
	cJSON *l = cJSON_Parse("[\"s\", 7, 1.5, true, null, {\"type\": \"decimal\", \"value\": "
			       "\"-12.340\"}, {\"type\": \"timestamp\", \"value\": "
			       "\"2024-01-02 03:04:05.5\"}, {\"type\": \"binary\", \"value\": \"AP8=\"}]");

	(void)state;
	assert_int_equal(od_params_prepare(l, &ps, err, sizeof(err)), 0);
	assert_int_equal(ps.n, 8);
	assert_int_equal(ps.p[0].ctype, SQL_C_CHAR);
	assert_int_equal(ps.p[1].sqltype, SQL_BIGINT);
	assert_string_equal((const char *)ps.p[1].data, "7");
	assert_int_equal(ps.p[2].ctype, SQL_C_DOUBLE);
	assert_int_equal(ps.p[3].ctype, SQL_C_BIT);
	assert_int_equal(ps.p[4].ind, SQL_NULL_DATA);
	assert_int_equal(ps.p[5].sqltype, SQL_DECIMAL);
	assert_int_equal(ps.p[5].size, 5);
	assert_int_equal(ps.p[5].digits, 3);
	assert_int_equal(ps.p[6].v.ts.fraction, 500000000);
	assert_int_equal(ps.p[6].digits, 1);
	assert_int_equal(ps.p[7].ind, 2);
	od_params_release(&ps);
	cJSON_Delete(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connstr_append), cmocka_unit_test(test_connstr_get),
		cmocka_unit_test(test_redact),	       cmocka_unit_test(test_urls),
		cmocka_unit_test(test_connection_strings), cmocka_unit_test(test_settings),
		cmocka_unit_test(test_split),	       cmocka_unit_test(test_formatters),
		cmocka_unit_test(test_json_string),    cmocka_unit_test(test_params),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
