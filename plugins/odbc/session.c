/* SPDX-License-Identifier: Apache-2.0 */
/* A task's connection: credentials from secrets, timeouts, diagnostics turned into messages
 * users can act on, and cancellation that is safe for the driver at hand. */
#include "odbc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

bool od_cancelled(struct od_session *s)
{
	return atomic_load(&s->st->cancelled) || outpost_host->is_cancelled(s->ctx);
}

/* ---- messages ---------------------------------------------------------------------------- */

int od_fail(struct od_session *s, int rc, const char *fmt, ...)
{
	struct od_str raw = {0}, clean = {0};
	va_list ap;

	va_start(ap, fmt);
	od_str_vprintf(&raw, fmt, ap);
	va_end(ap);
	od_redact(&s->redactor, od_str_cstr(&raw), &clean);
	outpost_host->set_error(s->ctx, clean.oom ? "out of memory" : od_str_cstr(&clean));
	od_str_release(&raw);
	od_str_release(&clean);
	return rc;
}

/* Appends MSG with runs of whitespace (drivers put newlines and tabs in) folded to one space. */
static void put_folded(struct od_str *out, const char *msg)
{
	bool space = false;

	for (const char *p = msg; *p; p++) {
		if (isspace((unsigned char)*p)) {
			space = true;
			continue;
		}
		if (space && out->len > 0 && out->p[out->len - 1] != ' ')
			od_str_put(out, " ", 1);
		space = false;
		od_str_put(out, p, 1);
	}
}

void od_diag_text(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, struct od_str *out,
		  char state[6])
{
	struct od_str raw = {0};
	SQLCHAR st[6], msg[2048];
	SQLINTEGER native;
	SQLSMALLINT len;

	if (state)
		state[0] = '\0';
	for (SQLSMALLINT i = 1; i <= 50; i++) {
		SQLRETURN rc = SQLGetDiagRec(type, handle, i, st, &native, msg, sizeof(msg), &len);

		if (rc != SQL_SUCCESS && rc != SQL_SUCCESS_WITH_INFO)
			break;
		if (state && state[0] == '\0')
			memcpy(state, st, 6);
		if (raw.len)
			od_str_puts(&raw, "; ");
		od_str_printf(&raw, "[%s] ", (const char *)st);
		put_folded(&raw, (const char *)msg);
		while (raw.len > 0 && (raw.p[raw.len - 1] == ';' || raw.p[raw.len - 1] == ' '))
			raw.p[--raw.len] = '\0';
		if (native != 0)
			od_str_printf(&raw, " (native %d)", (int)native);
	}
	if (raw.len == 0)
		od_str_puts(&raw, "no diagnostic records from the driver");
	od_redact(s ? &s->redactor : NULL, od_str_cstr(&raw), out);
	od_str_release(&raw);
}

void od_log_info_diag(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, const char *what)
{
	struct od_str text = {0};

	od_diag_text(s, type, handle, &text, NULL);
	outpost_debug(s->ctx, "%s: %s", what, od_str_cstr(&text));
	od_str_release(&text);
}

void od_egress_ip(const char *host, const char *port, char *out, size_t outlen)
{
	struct addrinfo hints = {0}, *ai = NULL;
	struct sockaddr_storage local;
	socklen_t sl = sizeof(local);
	int fd = -1;

	out[0] = '\0';
	if (host == NULL || host[0] == '\0')
		return;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port && port[0] ? port : "9", &hints, &ai) != 0 || ai == NULL)
		return;
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&local, &sl) == 0) {
		if (local.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&local)->sin_addr, out,
				  (socklen_t)outlen);
		else if (local.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&local)->sin6_addr, out,
				  (socklen_t)outlen);
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* The hint after a failed connection: authentication or network, as the diagnostics say. */
static void connect_hint(struct od_session *s, const char *state, const char *text,
			 struct od_str *out)
{
	bool auth = strncmp(state, "28", 2) == 0 || contains_ci(text, "authentication failed") ||
		    contains_ci(text, "password") || contains_ci(text, "login failed") ||
		    contains_ci(text, "access denied");

