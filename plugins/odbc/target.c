/* SPDX-License-Identifier: Apache-2.0 */
/* Where a task connects: JDBC-style URLs mapped through the driver table, connection strings
 * and DSNs, each checked before anything is loaded or sent. */
#include "odbc.h"

#include <ctype.h>
#include <limits.h>
#include <odbcinst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void od_target_release(struct od_target *t)
{
	free(t->conn);
	free(t->display);
	free(t->host);
	free(t->port);
	free(t->dsn);
	free(t->url_user);
	memset(t, 0, sizeof(*t));
}

static char *dup_n(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* Decodes %XX escapes in place. Returns -1 on a bad escape. */
static int pct_decode(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r == '%') {
			int hi, lo;

			if (!isxdigit((unsigned char)r[1]) || !isxdigit((unsigned char)r[2]))
				return -1;
			hi = isdigit((unsigned char)r[1]) ? r[1] - '0' : (tolower(r[1]) - 'a' + 10);
			lo = isdigit((unsigned char)r[2]) ? r[2] - '0' : (tolower(r[2]) - 'a' + 10);
			*w++ = (char)(hi * 16 + lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return 0;
}

struct url_parts {
	char sub[32];
	char *host, *port, *database, *path, *user;
	struct od_str props; /* KEY=VALUE; pairs for the connection string */
};

static void url_parts_release(struct url_parts *u)
{
	free(u->host);
	free(u->port);
	free(u->database);
	free(u->path);
	free(u->user);
	od_str_release(&u->props);
}

static bool is_reserved_key(const char *k)
{
	static const char *const keys[] = {"driver", "dsn", "filedsn", "savefile", "uid", "pwd"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcasecmp(k, keys[i]) == 0)
			return true;
	return false;
}

/* One property of the URL (query or ;-separated): user, password, database, or a driver
 * keyword passed through. */
static int url_prop(struct url_parts *u, char *kv, size_t kvlen, char *err, size_t errlen)
{
	char *pair = dup_n(kv, kvlen), *eq, *val;
	int rc = -1;

	if (pair == NULL)
		return snprintf(err, errlen, "out of memory"), -1;
	if (pair[0] == '\0') {
		rc = 0;
		goto out;
	}
	eq = strchr(pair, '=');
	if (eq == NULL) {
		snprintf(err, errlen, "params.url: property \"%s\" has no value (expected KEY=VALUE)",
			 pair);
		goto out;
	}
	*eq = '\0';
	val = eq + 1;
	if (pct_decode(val) < 0) {
		snprintf(err, errlen, "params.url: property %s has a bad %%-escape", pair);
		goto out;
	}
	for (const char *p = pair; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-') {
			snprintf(err, errlen, "params.url: property name \"%s\" is not a plain word",
				 pair);
			goto out;
		}
	if (strcasecmp(pair, "password") == 0 || strcasecmp(pair, "pwd") == 0) {
		snprintf(err, errlen, "params.url: a password in the URL is refused; name a secret "
				      "in params.password_secret");
		goto out;
	}
	if (strcasecmp(pair, "user") == 0) {
		free(u->user);
		u->user = strdup(val);
	} else if (strcasecmp(pair, "databaseName") == 0 || strcasecmp(pair, "database") == 0) {
		free(u->database);
		u->database = strdup(val);
	} else if (is_reserved_key(pair)) {
		snprintf(err, errlen, "params.url: property %s is refused in a URL", pair);
		goto out;
	} else {
		od_connstr_append(&u->props, pair, val, strlen(val));
	}
	rc = 0;
out:
	free(pair);
	return rc;
}

/* Splits PROPS at SEP into url_prop calls. */
static int url_props(struct url_parts *u, const char *props, char sep, char *err, size_t errlen)
{
	const char *p = props;

	while (*p) {
		const char *end = strchr(p, sep);
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (url_prop(u, (char *)p, n, err, errlen) < 0)
			return -1;
		p += n + (end ? 1 : 0);
	}
	return 0;
}

/*
 * Parses a JDBC-style URL:
 *   jdbc:SUB://host[:port][/database][?key=value&...]      (PostgreSQL, MySQL, ...)
 *   jdbc:sqlserver://host[:port][;key=value;...]           (SQL Server's ; properties)
 *   jdbc:SUB:PATH[?key=value&...]                          (file databases: SQLite)
 */
static int url_parse(const char *url, struct url_parts *u, char *err, size_t errlen)
{
	const char *p, *rest;
	size_t n;

	if (strncmp(url, "jdbc:", 5) != 0)
		goto bad;
	p = url + 5;
	n = strcspn(p, ":");
	if (n == 0 || n >= sizeof(u->sub) || p[n] != ':')
		goto bad;
	memcpy(u->sub, p, n);
	u->sub[n] = '\0';
	for (size_t i = 0; i < n; i++)
		u->sub[i] = (char)tolower((unsigned char)u->sub[i]);
	rest = p + n + 1;
	if (strncmp(rest, "//", 2) == 0) {
		const char *auth = rest + 2, *hp, *hend, *tail;
		size_t alen = strcspn(auth, "/?;");
		const char *at = memchr(auth, '@', alen);

		if (at) {
			const char *colon = memchr(auth, ':', (size_t)(at - auth));

			if (colon) {
				snprintf(err, errlen, "params.url: a password in the URL is refused; "
						      "name a secret in params.password_secret");
				return -1;
			}
			u->user = dup_n(auth, (size_t)(at - auth));
			if (u->user == NULL || pct_decode(u->user) < 0)
				goto bad;
			alen -= (size_t)(at + 1 - auth);
			auth = at + 1;
		}
		if (memchr(auth, ',', alen)) {
			snprintf(err, errlen, "params.url: several hosts are not supported; name one");
			return -1;
		}
		hp = auth;
		if (*hp == '[') {
			hend = memchr(hp, ']', alen);
			if (hend == NULL)
				goto bad;
			u->host = dup_n(hp + 1, (size_t)(hend - hp - 1));
			hend++;
		} else {
			hend = hp;
			while (hend < auth + alen && *hend != ':' && *hend != '\\')
				hend++;
			u->host = dup_n(hp, (size_t)(hend - hp));
		}
		if (u->host == NULL)
			goto oom;
		if (hend < auth + alen && *hend == '\\') { /* SQL Server named instance */
			const char *ie = hend + 1;

			while (ie < auth + alen && *ie != ':')
				ie++;
			od_connstr_append(&u->props, "Instance", hend + 1, (size_t)(ie - hend - 1));
			hend = ie;
		}
		if (hend < auth + alen && *hend == ':') {
			char *end;
			long port;

			u->port = dup_n(hend + 1, (size_t)(auth + alen - hend - 1));
			if (u->port == NULL)
				goto oom;
			port = strtol(u->port, &end, 10);
			if (u->port[0] == '\0' || *end || port < 1 || port > 65535) {
				snprintf(err, errlen, "params.url: the port must be a number 1-65535, "
						      "got \"%s\"", u->port);
				return -1;
			}
		} else if (hend != auth + alen) {
			goto bad;
		}
		tail = auth + alen;
		if (*tail == '/') {
			size_t dlen = strcspn(tail + 1, "?;");

			if (dlen > 0) {
				u->database = dup_n(tail + 1, dlen);
				if (u->database == NULL || pct_decode(u->database) < 0)
					goto bad;
			}
			tail += 1 + dlen;
		}
		if (*tail == '?')
			return url_props(u, tail + 1, '&', err, errlen);
		if (*tail == ';')
			return url_props(u, tail + 1, ';', err, errlen);
		return 0;
	}
	/* A file database: everything up to '?' is the path. */
	n = strcspn(rest, "?");
	u->path = dup_n(rest, n);
	if (u->path == NULL)
		goto oom;
	if (rest[n] == '?')
		return url_props(u, rest + n + 1, '&', err, errlen);
	return 0;
bad:
	{
		struct od_str shown = {0};

		od_redact(NULL, url, &shown);
		snprintf(err, errlen,
			 "params.url: expected a JDBC URL such as jdbc:postgresql://host:5432/db "
			 "or jdbc:sqlite:/path/file.db, got \"%s\"",
			 od_str_cstr(&shown));
		od_str_release(&shown);
	}
	return -1;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* Expands the driver's template with the URL's parts; a pair whose placeholder is empty is
 * left out (no database: no Database= pair). */
static int expand_template(const struct od_driver *d, const struct url_parts *u,
			   const char *port, struct od_str *out)
{
	struct od_str val = {0};
	const char *t = d->template;

	while (*t) {
		const char *end = strchr(t, ';');
		size_t n = end ? (size_t)(end - t) : strlen(t);
		const char *eq = memchr(t, '=', n);
		bool skip = false;

		od_str_reset(&val);
		if (eq != NULL) {
			for (const char *p = eq + 1; p < t + n; p++) {
				const char *v = NULL;
				size_t plen = 0;

				if (*p == '{') {
					static const char *const names[] = {"{host}", "{port}",
									    "{database}", "{path}"};
					const char *vals[] = {u->host, port, u->database, u->path};

					for (size_t i = 0; i < 4; i++) {
						size_t nl = strlen(names[i]);

						if ((size_t)(t + n - p) >= nl &&
						    strncmp(p, names[i], nl) == 0) {
							v = vals[i] ? vals[i] : "";
							plen = nl;
							break;
						}
					}
				}
				if (v != NULL) {
					if (*v == '\0')
						skip = true;
					od_str_puts(&val, v);
					p += plen - 1;
				} else {
					od_str_put(&val, p, 1);
				}
			}
			if (!skip) {
				char key[128];
				size_t kl = (size_t)(eq - t);

				if (kl >= sizeof(key))
					kl = sizeof(key) - 1;
				memcpy(key, t, kl);
				key[kl] = '\0';
				od_connstr_append(out, key, od_str_cstr(&val), val.len);
			}
		}
		t += n + (end ? 1 : 0);
	}
	od_str_release(&val);
	return out->oom ? -1 : 0;
}

static int from_url(struct od_target *t, const struct od_settings *s, const char *url, char *err,
		    size_t errlen)
{
	struct url_parts u = {0};
	struct od_str cs = {0}, disp = {0};
	const struct od_driver *d;
	char port[16] = "";
	int rc = -1;

	if (url_parse(url, &u, err, errlen) < 0)
		goto out;
	d = od_settings_driver(s, u.sub);
	if (d == NULL) {
		struct od_str known = {0};

		for (size_t i = 0; i < s->n_drivers; i++)
			od_str_printf(&known, "%s%s", i ? ", " : "", s->drivers[i].name);
		snprintf(err, errlen,
			 "params.url: no driver for jdbc:%s (known: %s); add one under "
			 "plugins.config.odbc.drivers",
			 u.sub, od_str_cstr(&known));
		od_str_release(&known);
		goto out;
	}
	if (strstr(d->template, "{host}") != NULL) {
		if (u.host == NULL || u.host[0] == '\0') {
			snprintf(err, errlen,
				 "params.url: jdbc:%s needs a host, e.g. jdbc:%s://db.example.com%s%s/"
				 "app",
				 u.sub, u.sub, d->default_port ? ":" : "",
				 d->default_port ? (snprintf(port, sizeof(port), "%d",
							     d->default_port),
						    port)
						 : "");
			goto out;
		}
		if (u.port)
			snprintf(port, sizeof(port), "%s", u.port);
		else if (d->default_port)
			snprintf(port, sizeof(port), "%d", d->default_port);
		else
			port[0] = '\0';
		od_str_printf(&disp, "%s server %s%s%s", d->label, u.host, port[0] ? ":" : "",
			      port);
		if (u.database)
			od_str_printf(&disp, " (database %s)", u.database);
	} else {
		if (u.path == NULL || u.path[0] == '\0' || strncmp(u.path, "//", 2) == 0) {
			snprintf(err, errlen,
				 "params.url: jdbc:%s needs a file path, e.g. jdbc:%s:/var/lib/app/"
				 "app.db",
				 u.sub, u.sub);
			goto out;
		}
		od_str_printf(&disp, "%s database %s", d->label, u.path);
	}
	od_connstr_append(&cs, "Driver", d->driver, strlen(d->driver));
	if (expand_template(d, &u, port, &cs) < 0)
		goto oom;
	if (d->options && d->options[0]) {
		if (cs.len && cs.p[cs.len - 1] != ';')
			od_str_put(&cs, ";", 1);
		od_str_puts(&cs, d->options);
	}
	if (u.props.len) {
		if (cs.len && cs.p[cs.len - 1] != ';')
			od_str_put(&cs, ";", 1);
		od_str_puts(&cs, od_str_cstr(&u.props));
	}
	if (cs.oom || disp.oom)
		goto oom;
	t->conn = cs.p;
	cs.p = NULL;
	t->display = disp.p;
	disp.p = NULL;
	if (u.host) {
		t->host = u.host;
		u.host = NULL;
		if (port[0] && (t->port = strdup(port)) == NULL)
			goto oom;
	}
	t->url_user = u.user;
	u.user = NULL;
	t->drv = d;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	url_parts_release(&u);
	od_str_release(&cs);
	od_str_release(&disp);
	return rc;
}

struct cs_check {
	const struct od_settings *s;
	struct od_target *t;
	char *err;
	size_t errlen;
	char server[256], port[16], driver[PATH_MAX], dsn[256];
};

static bool under_dir(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Checks one pair of a user's connection string. */
static int cs_pair(void *arg, const char *key, const char *val)
{
	struct cs_check *c = arg;

	if (strcasecmp(key, "pwd") == 0 || strcasecmp(key, "password") == 0) {
		snprintf(c->err, c->errlen,
			 "params.connection_string: a password is refused here (%s=); name a "
			 "secret in params.password_secret",
			 key);
		return -1;
	}
	if (strcasecmp(key, "filedsn") == 0 || strcasecmp(key, "savefile") == 0) {
		snprintf(c->err, c->errlen,
			 "params.connection_string: %s is refused; use params.dsn or the driver's "
			 "own keywords",
			 key);
		return -1;
	}
	if (strcasecmp(key, "driver") == 0) {
		snprintf(c->driver, sizeof(c->driver), "%s", val);
		if (strchr(val, '/') != NULL) {
			char real[PATH_MAX];
			const char *check = val;
			bool ok = false;

			if (val[0] != '/' || strstr(val, "/../") != NULL) {
				snprintf(c->err, c->errlen,
					 "params.connection_string: driver %s must be an absolute "
					 "path or a driver name from odbcinst.ini",
					 val);
				return -1;
			}
			if (realpath(val, real) != NULL)
				check = real;
			for (size_t i = 0; i < c->s->n_driver_dirs && !ok; i++)
				ok = under_dir(check, c->s->driver_dirs[i]);
			if (!ok) {
				struct od_str dirs = {0};

				for (size_t i = 0; i < c->s->n_driver_dirs; i++)
					od_str_printf(&dirs, "%s%s", i ? ", " : "",
						      c->s->driver_dirs[i]);
				snprintf(c->err, c->errlen,
					 "params.connection_string: driver %s is not under an "
					 "allowed driver directory (plugins.config.odbc.driver_dirs: "
					 "%s)",
					 val, od_str_cstr(&dirs));
				od_str_release(&dirs);
				return -1;
			}
		}
	} else if (strcasecmp(key, "dsn") == 0) {
		snprintf(c->dsn, sizeof(c->dsn), "%s", val);
	} else if (strcasecmp(key, "server") == 0 || strcasecmp(key, "servername") == 0 ||
		   strcasecmp(key, "host") == 0 || strcasecmp(key, "address") == 0 ||
		   strcasecmp(key, "hostname") == 0) {
		snprintf(c->server, sizeof(c->server), "%s", val);
	} else if (strcasecmp(key, "port") == 0) {
		snprintf(c->port, sizeof(c->port), "%s", val);
	}
	return 0;
}

/* Splits a server value such as "tcp:db.example.com,1433" or "db\\INST" into host and port. */
static void split_server(const char *server, char *host, size_t hostlen, char *port,
			 size_t portlen)
{
	const char *p = server;
	size_t n;

	if (strncasecmp(p, "tcp:", 4) == 0)
		p += 4;
	if (*p == '[') {
		const char *e = strchr(p, ']');

		n = e ? (size_t)(e - p - 1) : strlen(p + 1);
		snprintf(host, hostlen, "%.*s", (int)n, p + 1);
		p = e ? e + 1 : p + strlen(p);
	} else {
		n = strcspn(p, ",:\\");
		snprintf(host, hostlen, "%.*s", (int)n, p);
		p += n;
	}
	if ((*p == ',' || *p == ':') && port[0] == '\0')
		snprintf(port, portlen, "%.*s", (int)strcspn(p + 1, "\\"), p + 1);
}

/* Reads the server of DSN from odbc.ini (ODBCINI / ODBCSYSINI when allowed through). */
static void dsn_server(const char *dsn, char *host, size_t hostlen, char *port, size_t portlen)
{
	static const char *const keys[] = {"Servername", "Server", "Host", "Address", "Hostname"};
	char buf[256];

	host[0] = '\0';
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && host[0] == '\0'; i++) {
		buf[0] = '\0';
		if (SQLGetPrivateProfileString(dsn, keys[i], "", buf, sizeof(buf), "odbc.ini") > 0 &&
		    buf[0])
			split_server(buf, host, hostlen, port, portlen);
	}
	if (host[0] && port[0] == '\0') {
		buf[0] = '\0';
		if (SQLGetPrivateProfileString(dsn, "Port", "", buf, sizeof(buf), "odbc.ini") > 0)
			snprintf(port, portlen, "%s", buf);
	}
}

static int set_host(struct od_target *t, const char *host, const char *port)
{
	if (host[0] && (t->host = strdup(host)) == NULL)
		return -1;
	if (host[0] && port[0] && (t->port = strdup(port)) == NULL)
		return -1;
	return 0;
}

static int from_connstr(struct od_target *t, const struct od_settings *s, const char *cs,
			char *err, size_t errlen)
{
	struct cs_check c = {.s = s, .t = t, .err = err, .errlen = errlen};
	struct od_str disp = {0};
	char host[256] = "";
	int rc;

	rc = od_connstr_each(cs, cs_pair, &c);
	if (rc != 0) {
		if (rc == -1 && err[0] == '\0')
			snprintf(err, errlen,
				 "params.connection_string: a value opened with { is not closed");
		return -1;
	}
	if (c.driver[0] == '\0' && c.dsn[0] == '\0') {
		snprintf(err, errlen,
			 "params.connection_string: name a Driver= or a DSN= (e.g. "
			 "Driver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so;Server=...)");
		return -1;
	}
	if (c.server[0])
		split_server(c.server, host, sizeof(host), c.port, sizeof(c.port));
	else if (c.dsn[0])
		dsn_server(c.dsn, host, sizeof(host), c.port, sizeof(c.port));
	if (host[0])
		od_str_printf(&disp, "the database server %s%s%s", host, c.port[0] ? ":" : "",
			      c.port);
	else if (c.dsn[0])
		od_str_printf(&disp, "data source %s", c.dsn);
	else
		od_str_printf(&disp, "the database (driver %s)", c.driver);
	t->conn = strdup(cs);
	t->display = disp.p;
	if (t->conn == NULL || disp.oom || set_host(t, host, c.port) < 0 ||
	    (c.dsn[0] && (t->dsn = strdup(c.dsn)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int from_dsn(struct od_target *t, const char *dsn, char *err, size_t errlen)
{
	struct od_str cs = {0}, disp = {0};
	char host[256] = "", port[16] = "";

	dsn_server(dsn, host, sizeof(host), port, sizeof(port));
	od_connstr_append(&cs, "DSN", dsn, strlen(dsn));
	od_str_printf(&disp, "data source %s", dsn);
	if (host[0])
		od_str_printf(&disp, " (server %s%s%s)", host, port[0] ? ":" : "", port);
	t->conn = cs.p;
	t->display = disp.p;
	if (cs.oom || disp.oom || set_host(t, host, port) < 0 || (t->dsn = strdup(dsn)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int od_target_from_params(struct od_target *t, const struct od_settings *s, const cJSON *params,
			  char *err, size_t errlen)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(params, "url");
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(params, "connection_string");
	const cJSON *dsn = cJSON_GetObjectItemCaseSensitive(params, "dsn");
	int given = (cJSON_IsString(url) ? 1 : 0) + (cJSON_IsString(cs) ? 1 : 0) +
		    (cJSON_IsString(dsn) ? 1 : 0);
	int rc;

	memset(t, 0, sizeof(*t));
	err[0] = '\0';
	if (given == 0) {
		snprintf(err, errlen,
			 "params: name the database with one of url, connection_string or dsn");
		return -1;
	}
	if (given > 1) {
		snprintf(err, errlen,
			 "params: give only one of url, connection_string and dsn (got %s%s%s)",
			 cJSON_IsString(url) ? "url" : "",
			 cJSON_IsString(url) && cJSON_IsString(cs) ? " and connection_string"
			 : cJSON_IsString(cs)			  ? "connection_string"
								  : "",
			 cJSON_IsString(dsn) ? " and dsn" : "");
		return -1;
	}
	if (cJSON_IsString(url))
		rc = from_url(t, s, url->valuestring, err, errlen);
	else if (cJSON_IsString(cs))
		rc = from_connstr(t, s, cs->valuestring, err, errlen);
	else
		rc = from_dsn(t, dsn->valuestring, err, errlen);
	if (rc < 0)
		od_target_release(t);
	return rc;
}
