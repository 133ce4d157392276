/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines for journald and files: `LEVEL component: message key=value`, secrets redacted. */
#ifndef OP_LOG_H
#define OP_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "op.h"
#include "redact.h"

enum op_log_level { OP_LOG_ERROR = 0, OP_LOG_WARN = 1, OP_LOG_INFO = 2, OP_LOG_DEBUG = 3 };

/* Parses "error", "warn", "info", "debug". Returns the level or -1. */
int op_log_level_parse(const char *name);
const char *op_log_level_name(int level);

void op_log_set_level(int level);
int op_log_get_level(void);
/* Also writes every line, with a timestamp, to PATH; rotates it to PATH.1 .. PATH.KEEP when it
 * grows past MAX_BYTES. PATH NULL closes the file. */
op_rc op_log_set_file(const char *path, uint64_t max_bytes, int keep, struct op_error *err);
/* Registers a value that must never appear in a log line. */
void op_log_redact(const char *value, size_t len);
void op_log_redact_clear(void);

/* Writes one line. COMPONENT may be NULL: the line is then `LEVEL: message`, the form the
 * seeds show for messages users search for. */
void op_log(int level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void op_vlog(int level, const char *component, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define op_log_error(c, ...) op_log(OP_LOG_ERROR, (c), __VA_ARGS__)
#define op_log_warn(c, ...) op_log(OP_LOG_WARN, (c), __VA_ARGS__)
#define op_log_info(c, ...) op_log(OP_LOG_INFO, (c), __VA_ARGS__)
#define op_log_debug(c, ...) op_log(OP_LOG_DEBUG, (c), __VA_ARGS__)

#endif
