/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of the ssh plugin: buffers, shell quoting, UTF-8, base64, local path policy. */
#include "sshp.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int sshp_buf_add(struct sshp_buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL)
			return -1;
		b->data = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int sshp_buf_addf(struct sshp_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return sshp_buf_add(b, small, (size_t)n);
	{
		char *big = malloc((size_t)n + 1);
		int rc;

		if (big == NULL)
			return -1;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		rc = sshp_buf_add(b, big, (size_t)n);
		free(big);
		return rc;
	}
}

void sshp_buf_release(struct sshp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int sshp_shell_quote(struct sshp_buf *b, const char *s)
{
	if (sshp_buf_add(b, "'", 1) < 0)
		return -1;
	for (; *s; s++) {
		if (*s == '\'') {
			if (sshp_buf_add(b, "'\\''", 4) < 0)
				return -1;
		} else if (sshp_buf_add(b, s, 1) < 0) {
			return -1;
		}
	}
	return sshp_buf_add(b, "'", 1);
}

/* Length of the valid UTF-8 sequence at P (at most N bytes), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t need, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		need = 2;
		cp = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		need = 3;
		cp = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return need;
}

char *sshp_utf8_sanitize(const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	struct sshp_buf b = {0};
	size_t i = 0;

	if (sshp_buf_add(&b, "", 0) < 0)
		return NULL;
	while (i < len) {
		size_t n = p[i] == 0 ? 0 : utf8_seq(p + i, len - i);

		if (n == 0) {
			if (sshp_buf_add(&b, "\xEF\xBF\xBD", 3) < 0)
				goto fail;
			i++;
		} else {
			if (sshp_buf_add(&b, p + i, n) < 0)
				goto fail;
			i += n;
		}
	}
	return b.data;
fail:
	sshp_buf_release(&b);
	return NULL;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int sshp_base64_decode(const char *text, unsigned char **out, size_t *out_len)
{
	size_t len = strlen(text), n = 0;
	unsigned char *buf = malloc(len / 4 * 3 + 4);
	uint32_t acc = 0;
	int bits = 0;
	bool padding = false;

	if (buf == NULL)
		return -1;
	for (const char *p = text; *p; p++) {
		int v;

		if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
			continue;
		if (*p == '=') {
			padding = true;
			continue;
		}
		v = b64_value((unsigned char)*p);
		if (v < 0 || padding) {
			free(buf);
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits >= 6) { /* a lone sixth of a byte: not base64 */
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = n;
	return 0;
}

double sshp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Removes "." and ".." components and duplicate slashes from the absolute PATH, in place.
 * Returns -1 when ".." would climb above the root. */
static int normalize(char *path)
{
	char *out = path, *p = path;

	while (*p) {
		char *seg;
		size_t n;

		while (*p == '/')
			p++;
		seg = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - seg);
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			if (out == path)
				return -1;
			while (out > path && *--out != '/')
				;
			continue;
		}
		*out++ = '/';
		memmove(out, seg, n);
		out += n;
	}
	if (out == path)
		*out++ = '/';
	*out = '\0';
	return 0;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int sshp_local_path(outpost_ctx *ctx, struct sshp_state *st, const char *key, const char *path,
		    bool for_write, char *out, size_t outlen)
{
	const char *ws = outpost_host->workspace(ctx);
	char joined[PATH_MAX], real[PATH_MAX], parent[PATH_MAX];
	char *slash;
	size_t i;

	if (path[0] == '/')
		snprintf(joined, sizeof(joined), "%s", path);
	else
		snprintf(joined, sizeof(joined), "%s/%s", ws ? ws : ".", path);
	if (normalize(joined) < 0)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.%s: %s climbs above /", key,
				    path);
	/* Resolve symlinks in the directory part, so a link cannot lead outside. */
	snprintf(parent, sizeof(parent), "%s", joined);
	slash = strrchr(parent, '/');
	if (slash == parent)
		parent[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (realpath(parent, real) == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_FAILED, "params.%s: cannot use directory %s: %s",
				    key, parent, strerror(errno));
	if (snprintf(out, outlen, "%s%s%s", real, strcmp(real, "/") ? "/" : "",
		     strrchr(joined, '/') + 1) >= (int)outlen)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.%s: path too long", key);
	if (!for_write) {
		/* The file itself may be a symlink: check where it leads. */
		if (realpath(out, real) == NULL)
			return outpost_fail(ctx, OUTPOST_ERR_FAILED, "params.%s: cannot read %s: %s",
					    key, out, strerror(errno));
		snprintf(out, outlen, "%s", real);
	}
	if (ws != NULL) {
		char wsreal[PATH_MAX];

		if (realpath(ws, wsreal) != NULL && under(out, wsreal))
			return OUTPOST_OK;
	}
	for (i = 0; i < st->n_local_paths; i++) {
		char root[PATH_MAX];

		if (realpath(st->local_paths[i], root) != NULL && under(out, root))
			return OUTPOST_OK;
	}
	{
		struct sshp_buf list = {0};

		for (i = 0; i < st->n_local_paths; i++)
			sshp_buf_addf(&list, "%s%s", i ? ", " : "", st->local_paths[i]);
		outpost_fail(ctx, OUTPOST_ERR_DENIED,
			     "params.%s: %s is outside the task workspace and the directories the "
			     "ssh plugin may use (plugins.config.ssh.local_paths: %s); add its "
			     "directory there in the agent config to allow it",
			     key, out, list.data ? list.data : "none set");
		sshp_buf_release(&list);
	}
	return OUTPOST_ERR_DENIED;
}

void sshp_hex(const unsigned char *digest, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[2 * n] = '\0';
}

void sshp_human_size(uint64_t bytes, char *out, size_t outlen)
{
	if (bytes >= 1024ULL * 1024 * 1024)
		snprintf(out, outlen, "%.1f GiB", (double)bytes / (1024.0 * 1024 * 1024));
	else if (bytes >= 1024ULL * 1024)
		snprintf(out, outlen, "%.1f MiB", (double)bytes / (1024.0 * 1024));
	else if (bytes >= 1024)
		snprintf(out, outlen, "%.1f KiB", (double)bytes / 1024.0);
	else
		snprintf(out, outlen, "%llu bytes", (unsigned long long)bytes);
}
