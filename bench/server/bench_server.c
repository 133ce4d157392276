/* SPDX-License-Identifier: Apache-2.0 */
/* Load generator for outpost-server: N simulated agents, each on its own keep-alive mTLS
 * connection, heartbeating on the server's interval; then lease acquire + complete cycles;
 * then the floor: a naive SQLite writer with one fsync per operation. Prints p50/p99 and the
 * server's CPU beside every figure. Run through bench_server.sh (it starts the server). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- settings and figures ---------------------------------------------------------------- */

static struct {
	int agents;
	double duration;       /* heartbeat phase, seconds */
	double interval;       /* heartbeat interval the server told us */
	int port;
	const char *ca;
	const char *token;     /* enrollment token with enough uses */
	const char *admin;     /* admin token */
	int server_pid;
	int workers;           /* agents running lease cycles */
	int tasks;             /* tasks for the cycle phase */
	double cycle_time;     /* cycle phase, seconds */
	bool cycles_alone;     /* stop heartbeats during the cycle phase */
	const char *floor_dir; /* where the naive SQLite floor writes */
} O = {1000, 60, 15, 0, NULL, NULL, NULL, 0, 32, 40000, 15, false, "/tmp"};

static struct event_base *base;
static SSL_CTX *ctx;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of PID, or of this process when PID is 0. */
static double cpu_of(int pid)
{
	char path[64], buf[1024];
	FILE *f;
	unsigned long ut = 0, st = 0;
	char *p;

	if (pid == 0) {
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct lat {
	double *v;
	size_t n, cap;
};

static void lat_add(struct lat *l, double ms)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = realloc(l->v, l->cap * sizeof(double));
		if (l->v == NULL)
			exit(1);
	}
	l->v[l->n++] = ms;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(struct lat *l, double p)
{
	size_t i;

	if (l->n == 0)
		return NAN;
	qsort(l->v, l->n, sizeof(double), cmp_d);
	i = (size_t)ceil(p / 100.0 * (double)l->n);
	if (i > 0)
		i--;
	return l->v[i < l->n ? i : l->n - 1];
}

/* ---- agents ------------------------------------------------------------------------------ */

struct agent {
	int idx;
	char id[40];
	EVP_PKEY *key;
	X509 *cert;
	char *csr_body; /* enrollment JSON */
	struct evhttp_connection *conn;
	struct event *timer;
	double t0;
	bool busy;
	char lease[64];
	int state; /* cycle worker: 0 idle, 1 acquiring, 2 completing */
};

static struct agent *agents;
static int phase; /* 1 enroll, 2 connect, 3 heartbeat, 4 cycles */
static int pending;
static int enrolled, connected, errors, hb_count;
static struct lat hb_lat, acq_lat, done_lat;
static double measure_from, measure_to;
static long cycles;
static bool heartbeats_on = true;
static char heartbeat_body[1024];

static struct evhttp_connection *new_conn(struct agent *a)
{
	SSL *ssl = SSL_new(ctx);
	struct bufferevent *bev;
	struct evhttp_connection *c;

	if (ssl == NULL)
		return NULL;
	if (a && (SSL_use_certificate(ssl, a->cert) != 1 || SSL_use_PrivateKey(ssl, a->key) != 1)) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		return NULL;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c = evhttp_connection_base_bufferevent_new(base, NULL, bev, "127.0.0.1", (unsigned short)O.port);
	if (c) {
		evhttp_connection_set_timeout(c, 120);
		evhttp_connection_set_retries(c, 0);
	}
	return c;
}

/* Like every real agent (libcurl does it by default): no Nagle, or each request whose headers
 * and body leave in two segments waits for the server's delayed ACK. The socket exists once
 * the connection's first request started connecting. */
static void nodelay(struct evhttp_connection *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static struct evhttp_request *new_req(void (*cb)(struct evhttp_request *, void *), void *arg,
				      const char *body, const char *bearer)
{
	struct evhttp_request *r = evhttp_request_new(cb, arg);
	struct evkeyvalq *h = evhttp_request_get_output_headers(r);
	char auth[200];

	evhttp_add_header(h, "Host", "127.0.0.1");
	evhttp_add_header(h, "Content-Type", "application/json");
	if (bearer) {
		snprintf(auth, sizeof(auth), "Bearer %s", bearer);
		evhttp_add_header(h, "Authorization", auth);
	}
	if (body)
		evbuffer_add(evhttp_request_get_output_buffer(r), body, strlen(body));
	return r;
}

static cJSON *body_json(struct evhttp_request *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r);
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return NULL;
	return cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), n);
}

