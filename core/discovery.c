/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery: the agent never dlopens a plugin; a scan worker does, one file at a time. */
#include "discovery.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "fsutil.h"
#include "jsonprint.h"
#include "log.h"
#include "workerproc.h"

#define CACHE_VERSION 1

const char *dc_state_name(enum dc_state s)
{
	static const char *const names[] = {"loaded", "disabled", "refused", "failed",
					    "quarantined"};

	return (unsigned)s < OP_ARRAY_LEN(names) ? names[s] : "unknown";
}

const char *dc_plugin_name(const struct dc_plugin *p)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(p->descriptor, "name");

	return cJSON_IsString(n) ? n->valuestring : p->stem;
}

const cJSON *dc_plugin_types(const struct dc_plugin *p)
{
	return cJSON_GetObjectItemCaseSensitive(p->descriptor, "types");
}

static void set_reason(struct dc_plugin *p, enum dc_state st, const char *stage, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

static void set_reason(struct dc_plugin *p, enum dc_state st, const char *stage, const char *fmt,
		       ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->state = st;
	free(p->reason);
	p->reason = strdup(msg);
	free(p->stage);
	p->stage = stage ? strdup(stage) : NULL;
}

/* ---- file safety ------------------------------------------------------------------------- */

static bool owner_ok(const struct stat *st)
{
	return st->st_uid == 0 || st->st_uid == geteuid();
}

static op_rc check_dir(const char *dir, struct op_error *err)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return op_fail(err, OP_ENOENT, "plugins directory %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return op_fail(err, OP_EINVAL, "plugins directory %s is not a directory", dir);
	if (st.st_mode & 022)
		return op_fail(err, OP_EPERM,
			       "refusing plugins directory %s: it is writable by group or others "
			       "(mode %04o): run chmod go-w %s",
			       dir, (unsigned)(st.st_mode & 07777), dir);
	if (!owner_ok(&st))
		return op_fail(err, OP_EPERM,
			       "refusing plugins directory %s: it is owned by uid %u, not by root or "
			       "the agent's user",
			       dir, (unsigned)st.st_uid);
	return OP_OK;
}

/* Checks one candidate; fills ID with its identity on success. */
static bool check_file(struct dc_plugin *p, const char *real_dir, char *id, size_t idsize)
{
	char real[PATH_MAX], parent[PATH_MAX];
	struct stat lst, st;
	size_t dl = strlen(real_dir);

	if (lstat(p->file, &lst) < 0) {
		set_reason(p, DC_REFUSED, NULL, "cannot stat %s: %s", p->file, strerror(errno));
		return false;
	}
	if (realpath(p->file, real) == NULL) {
		set_reason(p, DC_REFUSED, NULL, "cannot resolve %s: %s", p->file, strerror(errno));
		return false;
	}
	if (S_ISLNK(lst.st_mode) &&
	    (strncmp(real, real_dir, dl) != 0 || real[dl] != '/')) {
		set_reason(p, DC_REFUSED, NULL,
			   "refusing plugin %s: it is a symlink to %s, outside the plugins directory %s",
			   p->file, real, real_dir);
		return false;
	}
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_reason(p, DC_REFUSED, NULL, "refusing plugin %s: not a regular file", p->file);
		return false;
	}
	if (st.st_mode & 022) {
		set_reason(p, DC_REFUSED, NULL,
			   "refusing plugin %s: it is writable by group or others (mode %04o): run "
			   "chmod go-w %s",
			   p->file, (unsigned)(st.st_mode & 07777), real);
		return false;
	}
	if (!owner_ok(&st)) {
		set_reason(p, DC_REFUSED, NULL,
			   "refusing plugin %s: it is owned by uid %u, not by root or the agent's user",
			   p->file, (unsigned)st.st_uid);
		return false;
	}
	/* A symlink may point into a subdirectory: that directory must be safe too. */
	op_strlcpy(parent, real, sizeof(parent));
	*strrchr(parent, '/') = '\0';
	if (strcmp(parent, real_dir) != 0) {
		struct stat pst;

		if (stat(parent, &pst) < 0 || (pst.st_mode & 022) || !owner_ok(&pst)) {
			set_reason(p, DC_REFUSED, NULL,
				   "refusing plugin %s: its directory %s is writable by group or others "
				   "or not owned by root or the agent's user",
				   p->file, parent);
			return false;
		}
	}
	snprintf(id, idsize, "%llu:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	return true;
}

/* ---- cache ------------------------------------------------------------------------------- */

static unsigned long long fnv1a(const char *s)
{
	unsigned long long h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* The cache is valid for one worker binary: a new agent may judge plugins differently. */
static void worker_identity(const char *worker, char *out, size_t size)
{
	struct stat st;

	if (stat(worker, &st) < 0)
		snprintf(out, size, "?");
	else
		snprintf(out, size, "%llu:%llu:%lld:%lld", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino, (long long)st.st_size,
			 (long long)st.st_mtim.tv_sec);
}

static cJSON *cache_load(const char *path, const char *worker_id)
{
	struct op_buf text = OP_BUF_INIT;
	cJSON *root = NULL;
	const cJSON *v, *w;

	if (path == NULL || op_read_file(path, 16 * 1024 * 1024, &text, NULL) != OP_OK)
		goto out;
	root = cJSON_ParseWithLength(text.data, text.len);
	v = cJSON_GetObjectItemCaseSensitive(root, "version");
	w = cJSON_GetObjectItemCaseSensitive(root, "worker");
	if (!cJSON_IsNumber(v) || v->valueint != CACHE_VERSION || !cJSON_IsString(w) ||
	    strcmp(w->valuestring, worker_id) != 0 ||
	    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "entries"))) {
		cJSON_Delete(root);
		root = NULL;
	}
out:
	op_buf_release(&text);
	return root;
}

