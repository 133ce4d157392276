/* SPDX-License-Identifier: Apache-2.0 */
/* The SQLite backend of the storage interface: WAL, synchronous=FULL, cached statements. */
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "jsonprint.h"
#include "store.h"

#define CACHE_SLOTS 512

struct stmt_slot {
	char *sql;
	sqlite3_stmt *stmt;
};

struct sq {
	struct store base;
	sqlite3 *db;
	char path[PATH_MAX];
	struct stmt_slot cache[CACHE_SLOTS];
	size_t cached;
	/* the checkpointer (start_background) */
	pthread_t ckpt;
	bool ckpt_running;
	bool ckpt_stop;
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_cond;
};

static op_rc sq_fail(struct sq *q, int code)
{
	snprintf(q->base.errmsg, sizeof(q->base.errmsg), "sqlite: %s", sqlite3_errmsg(q->db));
	switch (code & 0xff) {
	case SQLITE_CONSTRAINT:
		return OP_EEXIST;
	case SQLITE_FULL:
		return OP_ENOSPC;
	case SQLITE_NOMEM:
		return OP_ENOMEM;
	default:
		return OP_EIO;
	}
}

static op_rc sq_exec(struct sq *q, const char *sql)
{
	int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? OP_OK : sq_fail(q, rc);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void cache_clear(struct sq *q)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		sqlite3_finalize(q->cache[i].stmt);
		free(q->cache[i].sql);
		q->cache[i].stmt = NULL;
		q->cache[i].sql = NULL;
	}
	q->cached = 0;
}

/* A prepared statement for SQL, from the cache when it was seen before; reset and unbound. */
static sqlite3_stmt *prepare(struct sq *q, const char *sql, op_rc *rc)
{
	size_t i = hash_str(sql) % CACHE_SLOTS;
	sqlite3_stmt *st = NULL;
	int r;

	for (size_t n = 0; n < CACHE_SLOTS; n++, i = (i + 1) % CACHE_SLOTS) {
		if (q->cache[i].sql == NULL)
			break;
		if (strcmp(q->cache[i].sql, sql) == 0) {
			sqlite3_reset(q->cache[i].stmt);
			sqlite3_clear_bindings(q->cache[i].stmt);
			return q->cache[i].stmt;
		}
	}
	r = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (r != SQLITE_OK) {
		*rc = sq_fail(q, r);
		return NULL;
	}
	if (q->cached >= CACHE_SLOTS * 3 / 4)
		cache_clear(q);
	i = hash_str(sql) % CACHE_SLOTS;
	while (q->cache[i].sql != NULL)
		i = (i + 1) % CACHE_SLOTS;
	q->cache[i].sql = strdup(sql);
	if (q->cache[i].sql == NULL) {
		sqlite3_finalize(st);
		*rc = OP_ENOMEM;
		return NULL;
	}
	q->cache[i].stmt = st;
	q->cached++;
	return st;
}

static int bind_value(sqlite3_stmt *st, int idx, enum store_type type, const cJSON *v)
{
	if (v == NULL || cJSON_IsNull(v))
		return sqlite3_bind_null(st, idx);
	switch (type) {
	case ST_JSON: {
		char *text = op_json_print(v, false);
		int r;

		if (text == NULL)
			return SQLITE_NOMEM;
		r = sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
		cJSON_free(text);
		return r;
	}
	case ST_BOOL:
		return sqlite3_bind_int(st, idx, cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0));
	case ST_INT:
		if (cJSON_IsNumber(v))
			return sqlite3_bind_int64(st, idx, (sqlite3_int64)v->valuedouble);
		if (cJSON_IsString(v))
			return sqlite3_bind_int64(st, idx, strtoll(v->valuestring, NULL, 10));
		return sqlite3_bind_int(st, idx, cJSON_IsTrue(v));
	case ST_REAL:
		if (cJSON_IsNumber(v))
			return sqlite3_bind_double(st, idx, v->valuedouble);
		return sqlite3_bind_null(st, idx);
	case ST_TEXT:
	default:
		if (cJSON_IsString(v))
			return sqlite3_bind_text(st, idx, v->valuestring, -1, SQLITE_TRANSIENT);
		if (cJSON_IsNumber(v)) {
			char num[64];

			snprintf(num, sizeof(num), "%.17g", v->valuedouble);
			return sqlite3_bind_text(st, idx, num, -1, SQLITE_TRANSIENT);
		}
		return sqlite3_bind_text(st, idx, cJSON_IsTrue(v) ? "true" : "false", -1,
					 SQLITE_STATIC);
	}
}

