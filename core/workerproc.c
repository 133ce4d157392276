/* SPDX-License-Identifier: Apache-2.0 */
/* posix_spawn of workers, their descriptors, and the sweep of orphaned plugin children. */
#include "workerproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef OUTPOST_DEFAULT_WORKER
#define OUTPOST_DEFAULT_WORKER "/usr/libexec/outpost/outpost-worker"
#endif

/* Variables that always pass in sanitizer builds: the runtimes need them (decisions.md 11). */
static const char *const sanitizer_env[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};

/* Every worker this process started and has not reaped: the sweep leaves them alone. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t *registry;
static size_t registry_n, registry_cap;

static void registry_add_locked(pid_t pid)
{
	if (registry_n == registry_cap) {
		size_t cap = registry_cap ? registry_cap * 2 : 64;
		pid_t *grown = realloc(registry, cap * sizeof(*grown));

		if (grown == NULL)
			return; /* the worker may then be swept as a stray: it fails its task */
		registry = grown;
		registry_cap = cap;
	}
	registry[registry_n++] = pid;
}

void wk_forget(pid_t pid)
{
	pthread_mutex_lock(&registry_mu);
	for (size_t i = 0; i < registry_n; i++)
		if (registry[i] == pid) {
			registry[i] = registry[--registry_n];
			break;
		}
	pthread_mutex_unlock(&registry_mu);
}