	if (contains_ci(text, "can't open lib")) {
		if (s->target.drv)
			od_str_printf(out, "\nhint: the driver library is missing: install the driver's "
					   "package (scripts/deps.sh names Debian's) or point "
					   "plugins.config.odbc.drivers.%s.driver at it",
				      s->target.drv->name);
		else
			od_str_puts(out, "\nhint: the driver library is missing: install the driver's "
					 "package or fix the Driver= path");
		return;
	}
	if (strcmp(state, "IM002") == 0) {
		if (s->target.dsn)
			od_str_printf(out, "\nhint: check that the data source %s is defined in the "
					   "odbc.ini the agent reads (ODBCINI and ODBCSYSINI reach the "
					   "worker only through plugins.config.odbc.env_allow)",
				      s->target.dsn);
		else
			od_str_puts(out, "\nhint: check the Driver= name against odbcinst.ini "
					 "(odbcinst -q -d lists the installed drivers), or give the "
					 "driver library's absolute path");
		return;
	}
	if (s->target.drv && s->target.host == NULL) {
		od_str_puts(out, "\nhint: check that the file exists and that the agent's user may "
				 "read it (and write it, for changes)");
		return;
	}
	if (auth) {
		od_str_printf(out, "\nhint: the database refused the credentials: check the user "
				   "name%s%s%s",
			      s->password_secret[0] ? " and the secret named in "
						      "params.password_secret (" : "",
			      s->password_secret, s->password_secret[0] ? ")" : "");
		return;
	}
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "HYT00") == 0 ||
	    contains_ci(text, "timeout expired") || contains_ci(text, "connection refused")) {
		char ip[64];

		if (contains_ci(text, "does not exist"))
			return;
		if (contains_ci(text, "translate host name") ||
		    contains_ci(text, "name or service not known")) {
			od_str_printf(out, "\nhint: this host cannot resolve %s: check the name and "
					   "the agent host's DNS (/etc/resolv.conf)",
				      s->target.host ? s->target.host : "the server's name");
			return;
		}
		if (s->target.host == NULL) {
			od_str_puts(out, "\nhint: check that the data source's server is reachable "
					 "from this host and that the database's firewall or allowlist "
					 "admits this agent's egress IP");
			return;
		}
		od_egress_ip(s->target.host, s->target.port, ip, sizeof(ip));
		od_str_printf(out,
			      "\nhint: the agent connects to %s%s%s from its egress IP %s; check that "
			      "the database listens there and that its firewall or allowlist "
			      "(security group, pg_hba.conf) admits %s",
			      s->target.host, s->target.port ? ":" : "",
			      s->target.port ? s->target.port : "", ip[0] ? ip : "(unknown)",
			      ip[0] ? ip : "this agent's address");
		if (contains_ci(text, "timeout expired") || strcmp(state, "HYT00") == 0)
			od_str_printf(out, " (no answer within params.login_timeout, %gs)",
				      s->login_timeout);
	}
}

int od_fail_diag(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, const char *what)
{
	return od_fail_diag_ex(s, type, handle, what, NULL);
}

int od_fail_diag_ex(struct od_session *s, SQLSMALLINT type, SQLHANDLE handle, const char *what,
		    const char *suffix)
{
	struct od_str text = {0}, msg = {0};
	char state[6];
	int rc = OUTPOST_ERR_FAILED;

	od_diag_text(s, type, handle, &text, state);
	if (od_cancelled(s) || s->cancel_sent) {
		rc = OUTPOST_ERR_CANCELLED;
		od_str_printf(&msg, "cancelled: %s: %s%s", what, od_str_cstr(&text),
			      suffix ? suffix : "");
	} else if (s->timeout_fired || strcmp(state, "HYT00") == 0 || strcmp(state, "HYT01") == 0 ||
		   (strcmp(state, "57014") == 0 && contains_ci(od_str_cstr(&text), "timeout"))) {
		rc = OUTPOST_ERR_TIMEOUT;
		od_str_printf(&msg, "%s: timed out after %gs (params.query_timeout): %s%s", what,
			      s->query_timeout, od_str_cstr(&text), suffix ? suffix : "");
	} else {
		od_str_printf(&msg, "%s: %s", what, od_str_cstr(&text));
		if (suffix)
			od_str_puts(&msg, suffix);
		if (!s->connected)
			connect_hint(s, state, od_str_cstr(&text), &msg);
	}
	/* the parts were redacted already; od_fail redacts again (harmless) */
	od_fail(s, rc, "%s", msg.oom ? "out of memory" : od_str_cstr(&msg));
	od_str_release(&text);
	od_str_release(&msg);
	return rc;
}

/* ---- cancellation ------------------------------------------------------------------------ */

struct find_lib {
	const char *base;
	char path[512];
};

