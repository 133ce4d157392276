/* SPDX-License-Identifier: Apache-2.0 */
/* Secret resolution and the allow-list fence of decisions.md point 18. */
#include "secrets.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsutil.h"
#include "log.h"

#define SECRET_MAX (64 * 1024)

static const struct ag_secret *find(const struct ag_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_secrets; i++)
		if (strcmp(cfg->secrets[i].name, name) == 0)
			return &cfg->secrets[i];
	return NULL;
}

static void join(const struct ag_strlist *l, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			strncat(out, ", ", size - strlen(out) - 1);
		strncat(out, l->v[i], size - strlen(out) - 1);
	}
}

static bool matches(const struct ag_strlist *globs, const char *s, int flags)
{
	for (size_t i = 0; i < globs->n; i++)
		if (fnmatch(globs->v[i], s, flags) == 0)
			return true;
	return false;
}

/* Reads the value of S into VALUE. */
static int resolve(const struct ag_secret *s, struct op_buf *value, char *why, size_t why_size)
{
	if (strncmp(s->from, "env:", 4) == 0) {
		const char *v = getenv(s->from + 4);

		if (v == NULL) {
			snprintf(why, why_size, "secret \"%s\": environment variable %s is not set",
				 s->name, s->from + 4);
			return 0;
		}
		return op_buf_puts(value, v) == 0;
	}
	{
		struct op_error err = {0};
		size_t before = value->len;

		if (op_read_file(s->from + 5, SECRET_MAX, value, &err) != OP_OK) {
			snprintf(why, why_size, "secret \"%s\": %s", s->name, err.msg);
			return 0;
		}
		if (value->len > before && value->data[value->len - 1] == '\n') {
			value->len--;
			if (value->len > before && value->data[value->len - 1] == '\r')
				value->len--;
			value->data[value->len] = '\0';
		}
		return 1;
	}
}

int ag_secret_lookup(void *ud, const char *type, const char *name, const char *host,
		     struct op_buf *value, char *why, size_t why_size)
{
	const struct ag_config *cfg = ud;
	const struct ag_secret *s = find(cfg, name);
	char list[512];

	if (s == NULL) {
		snprintf(why, why_size, "no secret named \"%s\" in the agent config (secrets:)", name);
		return 0;
	}
	if (s->fenced && s->types.n > 0 && !matches(&s->types, type, 0)) {
		join(&s->types, list, sizeof(list));
		snprintf(why, why_size,
			 "secret \"%s\" is not allowed for task type %s (allow.types: %s)", name,
			 type, list);
		return 0;
	}
	if (s->fenced && s->hosts.n > 0) {
		join(&s->hosts, list, sizeof(list));
		if (host == NULL) {
			snprintf(why, why_size,
				 "secret \"%s\" is fenced to hosts (%s) and the task named no host",
				 name, list);
			return 0;
		}
		if (!matches(&s->hosts, host, FNM_CASEFOLD)) {
			snprintf(why, why_size,
				 "secret \"%s\" is not allowed for host %s (allow.hosts: %s)", name,
				 host, list);
			return 0;
		}
	}
	return resolve(s, value, why, why_size);
}

void ag_secrets_redact_all(const struct ag_config *cfg)
{
	for (size_t i = 0; i < cfg->n_secrets; i++) {
		struct op_buf v = OP_BUF_INIT;
		char why[256];

		if (resolve(&cfg->secrets[i], &v, why, sizeof(why)) && v.data)
			op_log_redact(v.data, v.len);
		if (v.data)
			explicit_bzero(v.data, v.len);
		op_buf_release(&v);
	}
}
