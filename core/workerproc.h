/* SPDX-License-Identifier: Apache-2.0 */
/* Starting outpost-worker processes with posix_spawn: own process group, empty environment. */
#ifndef AG_WORKERPROC_H
#define AG_WORKERPROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "op.h"

struct wk_proc {
	pid_t pid;
	int pidfd; /* readable when the process has exited; -1 where pidfd_open is missing */
	int sock;  /* our end of the socketpair (non-blocking when asked) */
	int out;   /* read end of the worker's stdout+stderr pipe */
};

/* Spawns WORKER_PATH as "outpost-worker --fd 3 LABEL" in its own process group, with only the
 * environment variables named in ENV_ALLOW (and sanitizer options in sanitizer builds), plus
 * EXTRA_ENV ("NAME=VALUE", may be NULL) unless NAME passes already, stdin on /dev/null, stdout
 * and stderr on a pipe, the socket on fd 3, and nothing else open. NONBLOCK makes our ends
 * non-blocking. */
op_rc wk_spawn(const char *worker_path, const char *label, const struct ag_strlist *env_allow,
	       const char *extra_env, bool nonblock, struct wk_proc *out, struct op_error *err);
/* Whether wk_spawn would pass NAME from our environment (ENV_ALLOW names it and it is set). */
bool wk_env_passes(const struct ag_strlist *env_allow, const char *name);
/* Closes our descriptors (not the process). */
void wk_proc_close(struct wk_proc *p);

/* One of Outpost's programs, NAME: $ENV_VAR if set, else NAME next to this executable, else
 * ../libexec/outpost/NAME from it, else INSTALLED (the built-in path). Writes it to OUT. */
op_rc wk_locate_program(const char *name, const char *env_var, const char *installed, char *out,
			size_t size, struct op_error *err);
/* The worker executable to use: CONFIGURED (workers.path) if set, else outpost-worker found as
 * wk_locate_program() finds it ($OUTPOST_WORKER). */
op_rc wk_locate(const char *configured, char *out, size_t size, struct op_error *err);

/* "signal 11 (SIGSEGV)" or "exit status 3" for a wait status. */
void wk_describe_status(int status, char *out, size_t size);

/* Marks this process a child subreaper, so orphans of plugins come back to us (decisions 23). */
void wk_become_subreaper(void);
/* Kills and reaps every child of ours that is not a worker wk_spawn started (and that
 * wk_forget has not released): orphans a plugin left behind. Returns how many it killed.
 * Spawns and sweeps exclude each other, so a new worker is never taken for an orphan. */
int wk_reap_strays(void);
/* Tells the registry that worker PID has been reaped. */
void wk_forget(pid_t pid);

#endif
