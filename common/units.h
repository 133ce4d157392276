/* SPDX-License-Identifier: Apache-2.0 */
/* Durations ("250ms", "30s", "1h30m") and sizes ("64KiB", "10MB") as users write them. */
#ifndef OP_UNITS_H
#define OP_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* A plain number is seconds. Units: ms s m h d. Returns 0, or -1 when TEXT is not one. */
int op_parse_duration(const char *text, double *seconds);
/* A plain number is bytes. Units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (KB = 1000). */
int op_parse_size(const char *text, uint64_t *bytes);
/* "1h30m", "45s", "250ms". */
void op_format_duration(double seconds, char *out, size_t size);

#endif
