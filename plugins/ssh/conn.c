/* SPDX-License-Identifier: Apache-2.0 */
/* Connecting: TCP, SSH handshake, host key checks, authentication, and jump hosts. */

/*
 * A connection is a chain of sessions. The first hop gets a TCP socket we connect ourselves
 * (so a cancel can shut it down and a refused or silent port gets a useful message). Every
 * later hop rides a direct-tcpip channel opened on the previous session: a thread per jump
 * host pumps bytes between that channel and one end of a socketpair, and the next session
 * uses the other end through SSH_OPTIONS_FD (decisions.md 12). Each hop has its own host key
 * check and its own authentication. A pump thread owns its session exclusively once started;
 * the main thread touches it again only after joining the thread.
 */
#include "sshp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- params ---------------------------------------------------------------------------- */

static int parse_hop(outpost_ctx *ctx, const cJSON *obj, const char *where, struct sshp_hop *h)
{
	int64_t port = 22;
	bool insecure = false;
	const char *tmp = NULL;

	memset(h, 0, sizeof(*h));
	snprintf(h->where, sizeof(h->where), "%s", where);
	/* Keys are relative to OBJ; messages carry WHERE through the SDK's "params." prefix only
	 * for the target, so jump hops name their index explicitly. */
	if (outpost_get_str(ctx, obj, "host", &h->host, NULL) < 0 ||
	    outpost_get_int(ctx, obj, "port", &port, 22) < 0 ||
	    outpost_get_str(ctx, obj, "user", &h->user, NULL) < 0 ||
	    outpost_get_obj(ctx, obj, "auth", &h->auth) < 0 ||
	    outpost_get_str(ctx, obj, "host_key", &tmp, NULL) < 0 ||
	    outpost_get_bool(ctx, obj, "insecure_ignore_host_key", &insecure, false) < 0)
		return OUTPOST_ERR_PARAMS;
	h->host_key = tmp;
	h->insecure = insecure;
	h->port = (int)port;
	if (h->host == NULL || !*h->host)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s.host: required", where);
	if (h->user == NULL || !*h->user)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s.user: required", where);
	if (port < 1 || port > 65535)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s.port: must be 1 to 65535", where);
	if (h->auth == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "%s.auth: required: give key_secret, password_secret or "
				    "agent: true",
				    where);
	{
		const char *k = NULL, *p = NULL, *pp = NULL;
		bool agent = false;

		if (outpost_get_str(ctx, h->auth, "key_secret", &k, NULL) < 0 ||
		    outpost_get_str(ctx, h->auth, "password_secret", &p, NULL) < 0 ||
		    outpost_get_str(ctx, h->auth, "passphrase_secret", &pp, NULL) < 0 ||
		    outpost_get_bool(ctx, h->auth, "agent", &agent, false) < 0)
			return OUTPOST_ERR_PARAMS;
		if (k == NULL && p == NULL && !agent)
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					    "%s.auth: give key_secret, password_secret or "
					    "agent: true",
					    where);
		if (pp != NULL && k == NULL)
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					    "%s.auth.passphrase_secret: only used with key_secret",
					    where);
	}
	if (h->host_key != NULL && h->insecure)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "%s: host_key and insecure_ignore_host_key exclude each other",
				    where);
	if (strchr(h->host, ':') != NULL)
		snprintf(h->label, sizeof(h->label), "%s@[%s]:%d", h->user, h->host, h->port);
	else
		snprintf(h->label, sizeof(h->label), "%s@%s:%d", h->user, h->host, h->port);
	return OUTPOST_OK;
}

