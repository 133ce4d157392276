/* SPDX-License-Identifier: Apache-2.0 */
/* Loads YAML with libyaml's document API and copies it into op_ynode trees. */
#include "yamltree.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"
#include "fsutil.h"

static void node_free(struct op_ynode *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++) {
		node_free(n->items[i]);
		if (n->keys)
			free(n->keys[i]);
	}
	free(n->items);
	free(n->keys);
	free(n->key_lines);
	free(n->value);
	free(n);
}

/* Aliases make libyaml share a node; copying expands each use, so a few lines could expand
 * into billions of nodes. No configuration comes near this budget. */
#define YAML_MAX_NODES 100000
#define YAML_MAX_DEPTH 64

struct conv {
	yaml_document_t *d;
	const char *file;
	size_t nodes;
	struct op_error *err;
};

static struct op_ynode *convert(struct conv *c, yaml_node_t *y, int depth)
{
	struct op_ynode *n;

	if (y == NULL) {
		op_fail(c->err, OP_EINVAL, "%s: a node refers to nothing", c->file);
		return NULL;
	}
	if (depth > YAML_MAX_DEPTH) {
		op_fail(c->err, OP_EINVAL, "%s:%zu: nested deeper than %d levels", c->file,
			y->start_mark.line + 1, YAML_MAX_DEPTH);
		return NULL;
	}
	if (++c->nodes > YAML_MAX_NODES) {
		op_fail(c->err, OP_EINVAL, "%s:%zu: more than %d values (aliases expanded)", c->file,
			y->start_mark.line + 1, YAML_MAX_NODES);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		goto oom;
	n->line = (int)y->start_mark.line + 1;
	switch (y->type) {
	case YAML_SCALAR_NODE:
		n->kind = OP_Y_SCALAR;
		n->quoted = y->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		n->value = strndup((const char *)y->data.scalar.value, y->data.scalar.length);
		if (n->value == NULL)
			goto oom;
		break;
	case YAML_SEQUENCE_NODE: {
		size_t count = (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);

		n->kind = OP_Y_SEQ;
		n->items = calloc(count ? count : 1, sizeof(*n->items));
		if (n->items == NULL)
			goto oom;
		for (yaml_node_item_t *it = y->data.sequence.items.start;
		     it < y->data.sequence.items.top; it++) {
			n->items[n->n] = convert(c, yaml_document_get_node(c->d, *it), depth + 1);
			if (n->items[n->n] == NULL)
				goto fail;
			n->n++;
		}
		break;
	}
	case YAML_MAPPING_NODE: {
		size_t count = (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);

		n->kind = OP_Y_MAP;
		n->items = calloc(count ? count : 1, sizeof(*n->items));
		n->keys = calloc(count ? count : 1, sizeof(*n->keys));
		n->key_lines = calloc(count ? count : 1, sizeof(*n->key_lines));
		if (n->items == NULL || n->keys == NULL || n->key_lines == NULL)
			goto oom;
		for (yaml_node_pair_t *p = y->data.mapping.pairs.start;
		     p < y->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(c->d, p->key);
			size_t line = k ? k->start_mark.line + 1 : 0;

			if (k == NULL || k->type != YAML_SCALAR_NODE) {
				op_fail(c->err, OP_EINVAL, "%s:%zu: a key must be a plain value, not a %s",
					c->file, line,
					k && k->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
				goto fail;
			}
			n->keys[n->n] = strndup((const char *)k->data.scalar.value,
						k->data.scalar.length);
			if (n->keys[n->n] == NULL)
				goto oom;
			for (size_t i = 0; i < n->n; i++) {
				if (strcmp(n->keys[i], n->keys[n->n]) != 0)
					continue;
				/* A second key would silently win over the first: refuse it. */
				op_fail(c->err, OP_EINVAL,
					"%s:%zu: duplicate key \"%s\" (first on line %d)",
					c->file, line, n->keys[n->n], n->key_lines[i]);
				free(n->keys[n->n]);
				n->keys[n->n] = NULL;
				goto fail;
			}
			n->key_lines[n->n] = (int)line;
			n->items[n->n] = convert(c, yaml_document_get_node(c->d, p->value), depth + 1);
			if (n->items[n->n] == NULL) {
				free(n->keys[n->n]);
				n->keys[n->n] = NULL;
				goto fail;
			}
			n->n++;
		}
		break;
	}
	default:
		op_fail(c->err, OP_EINVAL, "%s:%zu: an empty node", c->file, y->start_mark.line + 1);
		goto fail;
	}
	return n;
oom:
	op_fail(c->err, OP_ENOMEM, "out of memory");
fail:
	node_free(n);
	return NULL;
}

op_rc op_yaml_parse(const char *file, const char *text, size_t len, struct op_ydoc *doc,
		    struct op_error *err)
{
	yaml_parser_t parser;
	yaml_document_t ydoc;
	yaml_node_t *root;
	op_rc rc = OP_OK;
	bool have_doc = false;

	memset(doc, 0, sizeof(*doc));
	doc->file = strdup(file);
	if (doc->file == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	if (!yaml_parser_initialize(&parser)) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out_free;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &ydoc)) {
		rc = op_fail(err, OP_EINVAL, "%s:%zu:%zu: %s%s%s", file,
			     parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			     parser.problem ? parser.problem : "invalid YAML",
			     parser.context ? " " : "", parser.context ? parser.context : "");
		goto out_parser;
	}
	have_doc = true;
	root = yaml_document_get_root_node(&ydoc);
	if (root != NULL) {
		struct op_error local;
		struct conv c = {&ydoc, file, 0, err ? err : &local};

		doc->root = convert(&c, root, 0);
		if (doc->root == NULL)
			rc = c.err->rc;
	}
	if (have_doc)
		yaml_document_delete(&ydoc);
out_parser:
	yaml_parser_delete(&parser);
out_free:
	if (rc != OP_OK)
		op_ydoc_release(doc);
	return rc;
}

op_rc op_yaml_load(const char *path, size_t max, struct op_ydoc *doc, struct op_error *err)
{
	struct op_buf text = OP_BUF_INIT;
	op_rc rc;

	memset(doc, 0, sizeof(*doc));
	rc = op_read_file(path, max, &text, err);
	if (rc == OP_OK)
		rc = op_yaml_parse(path, text.data, text.len, doc, err);
	op_buf_release(&text);
	return rc;
}

void op_ydoc_release(struct op_ydoc *doc)
{
	node_free(doc->root);
	free(doc->file);
	doc->root = NULL;
	doc->file = NULL;
}

struct op_ynode *op_ymap_get(const struct op_ynode *node, const char *key)
{
	if (node == NULL || node->kind != OP_Y_MAP)
		return NULL;
	for (size_t i = 0; i < node->n; i++)
		if (strcmp(node->keys[i], key) == 0)
			return node->items[i];
	return NULL;
}

const char *op_ykind_name(enum op_ykind kind)
{
	return kind == OP_Y_MAP ? "mapping" : kind == OP_Y_SEQ ? "list" : "scalar";
}

static cJSON *scalar_to_json(const struct op_ynode *n)
{
	const char *v = n->value;
	char *end;
	double d;

	if (n->quoted)
		return cJSON_CreateString(v);
	if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "yes") == 0)
		return cJSON_CreateTrue();
	if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 || strcmp(v, "no") == 0)
		return cJSON_CreateFalse();
	if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || *v == '\0')
		return cJSON_CreateNull();
	if ((*v >= '0' && *v <= '9') || ((*v == '-' || *v == '+') && v[1] >= '0' && v[1] <= '9')) {
		errno = 0;
		d = strtod(v, &end);
		if (*end == '\0' && errno == 0 && isfinite(d))
			return cJSON_CreateNumber(d);
	}
	return cJSON_CreateString(v);
}

cJSON *op_ynode_to_json(const struct op_ynode *n)
{
	cJSON *out;

	if (n == NULL)
		return cJSON_CreateNull();
	if (n->kind == OP_Y_SCALAR)
		return scalar_to_json(n);
	out = n->kind == OP_Y_SEQ ? cJSON_CreateArray() : cJSON_CreateObject();
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n->n; i++) {
		cJSON *item = op_ynode_to_json(n->items[i]);

		if (item == NULL) {
			cJSON_Delete(out);
			return NULL;
		}
		if (n->kind == OP_Y_SEQ)
			cJSON_AddItemToArray(out, item);
		else
			cJSON_AddItemToObject(out, n->keys[i], item);
	}
	return out;
}
