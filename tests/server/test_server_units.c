/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of outpost-server's parts: the storage interface on SQLite, the DB thread's
 * group commit (a failing job rolls back alone), settings, identity and signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the above first */
#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "canonjson.h"
#include "config.h"
#include "dbq.h"
#include "fsutil.h"
#include "pki.h"
#include "store.h"
#include "util.h"

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/outpost-unit-server.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static void rmdir_all(char *d)
{
	op_rm_rf(d, NULL);
	free(d);
}

/* ---- store ------------------------------------------------------------------------------- */

static cJSON *task(const char *id, int seq, const char *state, const char *type)
{
	cJSON *t = cJSON_CreateObject();

	cJSON_AddStringToObject(t, "id", id);
	cJSON_AddNumberToObject(t, "seq", seq);
	cJSON_AddStringToObject(t, "state", state);
	cJSON_AddStringToObject(t, "type", type);
	cJSON_AddItemToObject(t, "params", cJSON_Parse("{\"a\":[1,2,{\"b\":\"ü\"}]}"));
	cJSON_AddBoolToObject(t, "cancel_requested", false);
	cJSON_AddNumberToObject(t, "timeout", 1.5);
	return t;
}

static void test_store_crud(void **state)
{
	char *d = tmpdir();
	struct store *s = NULL;
	struct op_error err;
	cJSON *t, *got = NULL, *arr = NULL, *u, *v;
	int changed = -1;

	assert_int_equal(store_sqlite_open(d, true, &s, &err), OP_OK);
	assert_int_equal(s->ops->begin(s), OP_OK);
	for (int i = 0; i < 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "t%d", i);
		t = task(id, i, i < 3 ? "queued" : "leased", i % 2 ? "a" : "b");
		assert_int_equal(store_insert(s, T_TASKS, t), OP_OK);
		if (i == 0)
			assert_int_equal(store_insert(s, T_TASKS, t), OP_EEXIST);
		cJSON_Delete(t);
	}
	/* get: JSON, bool, real and null columns come back typed */
	assert_int_equal(store_get(s, T_TASKS, "t1", &got), OP_OK);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(
				    cJSON_GetObjectItem(cJSON_GetObjectItem(got, "params"), "a"), 2), "b")),
			    "ü");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(got, "cancel_requested")));
	assert_true(cJSON_GetObjectItem(got, "timeout")->valuedouble == 1.5);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(got, "pool")));
	cJSON_Delete(got);
	assert_int_equal(store_get(s, T_TASKS, "nope", &got), OP_ENOENT);
	/* a subset of columns */
	{
		static const char *const cols[] = {"id", "state", NULL};
		static const char *const bad[] = {"id", "no_such_column", NULL};

		assert_int_equal(store_get_cols(s, T_TASKS, "t2", cols, &got), OP_OK);
		assert_int_equal(cJSON_GetArraySize(got), 2);
		cJSON_Delete(got);
		assert_int_equal(store_get_cols(s, T_TASKS, "t2", bad, &got), OP_EINVAL);
	}
	/* conditional update: the fence */
	u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "state", "leased");
	v = cJSON_CreateString("queued");
	{
		struct store_cond c = {"state", SO_EQ, v};

		assert_int_equal(s->ops->update(s, T_TASKS, "t0", u, &c, 1, &changed), OP_OK);
		assert_int_equal(changed, 1);
		assert_int_equal(s->ops->update(s, T_TASKS, "t0", u, &c, 1, &changed), OP_OK);
		assert_int_equal(changed, 0);
	}
	cJSON_Delete(u);
	/* select: conditions, IN, order, limit, offset */
	{
		cJSON *types = cJSON_Parse("[\"a\",\"b\"]");
		struct store_cond c[2] = {{"state", SO_EQ, v}, {"type", SO_IN, types}};
		struct store_query q = {c, 2, "seq", true, 10, 0, NULL};

		assert_int_equal(s->ops->select(s, T_TASKS, &q, &arr), OP_OK);
		assert_int_equal(cJSON_GetArraySize(arr), 2); /* t1, t2 still queued */
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "id")), "t2");
		cJSON_Delete(arr);
		q.limit = 1;
		q.offset = 1;
		assert_int_equal(s->ops->select(s, T_TASKS, &q, &arr), OP_OK);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "id")), "t1");
		cJSON_Delete(arr);
		q.order = "no_such_column";
		assert_int_equal(s->ops->select(s, T_TASKS, &q, &arr), OP_EINVAL);
		cJSON_Delete(types);
	}
	/* count grouped */
	assert_int_equal(s->ops->count(s, T_TASKS, NULL, 0, "state", &got), OP_OK);
	assert_int_equal(cJSON_GetObjectItem(got, "queued")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(got, "leased")->valueint, 3);
	cJSON_Delete(got);
	/* integer keys are assigned; unique columns clash */
	{
		int64_t id1 = 0, id2 = 0;
		cJSON *a = cJSON_Parse("{\"at\":1,\"actor\":\"x\",\"action\":\"y\"}");

		assert_int_equal(s->ops->insert(s, T_AUDIT, a, &id1), OP_OK);
		assert_int_equal(s->ops->insert(s, T_AUDIT, a, &id2), OP_OK);
		assert_true(id2 == id1 + 1);
		cJSON_Delete(a);
		a = cJSON_Parse("{\"name\":\"n1\",\"hash\":\"h\"}");
		assert_int_equal(store_insert(s, T_ADMIN_TOKENS, a), OP_OK);
		cJSON_ReplaceItemInObject(a, "name", cJSON_CreateString("n2"));
		assert_int_equal(store_insert(s, T_ADMIN_TOKENS, a), OP_EEXIST);
		cJSON_Delete(a);
	}
	/* meta */
	{
		char *val = NULL;

		assert_int_equal(store_meta_set(s, "k", "v1"), OP_OK);
		assert_int_equal(store_meta_set(s, "k", "v2"), OP_OK);
		assert_int_equal(store_meta_get(s, "k", &val), OP_OK);
		assert_string_equal(val, "v2");
		free(val);
	}
	/* remove needs a condition */
	{
		struct store_cond c = {"state", SO_EQ, v};

		assert_int_equal(s->ops->remove(s, T_TASKS, NULL, 0, &changed), OP_EINVAL);
		assert_int_equal(s->ops->remove(s, T_TASKS, &c, 1, &changed), OP_OK);
		assert_int_equal(changed, 2);
	}
	cJSON_Delete(v);
	assert_int_equal(s->ops->commit(s), OP_OK);
	/* a newer schema is refused */
	assert_int_equal(s->ops->begin(s), OP_OK);
	assert_int_equal(store_meta_set(s, "schema_version", "99"), OP_OK);
	assert_int_equal(s->ops->commit(s), OP_OK);
	s->ops->close(s);
	assert_int_equal(store_sqlite_open(d, false, &s, &err), OP_EINVAL);
	assert_non_null(strstr(err.msg, "newer than this outpost-server knows"));
	rmdir_all(d);
}