#define MAX_COLS 64

/* The columns to read: COLS (NULL-terminated names) or, when NULL, all of T's. Returns how
 * many, or -1 for an unknown name. */
static int resolve_cols(enum store_tab t, const char *const *cols,
			const struct store_column **out)
{
	const struct store_table *tab = &store_tables[t];
	int n = 0;

	if (cols == NULL) {
		for (size_t i = 0; i < tab->ncols && i < MAX_COLS; i++)
			out[n++] = &tab->cols[i];
		return n;
	}
	for (; *cols && n < MAX_COLS; cols++) {
		out[n] = store_column(t, *cols);
		if (out[n] == NULL)
			return -1;
		n++;
	}
	return n;
}

static void col_list(struct op_buf *b, const struct store_column *const *cols, int n)
{
	for (int i = 0; i < n; i++) {
		op_buf_puts(b, i ? ",\"" : "\"");
		op_buf_puts(b, cols[i]->name);
		op_buf_puts(b, "\"");
	}
}

static cJSON *row_to_object(sqlite3_stmt *st, const struct store_column *const *cols, int ncols)
{
	cJSON *obj = cJSON_CreateObject();

	for (int i = 0; obj && i < ncols; i++) {
		const struct store_column *c = cols[i];
		int ct = sqlite3_column_type(st, (int)i);
		cJSON *v = NULL;

		if (ct == SQLITE_NULL) {
			v = cJSON_CreateNull();
		} else {
			switch (c->type) {
			case ST_INT:
				v = cJSON_CreateNumber((double)sqlite3_column_int64(st, (int)i));
				break;
			case ST_REAL:
				v = cJSON_CreateNumber(sqlite3_column_double(st, (int)i));
				break;
			case ST_BOOL:
				v = cJSON_CreateBool(sqlite3_column_int(st, (int)i) != 0);
				break;
			case ST_JSON:
				v = cJSON_Parse((const char *)sqlite3_column_text(st, (int)i));
				if (v == NULL)
					v = cJSON_CreateNull();
				break;
			case ST_TEXT:
			default:
				v = cJSON_CreateString((const char *)sqlite3_column_text(st, (int)i));
				break;
			}
		}
		if (v == NULL) {
			cJSON_Delete(obj);
			return NULL;
		}
		cJSON_AddItemToObject(obj, c->name, v);
	}
	return obj;
}

static const char *op_sql(enum store_op op)
{
	static const char *const ops[] = {"=", "<>", "<", "<=", ">", ">="};

	return op <= SO_GE ? ops[op] : "=";
}

/* Appends " AND ..." for CONDS; returns -1 on an unknown column. */
static int where_sql(struct op_buf *b, enum store_tab t, const struct store_cond *conds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct store_cond *c = &conds[i];

		if (store_column(t, c->col) == NULL)
			return -1;
		op_buf_printf(b, " AND \"%s\"", c->col);
		if (c->op == SO_NULL) {
			op_buf_puts(b, " IS NULL");
		} else if (c->op == SO_NOTNULL) {
			op_buf_puts(b, " IS NOT NULL");
		} else if (c->op == SO_IN) {
			int k = cJSON_GetArraySize(c->value);

			op_buf_puts(b, " IN (");
			for (int j = 0; j < k; j++)
				op_buf_puts(b, j ? ",?" : "?");
			op_buf_puts(b, ")");
		} else {
			op_buf_printf(b, " %s ?", op_sql(c->op));
		}
	}
	return 0;
}

