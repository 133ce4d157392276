/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: worker frames as the agent parses them, redaction, UTF-8 and canonical JSON of
 * what a worker or the control plane could send. */
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "canonjson.h"
#include "frame.h"
#include "redact.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct op_buf in = OP_BUF_INIT, out = OP_BUF_INIT;
	struct op_redactor r = {0};
	uint8_t type;
	const char *payload;
	size_t plen;
	long used;
	cJSON *j;

	if (op_buf_append(&in, data, size) == 0) {
		while ((used = fr_parse(&in, &type, &payload, &plen)) > 0)
			op_buf_consume(&in, (size_t)used);
	}
	op_redactor_add(&r, "secret-value", 12);
	op_redactor_add(&r, "a\"b\\c", 5);
	(void)op_redact(&r, (const char *)data, size, &out);
	op_buf_reset(&out);
	(void)op_utf8_append(&out, (const char *)data, op_utf8_boundary((const char *)data, size));
	j = cJSON_ParseWithLength((const char *)data, size);
	if (j) {
		op_buf_reset(&out);
		(void)op_json_canonical(j, &out);
		cJSON_Delete(j);
	}
	op_redactor_release(&r);
	op_buf_release(&in);
	op_buf_release(&out);
	return 0;
}