static int find_lib_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct find_lib *f = arg;
	const char *slash;

	(void)size;
	if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
		return 0;
	slash = strrchr(info->dlpi_name, '/');
	if (strcmp(slash ? slash + 1 : info->dlpi_name, f->base) == 0) {
		snprintf(f->path, sizeof(f->path), "%s", info->dlpi_name);
		return 1;
	}
	return 0;
}

/* The driver's own SQLCancel, when the settings list the driver as safe to cancel from
 * another thread. */
static od_cancel_fn driver_cancel_fn(struct od_session *s)
{
	struct find_lib f = {.base = s->driver_file};
	void *lib;
	od_cancel_fn fn;

	if (!od_settings_cancel_safe(&s->st->settings, s->driver_file))
		return NULL;
	if (dl_iterate_phdr(find_lib_cb, &f) == 0)
		return NULL;
	lib = dlopen(f.path, RTLD_NOW | RTLD_NOLOAD | RTLD_LOCAL);
	if (lib == NULL)
		return NULL;
	*(void **)&fn = dlsym(lib, "SQLCancel");
	/* The driver manager keeps the library loaded until the connection closes; drop the
	 * reference dlopen took so that it unloads with it. */
	dlclose(lib);
	return fn;
}

/* Calls the driver's SQLCancel on the running statement. Called with s->mu held. */
static void cancel_running(struct od_session *s)
{
	if (s->drv_cancel != NULL && s->drv_stmt != NULL && !s->cancel_sent) {
		s->cancel_sent = true;
		(void)s->drv_cancel(s->drv_stmt);
	}
}

static void *watcher_main(void *arg)
{
	struct od_session *s = arg;
	struct pollfd fds[2] = {{.fd = s->stop_pipe[0], .events = POLLIN},
				{.fd = s->st->cancel_pipe[0], .events = POLLIN}};

	for (;;) {
		int timeout = 200;
		char buf[16];

		pthread_mutex_lock(&s->mu);
		if (s->exec_deadline > 0) {
			double left = s->exec_deadline - od_now();

			if (left <= 0) {
				if (!s->timeout_fired && s->drv_stmt != NULL) {
					s->timeout_fired = true;
					if (s->drv_cancel != NULL && s->drv_stmt != NULL) {
						s->cancel_sent = false;
						(void)s->drv_cancel(s->drv_stmt);
					}
				}
			} else if (left * 1000 < timeout) {
				timeout = (int)(left * 1000) + 1;
			}
		}
		if (atomic_load(&s->st->cancelled) && s->drv_stmt != NULL)
			cancel_running(s);
		pthread_mutex_unlock(&s->mu);
		if (poll(fds, 2, timeout) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (fds[1].revents & POLLIN)
			while (read(fds[1].fd, buf, sizeof(buf)) > 0)
				;
	}
	return NULL;
}

static int watcher_start(struct od_session *s)
{
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		s->stop_pipe[0] = s->stop_pipe[1] = -1;
		return -1;
	}
	if (pthread_create(&s->watcher, NULL, watcher_main, s) != 0)
		return -1;
	s->watcher_running = true;
	return 0;
}

static void watcher_stop(struct od_session *s)
{
	if (s->watcher_running) {
		(void)!write(s->stop_pipe[1], "x", 1);
		pthread_join(s->watcher, NULL);
		s->watcher_running = false;
	}
	for (int i = 0; i < 2; i++)
		if (s->stop_pipe[i] >= 0) {
			close(s->stop_pipe[i]);
			s->stop_pipe[i] = -1;
		}
}

/* ---- statements -------------------------------------------------------------------------- */

int od_stmt_new(struct od_session *s, SQLHSTMT *stmt)
{
	SQLHSTMT h = SQL_NULL_HSTMT;

	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, s->dbc, &h)))
		return od_fail_diag(s, SQL_HANDLE_DBC, s->dbc, "cannot allocate a statement");
	if (s->query_timeout > 0) {
		SQLULEN secs = (SQLULEN)ceil(s->query_timeout);
		SQLRETURN rc = SQLSetStmtAttr(h, SQL_ATTR_QUERY_TIMEOUT, (SQLPOINTER)secs, 0);

		if (!SQL_SUCCEEDED(rc))
			od_log_info_diag(s, SQL_HANDLE_STMT, h,
					 "the driver does not take a query timeout");
	}
	*stmt = h;
	return OUTPOST_OK;
}

