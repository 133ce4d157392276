/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 for text that must become a JSON string: cut at character boundaries, invalid bytes
 * replaced. */
#ifndef OP_UTF8_H
#define OP_UTF8_H

#include <stddef.h>

#include "buf.h"

/* The length of the longest prefix of S[0..len) that does not end inside a multi-byte
 * sequence (a sequence cut by a chunk border waits for the next chunk). */
size_t op_utf8_boundary(const char *s, size_t len);

/* Appends S[0..len) to OUT with every invalid byte replaced by U+FFFD. Returns 0 or -1. */
int op_utf8_append(struct op_buf *out, const char *s, size_t len);

#endif