/* ---- the DB thread ------------------------------------------------------------------------ */

struct tj {
	struct dbjob job;
	int n;
	bool fail;
	bool done;
	bool after_ran;
	int *remaining;
	struct event_base *base;
};

static void tj_run(struct dbjob *j, struct store *s)
{
	struct tj *t = (struct tj *)j;
	char id[16];
	cJSON *rec;

	snprintf(id, sizeof(id), "j%d", t->n);
	rec = task(id, t->n, "queued", "x");
	store_insert(s, T_TASKS, rec);
	cJSON_Delete(rec);
	if (t->fail)
		j->failed = true; /* after writing: the savepoint must undo it */
}

static void tj_after(struct dbjob *j, struct store *s)
{
	struct tj *t = (struct tj *)j;
	char id[16];
	cJSON *rec;

	snprintf(id, sizeof(id), "after%d", t->n);
	rec = task(id, 100 + t->n, "queued", "x");
	store_insert(s, T_TASKS, rec);
	cJSON_Delete(rec);
	t->after_ran = true;
}

static void tj_done(struct dbjob *j)
{
	struct tj *t = (struct tj *)j;

	t->done = true;
	if (--*t->remaining == 0)
		event_base_loopbreak(t->base);
}

static void never(evutil_socket_t fd, short what, void *arg)
{
	fail_msg("the DB thread did not answer within 30 s");
}

