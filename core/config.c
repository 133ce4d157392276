/* SPDX-License-Identifier: Apache-2.0 */
/* Reading config.yaml through a table of typed keys, so unknown keys and wrong types are errors. */
#include "config.h"

#include <ctype.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "units.h"
#include "yamltree.h"

#ifndef OUTPOST_DEFAULT_PLUGINDIR
#define OUTPOST_DEFAULT_PLUGINDIR "/usr/lib/x86_64-linux-gnu/outpost/plugins"
#endif

enum ck_type {
	CK_STR,
	CK_URL,	  /* http:// or https:// */
	CK_PROXY, /* a URL with a scheme (http, https, socks5, socks5h) */
	CK_BOOL,
	CK_INT,
	CK_DURATION,
	CK_SIZE,
	CK_COUNT, /* a plain count, also with K/M suffixes as a size */
	CK_STRLIST,
	CK_LEVEL,
	CK_SECTION,
	CK_PLUGINS_ENABLED,
	CK_JSON_MAP,
	CK_SWITCH, /* struct ag_plugin_switch */
	CK_SECRETS
};

struct ck_field {
	const char *key;
	enum ck_type type;
	size_t offset;
	const char *env; /* OUTPOST_* override, scalars only */
	const struct ck_field *sub;
	long min, max; /* CK_INT bounds; for a CK_SIZE, a max that is not 0 */
};

#define F(k, t, member, env) {k, t, offsetof(struct ag_config, member), env, NULL, 0, 0}
#define FI(k, member, env, lo, hi) {k, CK_INT, offsetof(struct ag_config, member), env, NULL, lo, hi}
#define FS(k, member, env, hi)                                                           \
	{k, CK_SIZE, offsetof(struct ag_config, member), env, NULL, 0, hi}
#define SEC(k, table) {k, CK_SECTION, 0, NULL, table, 0, 0}
#define END {NULL, 0, 0, NULL, NULL, 0, 0}

static const struct ck_field log_fields[] = {
	F("level", CK_LEVEL, log_level, "OUTPOST_LOG_LEVEL"),
	F("file", CK_STR, log_file, "OUTPOST_LOG_FILE"),
	F("max_size", CK_SIZE, log_max_size, "OUTPOST_LOG_MAX_SIZE"),
	FI("keep", log_keep, "OUTPOST_LOG_KEEP", 1, 100),
	END,
};

static const struct ck_field health_fields[] = {
	F("min_free_disk", CK_SIZE, min_free_disk, "OUTPOST_HEALTH_MIN_FREE_DISK"),
	F("min_free_inodes", CK_COUNT, min_free_inodes, "OUTPOST_HEALTH_MIN_FREE_INODES"),
	F("workspace_max_age", CK_DURATION, workspace_max_age, "OUTPOST_HEALTH_WORKSPACE_MAX_AGE"),
	END,
};

static const struct ck_field plugins_fields[] = {
	F("dir", CK_STR, plugins_dir, "OUTPOST_PLUGINS_DIR"),
	F("enabled", CK_PLUGINS_ENABLED, plugins_enabled, "OUTPOST_PLUGINS_ENABLED"),
	F("config", CK_JSON_MAP, plugins_config, NULL),
	END,
};

static const struct ck_field workers_fields[] = {
	F("path", CK_STR, worker_path, "OUTPOST_WORKERS_PATH"),
	F("spare", CK_SWITCH, spare, "OUTPOST_WORKERS_SPARE"),
	F("fork_server", CK_SWITCH, fork_server, "OUTPOST_WORKERS_FORK_SERVER"),
	FS("spare_heap", spare_heap, "OUTPOST_WORKERS_SPARE_HEAP", 1024L * 1048576),
	F("memory_limit", CK_SIZE, memory_limit, "OUTPOST_WORKERS_MEMORY_LIMIT"),
	F("output_limit", CK_SIZE, output_limit, "OUTPOST_WORKERS_OUTPUT_LIMIT"),
	F("grace", CK_DURATION, worker_grace, "OUTPOST_WORKERS_GRACE"),
	F("start_timeout", CK_DURATION, worker_start_timeout, "OUTPOST_WORKERS_START_TIMEOUT"),
	F("scan_timeout", CK_DURATION, scan_timeout, "OUTPOST_WORKERS_SCAN_TIMEOUT"),
	END,
};

