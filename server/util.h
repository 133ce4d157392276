/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of the server: clocks, RFC 3339 times, random ids and tokens, hashes, JSON. */
#ifndef SRV_UTIL_H
#define SRV_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTPOST_SERVER_VERSION "0.1.0"

/* Wall-clock milliseconds since the epoch, and a monotonic clock in microseconds. */
int64_t srv_now_ms(void);
int64_t srv_mono_us(void);

/* "2026-11-23T10:00:00.123Z" (OUT needs 32 bytes). */
void srv_fmt_time(int64_t ms, char *out, size_t size);
/* Parses that form (and without milliseconds); returns 0 or -1. */
int srv_parse_time(const char *text, int64_t *ms);

/* PREFIX followed by N random base62 characters, e.g. "agt_" + 16. Returns 0 or -1. */
int srv_random_id(const char *prefix, size_t n, char *out, size_t size);

/* Lowercase hex SHA-256 of DATA (OUT needs 65 bytes). */
void srv_sha256_hex(const void *data, size_t len, char *out);

/* Tokens: "oe_" or "oa_" + 32 base62 characters. True when TEXT has that shape. */
bool srv_token_shape_ok(const char *text, const char *prefix);

/* JSON helpers: NULL-safe getters with defaults. */
const char *srv_jstr(const cJSON *obj, const char *key);
int64_t srv_jint(const cJSON *obj, const char *key, int64_t dflt);
double srv_jnum(const cJSON *obj, const char *key, double dflt);
bool srv_jbool(const cJSON *obj, const char *key, bool dflt);
/* Adds a time field: an RFC 3339 string, or null when MS is 0. */
void srv_jadd_time(cJSON *obj, const char *key, int64_t ms);
/* Adds KEY as a string, or null when S is NULL. */
void srv_jadd_str(cJSON *obj, const char *key, const char *s);
/* Replaces (or adds) KEY with ITEM (taken). */
void srv_jset(cJSON *obj, const char *key, cJSON *item);
/* A copy of ITEM or, when it is NULL, DFLT (a JSON text) parsed. */
cJSON *srv_jdup_or(const cJSON *item, const char *dflt);
/* True when every string of SUB is in SET (arrays of strings; NULL is empty). */
bool srv_jstrings_subset(const cJSON *sub, const cJSON *set);
bool srv_jstrings_contains(const cJSON *set, const char *s);
/* Splits "a,b,c" into a JSON array of non-empty, trimmed strings. */
cJSON *srv_split_csv(const char *text);

/* Decodes base64 TEXT into a malloc()ed buffer; returns its length, or -1 when TEXT is not
 * base64. */
long srv_b64_decode(const char *text, unsigned char **out);

/* Formats seconds as a number for JSON (integral when whole). */
double srv_round_ms(double seconds);

#endif
