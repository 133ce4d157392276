/* SPDX-License-Identifier: Apache-2.0 */
/* YAML files (libyaml) as a small tree that remembers the line of every node, for errors. */
#ifndef OP_YAMLTREE_H
#define OP_YAMLTREE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "op.h"

enum op_ykind { OP_Y_SCALAR, OP_Y_SEQ, OP_Y_MAP };

struct op_ynode {
	enum op_ykind kind;
	int line;       /* 1-based */
	bool quoted;    /* scalar written in quotes: always a string */
	char *value;    /* scalar text */
	size_t n;       /* items (seq) or entries (map) */
	struct op_ynode **items; /* seq items, or map values */
	char **keys;             /* map keys */
	int *key_lines;          /* map key lines */
};

struct op_ydoc {
	char *file; /* for messages: "config.yaml:12: ..." */
	struct op_ynode *root; /* NULL for an empty document */
};

/* Parses TEXT (named FILE in messages). Errors read "FILE:LINE:COL: <libyaml's problem>". */
op_rc op_yaml_parse(const char *file, const char *text, size_t len, struct op_ydoc *doc,
		    struct op_error *err);
op_rc op_yaml_load(const char *path, size_t max, struct op_ydoc *doc, struct op_error *err);
void op_ydoc_release(struct op_ydoc *doc);

/* The value for KEY in map NODE, or NULL. */
struct op_ynode *op_ymap_get(const struct op_ynode *node, const char *key);
/* Converts NODE to JSON: plain scalars true/false/null/~/numbers become typed values,
 * quoted scalars stay strings. Returns NULL on OOM. */
cJSON *op_ynode_to_json(const struct op_ynode *node);
/* "mapping", "list" or "scalar". */
const char *op_ykind_name(enum op_ykind kind);

#endif
