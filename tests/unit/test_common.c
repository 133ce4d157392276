/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the shared code: units, schema subset, redaction, canonical JSON, exact
 * JSON numbers, buffers, the kept heap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonjson.h"
#include "heap.h"
#include "jsonprint.h"
#include "redact.h"
#include "schema.h"
#include "units.h"

static void test_durations(void **state)
{
	double s;

	(void)state;
	assert_int_equal(op_parse_duration("30s", &s), 0);
	assert_true(s == 30);
	assert_int_equal(op_parse_duration("250ms", &s), 0);
	assert_true(s > 0.2499 && s < 0.2501);
	assert_int_equal(op_parse_duration("1h30m", &s), 0);
	assert_true(s == 5400);
	assert_int_equal(op_parse_duration("2d", &s), 0);
	assert_true(s == 172800);
	assert_int_equal(op_parse_duration("15", &s), 0);
	assert_true(s == 15);
	assert_int_equal(op_parse_duration("", &s), -1);
	assert_int_equal(op_parse_duration("ten", &s), -1);
	assert_int_equal(op_parse_duration("10x", &s), -1);
	assert_int_equal(op_parse_duration("-5s", &s), -1);
	assert_int_equal(op_parse_duration("5s10", &s), -1);
}

static void test_sizes(void **state)
{
	uint64_t b;
	char out[32];

	(void)state;
	assert_int_equal(op_parse_size("512", &b), 0);
	assert_true(b == 512);
	assert_int_equal(op_parse_size("64KiB", &b), 0);
	assert_true(b == 65536);
	assert_int_equal(op_parse_size("10MB", &b), 0);
	assert_true(b == 10000000);
	assert_int_equal(op_parse_size("1GiB", &b), 0);
	assert_true(b == 1073741824ULL);
	assert_int_equal(op_parse_size("1 GiB", &b), 0);
	assert_int_equal(op_parse_size("lots", &b), -1);
	assert_int_equal(op_parse_size("5XB", &b), -1);
	op_format_duration(5400, out, sizeof(out));
	assert_string_equal(out, "1h30m");
	op_format_duration(0.25, out, sizeof(out));
	assert_string_equal(out, "250ms");
	op_format_duration(90, out, sizeof(out));
	assert_string_equal(out, "90s");
	op_format_duration(7 * 86400, out, sizeof(out));
	assert_string_equal(out, "7d");
	op_format_duration(86400, out, sizeof(out));
	assert_string_equal(out, "24h");
	op_format_duration(3 * 86400 + 3600, out, sizeof(out));
	assert_string_equal(out, "73h");
}

static void check_schema(const char *schema, const char *instance, const char *want_err)
{
	cJSON *s = cJSON_Parse(schema), *i = cJSON_Parse(instance);
	char err[512] = "";

	assert_non_null(s);
	assert_non_null(i);
	assert_int_equal(op_schema_check(s, err, sizeof(err)), 0);
	if (want_err == NULL) {
		assert_int_equal(op_schema_validate(s, i, "params", err, sizeof(err)), 0);
	} else {
		assert_int_equal(op_schema_validate(s, i, "params", err, sizeof(err)), -1);
		assert_string_equal(err, want_err);
	}
	cJSON_Delete(s);
	cJSON_Delete(i);
}

