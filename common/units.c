/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing and printing of durations and sizes. */
#include "units.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int op_parse_duration(const char *text, double *seconds)
{
	const char *p = text;
	double total = 0;
	int parts = 0;

	if (text == NULL || *text == '\0')
		return -1;
	while (*p) {
		char *end;
		double v, mul;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
		v = strtod(p, &end);
		if (end == p || !isfinite(v) || v < 0)
			return -1;
		p = end;
		if (strncmp(p, "ms", 2) == 0) {
			mul = 0.001;
			p += 2;
		} else if (*p == 's') {
			mul = 1;
			p++;
		} else if (*p == 'm') {
			mul = 60;
			p++;
		} else if (*p == 'h') {
			mul = 3600;
			p++;
		} else if (*p == 'd') {
			mul = 86400;
			p++;
		} else if (*p == '\0' && parts == 0) {
			mul = 1;
		} else {
			return -1;
		}
		total += v * mul;
		parts++;
	}
	*seconds = total;
	return 0;
}

int op_parse_size(const char *text, uint64_t *bytes)
{
	static const struct {
		const char *suffix;
		double mul;
	} units[] = {
		{"", 1},	       {"B", 1},
		{"K", 1024},	       {"KB", 1e3},
		{"KiB", 1024},	       {"M", 1048576.0},
		{"MB", 1e6},	       {"MiB", 1048576.0},
		{"G", 1073741824.0},   {"GB", 1e9},
		{"GiB", 1073741824.0}, {"T", 1099511627776.0},
		{"TB", 1e12},	       {"TiB", 1099511627776.0},
	};
	char *end;
	double v;
	size_t i;

	if (text == NULL || !isdigit((unsigned char)text[0]))
		return -1;
	v = strtod(text, &end);
	if (!isfinite(v) || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			double b = v * units[i].mul;

			if (b >= 18446744073709551615.0)
				return -1;
			*bytes = (uint64_t)b;
			return 0;
		}
	}
	return -1;
}

void op_format_duration(double seconds, char *out, size_t size)
{
	long long s;

	if (seconds < 1) {
		snprintf(out, size, "%.0fms", seconds * 1000);
		return;
	}
	s = (long long)(seconds + 0.5);
	if (s >= 2 * 86400 && s % 86400 == 0) /* "7d", not "168h"; one day stays "24h" */
		snprintf(out, size, "%lldd", s / 86400);
	else if (s >= 3600 && s % 60 == 0 && s % 3600)
		snprintf(out, size, "%lldh%lldm", s / 3600, (s % 3600) / 60);
	else if (s >= 3600 && s % 3600 == 0)
		snprintf(out, size, "%lldh", s / 3600);
	else if (s >= 60 && s % 60 == 0)
		snprintf(out, size, "%lldm", s / 60);
	else
		snprintf(out, size, "%llds", s);
}