static const struct ck_field top_fields[] = {
	F("control_plane", CK_URL, control_plane, "OUTPOST_CONTROL_PLANE"),
	F("ca_file", CK_STR, ca_file, "OUTPOST_CA_FILE"),
	F("insecure_skip_verify", CK_BOOL, insecure_skip_verify, "OUTPOST_INSECURE_SKIP_VERIFY"),
	F("pinned_pubkey", CK_STR, pinned_pubkey, "OUTPOST_PINNED_PUBKEY"),
	F("https_proxy", CK_PROXY, https_proxy, "OUTPOST_HTTPS_PROXY"),
	F("no_proxy", CK_STR, no_proxy, "OUTPOST_NO_PROXY"),
	F("connect_timeout", CK_DURATION, connect_timeout, "OUTPOST_CONNECT_TIMEOUT"),
	F("request_timeout", CK_DURATION, request_timeout, "OUTPOST_REQUEST_TIMEOUT"),
	F("tcp_keepalive", CK_DURATION, tcp_keepalive, "OUTPOST_TCP_KEEPALIVE"),
	F("state_dir", CK_STR, state_dir, "OUTPOST_STATE_DIR"),
	F("workspace_dir", CK_STR, workspace_dir, "OUTPOST_WORKSPACE_DIR"),
	F("cache_dir", CK_STR, cache_dir, "OUTPOST_CACHE_DIR"),
	F("user", CK_STR, user, "OUTPOST_USER"),
	F("pool", CK_STR, pool, "OUTPOST_POOL"),
	F("environment", CK_STR, environment, "OUTPOST_ENVIRONMENT"),
	F("tags", CK_STRLIST, tags, "OUTPOST_TAGS"),
	FI("concurrency", concurrency, "OUTPOST_CONCURRENCY", 1, 256),
	F("drain_grace", CK_DURATION, drain_grace, "OUTPOST_DRAIN_GRACE"),
	F("metrics_listen", CK_STR, metrics_listen, "OUTPOST_METRICS_LISTEN"),
	F("change_types_dir", CK_STR, change_types_dir, "OUTPOST_CHANGE_TYPES_DIR"),
	SEC("log", log_fields),
	SEC("health", health_fields),
	SEC("plugins", plugins_fields),
	SEC("workers", workers_fields),
	F("secrets", CK_SECRETS, secrets, NULL),
	END,
};

/* ---- small helpers ---------------------------------------------------------------------- */

bool ag_strlist_has(const struct ag_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

op_rc ag_strlist_add(struct ag_strlist *l, const char *s)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (v == NULL)
		return OP_ENOMEM;
	l->v = v;
	l->v[l->n] = strdup(s);
	if (l->v[l->n] == NULL)
		return OP_ENOMEM;
	l->n++;
	return OP_OK;
}

void ag_strlist_release(struct ag_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

op_rc ag_strlist_split(struct ag_strlist *l, const char *csv)
{
	const char *p = csv;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[256];

		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		if (n >= sizeof(item))
			return OP_EINVAL;
		if (n > 0) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (!ag_strlist_has(l, item) && ag_strlist_add(l, item) != OP_OK)
				return OP_ENOMEM;
		}
		p = comma ? comma + 1 : NULL;
	}
	return OP_OK;
}

static op_rc set_str(char **slot, const char *v)
{
	char *copy = strdup(v);

	if (copy == NULL)
		return OP_ENOMEM;
	free(*slot);
	*slot = copy;
	return OP_OK;
}

/* Levenshtein distance, for "did you mean" on unknown keys. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);

			cur[j] = del < ins ? (del < sub ? del : sub) : (ins < sub ? ins : sub);
		}
		memcpy(prev, cur, sizeof(prev));
	}
	return prev[lb];
}

static const char *suggest(const struct ck_field *table, const char *key)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (const struct ck_field *f = table; f->key; f++) {
		size_t d = edit_distance(key, f->key);

		if (d < bestd) {
			bestd = d;
			best = f->key;
		}
	}
	return best;
}

/* ---- scalar conversion (shared by YAML and environment) --------------------------------- */

static bool valid_http_url(const char *v)
{
	return strncmp(v, "https://", 8) == 0 || strncmp(v, "http://", 7) == 0;
}

