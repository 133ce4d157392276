/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text that keeps every number: what the agent, the worker and the server send and store. */
#ifndef OP_JSONPRINT_H
#define OP_JSONPRINT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/*
 * cJSON prints a number with "%1.15g" whenever its loose comparison calls the round trip
 * equal, which drops a 16th or 17th digit (0.30000000000000004 comes out as 0.3,
 * 9007199254740991 as 9.00719925474099e+15). op_json_print prints VALUE as cJSON_Print
 * (PRETTY) or cJSON_PrintUnformatted would, except for numbers: an integer below 2^53, or a
 * decimal of up to 9 places, is written as such (0.000053, not 5.3e-05), from integers;
 * any other number with "%1.15g" when that reads back as the same double, and with "%1.17g"
 * otherwise: every number reads back exactly. Free the text with cJSON_free(); NULL when out
 * of memory. The nodes of VALUE are marked while it prints and restored before it returns:
 * not for a tree another thread reads at the same time.
 */
char *op_json_print(const cJSON *value, bool pretty);

#endif