static void test_schema(void **state)
{
	const char *obj = "{\"type\":\"object\",\"additionalProperties\":false,"
			  "\"required\":[\"url\"],\"properties\":{"
			  "\"url\":{\"type\":\"string\",\"pattern\":\"^https?://\"},"
			  "\"method\":{\"enum\":[\"GET\",\"POST\"]},"
			  "\"retries\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":5},"
			  "\"headers\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"
			  "\"codes\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":2},"
			  "\"body\":{\"type\":[\"string\",\"object\"]},"
			  "\"name\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}}}";

	(void)state;
	check_schema(obj, "{\"url\":\"https://x\"}", NULL);
	check_schema(obj, "{}", "params.url: required");
	check_schema(obj, "{\"url\":5}", "params.url: expected string, got number");
	check_schema(obj, "{\"url\":\"ftp://x\"}", "params.url: does not match pattern ^https?://");
	check_schema(obj, "{\"url\":\"http://x\",\"urll\":1}", "params.urll: unknown field");
	check_schema(obj, "{\"url\":\"http://x\",\"method\":\"PUT\"}",
		     "params.method: must be one of [\"GET\",\"POST\"]");
	check_schema(obj, "{\"url\":\"http://x\",\"retries\":1.5}",
		     "params.retries: expected integer, got number");
	check_schema(obj, "{\"url\":\"http://x\",\"retries\":9}", "params.retries: must be <= 5, got 9");
	check_schema(obj, "{\"url\":\"http://x\",\"headers\":{\"a\":1}}",
		     "params.headers.a: expected string, got number");
	check_schema(obj, "{\"url\":\"http://x\",\"codes\":[1,\"2\"]}",
		     "params.codes[1]: expected integer, got string");
	check_schema(obj, "{\"url\":\"http://x\",\"codes\":[1,2,3]}",
		     "params.codes: must have at most 2 items");
	check_schema(obj, "{\"url\":\"http://x\",\"body\":true}",
		     "params.body: expected string or object, got boolean");
	check_schema(obj, "{\"url\":\"http://x\",\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", NULL);
	check_schema(obj, "{\"url\":\"http://x\",\"name\":\"a\"}",
		     "params.name: must be at least 2 characters long");
}