static bool has_scheme(const char *v)
{
	const char *sep = strstr(v, "://");

	if (sep == NULL || sep == v)
		return false;
	for (const char *p = v; p < sep; p++)
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
			return false;
	return true;
}

/* Converts text V for field F into CFG. WHERE names the source for messages. */
static op_rc set_scalar(struct ag_config *cfg, const struct ck_field *f, const char *v,
			const char *where, struct op_error *err)
{
	void *slot = (char *)cfg + f->offset;
	long long n;
	double d;
	uint64_t sz;
	int lv;

	switch (f->type) {
	case CK_STR:
		return set_str(slot, v) == OP_OK ? OP_OK : op_fail(err, OP_ENOMEM, "out of memory");
	case CK_URL:
		if (!valid_http_url(v))
			return op_fail(err, OP_EINVAL,
				       "%s: \"%s\" is not a URL: use https://HOST:PORT", where, v);
		return set_str(slot, v) == OP_OK ? OP_OK : op_fail(err, OP_ENOMEM, "out of memory");
	case CK_PROXY:
		if (*v != '\0' && !has_scheme(v))
			return op_fail(err, OP_EINVAL,
				       "%s: proxy \"%s\" has no scheme: write it as http://%s", where,
				       v, v);
		return set_str(slot, v) == OP_OK ? OP_OK : op_fail(err, OP_ENOMEM, "out of memory");
	case CK_BOOL:
	case CK_SWITCH: /* its default, the first member */
		if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 ||
		    strcmp(v, "on") == 0)
			*(bool *)slot = true;
		else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0 ||
			 strcmp(v, "off") == 0)
			*(bool *)slot = false;
		else
			return op_fail(err, OP_EINVAL, "%s: expected true or false, got \"%s\"", where,
				       v);
		return OP_OK;
	case CK_INT:
		if (op_parse_i64(v, f->min, f->max, &n) < 0)
			return op_fail(err, OP_EINVAL,
				       "%s: expected an integer from %ld to %ld, got \"%s\"", where,
				       f->min, f->max, v);
		*(int *)slot = (int)n;
		return OP_OK;
	case CK_DURATION:
		if (op_parse_duration(v, &d) < 0)
			return op_fail(err, OP_EINVAL,
				       "%s: expected a duration such as 30s, 5m or 1h, got \"%s\"",
				       where, v);
		*(double *)slot = d;
		return OP_OK;
	case CK_SIZE:
	case CK_COUNT:
		if (op_parse_size(v, &sz) < 0)
			return op_fail(err, OP_EINVAL,
				       "%s: expected a size such as 512MiB or 1GB, got \"%s\"", where,
				       v);
		if (f->max > 0 && sz > (uint64_t)f->max)
			return op_fail(err, OP_EINVAL, "%s: expected a size of at most %.0fMiB, got \"%s\"",
				       where, (double)f->max / 1048576, v);
		*(uint64_t *)slot = sz;
		return OP_OK;
	case CK_LEVEL:
		lv = op_log_level_parse(v);
		if (lv < 0)
			return op_fail(err, OP_EINVAL,
				       "%s: expected error, warn, info or debug, got \"%s\"", where,
				       v);
		*(int *)slot = lv;
		return OP_OK;
	case CK_STRLIST:
	case CK_PLUGINS_ENABLED: {
		struct ag_strlist *l = slot;

		ag_strlist_release(l);
		if (ag_strlist_split(l, v) != OP_OK)
			return op_fail(err, OP_EINVAL, "%s: invalid list \"%s\"", where, v);
		if (f->type == CK_PLUGINS_ENABLED)
			cfg->plugins_all = false;
		return OP_OK;
	}
	default:
		return op_fail(err, OP_EINVAL, "%s: cannot be set from a single value", where);
	}
}

/* ---- YAML → config ----------------------------------------------------------------------- */

struct walk {
	const char *file;
	struct ag_config *cfg;
	struct op_error *err;
};

__attribute__((format(printf, 4, 5))) static op_rc node_fail(struct walk *w, int line,
							      const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return op_fail(w->err, OP_EINVAL, "%s:%d: %s: %s", w->file, line, path, msg);
}