/* ---- the scan ---------------------------------------------------------------------------- */

struct scan_item {
	struct dc_plugin *p;
	char id[128];
	char settings_hash[32];
	bool done;
};

/* Applies one FR_SCAN_RESULT to its item. */
static void apply_result(struct scan_item *items, size_t n, const char *payload, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(payload, len);
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o, "ok");

	for (size_t i = 0; cJSON_IsString(path) && i < n; i++) {
		struct dc_plugin *p = items[i].p;

		if (items[i].done || strcmp(p->file, path->valuestring) != 0)
			continue;
		items[i].done = true;
		if (cJSON_IsTrue(ok)) {
			p->state = DC_LOADED;
			p->descriptor = cJSON_DetachItemFromObjectCaseSensitive(o, "descriptor");
		} else {
			const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stage");
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");

			set_reason(p, DC_FAILED, cJSON_IsString(st) ? st->valuestring : NULL, "%s",
				   cJSON_IsString(m) ? m->valuestring : "failed to load");
		}
		break;
	}
	cJSON_Delete(o);
}

/* Runs one scan worker over the items not done yet. Returns the index of an item that crashed
 * or hung the worker (now quarantined), -1 when the worker finished them all, -2 when the
 * worker could not even start (ERR set). */
static long scan_once(const struct dc_options *o, struct scan_item *items, size_t n,
		      const cJSON *configs, struct op_error *err)
{
	struct wk_proc proc;
	struct op_buf in = OP_BUF_INIT;
	cJSON *req = cJSON_CreateObject(), *files;
	char *text = NULL;
	long current = -1, result = -1;
	bool exited = false;
	int status = 0;
	double timeout = o->cfg->scan_timeout > 0 ? o->cfg->scan_timeout : 10;

	if (req == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory"), -2;
	files = cJSON_AddArrayToObject(req, "files");
	for (size_t i = 0; i < n; i++)
		if (!items[i].done)
			cJSON_AddItemToArray(files, cJSON_CreateString(items[i].p->file));
	cJSON_AddItemToObject(req, "config", cJSON_Duplicate(configs, true));
	text = op_json_print(req, false);
	cJSON_Delete(req);
	if (text == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory"), -2;
	if (wk_spawn(o->sv->worker_path, "scan", NULL, NULL, false, &proc, err) != OP_OK) {
		free(text);
		return -2;
	}
	if (fr_write(proc.sock, FR_SCAN, text, strlen(text)) < 0)
		op_log_warn("discovery", "cannot talk to the scan worker: %s", strerror(errno));
	free(text);
	for (;;) {
		struct pollfd fds[3] = {{proc.sock, POLLIN, 0}, {proc.out, POLLIN, 0},
					{proc.pidfd, POLLIN, 0}};
		int r = poll(fds, 3, (int)(timeout * 1000));
		char chunk[4096];

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			/* Nothing for a whole scan_timeout: whatever it is loading hangs. */
			kill(-proc.pid, SIGKILL);
			kill(proc.pid, SIGKILL);
			waitpid(proc.pid, &status, 0);
			exited = true;
			if (current >= 0)
				set_reason(items[current].p, DC_QUARANTINED, "load",
					   "the plugin hung while loading for more than "
					   "%.0fs (workers.scan_timeout); it stays skipped until the "
					   "file changes",
					   timeout);
			break;
		}
		if (fds[1].revents) {
			ssize_t got = read(proc.out, chunk, sizeof(chunk));

			if (got <= 0)
				fds[1].fd = -1;
		}
		if (fds[0].revents) {
			ssize_t got = read(proc.sock, chunk, sizeof(chunk));
			long used;
			uint8_t type;
			const char *payload;
			size_t plen;

			if (got == 0 && proc.pidfd < 0)
				fds[2].revents = POLLIN; /* no pidfd: EOF means it is exiting */
			if (got > 0 && op_buf_append(&in, chunk, (size_t)got) == 0) {
				while ((used = fr_parse(&in, &type, &payload, &plen)) > 0) {
					if (type == FR_SCAN_BEGIN) {
						current = -1;
						for (size_t i = 0; i < n; i++)
							if (!items[i].done &&
							    strlen(items[i].p->file) == plen &&
							    memcmp(items[i].p->file, payload, plen) == 0)
								current = (long)i;
					} else if (type == FR_SCAN_RESULT) {
						apply_result(items, n, payload, plen);
						current = -1;
					}
					op_buf_consume(&in, (size_t)used);
				}
			}
		}
		if (fds[2].revents) {
			/* Exited: read what is left on the socket first. */
			char rest[65536];
			ssize_t got;
			long used;
			uint8_t type;
			const char *payload;
			size_t plen;

			while ((got = read(proc.sock, rest, sizeof(rest))) > 0)
				op_buf_append(&in, rest, (size_t)got);
			while ((used = fr_parse(&in, &type, &payload, &plen)) > 0) {
				if (type == FR_SCAN_BEGIN) {
					current = -1;
					for (size_t i = 0; i < n; i++)
						if (!items[i].done && strlen(items[i].p->file) == plen &&
						    memcmp(items[i].p->file, payload, plen) == 0)
							current = (long)i;
				} else if (type == FR_SCAN_RESULT) {
					apply_result(items, n, payload, plen);
					current = -1;
				}
				op_buf_consume(&in, (size_t)used);
			}
			waitpid(proc.pid, &status, 0);
			exited = true;
			kill(-proc.pid, SIGKILL);
			if (current >= 0) {
				char how[64];

				wk_describe_status(status, how, sizeof(how));
				set_reason(items[current].p, DC_QUARANTINED, "load",
					   "the plugin crashed the scanner while loading "
					   "(%s); it stays skipped until the file changes",
					   how);
			}
			break;
		}
	}
	if (!exited) {
		kill(-proc.pid, SIGKILL);
		waitpid(proc.pid, NULL, 0);
	}
	wk_forget(proc.pid);
	if (current >= 0) {
		items[current].done = true;
		result = current;
	}
	wk_proc_close(&proc);
	op_buf_release(&in);
	return result;
}

/* ---- discovery --------------------------------------------------------------------------- */

static int by_file(const void *a, const void *b)
{
	return strcmp(((const struct dc_plugin *)a)->file, ((const struct dc_plugin *)b)->file);
}

static void resolve_conflicts(struct dc_result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct dc_plugin *p = &r->v[i];

		if (p->state != DC_LOADED)
			continue;
		for (size_t k = 0; k < i && p->state == DC_LOADED; k++) {
			const struct dc_plugin *q = &r->v[k];
			const cJSON *t, *u;

			if (q->state != DC_LOADED)
				continue;
			if (strcmp(dc_plugin_name(p), dc_plugin_name(q)) == 0) {
				set_reason(p, DC_REFUSED, "descriptor",
					   "refusing plugin %s: duplicate plugin name \"%s\", already "
					   "provided by %s",
					   p->file, dc_plugin_name(p), q->file);
				break;
			}
			cJSON_ArrayForEach(t, dc_plugin_types(p))
			{
				const cJSON *tn = cJSON_GetObjectItemCaseSensitive(t, "name");

				cJSON_ArrayForEach(u, dc_plugin_types(q))
				{
					const cJSON *un = cJSON_GetObjectItemCaseSensitive(u, "name");

					if (cJSON_IsString(tn) && cJSON_IsString(un) &&
					    strcmp(tn->valuestring, un->valuestring) == 0 &&
					    p->state == DC_LOADED)
						set_reason(p, DC_REFUSED, "descriptor",
							   "refusing plugin %s: duplicate task type %s, "
							   "already served by plugin %s (%s)",
							   p->file, tn->valuestring, dc_plugin_name(q),
							   q->file);
				}
			}
		}
	}
}

