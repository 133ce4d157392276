/* SPDX-License-Identifier: Apache-2.0 */
/* Canonical JSON: the exact bytes the server signs and the agent verifies for approvals. */
#ifndef OP_CANONJSON_H
#define OP_CANONJSON_H

#include <cjson/cJSON.h>

#include "buf.h"

/*
 * Canonical form (docs/protocol.md, "Approval signatures"): no whitespace; object members
 * sorted by key in byte order (duplicate keys are an error); strings as cJSON escapes them;
 * integral numbers within ±2^53 printed as integers, other numbers with %.17g.
 * Returns 0, or -1 (duplicate key, NaN/Inf, OOM).
 */
int op_json_canonical(const cJSON *value, struct op_buf *out);

#endif
