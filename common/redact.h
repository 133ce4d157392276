/* SPDX-License-Identifier: Apache-2.0 */
/* Redaction of secret values and Outpost tokens from text that leaves the process. */
#ifndef OP_REDACT_H
#define OP_REDACT_H

#include <stddef.h>

#include "buf.h"

#define OP_REDACTED "[REDACTED]"

/* A set of secret values to hide. Values shorter than 4 bytes are not registered: they would
 * turn ordinary text into noise without protecting anything. */
struct op_redactor {
	char **values;
	size_t *lens;
	size_t n;
	unsigned char starts[256]; /* 1 for each byte a value or its escaped form starts with */
};

int op_redactor_add(struct op_redactor *r, const char *value, size_t len);
void op_redactor_release(struct op_redactor *r);

/* Appends IN to OUT with every registered value (R may be NULL), its JSON-escaped form, and
 * every Outpost token (oe_..., oa_...) replaced by [REDACTED]. Returns 0 or -1 (OOM). */
int op_redact(const struct op_redactor *r, const char *in, size_t len, struct op_buf *out);

/* For streams cut into chunks at arbitrary places: PENDING holds bytes not yet emitted. Emits
 * to OUT, redacted, all of PENDING but a tail long enough to hold the start of a secret split
 * across chunks (all of it when FINAL), and drops what it emitted from PENDING. */
int op_redact_stream(const struct op_redactor *r, struct op_buf *pending, int final,
		     struct op_buf *out);
size_t op_redact_holdback(const struct op_redactor *r);

/* True when TEXT contains an Outpost token or one of R's values. */
int op_redact_needed(const struct op_redactor *r, const char *text, size_t len);

#endif