static op_rc read_list(struct walk *w, const struct op_ynode *n, const char *path,
		       struct ag_strlist *l)
{
	ag_strlist_release(l);
	if (n->kind == OP_Y_SCALAR)
		return ag_strlist_split(l, n->value) == OP_OK
			       ? OP_OK
			       : node_fail(w, n->line, path, "invalid list \"%s\"", n->value);
	if (n->kind != OP_Y_SEQ)
		return node_fail(w, n->line, path, "expected a list, got a %s", op_ykind_name(n->kind));
	for (size_t i = 0; i < n->n; i++) {
		if (n->items[i]->kind != OP_Y_SCALAR)
			return node_fail(w, n->items[i]->line, path,
					 "list items must be plain values, got a %s",
					 op_ykind_name(n->items[i]->kind));
		if (!ag_strlist_has(l, n->items[i]->value) &&
		    ag_strlist_add(l, n->items[i]->value) != OP_OK)
			return op_fail(w->err, OP_ENOMEM, "out of memory");
	}
	return OP_OK;
}

static op_rc read_secret(struct walk *w, const char *name, int key_line, const struct op_ynode *n)
{
	struct ag_config *cfg = w->cfg;
	struct ag_secret *s, *grown;
	char path[256];
	op_rc rc = OP_OK;

	snprintf(path, sizeof(path), "secrets.%s", name);
	grown = realloc(cfg->secrets, (cfg->n_secrets + 1) * sizeof(*grown));
	if (grown == NULL)
		return op_fail(w->err, OP_ENOMEM, "out of memory");
	cfg->secrets = grown;
	s = &cfg->secrets[cfg->n_secrets];
	memset(s, 0, sizeof(*s));
	s->line = key_line;
	s->name = strdup(name);
	if (s->name == NULL)
		return op_fail(w->err, OP_ENOMEM, "out of memory");
	cfg->n_secrets++;
	if (n->kind == OP_Y_SCALAR) {
		s->from = strdup(n->value);
	} else if (n->kind == OP_Y_MAP) {
		for (size_t i = 0; i < n->n && rc == OP_OK; i++) {
			const struct op_ynode *v = n->items[i];
			char sub[300];

			snprintf(sub, sizeof(sub), "%s.%s", path, n->keys[i]);
			if (strcmp(n->keys[i], "from") == 0 && v->kind == OP_Y_SCALAR) {
				free(s->from);
				s->from = strdup(v->value);
			} else if (strcmp(n->keys[i], "allow") == 0 && v->kind == OP_Y_MAP) {
				s->fenced = true;
				for (size_t j = 0; j < v->n && rc == OP_OK; j++) {
					char sub2[320];

					snprintf(sub2, sizeof(sub2), "%s.%s", sub, v->keys[j]);
					if (strcmp(v->keys[j], "types") == 0)
						rc = read_list(w, v->items[j], sub2, &s->types);
					else if (strcmp(v->keys[j], "hosts") == 0)
						rc = read_list(w, v->items[j], sub2, &s->hosts);
					else
						rc = node_fail(w, v->key_lines[j], sub2,
							       "unknown key (allowed: types, hosts)%s", "");
				}
			} else if (strcmp(n->keys[i], "from") == 0 || strcmp(n->keys[i], "allow") == 0) {
				rc = node_fail(w, v->line, sub, "wrong type: %s",
					       strcmp(n->keys[i], "from") == 0
						       ? "expected file:PATH or env:VAR"
						       : "expected a mapping with types and hosts");
			} else {
				rc = node_fail(w, n->key_lines[i], sub,
					       "unknown key (allowed: from, allow)%s", "");
			}
		}
	} else {
		return node_fail(w, n->line, path, "expected file:PATH, env:VAR or a mapping, got a %s",
				 op_ykind_name(n->kind));
	}
	if (rc != OP_OK)
		return rc;
	if (s->from == NULL)
		return node_fail(w, n->line, path, "missing \"from\" (file:PATH or env:VAR)%s", "");
	if (strncmp(s->from, "file:", 5) != 0 && strncmp(s->from, "env:", 4) != 0)
		return node_fail(w, n->line, path,
				 "\"%s\" is not a secret source: use file:/path/to/file or env:VARIABLE "
				 "(secret values never go in the config itself)",
				 s->from);
	if ((strncmp(s->from, "file:", 5) == 0 && s->from[5] != '/') ||
	    (strncmp(s->from, "env:", 4) == 0 && s->from[4] == '\0'))
		return node_fail(w, n->line, path,
				 "\"%s\": a file secret needs an absolute path, an env secret a variable name",
				 s->from);
	return OP_OK;
}

