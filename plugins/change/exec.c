/* SPDX-License-Identifier: Apache-2.0 */
/* Local commands of exec steps: posix_spawn in a process group, output streamed and digested. */
#include "change.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long output may stay open after the command exited (a daemon it started may hold it). */
#define DRAIN_AFTER_EXIT 2.0

char *ch_which(const char *name, const char *path)
{
	char buf[PATH_MAX];
	const char *p = path, *colon;
	struct stat st;

	if (name == NULL || name[0] == '\0')
		return NULL;
	if (strchr(name, '/') != NULL)
		return stat(name, &st) == 0 && S_ISREG(st.st_mode) && access(name, X_OK) == 0
			       ? strdup(name)
			       : NULL;
	while (p && *p) {
		size_t n;

		colon = strchr(p, ':');
		n = colon ? (size_t)(colon - p) : strlen(p);
		if (n > 0 && op_snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, name) == 0 &&
		    stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
			return strdup(buf);
		p = colon ? colon + 1 : NULL;
	}
	return NULL;
}

static void capture(struct op_buf *cap, const char *data, size_t n)
{
	if (cap->len < CH_CAPTURE_LIMIT)
		op_buf_append(cap, data, n < CH_CAPTURE_LIMIT - cap->len ? n : CH_CAPTURE_LIMIT - cap->len);
}

/* Starts the command; returns its pid, or -1 with res->error set. */
static pid_t spawn(const struct ch_exec_spec *spec, const char *path, int in[2], int out[2],
		   int errp[2], struct ch_exec_result *res)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	pid_t pid = -1;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	if (spec->stdin_data)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	rc = posix_spawn(&pid, path, &fa, &attr, spec->argv, spec->envp);
	if (rc != 0) {
		snprintf(res->error, sizeof(res->error), "cannot start %s: %s", path, strerror(rc));
		pid = -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return pid;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void ch_exec_run(outpost_ctx *ctx, struct ch_state *st, const struct ch_exec_spec *spec,
		 struct ch_exec_result *res)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, status = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	double start = ch_monotonic(), exited_at = 0, kill_at = 0;
	size_t written = 0;
	bool reaped = false, stopping = false, hard = false;
	char *path = NULL, buf[16384];
	unsigned char digest[32];
	unsigned int dlen = 0;
	pid_t pid = -1;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		snprintf(res->error, sizeof(res->error), "out of memory");
		goto out;
	}
	path = ch_which(spec->argv[0], st->path);
	if (path == NULL) {
		if (strchr(spec->argv[0], '/'))
			snprintf(res->error, sizeof(res->error), "%s: no such executable file",
				 spec->argv[0]);
		else
			snprintf(res->error, sizeof(res->error), "%s: command not found (PATH=%s)",
				 spec->argv[0], st->path);
		goto out;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (spec->stdin_data && pipe2(in, O_CLOEXEC) < 0)) {
		snprintf(res->error, sizeof(res->error), "pipe: %s", strerror(errno));
		goto out;
	}
	pid = spawn(spec, path, in, out, errp, res);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&errp[1]);
	if (pid < 0)
		goto out;
	res->started = true;
	st->child_pgid = pid;
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	if (in[1] >= 0) {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
		if (spec->stdin_len == 0)
			close_fd(&in[1]);
	}
	for (;;) {
		struct pollfd pf[3];
		int nf = 0, io = -1, ie = -1, ii = -1;
		double now;

		if (out[0] >= 0) {
			io = nf;
			pf[nf++] = (struct pollfd){out[0], POLLIN, 0};
		}
		if (errp[0] >= 0) {
			ie = nf;
			pf[nf++] = (struct pollfd){errp[0], POLLIN, 0};
		}
		if (in[1] >= 0) {
			ii = nf;
			pf[nf++] = (struct pollfd){in[1], POLLOUT, 0};
		}
		if (nf > 0)
			(void)poll(pf, (nfds_t)nf, 100);
		else
			usleep(20000);
		for (int k = 0; k < 2; k++) {
			int idx = k == 0 ? io : ie, *fd = k == 0 ? &out[0] : &errp[0];
			ssize_t n;

			if (idx < 0 || pf[idx].revents == 0)
				continue;
			n = read(*fd, buf, sizeof(buf));
			if (n > 0) {
				outpost_output(ctx, k == 0 ? OUTPOST_STREAM_STDOUT : OUTPOST_STREAM_STDERR,
					       buf, (size_t)n);
				EVP_DigestUpdate(md, buf, (size_t)n);
				res->output_bytes += (uint64_t)n;
				capture(k == 0 ? &res->out_cap : &res->err_cap, buf, (size_t)n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				close_fd(fd);
			}
		}
		if (ii >= 0 && pf[ii].revents != 0) {
			ssize_t n = write(in[1], spec->stdin_data + written,
					  spec->stdin_len - written);

			if (n > 0)
				written += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    written >= spec->stdin_len)
				close_fd(&in[1]);
		}
		now = ch_monotonic();
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = true;
			exited_at = now;
			close_fd(&in[1]);
		}
		if (reaped && out[0] < 0 && errp[0] < 0)
			break;
		if (reaped && now - exited_at > DRAIN_AFTER_EXIT) {
			outpost_warn(ctx,
				     "%s: the command exited but something it started still holds "
				     "its output open: no longer reading it",
				     spec->label);
			break;
		}
		if (!stopping && !reaped && ch_cancelled(ctx, st)) {
			stopping = res->cancelled = true;
			kill(-pid, SIGTERM);
			kill_at = now + st->kill_grace;
		}
		if (!stopping && !reaped && spec->timeout > 0 && now - start > spec->timeout) {
			stopping = res->timed_out = true;
			outpost_warn(ctx, "%s: timed out after %gs: stopping its process group",
				     spec->label, spec->timeout);
			kill(-pid, SIGTERM);
			kill_at = now + st->kill_grace;
		}
		if (stopping && !hard && now >= kill_at) {
			hard = true;
			kill(-pid, SIGKILL);
		}
		if (stopping && reaped && now - exited_at > 0.2)
			break;
	}
	/* cancel() may have stopped the group itself before this loop noticed */
	if (!res->timed_out && ch_cancelled(ctx, st))
		stopping = res->cancelled = true;
	if (stopping)
		kill(-pid, SIGKILL); /* what the command left in its group goes with it */
	st->child_pgid = 0;
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(status));

		res->signal = WTERMSIG(status);
		snprintf(res->error, sizeof(res->error), "killed by signal %d (SIG%s)", res->signal,
			 abbrev ? abbrev : "?");
	}
	if (res->timed_out)
		snprintf(res->error, sizeof(res->error),
			 "timed out after %gs: its process group was stopped", spec->timeout);
	else if (res->cancelled)
		snprintf(res->error, sizeof(res->error),
			 "cancelled: its process group was stopped");
out:
	if (md != NULL && EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32) {
		memcpy(res->output_sha256, "sha256:", 7);
		for (unsigned i = 0; i < 32; i++)
			snprintf(res->output_sha256 + 7 + 2 * i, 3, "%02x", digest[i]);
	}
	EVP_MD_CTX_free(md);
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	free(path);
}

void ch_exec_result_release(struct ch_exec_result *res)
{
	op_buf_release(&res->out_cap);
	op_buf_release(&res->err_cap);
}