/* -- enrollment -- */

static int next_enroll;
static void enroll_next(struct evhttp_connection *c);

static void on_enrolled(struct evhttp_request *r, void *arg)
{
	struct agent *a = arg;
	struct evhttp_connection *c = a->conn;
	cJSON *b;
	BIO *bio;

	a->conn = NULL;
	if (r == NULL || evhttp_request_get_response_code(r) != 201) {
		errors++;
		fprintf(stderr, "enroll failed: HTTP %d\n", r ? evhttp_request_get_response_code(r) : 0);
		event_base_loopbreak(base);
		return;
	}
	b = body_json(r);
	snprintf(a->id, sizeof(a->id), "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(b, "agent_id")) ? cJSON_GetStringValue(cJSON_GetObjectItem(b, "agent_id")) : "?");
	bio = BIO_new_mem_buf(cJSON_GetStringValue(cJSON_GetObjectItem(b, "certificate")), -1);
	a->cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	cJSON_Delete(b);
	if (a->cert == NULL) {
		errors++;
		event_base_loopbreak(base);
		return;
	}
	free(a->csr_body);
	a->csr_body = NULL;
	enrolled++;
	enroll_next(c);
}

static void enroll_next(struct evhttp_connection *c)
{
	struct agent *a;

	if (next_enroll >= O.agents) {
		if (--pending == 0)
			event_base_loopbreak(base);
		return;
	}
	a = &agents[next_enroll++];
	a->conn = c; /* borrowed until the answer */
	evhttp_make_request(c, new_req(on_enrolled, a, a->csr_body, NULL), EVHTTP_REQ_POST,
			    "/agent/enroll");
	nodelay(c);
}

/* -- heartbeats -- */

static void schedule(struct agent *a, double secs)
{
	struct timeval tv = {(time_t)secs, (suseconds_t)((secs - floor(secs)) * 1e6)};

	evtimer_add(a->timer, &tv);
}

static void on_heartbeat(struct evhttp_request *r, void *arg)
{
	struct agent *a = arg;
	double t = now_s(), ms = (t - a->t0) * 1000.0;

	a->busy = false;
	if (r == NULL || evhttp_request_get_response_code(r) != 200) {
		errors++;
		if (errors < 5)
			fprintf(stderr, "heartbeat of %s failed: HTTP %d\n", a->id,
				r ? evhttp_request_get_response_code(r) : 0);
	} else if (phase == 2) {
		connected++;
		if (connected == O.agents)
			event_base_loopbreak(base);
	} else if (a->t0 >= measure_from && a->t0 < measure_to) {
		lat_add(&hb_lat, ms);
		hb_count++;
	}
}

static void send_heartbeat(struct agent *a)
{
	if (a->busy || !heartbeats_on)
		return;
	if (a->conn == NULL)
		a->conn = new_conn(a);
	a->busy = true;
	a->t0 = now_s();
	evhttp_make_request(a->conn, new_req(on_heartbeat, a, heartbeat_body, NULL), EVHTTP_REQ_POST,
			    "/agent/heartbeat");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	if (phase >= 3 && heartbeats_on) {
		send_heartbeat(a);
		schedule(a, O.interval);
	}
}

/* -- connect: each agent's first heartbeat opens its connection, RAMP at a time -- */

static int next_connect;
static void connect_more(void);

static void on_first(struct evhttp_request *r, void *arg)
{
	on_heartbeat(r, arg);
	connect_more();
}

static void connect_more(void)
{
	while (next_connect < O.agents && next_connect - connected - errors < 200) {
		struct agent *a = &agents[next_connect++];

		a->conn = new_conn(a);
		a->busy = true;
		a->t0 = now_s();
		evhttp_make_request(a->conn, new_req(on_first, a, heartbeat_body, NULL), EVHTTP_REQ_POST,
				    "/agent/heartbeat");
		nodelay(a->conn);
	}
}

/* -- lease cycles -- */

static void cycle_step(struct agent *a);

static void on_completed(struct evhttp_request *r, void *arg)
{
	struct agent *a = arg;

	if (r == NULL || evhttp_request_get_response_code(r) != 200) {
		errors++;
	} else {
		lat_add(&done_lat, (now_s() - a->t0) * 1000.0);
		cycles++;
	}
	a->state = 0;
	cycle_step(a);
}

static void on_acquired(struct evhttp_request *r, void *arg)
{
	struct agent *a = arg;
	int code = r ? evhttp_request_get_response_code(r) : 0;
	cJSON *b, *l;
	char path[200];

	if (code == 204) { /* nothing left */
		a->state = -1;
		if (--pending == 0)
			event_base_loopbreak(base);
		return;
	}
	if (code != 200) {
		errors++;
		a->state = -1;
		if (--pending == 0)
			event_base_loopbreak(base);
		return;
	}
	lat_add(&acq_lat, (now_s() - a->t0) * 1000.0);
	b = body_json(r);
	l = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "leases"), 0);
	snprintf(a->lease, sizeof(a->lease), "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(l, "lease_id")) ? cJSON_GetStringValue(cJSON_GetObjectItem(l, "lease_id")) : "");
	cJSON_Delete(b);
	a->state = 2;
	a->t0 = now_s();
	snprintf(path, sizeof(path), "/agent/leases/%s/complete", a->lease);
	evhttp_make_request(a->conn,
			    new_req(on_completed, a, "{\"status\":\"succeeded\",\"result\":{\"ok\":true},\"duration\":0.001}", NULL),
			    EVHTTP_REQ_POST, path);
}