static void cache_store(const char *path, const char *worker_id, const struct scan_item *items,
			size_t n)
{
	cJSON *root = cJSON_CreateObject(), *entries;
	char *text = NULL;

	if (root == NULL || path == NULL)
		goto out;
	cJSON_AddNumberToObject(root, "version", CACHE_VERSION);
	cJSON_AddStringToObject(root, "worker", worker_id);
	entries = cJSON_AddObjectToObject(root, "entries");
	for (size_t i = 0; entries && i < n; i++) {
		const struct dc_plugin *p = items[i].p;
		cJSON *e;

		if (p->state != DC_LOADED && p->state != DC_FAILED && p->state != DC_QUARANTINED)
			continue;
		e = cJSON_AddObjectToObject(entries, p->file);
		if (e == NULL)
			continue;
		cJSON_AddStringToObject(e, "id", items[i].id);
		cJSON_AddStringToObject(e, "settings", items[i].settings_hash);
		cJSON_AddStringToObject(e, "state", dc_state_name(p->state));
		if (p->descriptor)
			cJSON_AddItemToObject(e, "descriptor", cJSON_Duplicate(p->descriptor, true));
		if (p->reason)
			cJSON_AddStringToObject(e, "reason", p->reason);
		if (p->stage)
			cJSON_AddStringToObject(e, "stage", p->stage);
	}
	text = op_json_print(root, false);
	if (text != NULL) {
		struct op_error err = {0};

		if (op_write_file_atomic(path, text, strlen(text), 0600, &err) != OP_OK)
			op_log_warn("discovery", "cannot write the plugin cache: %s", err.msg);
	}
out:
	cJSON_free(text);
	cJSON_Delete(root);
}