int sshp_target_parse(outpost_ctx *ctx, const cJSON *params, struct sshp_target *t)
{
	const cJSON *jump = NULL, *item;
	int rc, i = 0;

	memset(t, 0, sizeof(*t));
	if (outpost_get_duration(ctx, params, "connect_timeout", &t->connect_timeout, 30) < 0 ||
	    outpost_get_arr(ctx, params, "jump", &jump) < 0)
		return OUTPOST_ERR_PARAMS;
	if (t->connect_timeout <= 0)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.connect_timeout: must be more than 0s");
	if (cJSON_GetArraySize(jump) > SSHP_MAX_JUMPS)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.jump: at most %d jump hosts", SSHP_MAX_JUMPS);
	cJSON_ArrayForEach(item, jump)
	{
		char where[32];

		snprintf(where, sizeof(where), "params.jump[%d]", i);
		if (!cJSON_IsObject(item))
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s: expected an object",
					    where);
		rc = parse_hop(ctx, item, where, &t->hops[i]);
		if (rc != OUTPOST_OK)
			return rc;
		i++;
	}
	rc = parse_hop(ctx, params, "params", &t->hops[i]);
	if (rc != OUTPOST_OK)
		return rc;
	t->n_hops = i + 1;
	return OUTPOST_OK;
}

/* ---- TCP ------------------------------------------------------------------------------ */

/* The local address the kernel would use towards AI: the agent's egress address. */
static void egress_address(const struct addrinfo *ai, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(out, outlen, "an unknown address");
	if (fd < 0)
		return;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, out, (socklen_t)outlen, NULL, 0,
			    NI_NUMERICHOST);
	close(fd);
}

