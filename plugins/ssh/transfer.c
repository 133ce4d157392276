/* SPDX-License-Identifier: Apache-2.0 */
/* ssh.upload and ssh.download over SFTP: temp name + rename on upload, SHA-256 both ways. */
#include "sshp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 32768   /* libssh 0.10's SFTP read/write size without the limits extension */
#define DEPTH 32      /* download reads in flight */

/* A readable reason for the last SFTP error. */
static const char *sftp_reason(sftp_session sftp, ssh_session s)
{
	switch (sftp_get_error(sftp)) {
	case SSH_FX_NO_SUCH_FILE:
	case SSH_FX_NO_SUCH_PATH:
		return "no such file or directory";
	case SSH_FX_PERMISSION_DENIED:
		return "permission denied";
	case SSH_FX_FILE_ALREADY_EXISTS:
		return "it already exists";
	case SSH_FX_WRITE_PROTECT:
		return "the file system is read-only";
	case SSH_FX_OP_UNSUPPORTED:
		return "the server does not support this operation";
	default:
		return ssh_get_error(s);
	}
}

/* Opens the SFTP subsystem on the target. */
static int open_sftp(outpost_ctx *ctx, struct sshp_conn *conn, sftp_session *out)
{
	sftp_session sftp = sftp_new(conn->target);

	*out = NULL;
	if (sftp == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_FAILED,
				    "%s does not offer SFTP (the sftp subsystem): %s; check the "
				    "Subsystem sftp line of its sshd_config",
				    conn->target_label, ssh_get_error(conn->target));
	if (sftp_init(sftp) != SSH_OK) {
		int rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot start SFTP on %s: %s",
				      conn->target_label, ssh_get_error(conn->target));

		sftp_free(sftp);
		return rc;
	}
	*out = sftp;
	return OUTPOST_OK;
}

static void progress(outpost_ctx *ctx, uint64_t done, uint64_t total, double *last)
{
	double now = sshp_now();

	if (now - *last < 0.5 && done < total)
		return;
	*last = now;
	if (total > 0) {
		char a[32], b[32];

		sshp_human_size(done, a, sizeof(a));
		sshp_human_size(total, b, sizeof(b));
		outpost_host->progress(ctx, (double)done / (double)total, NULL);
		outpost_debug(ctx, "%s of %s", a, b);
	}
}

static int parse_mode(const char *text, unsigned *mode)
{
	unsigned m = 0;

	for (; *text; text++) {
		if (*text < '0' || *text > '7')
			return -1;
		m = m * 8 + (unsigned)(*text - '0');
	}
	if (m > 07777)
		return -1;
	*mode = m;
	return 0;
}

/* Splits remote PATH into its directory ("." when none) and base name. */
static int split_path(const char *path, char *dir, size_t dlen, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		snprintf(dir, dlen, ".");
		*base = path;
	} else if (slash == path) {
		snprintf(dir, dlen, "/");
		*base = slash + 1;
	} else {
		if ((size_t)(slash - path) >= dlen)
			return -1;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		*base = slash + 1;
	}
	return **base ? 0 : -1;
}

/* Creates DIR and its missing parents on the server. */
static int mkdir_p(sftp_session sftp, const char *dir)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(dir);
	sftp_attributes a;

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		a = sftp_stat(sftp, buf);
		if (a == NULL) {
			if (sftp_mkdir(sftp, buf, 0755) < 0 &&
			    sftp_get_error(sftp) != SSH_FX_FILE_ALREADY_EXISTS) {
				if (i < n)
					buf[i] = '/';
				return -1;
			}
		} else {
			sftp_attributes_free(a);
		}
		if (i < n)
			buf[i] = '/';
	}
	return 0;
}

/* ---- upload ----------------------------------------------------------------------------- */

struct upload {
	const char *path, *content, *encoding, *source, *mode_text;
	bool atomic, mkdirs, overwrite;
};

