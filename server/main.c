/* SPDX-License-Identifier: Apache-2.0 */
/* outpost-server: `init`, `serve`, `backup`, and the admin CLI's dispatch. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "heap.h"
#include "log.h"
#include "server.h"
#include "util.h"

op_rc admin_token_insert(struct store *st, const char *name, const char *by, const char *desc,
			 int64_t now, char *token, size_t tlen);

static const char *const DEFAULT_DATA_DIR = "/var/lib/outpost-server";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-server COMMAND [options]\n"
		"\n"
		"Server:\n"
		"  init --data-dir D [--hostname H]... [--listen ADDR:PORT]\n"
		"                       create the CA, server certificate, approval key, database and\n"
		"                       the first admin token (named admin) in a new directory D\n"
		"  serve --data-dir D [--listen ADDR:PORT] [--SETTING VALUE]...\n"
		"                       run the control plane (serve --help lists the settings)\n"
		"  backup --data-dir D --out DIR\n"
		"                       copy the database (consistently, while serving) and the keys\n"
		"  admin-token create --name N --offline --data-dir D\n"
		"                       break-glass: mint an admin token with the server stopped\n"
		"\n"
		"Admin (through the admin API of a running server):\n"
		"  token create|list|revoke          enrollment tokens\n"
		"  admin-token create|list|revoke    named admin tokens\n"
		"  agents list|show|drain|undrain|revoke|delete\n"
		"  task submit|show|logs|list|cancel|resolve|artifacts|artifact\n"
		"  cr create|approve|reject|show|list  change requests\n"
		"  settings show|set                 e.g. the recommended agent version\n"
		"  audit list                        who did what, when, from where\n"
		"  status                            agents, tasks and the database at a glance\n"
		"  whoami                            the admin token's name\n"
		"\n"
		"Admin commands find the server and token in DATA_DIR/admin.yaml (written by init);\n"
		"--data-dir D, --admin-config F, --server URL, --token-file F, --ca-file F and the\n"
		"environment (OUTPOST_DATA_DIR, OUTPOST_ADMIN_CONFIG, OUTPOST_SERVER_URL,\n"
		"OUTPOST_ADMIN_TOKEN, OUTPOST_CA_FILE) override it. --json prints JSON. Every command\n"
		"takes --help. Exit codes: docs/server.md.\n");
}

/* ---- init -------------------------------------------------------------------------------- */

static bool dir_empty_or_missing(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (d == NULL)
		return errno == ENOENT;
	while ((e = readdir(d)) != NULL) {
		/* A lock left by a serve that found nothing to serve does not count. */
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    strcmp(e->d_name, SRV_LOCK_FILE) != 0) {
			empty = false;
			break;
		}
	}
	closedir(d);
	return empty;
}

