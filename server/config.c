/* SPDX-License-Identifier: Apache-2.0 */
/* The server's settings: defaults, the data dir's server.yaml, and `serve` flags over both. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "units.h"
#include "yamltree.h"

enum kind { K_DURATION, K_SIZE, K_INT, K_BOOL, K_STRING };

struct setting {
	const char *key;
	enum kind kind;
	size_t off;
	size_t size; /* strings */
	const char *dflt;
	const char *help;
};

#define S(key, kind, field, dflt, help) {key, kind, offsetof(struct srv_config, field), sizeof(((struct srv_config *)0)->field), dflt, help}

static const struct setting SETTINGS[] = {
	S("listen", K_STRING, listen, "127.0.0.1:8000", "address:port the HTTPS listener binds"),
	S("heartbeat_interval", K_DURATION, heartbeat_interval, "15s",
	  "how often agents heartbeat (they are told at enrollment and in every heartbeat)"),
	S("offline_after", K_DURATION, offline_after, "0",
	  "an agent is offline when last seen longer ago than this (0: 3 heartbeat intervals)"),
	S("lease_ttl", K_DURATION, lease_ttl, "60s", "a lease lives this long unless renewed"),
	S("long_poll", K_DURATION, long_poll, "25s", "the longest a lease request waits (<= 25s)"),
	S("cert_validity", K_DURATION, cert_validity, "30d", "validity of agent certificates"),
	S("cert_rotation_grace", K_DURATION, cert_rotation_grace, "7d",
	  "rotate-cert accepts a certificate that expired at most this long ago"),
	S("restart_lease_grace", K_DURATION, restart_lease_grace, "0",
	  "leases in flight when the server starts live at least this long (0: 2 lease TTLs)"),
	S("enroll_replay_window", K_DURATION, enroll_replay_window, "10m",
	  "the same CSR sent again with the same token within this gets the same answer"),
	S("idle_timeout", K_DURATION, idle_timeout, "0",
	  "keep-alive idle timeout (0: the larger of 90s and 3 heartbeats + the long poll)"),
	S("release_backoff", K_DURATION, release_backoff, "5s",
	  "a task an agent released is not offered to that agent again for this long"),
	S("approval_validity", K_DURATION, approval_validity, "24h",
	  "an approved change request must start within this"),
	S("default_task_timeout", K_DURATION, default_task_timeout, "1h",
	  "timeout of a task submitted without --timeout"),
	S("retention", K_DURATION, retention, "30d",
	  "finished tasks (with their logs, leases and artifacts) are deleted this long after they end; 0 keeps them"),
	S("audit_retention", K_DURATION, audit_retention, "365d",
	  "audit entries are deleted this long after; 0 keeps them"),
	S("default_max_attempts", K_INT, default_max_attempts, "3",
	  "attempts of a task submitted without --max-attempts"),
	S("max_slots", K_INT, max_slots, "64", "most leases one lease request may get"),
	S("max_queue", K_INT, max_queue, "20000",
	  "requests waiting for the database before new ones get 503 overloaded"),
	S("max_body", K_SIZE, max_body, "1MiB", "largest request body accepted"),
	S("max_log_bytes", K_SIZE, max_log_bytes, "64MiB", "log bytes kept per task"),
	S("max_artifact_bytes", K_SIZE, max_artifact_bytes, "512KiB",
	  "largest artifact a task may upload to the server (0: no uploads)"),
	S("cr_required_approvals", K_INT, cr_required_approvals, "1",
	  "approvals a change request needs"),
	S("allow_self_approval", K_BOOL, allow_self_approval, "false",
	  "whether the requester of a change request may approve it"),
	S("access_log", K_STRING, access_log, "stderr",
	  "where the access log goes: stderr, off, or a file path"),
	S("log_level", K_STRING, log_level, "info", "error, warn, info or debug"),
	S("log_file", K_STRING, log_file, "", "also write the server log to this file"),
};

static void normalize(const char *key, char *out, size_t size)
{
	size_t i;

	for (i = 0; key[i] && i + 1 < size; i++)
		out[i] = key[i] == '-' ? '_' : key[i];
	out[i] = '\0';
}

static const struct setting *find(const char *key)
{
	char k[64];

	normalize(key, k, sizeof(k));
	for (size_t i = 0; i < OP_ARRAY_LEN(SETTINGS); i++)
		if (strcmp(SETTINGS[i].key, k) == 0)
			return &SETTINGS[i];
	return NULL;
}

bool srv_config_is_key(const char *key)
{
	return find(key) != NULL;
}

static op_rc apply(struct srv_config *c, const struct setting *s, const char *value,
		   const char *where, struct op_error *err)
{
	char *field = (char *)c + s->off;
	long long ll;

	switch (s->kind) {
	case K_DURATION:
		if (op_parse_duration(value, (double *)(void *)field) < 0)
			return op_fail(err, OP_EINVAL,
				       "%s%s: \"%s\" is not a duration (examples: 500ms, 30s, 5m, 1h, 30d)",
				       where, s->key, value);
		break;
	case K_SIZE:
		if (op_parse_size(value, (uint64_t *)(void *)field) < 0)
			return op_fail(err, OP_EINVAL,
				       "%s%s: \"%s\" is not a size (examples: 1MiB, 64KiB)", where,
				       s->key, value);
		break;
	case K_INT:
		if (op_parse_i64(value, 0, 1000000, &ll) < 0)
			return op_fail(err, OP_EINVAL, "%s%s: \"%s\" is not a whole number", where,
				       s->key, value);
		*(int *)(void *)field = (int)ll;
		break;
	case K_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
			*(bool *)(void *)field = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
			 strcmp(value, "0") == 0)
			*(bool *)(void *)field = false;
		else
			return op_fail(err, OP_EINVAL, "%s%s: \"%s\" is not true or false", where,
				       s->key, value);
		break;
	case K_STRING:
		if (op_strlcpy(field, value, s->size) < 0)
			return op_fail(err, OP_EINVAL, "%s%s: value too long", where, s->key);
		break;
	}
	return OP_OK;
}