static void test_schema_check(void **state)
{
	const char *bad[][2] = {
		{"{\"oneOf\":[]}", "schema at root: unsupported keyword \"oneOf\""},
		{"{\"type\":\"strnig\"}", "schema at root: unknown type \"strnig\""},
		{"{\"properties\":{\"a\":{\"minimum\":\"1\"}}}",
		 "schema at .a: \"minimum\" must be a number"},
		{"{\"pattern\":\"(\"}", "schema at root: \"pattern\" ( is not a valid regex"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *s = cJSON_Parse(bad[i][0]);
		char err[256];

		assert_int_equal(op_schema_check(s, err, sizeof(err)), -1);
		assert_string_equal(err, bad[i][1]);
		cJSON_Delete(s);
	}
}

static void test_schema_defaults(void **state)
{
	cJSON *s = cJSON_Parse("{\"properties\":{\"a\":{\"default\":3},\"o\":{\"properties\":"
			       "{\"b\":{\"default\":\"x\"}}}}}");
	cJSON *i = cJSON_Parse("{\"o\":{}}");
	char *out;

	(void)state;
	assert_int_equal(op_schema_apply_defaults(s, i), 0);
	out = cJSON_PrintUnformatted(i);
	assert_string_equal(out, "{\"o\":{\"b\":\"x\"},\"a\":3}");
	cJSON_free(out);
	cJSON_Delete(s);
	cJSON_Delete(i);
}

static void redacts(struct op_redactor *r, const char *in, const char *want)
{
	struct op_buf out = OP_BUF_INIT;

	assert_int_equal(op_redact(r, in, strlen(in), &out), 0);
	assert_string_equal(out.data, want);
	op_buf_release(&out);
}

static void test_redact(void **state)
{
	struct op_redactor r = {0};

	(void)state;
	assert_int_equal(op_redactor_add(&r, "hunter2", 7), 0);
	assert_int_equal(op_redactor_add(&r, "a\"b\nc", 5), 0);
	assert_int_equal(op_redactor_add(&r, "ab", 2), 0); /* too short: ignored */
	assert_int_equal((int)r.n, 2);
	redacts(&r, "password=hunter2;", "password=[REDACTED];");
	redacts(&r, "{\"p\":\"a\\\"b\\nc\"}", "{\"p\":\"[REDACTED]\"}");
	redacts(&r, "ab abc", "ab abc");
	redacts(&r, "token oe_abcdefghijklmnopqrstuvwxyz end", "token [REDACTED] end");
	redacts(&r, "admin oa_0123456789abcdef0123", "admin [REDACTED]");
	redacts(&r, "shoe_abcdefghijklmnopqrstu", "shoe_abcdefghijklmnopqrstu");
	redacts(NULL, "nothing here", "nothing here");
	redacts(NULL, "oe_abcdefghijklmnopqrstuvwxyz", "[REDACTED]");
	redacts(NULL, "x oa_0123456789abcde", "x oa_0123456789abcde"); /* too short a token */
	assert_true(op_redact_needed(&r, "xx hunter2", 10));
	assert_false(op_redact_needed(&r, "xx hunter", 9));
	assert_true(op_redact_needed(NULL, "(oe_abcdefghijklmnopqrstuvwxyz)", 31));
	op_redactor_release(&r);
	/* A value that starts with a byte JSON escapes: its escaped form starts with '\'. */
	assert_int_equal(op_redactor_add(&r, "\"quoted\"", 8), 0);
	redacts(&r, "raw \"quoted\" end", "raw [REDACTED] end");
	redacts(&r, "{\"p\":\"\\\"quoted\\\"\"}", "{\"p\":\"[REDACTED]\"}");
	redacts(&r, "ends with a backslash \\", "ends with a backslash \\");
	op_redactor_release(&r);
	assert_int_equal(op_redactor_add(&r, "hunter2", 7), 0); /* usable again after release */
	redacts(&r, "\"quoted\" hunter2", "\"quoted\" [REDACTED]");
	op_redactor_release(&r);
}

static void test_redact_stream(void **state)
{
	struct op_redactor r = {0};
	struct op_buf pending = OP_BUF_INIT, out = OP_BUF_INIT;
	const char *chunks[] = {"the pass", "word is hun", "ter", "2 and more text"};

	(void)state;
	assert_int_equal(op_redactor_add(&r, "hunter2", 7), 0);
	for (size_t i = 0; i < 4; i++) {
		op_buf_puts(&pending, chunks[i]);
		assert_int_equal(op_redact_stream(&r, &pending, 0, &out), 0);
	}
	assert_int_equal(op_redact_stream(&r, &pending, 1, &out), 0);
	assert_string_equal(out.data, "the password is [REDACTED] and more text");
	op_buf_release(&pending);
	op_buf_release(&out);
	op_redactor_release(&r);
}

static void test_canonical(void **state)
{
	cJSON *v = cJSON_Parse("{\"b\":[1,2.5,{\"z\":null,\"a\":true}],\"a\":\"x\\ny\",\"c\":1e3}");
	cJSON *dup = cJSON_Parse("{\"a\":1,\"a\":2}");
	struct op_buf out = OP_BUF_INIT;

	(void)state;
	assert_int_equal(op_json_canonical(v, &out), 0);
	assert_string_equal(out.data, "{\"a\":\"x\\ny\",\"b\":[1,2.5,{\"a\":true,\"z\":null}],\"c\":1000}");
	op_buf_reset(&out);
	assert_int_equal(op_json_canonical(dup, &out), -1);
	op_buf_release(&out);
	cJSON_Delete(v);
	cJSON_Delete(dup);
}

static void test_buf(void **state)
{
	struct op_buf b = OP_BUF_INIT;
	char *s;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(op_buf_printf(&b, "%d,", i), 0);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	op_buf_consume(&b, 4);
	assert_int_equal(strncmp(b.data, "2,3,", 4), 0);
	s = op_buf_detach(&b);
	assert_null(b.data);
	free(s);
}

/* Every number reads back as the same double; the tree is as it was afterwards; a value
 * inside a list prints alone. */
static void test_json_print(void **state)
{
	const char *in = "{\"f\":0.30000000000000004,\"big\":9007199254740991,\"i\":42,"
			 "\"neg\":-1.5,\"tiny\":5e-324,\"a\":[0.1,1e+300,2.000000000000001]}";
	cJSON *v = cJSON_Parse(in), *back;
	char *text;

	(void)state;
	assert_non_null(v);
	text = op_json_print(v, false);
	assert_non_null(text);
	assert_string_equal(text, "{\"f\":0.30000000000000004,\"big\":9007199254740991,"
				  "\"i\":42,\"neg\":-1.5,\"tiny\":4.94065645841247e-324,"
				  "\"a\":[0.1,1e+300,2.0000000000000009]}");
	back = cJSON_Parse(text);
	assert_true(cJSON_Compare(v, back, true));
	cJSON_free(text);
	cJSON_Delete(back);
	/* Restored: numbers again, no text left on them. */
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(v, "f")));
	assert_null(cJSON_GetObjectItem(v, "f")->valuestring);
	assert_true(cJSON_IsNumber(cJSON_GetArrayItem(cJSON_GetObjectItem(v, "a"), 2)));
	/* One member of an object: its siblings are not printed. */
	text = op_json_print(cJSON_GetObjectItem(v, "a"), false);
	assert_string_equal(text, "[0.1,1e+300,2.0000000000000009]");
	cJSON_free(text);
	text = op_json_print(cJSON_GetObjectItem(v, "big"), true);
	assert_string_equal(text, "9007199254740991");
	cJSON_free(text);
	assert_null(op_json_print(NULL, false));
	cJSON_Delete(v);
}

