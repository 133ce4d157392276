/* SPDX-License-Identifier: Apache-2.0 */
/* systemd unit set-up for install and uninstall, the agent's system user, clean child commands. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fsutil.h"

#define DROPIN_HEAD "# Written by `outpost-agent install`: this host's paths and user.\n"

const char ag_unit_text[] =
	"# SPDX-License-Identifier: Apache-2.0\n"
	"# The Outpost agent as a systemd service. `outpost-agent install` writes this file to\n"
	"# /etc/systemd/system when no package installed it, and puts what differs on a host (config\n"
	"# path, user, directories) in outpost-agent.service.d/install.conf. docs/operations.md.\n"
	"[Unit]\n"
	"Description=Outpost agent\n"
	"After=network-online.target\n"
	"Wants=network-online.target\n"
	"\n"
	"[Service]\n"
	"Type=notify\n"
	"ExecStart=/usr/bin/outpost-agent run --config /etc/outpost-agent/config.yaml\n"
	"ExecReload=/bin/kill -HUP $MAINPID\n"
	"User=outpost-agent\n"
	"Restart=on-failure\n"
	"RestartSec=5s\n"
	"# Exit codes a restart cannot fix: 2 bad config or usage, 3 agent revoked or deleted,\n"
	"# 4 certificate expired beyond the rotation grace. `outpost-agent check` says what to do.\n"
	"RestartPreventExitStatus=2 3 4\n"
	"# SIGTERM drains: running tasks get drain_grace (5 min by default) to finish, and their\n"
	"# workers stay out of the first SIGTERM.\n"
	"KillMode=mixed\n"
	"TimeoutStopSec=330s\n"
	"NoNewPrivileges=yes\n"
	"ProtectSystem=strict\n"
	"ProtectHome=yes\n"
	"PrivateTmp=yes\n"
	"PrivateDevices=yes\n"
	"ProtectKernelTunables=yes\n"
	"ProtectKernelModules=yes\n"
	"ProtectKernelLogs=yes\n"
	"ProtectControlGroups=yes\n"
	"ProtectClock=yes\n"
	"ProtectHostname=yes\n"
	"RestrictSUIDSGID=yes\n"
	"RestrictRealtime=yes\n"
	"RestrictNamespaces=yes\n"
	"LockPersonality=yes\n"
	"SystemCallArchitectures=native\n"
	"# Not set here, as plugins may need what they forbid (database drivers, ssh-agent sockets):\n"
	"# SystemCallFilter, MemoryDenyWriteExecute, RestrictAddressFamilies. Add them in a drop-in.\n"
	"ReadWritePaths=-/var/lib/outpost-agent -/var/cache/outpost-agent -/var/log/outpost-agent\n"
	"\n"
	"[Install]\n"
	"WantedBy=multi-user.target\n";

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

bool ag_systemd_running(void)
{
	struct stat st;

	return lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

op_rc ag_run(const char *const *argv, struct op_buf *out, int *status, struct op_error *err)
{
	static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};
	char *const envp[] = {(char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LANG=C", NULL};
	char path[PATH_MAX] = "";
	int pipefd[2], ws = 0;
	pid_t pid;

	for (size_t i = 0; i < OP_ARRAY_LEN(dirs) && path[0] == '\0'; i++) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/%s", dirs[i], argv[0]);
		if (access(p, X_OK) == 0)
			snprintf(path, sizeof(path), "%s", p);
	}
	if (path[0] == '\0')
		return op_fail(err, OP_ENOENT, "%s not found in /usr/sbin:/usr/bin:/sbin:/bin",
			       argv[0]);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return op_fail(err, OP_EIO, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return op_fail(err, OP_EIO, "cannot start %s: %s", argv[0], strerror(errno));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		closefrom(3);
		signal(SIGPIPE, SIG_DFL);
		execve(path, (char *const *)argv, envp);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && out->len < 64 * 1024)
			op_buf_append(out, buf, (size_t)n);
	}
	close(pipefd[0]);
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
	return OP_OK;
}

/* Runs ARGV and fails unless it exits 0, with its output in the message. */
static op_rc run_ok(const char *const *argv, struct op_error *err)
{
	struct op_buf out = OP_BUF_INIT;
	int status = 0;
	op_rc rc = ag_run(argv, &out, &status, err);

	if (rc == OP_OK && status != 0) {
		while (out.len > 0 && (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == ' '))
			out.data[--out.len] = '\0';
		rc = op_fail(err, OP_EIO, "`%s %s%s%s` exited %d%s%s", argv[0], argv[1] ? argv[1] : "",
			     argv[1] && argv[2] ? " " : "", argv[1] && argv[2] ? argv[2] : "",
			     status, out.len ? ": " : "", out.len ? out.data : "");
	}
	op_buf_release(&out);
	return rc;
}