static op_rc read_map(struct walk *w, const struct op_ynode *n, const struct ck_field *table,
		      const char *prefix)
{
	for (size_t i = 0; i < n->n; i++) {
		const struct ck_field *f = NULL;
		const struct op_ynode *v = n->items[i];
		char path[256];
		op_rc rc = OP_OK;

		snprintf(path, sizeof(path), "%s%s", prefix, n->keys[i]);
		for (const struct ck_field *t = table; t->key; t++)
			if (strcmp(t->key, n->keys[i]) == 0)
				f = t;
		if (f == NULL) {
			const char *s = suggest(table, n->keys[i]);

			if (s)
				return op_fail(w->err, OP_EINVAL,
					       "%s:%d: unknown key \"%s\" (did you mean \"%s%s\"?)",
					       w->file, n->key_lines[i], path, prefix, s);
			return op_fail(w->err, OP_EINVAL, "%s:%d: unknown key \"%s\"", w->file,
				       n->key_lines[i], path);
		}
		switch (f->type) {
		case CK_SECTION:
			if (v->kind == OP_Y_SCALAR && v->value[0] == '\0')
				break; /* "log:" with nothing under it */
			if (v->kind != OP_Y_MAP)
				return node_fail(w, v->line, path, "expected a mapping, got a %s",
						 op_ykind_name(v->kind));
			snprintf(path, sizeof(path), "%s%s.", prefix, n->keys[i]);
			rc = read_map(w, v, f->sub, path);
			break;
		case CK_STRLIST:
		case CK_PLUGINS_ENABLED:
			rc = read_list(w, v, path, (struct ag_strlist *)((char *)w->cfg + f->offset));
			if (f->type == CK_PLUGINS_ENABLED) {
				w->cfg->plugins_all = false;
				if (rc == OP_OK && ag_strlist_has(&w->cfg->plugins_enabled, "*"))
					w->cfg->plugins_all = true;
			}
			break;
		case CK_JSON_MAP: {
			cJSON **slot = (cJSON **)((char *)w->cfg + f->offset);
			cJSON *j;

			if (v->kind != OP_Y_MAP)
				return node_fail(w, v->line, path, "expected a mapping, got a %s",
						 op_ykind_name(v->kind));
			for (size_t k = 0; k < v->n; k++)
				if (v->items[k]->kind != OP_Y_MAP)
					return op_fail(w->err, OP_EINVAL,
						       "%s:%d: %s.%s: expected a mapping of settings",
						       w->file, v->items[k]->line, path, v->keys[k]);
			j = op_ynode_to_json(v);
			if (j == NULL)
				return op_fail(w->err, OP_ENOMEM, "out of memory");
			cJSON_Delete(*slot);
			*slot = j;
			break;
		}
		case CK_SWITCH:
			if (v->kind == OP_Y_MAP) {
				struct ag_plugin_switch *sw =
					(struct ag_plugin_switch *)((char *)w->cfg + f->offset);
				cJSON *j = op_ynode_to_json(v), *item;

				if (j == NULL)
					return op_fail(w->err, OP_ENOMEM, "out of memory");
				cJSON_ArrayForEach(item, j)
				{
					if (!cJSON_IsBool(item)) {
						cJSON_Delete(j);
						return node_fail(w, v->line, path,
								 "expected true/false per plugin (and \"default\")%s",
								 "");
					}
				}
				item = cJSON_GetObjectItemCaseSensitive(j, "default");
				if (item)
					sw->on = cJSON_IsTrue(item);
				cJSON_Delete(sw->overrides);
				sw->overrides = j;
				break;
			}
			__attribute__((fallthrough)); /* a plain boolean */
		default:
			if (v->kind != OP_Y_SCALAR)
				return node_fail(w, v->line, path, "expected a single value, got a %s",
						 op_ykind_name(v->kind));
			{
				char where[512];

				snprintf(where, sizeof(where), "%s:%d: %s", w->file, v->line, path);
				rc = set_scalar(w->cfg, f, v->value, where, w->err);
			}
			break;
		case CK_SECRETS:
			if (v->kind == OP_Y_SCALAR && v->value[0] == '\0')
				break;
			if (v->kind != OP_Y_MAP)
				return node_fail(w, v->line, path, "expected a mapping of secrets, got a %s",
						 op_ykind_name(v->kind));
			for (size_t k = 0; k < v->n && rc == OP_OK; k++)
				rc = read_secret(w, v->keys[k], v->key_lines[k], v->items[k]);
			break;
		}
		if (rc != OP_OK)
			return rc;
	}
	return OP_OK;
}