static void cycle_step(struct agent *a)
{
	if (now_s() >= measure_to) {
		a->state = -1;
		if (--pending == 0)
			event_base_loopbreak(base);
		return;
	}
	a->state = 1;
	a->t0 = now_s();
	evhttp_make_request(a->conn,
			    new_req(on_acquired, a, "{\"slots\":1,\"task_types\":[\"bench\"],\"wait\":0}", NULL),
			    EVHTTP_REQ_POST, "/agent/leases");
}

static int submitted;

static void on_submitted(struct evhttp_request *r, void *arg)
{
	if (r == NULL || evhttp_request_get_response_code(r) != 201) {
		fprintf(stderr, "task batch failed: HTTP %d\n", r ? evhttp_request_get_response_code(r) : 0);
		errors++;
	} else {
		submitted += 5000;
	}
	if (--pending == 0)
		event_base_loopbreak(base);
}

/* ---- the floor: naive SQLite, one transaction (one fsync) per operation ----------------- */

static double sqlite_floor(double secs)
{
	char path[4096];
	sqlite3 *db = NULL;
	long n = 0;
	double t0, el;

	snprintf(path, sizeof(path), "%s/floor-%d.db", O.floor_dir, (int)getpid());
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return 0;
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			 "CREATE TABLE tasks(id INTEGER PRIMARY KEY, state TEXT, lease TEXT);"
			 "CREATE TABLE leases(id TEXT PRIMARY KEY, task INTEGER, state TEXT);",
		     NULL, NULL, NULL);
	for (int i = 0; i < 20000; i++) {
		char sql[200];

		snprintf(sql, sizeof(sql), "INSERT INTO tasks VALUES(%d,'queued',NULL)", i);
		if (i == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	t0 = now_s();
	while ((el = now_s() - t0) < secs) {
		char sql[300];

		/* acquire: one transaction */
		snprintf(sql, sizeof(sql),
			 "BEGIN IMMEDIATE; UPDATE tasks SET state='leased', lease='l%ld' WHERE id=%ld;"
			 "INSERT INTO leases VALUES('l%ld',%ld,'active'); COMMIT;",
			 n, n % 20000, n, n % 20000);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
		/* fenced complete: another */
		snprintf(sql, sizeof(sql),
			 "BEGIN IMMEDIATE; UPDATE leases SET state='done' WHERE id='l%ld' AND state='active';"
			 "UPDATE tasks SET state='succeeded' WHERE id=%ld; COMMIT;",
			 n, n % 20000);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
		n++;
	}
	sqlite3_close(db);
	unlink(path);
	snprintf(path, sizeof(path), "%s/floor-%d.db-wal", O.floor_dir, (int)getpid());
	unlink(path);
	snprintf(path, sizeof(path), "%s/floor-%d.db-shm", O.floor_dir, (int)getpid());
	unlink(path);
	return (double)n / el;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: bench-server-load --port P --ca CA --token OE --admin OA --server-pid PID\n"
		"       [--agents N] [--duration S] [--interval S] [--workers W] [--tasks M]\n"
		"       [--cycle-time S] [--cycles-alone] [--floor-dir DIR]\n");
	exit(2);
}