static int bind_conds(sqlite3_stmt *st, int idx, enum store_tab t, const struct store_cond *conds,
		      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct store_cond *c = &conds[i];
		enum store_type type = store_column(t, c->col)->type;

		if (c->op == SO_NULL || c->op == SO_NOTNULL)
			continue;
		if (type == ST_JSON)
			type = ST_TEXT;
		if (c->op == SO_IN) {
			const cJSON *v;

			cJSON_ArrayForEach(v, c->value)
			{
				if (bind_value(st, idx++, type, v) != SQLITE_OK)
					return -1;
			}
		} else if (bind_value(st, idx++, type, c->value) != SQLITE_OK) {
			return -1;
		}
	}
	return idx;
}

static op_rc bind_key(sqlite3_stmt *st, int idx, const struct store_table *tab, const char *key)
{
	int r = tab->int_key ? sqlite3_bind_int64(st, idx, strtoll(key, NULL, 10))
			     : sqlite3_bind_text(st, idx, key, -1, SQLITE_TRANSIENT);

	return r == SQLITE_OK ? OP_OK : OP_ENOMEM;
}

static op_rc sq_get(struct store *s, enum store_tab t, const char *key, const char *const *want,
		     cJSON **out)
{
	struct sq *q = (struct sq *)s;
	const struct store_table *tab = &store_tables[t];
	const struct store_column *cols[MAX_COLS];
	struct op_buf sql = OP_BUF_INIT;
	sqlite3_stmt *st;
	op_rc rc = OP_OK;
	int r, ncols = resolve_cols(t, want, cols);

	*out = NULL;
	if (ncols <= 0)
		return OP_EINVAL;
	op_buf_puts(&sql, "SELECT ");
	col_list(&sql, cols, ncols);
	op_buf_printf(&sql, " FROM \"%s\" WHERE \"%s\"=?", tab->name, tab->key);
	if (sql.data == NULL)
		return OP_ENOMEM;
	st = prepare(q, sql.data, &rc);
	if (st == NULL)
		goto out;
	if ((rc = bind_key(st, 1, tab, key)) != OP_OK)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*out = row_to_object(st, cols, ncols);
		rc = *out ? OP_OK : OP_ENOMEM;
	} else if (r == SQLITE_DONE) {
		rc = OP_ENOENT;
	} else {
		rc = sq_fail(q, r);
	}
	sqlite3_reset(st);
out:
	op_buf_release(&sql);
	return rc;
}

static op_rc sq_insert(struct store *s, enum store_tab t, const cJSON *rec, int64_t *new_id)
{
	struct sq *q = (struct sq *)s;
	const struct store_table *tab = &store_tables[t];
	struct op_buf sql = OP_BUF_INIT, vals = OP_BUF_INIT;
	const cJSON *v;
	sqlite3_stmt *st;
	op_rc rc = OP_OK;
	int n = 0, r;

	op_buf_printf(&sql, "INSERT INTO \"%s\"(", tab->name);
	cJSON_ArrayForEach(v, rec)
	{
		if (store_column(t, v->string) == NULL) {
			snprintf(s->errmsg, sizeof(s->errmsg), "no column %s in %s", v->string,
				 tab->name);
			rc = OP_EINVAL;
			goto out;
		}
		op_buf_printf(&sql, "%s\"%s\"", n ? "," : "", v->string);
		op_buf_puts(&vals, n ? ",?" : "?");
		n++;
	}
	op_buf_printf(&sql, ") VALUES(%s)", vals.data ? vals.data : "");
	if (sql.data == NULL) {
		rc = OP_ENOMEM;
		goto out;
	}
	st = prepare(q, sql.data, &rc);
	if (st == NULL)
		goto out;
	n = 1;
	cJSON_ArrayForEach(v, rec)
	{
		if (bind_value(st, n++, store_column(t, v->string)->type, v) != SQLITE_OK) {
			rc = OP_ENOMEM;
			goto out;
		}
	}
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		rc = sq_fail(q, r);
	else if (new_id)
		*new_id = sqlite3_last_insert_rowid(q->db);
	sqlite3_reset(st);
out:
	op_buf_release(&sql);
	op_buf_release(&vals);
	return rc;
}