/* Connects to HOST:PORT with a deadline, waking on cancel. Returns an rc; *FD on success. */
static int tcp_connect(outpost_ctx *ctx, struct sshp_state *st, const struct sshp_hop *hop,
		       double timeout, int *out_fd)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16], addr[NI_MAXHOST] = "", egress[NI_MAXHOST] = "";
	double deadline = sshp_now() + timeout;
	int err = 0, rc, fd = -1;
	bool timed_out = false;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", hop->port);
	rc = getaddrinfo(hop->host, port, &hints, &res);
	if (rc != 0)
		return outpost_fail(ctx, OUTPOST_ERR_FAILED,
				    "cannot resolve host \"%s\" (%s.host): %s", hop->host,
				    hop->where, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd p[2];
		socklen_t sl = sizeof(err);

		getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
			    NI_NUMERICHOST);
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		atomic_store(&st->kill_fd, fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			err = 0;
			break;
		}
		if (errno != EINPROGRESS) {
			err = errno;
			goto next;
		}
		for (;;) {
			double left = deadline - sshp_now();
			int n;

			if (sshp_cancelled(ctx, st)) {
				atomic_store(&st->kill_fd, -1);
				close(fd);
				freeaddrinfo(res);
				return outpost_fail(ctx, OUTPOST_ERR_CANCELLED,
						    "cancelled while connecting to %s:%d",
						    hop->host, hop->port);
			}
			if (left <= 0) {
				err = ETIMEDOUT;
				timed_out = true;
				break;
			}
			p[0].fd = fd;
			p[0].events = POLLOUT;
			p[1].fd = st->wake[0];
			p[1].events = POLLIN;
			n = poll(p, 2, left > 0.25 ? 250 : (int)(left * 1000) + 1);
			if (n < 0 && errno != EINTR) {
				err = errno;
				break;
			}
			if (n > 0 && p[0].revents) {
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
					err = errno;
				break;
			}
		}
		if (err == 0)
			break;
	next:
		egress_address(ai, egress, sizeof(egress));
		atomic_store(&st->kill_fd, -1);
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		const char *hint;

		if (timed_out || err == ETIMEDOUT)
			hint = "check that the host is up and that its firewall or allowlist "
			       "admits the agent's address";
		else if (err == ECONNREFUSED)
			hint = "nothing listens on that port, or a firewall rejects the agent's "
			       "address: check the port and the target's allowlist";
		else
			hint = "check the route from the agent to the host and the target's "
			       "allowlist";
		freeaddrinfo(res);
		if (timed_out)
			return outpost_fail(ctx, OUTPOST_ERR_FAILED,
					    "cannot connect to %s:%d (%s): timed out after %gs; the "
					    "agent connects from %s: %s",
					    hop->host, hop->port, addr, timeout, egress, hint);
		return outpost_fail(ctx, OUTPOST_ERR_FAILED,
				    "cannot connect to %s:%d (%s): %s; the agent connects from "
				    "%s: %s",
				    hop->host, hop->port, addr, err == ECONNREFUSED ? "connection refused" : strerror(err),
				    egress, hint);
	}
	freeaddrinfo(res);
	{
		int one = 1, flags = fcntl(fd, F_GETFL);

		/* libssh sets TCP_NODELAY only on sockets it connects itself; without it each
		 * small request waits for a delayed ACK (measured.md: 6x). */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		{
			/* A peer that vanished is noticed in about two minutes, not two hours. */
			int idle = 60, intvl = 10, cnt = 6;

			(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
			(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
			(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		}
		if (flags >= 0)
			(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	}
	*out_fd = fd;
	return OUTPOST_OK;
}

/* ---- host keys ------------------------------------------------------------------------ */

/* "host" for port 22, "[host]:port" otherwise: the known_hosts spelling. */
static void known_hosts_name(const struct sshp_hop *hop, char *out, size_t outlen)
{
	if (hop->port == 22)
		snprintf(out, outlen, "%s", hop->host);
	else
		snprintf(out, outlen, "[%s]:%d", hop->host, hop->port);
}

static bool same_fingerprint(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 0 && a[la - 1] == '=')
		la--;
	while (lb > 0 && b[lb - 1] == '=')
		lb--;
	return la == lb && strncmp(a, b, la) == 0;
}

static int check_host_key(outpost_ctx *ctx, struct sshp_state *st, const struct sshp_hop *hop,
			  ssh_session s)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;
	const char *type;
	char name[300];
	int rc = OUTPOST_ERR_FAILED;

	if (ssh_get_server_publickey(s, &key) != SSH_OK ||
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != SSH_OK ||
	    (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen)) == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot read the host key of %s:%d: %s",
				  hop->host, hop->port, ssh_get_error(s));
		goto out;
	}
	type = ssh_key_type_to_char(ssh_key_type(key));
	known_hosts_name(hop, name, sizeof(name));
	if (hop->insecure) {
		outpost_warn(ctx,
			     "INSECURE: the host key of %s:%d is NOT verified (%s."
			     "insecure_ignore_host_key is set); it presented %s key %s. Anyone "
			     "who can intercept this connection can read and change it.",
			     hop->host, hop->port, hop->where, type, fp);
		rc = OUTPOST_OK;
		goto out;
	}
	if (hop->host_key != NULL) {
		if (same_fingerprint(fp, hop->host_key)) {
			rc = OUTPOST_OK;
			goto out;
		}
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
				  "host key verification failed for %s:%d: it presented %s key %s, "
				  "but %s.host_key pins %s. If the host's key was changed on "
				  "purpose, update the pin; otherwise someone may be intercepting "
				  "the connection",
				  hop->host, hop->port, type, fp, hop->where, hop->host_key);
		goto out;
	}
	switch (ssh_session_is_known_server(s)) {
	case SSH_KNOWN_HOSTS_OK:
		rc = OUTPOST_OK;
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		rc = outpost_fail(
			ctx, OUTPOST_ERR_FAILED,
			"host key verification failed for %s:%d: the host key has CHANGED: it "
			"presented %s key %s, which does not match the key recorded for %s in %s. "
			"Someone may be intercepting the connection, or the host was reinstalled. "
			"If the change is expected, remove the old key (ssh-keygen -R '%s' -f %s) "
			"and add the new one, or pin it in the task with \"host_key\": \"%s\"",
			hop->host, hop->port, type, fp, name, st->known_hosts, name, st->known_hosts,
			fp);
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		rc = outpost_fail(
			ctx, OUTPOST_ERR_FAILED,
			"host key verification failed for %s:%d: the host is unknown: %s has no "
			"key for %s%s. It presented %s key %s. If that is the host's fingerprint "
			"(check on the host: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), trust "
			"it by adding the key to the known_hosts file (ssh-keyscan -p %d %s >> %s) "
			"or by pinning it in the task: \"host_key\": \"%s\"",
			hop->host, hop->port, st->known_hosts, name,
			access(st->known_hosts, F_OK) != 0 ? " (the file does not exist)" : "", type,
			fp,
			strncmp(type, "ssh-", 4) == 0 ? type + 4
			: strncmp(type, "ecdsa", 5) == 0 ? "ecdsa"
							 : type,
			hop->port, hop->host, st->known_hosts, fp);
		break;
	default:
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
				  "host key verification failed for %s:%d: cannot read the "
				  "known_hosts file %s: %s",
				  hop->host, hop->port, st->known_hosts, ssh_get_error(s));
		break;
	}