void srv_config_defaults(struct srv_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < OP_ARRAY_LEN(SETTINGS); i++)
		(void)apply(c, &SETTINGS[i], SETTINGS[i].dflt, "", NULL);
}

op_rc srv_config_set(struct srv_config *c, const char *key, const char *value,
		     struct op_error *err)
{
	const struct setting *s = find(key);

	if (s == NULL)
		return op_fail(err, OP_EINVAL, "unknown setting %s", key);
	return apply(c, s, value, "", err);
}

op_rc srv_config_load(struct srv_config *c, const char *path, bool optional, struct op_error *err)
{
	struct op_ydoc doc;
	struct op_error e;
	op_rc rc;

	rc = op_yaml_load(path, 1 << 20, &doc, &e);
	if (rc == OP_ENOENT && optional)
		return OP_OK;
	if (rc != OP_OK)
		return op_fail(err, rc, "%s", e.msg);
	if (doc.root == NULL)
		goto out;
	if (doc.root->kind != OP_Y_MAP) {
		rc = op_fail(err, OP_EINVAL, "%s:%d: expected a mapping of settings", path,
			     doc.root->line);
		goto out;
	}
	for (size_t i = 0; i < doc.root->n; i++) {
		const struct setting *s = find(doc.root->keys[i]);
		struct op_ynode *v = doc.root->items[i];
		char where[4200];

		snprintf(where, sizeof(where), "%s:%d: ", path, doc.root->key_lines[i]);
		if (s == NULL || strchr(doc.root->keys[i], '-') != NULL) {
			rc = op_fail(err, OP_EINVAL, "%sunknown setting \"%s\" (see outpost-server serve --help)",
				     where, doc.root->keys[i]);
			goto out;
		}
		if (v->kind != OP_Y_SCALAR) {
			rc = op_fail(err, OP_EINVAL, "%s%s: expected a single value, got a %s", where,
				     s->key, op_ykind_name(v->kind));
			goto out;
		}
		if ((rc = apply(c, s, v->value, where, err)) != OP_OK)
			goto out;
	}
out:
	op_ydoc_release(&doc);
	return rc;
}

op_rc srv_config_finish(struct srv_config *c, struct op_error *err)
{
	if (c->heartbeat_interval < 0.05)
		return op_fail(err, OP_EINVAL, "heartbeat_interval must be at least 50ms");
	if (c->lease_ttl < 0.1)
		return op_fail(err, OP_EINVAL, "lease_ttl must be at least 100ms");
	if (c->long_poll > 25)
		return op_fail(err, OP_EINVAL, "long_poll must be at most 25s");
	if (c->cert_validity < 1)
		return op_fail(err, OP_EINVAL, "cert_validity must be at least 1s");
	if (c->max_body < 4096)
		return op_fail(err, OP_EINVAL, "max_body must be at least 4KiB");
	if (c->cr_required_approvals < 1)
		return op_fail(err, OP_EINVAL, "cr_required_approvals must be at least 1");
	if (c->max_queue < 1)
		return op_fail(err, OP_EINVAL, "max_queue must be at least 1");
	if (c->max_slots < 1)
		return op_fail(err, OP_EINVAL, "max_slots must be at least 1");
	if (c->default_max_attempts < 1)
		return op_fail(err, OP_EINVAL, "default_max_attempts must be at least 1");
	if (op_log_level_parse(c->log_level) < 0)
		return op_fail(err, OP_EINVAL, "log_level: \"%s\" is not error, warn, info or debug",
			       c->log_level);
	if (c->offline_after <= 0)
		c->offline_after = 3 * c->heartbeat_interval;
	if (c->restart_lease_grace <= 0)
		c->restart_lease_grace = 2 * c->lease_ttl;
	if (c->idle_timeout <= 0) {
		c->idle_timeout = 3 * c->heartbeat_interval + c->long_poll;
		if (c->idle_timeout < 90)
			c->idle_timeout = 90;
	}
	if (strchr(c->listen, ':') == NULL)
		return op_fail(err, OP_EINVAL, "listen: \"%s\" is not address:port", c->listen);
	return OP_OK;
}

void srv_config_write_default(FILE *f, const char *listen)
{
	fprintf(f, "# outpost-server settings (docs/server.md). Every setting is also a `serve` flag:\n"
		   "# heartbeat_interval here is --heartbeat-interval there. Durations: 500ms, 30s, 5m, 1h, 30d.\n");
	for (size_t i = 0; i < OP_ARRAY_LEN(SETTINGS); i++) {
		const struct setting *s = &SETTINGS[i];

		fprintf(f, "\n# %s\n", s->help);
		if (strcmp(s->key, "listen") == 0)
			fprintf(f, "listen: \"%s\"\n", listen);
		else
			fprintf(f, "#%s: %s\n", s->key, s->dflt[0] ? s->dflt : "\"\"");
	}
}

void srv_config_print_help(FILE *f)
{
	for (size_t i = 0; i < OP_ARRAY_LEN(SETTINGS); i++) {
		char flag[64];

		snprintf(flag, sizeof(flag), "--%s", SETTINGS[i].key);
		for (char *p = flag; *p; p++)
			if (*p == '_')
				*p = '-';
		fprintf(f, "  %-26s %s (default: %s)\n", flag, SETTINGS[i].help,
			SETTINGS[i].dflt[0] ? SETTINGS[i].dflt : "none");
	}
}