static int cmd_init(int argc, char **argv)
{
	const char *dir = NULL, *listen = "127.0.0.1:8000";
	const char *hosts[64];
	size_t nhosts = 0;
	struct op_error err;
	struct store *st = NULL;
	char path[PATH_MAX], abs[PATH_MAX], token[48], host[256], url[400];
	FILE *f;
	struct srv_config cfg;
	int rc = EXIT_FAIL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: outpost-server init --data-dir D [--hostname H]... [--listen ADDR:PORT]\n"
			       "  Creates D (mode 0700) with: ca.crt/ca.key (EC P-256 CA), server.crt/server.key\n"
			       "  (SANs: every --hostname, localhost, 127.0.0.1, ::1), approval.key/approval.pub\n"
			       "  (signs approved change requests), outpost.db, server.yaml (settings) and\n"
			       "  admin.yaml (mode 0600: URL and the admin token for the admin CLI).\n"
			       "  The admin token (named admin) is printed once. D must not exist or be empty.\n");
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--hostname") == 0 && i + 1 < argc && nhosts < 64)
			hosts[nhosts++] = argv[++i];
		else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen = argv[++i];
		else {
			fprintf(stderr, "outpost-server init: unknown or incomplete option %s (see --help)\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	if (dir == NULL) {
		fprintf(stderr, "outpost-server init: --data-dir D is required\n");
		return EXIT_USAGE;
	}
	if (!dir_empty_or_missing(dir)) {
		fprintf(stderr,
			"outpost-server init: %s exists and is not empty: init never overwrites a data "
			"directory (its CA and keys would be lost); choose a new directory\n",
			dir);
		return EXIT_FAIL;
	}
	srv_config_defaults(&cfg);
	if (srv_config_set(&cfg, "listen", listen, &err) != OP_OK ||
	    srv_config_finish(&cfg, &err) != OP_OK) {
		fprintf(stderr, "outpost-server init: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (op_mkdir_p(dir, 0700, &err) != OP_OK || chmod(dir, 0700) < 0 ||
	    realpath(dir, abs) == NULL) {
		fprintf(stderr, "outpost-server init: cannot create %s: %s\n", dir,
			err.msg[0] ? err.msg : strerror(errno));
		return EXIT_FAIL;
	}
	if (pki_create(abs, hosts, nhosts, 825, &err) != OP_OK) {
		fprintf(stderr, "outpost-server init: %s\n", err.msg);
		return EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/%s", abs, SRV_CONFIG_FILE);
	f = fopen(path, "wx");
	if (f == NULL) {
		fprintf(stderr, "outpost-server init: cannot create %s: %s\n", path, strerror(errno));
		return EXIT_FAIL;
	}
	fchmod(fileno(f), 0640);
	srv_config_write_default(f, listen);
	if (fclose(f) != 0) {
		fprintf(stderr, "outpost-server init: cannot write %s\n", path);
		return EXIT_FAIL;
	}
	if (store_sqlite_open(abs, true, &st, &err) != OP_OK) {
		fprintf(stderr, "outpost-server init: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (st->ops->begin(st) != OP_OK ||
	    admin_token_insert(st, "admin", "init", "created by outpost-server init", srv_now_ms(),
			       token, sizeof(token)) != OP_OK ||
	    st->ops->commit(st) != OP_OK) {
		fprintf(stderr, "outpost-server init: cannot write the database: %s\n", st->errmsg);
		goto out;
	}
	/* The admin CLI's defaults: where the server listens and the admin token (mode 0600). */
	op_strlcpy(host, listen, sizeof(host));
	{
		char *colon = strrchr(host, ':');

		if (colon)
			*colon = '\0';
		if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "") == 0)
			op_strlcpy(host, "127.0.0.1", sizeof(host));
		if (strcmp(host, "[::]") == 0)
			op_strlcpy(host, "[::1]", sizeof(host));
		snprintf(url, sizeof(url), "https://%s:%s", host, colon ? colon + 1 : "8000");
	}
	{
		struct op_buf y = OP_BUF_INIT;

		op_buf_printf(&y,
			      "# Written by outpost-server init: the admin CLI's server and admin token.\n"
			      "# Keep it secret (mode 0600). Flags and OUTPOST_* variables override it.\n"
			      "server: \"%s\"\ntoken: \"%s\"\nca_file: \"%s/%s\"\n",
			      url, token, abs, PKI_CA_CERT);
		snprintf(path, sizeof(path), "%s/%s", abs, SRV_ADMIN_FILE);
		if (y.data == NULL ||
		    op_write_file_atomic(path, y.data, y.len, 0600, &err) != OP_OK) {
			fprintf(stderr, "outpost-server init: %s\n", err.msg);
			op_buf_release(&y);
			goto out;
		}
		op_buf_release(&y);
	}
	fprintf(stderr,
		"Initialized %s\n"
		"  CA certificate:  %s/%s (give it to agents: outpost-agent install --ca-cert)\n"
		"  settings:        %s/%s\n"
		"  admin CLI:       %s/%s (server %s)\n"
		"The admin token (named admin) is printed below once; it is also in %s/%s.\n"
		"Start the server with: outpost-server serve --data-dir %s\n",
		abs, abs, PKI_CA_CERT, abs, SRV_CONFIG_FILE, abs, SRV_ADMIN_FILE, url, abs,
		SRV_ADMIN_FILE, dir);
	printf("%s\n", token);
	rc = EXIT_OK;
out:
	if (st)
		st->ops->close(st);
	return rc;
}

/* ---- serve ------------------------------------------------------------------------------- */

static void after_batch(void *arg, bool wake)
{
	leases_after_batch(arg, wake);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			op_log_warn("server", "cannot raise the open-file limit: %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		op_log_debug("server", "open-file limit %llu", (unsigned long long)rl.rlim_cur);
}

static void stop_check(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;

	leases_cancel_all_waiters(s);
	if (s->inflight > 0 && srv_mono_us() < s->stop_deadline_us)
		return;
	event_del(s->stop_ev);
	event_base_loopexit(s->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct srv *s = arg;
	struct timeval tick = {0, 50000};

	if (s->stopping) {
		op_log_warn("server", "second signal: stopping now");
		event_base_loopexit(s->base, NULL);
		return;
	}
	op_log_info("server", "%s: stopping (finishing %d requests in flight)",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT", s->inflight);
	s->stopping = true;
	if (s->listener)
		evconnlistener_disable(s->listener);
	if (s->reap_ev)
		event_del(s->reap_ev);
	leases_cancel_all_waiters(s);
	s->stop_deadline_us = srv_mono_us() + 10 * 1000000LL;
	s->stop_ev = event_new(s->base, -1, EV_PERSIST, stop_check, s);
	event_add(s->stop_ev, &tick);
}

/* Completions carry results of megabytes: the heap they are parsed into is kept for the next
 * one (op_heap_retain) while requests come, and given back after HEAP_DECAY_US without any. */
#define HEAP_DECAY_US (10 * 1000000LL)

static void heap_tick(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	int64_t now = srv_mono_us();

	(void)fd;
	(void)what;
	if (s->requests != s->heap_seen) {
		s->heap_seen = s->requests;
		s->heap_busy_us = now;
		s->heap_kept = true;
	} else if (s->heap_kept && now - s->heap_busy_us >= HEAP_DECAY_US) {
		op_log_debug("server", "no request for %llds: the heap kept for large bodies goes "
			     "back to the system", (long long)(HEAP_DECAY_US / 1000000));
		op_heap_release();
		s->heap_kept = false;
	}
}

static int serve_usage(FILE *f)
{
	fprintf(f, "usage: outpost-server serve --data-dir D [--config F] [--SETTING VALUE]...\n"
		   "  Serves the agent API (mTLS), the admin API (bearer admin tokens) and GET /health on\n"
		   "  one HTTPS listener. Settings come from D/server.yaml (or --config F), then flags.\n"
		   "  SIGTERM or SIGINT stops it gracefully. Settings:\n");
	srv_config_print_help(f);
	return EXIT_OK;
}

static int cmd_serve(int argc, char **argv)
{
	struct srv *s = calloc(1, sizeof(*s));
	const char *dir = getenv("OUTPOST_DATA_DIR"), *config = NULL;
	char path[PATH_MAX];
	struct op_error err;
	int lockfd = -1, rc = EXIT_FAIL;
	struct event *sigterm = NULL, *sigint = NULL;

	if (s == NULL)
		return EXIT_FAIL;
	srv_config_defaults(&s->cfg);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			free(s);
			return serve_usage(stdout);
		}
		if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config = argv[++i];
		}
	}
	if (dir == NULL)
		dir = DEFAULT_DATA_DIR;
	if (realpath(dir, s->cfg.data_dir) == NULL) {
		fprintf(stderr, "outpost-server serve: data directory %s: %s (create it with outpost-server init)\n",
			dir, strerror(errno));
		free(s);
		return EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/%s", s->cfg.data_dir, PKI_CA_CERT);
	if (access(path, F_OK) != 0) {
		fprintf(stderr,
			"outpost-server serve: %s is not initialized (no %s): run outpost-server init "
			"--data-dir %s first\n",
			s->cfg.data_dir, PKI_CA_CERT, s->cfg.data_dir);
		free(s);
		return EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s/%s", s->cfg.data_dir, SRV_CONFIG_FILE);
	if (srv_config_load(&s->cfg, config ? config : path, config == NULL, &err) != OP_OK) {
		fprintf(stderr, "outpost-server serve: %s\n", err.msg);
		free(s);
		return EXIT_FAIL;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data-dir") == 0 || strcmp(argv[i], "--config") == 0) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "--", 2) == 0 && srv_config_is_key(argv[i] + 2) && i + 1 < argc) {
			if (srv_config_set(&s->cfg, argv[i] + 2, argv[i + 1], &err) != OP_OK) {
				fprintf(stderr, "outpost-server serve: --%s: %s\n", argv[i] + 2, err.msg);
				free(s);
				return EXIT_USAGE;
			}
			i++;
			continue;
		}
		fprintf(stderr, "outpost-server serve: unknown or incomplete option %s (see serve --help)\n",
			argv[i]);
		free(s);
		return EXIT_USAGE;
	}
	if (srv_config_finish(&s->cfg, &err) != OP_OK) {
		fprintf(stderr, "outpost-server serve: %s\n", err.msg);
		free(s);
		return EXIT_FAIL;
	}
	op_log_set_level(op_log_level_parse(s->cfg.log_level));
	if (s->cfg.log_file[0] && op_log_set_file(s->cfg.log_file, 64 << 20, 5, &err) != OP_OK) {
		fprintf(stderr, "outpost-server serve: %s\n", err.msg);
		free(s);
		return EXIT_FAIL;
	}
	if (strcmp(s->cfg.access_log, "off") == 0) {
		/* none */
	} else if (strcmp(s->cfg.access_log, "stderr") == 0 || s->cfg.access_log[0] == '\0') {
		s->access_stderr = true;
	} else {
		s->access_log = fopen(s->cfg.access_log, "ae");
		if (s->access_log == NULL) {
			fprintf(stderr, "outpost-server serve: cannot open the access log %s: %s\n",
				s->cfg.access_log, strerror(errno));
			free(s);
			return EXIT_FAIL;
		}
		setvbuf(s->access_log, NULL, _IOLBF, 0);
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	/* One server per data directory. */
	snprintf(path, sizeof(path), "%s/%s", s->cfg.data_dir, SRV_LOCK_FILE);
	lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		op_log_error("server", "another outpost-server is serving %s (lock %s held)",
			     s->cfg.data_dir, path);
		goto out;
	}
	if (ftruncate(lockfd, 0) == 0)
		dprintf(lockfd, "%ld\n", (long)getpid());

	if (pki_load(&s->pki, s->cfg.data_dir, &err) != OP_OK ||
	    store_sqlite_open(s->cfg.data_dir, false, &s->store, &err) != OP_OK ||
	    leases_restart_grace(s, s->store, &err) != OP_OK ||
	    (s->store->ops->start_background &&
	     s->store->ops->start_background(s->store, &err) != OP_OK)) {
		op_log_error("server", "%s", err.msg);
		goto out;
	}
	if (s->pki.ca_not_after_ms - srv_now_ms() < 90LL * 86400 * 1000)
		op_log_warn("server", "the CA certificate expires within 90 days");
	evthread_use_pthreads();
	s->base = event_base_new();
	if (s->base == NULL) {
		op_log_error("server", "cannot create the event loop");
		goto out;
	}
	s->started_at_ms = srv_now_ms();
	if (dbq_start(&s->dbq, s->store, s->base, after_batch, s, &err) !=
		    OP_OK ||
	    srv_http_start(s, &err) != OP_OK) {
		op_log_error("server", "%s", err.msg);
		goto out;
	}
	reaper_start(s);
	if (op_heap_retain(0)) {
		struct timeval every = {1, 0};

		s->heap_ev = event_new(s->base, -1, EV_PERSIST, heap_tick, s);
		if (s->heap_ev)
			event_add(s->heap_ev, &every);
	} else {
		op_log_debug("server", "the allocator keeps its own heap settings");
	}
	sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	op_log_info("server",
		    "outpost-server %s listening on https://%s data_dir=%s heartbeat_interval=%gs "
		    "lease_ttl=%gs long_poll=%gs",
		    OUTPOST_SERVER_VERSION, s->cfg.listen, s->cfg.data_dir, s->cfg.heartbeat_interval,
		    s->cfg.lease_ttl, s->cfg.long_poll);
	event_base_dispatch(s->base);
	rc = EXIT_OK;
	op_log_info("server", "stopped");
out:
	if (s->dbq)
		dbq_stop(s->dbq); /* finishes queued jobs, delivers their answers */
	if (s->reap_ev)
		event_free(s->reap_ev);
	if (s->stop_ev)
		event_free(s->stop_ev);
	if (s->heap_ev)
		event_free(s->heap_ev);

	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	srv_http_stop(s);
	if (s->store)
		s->store->ops->close(s->store);
	pki_release(&s->pki);
	if (s->base)
		event_base_free(s->base);
	if (s->access_log)
		fclose(s->access_log);
	if (lockfd >= 0)
		close(lockfd);
	free(s);
	return rc;
}

/* ---- backup and break-glass ------------------------------------------------------------- */

static op_rc copy_file(const char *from, const char *to, mode_t mode, struct op_error *err)
{
	struct op_buf b = OP_BUF_INIT;
	op_rc rc = op_read_file(from, 64 << 20, &b, err);

	if (rc == OP_OK)
		rc = op_write_file_atomic(to, b.data ? b.data : "", b.len, mode, err);
	op_buf_release(&b);
	return rc;
}

static int cmd_backup(int argc, char **argv)
{
	const char *dir = getenv("OUTPOST_DATA_DIR"), *out = NULL;
	static const struct {
		const char *name;
		mode_t mode;
	} files[] = {{PKI_CA_CERT, 0644},     {PKI_CA_KEY, 0600},	   {PKI_SERVER_CERT, 0644},
		     {PKI_SERVER_KEY, 0600}, {PKI_APPROVAL_KEY, 0600}, {PKI_APPROVAL_PUB, 0644},
		     {SRV_CONFIG_FILE, 0640}, {SRV_ADMIN_FILE, 0600}};
	char from[PATH_MAX], to[PATH_MAX];
	struct op_error err;
	struct store *st = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			printf("usage: outpost-server backup --data-dir D --out DIR\n"
			       "  Copies the database consistently (safe while the server runs) and the\n"
			       "  keys, certificates and settings into the new directory DIR (mode 0700).\n");
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else {
			fprintf(stderr, "outpost-server backup: unknown or incomplete option %s\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (out == NULL) {
		fprintf(stderr, "outpost-server backup: --out DIR is required\n");
		return EXIT_USAGE;
	}
	if (dir == NULL)
		dir = DEFAULT_DATA_DIR;
	if (!dir_empty_or_missing(out)) {
		fprintf(stderr, "outpost-server backup: %s exists and is not empty\n", out);
		return EXIT_FAIL;
	}
	if (op_mkdir_p(out, 0700, &err) != OP_OK) {
		fprintf(stderr, "outpost-server backup: %s\n", err.msg);
		return EXIT_FAIL;
	}
	if (store_sqlite_open(dir, false, &st, &err) != OP_OK) {
		fprintf(stderr, "outpost-server backup: %s\n", err.msg);
		return EXIT_FAIL;
	}
	snprintf(to, sizeof(to), "%s/%s", out, SRV_DB_FILE);
	if (st->ops->backup(st, to, &err) != OP_OK) {
		fprintf(stderr, "outpost-server backup: %s\n", err.msg);
		st->ops->close(st);
		return EXIT_FAIL;
	}
	st->ops->close(st);
	chmod(to, 0600);
	for (size_t i = 0; i < OP_ARRAY_LEN(files); i++) {
		snprintf(from, sizeof(from), "%s/%s", dir, files[i].name);
		snprintf(to, sizeof(to), "%s/%s", out, files[i].name);
		if (access(from, F_OK) != 0)
			continue;
		if (copy_file(from, to, files[i].mode, &err) != OP_OK) {
			fprintf(stderr, "outpost-server backup: %s\n", err.msg);
			return EXIT_FAIL;
		}
	}
	fprintf(stderr, "backed up %s to %s (restore: stop the server, copy DIR's files into an empty data dir)\n",
		dir, out);
	return EXIT_OK;
}

/* admin-token create --offline: the server must be stopped (its lock is free). */
static int cmd_admin_token_offline(int argc, char **argv)
{
	const char *dir = getenv("OUTPOST_DATA_DIR"), *name = NULL;
	char path[PATH_MAX], token[48];
	struct op_error err;
	struct store *st = NULL;
	int lockfd, rc = EXIT_FAIL;
	op_rc orc;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--offline") == 0)
			continue;
		else {
			fprintf(stderr, "outpost-server admin-token create --offline: unknown option %s\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	if (name == NULL) {
		fprintf(stderr, "outpost-server admin-token create: --name NAME is required\n");
		return EXIT_USAGE;
	}
	if (dir == NULL)
		dir = DEFAULT_DATA_DIR;
	snprintf(path, sizeof(path), "%s/%s", dir, SRV_LOCK_FILE);
	lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr,
			"outpost-server admin-token create --offline: the server is running on %s: "
			"stop it first, or create the token through it (without --offline)\n",
			dir);
		if (lockfd >= 0)
			close(lockfd);
		return EXIT_CONFLICT;
	}
	if (store_sqlite_open(dir, false, &st, &err) != OP_OK) {
		fprintf(stderr, "outpost-server admin-token create: %s\n", err.msg);
		goto out;
	}
	if (st->ops->begin(st) != OP_OK)
		goto out;
	orc = admin_token_insert(st, name, "offline", "created with --offline", srv_now_ms(), token,
				 sizeof(token));
	if (orc == OP_OK) {
		cJSON *rec = cJSON_CreateObject();

		cJSON_AddNumberToObject(rec, "at", (double)srv_now_ms());
		cJSON_AddStringToObject(rec, "actor", "offline");
		cJSON_AddStringToObject(rec, "action", "admin_token.create");
		cJSON_AddStringToObject(rec, "target", name);
		cJSON_AddStringToObject(rec, "remote", "local");
		cJSON_AddStringToObject(rec, "result", "ok");
		orc = st->ops->insert(st, T_AUDIT, rec, NULL);
		cJSON_Delete(rec);
	}
	if (orc != OP_OK || st->ops->commit(st) != OP_OK) {
		st->ops->rollback(st);
		fprintf(stderr, "outpost-server admin-token create: %s\n",
			orc == OP_EEXIST ? "that name is taken" : st->errmsg);
		rc = orc == OP_EEXIST ? EXIT_CONFLICT : EXIT_FAIL;
		goto out;
	}
	printf("%s\n", token);
	rc = EXIT_OK;
out:
	if (st)
		st->ops->close(st);
	close(lockfd);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	int rc;

	if (cmd == NULL || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(cmd ? stdout : stderr);
		return cmd ? EXIT_OK : EXIT_USAGE;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("outpost-server %s\n", OUTPOST_SERVER_VERSION);
		return EXIT_OK;
	}
	umask(077); /* the database, keys and logs are the server's alone */
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "backup") == 0)
		return cmd_backup(argc - 1, argv + 1);
	if (strcmp(cmd, "admin-token") == 0 && argc > 2 && strcmp(argv[2], "create") == 0) {
		for (int i = 3; i < argc; i++)
			if (strcmp(argv[i], "--offline") == 0)
				return cmd_admin_token_offline(argc - 1, argv + 1);
	}
	rc = cli_main(argc - 1, argv + 1);
	if (rc < 0) {
		fprintf(stderr, "outpost-server: unknown command %s\n\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	return rc;
}