static int upload_parse(outpost_ctx *ctx, const cJSON *p, struct upload *u)
{
	memset(u, 0, sizeof(*u));
	if (outpost_req_str(ctx, p, "path", &u->path) < 0 ||
	    outpost_get_str(ctx, p, "content", &u->content, NULL) < 0 ||
	    outpost_get_str(ctx, p, "encoding", &u->encoding, "utf-8") < 0 ||
	    outpost_get_str(ctx, p, "source", &u->source, NULL) < 0 ||
	    outpost_get_str(ctx, p, "mode", &u->mode_text, NULL) < 0 ||
	    outpost_get_bool(ctx, p, "atomic", &u->atomic, true) < 0 ||
	    outpost_get_bool(ctx, p, "mkdirs", &u->mkdirs, false) < 0 ||
	    outpost_get_bool(ctx, p, "overwrite", &u->overwrite, true) < 0)
		return OUTPOST_ERR_PARAMS;
	return OUTPOST_OK;
}

int sshp_upload_validate(outpost_ctx *ctx, struct sshp_state *st, const cJSON *p)
{
	struct sshp_target t;
	struct upload u;
	char dir[PATH_MAX];
	const char *base;
	unsigned mode;
	int rc;

	(void)st;
	rc = sshp_target_parse(ctx, p, &t);
	if (rc == OUTPOST_OK)
		rc = upload_parse(ctx, p, &u);
	if (rc != OUTPOST_OK)
		return rc;
	if ((u.content == NULL) == (u.source == NULL))
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params: give either content (the data itself) or source (a "
				    "local file), not %s",
				    u.content == NULL ? "neither" : "both");
	if (u.source != NULL && strcmp(u.encoding, "utf-8") != 0)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.encoding: only applies to content");
	if (u.content != NULL && strcmp(u.encoding, "base64") == 0) {
		unsigned char *bytes = NULL;
		size_t n;

		if (sshp_base64_decode(u.content, &bytes, &n) < 0)
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					    "params.content: not valid base64");
		free(bytes);
	}
	if (u.mode_text != NULL && parse_mode(u.mode_text, &mode) < 0)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.mode: \"%s\" is not an octal mode such as \"0644\"",
				    u.mode_text);
	if (split_path(u.path, dir, sizeof(dir), &base) < 0 || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.path: \"%s\" does not name a file", u.path);
	return OUTPOST_OK;
}