void od_stmt_free(struct od_session *s, SQLHSTMT stmt)
{
	if (stmt == SQL_NULL_HSTMT)
		return;
	pthread_mutex_lock(&s->mu);
	s->drv_stmt = NULL;
	s->exec_deadline = 0;
	pthread_mutex_unlock(&s->mu);
	SQLFreeHandle(SQL_HANDLE_STMT, stmt);
}

SQLRETURN od_exec(struct od_session *s, SQLHSTMT stmt, const char *sql)
{
	SQLHANDLE drv = stmt;
	SQLRETURN rc;

	pthread_mutex_lock(&s->mu);
	s->cancel_sent = false;
	s->timeout_fired = false;
	s->drv_stmt = NULL;
	if (s->drv_cancel != NULL &&
	    SQL_SUCCEEDED(SQLGetInfo(s->dbc, SQL_DRIVER_HSTMT, &drv, sizeof(drv), NULL)))
		s->drv_stmt = drv;
	/* The driver enforces query_timeout itself (SQL_ATTR_QUERY_TIMEOUT); the watcher steps in
	 * one second later for drivers that let it slip, when their SQLCancel is safe. */
	s->exec_deadline = s->query_timeout > 0 ? od_now() + s->query_timeout + 1.0 : 0;
	pthread_mutex_unlock(&s->mu);
	if (od_cancelled(s)) {
		rc = SQL_ERROR;
	} else {
		rc = sql ? SQLExecDirect(stmt, (SQLCHAR *)sql, SQL_NTS) : SQLExecute(stmt);
	}
	pthread_mutex_lock(&s->mu);
	s->exec_deadline = 0;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* ---- connecting -------------------------------------------------------------------------- */

static void getinfo_str(SQLHDBC dbc, SQLUSMALLINT what, char *out, size_t outlen)
{
	SQLSMALLINT len = 0;

	out[0] = '\0';
	if (!SQL_SUCCEEDED(SQLGetInfo(dbc, what, out, (SQLSMALLINT)outlen, &len)))
		out[0] = '\0';
	out[outlen - 1] = '\0';
}

int od_session_open(struct od_session *s, outpost_ctx *ctx, struct od_state *st,
		    const cJSON *params)
{
	struct od_str cs = {0};
	const char *user = NULL, *user_secret = NULL, *pw_secret = NULL, *password = NULL;
	size_t pw_len = 0, user_len = 0;
	char err[1024];
	double t0;
	SQLRETURN rc;
	int ret = OUTPOST_ERR_INTERNAL;

	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->st = st;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	if (od_target_from_params(&s->target, &st->settings, params, err, sizeof(err)) < 0)
		return od_fail(s, OUTPOST_ERR_PARAMS, "%s", err);
	if (outpost_get_str(ctx, params, "user", &user, NULL) < 0 ||
	    outpost_get_str(ctx, params, "user_secret", &user_secret, NULL) < 0 ||
	    outpost_get_str(ctx, params, "password_secret", &pw_secret, NULL) < 0 ||
	    outpost_get_duration(ctx, params, "login_timeout", &s->login_timeout, 15) < 0 ||
	    outpost_get_duration(ctx, params, "query_timeout", &s->query_timeout, 0) < 0)
		return OUTPOST_ERR_PARAMS;
	if (user == NULL)
		user = s->target.url_user;
	if (user_secret != NULL) {
		user = outpost_host->secret(ctx, user_secret, s->target.host, &user_len);
		if (user == NULL)
			return od_fail(s, OUTPOST_ERR_DENIED,
				       "params.user_secret: secret \"%s\" is not available%s%s "
				       "(unknown, or refused by its allow list)",
				       user_secret, s->target.host ? " for " : "",
				       s->target.host ? s->target.host : "");
		od_redactor_add(&s->redactor, user, user_len);
	}
	s->user = user;
	if (pw_secret != NULL) {
		snprintf(s->password_secret, sizeof(s->password_secret), "%s", pw_secret);
		password = outpost_host->secret(ctx, pw_secret, s->target.host, &pw_len);
		if (password == NULL)
			return od_fail(s, OUTPOST_ERR_DENIED,
				       "params.password_secret: secret \"%s\" is not available%s%s "
				       "(unknown, or refused by its allow list)",
				       pw_secret, s->target.host ? " for " : "",
				       s->target.host ? s->target.host : "");
		od_redactor_add(&s->redactor, password, pw_len);
	}

	od_str_puts(&cs, s->target.conn);
	if (user != NULL)
		od_connstr_append(&cs, "UID", user, user_secret ? user_len : strlen(user));
	if (password != NULL)
		od_connstr_append(&cs, "PWD", password, pw_len);
	if (cs.oom) {
		ret = od_fail(s, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}

	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &s->env)) ||
	    !SQL_SUCCEEDED(SQLSetEnvAttr(s->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3,
					 0)) ||
	    !SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, s->env, &s->dbc))) {
		ret = od_fail(s, OUTPOST_ERR_INTERNAL,
			      "cannot set up unixODBC (out of memory, or libodbc is broken)");
		goto out;
	}
	if (s->login_timeout > 0) {
		SQLULEN secs = (SQLULEN)ceil(s->login_timeout);

		(void)SQLSetConnectAttr(s->dbc, SQL_ATTR_LOGIN_TIMEOUT, (SQLPOINTER)secs, 0);
	}
	outpost_info(ctx, "connecting to %s%s%s", s->target.display, user ? " as " : "",
		     user ? (user_secret ? "(user from a secret)" : user) : "");
	t0 = od_now();
	rc = SQLDriverConnect(s->dbc, NULL, (SQLCHAR *)cs.p, SQL_NTS, NULL, 0, NULL,
			      SQL_DRIVER_NOPROMPT);
	if (!SQL_SUCCEEDED(rc)) {
		char what[1024];

		snprintf(what, sizeof(what), "cannot connect to %s", s->target.display);
		ret = od_fail_diag(s, SQL_HANDLE_DBC, s->dbc, what);
		if (ret == OUTPOST_ERR_TIMEOUT)
			ret = OUTPOST_ERR_FAILED;
		goto out;
	}
	s->connected = true;
	if (rc == SQL_SUCCESS_WITH_INFO)
		od_log_info_diag(s, SQL_HANDLE_DBC, s->dbc, "connected with warnings");
	getinfo_str(s->dbc, SQL_DBMS_NAME, s->dbms, sizeof(s->dbms));
	getinfo_str(s->dbc, SQL_DBMS_VER, s->dbms_ver, sizeof(s->dbms_ver));
	getinfo_str(s->dbc, SQL_DRIVER_NAME, s->driver_file, sizeof(s->driver_file));
	getinfo_str(s->dbc, SQL_DRIVER_VER, s->driver_ver, sizeof(s->driver_ver));
	if (!SQL_SUCCEEDED(SQLGetInfo(s->dbc, SQL_GETDATA_EXTENSIONS, &s->getdata_ext,
				      sizeof(s->getdata_ext), NULL)))
		s->getdata_ext = 0;
	outpost_info(ctx, "connected to %s %s through %s %s in %.0f ms", s->dbms, s->dbms_ver,
		     s->driver_file, s->driver_ver, (od_now() - t0) * 1000);
	s->drv_cancel = driver_cancel_fn(s);
	if (s->drv_cancel == NULL)
		outpost_debug(ctx, "%s is not listed as safe to cancel from another thread: a "
				   "running statement stops at the next fetch or at its timeout",
			      s->driver_file);
	if (watcher_start(s) < 0) {
		ret = od_fail(s, OUTPOST_ERR_INTERNAL, "cannot start the cancel watcher: %s",
			      strerror(errno));
		goto out;
	}
	ret = od_cancelled(s) ? od_fail(s, OUTPOST_ERR_CANCELLED, "cancelled while connecting")
			      : OUTPOST_OK;
out:
	if (cs.p)
		explicit_bzero(cs.p, cs.cap);
	od_str_release(&cs);
	return ret;
}

void od_session_close(struct od_session *s)
{
	watcher_stop(s);
	if (s->dbc != SQL_NULL_HDBC) {
		if (s->connected) {
			if (s->autocommit_off)
				(void)SQLEndTran(SQL_HANDLE_DBC, s->dbc, SQL_ROLLBACK);
			(void)SQLDisconnect(s->dbc);
		}
		SQLFreeHandle(SQL_HANDLE_DBC, s->dbc);
		s->dbc = SQL_NULL_HDBC;
	}
	if (s->env != SQL_NULL_HENV) {
		SQLFreeHandle(SQL_HANDLE_ENV, s->env);
		s->env = SQL_NULL_HENV;
	}
	od_target_release(&s->target);
	pthread_mutex_destroy(&s->mu);
}
