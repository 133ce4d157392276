/* SPDX-License-Identifier: Apache-2.0 */
/* The outbox and the lease records: small JSON files, each written atomically and durably. */
#include "outbox.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "jsonprint.h"

/* Lease ids come from the control plane: only [A-Za-z0-9_-] reach a file name. */
static int safe_id(const char *id)
{
	if (id == NULL || *id == '\0' || strlen(id) > 80)
		return 0;
	for (; *id; id++)
		if (!isalnum((unsigned char)*id) && *id != '_' && *id != '-')
			return 0;
	return 1;
}

static void path_of(const char *state_dir, const char *sub, const char *id, char *out,
		    size_t size)
{
	snprintf(out, size, "%s/%s/%s.json", state_dir, sub, id);
}

op_rc ob_init(const char *state_dir, struct op_error *err)
{
	char dir[PATH_MAX];
	op_rc rc;

	snprintf(dir, sizeof(dir), "%s/leases", state_dir);
	rc = op_mkdir_p(dir, 0700, err);
	if (rc != OP_OK)
		return rc;
	snprintf(dir, sizeof(dir), "%s/outbox", state_dir);
	return op_mkdir_p(dir, 0700, err);
}

static op_rc put(const char *state_dir, const char *sub, const char *id, const cJSON *doc,
		 bool durable, struct op_error *err)
{
	char path[PATH_MAX], *text;
	op_rc rc;

	if (!safe_id(id))
		return op_fail(err, OP_EINVAL, "refusing to store lease id \"%s\"", id ? id : "");
	text = op_json_print(doc, false);
	if (text == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	path_of(state_dir, sub, id, path, sizeof(path));
	rc = durable ? op_write_file_atomic(path, text, strlen(text), 0600, err)
		     : op_write_file_replace(path, text, strlen(text), 0600, err);
	cJSON_free(text);
	return rc;
}

static void drop(const char *state_dir, const char *sub, const char *id)
{
	char path[PATH_MAX];

	if (!safe_id(id))
		return;
	/* Not synced: a removal a power loss undoes only makes a message go out twice, and the
	 * control plane acknowledges replays. */
	path_of(state_dir, sub, id, path, sizeof(path));
	(void)unlink(path);
}

op_rc ob_lease_begin(const char *state_dir, const char *lease_id, const cJSON *record,
		     struct op_error *err)
{
	/* Not synced: lost in a power cut, the lease just expires and is requeued (its TTL),
	 * which is all the record would have saved. A process crash keeps it. */
	return put(state_dir, "leases", lease_id, record, false, err);
}

void ob_lease_end(const char *state_dir, const char *lease_id)
{
	drop(state_dir, "leases", lease_id);
}

op_rc ob_put(const char *state_dir, const char *lease_id, const cJSON *msg, struct op_error *err)
{
	return put(state_dir, "outbox", lease_id, msg, true, err);
}

void ob_ack(const char *state_dir, const char *lease_id)
{
	drop(state_dir, "outbox", lease_id);
}

int ob_has(const char *state_dir, const char *lease_id)
{
	char path[PATH_MAX];

	if (!safe_id(lease_id))
		return 0;
	path_of(state_dir, "outbox", lease_id, path, sizeof(path));
	return access(path, F_OK) == 0;
}

static op_rc list(const char *state_dir, const char *sub, struct ob_list *out,
		  struct op_error *err)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;

	memset(out, 0, sizeof(*out));
	snprintf(dir, sizeof(dir), "%s/%s", state_dir, sub);
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? OP_OK
				       : op_fail(err, OP_EIO, "cannot read %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char path[PATH_MAX + 256], id[96];
		struct op_buf text = OP_BUF_INIT;
		struct ob_entry *grown;
		cJSON *doc;

		/* FILE.json only: FILE.json.tmp.PID are writes a crash interrupted. */
		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0 || len - 5 >= sizeof(id))
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(len - 5), e->d_name);
		if (!safe_id(id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (op_read_file(path, 64 * 1024 * 1024, &text, NULL) != OP_OK) {
			op_buf_release(&text);
			continue;
		}
		doc = cJSON_ParseWithLength(text.data, text.len);
		op_buf_release(&text);
		if (doc == NULL)
			continue;
		grown = realloc(out->v, (out->n + 1) * sizeof(*grown));
		if (grown == NULL) {
			cJSON_Delete(doc);
			closedir(d);
			ob_list_release(out);
			return op_fail(err, OP_ENOMEM, "out of memory");
		}
		out->v = grown;
		op_strlcpy(out->v[out->n].lease_id, id, sizeof(out->v[out->n].lease_id));
		out->v[out->n++].doc = doc;
	}
	closedir(d);
	return OP_OK;
}

op_rc ob_list_pending(const char *state_dir, struct ob_list *out, struct op_error *err)
{
	return list(state_dir, "outbox", out, err);
}

op_rc ob_list_leases(const char *state_dir, struct ob_list *out, struct op_error *err)
{
	return list(state_dir, "leases", out, err);
}

void ob_list_release(struct ob_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		cJSON_Delete(l->v[i].doc);
	free(l->v);
	memset(l, 0, sizeof(*l));
}