int sshp_upload(outpost_ctx *ctx, struct sshp_state *st, const cJSON *p)
{
	struct sshp_target t;
	struct sshp_conn conn;
	struct upload u;
	sftp_session sftp = NULL;
	sftp_file f = NULL;
	sftp_attributes existing = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *decoded = NULL, digest[32], *chunk = NULL;
	const unsigned char *mem = NULL;
	char dir[PATH_MAX], tmp[PATH_MAX + 64], local[PATH_MAX], hex[65], size_text[32];
	const char *base;
	uint64_t total = 0, sent = 0;
	unsigned mode = 0644;
	double t0 = sshp_now(), last = 0;
	bool connected = false, tmp_made = false, replaced = false, atomic_replace = true;
	int fd = -1, rc;
	cJSON *result = NULL;

	rc = sshp_target_parse(ctx, p, &t);
	if (rc == OUTPOST_OK)
		rc = upload_parse(ctx, p, &u);
	if (rc != OUTPOST_OK)
		return rc;
	(void)split_path(u.path, dir, sizeof(dir), &base);
	if (u.content != NULL) {
		if (strcmp(u.encoding, "base64") == 0) {
			if (sshp_base64_decode(u.content, &decoded, &total) < 0)
				return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
						    "params.content: not valid base64");
			mem = decoded;
		} else {
			mem = (const unsigned char *)u.content;
			total = strlen(u.content);
		}
	} else {
		struct stat sb;

		rc = sshp_local_path(ctx, st, "source", u.source, false, local, sizeof(local));
		if (rc != OUTPOST_OK)
			return rc;
		fd = open(local, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return outpost_fail(ctx, OUTPOST_ERR_FAILED, "params.source: cannot open %s: %s",
					    local, strerror(errno));
		if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			close(fd);
			return outpost_fail(ctx, OUTPOST_ERR_FAILED,
					    "params.source: %s is not a regular file", local);
		}
		total = (uint64_t)sb.st_size;
	}
	md = EVP_MD_CTX_new();
	chunk = malloc(CHUNK);
	if (md == NULL || chunk == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}

	rc = sshp_connect(ctx, st, &t, &conn);
	if (rc != OUTPOST_OK)
		goto out;
	connected = true;
	rc = open_sftp(ctx, &conn, &sftp);
	if (rc != OUTPOST_OK)
		goto out;
	if (u.mkdirs && mkdir_p(sftp, dir) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot create directory %s on %s: %s",
				  dir, conn.target_label, sftp_reason(sftp, conn.target));
		goto out;
	}
	existing = sftp_stat(sftp, u.path);
	if (existing != NULL) {
		if (existing->type == SSH_FILEXFER_TYPE_DIRECTORY) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "%s on %s is a directory: params.path must name the file "
					  "to write",
					  u.path, conn.target_label);
			goto out;
		}
		if (!u.overwrite) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "%s already exists on %s and params.overwrite is false",
					  u.path, conn.target_label);
			goto out;
		}
		mode = existing->permissions & 07777;
	}
	if (u.mode_text != NULL)
		(void)parse_mode(u.mode_text, &mode);
	if (u.atomic) {
		unsigned char rnd[4] = {0};

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			unsigned v = (unsigned)getpid() ^ (unsigned)(sshp_now() * 1e6);

			memcpy(rnd, &v, sizeof(rnd));
		}
		snprintf(tmp, sizeof(tmp), "%s%s.%s.outpost-%02x%02x%02x%02x", dir,
			 strcmp(dir, "/") == 0 ? "" : "/", base, rnd[0], rnd[1], rnd[2], rnd[3]);
		if (strcmp(dir, ".") == 0)
			snprintf(tmp, sizeof(tmp), ".%s.outpost-%02x%02x%02x%02x", base, rnd[0],
				 rnd[1], rnd[2], rnd[3]);
		f = sftp_open(sftp, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	} else {
		snprintf(tmp, sizeof(tmp), "%s", u.path);
		f = sftp_open(sftp, tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
	}
	if (f == NULL) {
		bool denied = sftp_get_error(sftp) == SSH_FX_PERMISSION_DENIED;

		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot create %s on %s: %s%s", tmp,
				  conn.target_label, sftp_reason(sftp, conn.target),
				  denied && u.atomic
					  ? " (an atomic upload writes a temp file beside the target, "
					    "so the directory must be writable; \"atomic\": false writes "
					    "the file in place)"
					  : "");
		goto out;
	}
	tmp_made = u.atomic;
	while (sent < total) {
		size_t n = total - sent < CHUNK ? (size_t)(total - sent) : CHUNK;
		const unsigned char *data;

		if (sshp_cancelled(ctx, st)) {
			rc = outpost_fail(ctx, OUTPOST_ERR_CANCELLED,
					  "cancelled after %llu of %llu bytes; the partial file "
					  "was removed",
					  (unsigned long long)sent, (unsigned long long)total);
			goto out;
		}
		if (mem != NULL) {
			data = mem + sent;
		} else {
			ssize_t r = read(fd, chunk, n);

			if (r <= 0) {
				rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
						  "params.source: %s changed while it was read (%s)",
						  local, r < 0 ? strerror(errno) : "shorter than before");
				goto out;
			}
			n = (size_t)r;
			data = chunk;
		}
		EVP_DigestUpdate(md, data, n);
		if (sftp_write(f, data, n) != (ssize_t)n) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "writing %s on %s failed: %s", tmp,
					  conn.target_label, sftp_reason(sftp, conn.target));
			goto out;
		}
		sent += n;
		progress(ctx, sent, total, &last);
	}
	if (sftp_extension_supported(sftp, "fsync@openssh.com", "1") && sftp_fsync(f) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "syncing %s on %s failed: %s", tmp,
				  conn.target_label, sftp_reason(sftp, conn.target));
		goto out;
	}
	if (sftp_close(f) < 0) {
		f = NULL;
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "closing %s on %s failed: %s", tmp,
				  conn.target_label, sftp_reason(sftp, conn.target));
		goto out;
	}
	f = NULL;
	if (sftp_chmod(sftp, tmp, mode) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot set mode %04o on %s on %s: %s",
				  mode, tmp, conn.target_label, sftp_reason(sftp, conn.target));
		goto out;
	}
	if (u.atomic) {
		bool posix_rename = false;

#if LIBSSH_VERSION_INT >= SSH_VERSION_INT(0, 11, 0)
		/* libssh >= 0.11 sends posix-rename@openssh.com when the server offers it:
		 * the target is replaced atomically. */
		posix_rename = sftp_extension_supported(sftp, "posix-rename@openssh.com", "1");
#endif
		if (existing != NULL && !posix_rename) {
			/* libssh 0.10 has no posix-rename and SFTP's rename refuses an existing
			 * target: remove it first. For that short window the path does not
			 * exist (docs/plugins/ssh.md). */
			atomic_replace = false;
			if (sftp_unlink(sftp, u.path) < 0 &&
			    sftp_get_error(sftp) != SSH_FX_NO_SUCH_FILE) {
				rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
						  "cannot replace %s on %s: removing the old file "
						  "failed: %s",
						  u.path, conn.target_label,
						  sftp_reason(sftp, conn.target));
				goto out;
			}
		}
		if (sftp_rename(sftp, tmp, u.path) < 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "cannot rename %s to %s on %s: %s", tmp, u.path,
					  conn.target_label, sftp_reason(sftp, conn.target));
			goto out;
		}
		tmp_made = false;
	}
	replaced = existing != NULL;
	EVP_DigestFinal_ex(md, digest, NULL);
	sshp_hex(digest, sizeof(digest), hex);
	sshp_human_size(total, size_text, sizeof(size_text));
	outpost_info(ctx, "uploaded %s to %s:%s (sha256 %s)", size_text, conn.target_label,
		     u.path, hex);
	result = cJSON_CreateObject();
	if (result == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	{
		char mode_text[8];
		double secs = sshp_now() - t0;

		snprintf(mode_text, sizeof(mode_text), "%04o", mode);
		cJSON_AddStringToObject(result, "host", t.hops[t.n_hops - 1].host);
		cJSON_AddStringToObject(result, "path", u.path);
		cJSON_AddNumberToObject(result, "size", (double)total);
		cJSON_AddStringToObject(result, "sha256", hex);
		cJSON_AddStringToObject(result, "mode", mode_text);
		cJSON_AddBoolToObject(result, "replaced", replaced);
		if (replaced && u.atomic)
			cJSON_AddBoolToObject(result, "atomic_replace", atomic_replace);
		cJSON_AddNumberToObject(result, "duration", secs);
		cJSON_AddNumberToObject(result, "bytes_per_second",
					secs > 0 ? (double)total / secs : 0);
	}
	rc = outpost_set_result(ctx, result) < 0
		     ? outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "cannot hand over the result")
		     : OUTPOST_OK;
