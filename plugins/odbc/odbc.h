/* SPDX-License-Identifier: Apache-2.0 */
/* The odbc plugin's internal interfaces: settings, targets, sessions, result sets, writers. */
#ifndef OD_ODBC_H
#define OD_ODBC_H

#include <outpost/sdk.h>

#include <pthread.h>
#include <sql.h>
#include <sqlext.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable strings -------------------------------------------------------------------- */

/* A growable, always NUL-terminated byte string. A failed allocation sets oom and turns every
 * later append into a no-op, so callers check once at the end. */
struct od_str {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Makes room for EXTRA more bytes (and the NUL). Returns false when out of memory. */
bool od_str_reserve(struct od_str *s, size_t extra);
void od_str_put(struct od_str *s, const void *data, size_t len);
void od_str_puts(struct od_str *s, const char *text);
void od_str_printf(struct od_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void od_str_vprintf(struct od_str *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void od_str_reset(struct od_str *s);
void od_str_release(struct od_str *s);
/* The text, or "" when empty or out of memory. */
const char *od_str_cstr(const struct od_str *s);

/* ---- settings (plugins.config.odbc) ------------------------------------------------------ */

/* One row of the JDBC URL → ODBC driver table. */
struct od_driver {
	char *name;     /* the URL's subprotocol: postgresql, sqlite, mysql, ... */
	char *label;    /* for messages: "PostgreSQL" */
	char *driver;   /* an absolute path or a driver name from odbcinst.ini */
	char *template; /* "Server={host};Port={port};Database={database}" */
	int default_port;
	char *options; /* appended to every connection string: "UseDeclareFetch=1;Fetch=10000" */
};

struct od_settings {
	struct od_driver *drivers;
	size_t n_drivers;
	char **driver_dirs; /* absolute Driver= paths must lie under one of these */
	size_t n_driver_dirs;
	char **cancel_drivers; /* driver files whose SQLCancel may be called from another thread */
	size_t n_cancel_drivers;
	int64_t fetch_rows;     /* rows per fetch (row-array size) */
	uint64_t buffer_memory; /* bytes for column buffers of one fetch */
};

/* Parses CONFIG (the agent's plugins.config.odbc, may be NULL) over the built-in defaults.
 * Returns 0, or -1 with *err set to a message naming the key. */
int od_settings_load(struct od_settings *s, const cJSON *config, char *err, size_t errlen);
void od_settings_release(struct od_settings *s);
const struct od_driver *od_settings_driver(const struct od_settings *s, const char *name);
bool od_settings_cancel_safe(const struct od_settings *s, const char *driver_file);

/* ---- connection targets ------------------------------------------------------------------ */

/* Where a task connects: built from params.url, params.connection_string or params.dsn. */
struct od_target {
	char *conn;    /* the connection string without credentials */
	char *display; /* how messages name it: "PostgreSQL server 10.0.0.5:5432 (database app)" */
	char *host;    /* NULL for file databases and DSNs whose server is unknown */
	char *port;    /* NULL when unknown */
	char *dsn;     /* params.dsn, or DSN= from the connection string */
	char *url_user; /* user=... from the URL */
	const struct od_driver *drv; /* the table row a URL mapped to, or NULL */
};

/* Fills T from params (exactly one of url, connection_string, dsn). Returns 0, or -1 with a
 * params error message in ERR. */
int od_target_from_params(struct od_target *t, const struct od_settings *s, const cJSON *params,
			  char *err, size_t errlen);
void od_target_release(struct od_target *t);

/* Appends KEY=VALUE; to S, wrapping VALUE in braces when it holds ; { } or spaces at its ends. */
void od_connstr_append(struct od_str *s, const char *key, const char *value, size_t len);
/* Finds KEY (case-insensitive) in connection string CS; copies its value (braces removed)
 * into OUT. Returns 1 when found, 0 when not, -1 when CS is malformed. */
int od_connstr_get(const char *cs, const char *key, char *out, size_t outlen);
/* Calls FN for every pair of CS. Returns -1 on a malformed string, else FN's first non-zero
 * return or 0. */
int od_connstr_each(const char *cs, int (*fn)(void *arg, const char *key, const char *val),
		    void *arg);

/* ---- redaction --------------------------------------------------------------------------- */

/* Secret values that must never reach a message, log line or result. */
struct od_redactor {
	const char *values[4];
	size_t lens[4];
	size_t n;
};

void od_redactor_add(struct od_redactor *r, const char *value, size_t len);
/* Appends TEXT to OUT with every registered value (raw and %-encoded) and the value of every
 * PWD=/Password= pair replaced by [REDACTED]. */
void od_redact(const struct od_redactor *r, const char *text, struct od_str *out);

/* ---- plugin state ------------------------------------------------------------------------ */

struct od_state {
	struct od_settings settings;
	atomic_int cancelled;
	int cancel_pipe[2]; /* cancel() writes a byte; a session's watcher wakes up */
};

/* ---- a task's session -------------------------------------------------------------------- */

typedef SQLRETURN (*od_cancel_fn)(SQLHSTMT);

struct od_session {
	outpost_ctx *ctx;
	struct od_state *st;
	struct od_target target;
	struct od_redactor redactor;
	const char *user; /* plain or from a secret */
	char password_secret[128];
	SQLHENV env;
	SQLHDBC dbc;
	bool connected;
	double login_timeout, query_timeout; /* seconds; 0 = none */
	char dbms[96], dbms_ver[64], driver_file[128], driver_ver[64];
	SQLUSMALLINT getdata_ext;
	bool autocommit_off;

	/* Cancellation: cancel() only sets a flag and writes to a pipe (async-signal-safe). The
	 * watcher thread wakes up and, for drivers listed as cancel-safe, calls the driver's own
	 * SQLCancel on the running statement (not through the driver manager, whose bookkeeping
	 * is not thread-safe). It also enforces query_timeout when the driver lets it slip. */
	pthread_mutex_t mu;
	pthread_t watcher;
	bool watcher_running;
	int stop_pipe[2];
	od_cancel_fn drv_cancel; /* NULL: the driver's SQLCancel is not safe to call */
	SQLHSTMT drv_stmt;       /* the driver's handle of the statement running now */
	double exec_deadline;    /* monotonic; 0 = none */
	bool cancel_sent, timeout_fired;
};

double od_now(void);
bool od_cancelled(struct od_session *s);

/* Connects with params' credentials and timeouts. Returns an OUTPOST_* code with the error
 * set on failure. */
int od_session_open(struct od_session *s, outpost_ctx *ctx, struct od_state *st,
		    const cJSON *params);
void od_session_close(struct od_session *s);

/* Allocates a statement with the query timeout applied. Returns OUTPOST_OK or an error. */
int od_stmt_new(struct od_session *s, SQLHSTMT *stmt);
/* Frees STMT after unregistering it from the watcher. */
void od_stmt_free(struct od_session *s, SQLHSTMT stmt);
/* Runs SQLExecDirect (or SQLExecute when SQL is NULL) with the watcher armed. Returns the
 * ODBC return code; SQL_NO_DATA for a searched UPDATE/DELETE that touched no rows. */
SQLRETURN od_exec(struct od_session *s, SQLHSTMT stmt, const char *sql);

/*
 * Turns a failed ODBC call into the task's error: WHAT (e.g. "query failed"), then every
 * diagnostic record of HANDLE ("[SQLSTATE] message (native N)"), redacted, then a hint for
 * connection and authentication failures. Returns the OUTPOST_* code that fits: CANCELLED when
 * the task was cancelled, TIMEOUT when query_timeout fired, FAILED otherwise.
 */
int od_fail_diag(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, const char *what);
/* The same with SUFFIX (e.g. "; the transaction was rolled back") after the diagnostics. */
int od_fail_diag_ex(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, const char *what,
		    const char *suffix);
/* Sets a plain error message through the redactor. */
int od_fail(struct od_session *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends HANDLE's diagnostic records to OUT (redacted); returns the first SQLSTATE in STATE. */
void od_diag_text(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, struct od_str *out,
		  char state[6]);
/* Logs the warnings (SQL_SUCCESS_WITH_INFO records) of HANDLE at debug level. */
void od_log_info_diag(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, const char *what);

/* The local address this host uses to reach HOST:PORT (no packet is sent), or "" if unknown. */
void od_egress_ip(const char *host, const char *port, char *out, size_t outlen);

/* ---- bound parameters -------------------------------------------------------------------- */

struct od_param {
	SQLSMALLINT ctype, sqltype;
	SQLULEN size;
	SQLSMALLINT digits;
	SQLLEN ind;
	SQLLEN buflen;
	void *data;
	char *owned;
	union {
		int64_t i;
		double d;
		unsigned char b;
		SQL_DATE_STRUCT date;
		SQL_TIMESTAMP_STRUCT ts;
	} v;
};

struct od_params {
	struct od_param *p;
	size_t n;
};

/* Checks params.params (a list, may be absent) and, when OUT is non-NULL, converts it for
 * SQLBindParameter. Returns 0, or -1 with a message naming the item in ERR. */
int od_params_prepare(const cJSON *list, struct od_params *out, char *err, size_t errlen);
void od_params_release(struct od_params *ps);
/* Binds PS to STMT. Returns OUTPOST_OK or an error set through the session. */
int od_params_bind(struct od_session *s, SQLHSTMT stmt, struct od_params *ps);

/* ---- result sets ------------------------------------------------------------------------- */

enum od_kind {
	OD_K_INT,       /* digits as text: a JSON number (a string beyond 15 digits) */
	OD_K_FLOAT,     /* text from the driver: a JSON number when it reads as one */
	OD_K_DECIMAL,   /* text: a JSON string, exact */
	OD_K_BIT,       /* SQL_C_BIT: true/false */
	OD_K_DATE,      /* SQL_DATE_STRUCT: "YYYY-MM-DD" */
	OD_K_TIMESTAMP, /* SQL_TIMESTAMP_STRUCT: "YYYY-MM-DDTHH:MM:SS[.f]" */
	OD_K_TIME,      /* text from the driver */
	OD_K_GUID,      /* text, lower-cased */
	OD_K_TEXT,      /* text */
	OD_K_BINARY     /* bytes: base64 */
};

struct od_col {
	char *name;
	char *json_name; /* the name as a JSON string, quotes included */
	char type_name[64];
	SQLSMALLINT sql_type, digits, nullable;
	SQLULEN size;
	enum od_kind kind;
	SQLSMALLINT ctype;
	size_t width;  /* bytes per cell in buf */
	bool variable; /* text or bytes: may be truncated */
	bool bound;
	char *buf;
	SQLLEN *ind;
	size_t max_seen; /* the longest value seen in the last fetch, for growth */
	unsigned truncated_last; /* cells truncated in the last fetch */
};

/* A cell's value for the writers. */
struct od_cell {
	const char *p; /* text (not NUL-terminated) or bytes, or the struct for fixed kinds */
	size_t len;
	bool null;
};

struct od_rowset {
	struct od_session *s;
	SQLHSTMT stmt;
	struct od_col *cols;
	SQLSMALLINT ncols;
	size_t rows;       /* the row-array size */
	SQLULEN fetched;   /* rows in the current block */
	SQLUSMALLINT *status;
	bool block_repair; /* the driver lets us SQLSetPos + SQLGetData in a block */
	bool done;
	/* values fetched with SQLGetData: repaired truncations and unbound long columns */
	struct od_str spill;
	size_t *spill_off; /* rows * ncols: offset+1 into spill, 0 = not spilled */
	size_t *spill_len;
	uint64_t total_rows;
	unsigned repairs;
};

/* Describes the result set of STMT and binds its columns for row-array fetches of at most
 * MAX_ROWS rows (0: the settings' fetch_rows). Returns OUTPOST_OK or an error. */
int od_rowset_open(struct od_rowset *rs, struct od_session *s, SQLHSTMT stmt, size_t max_rows);
/* Fetches the next block. Returns 1 with rs->fetched rows, 0 at the end, or -(OUTPOST_*) on
 * error (the error is set). */
int od_rowset_next(struct od_rowset *rs);
/* The value of column C in row R of the current block. */
void od_rowset_cell(const struct od_rowset *rs, size_t r, SQLSMALLINT c, struct od_cell *out);
void od_rowset_release(struct od_rowset *rs);
/* The column list as JSON text: [{"name","type","db_type","nullable"}]. */
void od_rowset_columns_json(const struct od_rowset *rs, struct od_str *out);

/* ---- writers ----------------------------------------------------------------------------- */

/* Output to a file descriptor through a buffer (fd >= 0), or into memory (fd < 0). */
struct od_out {
	int fd;
	char *buf;
	size_t len, cap;
	uint64_t written; /* bytes handed to write() */
	int err;          /* errno of a failed write, or ENOMEM */
};

int od_out_init(struct od_out *o, int fd, size_t cap);
void od_out_release(struct od_out *o);
int od_out_flush(struct od_out *o);
void od_out_put(struct od_out *o, const void *p, size_t n);

struct od_csv {
	char delim;
	const char *null_as;
	size_t null_len;
};

void od_write_csv_header(struct od_out *o, const struct od_csv *csv, const struct od_rowset *rs);
void od_write_csv_row(struct od_out *o, const struct od_csv *csv, const struct od_rowset *rs,
		      size_t r);
/* One row as a JSON object (or array when AS_ARRAY), no newline. */
void od_write_json_row(struct od_out *o, const struct od_rowset *rs, size_t r, bool as_array);
/* A JSON string with quotes; invalid UTF-8 becomes U+FFFD. */
void od_write_json_string(struct od_out *o, const char *p, size_t len);
void od_str_json(struct od_str *s, const char *text);

/* Formatters shared with tests. Return the length written (OUT has room for 40 bytes). */
size_t od_fmt_i64(char *out, int64_t v);
size_t od_fmt_u64(char *out, uint64_t v);
size_t od_fmt_date(char *out, const SQL_DATE_STRUCT *d);
size_t od_fmt_timestamp(char *out, const SQL_TIMESTAMP_STRUCT *ts);
/* True when TEXT is a JSON number. */
bool od_is_json_number(const char *p, size_t len);
/* Base64 of LEN bytes into OUT (room for 4 * ceil(len / 3)); returns its length. */
size_t od_base64(const unsigned char *in, size_t len, char *out);
/* Decodes base64 TEXT into a new buffer. Returns 0, or -1 when TEXT is not base64. */
int od_base64_decode(const char *text, unsigned char **out, size_t *outlen);

/* ---- scripts ----------------------------------------------------------------------------- */

/* Splits SCRIPT at top-level semicolons (quotes, comments and dollar quoting respected) into
 * *STMTS (each malloc'ed, trimmed; empty statements dropped). Returns the count or -1 (OOM). */
long od_split_script(const char *script, char ***stmts);
void od_free_statements(char **stmts, long n);

/* ---- task types -------------------------------------------------------------------------- */

int od_task_query(struct od_session *s, const cJSON *params);
int od_task_script(struct od_session *s, const cJSON *params);
int od_task_export(struct od_session *s, const cJSON *params);

#endif