static bool registered_locked(pid_t pid)
{
	for (size_t i = 0; i < registry_n; i++)
		if (registry[i] == pid)
			return true;
	return false;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Moves FD above the range posix_spawn's dup2s write to, keeping CLOEXEC. */
static int lift_fd(int fd)
{
	int high;

	if (fd > 3)
		return fd;
	high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	return high;
}

bool wk_env_passes(const struct ag_strlist *env_allow, const char *name)
{
	return env_allow && ag_strlist_has(env_allow, name) && getenv(name) != NULL;
}

static char **build_env(const struct ag_strlist *allow, const char *extra)
{
	size_t n = 0, cap = (allow ? allow->n : 0) + OP_ARRAY_LEN(sanitizer_env) + 2;
	char **envp = calloc(cap, sizeof(*envp));

	if (envp == NULL)
		return NULL;
	for (size_t i = 0; allow && i < allow->n; i++) {
		const char *v = getenv(allow->v[i]);
		size_t len;

		if (v == NULL)
			continue;
		len = strlen(allow->v[i]) + strlen(v) + 2;
		envp[n] = malloc(len);
		if (envp[n] == NULL)
			goto fail;
		snprintf(envp[n++], len, "%s=%s", allow->v[i], v);
	}
#ifdef OUTPOST_SANITIZER_BUILD
	for (size_t i = 0; i < OP_ARRAY_LEN(sanitizer_env); i++) {
		const char *v = getenv(sanitizer_env[i]);
		size_t len;

		if (v == NULL || (allow && ag_strlist_has(allow, sanitizer_env[i])))
			continue;
		len = strlen(sanitizer_env[i]) + strlen(v) + 2;
		envp[n] = malloc(len);
		if (envp[n] == NULL)
			goto fail;
		snprintf(envp[n++], len, "%s=%s", sanitizer_env[i], v);
	}
#else
	(void)sanitizer_env;
#endif
	if (extra != NULL) {
		const char *eq = strchr(extra, '=');
		char name[64];

		if (eq == NULL || (size_t)(eq - extra) >= sizeof(name))
			goto fail;
		memcpy(name, extra, (size_t)(eq - extra));
		name[eq - extra] = '\0';
		if (!wk_env_passes(allow, name) && (envp[n] = strdup(extra)) == NULL)
			goto fail;
		if (envp[n] != NULL)
			n++;
	}
	return envp;
fail:
	for (size_t i = 0; i < n; i++)
		free(envp[i]);
	free(envp);
	return NULL;
}

op_rc wk_spawn(const char *worker_path, const char *label, const struct ag_strlist *env_allow,
	       const char *extra_env, bool nonblock, struct wk_proc *out, struct op_error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char **envp = NULL;
	int sv[2] = {-1, -1}, pipefd[2] = {-1, -1};
	char *argv[5];
	op_rc rc = OP_OK;
	pid_t pid;
	int e, flags = SOCK_STREAM | SOCK_CLOEXEC;

	memset(out, 0, sizeof(*out));
	out->pidfd = out->sock = out->out = -1;
	if (socketpair(AF_UNIX, flags, 0, sv) < 0 || pipe2(pipefd, O_CLOEXEC) < 0)
		return op_fail(err, OP_EIO, "cannot create the worker's channels: %s", strerror(errno));
	sv[1] = lift_fd(sv[1]);
	pipefd[1] = lift_fd(pipefd[1]);
	envp = build_env(env_allow, extra_env);
	if (sv[1] < 0 || pipefd[1] < 0 || envp == NULL) {
		rc = op_fail(err, OP_EIO, "cannot prepare the worker: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	posix_spawn_file_actions_addclosefrom_np(&fa, 4);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						POSIX_SPAWN_SETPGROUP);
	argv[0] = "outpost-worker";
	argv[1] = "--fd";
	argv[2] = "3";
	argv[3] = (char *)label;
	argv[4] = NULL;
	pthread_mutex_lock(&registry_mu);
	e = posix_spawn(&pid, worker_path, &fa, &attr, argv, envp);
	if (e == 0)
		registry_add_locked(pid);
	pthread_mutex_unlock(&registry_mu);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (e != 0) {
		rc = op_fail(err, e == ENOENT ? OP_ENOENT : OP_EIO, "cannot start worker %s: %s",
			     worker_path, strerror(e));
		goto out;
	}
	out->pid = pid;
	out->pidfd = pidfd_open_(pid);
	if (out->pidfd < 0 && errno == ENOSYS) {
		/* No pidfd_open (valgrind does not know it): the supervisor polls for the exit
		 * with waitpid(WNOHANG) instead. */
	} else if (out->pidfd < 0) {
		rc = op_fail(err, OP_EIO, "pidfd_open failed: %s (Linux 5.3 or later is needed)",
			     strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		wk_forget(pid);
		goto out;
	}
	out->sock = sv[0];
	out->out = pipefd[0];
	sv[0] = pipefd[0] = -1;
	if (nonblock) {
		fcntl(out->sock, F_SETFL, fcntl(out->sock, F_GETFL) | O_NONBLOCK);
		fcntl(out->out, F_SETFL, fcntl(out->out, F_GETFL) | O_NONBLOCK);
	}
out:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (pipefd[i] >= 0)
			close(pipefd[i]);
	}
	if (envp) {
		for (char **p = envp; *p; p++)
			free(*p);
		free(envp);
	}
	if (rc != OP_OK) {
		if (out->pidfd >= 0)
			close(out->pidfd);
		out->pidfd = -1;
	}
	return rc;
}

void wk_proc_close(struct wk_proc *p)
{
	if (p->sock >= 0)
		close(p->sock);
	if (p->out >= 0)
		close(p->out);
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->sock = p->out = p->pidfd = -1;
}

static int executable(const char *p)
{
	return access(p, X_OK) == 0;
}

op_rc wk_locate_program(const char *name, const char *env_var, const char *installed, char *out,
			size_t size, struct op_error *err)
{
	char self[PATH_MAX], cand[PATH_MAX + 64];
	const char *env = getenv(env_var);
	ssize_t n;
	char *slash;

	if (env && *env && executable(env))
		return op_strlcpy(out, env, size) == 0 ? OP_OK : op_fail(err, OP_EINVAL, "path too long");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(cand, sizeof(cand), "%s/%s", self, name);
			if (executable(cand))
				return op_strlcpy(out, cand, size) == 0 ? OP_OK
								       : op_fail(err, OP_EINVAL, "path too long");
			snprintf(cand, sizeof(cand), "%s/../libexec/outpost/%s", self, name);
			if (executable(cand))
				return op_strlcpy(out, cand, size) == 0 ? OP_OK
								       : op_fail(err, OP_EINVAL, "path too long");
		}
	}
	if (executable(installed))
		return op_strlcpy(out, installed, size) == 0 ? OP_OK
							     : op_fail(err, OP_EINVAL, "path too long");
	return op_fail(err, OP_ENOENT,
		       "cannot find %s (looked next to this program, in ../libexec/outpost and %s)",
		       name, installed);
}

op_rc wk_locate(const char *configured, char *out, size_t size, struct op_error *err)
{
	op_rc rc;

	if (configured && *configured) {
		if (!executable(configured))
			return op_fail(err, OP_ENOENT,
				       "worker %s (workers.path) is missing or not executable",
				       configured);
		return op_strlcpy(out, configured, size) == 0 ? OP_OK
							       : op_fail(err, OP_EINVAL, "path too long");
	}
	rc = wk_locate_program("outpost-worker", "OUTPOST_WORKER", OUTPOST_DEFAULT_WORKER, out, size,
			       err);
	if (rc == OP_ENOENT) {
		char why[sizeof(err->msg)];

		op_strlcpy(why, err->msg, sizeof(why));
		return op_fail(err, OP_ENOENT, "%s: set workers.path in the config", why);
	}
	return rc;
}

void wk_describe_status(int status, char *out, size_t size)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *abbrev = sigabbrev_np(sig);

		snprintf(out, size, "signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
	} else if (WIFEXITED(status)) {
		snprintf(out, size, "exit status %d", WEXITSTATUS(status));
	} else {
		snprintf(out, size, "wait status %d", status);
	}
}