static op_rc sq_update(struct store *s, enum store_tab t, const char *key, const cJSON *fields,
		       const struct store_cond *conds, size_t nconds, int *changed)
{
	struct sq *q = (struct sq *)s;
	const struct store_table *tab = &store_tables[t];
	struct op_buf sql = OP_BUF_INIT;
	const cJSON *v;
	sqlite3_stmt *st;
	op_rc rc = OP_OK;
	int n = 0, r;

	if (changed)
		*changed = 0;
	op_buf_printf(&sql, "UPDATE \"%s\" SET ", tab->name);
	cJSON_ArrayForEach(v, fields)
	{
		if (store_column(t, v->string) == NULL) {
			snprintf(s->errmsg, sizeof(s->errmsg), "no column %s in %s", v->string,
				 tab->name);
			rc = OP_EINVAL;
			goto out;
		}
		op_buf_printf(&sql, "%s\"%s\"=?", n ? "," : "", v->string);
		n++;
	}
	if (n == 0)
		goto out;
	op_buf_printf(&sql, " WHERE \"%s\"=?", tab->key);
	if (where_sql(&sql, t, conds, nconds) < 0) {
		rc = OP_EINVAL;
		goto out;
	}
	if (sql.data == NULL) {
		rc = OP_ENOMEM;
		goto out;
	}
	st = prepare(q, sql.data, &rc);
	if (st == NULL)
		goto out;
	n = 1;
	cJSON_ArrayForEach(v, fields)
	{
		if (bind_value(st, n++, store_column(t, v->string)->type, v) != SQLITE_OK) {
			rc = OP_ENOMEM;
			goto out;
		}
	}
	if (bind_key(st, n++, tab, key) != OP_OK || bind_conds(st, n, t, conds, nconds) < 0) {
		rc = OP_ENOMEM;
		goto out;
	}
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		rc = sq_fail(q, r);
	else if (changed)
		*changed = sqlite3_changes(q->db);
	sqlite3_reset(st);
out:
	op_buf_release(&sql);
	return rc;
}

static op_rc sq_remove(struct store *s, enum store_tab t, const struct store_cond *conds,
		       size_t nconds, int *changed)
{
	struct sq *q = (struct sq *)s;
	struct op_buf sql = OP_BUF_INIT;
	sqlite3_stmt *st;
	op_rc rc = OP_OK;
	int r;

	if (changed)
		*changed = 0;
	if (nconds == 0)
		return OP_EINVAL;
	op_buf_printf(&sql, "DELETE FROM \"%s\" WHERE 1", store_tables[t].name);
	if (where_sql(&sql, t, conds, nconds) < 0) {
		rc = OP_EINVAL;
		goto out;
	}
	st = sql.data ? prepare(q, sql.data, &rc) : NULL;
	if (st == NULL)
		goto out;
	if (bind_conds(st, 1, t, conds, nconds) < 0) {
		rc = OP_ENOMEM;
		goto out;
	}
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		rc = sq_fail(q, r);
	else if (changed)
		*changed = sqlite3_changes(q->db);
	sqlite3_reset(st);
out:
	op_buf_release(&sql);
	return rc;
}

static op_rc sq_select(struct store *s, enum store_tab t, const struct store_query *qy,
		       cJSON **out)
{
	struct sq *q = (struct sq *)s;
	const struct store_table *tab = &store_tables[t];
	const struct store_column *cols[MAX_COLS];
	struct op_buf sql = OP_BUF_INIT;
	sqlite3_stmt *st;
	cJSON *arr = NULL;
	op_rc rc = OP_OK;
	int r, idx, ncols = resolve_cols(t, qy->cols, cols);

	*out = NULL;
	if (ncols <= 0)
		return OP_EINVAL;
	op_buf_puts(&sql, "SELECT ");
	col_list(&sql, cols, ncols);
	op_buf_printf(&sql, " FROM \"%s\" WHERE 1", tab->name);
	if (where_sql(&sql, t, qy->conds, qy->nconds) < 0 ||
	    (qy->order && store_column(t, qy->order) == NULL)) {
		rc = OP_EINVAL;
		goto out;
	}
	op_buf_printf(&sql, " ORDER BY \"%s\"%s", qy->order ? qy->order : tab->key,
		      qy->desc ? " DESC" : "");
	if (qy->limit > 0)
		op_buf_printf(&sql, " LIMIT %d OFFSET %d", qy->limit, qy->offset > 0 ? qy->offset : 0);
	st = sql.data ? prepare(q, sql.data, &rc) : NULL;
	if (st == NULL)
		goto out;
	idx = bind_conds(st, 1, t, qy->conds, qy->nconds);
	arr = cJSON_CreateArray();
	if (idx < 0 || arr == NULL) {
		rc = OP_ENOMEM;
		goto out;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *row = row_to_object(st, cols, ncols);

		if (row == NULL) {
			rc = OP_ENOMEM;
			break;
		}
		cJSON_AddItemToArray(arr, row);
	}
	if (rc == OP_OK && r != SQLITE_DONE)
		rc = sq_fail(q, r);
	sqlite3_reset(st);
out:
	op_buf_release(&sql);
	if (rc == OP_OK)
		*out = arr;
	else
		cJSON_Delete(arr);
	return rc;
}