out:
	if (f != NULL)
		sftp_close(f);
	if (tmp_made && sftp != NULL && ssh_is_connected(conn.target))
		(void)sftp_unlink(sftp, tmp);
	sftp_attributes_free(existing);
	if (sftp != NULL)
		sftp_free(sftp);
	if (connected)
		sshp_conn_release(&conn);
	if (fd >= 0)
		close(fd);
	cJSON_Delete(result);
	EVP_MD_CTX_free(md);
	free(chunk);
	free(decoded);
	return rc;
}

/* ---- download --------------------------------------------------------------------------- */

struct download {
	const char *path, *artifact, *local_path, *sha256;
	uint64_t max_size;
};

static int download_parse(outpost_ctx *ctx, const cJSON *p, struct download *d)
{
	memset(d, 0, sizeof(*d));
	if (outpost_req_str(ctx, p, "path", &d->path) < 0 ||
	    outpost_get_str(ctx, p, "artifact", &d->artifact, NULL) < 0 ||
	    outpost_get_str(ctx, p, "local_path", &d->local_path, NULL) < 0 ||
	    outpost_get_str(ctx, p, "sha256", &d->sha256, NULL) < 0 ||
	    outpost_get_size(ctx, p, "max_size", &d->max_size, 0) < 0)
		return OUTPOST_ERR_PARAMS;
	return OUTPOST_OK;
}

static bool valid_artifact(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && strlen(name) <= 200 &&
	       strchr(name, '/') == NULL;
}

int sshp_download_validate(outpost_ctx *ctx, struct sshp_state *st, const cJSON *p)
{
	struct sshp_target t;
	struct download d;
	char dir[PATH_MAX];
	const char *base;
	int rc;

	(void)st;
	rc = sshp_target_parse(ctx, p, &t);
	if (rc == OUTPOST_OK)
		rc = download_parse(ctx, p, &d);
	if (rc != OUTPOST_OK)
		return rc;
	if (d.artifact != NULL && d.local_path != NULL)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params: give artifact or local_path, not both");
	if (split_path(d.path, dir, sizeof(dir), &base) < 0)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.path: \"%s\" does not name a file", d.path);
	if (d.artifact == NULL && d.local_path == NULL && !valid_artifact(base))
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.artifact: \"%s\" cannot be an artifact name (no leading "
				    "dot, at most 200 bytes): name the artifact",
				    base);
	if (d.artifact != NULL && !valid_artifact(d.artifact))
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.artifact: \"%s\" is not a plain file name (no '/', no "
				    "leading dot, at most 200 bytes)",
				    d.artifact);
	return OUTPOST_OK;
}

