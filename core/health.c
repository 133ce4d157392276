/* SPDX-License-Identifier: Apache-2.0 */
/* Health for heartbeats (disk, inodes, workspace, last error) and workspace housekeeping. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fsutil.h"
#include "log.h"

static void human(uint64_t bytes, char *out, size_t size)
{
	if (bytes >= 1ULL << 40)
		snprintf(out, size, "%.1f TiB", (double)bytes / (1ULL << 40));
	else if (bytes >= 1ULL << 30)
		snprintf(out, size, "%.1f GiB", (double)bytes / (1ULL << 30));
	else
		snprintf(out, size, "%.0f MiB", (double)bytes / (1ULL << 20));
}

/* Can the agent create a file in DIR? */
static bool writable(const char *dir, char *why, size_t size)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/.outpost-write-test.%ld", dir, (long)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, size, "%s", strerror(errno));
		return false;
	}
	close(fd);
	unlink(path);
	return true;
}

cJSON *health_report(struct agent *ag)
{
	cJSON *h = cJSON_CreateObject(), *problems;
	struct statvfs vs;
	char why[256], a[32], b[32], msg[512];
	bool ws_ok;

	if (h == NULL)
		return NULL;
	problems = cJSON_CreateArray();
	if (statvfs(ag->cfg.state_dir, &vs) == 0) {
		uint64_t free_bytes = (uint64_t)vs.f_bavail * vs.f_frsize;
		uint64_t free_inodes = (uint64_t)vs.f_favail;

		cJSON_AddNumberToObject(h, "disk_free_bytes", (double)free_bytes);
		cJSON_AddNumberToObject(h, "inodes_free", (double)free_inodes);
		if (free_bytes < ag->cfg.min_free_disk) {
			human(free_bytes, a, sizeof(a));
			human(ag->cfg.min_free_disk, b, sizeof(b));
			snprintf(msg, sizeof(msg),
				 "low disk space in %s: %s free, below health.min_free_disk (%s)",
				 ag->cfg.state_dir, a, b);
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
		}
		if (vs.f_files > 0 && free_inodes < ag->cfg.min_free_inodes) {
			snprintf(msg, sizeof(msg),
				 "few free inodes in %s: %llu, below health.min_free_inodes (%llu)",
				 ag->cfg.state_dir, (unsigned long long)free_inodes,
				 (unsigned long long)ag->cfg.min_free_inodes);
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
		}
	}
	ws_ok = writable(ag->cfg.workspace_dir, why, sizeof(why));
	cJSON_AddBoolToObject(h, "workspace_writable", ws_ok);
	if (!ws_ok) {
		snprintf(msg, sizeof(msg), "workspace %s is not writable by the agent: %s",
			 ag->cfg.workspace_dir, why);
		cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
	}
	if (ag->last_error[0])
		cJSON_AddStringToObject(h, "last_error", ag->last_error);
	else
		cJSON_AddNullToObject(h, "last_error");
	cJSON_AddStringToObject(h, "status", cJSON_GetArraySize(problems) ? "degraded" : "ok");
	cJSON_AddItemToObject(h, "problems", problems);
	return h;
}

struct ws_entry {
	char name[256];
	time_t mtime;
};

static int by_age(const void *a, const void *b)
{
	const struct ws_entry *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

static bool in_use(const struct agent *ag, const char *name)
{
	for (const struct ag_task *t = ag->tasks; t; t = t->next)
		if (strcmp(t->lease_id, name) == 0)
			return true;
	return false;
}

/* Removes task workspaces older than health.workspace_max_age, and the oldest ones while free
 * space is below health.min_free_disk (decisions.md 17). Running tasks' are never touched. */
void health_housekeeping(struct agent *ag)
{
	struct ws_entry *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	struct statvfs vs;
	time_t now = time(NULL);
	DIR *d = opendir(ag->cfg.workspace_dir);

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;

		if (e->d_name[0] == '.' || in_use(ag, e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", ag->cfg.workspace_dir, e->d_name);
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			struct ws_entry *g = realloc(v, (cap ? cap * 2 : 32) * sizeof(*g));

			if (g == NULL)
				break;
			v = g;
			cap = cap ? cap * 2 : 32;
		}
		op_strlcpy(v[n].name, e->d_name, sizeof(v[n].name));
		v[n++].mtime = st.st_mtime;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), by_age);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		bool old = (double)(now - v[i].mtime) > ag->cfg.workspace_max_age;
		bool low = statvfs(ag->cfg.workspace_dir, &vs) == 0 &&
			   (uint64_t)vs.f_bavail * vs.f_frsize < ag->cfg.min_free_disk;

		if (!old && !low)
			break; /* sorted oldest first: the rest are newer */
		snprintf(path, sizeof(path), "%s/%s", ag->cfg.workspace_dir, v[i].name);
		op_log_info("agent", "removing workspace %s (%s)", path,
			    old ? "older than health.workspace_max_age" : "low disk space");
		(void)op_rm_rf(path, NULL);
	}
	free(v);
}
