/* SPDX-License-Identifier: Apache-2.0 */
/* The ssh plugin's internal interface: state, connections through jump hosts, and helpers. */
#ifndef SSHP_H
#define SSHP_H

#include <outpost/sdk.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSHP_MAX_JUMPS 8
#define SSHP_DEFAULT_KNOWN_HOSTS "/etc/outpost-agent/known_hosts"

/* The plugin's state: its settings (plugins.config.ssh) and the cancel machinery. */
struct sshp_state {
	char *known_hosts;     /* known_hosts file used when a task pins no key */
	char **local_paths;    /* directories uploads may read from and downloads write to */
	size_t n_local_paths;
	int wake[2];           /* a non-blocking pipe: cancel() writes, loops poll the read end */
	atomic_int cancelled;  /* set by cancel(), possibly from a signal handler */
	atomic_int kill_fd;    /* the TCP socket, shut down by cancel() while connecting */
	atomic_int connecting; /* 1 while connect/handshake/auth are in progress */
};

/* One endpoint of the chain: a jump host or the target. Strings point into the params. */
struct sshp_hop {
	const char *host;
	int port;
	const char *user;
	const cJSON *auth;
	const char *host_key; /* a pinned "SHA256:..." fingerprint, or NULL */
	bool insecure;        /* insecure_ignore_host_key */
	char where[32];       /* "params" or "params.jump[1]": names the hop in messages */
	char label[300];      /* "user@host:port" */
};

/* A hop's session and, for jump hosts, the channel that carries the next hop. */
struct sshp_link {
	ssh_session session;
	ssh_channel channel; /* direct-tcpip channel to the next hop (jump hosts only) */
	int pair[2];         /* pair[0] is the next session's fd, pair[1] is pumped */
	pthread_t pump;
	bool pump_running;
	atomic_int stop;
	char next[300];      /* "host:port" of the next hop, for messages */
};

/* A connection to the target through zero or more jump hosts. */
struct sshp_conn {
	struct sshp_link links[SSHP_MAX_JUMPS + 1];
	int n;               /* links in use */
	ssh_session target;  /* links[n-1].session once connected */
	char target_label[300];
};

/* The connection part of a task's params, parsed. */
struct sshp_target {
	struct sshp_hop hops[SSHP_MAX_JUMPS + 1]; /* jump hosts first, the target last */
	int n_hops;
	double connect_timeout;
};

/* ---- plugin.c ---------------------------------------------------------------------- */
bool sshp_cancelled(outpost_ctx *ctx, struct sshp_state *st);

/* ---- conn.c ------------------------------------------------------------------------ */
/* Parses and checks host/port/user/auth/host_key/jump/connect_timeout. Returns an rc. */
int sshp_target_parse(outpost_ctx *ctx, const cJSON *params, struct sshp_target *t);
/* Connects and authenticates every hop in turn. Returns an rc; on failure the error is set
 * and CONN is released. */
int sshp_connect(outpost_ctx *ctx, struct sshp_state *st, const struct sshp_target *t,
		 struct sshp_conn *conn);
void sshp_conn_release(struct sshp_conn *conn);

/* ---- exec.c ------------------------------------------------------------------------ */
int sshp_exec(outpost_ctx *ctx, struct sshp_state *st, const cJSON *params);
int sshp_exec_validate(outpost_ctx *ctx, struct sshp_state *st, const cJSON *params);

/* ---- transfer.c -------------------------------------------------------------------- */
int sshp_upload(outpost_ctx *ctx, struct sshp_state *st, const cJSON *params);
int sshp_download(outpost_ctx *ctx, struct sshp_state *st, const cJSON *params);
int sshp_upload_validate(outpost_ctx *ctx, struct sshp_state *st, const cJSON *params);
int sshp_download_validate(outpost_ctx *ctx, struct sshp_state *st, const cJSON *params);

/* ---- util.c ------------------------------------------------------------------------ */
/* A growable byte buffer. */
struct sshp_buf {
	char *data;
	size_t len, cap;
};
int sshp_buf_add(struct sshp_buf *b, const void *data, size_t len);
int sshp_buf_addf(struct sshp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sshp_buf_release(struct sshp_buf *b);

/* Appends S to B quoted for a POSIX shell ('...'). */
int sshp_shell_quote(struct sshp_buf *b, const char *s);
/* A copy of DATA[0..LEN) as valid UTF-8 (bad bytes become U+FFFD), NUL-terminated. */
char *sshp_utf8_sanitize(const char *data, size_t len);
/* Decodes base64 TEXT into a new buffer. Returns 0 or -1 (not base64). */
int sshp_base64_decode(const char *text, unsigned char **out, size_t *out_len);
/* Seconds on the monotonic clock. */
double sshp_now(void);
/* Checks that PATH (absolute, or relative to the workspace) may be used locally: inside the
 * workspace or one of the configured local_paths. Writes the absolute path to OUT.
 * Returns OUTPOST_OK, or an rc with the error set (KEY names the param). */
int sshp_local_path(outpost_ctx *ctx, struct sshp_state *st, const char *key, const char *path,
		    bool for_write, char *out, size_t outlen);
/* Lower-case hex of a SHA-256 digest. */
void sshp_hex(const unsigned char *digest, size_t n, char *out);
/* "12.3 MB" style sizes for log lines. */
void sshp_human_size(uint64_t bytes, char *out, size_t outlen);

#endif