static void test_group_commit(void **state)
{
	char *d = tmpdir();
	struct store *s = NULL;
	struct op_error err;
	struct event_base *base;
	struct dbq *q = NULL;
	struct tj jobs[50];
	int remaining = 50;
	cJSON *got = NULL;
	struct dbq_stats st;

	evthread_use_pthreads();
	base = event_base_new();
	assert_int_equal(store_sqlite_open(d, true, &s, &err), OP_OK);
	assert_int_equal(dbq_start(&q, s, base, NULL, NULL, &err), OP_OK);
	for (int i = 0; i < 50; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].n = i;
		jobs[i].fail = i == 7;
		jobs[i].remaining = &remaining;
		jobs[i].base = base;
		jobs[i].job.run = tj_run;
		jobs[i].job.done = tj_done;
		jobs[i].job.after = i == 7 ? tj_after : NULL;
		dbq_submit(q, &jobs[i].job);
	}
	{
		/* the loop needs an event of its own to wait on (the server has its listener) */
		struct event *keep = event_new(base, -1, EV_PERSIST, never, NULL);
		struct timeval tv = {30, 0};

		event_add(keep, &tv);
		event_base_dispatch(base);
		event_free(keep);
	}
	for (int i = 0; i < 50; i++) {
		assert_true(jobs[i].done);
		assert_false(jobs[i].job.store_error);
	}
	dbq_get_stats(q, &st);
	assert_int_equal(st.jobs, 50);
	assert_true(st.batches <= 50);
	dbq_stop(q);
	/* every write but the failed job's is there; the failed job's after hook is */
	for (int i = 0; i < 50; i++) {
		char id[16];

		snprintf(id, sizeof(id), "j%d", i);
		assert_int_equal(store_get(s, T_TASKS, id, &got), i == 7 ? OP_ENOENT : OP_OK);
		cJSON_Delete(got);
		got = NULL;
	}
	assert_true(jobs[7].after_ran);
	assert_int_equal(store_get(s, T_TASKS, "after7", &got), OP_OK);
	cJSON_Delete(got);
	/* dbq_run_now: a failing job leaves nothing */
	{
		struct tj one;

		memset(&one, 0, sizeof(one));
		one.n = 99;
		one.fail = true;
		one.job.run = tj_run;
		assert_int_equal(dbq_run_now(s, &one.job), OP_EINVAL);
		assert_int_equal(store_get(s, T_TASKS, "j99", &got), OP_ENOENT);
	}
	s->ops->close(s);
	event_base_free(base);
	rmdir_all(d);
}

/* ---- settings ----------------------------------------------------------------------------- */

static void test_config(void **state)
{
	char *d = tmpdir();
	char path[4200];
	struct srv_config c;
	struct op_error err;
	FILE *f;

	snprintf(path, sizeof(path), "%s/s.yaml", d);
	srv_config_defaults(&c);
	assert_true(c.heartbeat_interval == 15 && c.lease_ttl == 60 && c.long_poll == 25);
	assert_true(c.cert_validity == 30 * 86400.0);
	assert_int_equal(srv_config_load(&c, path, true, &err), OP_OK); /* missing: fine */
	f = fopen(path, "w");
	fprintf(f, "heartbeat_interval: 500ms\nlease_ttl: 2s\nmax_body: 64KiB\nallow_self_approval: yes\n");
	fclose(f);
	assert_int_equal(srv_config_load(&c, path, false, &err), OP_OK);
	assert_int_equal(srv_config_finish(&c, &err), OP_OK);
	assert_true(c.heartbeat_interval == 0.5 && c.lease_ttl == 2 && c.max_body == 65536);
	assert_true(c.allow_self_approval);
	assert_true(c.offline_after == 1.5 && c.restart_lease_grace == 4 && c.idle_timeout == 90);
	f = fopen(path, "w");
	fprintf(f, "lease_ttl: 2s\nleese_ttl: 3s\n");
	fclose(f);
	assert_int_equal(srv_config_load(&c, path, false, &err), OP_EINVAL);
	assert_non_null(strstr(err.msg, "s.yaml:2: unknown setting \"leese_ttl\""));
	f = fopen(path, "w");
	fprintf(f, "lease_ttl: [1]\n");
	fclose(f);
	assert_int_equal(srv_config_load(&c, path, false, &err), OP_EINVAL);
	assert_non_null(strstr(err.msg, "expected a single value"));
	assert_int_equal(srv_config_set(&c, "long-poll", "26s", &err), OP_OK);
	assert_int_equal(srv_config_finish(&c, &err), OP_EINVAL);
	assert_int_equal(srv_config_set(&c, "long-poll", "soon", &err), OP_EINVAL);
	assert_false(srv_config_is_key("nope"));
	assert_true(srv_config_is_key("heartbeat-interval"));
	rmdir_all(d);
}

/* ---- identity ----------------------------------------------------------------------------- */

static X509_REQ *csr_for(EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();

	X509_REQ_set_pubkey(req, key);
	X509_REQ_sign(req, key, EVP_sha256());
	return req;
}

static char *csr_pem(X509_REQ *req)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_X509_REQ(b, req);
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n + 1); /* the BIO's data is not NUL-terminated: no strndup */
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	return out;
}