out:
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return rc;
}

/* ---- authentication ------------------------------------------------------------------- */

static void methods_text(int methods, char *out, size_t outlen)
{
	static const struct {
		int bit;
		const char *name;
	} names[] = {
		{SSH_AUTH_METHOD_PUBLICKEY, "publickey"},
		{SSH_AUTH_METHOD_PASSWORD, "password"},
		{SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive"},
		{SSH_AUTH_METHOD_HOSTBASED, "hostbased"},
		{SSH_AUTH_METHOD_GSSAPI_MIC, "gssapi-with-mic"},
	};
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (methods & names[i].bit)
			n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s",
					      n ? ", " : "", names[i].name);
	if (out[0] == '\0')
		snprintf(out, outlen, "none");
}

/* Answers keyboard-interactive prompts with the password. */
static int kbdint_password(ssh_session s, const char *password)
{
	int rc = ssh_userauth_kbdint(s, NULL, NULL);

	while (rc == SSH_AUTH_INFO) {
		int n = ssh_userauth_kbdint_getnprompts(s), i;

		for (i = 0; i < n; i++) {
			char echo = 0;

			(void)ssh_userauth_kbdint_getprompt(s, (unsigned)i, &echo);
			if (ssh_userauth_kbdint_setanswer(s, (unsigned)i, echo ? "" : password) < 0)
				return SSH_AUTH_ERROR;
		}
		rc = ssh_userauth_kbdint(s, NULL, NULL);
	}
	return rc;
}

