/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer that is always NUL-terminated, for text and frames alike. */
#ifndef OP_BUF_H
#define OP_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct op_buf {
	char *data; /* NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
};

#define OP_BUF_INIT {NULL, 0, 0}

int op_buf_reserve(struct op_buf *b, size_t extra);
int op_buf_append(struct op_buf *b, const void *data, size_t len);
int op_buf_puts(struct op_buf *b, const char *s);
int op_buf_printf(struct op_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int op_buf_vprintf(struct op_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops the first N bytes. */
void op_buf_consume(struct op_buf *b, size_t n);
void op_buf_reset(struct op_buf *b);
void op_buf_release(struct op_buf *b);
/* Hands the data over to the caller (free() it) and resets B. */
char *op_buf_detach(struct op_buf *b);

#endif
