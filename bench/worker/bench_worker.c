/* SPDX-License-Identifier: Apache-2.0 */
/* Worker benchmark: a task through a fresh worker and through a spare, beside the spawn floor. */

/*
 * Usage: bench_worker WORKER PLUGINS_DIR TRUE TRUE_FAT [RUNS]
 * Prints, for RUNS runs each (default 1000), median and p99 of:
 *   floor    posix_spawn + waitpid of TRUE (links only libc)
 *   fat      the same for TRUE_FAT (libcurl + OpenSSL + libyaml + cJSON: a worker linked
 *            like the agent would cost this)
 *   fresh    a no-op task through a freshly spawned worker: spawn → result
 *   spare    the same through a spare worker that waits with its plugin loaded:
 *            task handed over → result
 * and discovery of 10 plugins, cold (no cache) and cached.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "discovery.h"
#include "fsutil.h"
#include "log.h"
#include "supervisor.h"

extern char **environ;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double p50, p99, mean;
};

static struct stats summarize(double *v, int n)
{
	struct stats s = {0, 0, 0};

	qsort(v, (size_t)n, sizeof(*v), cmp);
	for (int i = 0; i < n; i++)
		s.mean += v[i];
	s.mean /= n;
	s.p50 = v[n / 2];
	s.p99 = v[(int)(n * 0.99)];
	return s;
}

static double spawn_wait_once(const char *path)
{
	char *argv[] = {(char *)path, NULL};
	posix_spawn_file_actions_t fa;
	double t0, ms;
	pid_t pid;
	int st;

	/* Silence: outpost-worker run bare prints its usage. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	t0 = now_ms();
	if (posix_spawn(&pid, path, &fa, NULL, argv, environ) != 0) {
		perror("posix_spawn");
		exit(1);
	}
	waitpid(pid, &st, 0);
	ms = now_ms() - t0;
	posix_spawn_file_actions_destroy(&fa);
	return ms;
}

struct wait_done {
	int done;
	int ok;
};

static void on_done(void *ud, const struct sv_outcome *o)
{
	struct wait_done *w = ud;

	w->done = 1;
	w->ok = o->status == SV_SUCCEEDED;
	if (!w->ok)
		fprintf(stderr, "task %s: %s\n", sv_status_name(o->status), o->error ? o->error : "");
}

/* Runs the event loop until COND(sv, ud) holds. */
static void loop_until(struct sv *sv, int (*cond)(struct sv *, void *), void *ud)
{
	struct pollfd fds[64];

	while (!cond(sv, ud)) {
		int n = sv_pollfds(sv, fds, 64), t = sv_timeout_ms(sv);

		if (poll(fds, (nfds_t)n, t < 0 || t > 100 ? 100 : t) > 0)
			sv_handle(sv, fds, n);
		sv_tick(sv);
	}
}

static int task_done(struct sv *sv, void *ud)
{
	(void)sv;
	return ((struct wait_done *)ud)->done;
}

static int spare_ready(struct sv *sv, void *ud)
{
	(void)ud;
	return sv_spares_ready(sv) > 0;
}

static int workers_gone(struct sv *sv, void *ud)
{
	(void)ud;
	return sv_workers(sv) == 0;
}

/* One no-op task through SV; with SPARE, the spare is loaded before and after. */
static double run_task_once(struct sv *sv, const char *ws, int spare)
{
	static const struct sv_events ev = {NULL, NULL, NULL, on_done, NULL};
	struct sv_task t = {"bench", "testkit.run", "{}", ws, 30};
	struct wait_done w = {0, 0};
	struct op_error err = {0};
	struct sv_job *job;
	double t0, ms;

	if (spare)
		loop_until(sv, spare_ready, NULL);
	else
		loop_until(sv, workers_gone, NULL);
	t0 = now_ms();
	if (sv_start(sv, &t, &ev, &w, &job, &err) != OP_OK) {
		fprintf(stderr, "sv_start: %s\n", err.msg);
		exit(1);
	}
	loop_until(sv, task_done, &w);
	ms = now_ms() - t0;
	if (!w.ok)
		exit(1);
	/* Let the worker exit and the next spare load before anything else is measured. */
	loop_until(sv, spare ? spare_ready : workers_gone, NULL);
	return ms;
}

static void row(const char *name, struct stats s, struct stats floor, const char *target)
{
	printf("%-44s p50 %7.3f ms  p99 %7.3f ms  %5.2fx floor  %s\n", name, s.p50, s.p99,
	       s.p50 / floor.p50, target);
}