/* ---- public ------------------------------------------------------------------------------ */

op_rc ag_config_defaults(struct ag_config *cfg, struct op_error *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout = 10;
	cfg->request_timeout = 30;
	cfg->tcp_keepalive = 30;
	cfg->concurrency = 1;
	cfg->drain_grace = 300;
	cfg->min_free_disk = 1024ULL * 1024 * 1024;
	cfg->min_free_inodes = 10000;
	cfg->workspace_max_age = 7 * 86400;
	cfg->log_level = OP_LOG_INFO;
	cfg->log_max_size = 10 * 1024 * 1024;
	cfg->log_keep = 5;
	cfg->plugins_all = true;
	cfg->spare.on = true;
	cfg->fork_server.on = true;
	cfg->spare_heap = 8 * 1024 * 1024;
	cfg->memory_limit = 0;
	cfg->output_limit = 10 * 1024 * 1024;
	cfg->worker_grace = 10;
	cfg->worker_start_timeout = 30;
	cfg->scan_timeout = 10;
	if (set_str(&cfg->state_dir, AG_DEFAULT_STATE_DIR) != OP_OK ||
	    set_str(&cfg->cache_dir, AG_DEFAULT_CACHE_DIR) != OP_OK ||
	    set_str(&cfg->plugins_dir, OUTPOST_DEFAULT_PLUGINDIR) != OP_OK ||
	    (cfg->plugins_config = cJSON_CreateObject()) == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	return OP_OK;
}

static op_rc env_walk(struct ag_config *cfg, const struct ck_field *table, struct op_error *err)
{
	for (const struct ck_field *f = table; f->key; f++) {
		const char *v;
		char where[128];
		op_rc rc;

		if (f->type == CK_SECTION) {
			rc = env_walk(cfg, f->sub, err);
			if (rc != OP_OK)
				return rc;
			continue;
		}
		if (f->env == NULL || (v = getenv(f->env)) == NULL)
			continue;
		snprintf(where, sizeof(where), "environment variable %s", f->env);
		rc = set_scalar(cfg, f, v, where, err);
		if (rc != OP_OK)
			return rc;
		if (f->type == CK_PLUGINS_ENABLED && ag_strlist_has(&cfg->plugins_enabled, "*"))
			cfg->plugins_all = true;
	}
	return OP_OK;
}

op_rc ag_config_env(struct ag_config *cfg, struct op_error *err)
{
	return env_walk(cfg, top_fields, err);
}

/* Defaults that depend on other keys, and cross-key checks. */
static op_rc finish(struct ag_config *cfg, struct op_error *err)
{
	char path[PATH_MAX];

	if (cfg->workspace_dir == NULL) {
		snprintf(path, sizeof(path), "%s/work", cfg->state_dir);
		if (set_str(&cfg->workspace_dir, path) != OP_OK)
			return op_fail(err, OP_ENOMEM, "out of memory");
	}
	if (cfg->change_types_dir == NULL) {
		/* Beside the config file: /etc/outpost-agent/change-types. */
		const char *slash = cfg->file ? strrchr(cfg->file, '/') : NULL;

		if (slash)
			snprintf(path, sizeof(path), "%.*s/change-types", (int)(slash - cfg->file),
				 cfg->file);
		else
			snprintf(path, sizeof(path), "%s/change-types", AG_DEFAULT_CONFIG_DIR);
		if (set_str(&cfg->change_types_dir, path) != OP_OK)
			return op_fail(err, OP_ENOMEM, "out of memory");
	}
	if (cfg->state_dir[0] != '/' || cfg->workspace_dir[0] != '/' || cfg->cache_dir[0] != '/')
		return op_fail(err, OP_EINVAL,
			       "%s: state_dir, workspace_dir and cache_dir must be absolute paths",
			       cfg->file ? cfg->file : "config");
	return OP_OK;
}

op_rc ag_config_load(const char *path, struct ag_config *cfg, struct op_error *err)
{
	struct op_ydoc doc;
	struct walk w;
	op_rc rc;

	rc = ag_config_defaults(cfg, err);
	if (rc != OP_OK)
		return rc;
	if (path != NULL) {
		rc = op_yaml_load(path, 1024 * 1024, &doc, err);
		if (rc == OP_ENOENT)
			return op_fail(err, OP_ENOENT,
				       "config file %s not found: run `outpost-agent install` first, or "
				       "pass --config",
				       path);
		if (rc != OP_OK)
			return rc;
		cfg->file = strdup(path);
		w.file = path;
		w.cfg = cfg;
		w.err = err;
		if (doc.root != NULL && doc.root->kind != OP_Y_MAP)
			rc = op_fail(err, OP_EINVAL, "%s:%d: the config must be a mapping of keys",
				     path, doc.root->line);
		else if (doc.root != NULL)
			rc = read_map(&w, doc.root, top_fields, "");
		op_ydoc_release(&doc);
		if (rc != OP_OK)
			return rc;
	}
	rc = ag_config_env(cfg, err);
	if (rc != OP_OK)
		return rc;
	return finish(cfg, err);
}

op_rc ag_config_load_secrets(const char *path, struct ag_config *cfg, struct op_error *err)
{
	static const struct ck_field only_secrets[] = {
		F("secrets", CK_SECRETS, secrets, NULL),
		END,
	};
	struct op_ydoc doc;
	struct walk w = {path, cfg, err};
	op_rc rc;

	rc = op_yaml_load(path, 1024 * 1024, &doc, err);
	if (rc != OP_OK)
		return rc;
	if (doc.root != NULL && doc.root->kind != OP_Y_MAP)
		rc = op_fail(err, OP_EINVAL, "%s:%d: expected a mapping with a secrets: key", path,
			     doc.root->line);
	else if (doc.root != NULL)
		rc = read_map(&w, doc.root, only_secrets, "");
	op_ydoc_release(&doc);
	return rc;
}

void ag_config_release(struct ag_config *cfg)
{
	char **strings[] = {&cfg->file,		&cfg->control_plane, &cfg->ca_file,
			    &cfg->pinned_pubkey, &cfg->https_proxy,   &cfg->no_proxy,
			    &cfg->state_dir,	&cfg->workspace_dir, &cfg->cache_dir,
			    &cfg->user,		&cfg->pool,	     &cfg->environment,
			    &cfg->metrics_listen, &cfg->change_types_dir, &cfg->log_file,
			    &cfg->plugins_dir,	&cfg->worker_path};

	for (size_t i = 0; i < OP_ARRAY_LEN(strings); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
	ag_strlist_release(&cfg->tags);
	ag_strlist_release(&cfg->plugins_enabled);
	cJSON_Delete(cfg->plugins_config);
	cJSON_Delete(cfg->spare.overrides);
	cJSON_Delete(cfg->fork_server.overrides);
	for (size_t i = 0; i < cfg->n_secrets; i++) {
		free(cfg->secrets[i].name);
		free(cfg->secrets[i].from);
		ag_strlist_release(&cfg->secrets[i].types);
		ag_strlist_release(&cfg->secrets[i].hosts);
	}
	free(cfg->secrets);
	memset(cfg, 0, sizeof(*cfg));
}

bool ag_plugin_switch_for(const struct ag_plugin_switch *sw, const char *name)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(sw->overrides, name);

	return o ? cJSON_IsTrue(o) : sw->on;
}

const cJSON *ag_config_plugin_settings(const struct ag_config *cfg, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(cfg->plugins_config, name);
}

bool ag_config_plugin_enabled(const struct ag_config *cfg, const char *stem)
{
	return cfg->plugins_all || ag_strlist_has(&cfg->plugins_enabled, stem);
}

void ag_config_state_path(const struct ag_config *cfg, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", cfg->state_dir, name);
}