int sshp_download(outpost_ctx *ctx, struct sshp_state *st, const cJSON *p)
{
	struct sshp_target t;
	struct sshp_conn conn;
	struct download d;
	sftp_session sftp = NULL;
	sftp_file f = NULL;
	sftp_attributes a = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char digest[32], *chunk = NULL;
	char dir[PATH_MAX], local[PATH_MAX], partial[PATH_MAX + 32], hex[65], size_text[32];
	const char *base, *name = NULL;
	uint64_t size, got = 0;
	int ids[DEPTH], head = 0, count = 0, fd = -1, rc;
	double t0 = sshp_now(), last = 0;
	bool connected = false, eof = false, keep = false;
	cJSON *result = NULL;

	partial[0] = '\0';
	rc = sshp_target_parse(ctx, p, &t);
	if (rc == OUTPOST_OK)
		rc = download_parse(ctx, p, &d);
	if (rc != OUTPOST_OK)
		return rc;
	(void)split_path(d.path, dir, sizeof(dir), &base);
	if (d.local_path != NULL) {
		rc = sshp_local_path(ctx, st, "local_path", d.local_path, true, local, sizeof(local));
		if (rc != OUTPOST_OK)
			return rc;
	}
	md = EVP_MD_CTX_new();
	chunk = malloc(CHUNK);
	if (md == NULL || chunk == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = sshp_connect(ctx, st, &t, &conn);
	if (rc != OUTPOST_OK)
		goto out;
	connected = true;
	rc = open_sftp(ctx, &conn, &sftp);
	if (rc != OUTPOST_OK)
		goto out;
	a = sftp_stat(sftp, d.path);
	if (a == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot read %s on %s: %s", d.path,
				  conn.target_label, sftp_reason(sftp, conn.target));
		goto out;
	}
	if (a->type != SSH_FILEXFER_TYPE_REGULAR) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
				  "%s on %s is not a regular file (a directory or a device?)",
				  d.path, conn.target_label);
		goto out;
	}
	size = a->size;
	if (d.max_size > 0 && size > d.max_size) {
		char lim[32];

		sshp_human_size(size, size_text, sizeof(size_text));
		sshp_human_size(d.max_size, lim, sizeof(lim));
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
				  "%s on %s is %s, more than params.max_size (%s)", d.path,
				  conn.target_label, size_text, lim);
		goto out;
	}
	f = sftp_open(sftp, d.path, O_RDONLY, 0);
	if (f == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot open %s on %s: %s", d.path,
				  conn.target_label, sftp_reason(sftp, conn.target));
		goto out;
	}
	if (d.local_path != NULL) {
		snprintf(partial, sizeof(partial), "%s.outpost-partial", local);
		fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd < 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "params.local_path: cannot create %s: %s", partial,
					  strerror(errno));
			partial[0] = '\0';
			goto out;
		}
	} else {
		const char *ws = outpost_host->workspace(ctx);

		name = d.artifact ? d.artifact : base;
		if (outpost_host->artifact_open(ctx, name, &fd) < 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "cannot create artifact \"%s\" (does it exist already?)",
					  name);
			goto out;
		}
		snprintf(partial, sizeof(partial), "%s/artifacts/%s", ws ? ws : ".", name);
	}
	/* Pipelined reads: DEPTH requests in flight, answered in order. A short answer before
	 * the end is a gap we cannot fill this way, so it fails the transfer. */
	while (count > 0 || !eof) {
		int n;

		if (sshp_cancelled(ctx, st)) {
			rc = outpost_fail(ctx, OUTPOST_ERR_CANCELLED,
					  "cancelled after %llu of %llu bytes",
					  (unsigned long long)got, (unsigned long long)size);
			goto out;
		}
		while (!eof && count < DEPTH) {
			int id = sftp_async_read_begin(f, CHUNK);

			if (id < 0) {
				rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "reading %s on %s failed: %s",
						  d.path, conn.target_label,
						  sftp_reason(sftp, conn.target));
				goto out;
			}
			ids[(head + count) % DEPTH] = id;
			count++;
			/* Stop asking past the size we saw; one extra read confirms the end. */
			if (got + (uint64_t)count * CHUNK > size + CHUNK)
				break;
		}
		if (count == 0)
			break;
		n = sftp_async_read(f, chunk, CHUNK, (uint32_t)ids[head]);
		head = (head + 1) % DEPTH;
		count--;
		if (n < 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "reading %s on %s failed: %s",
					  d.path, conn.target_label, sftp_reason(sftp, conn.target));
			goto out;
		}
		if (n == 0) {
			eof = true;
			continue;
		}
		if (eof) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "reading %s on %s failed: the server answered a read "
					  "short in the middle of the file",
					  d.path, conn.target_label);
			goto out;
		}
		if (n < CHUNK)
			eof = true; /* later answers must be empty */
		EVP_DigestUpdate(md, chunk, (size_t)n);
		{
			size_t off = 0;

			while (off < (size_t)n) {
				ssize_t w = write(fd, chunk + off, (size_t)n - off);

				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0) {
					rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
							  "writing the downloaded file failed: %s",
							  strerror(errno));
					goto out;
				}
				off += (size_t)w;
			}
		}
		got += (uint64_t)n;
		if (d.max_size > 0 && got > d.max_size) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "%s on %s grew past params.max_size while it was read",
					  d.path, conn.target_label);
			goto out;
		}
		progress(ctx, got, size, &last);
	}
	if (fsync(fd) < 0 && errno != EINVAL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "saving the downloaded file failed: %s",
				  strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	EVP_DigestFinal_ex(md, digest, NULL);
	sshp_hex(digest, sizeof(digest), hex);
	if (d.sha256 != NULL && strcasecmp(d.sha256, hex) != 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
				  "checksum mismatch for %s on %s: expected sha256 %s "
				  "(params.sha256), got %s; the file was not kept",
				  d.path, conn.target_label, d.sha256, hex);
		goto out;
	}
	if (d.local_path != NULL && rename(partial, local) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "params.local_path: cannot write %s: %s",
				  local, strerror(errno));
		goto out;
	}
	keep = true;
	sshp_human_size(got, size_text, sizeof(size_text));
	outpost_info(ctx, "downloaded %s from %s:%s (sha256 %s)", size_text, conn.target_label,
		     d.path, hex);
	result = cJSON_CreateObject();
	if (result == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	{
		char mode_text[8];
		double secs = sshp_now() - t0;

		snprintf(mode_text, sizeof(mode_text), "%04o", a->permissions & 07777);
		cJSON_AddStringToObject(result, "host", t.hops[t.n_hops - 1].host);
		cJSON_AddStringToObject(result, "path", d.path);
		cJSON_AddNumberToObject(result, "size", (double)got);
		cJSON_AddStringToObject(result, "sha256", hex);
		cJSON_AddStringToObject(result, "mode", mode_text);
		cJSON_AddNumberToObject(result, "mtime", (double)a->mtime);
		if (name != NULL)
			cJSON_AddStringToObject(result, "artifact", name);
		else
			cJSON_AddStringToObject(result, "local_path", local);
		cJSON_AddNumberToObject(result, "duration", secs);
		cJSON_AddNumberToObject(result, "bytes_per_second",
					secs > 0 ? (double)got / secs : 0);
	}
	rc = outpost_set_result(ctx, result) < 0
		     ? outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "cannot hand over the result")
		     : OUTPOST_OK;
out:
	/* Answers still in flight must be collected before the file is closed. */
	while (count > 0 && f != NULL && connected && ssh_is_connected(conn.target)) {
		(void)sftp_async_read(f, chunk, CHUNK, (uint32_t)ids[head]);
		head = (head + 1) % DEPTH;
		count--;
	}
	if (fd >= 0)
		close(fd);
	if (!keep && partial[0])
		unlink(partial);
	if (f != NULL)
		sftp_close(f);
	sftp_attributes_free(a);
	if (sftp != NULL)
		sftp_free(sftp);
	if (connected)
		sshp_conn_release(&conn);
	cJSON_Delete(result);
	EVP_MD_CTX_free(md);
	free(chunk);
	return rc;
}