static void run(void)
{
	event_base_dispatch(base);
}

int main(int argc, char **argv)
{
	double t0, c0, s0, el, cpu_s, cpu_c;
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--cycles-alone") == 0) {
			O.cycles_alone = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--port") == 0)
			O.port = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--ca") == 0)
			O.ca = v;
		else if (strcmp(a, "--token") == 0)
			O.token = v;
		else if (strcmp(a, "--admin") == 0)
			O.admin = v;
		else if (strcmp(a, "--server-pid") == 0)
			O.server_pid = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--agents") == 0)
			O.agents = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--duration") == 0)
			O.duration = strtod(v, NULL);
		else if (strcmp(a, "--interval") == 0)
			O.interval = strtod(v, NULL);
		else if (strcmp(a, "--workers") == 0)
			O.workers = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--tasks") == 0)
			O.tasks = (int)strtol(v, NULL, 10);
		else if (strcmp(a, "--cycle-time") == 0)
			O.cycle_time = strtod(v, NULL);
		else if (strcmp(a, "--floor-dir") == 0)
			O.floor_dir = v;
		else
			usage();
	}
	if (O.port == 0 || O.ca == NULL || O.token == NULL || O.admin == NULL || O.agents < 1)
		usage();
	if (O.workers > O.agents)
		O.workers = O.agents;
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	base = event_base_new();
	ctx = SSL_CTX_new(TLS_client_method());
	if (base == NULL || ctx == NULL || SSL_CTX_load_verify_locations(ctx, O.ca, NULL) != 1) {
		fprintf(stderr, "bench: cannot set up TLS with CA %s\n", O.ca);
		return 1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	snprintf(heartbeat_body, sizeof(heartbeat_body),
		 "{\"state\":\"idle\",\"slots\":4,\"running\":[],\"versions\":{\"agent\":\"0.1.0\","
		 "\"plugins\":{\"http\":\"0.1.0\",\"ssh\":\"0.1.0\"}},\"health\":{\"status\":\"ok\","
		 "\"problems\":[],\"disk_free_bytes\":52613349376,\"inodes_free\":3276800,"
		 "\"workspace_writable\":true,\"last_error\":null}}");

	/* keys and CSRs (the agents' side of enrollment, not measured against the server) */
	agents = calloc((size_t)O.agents, sizeof(*agents));
	t0 = now_s();
	for (i = 0; i < O.agents; i++) {
		struct agent *a = &agents[i];
		X509_REQ *req = X509_REQ_new();
		BIO *bio = BIO_new(BIO_s_mem());
		char *pem = NULL, host[32];
		long n;
		cJSON *b = cJSON_CreateObject(), *pl, *p;

		a->idx = i;
		a->key = EVP_EC_gen("P-256");
		X509_REQ_set_pubkey(req, a->key);
		X509_REQ_sign(req, a->key, EVP_sha256());
		PEM_write_bio_X509_REQ(bio, req);
		n = BIO_get_mem_data(bio, &pem);
		snprintf(host, sizeof(host), "bench-%05d", i);
		cJSON_AddStringToObject(b, "token", O.token);
		cJSON_AddItemToObject(b, "csr", cJSON_CreateString(""));
		{
			char *csr = malloc((size_t)n + 1); /* BIO data: not NUL-terminated */

			memcpy(csr, pem, (size_t)n);
			csr[n] = '\0';

			cJSON_ReplaceItemInObject(b, "csr", cJSON_CreateString(csr));
			free(csr);
		}
		cJSON_AddStringToObject(b, "hostname", host);
		cJSON_AddStringToObject(b, "os", "linux");
		cJSON_AddStringToObject(b, "arch", "amd64");
		cJSON_AddStringToObject(b, "version", "0.1.0");
		pl = cJSON_AddArrayToObject(b, "plugins");
		p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "name", "bench");
		cJSON_AddStringToObject(p, "version", "0.1.0");
		cJSON_AddItemToObject(p, "types", cJSON_CreateStringArray((const char *[]){"bench"}, 1));
		cJSON_AddItemToArray(pl, p);
		a->csr_body = cJSON_PrintUnformatted(b);
		cJSON_Delete(b);
		BIO_free(bio);
		X509_REQ_free(req);
		a->timer = evtimer_new(base, on_timer, a);
	}
	printf("keys and CSRs for %d agents: %.1fs (client side)\n", O.agents, now_s() - t0);
	fflush(stdout);

	/* 1. enrollment over 16 connections */
	phase = 1;
	pending = 16;
	t0 = now_s();
	s0 = cpu_of(O.server_pid);
	for (i = 0; i < 16; i++)
		enroll_next(new_conn(NULL));
	run();
	el = now_s() - t0;
	cpu_s = cpu_of(O.server_pid) - s0;
	if (enrolled != O.agents) {
		fprintf(stderr, "bench: only %d of %d agents enrolled\n", enrolled, O.agents);
		return 1;
	}
	printf("enrollment: %d agents in %.1fs = %.0f/s over 16 connections; server CPU %.0f%%\n",
	       enrolled, el, enrolled / el, 100 * cpu_s / el);
	fflush(stdout);

	/* 2. connect: one keep-alive mTLS connection per agent (a full handshake each) */
	phase = 2;
	t0 = now_s();
	s0 = cpu_of(O.server_pid);
	connect_more();
	run();
	el = now_s() - t0;
	cpu_s = cpu_of(O.server_pid) - s0;
	printf("connect: %d mTLS connections + first heartbeat in %.1fs = %.0f handshakes/s "
	       "(200 at a time); server CPU %.0f%%; errors %d\n",
	       connected, el, connected / el, 100 * cpu_s / el, errors);
	fflush(stdout);

	/* 3. steady heartbeats: every agent every interval, spread evenly */
	phase = 3;
	srand(42);
	for (i = 0; i < O.agents; i++)
		schedule(&agents[i], O.interval * (double)rand() / RAND_MAX);
	measure_from = now_s() + O.interval; /* one interval to settle */
	measure_to = measure_from + O.duration;
	{
		struct timeval tv;
		double wait = O.interval;

		tv.tv_sec = (time_t)wait;
		tv.tv_usec = (suseconds_t)((wait - floor(wait)) * 1e6);
		event_base_loopexit(base, &tv);
		run(); /* settle */
		s0 = cpu_of(O.server_pid);
		c0 = cpu_of(0);
		t0 = now_s();
		tv.tv_sec = (time_t)O.duration;
		tv.tv_usec = (suseconds_t)((O.duration - floor(O.duration)) * 1e6);
		event_base_loopexit(base, &tv);
		run();
		el = now_s() - t0;
		cpu_s = cpu_of(O.server_pid) - s0;
		cpu_c = cpu_of(0) - c0;
	}
	printf("heartbeats: %d agents every %gs for %.0fs: %d heartbeats = %.0f/s; "
	       "p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; errors %d; "
	       "server CPU %.0f%% of one core, load generator %.0f%%\n",
	       O.agents, O.interval, el, hb_count, hb_count / el, pct(&hb_lat, 50), pct(&hb_lat, 90),
	       pct(&hb_lat, 99), pct(&hb_lat, 100), errors, 100 * cpu_s / el, 100 * cpu_c / el);
	fflush(stdout);

	/* 4. lease cycles: queue tasks, then W agents acquire + complete as fast as they can */
	if (O.tasks > 0 && O.workers > 0) {
		struct evhttp_connection *adm = new_conn(NULL);
		int batches = (O.tasks + 4999) / 5000;
		char *batch;
		cJSON *b = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(b, "tasks");

		for (i = 0; i < 5000; i++) {
			cJSON *t = cJSON_CreateObject();

			cJSON_AddStringToObject(t, "type", "bench");
			cJSON_AddItemToObject(t, "params", cJSON_CreateObject());
			cJSON_AddItemToArray(arr, t);
		}
		batch = cJSON_PrintUnformatted(b);
		cJSON_Delete(b);
		phase = 4;
		heartbeats_on = !O.cycles_alone;
		pending = batches;
		t0 = now_s();
		for (i = 0; i < batches; i++)
			evhttp_make_request(adm, new_req(on_submitted, NULL, batch, O.admin),
					    EVHTTP_REQ_POST, "/admin/tasks/batch");
		nodelay(adm);
		run();
		printf("queued %d tasks in %.1fs\n", submitted, now_s() - t0);
		free(batch);
		pending = O.workers;
		measure_from = now_s();
		measure_to = measure_from + O.cycle_time;
		s0 = cpu_of(O.server_pid);
		c0 = cpu_of(0);
		t0 = now_s();
		for (i = 0; i < O.workers; i++)
			cycle_step(&agents[i]);
		run();
		el = now_s() - t0;
		cpu_s = cpu_of(O.server_pid) - s0;
		cpu_c = cpu_of(0) - c0;
		printf("lease cycles: %d agents, acquire + complete: %ld cycles in %.1fs = %.0f cycles/s "
		       "(%s); acquire p50 %.1f ms p99 %.1f ms; complete p50 %.1f ms p99 %.1f ms; "
		       "errors %d; server CPU %.0f%%, load generator %.0f%%\n",
		       O.workers, cycles, el, cycles / el,
		       O.cycles_alone ? "heartbeats paused" : "heartbeats of all agents continuing",
		       pct(&acq_lat, 50), pct(&acq_lat, 99), pct(&done_lat, 50), pct(&done_lat, 99),
		       errors, 100 * cpu_s / el, 100 * cpu_c / el);
		fflush(stdout);
	}

	/* 5. the floor, same disk: a naive writer, one fsync per operation */
	printf("floor: naive SQLite (WAL, synchronous=FULL) lease + fenced complete, one "
	       "transaction each, one writer: %.0f cycles/s\n",
	       sqlite_floor(3));
	return errors > 0 ? 1 : 0;
}