static int authenticate(outpost_ctx *ctx, const struct sshp_hop *hop, ssh_session s)
{
	const char *key_secret = NULL, *pass_secret = NULL, *pw_secret = NULL;
	struct sshp_buf refused = {0};
	char accepts[128];
	bool agent = false;
	int methods, rc, result = OUTPOST_ERR_FAILED;

	(void)outpost_get_str(ctx, hop->auth, "key_secret", &key_secret, NULL);
	(void)outpost_get_str(ctx, hop->auth, "passphrase_secret", &pass_secret, NULL);
	(void)outpost_get_str(ctx, hop->auth, "password_secret", &pw_secret, NULL);
	(void)outpost_get_bool(ctx, hop->auth, "agent", &agent, false);

	rc = ssh_userauth_none(s, NULL);
	if (rc == SSH_AUTH_SUCCESS)
		return OUTPOST_OK;
	if (rc == SSH_AUTH_ERROR)
		return outpost_fail(ctx, OUTPOST_ERR_FAILED, "authentication with %s failed: %s",
				    hop->label, ssh_get_error(s));
	methods = ssh_userauth_list(s, NULL);

	if (key_secret != NULL) {
		const char *keytext, *pass = NULL;
		ssh_key key = NULL;

		keytext = outpost_secret(ctx, key_secret, hop->host, NULL);
		if (keytext == NULL) {
			result = OUTPOST_ERR_DENIED;
			goto out;
		}
		if (pass_secret != NULL) {
			pass = outpost_secret(ctx, pass_secret, hop->host, NULL);
			if (pass == NULL) {
				result = OUTPOST_ERR_DENIED;
				goto out;
			}
		}
		if (ssh_pki_import_privkey_base64(keytext, pass, NULL, NULL, &key) != SSH_OK) {
			if (pass == NULL)
				result = outpost_fail(
					ctx, OUTPOST_ERR_FAILED,
					"secret \"%s\" (%s.auth.key_secret) does not hold a private "
					"key that libssh can read (OpenSSH or PEM format), or the key "
					"is encrypted: then give its passphrase in auth."
					"passphrase_secret",
					key_secret, hop->where);
			else
				result = outpost_fail(
					ctx, OUTPOST_ERR_FAILED,
					"secret \"%s\" (%s.auth.key_secret) could not be read as a "
					"private key with the passphrase from secret \"%s\": wrong "
					"passphrase, or not a key in OpenSSH or PEM format",
					key_secret, hop->where, pass_secret);
			goto out;
		}
		rc = ssh_userauth_publickey(s, NULL, key);
		ssh_key_free(key);
		if (rc == SSH_AUTH_SUCCESS) {
			result = OUTPOST_OK;
			goto out;
		}
		if (rc == SSH_AUTH_ERROR) {
			result = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					      "authentication with %s failed: %s", hop->label,
					      ssh_get_error(s));
			goto out;
		}
		if (rc == SSH_AUTH_PARTIAL)
			methods = ssh_userauth_list(s, NULL);
		else
			sshp_buf_addf(&refused, "the key from secret \"%s\"", key_secret);
	}
	if (agent) {
		if (getenv("SSH_AUTH_SOCK") == NULL) {
			result = outpost_fail(
				ctx, OUTPOST_ERR_FAILED,
				"%s.auth.agent: SSH_AUTH_SOCK is not set for the ssh plugin's workers: "
				"list it in plugins.config.ssh.env_allow in the agent config, and make "
				"sure the agent itself runs with SSH_AUTH_SOCK set",
				hop->where);
			goto out;
		}
		rc = ssh_userauth_agent(s, NULL);
		if (rc == SSH_AUTH_SUCCESS) {
			result = OUTPOST_OK;
			goto out;
		}
		if (rc == SSH_AUTH_PARTIAL)
			methods = ssh_userauth_list(s, NULL);
		else
			sshp_buf_addf(&refused, "%sthe keys of the ssh-agent", refused.len ? " and " : "");
	}
	if (pw_secret != NULL) {
		const char *pw = outpost_secret(ctx, pw_secret, hop->host, NULL);

		if (pw == NULL) {
			result = OUTPOST_ERR_DENIED;
			goto out;
		}
		if (methods & SSH_AUTH_METHOD_PASSWORD)
			rc = ssh_userauth_password(s, NULL, pw);
		else if (methods & SSH_AUTH_METHOD_INTERACTIVE)
			rc = kbdint_password(s, pw);
		else
			rc = SSH_AUTH_DENIED;
		if (rc == SSH_AUTH_SUCCESS) {
			result = OUTPOST_OK;
			goto out;
		}
		if (rc == SSH_AUTH_ERROR) {
			result = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					      "authentication with %s failed: %s", hop->label,
					      ssh_get_error(s));
			goto out;
		}
		sshp_buf_addf(&refused, "%sthe password from secret \"%s\"",
			      refused.len ? " and " : "", pw_secret);
	}
	methods_text(methods, accepts, sizeof(accepts));
	result = outpost_fail(ctx, OUTPOST_ERR_FAILED,
			      "authentication failed for %s: the server refused %s (it accepts: "
			      "%s). Check %s.user%s%s",
			      hop->label, refused.data ? refused.data : "every method given", accepts,
			      hop->where,
			      key_secret || agent ? ", and that the key is in the user's "
						    "authorized_keys on the host"
						  : "",
			      pw_secret ? ", and the password (and that the server allows "
					  "password logins)"
					: "");
out:
	sshp_buf_release(&refused);
	return result;
}

/* ---- sessions and tunnels --------------------------------------------------------------- */