/* Takes P's result from the cache entry E when its identity and settings match. */
static bool from_cache(struct dc_plugin *p, const cJSON *e, const struct scan_item *it)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
	const cJSON *set = cJSON_GetObjectItemCaseSensitive(e, "settings");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "state");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(e, "reason");
	const cJSON *stage = cJSON_GetObjectItemCaseSensitive(e, "stage");

	if (!cJSON_IsString(id) || strcmp(id->valuestring, it->id) != 0 || !cJSON_IsString(st))
		return false;
	/* A quarantine holds whatever the settings; other results depend on them (init). */
	if (strcmp(st->valuestring, "quarantined") != 0 &&
	    (!cJSON_IsString(set) || strcmp(set->valuestring, it->settings_hash) != 0))
		return false;
	if (strcmp(st->valuestring, "loaded") == 0) {
		p->state = DC_LOADED;
		p->descriptor = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e, "descriptor"), true);
		if (p->descriptor == NULL)
			return false;
	} else {
		set_reason(p, strcmp(st->valuestring, "failed") == 0 ? DC_FAILED : DC_QUARANTINED,
			   cJSON_IsString(stage) ? stage->valuestring : NULL, "%s",
			   cJSON_IsString(reason) ? reason->valuestring : "failed");
	}
	p->cached = true;
	return true;
}

