/* SPDX-License-Identifier: Apache-2.0 */
/* The odbc plugin's settings (plugins.config.odbc): the URL → driver table and fetch limits. */
#include "odbc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEBIAN_ODBC_DIR "/usr/lib/x86_64-linux-gnu/odbc"

/* The built-in table: Debian 12's driver packages. Settings may override any field or add rows.
 * psqlODBC: UseDeclareFetch=1 streams a result set through a cursor (Fetch rows at a time)
 * instead of loading all of it into memory on execute; BoolsAsChar=0 reports booleans as
 * SQL_BIT. docs/plugins/odbc.md has the measurements behind Fetch. */
static const struct {
	const char *name, *label, *driver, *template;
	int port;
	const char *options;
} builtin_drivers[] = {
	{"postgresql", "PostgreSQL", DEBIAN_ODBC_DIR "/psqlodbcw.so",
	 "Server={host};Port={port};Database={database}", 5432,
	 "UseDeclareFetch=1;Fetch=10000;BoolsAsChar=0"},
	{"sqlite", "SQLite", DEBIAN_ODBC_DIR "/libsqlite3odbc.so", "Database={path}", 0,
	 "StepAPI=1"},
	{"mysql", "MySQL", DEBIAN_ODBC_DIR "/libmaodbc.so",
	 "Server={host};Port={port};Database={database}", 3306, ""},
	{"mariadb", "MariaDB", DEBIAN_ODBC_DIR "/libmaodbc.so",
	 "Server={host};Port={port};Database={database}", 3306, ""},
	{"sqlserver", "SQL Server", DEBIAN_ODBC_DIR "/libtdsodbc.so",
	 "Server={host};Port={port};Database={database}", 1433, "ClientCharset=UTF-8"},
};

static const char *const builtin_driver_dirs[] = {
	DEBIAN_ODBC_DIR, "/usr/lib/x86_64-linux-gnu", "/usr/lib/odbc", "/usr/local/lib", "/opt",
};

/* psqlODBC's SQLCancel takes no lock and only sends a cancel request while a statement runs;
 * SQLite ODBC's closes the statement under the running thread, so it is not listed. */
static const char *const builtin_cancel_drivers[] = {"psqlodbcw.so", "psqlodbca.so"};

#define DEFAULT_FETCH_ROWS 2000
#define DEFAULT_BUFFER_MEMORY (16u * 1024 * 1024)

static void driver_release(struct od_driver *d)
{
	free(d->name);
	free(d->label);
	free(d->driver);
	free(d->template);
	free(d->options);
	memset(d, 0, sizeof(*d));
}

void od_settings_release(struct od_settings *s)
{
	for (size_t i = 0; i < s->n_drivers; i++)
		driver_release(&s->drivers[i]);
	free(s->drivers);
	for (size_t i = 0; i < s->n_driver_dirs; i++)
		free(s->driver_dirs[i]);
	free(s->driver_dirs);
	for (size_t i = 0; i < s->n_cancel_drivers; i++)
		free(s->cancel_drivers[i]);
	free(s->cancel_drivers);
	memset(s, 0, sizeof(*s));
}