static op_rc sq_count(struct store *s, enum store_tab t, const struct store_cond *conds,
		      size_t nconds, const char *by, cJSON **out)
{
	struct sq *q = (struct sq *)s;
	struct op_buf sql = OP_BUF_INIT;
	sqlite3_stmt *st;
	cJSON *obj = NULL;
	op_rc rc = OP_OK;
	int r;

	*out = NULL;
	if (by && store_column(t, by) == NULL)
		return OP_EINVAL;
	if (by)
		op_buf_printf(&sql, "SELECT \"%s\", COUNT(*) FROM \"%s\" WHERE 1", by,
			      store_tables[t].name);
	else
		op_buf_printf(&sql, "SELECT 'count', COUNT(*) FROM \"%s\" WHERE 1",
			      store_tables[t].name);
	if (where_sql(&sql, t, conds, nconds) < 0) {
		rc = OP_EINVAL;
		goto out;
	}
	if (by)
		op_buf_printf(&sql, " GROUP BY \"%s\"", by);
	st = sql.data ? prepare(q, sql.data, &rc) : NULL;
	if (st == NULL)
		goto out;
	obj = cJSON_CreateObject();
	if (obj == NULL || bind_conds(st, 1, t, conds, nconds) < 0) {
		rc = OP_ENOMEM;
		goto out;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		cJSON_AddNumberToObject(obj, k ? k : "null", (double)sqlite3_column_int64(st, 1));
	}
	if (r != SQLITE_DONE)
		rc = sq_fail(q, r);
	sqlite3_reset(st);
out:
	op_buf_release(&sql);
	if (rc == OP_OK)
		*out = obj;
	else
		cJSON_Delete(obj);
	return rc;
}

/* Transaction control through cached statements: two per job (savepoint, release) add up. */
static op_rc sq_step_cached(struct sq *q, const char *sql)
{
	op_rc rc = OP_OK;
	sqlite3_stmt *st = prepare(q, sql, &rc);
	int r;

	if (st == NULL)
		return rc;
	r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE || r == SQLITE_ROW ? OP_OK : sq_fail(q, r);
}

static op_rc sq_begin(struct store *s)
{
	return sq_step_cached((struct sq *)s, "BEGIN IMMEDIATE");
}

static op_rc sq_commit(struct store *s)
{
	return sq_step_cached((struct sq *)s, "COMMIT");
}

static op_rc sq_rollback(struct store *s)
{
	return sq_step_cached((struct sq *)s, "ROLLBACK");
}

static op_rc sq_savepoint(struct store *s)
{
	return sq_step_cached((struct sq *)s, "SAVEPOINT job");
}

static op_rc sq_release(struct store *s)
{
	return sq_step_cached((struct sq *)s, "RELEASE job");
}

static op_rc sq_rollback_to(struct store *s)
{
	op_rc rc = sq_step_cached((struct sq *)s, "ROLLBACK TO job");

	if (rc == OP_OK)
		rc = sq_step_cached((struct sq *)s, "RELEASE job");
	return rc;
}

/* Copies the last committed state through a connection of its own (WAL lets it read while the
 * server writes). */