static void prints_number(double d, const char *want)
{
	cJSON *n = cJSON_CreateNumber(d);
	char *text = op_json_print(n, false);

	assert_non_null(text);
	assert_string_equal(text, want);
	cJSON_free(text);
	cJSON_Delete(n);
}

/* Integers and decimals of up to 9 places are written from integers, the rest with %g; all
 * read back as the same double, bit for bit. */
static void test_json_numbers(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15u;

	(void)state;
	prints_number(53e-6, "0.000053");
	prints_number(0.001161, "0.001161");
	prints_number(-0.25, "-0.25");
	prints_number(123456.789012, "123456.789012");
	prints_number(1.000000001, "1.000000001");
	prints_number(-0.0, "0");
	prints_number(1e15, "1000000000000000");
	prints_number(-9007199254740991.0, "-9007199254740991");
	prints_number(9007199254740992.0, "9007199254740992"); /* 2^53: %1.17g */
	prints_number(1e-10, "1e-10");
	prints_number(0.1 + 0.2, "0.30000000000000004");
	for (int i = 0; i < 200000; i++) {
		cJSON *n;
		char *text;
		double d;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		if (i % 3 == 0) { /* a decimal: K / 10^s */
			static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

			d = (double)(int64_t)(x >> 11) / p10[i % 10];
			if (i & 1)
				d = -d;
		} else if (i % 3 == 1) { /* small: microsecond-ish timings */
			d = (double)(x % 100000000) / 1e6;
		} else { /* any finite double */
			memcpy(&d, &x, sizeof(d));
			if (isnan(d) || isinf(d))
				continue;
		}
		n = cJSON_CreateNumber(d);
		text = op_json_print(n, false);
		assert_non_null(text);
		if (strtod(text, NULL) != d)
			fail_msg("%.17g printed as %s", d, text);
		cJSON_free(text);
		cJSON_Delete(n);
	}
}

/* This process's private resident memory, KiB. */
static long rss_anon_kib(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Prepared heap is resident and stays, allocations then take it, and release gives it back. */
static void test_heap(void **state)
{
	enum { N = 20000 };
	static char *blocks[N];
	long base, prepared, used, released;
	const char *preload = getenv("LD_PRELOAD");

	(void)state;
	/* Not with valgrind's allocator (its preload library) or a sanitizer's (mallopt fails). */
	if ((preload && strstr(preload, "vgpreload")) || !op_heap_retain(0))
		skip();
	op_heap_release();
	base = rss_anon_kib();
	op_heap_prepare(24u << 20); /* two blocks and part of a third */
	prepared = rss_anon_kib();
	if (prepared - base < 20 * 1024)
		fail_msg("24 MiB prepared, private memory %ld -> %ld KiB", base, prepared);
	for (int i = 0; i < N; i++) {
		blocks[i] = malloc(1000);
		assert_non_null(blocks[i]);
		memset(blocks[i], 1, 1000);
	}
	used = rss_anon_kib();
	if (used - prepared > 1024)
		fail_msg("20 MB allocated in the prepared heap took %ld KiB more", used - prepared);
	for (int i = 0; i < N; i++)
		free(blocks[i]);
	op_heap_prepare_json(1000); /* too small to bother */
	if (rss_anon_kib() < prepared - 1024)
		fail_msg("the freed heap was given back before op_heap_release()");
	op_heap_release();
	released = rss_anon_kib();
	if (prepared - released < 20 * 1024)
		fail_msg("op_heap_release() left %ld KiB of %ld", released, prepared);
	/* the same with a write a page */
	op_heap_prepare_idle(8u << 20);
	prepared = rss_anon_kib();
	if (prepared - released < 7 * 1024)
		fail_msg("8 MiB prepared idle, private memory %ld -> %ld KiB", released, prepared);
	op_heap_release();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),    cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_schema),	     cmocka_unit_test(test_schema_check),
		cmocka_unit_test(test_schema_defaults), cmocka_unit_test(test_redact),
		cmocka_unit_test(test_redact_stream), cmocka_unit_test(test_json_numbers),
		cmocka_unit_test(test_canonical),
		cmocka_unit_test(test_json_print),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_heap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
