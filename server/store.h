/* SPDX-License-Identifier: Apache-2.0 */
/* The storage interface: records as JSON objects in named tables, behind one vtable. */
#ifndef SRV_STORE_H
#define SRV_STORE_H

/*
 * The API code (agent_api.c, admin_api.c) sees only this interface; SQLite is the one backend
 * today (store_sqlite.c) and PostgreSQL can follow by filling the same table of functions.
 *
 * The model: a fixed logical schema (store_tables[] in store.c) of tables whose columns are
 * text, integers, reals, booleans or JSON. A record travels as a cJSON object whose members
 * are columns; absent members are NULL. JSON columns hold any JSON value and come back parsed.
 * Times are integer milliseconds since the epoch. Conditions compare a column with a value.
 *
 * Threading and transactions: a store is used by one thread at a time (the DB thread of
 * dbq.c). dbq.c opens a transaction, runs a batch of jobs each inside a savepoint, and
 * commits the batch with one fsync (group commit); a job that fails rolls back to its
 * savepoint without disturbing the others. A backend must make commit durable before it
 * returns (SQLite: WAL with synchronous=FULL; PostgreSQL: synchronous_commit=on).
 */

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

enum store_type { ST_TEXT, ST_INT, ST_REAL, ST_BOOL, ST_JSON };

struct store_column {
	const char *name;
	enum store_type type;
};

enum store_tab {
	T_META,
	T_ADMIN_TOKENS,
	T_ENROLL_TOKENS,
	T_ENROLLMENTS,
	T_AGENTS,
	T_TASKS,
	T_LEASES,
	T_LOGS,
	T_CRS,
	T_CR_STEPS,
	T_AUDIT,
	T_ARTIFACTS,
	T__COUNT
};

struct store_table {
	const char *name;
	const char *key;   /* primary key column */
	bool int_key;      /* the key is an integer the store assigns on insert */
	const struct store_column *cols;
	size_t ncols;
	const char *const *indexes; /* "col1,col2" or "UNIQUE col", NULL-terminated */
};

extern const struct store_table store_tables[T__COUNT];

/* The schema version this build writes; a store refuses a newer one. */
#define STORE_SCHEMA_VERSION 1

enum store_op { SO_EQ, SO_NE, SO_LT, SO_LE, SO_GT, SO_GE, SO_IN, SO_NULL, SO_NOTNULL };

struct store_cond {
	const char *col;
	enum store_op op;
	const cJSON *value; /* string, number, bool; an array of them for SO_IN */
};

struct store_query {
	const struct store_cond *conds;
	size_t nconds;
	const char *order; /* a column, or NULL for the key */
	bool desc;
	int limit;  /* 0: no limit */
	int offset;
	const char *const *cols; /* the columns wanted, NULL-terminated; NULL: all */
};

struct store;

struct store_ops {
	const char *name;
	void (*close)(struct store *s);
	op_rc (*begin)(struct store *s);
	op_rc (*commit)(struct store *s);
	op_rc (*rollback)(struct store *s);
	op_rc (*savepoint)(struct store *s);
	op_rc (*release)(struct store *s);
	op_rc (*rollback_to)(struct store *s);
	/* The record with key KEY (only the columns COLS, NULL-terminated, when not NULL), or
	 * OP_ENOENT. */
	op_rc (*get)(struct store *s, enum store_tab t, const char *key, const char *const *cols,
		     cJSON **out);
	/* Inserts REC; OP_EEXIST when a key or unique column clashes. For int_key tables
	 * *NEW_ID (may be NULL) gets the assigned key. */
	op_rc (*insert)(struct store *s, enum store_tab t, const cJSON *rec, int64_t *new_id);
	/* Sets FIELDS of the record KEY when every COND holds; *CHANGED (may be NULL) is 0 or 1. */
	op_rc (*update)(struct store *s, enum store_tab t, const char *key, const cJSON *fields,
			const struct store_cond *conds, size_t nconds, int *changed);
	/* Deletes the records matching CONDS (at least one); *CHANGED gets how many. */
	op_rc (*remove)(struct store *s, enum store_tab t, const struct store_cond *conds,
			size_t nconds, int *changed);
	/* The records matching Q, as a JSON array. */
	op_rc (*select)(struct store *s, enum store_tab t, const struct store_query *q,
			cJSON **out);
	/* Counts the records matching CONDS grouped by column BY: {"value": count, ...}; BY NULL
	 * gives {"count": n}. */
	op_rc (*count)(struct store *s, enum store_tab t, const struct store_cond *conds,
		       size_t nconds, const char *by, cJSON **out);
	/* Copies the whole store to PATH consistently while it is in use. */
	op_rc (*backup)(struct store *s, const char *path, struct op_error *err);
	/* Starts the backend's background maintenance for a long-running server (SQLite: WAL
	 * checkpoints on a connection of their own, off the commit path). May be NULL. */
	op_rc (*start_background)(struct store *s, struct op_error *err);
};

struct store {
	const struct store_ops *ops;
	char errmsg[512]; /* the backend's last error, for logs */
};

/* Opens the SQLite store in DIR (creating the schema when CREATE). */
op_rc store_sqlite_open(const char *dir, bool create, struct store **out, struct op_error *err);

/* The column COL of table T, or NULL. */
const struct store_column *store_column(enum store_tab t, const char *col);

/* Shorthands over s->ops. */
static inline op_rc store_get(struct store *s, enum store_tab t, const char *key, cJSON **out)
{
	return s->ops->get(s, t, key, NULL, out);
}
static inline op_rc store_get_cols(struct store *s, enum store_tab t, const char *key,
				   const char *const *cols, cJSON **out)
{
	return s->ops->get(s, t, key, cols, out);
}
static inline op_rc store_insert(struct store *s, enum store_tab t, const cJSON *rec)
{
	return s->ops->insert(s, t, rec, NULL);
}
static inline op_rc store_update(struct store *s, enum store_tab t, const char *key,
				 const cJSON *fields)
{
	return s->ops->update(s, t, key, fields, NULL, 0, NULL);
}
op_rc store_select_eq(struct store *s, enum store_tab t, const char *col, const char *value,
		      int limit, cJSON **out);
/* The first record whose COL equals VALUE, or OP_ENOENT. */
op_rc store_find(struct store *s, enum store_tab t, const char *col, const char *value,
		 cJSON **out);
op_rc store_meta_get(struct store *s, const char *key, char **value);
op_rc store_meta_set(struct store *s, const char *key, const char *value);

#endif