/* Opens an SSH session over FD (which it takes over), checks the host key, authenticates. */
static int open_session(outpost_ctx *ctx, struct sshp_state *st, const struct sshp_hop *hop,
			int fd, double timeout, ssh_session *out)
{
	ssh_session s = ssh_new();
	long secs = (long)timeout, usecs = (long)((timeout - (double)secs) * 1e6);
	int off = 0, on = 1, port = hop->port, rc;

	*out = NULL;
	if (s == NULL) {
		close(fd);
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	}
	if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &off) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_HOST, hop->host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_PORT, &port) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_USER, hop->user) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, st->known_hosts) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, st->known_hosts) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_NODELAY, &on) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &secs) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT_USEC, &usecs) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "%s: %s", hop->where, ssh_get_error(s));
		close(fd);
		ssh_free(s);
		return rc;
	}
	/* From here the session owns FD: ssh_free() closes it. */
	ssh_options_set(s, SSH_OPTIONS_FD, &fd);
	*out = s;
	if (ssh_connect(s) != SSH_OK) {
		const char *e = ssh_get_error(s);

		if (sshp_cancelled(ctx, st))
			return outpost_fail(ctx, OUTPOST_ERR_CANCELLED,
					    "cancelled during the SSH handshake with %s:%d",
					    hop->host, hop->port);
		if (strstr(e, "imeout") != NULL)
			return outpost_fail(ctx, OUTPOST_ERR_FAILED,
					    "SSH handshake with %s:%d timed out after %gs: the port "
					    "accepted the connection but no SSH server answered in "
					    "time (params.connect_timeout)",
					    hop->host, hop->port, timeout);
		return outpost_fail(ctx, OUTPOST_ERR_FAILED, "SSH handshake with %s:%d failed: %s",
				    hop->host, hop->port, e);
	}
	rc = check_host_key(ctx, st, hop, s);
	if (rc != OUTPOST_OK)
		return rc;
	rc = authenticate(ctx, hop, s);
	if (rc != OUTPOST_OK && sshp_cancelled(ctx, st))
		return outpost_fail(ctx, OUTPOST_ERR_CANCELLED,
				    "cancelled while authenticating with %s", hop->label);
	return rc;
}

/* Writes all of P to socket FD; no SIGPIPE when the other end is gone. */
static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Moves bytes between a jump host's direct-tcpip channel and the socketpair of the next hop. */
static void *pump_main(void *arg)
{
	struct sshp_link *l = arg;
	static const size_t bufsize = 65536;
	char *buf = malloc(bufsize);
	int sock = l->pair[1];

	if (buf == NULL)
		goto out;
	while (!atomic_load(&l->stop)) {
		struct pollfd p[2];
		int n = ssh_channel_read_nonblocking(l->channel, buf, (uint32_t)bufsize, 0);

		if (n == SSH_ERROR)
			break;
		if (n > 0) {
			if (send_all(sock, buf, (size_t)n) < 0)
				break;
			continue;
		}
		if (ssh_channel_is_eof(l->channel) || ssh_channel_is_closed(l->channel))
			break;
		p[0].fd = sock;
		p[0].events = POLLIN;
		p[1].fd = ssh_get_fd(l->session);
		p[1].events = POLLIN;
		p[0].revents = p[1].revents = 0;
		if (poll(p, 2, 200) < 0 && errno != EINTR)
			break;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t m = read(sock, buf, bufsize);

			if (m > 0) {
				if (ssh_channel_write(l->channel, buf, (uint32_t)m) != (int)m)
					break;
			} else if (m == 0 || (errno != EINTR && errno != EAGAIN)) {
				ssh_channel_send_eof(l->channel);
				break;
			}
		}
	}
out:
	free(buf);
	shutdown(sock, SHUT_RDWR); /* the next session sees the end */
	return NULL;
}

