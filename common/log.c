/* SPDX-License-Identifier: Apache-2.0 */
/* The process-wide logger: stderr (with syslog priorities when journald reads it) and a file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static struct {
	pthread_mutex_t lock;
	int level;
	int journal; /* -1 unknown, 0 no, 1 stderr is journald's stream */
	int fd;
	char *path;
	uint64_t max_bytes;
	uint64_t size;
	int keep;
	struct op_redactor redactor;
} L = {PTHREAD_MUTEX_INITIALIZER, OP_LOG_INFO, -1, -1, NULL, 0, 0, 0, {NULL, NULL, 0, {0}}};

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int op_log_level_parse(const char *name)
{
	static const char *const lower[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++)
		if (strcmp(name, lower[i]) == 0)
			return i;
	if (strcmp(name, "warning") == 0)
		return OP_LOG_WARN;
	return -1;
}

const char *op_log_level_name(int level)
{
	return level >= 0 && level < 4 ? level_names[level] : "INFO";
}

void op_log_set_level(int level)
{
	L.level = level;
}

int op_log_get_level(void)
{
	return L.level;
}

/* journald sets JOURNAL_STREAM=dev:ino for the stream it reads; match it against stderr. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

op_rc op_log_set_file(const char *path, uint64_t max_bytes, int keep, struct op_error *err)
{
	op_rc rc = OP_OK;
	struct stat st;
	int fd = -1;

	pthread_mutex_lock(&L.lock);
	if (L.fd >= 0)
		close(L.fd);
	L.fd = -1;
	free(L.path);
	L.path = NULL;
	if (path == NULL)
		goto out;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = op_fail(err, OP_EIO, "cannot open log file %s: %s", path, strerror(errno));
		goto out;
	}
	L.path = strdup(path);
	if (L.path == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	L.fd = fd;
	fd = -1;
	L.size = (uint64_t)st.st_size;
	L.max_bytes = max_bytes;
	L.keep = keep > 0 ? keep : 1;
out:
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&L.lock);
	return rc;
}

void op_log_redact(const char *value, size_t len)
{
	pthread_mutex_lock(&L.lock);
	(void)op_redactor_add(&L.redactor, value, len);
	pthread_mutex_unlock(&L.lock);
}

void op_log_redact_clear(void)
{
	pthread_mutex_lock(&L.lock);
	op_redactor_release(&L.redactor);
	pthread_mutex_unlock(&L.lock);
}

/* Renames PATH.(k-1) to PATH.k down to PATH to PATH.1 and reopens PATH. Lock held. */
static void rotate_locked(void)
{
	char from[4096], to[4096];

	for (int k = L.keep; k >= 1; k--) {
		if (k == 1)
			snprintf(from, sizeof(from), "%s", L.path);
		else
			snprintf(from, sizeof(from), "%s.%d", L.path, k - 1);
		snprintf(to, sizeof(to), "%s.%d", L.path, k);
		(void)rename(from, to);
	}
	close(L.fd);
	L.fd = open(L.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	L.size = 0;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void op_vlog(int level, const char *component, const char *fmt, va_list ap)
{
	struct op_buf raw = OP_BUF_INIT, line = OP_BUF_INIT;
	int saved_errno = errno;

	if (level > L.level)
		return;
	if (level < 0)
		level = 0;
	if (level > 3)
		level = 3;
	if (component)
		op_buf_printf(&raw, "%s %s: ", level_names[level], component);
	else
		op_buf_printf(&raw, "%s: ", level_names[level]);
	op_buf_vprintf(&raw, fmt, ap);
	if (raw.data == NULL)
		goto out;
	for (size_t i = 0; i < raw.len; i++)
		if (raw.data[i] == '\n' && i + 1 < raw.len)
			raw.data[i] = ' ';
	pthread_mutex_lock(&L.lock);
	if (L.journal < 0)
		L.journal = stderr_is_journal();
	if (L.journal) {
		static const int prio[] = {3, 4, 6, 7};

		op_buf_printf(&line, "<%d>", prio[level]);
	}
	op_redact(&L.redactor, raw.data, raw.len, &line);
	if (line.len == 0 || line.data[line.len - 1] != '\n')
		op_buf_append(&line, "\n", 1);
	if (line.data)
		write_all(2, line.data, line.len);
	if (L.fd >= 0 && line.data) {
		char ts[64];
		struct timespec now;
		struct tm tm;
		const char *body = line.data;

		if (L.journal)
			body = strchr(body, '>') + 1;
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		dprintf(L.fd, "%s.%03ldZ %s", ts, now.tv_nsec / 1000000, body);
		L.size += strlen(ts) + 6 + strlen(body);
		if (L.max_bytes > 0 && L.size >= L.max_bytes)
			rotate_locked();
	}
	pthread_mutex_unlock(&L.lock);
out:
	op_buf_release(&raw);
	op_buf_release(&line);
	errno = saved_errno;
}

void op_log(int level, const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	op_vlog(level, component, fmt, ap);
	va_end(ap);
}