static int oom(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int set_str(char **dst, const char *src)
{
	char *copy = strdup(src ? src : "");

	if (copy == NULL)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

static struct od_driver *driver_add(struct od_settings *s, const char *name)
{
	struct od_driver *d = realloc(s->drivers, (s->n_drivers + 1) * sizeof(*d));

	if (d == NULL)
		return NULL;
	s->drivers = d;
	d = &s->drivers[s->n_drivers];
	memset(d, 0, sizeof(*d));
	if (set_str(&d->name, name) < 0)
		return NULL;
	s->n_drivers++;
	return d;
}

static int list_set(char ***list, size_t *n, const char *const *items, size_t count)
{
	char **l = calloc(count ? count : 1, sizeof(*l));

	if (l == NULL)
		return -1;
	for (size_t i = 0; i < count; i++) {
		l[i] = strdup(items[i]);
		if (l[i] == NULL) {
			while (i > 0)
				free(l[--i]);
			free(l);
			return -1;
		}
	}
	for (size_t i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = l;
	*n = count;
	return 0;
}

static int load_defaults(struct od_settings *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(builtin_drivers) / sizeof(builtin_drivers[0]); i++) {
		struct od_driver *d = driver_add(s, builtin_drivers[i].name);

		if (d == NULL || set_str(&d->label, builtin_drivers[i].label) < 0 ||
		    set_str(&d->driver, builtin_drivers[i].driver) < 0 ||
		    set_str(&d->template, builtin_drivers[i].template) < 0 ||
		    set_str(&d->options, builtin_drivers[i].options) < 0)
			return oom(err, errlen);
		d->default_port = builtin_drivers[i].port;
	}
	if (list_set(&s->driver_dirs, &s->n_driver_dirs, builtin_driver_dirs,
		     sizeof(builtin_driver_dirs) / sizeof(builtin_driver_dirs[0])) < 0 ||
	    list_set(&s->cancel_drivers, &s->n_cancel_drivers, builtin_cancel_drivers,
		     sizeof(builtin_cancel_drivers) / sizeof(builtin_cancel_drivers[0])) < 0)
		return oom(err, errlen);
	s->fetch_rows = DEFAULT_FETCH_ROWS;
	s->buffer_memory = DEFAULT_BUFFER_MEMORY;
	return 0;
}

#define KEY "plugins.config.odbc"

/* A list of strings at KEY. */
static int load_list(const cJSON *v, const char *key, char ***list, size_t *n, char *err,
		     size_t errlen)
{
	const char **items;
	const cJSON *it;
	size_t count = 0;
	int rc;

	if (!cJSON_IsArray(v)) {
		snprintf(err, errlen, KEY ".%s: expected a list of strings", key);
		return -1;
	}
	items = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*items));
	if (items == NULL)
		return oom(err, errlen);
	cJSON_ArrayForEach(it, v)
	{
		if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
			snprintf(err, errlen, KEY ".%s[%zu]: expected a non-empty string", key, count);
			free(items);
			return -1;
		}
		items[count++] = it->valuestring;
	}
	rc = list_set(list, n, items, count);
	free(items);
	return rc < 0 ? oom(err, errlen) : 0;
}

/* An integer given as a number or a numeric string. */
static int get_int(const cJSON *v, int64_t *out)
{
	char *end;
	long long n;

	if (cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble) {
		*out = (int64_t)v->valuedouble;
		return 0;
	}
	if (!cJSON_IsString(v))
		return -1;
	errno = 0;
	n = strtoll(v->valuestring, &end, 10);
	if (errno || end == v->valuestring || *end)
		return -1;
	*out = n;
	return 0;
}

static int load_driver(struct od_settings *s, const cJSON *entry, char *err, size_t errlen)
{
	const char *name = entry->string;
	struct od_driver *d = (struct od_driver *)od_settings_driver(s, name);
	bool is_new = d == NULL;
	const cJSON *v;

	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
			snprintf(err, errlen,
				 KEY ".drivers.%s: a URL subprotocol is lower-case letters and "
				     "digits (jdbc:NAME:...)",
				 name);
			return -1;
		}
	if (!cJSON_IsObject(entry)) {
		snprintf(err, errlen, KEY ".drivers.%s: expected a map with driver, template, port, "
				      "options, label", name);
		return -1;
	}
	cJSON_ArrayForEach(v, entry)
	{
		static const char *const known[] = {"driver", "template", "port", "options",
						    "label"};
		bool ok = false;

		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(v->string, known[i]) == 0;
		if (!ok) {
			snprintf(err, errlen,
				 KEY ".drivers.%s.%s: unknown key (known: driver, template, port, "
				     "options, label)",
				 name, v->string);
			return -1;
		}
		if (strcmp(v->string, "port") != 0 && !cJSON_IsString(v)) {
			snprintf(err, errlen, KEY ".drivers.%s.%s: expected a string", name,
				 v->string);
			return -1;
		}
	}
	if (is_new) {
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(entry, "driver")) ||
		    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(entry, "template"))) {
			snprintf(err, errlen,
				 KEY ".drivers.%s: a new driver needs \"driver\" and \"template\"",
				 name);
			return -1;
		}
		d = driver_add(s, name);
		if (d == NULL || set_str(&d->label, name) < 0 || set_str(&d->options, "") < 0)
			return oom(err, errlen);
	}
	v = cJSON_GetObjectItemCaseSensitive(entry, "driver");
	if (v && (v->valuestring[0] == '\0' || set_str(&d->driver, v->valuestring) < 0)) {
		snprintf(err, errlen, KEY ".drivers.%s.driver: must not be empty", name);
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(entry, "template");
	if (v) {
		if (strstr(v->valuestring, "{host}") == NULL &&
		    strstr(v->valuestring, "{path}") == NULL) {
			snprintf(err, errlen,
				 KEY ".drivers.%s.template: must use {host} (servers) or {path} "
				     "(files)",
				 name);
			return -1;
		}
		if (set_str(&d->template, v->valuestring) < 0)
			return oom(err, errlen);
	}
	v = cJSON_GetObjectItemCaseSensitive(entry, "options");
	if (v && set_str(&d->options, v->valuestring) < 0)
		return oom(err, errlen);
	v = cJSON_GetObjectItemCaseSensitive(entry, "label");
	if (v && set_str(&d->label, v->valuestring) < 0)
		return oom(err, errlen);
	v = cJSON_GetObjectItemCaseSensitive(entry, "port");
	if (v) {
		int64_t port;

		if (get_int(v, &port) < 0 || port < 1 || port > 65535) {
			snprintf(err, errlen, KEY ".drivers.%s.port: expected a port number 1-65535",
				 name);
			return -1;
		}
		d->default_port = (int)port;
	}
	return 0;
}

