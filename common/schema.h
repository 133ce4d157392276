/* SPDX-License-Identifier: Apache-2.0 */
/* Outpost's JSON Schema subset: one small validator shared by the agent, worker, SDK and server. */
#ifndef OP_SCHEMA_H
#define OP_SCHEMA_H

#include <cjson/cJSON.h>
#include <stddef.h>

/*
 * The subset (docs/plugin-abi.md, "Params schemas"):
 *   type (a name or a list of names: object array string integer number boolean null),
 *   properties, required, additionalProperties (boolean or schema), items, enum,
 *   minimum, maximum, minLength, maxLength, minItems, maxItems, pattern (POSIX ERE), default.
 * Annotations are accepted and ignored: title, description, examples, format, $schema, $id,
 * $comment. Any other keyword makes the schema itself invalid, so a typo never silently
 * turns a check off.
 */

/* Checks that SCHEMA uses only the subset. Returns 0, or -1 with a message in ERR. */
int op_schema_check(const cJSON *schema, char *err, size_t errlen);

/* Validates INSTANCE against SCHEMA. ROOT names the instance in messages ("params").
 * Returns 0, or -1 with the first violation in ERR, e.g.
 * `params.timeout: expected string, got number`. */
int op_schema_validate(const cJSON *schema, const cJSON *instance, const char *root, char *err,
		       size_t errlen);

/* Adds the schema's defaults for absent object members, recursively through nested objects
 * (not into array items: a plugin with per-item defaults, http.batch's say, merges its own).
 * Returns 0 or -1 (OOM). */
int op_schema_apply_defaults(const cJSON *schema, cJSON *instance);

#endif