op_rc dc_discover(const struct dc_options *o, struct dc_result *out, struct op_error *err)
{
	char real_dir[PATH_MAX], worker_id[128];
	struct scan_item *items = NULL;
	cJSON *cache = NULL, *configs = NULL;
	const cJSON *entries;
	struct dirent *e;
	size_t n_items = 0;
	op_rc rc;
	DIR *d;

	memset(out, 0, sizeof(*out));
	rc = check_dir(o->dir, err);
	if (rc != OP_OK)
		return rc;
	if (realpath(o->dir, real_dir) == NULL)
		return op_fail(err, OP_EIO, "cannot resolve %s: %s", o->dir, strerror(errno));
	d = opendir(o->dir);
	if (d == NULL)
		return op_fail(err, OP_EIO, "cannot read plugins directory %s: %s", o->dir,
			       strerror(errno));
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		struct dc_plugin *grown, *p;

		if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0 || e->d_name[0] == '.')
			continue;
		if (o->only_stem != NULL &&
		    (strlen(o->only_stem) != len - 3 || strncmp(o->only_stem, e->d_name, len - 3) != 0))
			continue;
		grown = realloc(out->v, (out->n + 1) * sizeof(*grown));
		if (grown == NULL) {
			closedir(d);
			dc_result_release(out);
			return op_fail(err, OP_ENOMEM, "out of memory");
		}
		out->v = grown;
		p = &out->v[out->n++];
		memset(p, 0, sizeof(*p));
		p->file = malloc(strlen(real_dir) + len + 2);
		p->stem = strndup(e->d_name, len - 3);
		if (p->file != NULL)
			snprintf(p->file, strlen(real_dir) + len + 2, "%s/%s", real_dir, e->d_name);
		if (p->file == NULL || p->stem == NULL) {
			closedir(d);
			dc_result_release(out);
			return op_fail(err, OP_ENOMEM, "out of memory");
		}
	}
	closedir(d);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), by_file);

	worker_identity(o->sv->worker_path, worker_id, sizeof(worker_id));
	cache = cache_load(o->cache_path, worker_id);
	entries = cJSON_GetObjectItemCaseSensitive(cache, "entries");
	items = calloc(out->n ? out->n : 1, sizeof(*items));
	configs = cJSON_CreateObject();
	if (items == NULL || configs == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < out->n; i++) {
		struct dc_plugin *p = &out->v[i];
		struct scan_item *it = &items[n_items];
		char *init;

		if (!ag_config_plugin_enabled(o->cfg, p->stem)) {
			set_reason(p, DC_DISABLED, NULL, "not in plugins.enabled");
			continue;
		}
		if (!check_file(p, real_dir, it->id, sizeof(it->id)))
			continue;
		/* The scan runs init() with the settings of the plugin named like the file (the
		 * convention: plugin NAME lives in NAME.so); the scan worker finds them by path. */
		init = sv_init_json(o->sv, ag_config_plugin_settings(o->cfg, p->stem));
		if (init == NULL) {
			rc = op_fail(err, OP_ENOMEM, "out of memory");
			goto out;
		}
		snprintf(it->settings_hash, sizeof(it->settings_hash), "%016llx", fnv1a(init));
		cJSON_AddItemToObject(configs, p->file, cJSON_Parse(init));
		cJSON_free(init);
		it->p = p;
		if (o->check_only) {
			p->state = DC_LOADED;
			it->done = true;
		} else {
			it->done = entries != NULL &&
				   from_cache(p, cJSON_GetObjectItemCaseSensitive(entries, p->file), it);
		}
		n_items++;
	}
	for (;;) {
		bool pending = false;
		long bad;

		for (size_t i = 0; i < n_items; i++)
			if (!items[i].done)
				pending = true;
		if (!pending)
			break;
		for (size_t i = 0; i < n_items; i++)
			if (!items[i].done)
				out->scanned++;
		bad = scan_once(o, items, n_items, configs, err);
		if (bad == -2) {
			rc = err ? err->rc : OP_EIO;
			goto out;
		}
		if (bad < 0) {
			/* The worker ended without crashing on a file: anything left undone got no
			 * answer (it should not happen); mark it failed rather than loop. */
			for (size_t i = 0; i < n_items; i++)
				if (!items[i].done) {
					items[i].done = true;
					set_reason(items[i].p, DC_FAILED, "load",
						   "the scan worker gave no answer for %s",
						   items[i].p->file);
				}
		} else {
			op_log_error("discovery", "%s", items[bad].p->reason);
		}
	}
	if (out->scanned > 0 || (cache == NULL && o->cache_path != NULL))
		cache_store(o->cache_path, worker_id, items, n_items);
	resolve_conflicts(out);
	rc = OP_OK;
out:
	free(items);
	cJSON_Delete(configs);
	cJSON_Delete(cache);
	if (rc != OP_OK)
		dc_result_release(out);
	return rc;
}

void dc_result_release(struct dc_result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].file);
		free(r->v[i].stem);
		free(r->v[i].reason);
		free(r->v[i].stage);
		cJSON_Delete(r->v[i].descriptor);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}