int main(int argc, char **argv)
{
	struct ag_config cfg;
	struct op_error err = {0};
	struct sv_options o;
	struct sv *sv = NULL;
	struct sv_plugin_spec spec;
	const char *types[] = {"testkit.run"};
	char plugin[PATH_MAX], ws[] = "/tmp/outpost-bench-ws.XXXXXX",
			       dir[] = "/tmp/outpost-bench-plugins.XXXXXX";
	struct stats floor;
	struct sv *sv_spare = NULL;
	int runs = argc > 5 ? (int)strtol(argv[5], NULL, 10) : 1000;

	if (argc < 5) {
		fprintf(stderr, "usage: bench_worker WORKER PLUGINS_DIR TRUE TRUE_FAT [RUNS]\n");
		return 2;
	}
	op_log_set_level(OP_LOG_WARN);
	snprintf(plugin, sizeof(plugin), "%s/testkit.so", argv[2]);
	if (mkdtemp(ws) == NULL || mkdtemp(dir) == NULL)
		return 1;
	ag_config_defaults(&cfg, &err);
	memset(&o, 0, sizeof(o));
	o.worker_path = argv[1];
	o.output_limit = 1 << 20;
	o.grace = 5;
	o.start_timeout = 10;
	o.log_level = OP_LOG_WARN;

	memset(&spec, 0, sizeof(spec));
	spec.name = "testkit";
	spec.path = plugin;
	spec.types = types;
	spec.n_types = 1;
	spec.spare = false;
	if (sv_new(&o, &spec, 1, &sv, &err) != OP_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	spec.spare = true;
	if (sv_new(&o, &spec, 1, &sv_spare, &err) != OP_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	sv_prestart(sv_spare);
	/* Interleaved: every round measures each case once, so the floor and the cases see the
	 * same machine load (other processes on these 2 cores move absolute figures a lot). */
	{
		double *v[5];
		struct stats st[5];

		for (int k = 0; k < 5; k++)
			v[k] = calloc((size_t)runs, sizeof(double));
		for (int i = 0; i < runs; i++) {
			v[0][i] = spawn_wait_once(argv[3]);
			v[1][i] = spawn_wait_once(argv[4]);
			v[2][i] = spawn_wait_once(argv[1]);
			v[3][i] = run_task_once(sv, ws, 0);
			v[4][i] = run_task_once(sv_spare, ws, 1);
		}
		for (int k = 0; k < 5; k++) {
			st[k] = summarize(v[k], runs);
			free(v[k]);
		}
		floor = st[0];
		printf("outpost worker benchmark: %d interleaved rounds (lower is better)\n", runs);
		row("floor: posix_spawn+wait, libc-only binary", floor, floor, "");
		row("a binary linking libcurl+OpenSSL+yaml+cJSON", st[1], floor,
		    "(why the worker is a lean executable)");
		row("outpost-worker alone (spawn, usage, exit)", st[2], floor, "");
		row("(a) no-op task, fresh worker: spawn->result", st[3], floor, "target <= 1.50x");
		row("(b) no-op task, spare worker: hand-over->result", st[4], floor, "target <= 0.25x");
	}
	sv_free(sv);
	sv_free(sv_spare);

	/* (c) discovery of 10 plugins, cold and cached */
	{
		char cache[PATH_MAX], cmd[PATH_MAX * 2];
		struct dc_options d;
		struct dc_result r;
		double cold = 1e9, cached = 1e9;

		for (int i = 0; i < 10; i++) {
			snprintf(cmd, sizeof(cmd), "cp %s %s/p%02d.so && chmod 644 %s/p%02d.so", plugin,
				 dir, i, dir, i);
			if (system(cmd) != 0)
				return 1;
		}
		chmod(dir, 0755);
		snprintf(cache, sizeof(cache), "%s/cache.json", ws);
		memset(&d, 0, sizeof(d));
		d.dir = dir;
		d.cfg = &cfg;
		d.sv = &o;
		d.cache_path = cache;
		for (int i = 0; i < 5; i++) {
			double t0;

			unlink(cache);
			t0 = now_ms();
			if (dc_discover(&d, &r, &err) != OP_OK)
				return 1;
			if (now_ms() - t0 < cold)
				cold = now_ms() - t0;
			dc_result_release(&r);
		}
		for (int i = 0; i < 50; i++) {
			double t0 = now_ms();

			if (dc_discover(&d, &r, &err) != OP_OK || r.scanned != 0)
				return 1;
			if (now_ms() - t0 < cached)
				cached = now_ms() - t0;
			dc_result_release(&r);
		}
		printf("%-44s cold %7.3f ms  cached %7.3f ms  target cached < 1 ms\n",
		       "(c) discovery of 10 plugins (best of runs)", cold, cached);
		snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, ws);
		if (system(cmd) != 0)
			return 1;
	}
	ag_config_release(&cfg);
	return 0;
}