void wk_become_subreaper(void)
{
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static bool kill_stray_locked(long long pid)
{
	if (registered_locked((pid_t)pid))
		return false;
	kill((pid_t)pid, SIGKILL);
	waitpid((pid_t)pid, NULL, 0);
	return true;
}

/* The children of each of our threads, from /proc/self/task/TID/children (CONFIG_PROC_CHILDREN,
 * on in Debian's kernels): a handful of reads, however many processes the host runs. -1 when
 * the kernel lacks the file. */
static int sweep_task_children_locked(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int killed = 0, seen = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[64];
		long long pid;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
		f = fopen(path, "re");
		if (f == NULL) {
			if (errno == ENOENT && seen == 0) {
				closedir(d);
				return -1;
			}
			continue;
		}
		seen++;
		while (fscanf(f, "%lld", &pid) == 1) /* "PID PID ... " */
			if (pid > 0 && kill_stray_locked(pid))
				killed++;
		fclose(f);
	}
	closedir(d);
	return killed;
}

/* Every process whose parent is us, from /proc/PID/stat: the fallback. */
static int sweep_all_processes_locked(pid_t me)
{
	int killed = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char path[64], buf[512], *close_paren;
		long long pid, ppid;
		FILE *f;

		if (op_parse_i64(e->d_name, 1, INT_MAX, &pid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
		f = fopen(path, "re");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) == NULL) {
			fclose(f);
			continue;
		}
		fclose(f);
		close_paren = strrchr(buf, ')');
		if (close_paren == NULL || sscanf(close_paren + 2, "%*c %lld", &ppid) != 1 ||
		    ppid != me)
			continue;
		if (kill_stray_locked(pid))
			killed++;
	}
	closedir(d);
	return killed;
}

int wk_reap_strays(void)
{
	int killed;

	pthread_mutex_lock(&registry_mu);
	killed = sweep_task_children_locked();
	if (killed < 0)
		killed = sweep_all_processes_locked(getpid());
	pthread_mutex_unlock(&registry_mu);
	return killed;
}
