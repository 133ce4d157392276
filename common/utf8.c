/* SPDX-License-Identifier: Apache-2.0 */
/* A small UTF-8 validator (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
#include "utf8.h"

/* The length of the valid sequence at S (left bytes available), 0 if invalid, -1 if it is
 * a valid start that needs more bytes than are left. */
static int seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	int n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((size_t)i >= left)
			return -1;
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		if (i == 1) {
			if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
			    (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
				return 0;
		}
	}
	return n;
}

size_t op_utf8_boundary(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		int n = seq_len((const unsigned char *)s + i, len - i);

		if (n < 0)
			return i;
		i += n == 0 ? 1 : (size_t)n;
	}
	return len;
}

int op_utf8_append(struct op_buf *out, const char *s, size_t len)
{
	size_t i = 0, start = 0;

	while (i < len) {
		int n = seq_len((const unsigned char *)s + i, len - i);

		if (n > 0) {
			i += (size_t)n;
			continue;
		}
		if (op_buf_append(out, s + start, i - start) < 0 ||
		    op_buf_append(out, "\xEF\xBF\xBD", 3) < 0)
			return -1;
		i++;
		start = i;
	}
	return op_buf_append(out, s + start, len - start);
}
