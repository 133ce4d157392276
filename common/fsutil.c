/* SPDX-License-Identifier: Apache-2.0 */
/* Durable file writes and small filesystem helpers. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int op_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	if (op_strlcpy(dir, path, sizeof(dir)) < 0)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		op_strlcpy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static op_rc io_fail(struct op_error *err, const char *what, const char *path)
{
	int e = errno;

	return op_fail(err, e == ENOSPC || e == EDQUOT ? OP_ENOSPC : OP_EIO, "cannot %s %s: %s",
		       what, path, strerror(e));
}

static op_rc write_replace(const char *path, const void *data, size_t len, mode_t mode,
			   bool durable, struct op_error *err)
{
	char tmp[PATH_MAX];
	const char *p = data;
	op_rc rc = OP_OK;
	int fd = -1;

	if (op_snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) < 0)
		return op_fail(err, OP_EINVAL, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		rc = io_fail(err, "create", tmp);
		goto out;
	}
	if (fchmod(fd, mode) < 0) {
		rc = io_fail(err, "chmod", tmp);
		goto out;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = io_fail(err, "write", tmp);
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (durable && fdatasync(fd) < 0) {
		rc = io_fail(err, "fsync", tmp);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = io_fail(err, "close", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = io_fail(err, "rename to", path);
		goto out;
	}
	if (durable && op_fsync_parent(path) < 0)
		rc = io_fail(err, "fsync the directory of", path);
out:
	if (fd >= 0)
		close(fd);
	if (rc != OP_OK)
		unlink(tmp);
	return rc;
}

op_rc op_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			   struct op_error *err)
{
	return write_replace(path, data, len, mode, true, err);
}

op_rc op_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
			    struct op_error *err)
{
	return write_replace(path, data, len, mode, false, err);
}

op_rc op_read_file(const char *path, size_t max, struct op_buf *out, struct op_error *err)
{
	char chunk[65536];
	op_rc rc = OP_OK;
	size_t total = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return op_fail(err, errno == ENOENT ? OP_ENOENT : errno == EACCES ? OP_EPERM : OP_EIO,
			       "cannot read %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = op_fail(err, OP_EIO, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > max) {
			rc = op_fail(err, OP_EINVAL, "%s is larger than %zu bytes", path, max);
			break;
		}
		if (op_buf_append(out, chunk, (size_t)n) < 0) {
			rc = op_fail(err, OP_ENOMEM, "out of memory reading %s", path);
			break;
		}
	}
	close(fd);
	if (rc == OP_OK && out->data == NULL && op_buf_reserve(out, 0) < 0)
		rc = op_fail(err, OP_ENOMEM, "out of memory");
	return rc;
}

op_rc op_mkdir_p(const char *path, mode_t mode, struct op_error *err)
{
	char tmp[PATH_MAX];
	char *p;

	if (op_strlcpy(tmp, path, sizeof(tmp)) < 0)
		return op_fail(err, OP_EINVAL, "path too long: %s", path);
	/* Usually only the last component is new: one call, and the walk only when a parent
	 * is missing. */
	if (mkdir(tmp, mode) == 0 || errno == EEXIST)
		return OP_OK;
	if (errno != ENOENT)
		return op_fail(err, errno == EACCES ? OP_EPERM : OP_EIO,
			       "cannot create directory %s: %s", tmp, strerror(errno));
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return op_fail(err, OP_EIO, "cannot create directory %s: %s", tmp,
				       strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return op_fail(err, errno == EACCES ? OP_EPERM : OP_EIO,
			       "cannot create directory %s: %s", tmp, strerror(errno));
	return OP_OK;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

op_rc op_rm_rf(const char *path, struct op_error *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? OP_OK : op_fail(err, OP_EIO, "cannot remove %s: %s", path, strerror(errno));
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return op_fail(err, OP_EIO, "cannot remove %s: %s", path, strerror(errno));
	return OP_OK;
}
