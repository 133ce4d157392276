/* SPDX-License-Identifier: Apache-2.0 */
/* Files written durably (write, fsync, rename, fsync dir), read whole, and made with care. */
#ifndef OP_FSUTIL_H
#define OP_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "op.h"

/* Replaces PATH with DATA atomically and durably, created with MODE. ENOSPC → OP_ENOSPC. */
op_rc op_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			   struct op_error *err);
/* The same, atomic (write, rename) but not synced: survives a crash of the process, not of
 * the machine. For records whose loss only costs time (a lease record: its lease expires). */
op_rc op_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
			    struct op_error *err);
/* Reads PATH whole into OUT (appending), refusing files over MAX bytes. */
op_rc op_read_file(const char *path, size_t max, struct op_buf *out, struct op_error *err);
/* mkdir -p with MODE for the directories it creates. */
op_rc op_mkdir_p(const char *path, mode_t mode, struct op_error *err);
/* fsyncs the directory that holds PATH. */
int op_fsync_parent(const char *path);
/* Removes PATH and everything below it; missing is fine. */
op_rc op_rm_rf(const char *path, struct op_error *err);

#endif
