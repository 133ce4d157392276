/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the JSON-schema subset (decisions.md 13): the input is a schema and an instance,
 * split at the first NUL; the checker, validator and defaults must never misbehave. */
#include <stdint.h>
#include <string.h>

#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t a = nul ? (size_t)(nul - data) : size;
	cJSON *schema = cJSON_ParseWithLength((const char *)data, a);
	cJSON *inst = nul ? cJSON_ParseWithLength((const char *)nul + 1, size - a - 1) : NULL;
	char err[512];

	if (schema && op_schema_check(schema, err, sizeof(err)) == 0 && inst) {
		(void)op_schema_validate(schema, inst, "params", err, sizeof(err));
		(void)op_schema_apply_defaults(schema, inst);
	}
	cJSON_Delete(schema);
	cJSON_Delete(inst);
	return 0;
}