static void test_pki(void **state)
{
	char *d = tmpdir(), *d2 = tmpdir();
	const char *hosts[] = {"cp.example.com", "10.0.0.1"};
	struct pki p, other;
	struct op_error err;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_REQ *req = csr_for(key), *parsed = NULL;
	char *pem = csr_pem(req), *cert_pem = NULL, serial[65], msg[300], hash[65], cn[80];
	char serial2[65];
	int64_t nb, na, nb2, na2;
	BIO *b;
	X509 *cert;

	assert_int_equal(pki_create(d, hosts, 2, 30, &err), OP_OK);
	assert_int_equal(pki_load(&p, d, &err), OP_OK);
	assert_int_equal(pki_create(d2, NULL, 0, 30, &err), OP_OK);
	assert_int_equal(pki_load(&other, d2, &err), OP_OK);
	/* CSR checks */
	assert_int_equal(pki_csr_check(pem, &parsed, hash, msg, sizeof(msg)), 0);
	assert_int_equal(strlen(hash), 64);
	X509_REQ_free(parsed);
	assert_int_equal(pki_csr_check("junk", &parsed, hash, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "not PEM"));
	{
		EVP_PKEY *rsa = EVP_RSA_gen(1024);
		X509_REQ *r2 = csr_for(rsa);
		char *p2 = csr_pem(r2);

		assert_int_equal(pki_csr_check(p2, &parsed, hash, msg, sizeof(msg)), -1);
		assert_non_null(strstr(msg, "RSA with 1024 bits"));
		free(p2);
		X509_REQ_free(r2);
		EVP_PKEY_free(rsa);
	}
	/* issue, then verify against our CA and not another's */
	assert_int_equal(pki_issue_client(&p, req, "agt_unit", 3600, &cert_pem, serial, &nb, &na), 0);
	assert_true(na - nb == 3600 * 1000);
	b = BIO_new_mem_buf(cert_pem, -1);
	cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(cert);
	assert_int_equal(pki_verify_peer(&p, cert, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(pki_verify_peer(&other, cert, NULL, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "not from this server's CA"));
	assert_int_equal(pki_cert_fields(cert, cn, sizeof(cn), serial2, &nb2, &na2), 0);
	assert_string_equal(cn, "agt_unit");
	assert_string_equal(serial, serial2);
	assert_true(nb == nb2 && na == na2);
	X509_free(cert);
	/* approval signatures over canonical JSON */
	{
		cJSON *payload = cJSON_Parse("{\"b\":1,\"a\":[\"x\",{\"d\":2,\"c\":null}]}");
		struct op_buf canon = OP_BUF_INIT;
		char *sig = NULL;

		assert_int_equal(op_json_canonical(payload, &canon), 0);
		assert_string_equal(canon.data, "{\"a\":[\"x\",{\"c\":null,\"d\":2}],\"b\":1}");
		assert_int_equal(pki_sign_approval(&p, canon.data, canon.len, &sig), 0);
		assert_int_equal(pki_verify_approval(p.approval_pub_pem, canon.data, canon.len, sig), 0);
		assert_int_equal(pki_verify_approval(other.approval_pub_pem, canon.data, canon.len, sig), -1);
		canon.data[2] = 'z';
		assert_int_equal(pki_verify_approval(p.approval_pub_pem, canon.data, canon.len, sig), -1);
		free(sig);
		op_buf_release(&canon);
		cJSON_Delete(payload);
	}
	{
		struct stat st;
		char path[4200];

		snprintf(path, sizeof(path), "%s/%s", d, PKI_APPROVAL_KEY);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	free(cert_pem);
	free(pem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	pki_release(&p);
	pki_release(&other);
	rmdir_all(d);
	rmdir_all(d2);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void test_util(void **state)
{
	char t[40], id[40];
	int64_t ms;

	srv_fmt_time(1795398574610LL, t, sizeof(t));
	assert_string_equal(t, "2026-11-23T01:49:34.610Z");
	assert_int_equal(srv_parse_time(t, &ms), 0);
	assert_true(ms == 1795398574610LL);
	assert_int_equal(srv_parse_time("2026-11-23T01:49:34Z", &ms), 0);
	assert_true(ms == 1795398574000LL);
	assert_int_equal(srv_parse_time("yesterday", &ms), -1);
	assert_int_equal(srv_random_id("agt_", 16, id, sizeof(id)), 0);
	assert_int_equal(strlen(id), 20);
	assert_true(srv_token_shape_ok("oe_0123456789abcdefghijABCDEFGHIJ", "oe_"));
	assert_false(srv_token_shape_ok("oe_short", "oe_"));
	assert_false(srv_token_shape_ok("oa_0123456789abcdefghijABCDEFGHIJ", "oe_"));
	assert_false(srv_token_shape_ok("oe_0123456789abcdefghij-BCDEFGHIJ", "oe_"));
	{
		cJSON *a = srv_split_csv(" a, b ,,a,c ");
		char *s = cJSON_PrintUnformatted(a);

		assert_string_equal(s, "[\"a\",\"b\",\"c\"]");
		cJSON_free(s);
		cJSON_Delete(a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_crud), cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_config),	   cmocka_unit_test(test_pki),
		cmocka_unit_test(test_util),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
