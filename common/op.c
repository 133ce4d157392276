/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes, error messages and small string helpers used everywhere. */
#include "op.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *op_strerror(op_rc rc)
{
	static const char *const names[] = {
		[OP_OK] = "ok",
		[OP_ENOMEM] = "out of memory",
		[OP_EINVAL] = "invalid input",
		[OP_EIO] = "input/output error",
		[OP_ENOENT] = "not found",
		[OP_EPERM] = "not permitted",
		[OP_EEXIST] = "already exists",
		[OP_ETLS] = "TLS error",
		[OP_ENET] = "network error",
		[OP_EPROTO] = "protocol error",
		[OP_ETIMEOUT] = "timed out",
		[OP_ESTATE] = "wrong state",
		[OP_ECRASH] = "crashed",
		[OP_EREMOTE] = "refused by peer",
		[OP_ENOSPC] = "no space left on device",
	};
	if ((unsigned)rc >= OP_ARRAY_LEN(names) || names[rc] == NULL)
		return "unknown error";
	return names[rc];
}

op_rc op_vfail(struct op_error *e, op_rc rc, const char *fmt, va_list ap)
{
	if (e != NULL) {
		e->rc = rc;
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	}
	return rc;
}

op_rc op_fail(struct op_error *e, op_rc rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	op_vfail(e, rc, fmt, ap);
	va_end(ap);
	return rc;
}

op_rc op_prefix(struct op_error *e, const char *fmt, ...)
{
	char head[512], old[sizeof(e->msg)];
	va_list ap;

	if (e == NULL)
		return OP_OK;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, old);
	return e->rc;
}

void op_error_clear(struct op_error *e)
{
	if (e != NULL) {
		e->rc = OP_OK;
		e->msg[0] = '\0';
	}
}

int op_snprintf(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

int op_strlcpy(char *out, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size == 0)
		return -1;
	if (n >= size) {
		memcpy(out, src, size - 1);
		out[size - 1] = '\0';
		return -1;
	}
	memcpy(out, src, n + 1);
	return 0;
}

int op_parse_i64(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
