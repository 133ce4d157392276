/* SPDX-License-Identifier: Apache-2.0 */
/* Canonical JSON serialisation over cJSON. */
#include "canonjson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_keys(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

	return strcmp(x->string, y->string);
}

static int put_string(const char *s, struct op_buf *out)
{
	cJSON *tmp = cJSON_CreateString(s);
	char *text;
	int rc;

	if (tmp == NULL)
		return -1;
	text = cJSON_PrintUnformatted(tmp);
	cJSON_Delete(tmp);
	if (text == NULL)
		return -1;
	rc = op_buf_puts(out, text);
	cJSON_free(text);
	return rc;
}

int op_json_canonical(const cJSON *v, struct op_buf *out)
{
	if (cJSON_IsNull(v))
		return op_buf_puts(out, "null");
	if (cJSON_IsTrue(v))
		return op_buf_puts(out, "true");
	if (cJSON_IsFalse(v))
		return op_buf_puts(out, "false");
	if (cJSON_IsString(v))
		return put_string(v->valuestring, out);
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (!isfinite(d))
			return -1;
		if (floor(d) == d && fabs(d) <= 9007199254740992.0)
			return op_buf_printf(out, "%lld", (long long)d);
		return op_buf_printf(out, "%.17g", d);
	}
	if (cJSON_IsArray(v)) {
		const cJSON *item;
		int first = 1;

		if (op_buf_puts(out, "[") < 0)
			return -1;
		cJSON_ArrayForEach(item, v)
		{
			if ((!first && op_buf_puts(out, ",") < 0) || op_json_canonical(item, out) < 0)
				return -1;
			first = 0;
		}
		return op_buf_puts(out, "]");
	}
	if (cJSON_IsObject(v)) {
		const cJSON *item;
		const cJSON **members;
		size_t n = 0, i;
		int rc = -1;

		cJSON_ArrayForEach(item, v) n++;
		members = calloc(n ? n : 1, sizeof(*members));
		if (members == NULL)
			return -1;
		i = 0;
		cJSON_ArrayForEach(item, v) members[i++] = item;
		qsort(members, n, sizeof(*members), cmp_keys);
		for (i = 1; i < n; i++)
			if (strcmp(members[i - 1]->string, members[i]->string) == 0)
				goto out;
		if (op_buf_puts(out, "{") < 0)
			goto out;
		for (i = 0; i < n; i++) {
			if ((i && op_buf_puts(out, ",") < 0) || put_string(members[i]->string, out) < 0 ||
			    op_buf_puts(out, ":") < 0 || op_json_canonical(members[i], out) < 0)
				goto out;
		}
		rc = op_buf_puts(out, "}");
out:
		free(members);
		return rc;
	}
	return -1;
}