static op_rc sq_backup(struct store *s, const char *path, struct op_error *err)
{
	struct sq *q = (struct sq *)s;
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	op_rc rc = OP_OK;
	int r;

	if (sqlite3_open_v2(q->path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
		    SQLITE_OK) {
		rc = op_fail(err, OP_EIO, "cannot open %s: %s", path,
			     dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(src, 5000);
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (b == NULL) {
		rc = op_fail(err, OP_EIO, "cannot back up to %s: %s", path, sqlite3_errmsg(dst));
		goto out;
	}
	do {
		r = sqlite3_backup_step(b, -1);
	} while (r == SQLITE_BUSY || r == SQLITE_LOCKED);
	sqlite3_backup_finish(b);
	if (r != SQLITE_DONE)
		rc = op_fail(err, OP_EIO, "back up to %s failed: %s", path, sqlite3_errstr(r));
out:
	sqlite3_close(src);
	sqlite3_close(dst);
	return rc;
}

/* WAL size above which the checkpointer waits for a gap between transactions (RESTART) instead
 * of copying what it can (PASSIVE), so the log cannot grow without bound under steady load. */
#define WAL_RESTART_BYTES (64LL << 20)

/* Checkpoints on a connection of its own every 200 ms: the writer's commits never pay for
 * copying the log into the database (wal_autocheckpoint is off on the writer). */
static void *ckpt_main(void *arg)
{
	struct sq *q = arg;
	sqlite3 *db = NULL;
	char wal[PATH_MAX + 8];

	snprintf(wal, sizeof(wal), "%s-wal", q->path);
	if (sqlite3_open_v2(q->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 2000);
	sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	pthread_mutex_lock(&q->ckpt_lock);
	while (!q->ckpt_stop) {
		struct timespec ts;
		struct stat stw;
		int mode = SQLITE_CHECKPOINT_PASSIVE;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&q->ckpt_cond, &q->ckpt_lock, &ts);
		if (q->ckpt_stop)
			break;
		pthread_mutex_unlock(&q->ckpt_lock);
		if (stat(wal, &stw) == 0 && stw.st_size > WAL_RESTART_BYTES)
			mode = SQLITE_CHECKPOINT_RESTART;
		sqlite3_wal_checkpoint_v2(db, NULL, mode, NULL, NULL);
		pthread_mutex_lock(&q->ckpt_lock);
	}
	pthread_mutex_unlock(&q->ckpt_lock);
	sqlite3_close(db);
	return NULL;
}

static op_rc sq_start_background(struct store *s, struct op_error *err)
{
	struct sq *q = (struct sq *)s;

	if (q->ckpt_running)
		return OP_OK;
	pthread_mutex_init(&q->ckpt_lock, NULL);
	pthread_cond_init(&q->ckpt_cond, NULL);
	if (pthread_create(&q->ckpt, NULL, ckpt_main, q) != 0)
		return op_fail(err, OP_ENOMEM, "cannot start the checkpoint thread");
	q->ckpt_running = true;
	return sq_exec(q, "PRAGMA wal_autocheckpoint=0");
}

static void sq_close(struct store *s)
{
	struct sq *q = (struct sq *)s;

	if (q == NULL)
		return;
	if (q->ckpt_running) {
		pthread_mutex_lock(&q->ckpt_lock);
		q->ckpt_stop = true;
		pthread_cond_signal(&q->ckpt_cond);
		pthread_mutex_unlock(&q->ckpt_lock);
		pthread_join(q->ckpt, NULL);
		pthread_mutex_destroy(&q->ckpt_lock);
		pthread_cond_destroy(&q->ckpt_cond);
		q->ckpt_running = false;
	}
	cache_clear(q);
	sqlite3_close(q->db);
	free(q);
}

static const struct store_ops SQ_OPS = {
	.name = "sqlite",
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.savepoint = sq_savepoint,
	.release = sq_release,
	.rollback_to = sq_rollback_to,
	.get = sq_get,
	.insert = sq_insert,
	.update = sq_update,
	.remove = sq_remove,
	.select = sq_select,
	.count = sq_count,
	.backup = sq_backup,
	.start_background = sq_start_background,
};

static const char *sql_type(enum store_type t)
{
	switch (t) {
	case ST_INT:
	case ST_BOOL:
		return "INTEGER";
	case ST_REAL:
		return "REAL";
	default:
		return "TEXT";
	}
}

static op_rc create_schema(struct sq *q, struct op_error *err)
{
	struct op_buf sql = OP_BUF_INIT;
	op_rc rc = OP_OK;

	for (int t = 0; t < T__COUNT; t++) {
		const struct store_table *tab = &store_tables[t];

		op_buf_printf(&sql, "CREATE TABLE IF NOT EXISTS \"%s\" (", tab->name);
		for (size_t i = 0; i < tab->ncols; i++) {
			const struct store_column *c = &tab->cols[i];

			op_buf_printf(&sql, "%s\"%s\" %s", i ? ", " : "", c->name,
				      strcmp(c->name, tab->key) == 0 && tab->int_key ? "INTEGER"
										   : sql_type(c->type));
			if (strcmp(c->name, tab->key) == 0)
				op_buf_puts(&sql, " PRIMARY KEY");
		}
		op_buf_puts(&sql, ");\n");
		for (const char *const *ix = tab->indexes; *ix; ix++) {
			int unique = strncmp(*ix, "UNIQUE ", 7) == 0;
			const char *cols = unique ? *ix + 7 : *ix;
			char name[128];
			size_t k;

			snprintf(name, sizeof(name), "%s_%s", tab->name, cols);
			for (k = 0; name[k]; k++)
				if (name[k] == ',')
					name[k] = '_';
			op_buf_printf(&sql, "CREATE %sINDEX IF NOT EXISTS \"%s\" ON \"%s\"(%s);\n",
				      unique ? "UNIQUE " : "", name, tab->name, cols);
		}
	}
	if (sql.data == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	if (sq_exec(q, sql.data) != OP_OK)
		rc = op_fail(err, OP_EIO, "cannot create the database schema: %s", q->base.errmsg);
	op_buf_release(&sql);
	return rc;
}

op_rc store_sqlite_open(const char *dir, bool create, struct store **out, struct op_error *err)
{
	struct sq *q = calloc(1, sizeof(*q));
	char *version = NULL;
	op_rc rc = OP_OK;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	if (q == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	q->base.ops = &SQ_OPS;
	snprintf(q->path, sizeof(q->path), "%s/%s", dir, SRV_DB_FILE);
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	else if (access(q->path, F_OK) != 0) {
		rc = op_fail(err, OP_ENOENT,
			     "no database at %s: is %s a data directory made by `outpost-server init`?",
			     q->path, dir);
		goto out;
	}
	if (sqlite3_open_v2(q->path, &q->db, flags, NULL) != SQLITE_OK) {
		rc = op_fail(err, OP_EIO, "cannot open %s: %s", q->path,
			     q->db ? sqlite3_errmsg(q->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(q->db, 10000);
	/* Durable before acknowledged: WAL with a full sync of every commit (never weakened). */
	if (sq_exec(q, "PRAGMA journal_mode=WAL") != OP_OK ||
	    sq_exec(q, "PRAGMA synchronous=FULL") != OP_OK ||
	    sq_exec(q, "PRAGMA foreign_keys=OFF") != OP_OK ||
	    sq_exec(q, "PRAGMA temp_store=MEMORY") != OP_OK) {
		rc = op_fail(err, OP_EIO, "cannot set up %s: %s", q->path, q->base.errmsg);
		goto out;
	}
	if ((rc = create_schema(q, err)) != OP_OK)
		goto out;
	if (store_meta_get(&q->base, "schema_version", &version) == OP_OK && version &&
	    strtol(version, NULL, 10) > STORE_SCHEMA_VERSION) {
		rc = op_fail(err, OP_EINVAL,
			     "%s has schema version %s, newer than this outpost-server knows (%d): "
			     "run the newer outpost-server",
			     q->path, version, STORE_SCHEMA_VERSION);
		goto out;
	}
	if (version == NULL) {
		char v[16];

		snprintf(v, sizeof(v), "%d", STORE_SCHEMA_VERSION);
		if (store_meta_set(&q->base, "schema_version", v) != OP_OK) {
			rc = op_fail(err, OP_EIO, "cannot write %s: %s", q->path, q->base.errmsg);
			goto out;
		}
	}
out:
	free(version);
	if (rc != OP_OK) {
		sq_close(&q->base);
		return rc;
	}
	*out = &q->base;
	return OP_OK;
}