/* A path systemd takes as it is in ExecStart= and ReadWritePaths=. */
static bool unit_safe(const char *p)
{
	return p[0] == '/' && strpbrk(p, " \t\n\"'\\%$;") == NULL;
}

static bool is_under(const char *path, const char *base)
{
	size_t n = strlen(base);

	return strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

op_rc ag_service_install(const struct ag_service_spec *s, struct op_buf *done, struct op_error *err)
{
	static const char *const default_dirs[] = {AG_DEFAULT_STATE_DIR, AG_DEFAULT_CACHE_DIR,
						   "/var/log/outpost-agent"};
	static const char *const reload[] = {"systemctl", "daemon-reload", NULL};
	static const char *const enable[] = {"systemctl", "enable", "--now", AG_UNIT_NAME, NULL};
	char exe[PATH_MAX];
	struct op_buf drop = OP_BUF_INIT, rw = OP_BUF_INIT;
	bool packaged = file_exists("/usr/lib/systemd/system/" AG_UNIT_NAME) ||
			file_exists("/lib/systemd/system/" AG_UNIT_NAME);
	/* The program the user ran: outpost-agent names itself when it hands a command to
	 * outpost-agent-net (main.c); this process's own file is the latter. */
	const char *front = getenv("OUTPOST_AGENT_PATH");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	op_rc rc = OP_OK;

	if (front && front[0] == '/')
		snprintf(exe, sizeof(exe), "%s", front);
	else if (n <= 0)
		snprintf(exe, sizeof(exe), "%s", AG_DEFAULT_BIN);
	else
		exe[n] = '\0';
	if (!unit_safe(exe) || !unit_safe(s->config) || strpbrk(s->user, " \t\n\"'\\%$;/") != NULL)
		return op_fail(err, OP_EINVAL,
			       "cannot write a systemd unit for these paths (spaces, quotes, %% or $ "
			       "in %s, %s or the user name)",
			       exe, s->config);
	for (size_t i = 0; i < OP_ARRAY_LEN(s->dirs) && s->dirs[i]; i++) {
		bool covered = false;

		if (!unit_safe(s->dirs[i]))
			return op_fail(err, OP_EINVAL, "cannot write a systemd unit for %s",
				       s->dirs[i]);
		for (size_t j = 0; j < OP_ARRAY_LEN(default_dirs); j++)
			covered = covered || is_under(s->dirs[i], default_dirs[j]);
		if (!covered)
			op_buf_printf(&rw, " -%s", s->dirs[i]);
	}
	if (!packaged) {
		rc = op_mkdir_p("/etc/systemd/system", 0755, err);
		if (rc == OP_OK)
			rc = op_write_file_atomic(AG_UNIT_ETC, ag_unit_text, strlen(ag_unit_text),
						  0644, err);
		if (rc != OP_OK)
			goto out;
		op_buf_printf(done, "wrote %s\n", AG_UNIT_ETC);
	}
	if (strcmp(exe, AG_DEFAULT_BIN) != 0 || strcmp(s->config, AG_DEFAULT_CONFIG) != 0)
		op_buf_printf(&drop, "ExecStart=\nExecStart=%s run --config %s\n", exe, s->config);
	if (strcmp(s->user, AG_DEFAULT_USER) != 0)
		op_buf_printf(&drop, "User=%s\n", s->user);
	if (rw.len)
		op_buf_printf(&drop, "ReadWritePaths=%s\n", rw.data + 1);
	if (drop.len) {
		struct op_buf text = OP_BUF_INIT;

		op_buf_printf(&text, DROPIN_HEAD "[Service]\n%s", drop.data);
		rc = op_mkdir_p("/etc/systemd/system/" AG_UNIT_NAME ".d", 0755, err);
		if (rc == OP_OK)
			rc = op_write_file_atomic(AG_UNIT_DROPIN, text.data, text.len, 0644, err);
		op_buf_release(&text);
		if (rc != OP_OK)
			goto out;
		op_buf_printf(done, "wrote %s\n", AG_UNIT_DROPIN);
	} else if (file_exists(AG_UNIT_DROPIN)) {
		(void)unlink(AG_UNIT_DROPIN);
	}
	rc = run_ok(reload, err);
	if (rc == OP_OK)
		rc = run_ok(enable, err);
	if (rc == OP_OK)
		op_buf_printf(done, "enabled and started %s\n", AG_UNIT_NAME);
out:
	op_buf_release(&drop);
	op_buf_release(&rw);
	return rc;
}

/* Whether PATH holds text that starts with (or, when WHOLE, equals) TEXT: files we wrote. */
static bool ours(const char *path, const char *text, bool whole)
{
	struct op_buf b = OP_BUF_INIT;
	bool yes = false;

	if (op_read_file(path, 1 << 20, &b, NULL) == OP_OK)
		yes = whole ? strcmp(b.data, text) == 0 : strncmp(b.data, text, strlen(text)) == 0;
	op_buf_release(&b);
	return yes;
}

op_rc ag_service_remove(struct op_buf *done, struct op_error *err)
{
	static const char *const disable[] = {"systemctl", "disable", "--now", AG_UNIT_NAME, NULL};
	static const char *const reload[] = {"systemctl", "daemon-reload", NULL};
	struct op_error e2 = {0};
	op_rc rc = OP_OK;

	if (run_ok(disable, &e2) == OP_OK)
		op_buf_printf(done, "stopped and disabled %s\n", AG_UNIT_NAME);
	else
		op_buf_printf(done, "could not disable %s: %s\n", AG_UNIT_NAME, e2.msg);
	if (file_exists(AG_UNIT_DROPIN) && ours(AG_UNIT_DROPIN, DROPIN_HEAD, false)) {
		if (unlink(AG_UNIT_DROPIN) < 0)
			rc = op_fail(err, OP_EIO, "cannot remove %s: %s", AG_UNIT_DROPIN,
				     strerror(errno));
		else
			op_buf_printf(done, "removed %s\n", AG_UNIT_DROPIN);
		(void)rmdir("/etc/systemd/system/" AG_UNIT_NAME ".d");
	}
	if (file_exists(AG_UNIT_ETC)) {
		if (!ours(AG_UNIT_ETC, ag_unit_text, true))
			op_buf_printf(done, "kept %s: it was changed after install\n", AG_UNIT_ETC);
		else if (unlink(AG_UNIT_ETC) < 0)
			rc = op_fail(err, OP_EIO, "cannot remove %s: %s", AG_UNIT_ETC, strerror(errno));
		else
			op_buf_printf(done, "removed %s\n", AG_UNIT_ETC);
	}
	if (run_ok(reload, &e2) != OP_OK)
		op_buf_printf(done, "systemctl daemon-reload failed: %s\n", e2.msg);
	return rc;
}

/* The first word of OUT, trimmed, into DST. */
static void first_word(const struct op_buf *out, char *dst, size_t size)
{
	size_t n = out->data ? strcspn(out->data, " \t\r\n") : 0;

	snprintf(dst, size, "%.*s", (int)n, out->data ? out->data : "");
	if (dst[0] == '\0')
		snprintf(dst, size, "unknown");
}

op_rc ag_service_status(char *active, size_t asz, char *enabled, size_t esz, struct op_error *err)
{
	static const char *const is_active[] = {"systemctl", "is-active", AG_UNIT_NAME, NULL};
	static const char *const is_enabled[] = {"systemctl", "is-enabled", AG_UNIT_NAME, NULL};
	struct op_buf out = OP_BUF_INIT;
	int status;
	op_rc rc;

	rc = ag_run(is_active, &out, &status, err);
	if (rc == OP_OK) {
		first_word(&out, active, asz);
		op_buf_reset(&out);
		rc = ag_run(is_enabled, &out, &status, err);
		if (rc == OP_OK)
			first_word(&out, enabled, esz);
	}
	op_buf_release(&out);
	return rc;
}

op_rc ag_user_ensure(const char *name, bool create, const char *home, uid_t *uid, gid_t *gid,
		     bool *created, struct op_error *err)
{
	const char *const add[] = {"useradd",	      "--system", "--user-group", "--no-create-home",
				   "--home-dir",      home,	  "--shell",	  "/usr/sbin/nologin",
				   "--comment",	      "Outpost agent", name,	  NULL};
	struct passwd *pw;
	op_rc rc;

	*created = false;
	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL && !create)
		return op_fail(err, OP_ENOENT, "no user \"%s\" on this host: create it first, or leave "
					       "out --user to get the system user " AG_DEFAULT_USER,
			       name);
	if (pw == NULL) {
		rc = run_ok(add, err);
		if (rc != OP_OK)
			return op_prefix(err, "cannot create the system user %s", name);
		pw = getpwnam(name);
		if (pw == NULL)
			return op_fail(err, OP_EIO, "useradd made no user %s", name);
		*created = true;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return OP_OK;
}
