/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets by name: values from files or the environment, fenced by task type and host. */
#ifndef AG_SECRETS_H
#define AG_SECRETS_H

#include <stddef.h>

#include "buf.h"
#include "config.h"

/* Resolves secret NAME for a task of TYPE that will send it to HOST (may be NULL). Returns 1
 * and appends the value to VALUE, or 0 with the reason in WHY (never the value). A file
 * secret loses one trailing newline. Matches sv_secret_fn with CFG as user data. */
int ag_secret_lookup(void *cfg, const char *type, const char *name, const char *host,
		     struct op_buf *value, char *why, size_t why_size);

/* Registers every configured secret's current value with the logger's redactor. */
void ag_secrets_redact_all(const struct ag_config *cfg);

#endif
