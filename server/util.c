/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of the server: clocks, RFC 3339 times, random ids and tokens, hashes, JSON. */
#include "util.h"

#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"

int64_t srv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t srv_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void srv_fmt_time(int64_t ms, char *out, size_t size)
{
	time_t sec = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	struct tm tm;
	char base[32];

	if (frac < 0) {
		frac += 1000;
		sec -= 1;
	}
	gmtime_r(&sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03dZ", base, frac);
}

int srv_parse_time(const char *text, int64_t *ms)
{
	struct tm tm;
	const char *p;
	int frac = 0, digits = 0;
	time_t sec;

	memset(&tm, 0, sizeof(tm));
	p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return -1;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		while (digits < 3) {
			frac *= 10;
			digits++;
		}
	}
	if (strcmp(p, "Z") != 0)
		return -1;
	sec = timegm(&tm);
	*ms = (int64_t)sec * 1000 + frac;
	return 0;
}

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int srv_random_id(const char *prefix, size_t n, char *out, size_t size)
{
	size_t plen = strlen(prefix), i = 0;
	unsigned char rnd[64];

	if (plen + n + 1 > size)
		return -1;
	memcpy(out, prefix, plen);
	while (i < n) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return -1;
		for (size_t k = 0; k < sizeof(rnd) && i < n; k++) {
			if (rnd[k] >= 248) /* 248 = 4 * 62: keeps the draw uniform */
				continue;
			out[plen + i++] = B62[rnd[k] % 62];
		}
	}
	out[plen + n] = '\0';
	return 0;
}

void srv_sha256_hex(const void *data, size_t len, char *out)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

bool srv_token_shape_ok(const char *text, const char *prefix)
{
	size_t n = 0;

	if (text == NULL || strncmp(text, prefix, strlen(prefix)) != 0)
		return false;
	for (const char *p = text + strlen(prefix); *p; p++, n++)
		if (strchr(B62, *p) == NULL)
			return false;
	return n >= 24 && n <= 128;
}

const char *srv_jstr(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t srv_jint(const cJSON *obj, const char *key, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

double srv_jnum(const cJSON *obj, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

bool srv_jbool(const cJSON *obj, const char *key, bool dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0;
	return dflt;
}

void srv_jadd_time(cJSON *obj, const char *key, int64_t ms)
{
	char t[40];

	if (ms <= 0) {
		cJSON_AddNullToObject(obj, key);
		return;
	}
	srv_fmt_time(ms, t, sizeof(t));
	cJSON_AddStringToObject(obj, key, t);
}

void srv_jadd_str(cJSON *obj, const char *key, const char *s)
{
	if (s == NULL)
		cJSON_AddNullToObject(obj, key);
	else
		cJSON_AddStringToObject(obj, key, s);
}

void srv_jset(cJSON *obj, const char *key, cJSON *item)
{
	if (item == NULL)
		item = cJSON_CreateNull();
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
	else
		cJSON_AddItemToObject(obj, key, item);
}

cJSON *srv_jdup_or(const cJSON *item, const char *dflt)
{
	if (item != NULL && !cJSON_IsNull(item))
		return cJSON_Duplicate(item, true);
	return cJSON_Parse(dflt);
}

bool srv_jstrings_contains(const cJSON *set, const char *s)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, set)
	{
		if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
			return true;
	}
	return false;
}

bool srv_jstrings_subset(const cJSON *sub, const cJSON *set)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, sub)
	{
		if (cJSON_IsString(v) && !srv_jstrings_contains(set, v->valuestring))
			return false;
	}
	return true;
}

cJSON *srv_split_csv(const char *text)
{
	cJSON *arr = cJSON_CreateArray();
	const char *p = text;

	while (arr && p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char item[256];

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0 && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (!srv_jstrings_contains(arr, item))
				cJSON_AddItemToArray(arr, cJSON_CreateString(item));
		}
		p = e ? e + 1 : NULL;
	}
	return arr;
}

double srv_round_ms(double seconds)
{
	return round(seconds * 1000.0) / 1000.0;
}

long srv_b64_decode(const char *text, unsigned char **out)
{
	size_t n = strlen(text), pad = 0;
	unsigned char *buf;
	int len;

	*out = NULL;
	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = text[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || (c == '=' && i >= n - 2)))
			return -1;
	}
	if (n >= 1 && text[n - 1] == '=')
		pad++;
	if (n >= 2 && text[n - 2] == '=')
		pad++;
	buf = malloc(n / 4 * 3 + 1);
	if (buf == NULL)
		return -1;
	len = n ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)n) : 0;
	if (len < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	return (long)len - (long)pad;
}