/* Opens a direct-tcpip channel from link L's session to HOP and starts its pump. */
static int open_tunnel(outpost_ctx *ctx, struct sshp_link *l, const struct sshp_hop *from,
		       const struct sshp_hop *hop, int *fd)
{
	snprintf(l->next, sizeof(l->next), "%s:%d", hop->host, hop->port);
	l->channel = ssh_channel_new(l->session);
	if (l->channel == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	if (ssh_channel_open_forward(l->channel, hop->host, hop->port, "127.0.0.1", 22) != SSH_OK)
		return outpost_fail(ctx, OUTPOST_ERR_FAILED,
				    "jump host %s:%d could not connect to %s:%d: %s. The jump "
				    "host makes this connection, so the target's firewall or "
				    "allowlist must admit the jump host's address, and the jump "
				    "host's sshd must allow TCP forwarding (AllowTcpForwarding)",
				    from->host, from->port, hop->host, hop->port,
				    ssh_get_error(l->session));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->pair) < 0)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "socketpair: %s", strerror(errno));
	{
		/* A small stack: workers may run under an address-space limit
		 * (workers.memory_limit), and the pump needs little. */
		pthread_attr_t attr;
		int prc;

		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 512 * 1024);
		prc = pthread_create(&l->pump, &attr, pump_main, l);
		pthread_attr_destroy(&attr);
		if (prc != 0)
			return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "cannot start a thread: %s",
					    strerror(prc));
	}
	l->pump_running = true;
	*fd = l->pair[0];
	l->pair[0] = -1; /* the next session owns it from here */
	return OUTPOST_OK;
}

int sshp_connect(outpost_ctx *ctx, struct sshp_state *st, const struct sshp_target *t,
		 struct sshp_conn *conn)
{
	int i, rc = OUTPOST_OK;

	memset(conn, 0, sizeof(*conn));
	for (i = 0; i <= SSHP_MAX_JUMPS; i++)
		conn->links[i].pair[0] = conn->links[i].pair[1] = -1;
	snprintf(conn->target_label, sizeof(conn->target_label), "%s",
		 t->hops[t->n_hops - 1].label);
	atomic_store(&st->connecting, 1);
	for (i = 0; i < t->n_hops; i++) {
		const struct sshp_hop *hop = &t->hops[i];
		int fd = -1;

		if (i == 0)
			rc = tcp_connect(ctx, st, hop, t->connect_timeout, &fd);
		else
			rc = open_tunnel(ctx, &conn->links[i - 1], &t->hops[i - 1], hop, &fd);
		if (rc != OUTPOST_OK)
			break;
		conn->n = i + 1;
		rc = open_session(ctx, st, hop, fd, t->connect_timeout, &conn->links[i].session);
		if (rc != OUTPOST_OK)
			break;
		if (i + 1 < t->n_hops)
			outpost_info(ctx, "connected to jump host %s", hop->label);
	}
	atomic_store(&st->connecting, 0);
	atomic_store(&st->kill_fd, -1);
	if (rc == OUTPOST_OK && sshp_cancelled(ctx, st))
		rc = outpost_fail(ctx, OUTPOST_ERR_CANCELLED, "cancelled while connecting");
	if (rc != OUTPOST_OK) {
		sshp_conn_release(conn);
		return rc;
	}
	conn->target = conn->links[conn->n - 1].session;
	return OUTPOST_OK;
}

void sshp_conn_release(struct sshp_conn *conn)
{
	int i;

	for (i = conn->n - 1; i >= 0; i--) {
		struct sshp_link *l = &conn->links[i];

		if (l->pump_running) {
			atomic_store(&l->stop, 1);
			if (l->pair[1] >= 0)
				shutdown(l->pair[1], SHUT_RDWR);
			pthread_join(l->pump, NULL);
			l->pump_running = false;
		}
		if (l->channel != NULL) {
			ssh_channel_free(l->channel);
			l->channel = NULL;
		}
		if (l->pair[0] >= 0)
			close(l->pair[0]);
		if (l->pair[1] >= 0)
			close(l->pair[1]);
		l->pair[0] = l->pair[1] = -1;
		if (l->session != NULL) {
			ssh_disconnect(l->session);
			ssh_free(l->session);
			l->session = NULL;
		}
	}
	conn->n = 0;
	conn->target = NULL;
}