int od_settings_load(struct od_settings *s, const cJSON *config, char *err, size_t errlen)
{
	const cJSON *v;

	memset(s, 0, sizeof(*s));
	if (load_defaults(s, err, errlen) < 0)
		goto fail;
	if (config == NULL || cJSON_IsNull(config))
		return 0;
	if (!cJSON_IsObject(config)) {
		snprintf(err, errlen, KEY ": expected a map");
		goto fail;
	}
	cJSON_ArrayForEach(v, config)
	{
		const char *k = v->string;

		if (strcmp(k, "env_allow") == 0) {
			continue; /* the agent's: which variables the worker inherits */
		} else if (strcmp(k, "drivers") == 0) {
			const cJSON *e;

			if (!cJSON_IsObject(v)) {
				snprintf(err, errlen, KEY ".drivers: expected a map of URL "
						      "subprotocol to driver");
				goto fail;
			}
			cJSON_ArrayForEach(e, v)
			{
				if (load_driver(s, e, err, errlen) < 0)
					goto fail;
			}
		} else if (strcmp(k, "driver_dirs") == 0) {
			if (load_list(v, k, &s->driver_dirs, &s->n_driver_dirs, err, errlen) < 0)
				goto fail;
			for (size_t i = 0; i < s->n_driver_dirs; i++)
				if (s->driver_dirs[i][0] != '/') {
					snprintf(err, errlen, KEY ".driver_dirs[%zu]: expected an "
							      "absolute path", i);
					goto fail;
				}
		} else if (strcmp(k, "cancel_drivers") == 0) {
			if (load_list(v, k, &s->cancel_drivers, &s->n_cancel_drivers, err,
				      errlen) < 0)
				goto fail;
		} else if (strcmp(k, "fetch_rows") == 0) {
			if (get_int(v, &s->fetch_rows) < 0 || s->fetch_rows < 1 ||
			    s->fetch_rows > 100000) {
				snprintf(err, errlen, KEY ".fetch_rows: expected an integer 1-100000");
				goto fail;
			}
		} else if (strcmp(k, "buffer_memory") == 0) {
			uint64_t bytes = 0;
			int ok = cJSON_IsNumber(v) ? (v->valuedouble >= 0 ? 0 : -1)
				 : cJSON_IsString(v) ? outpost_parse_size(v->valuestring, &bytes)
						     : -1;

			if (cJSON_IsNumber(v) && ok == 0)
				bytes = (uint64_t)v->valuedouble;
			if (ok < 0 || bytes < 65536 || bytes > (1ull << 32)) {
				snprintf(err, errlen, KEY ".buffer_memory: expected a size between "
						      "64KiB and 4GiB, such as \"16MiB\"");
				goto fail;
			}
			s->buffer_memory = bytes;
		} else {
			snprintf(err, errlen,
				 KEY ".%s: unknown setting (known: drivers, driver_dirs, "
				     "cancel_drivers, fetch_rows, buffer_memory, env_allow)",
				 k);
			goto fail;
		}
	}
	return 0;
fail:
	od_settings_release(s);
	return -1;
}

const struct od_driver *od_settings_driver(const struct od_settings *s, const char *name)
{
	for (size_t i = 0; i < s->n_drivers; i++)
		if (strcmp(s->drivers[i].name, name) == 0)
			return &s->drivers[i];
	return NULL;
}

bool od_settings_cancel_safe(const struct od_settings *s, const char *driver_file)
{
	const char *base = strrchr(driver_file, '/');

	base = base ? base + 1 : driver_file;
	for (size_t i = 0; i < s->n_cancel_drivers; i++)
		if (strcmp(s->cancel_drivers[i], base) == 0)
			return true;
	return false;
}
