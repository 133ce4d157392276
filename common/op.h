/* SPDX-License-Identifier: Apache-2.0 */
/* The one error type shared by the agent, the worker and the server, with its messages. */
#ifndef OP_H
#define OP_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Every fallible function returns an op_rc. Where a user will read the failure, the function
 * also fills a struct op_error with a sentence that says what failed, on what, and the fix.
 * Append-only: the numbers are part of `--json` outputs.
 */
typedef enum {
	OP_OK = 0,
	OP_ENOMEM,   /* out of memory */
	OP_EINVAL,   /* invalid input: config, params, arguments */
	OP_EIO,      /* a read or write failed */
	OP_ENOENT,   /* no such file, agent, task, plugin */
	OP_EPERM,    /* refused: permissions, policy, unsafe file modes */
	OP_EEXIST,   /* already exists */
	OP_ETLS,     /* TLS or certificate failure */
	OP_ENET,     /* DNS, connect, timeout, reset */
	OP_EPROTO,   /* the peer answered something we do not understand */
	OP_ETIMEOUT, /* a deadline passed */
	OP_ESTATE,   /* not allowed in the current state (draining, revoked, lease lost) */
	OP_ECRASH,   /* a worker or plugin crashed */
	OP_EREMOTE,  /* the peer refused with a reason (see the message) */
	OP_ENOSPC    /* disk full */
} op_rc;

struct op_error {
	op_rc rc;
	char msg[1024];
};

/* A short name for RC, e.g. "invalid input". */
const char *op_strerror(op_rc rc);

/* Sets E (may be NULL) to RC and the formatted message; returns RC. */
op_rc op_fail(struct op_error *e, op_rc rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
op_rc op_vfail(struct op_error *e, op_rc rc, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* Prefixes E's message with the formatted text and ": ". Returns E's rc. */
op_rc op_prefix(struct op_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void op_error_clear(struct op_error *e);

#define OP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* snprintf that reports truncation: returns 0, or -1 when OUT was too small. */
int op_snprintf(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copies SRC into OUT, always NUL-terminated; returns -1 on truncation. */
int op_strlcpy(char *out, const char *src, size_t size);
/* Parses a whole decimal integer in [min, max]; returns 0 or -1. */
int op_parse_i64(const char *s, long long min, long long max, long long *out);

#endif
