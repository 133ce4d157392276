/* SPDX-License-Identifier: Apache-2.0 */
/* ssh.exec: runs one command or a list of commands on one session, a channel each. */
#include "sshp.h"

#include <libssh/callbacks.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What one command did, filled by the channel callbacks. */
struct run {
	outpost_ctx *ctx;
	uint64_t limit; /* capture_limit per stream */
	struct sshp_buf out, err;
	uint64_t out_bytes, err_bytes;
	bool eof, closed, got_status, got_signal, core;
	int status;
	char signal[32];
};

/* The exec options shared by every command of the task. */
struct exec_opts {
	const char *stdin_data;
	const cJSON *env;
	const char *cwd;
	bool pty;
	double timeout; /* per command; 0 = none */
	uint64_t capture_limit;
	const cJSON *accept;
	bool stop_on_error;
};

static int on_data(ssh_session s, ssh_channel c, void *data, uint32_t len, int is_stderr,
		   void *userdata)
{
	struct run *r = userdata;
	struct sshp_buf *b = is_stderr ? &r->err : &r->out;
	uint64_t *count = is_stderr ? &r->err_bytes : &r->out_bytes;

	(void)s;
	(void)c;
	(void)outpost_output(r->ctx, is_stderr ? OUTPOST_STREAM_STDERR : OUTPOST_STREAM_STDOUT,
			     data, len);
	if (b->len < r->limit) {
		size_t take = len;

		if (b->len + take > r->limit)
			take = (size_t)(r->limit - b->len);
		(void)sshp_buf_add(b, data, take);
	}
	*count += len;
	return (int)len;
}

static void on_eof(ssh_session s, ssh_channel c, void *userdata)
{
	(void)s;
	(void)c;
	((struct run *)userdata)->eof = true;
}

static void on_close(ssh_session s, ssh_channel c, void *userdata)
{
	(void)s;
	(void)c;
	((struct run *)userdata)->closed = true;
}

static void on_exit_status(ssh_session s, ssh_channel c, int status, void *userdata)
{
	struct run *r = userdata;

	(void)s;
	(void)c;
	r->status = status;
	r->got_status = true;
}

static void on_exit_signal(ssh_session s, ssh_channel c, const char *signal, int core,
			   const char *errmsg, const char *lang, void *userdata)
{
	struct run *r = userdata;

	(void)s;
	(void)c;
	(void)errmsg;
	(void)lang;
	snprintf(r->signal, sizeof(r->signal), "%s", signal ? signal : "?");
	r->core = core != 0;
	r->got_signal = true;
}

static int on_wake(socket_t fd, int revents, void *userdata)
{
	char buf[64];

	(void)revents;
	(void)userdata;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

/* The text sent to the server: env exports and cd, then the command, one per line. */
static int build_command(const struct exec_opts *o, const char *command, struct sshp_buf *b)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, o->env)
	{
		if (sshp_buf_addf(b, "export %s=", v->string) < 0 ||
		    sshp_shell_quote(b, v->valuestring) < 0 || sshp_buf_add(b, "\n", 1) < 0)
			return -1;
	}
	if (o->cwd != NULL) {
		if (sshp_buf_add(b, "cd ", 3) < 0 || sshp_shell_quote(b, o->cwd) < 0 ||
		    sshp_buf_add(b, " || exit 1\n", 11) < 0)
			return -1;
	}
	return sshp_buf_add(b, command, strlen(command));
}

/* Runs one command on its own channel. Returns an rc for the transport (OK even when the
 * command itself failed); *STOPPED says why it was stopped early, if it was. */
static int run_one(outpost_ctx *ctx, struct sshp_state *st, ssh_session s, ssh_event ev,
		   const struct exec_opts *o, const char *command, const char *target,
		   struct run *r, int *stopped, const char **how)
{
	struct ssh_channel_callbacks_struct cb;
	struct sshp_buf text = {0};
	ssh_channel ch = ssh_channel_new(s);
	double start = sshp_now(), grace = 0;
	int phase = 0, rc = OUTPOST_OK;

	memset(&cb, 0, sizeof(cb));
	*stopped = OUTPOST_OK;
	*how = NULL;
	if (ch == NULL || build_command(o, command, &text) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	cb.userdata = r;
	cb.channel_data_function = on_data;
	cb.channel_eof_function = on_eof;
	cb.channel_close_function = on_close;
	cb.channel_exit_status_function = on_exit_status;
	cb.channel_exit_signal_function = on_exit_signal;
	ssh_callbacks_init(&cb);
	ssh_set_channel_callbacks(ch, &cb);
	if (ssh_channel_open_session(ch) != SSH_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "cannot open a session channel on %s: %s",
				  target, ssh_get_error(s));
		goto out;
	}
	if (o->pty && ssh_channel_request_pty(ch) != SSH_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s refused a pseudo-terminal (pty): %s",
				  target, ssh_get_error(s));
		goto out;
	}
	if (ssh_channel_request_exec(ch, text.data) != SSH_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s refused to run the command: %s",
				  target, ssh_get_error(s));
		goto out;
	}
	if (o->stdin_data != NULL && *o->stdin_data) {
		size_t len = strlen(o->stdin_data);

		if (ssh_channel_write(ch, o->stdin_data, (uint32_t)len) != (int)len &&
		    !r->closed) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
					  "cannot send stdin to the command on %s: %s", target,
					  ssh_get_error(s));
			goto out;
		}
	}
	if (!r->closed)
		ssh_channel_send_eof(ch);

	while (!r->closed && !(r->eof && (r->got_status || r->got_signal))) {
		double now = sshp_now();
		int wait_ms = 250;

		if (phase == 0) {
			bool timed_out = o->timeout > 0 && now - start >= o->timeout;

			if (timed_out || sshp_cancelled(ctx, st)) {
				*stopped = timed_out ? OUTPOST_ERR_TIMEOUT : OUTPOST_ERR_CANCELLED;
				ssh_channel_request_send_signal(ch, "TERM");
				*how = "SIGTERM";
				phase = 1;
				grace = now + 2;
			} else if (o->timeout > 0) {
				double left = start + o->timeout - now;

				if (left * 1000 < wait_ms)
					wait_ms = (int)(left * 1000) + 1;
			}
		} else if (now >= grace) {
			if (phase == 1) {
				ssh_channel_request_send_signal(ch, "KILL");
				*how = "SIGKILL";
				phase = 2;
				grace = now + 1;
			} else {
				*how = NULL; /* nothing stopped it */
				break;
			}
		}
		if (ssh_event_dopoll(ev, wait_ms) == SSH_ERROR || !ssh_is_connected(s)) {
			if (!ssh_is_connected(s)) {
				rc = outpost_fail(ctx, OUTPOST_ERR_FAILED,
						  "the connection to %s was lost while the command "
						  "ran: %s",
						  target, ssh_get_error(s));
				goto out;
			}
		}
	}
out:
	if (ch != NULL) {
		/* libssh keeps a freed channel until the server's close arrives and then runs
		 * its callbacks: CB lives on this stack frame, so detach it first. */
		ssh_remove_channel_callbacks(ch, &cb);
		if (ssh_channel_is_open(ch))
			ssh_channel_close(ch);
		ssh_channel_free(ch);
	}
	sshp_buf_release(&text);
	return rc;
}

static bool accepted(const struct exec_opts *o, int status)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, o->accept)
	{
		if (cJSON_IsNumber(v) && (int)v->valuedouble == status)
			return true;
	}
	return false;
}

static void accepted_text(const struct exec_opts *o, char *out, size_t outlen)
{
	const cJSON *v;
	size_t n = 0;

	out[0] = '\0';
	cJSON_ArrayForEach(v, o->accept)
	{
		n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%d", n ? ", " : "",
				      (int)v->valuedouble);
	}
}

/* The last non-empty line of the captured stderr, cut to 200 bytes, for the error message. */
static void last_line(const struct sshp_buf *b, char *out, size_t outlen)
{
	size_t end = b->len, start;

	out[0] = '\0';
	while (end > 0 && (b->data[end - 1] == '\n' || b->data[end - 1] == '\r'))
		end--;
	start = end;
	while (start > 0 && b->data[start - 1] != '\n')
		start--;
	if (end > start) {
		size_t n = end - start;
		char *clean;

		if (n > 200)
			n = 200;
		clean = sshp_utf8_sanitize(b->data + start, n);
		if (clean != NULL) {
			snprintf(out, outlen, "%s", clean);
			free(clean);
		}
	}
}

/* The result object of one command. */
static cJSON *run_json(const struct run *r, const char *command, bool with_command,
		       double duration)
{
	cJSON *o = cJSON_CreateObject();
	char *out = sshp_utf8_sanitize(r->out.data ? r->out.data : "", r->out.len);
	char *err = sshp_utf8_sanitize(r->err.data ? r->err.data : "", r->err.len);

	if (o == NULL || out == NULL || err == NULL)
		goto fail;
	if (with_command)
		cJSON_AddStringToObject(o, "command", command);
	if (r->got_status)
		cJSON_AddNumberToObject(o, "exit_code", r->status);
	else
		cJSON_AddNullToObject(o, "exit_code");
	if (r->got_signal) {
		cJSON_AddStringToObject(o, "signal", r->signal);
		cJSON_AddBoolToObject(o, "core_dumped", r->core);
	} else {
		cJSON_AddNullToObject(o, "signal");
	}
	cJSON_AddStringToObject(o, "stdout", out);
	cJSON_AddStringToObject(o, "stderr", err);
	cJSON_AddNumberToObject(o, "stdout_bytes", (double)r->out_bytes);
	cJSON_AddNumberToObject(o, "stderr_bytes", (double)r->err_bytes);
	cJSON_AddBoolToObject(o, "stdout_truncated", r->out_bytes > r->out.len);
	cJSON_AddBoolToObject(o, "stderr_truncated", r->err_bytes > r->err.len);
	cJSON_AddNumberToObject(o, "duration", duration);
	free(out);
	free(err);
	return o;
fail:
	free(out);
	free(err);
	cJSON_Delete(o);
	return NULL;
}

static int parse_opts(outpost_ctx *ctx, const cJSON *p, struct exec_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->stop_on_error = true;
	if (outpost_get_str(ctx, p, "stdin", &o->stdin_data, NULL) < 0 ||
	    outpost_get_obj(ctx, p, "env", &o->env) < 0 ||
	    outpost_get_str(ctx, p, "cwd", &o->cwd, NULL) < 0 ||
	    outpost_get_bool(ctx, p, "pty", &o->pty, false) < 0 ||
	    outpost_get_duration(ctx, p, "timeout", &o->timeout, 0) < 0 ||
	    outpost_get_size(ctx, p, "capture_limit", &o->capture_limit, 65536) < 0 ||
	    outpost_get_arr(ctx, p, "accept_exit_codes", &o->accept) < 0 ||
	    outpost_get_bool(ctx, p, "stop_on_error", &o->stop_on_error, true) < 0)
		return OUTPOST_ERR_PARAMS;
	return OUTPOST_OK;
}

static bool valid_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

int sshp_exec_validate(outpost_ctx *ctx, struct sshp_state *st, const cJSON *p)
{
	struct sshp_target t;
	struct exec_opts o;
	const char *command = NULL;
	const cJSON *commands = NULL, *v;
	int rc;

	(void)st;
	rc = sshp_target_parse(ctx, p, &t);
	if (rc != OUTPOST_OK)
		return rc;
	rc = parse_opts(ctx, p, &o);
	if (rc != OUTPOST_OK)
		return rc;
	if (outpost_get_str(ctx, p, "command", &command, NULL) < 0 ||
	    outpost_get_arr(ctx, p, "commands", &commands) < 0)
		return OUTPOST_ERR_PARAMS;
	if ((command == NULL) == (commands == NULL))
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params: give either command (one) or commands (a list), not %s",
				    command == NULL ? "neither" : "both");
	cJSON_ArrayForEach(v, o.env)
	{
		if (!valid_env_name(v->string))
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					    "params.env: \"%s\" is not a variable name (letters, "
					    "digits and _, not starting with a digit)",
					    v->string);
	}
	if (o.capture_limit > 64ULL * 1024 * 1024)
		return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				    "params.capture_limit: at most 64MiB (the full output still "
				    "streams to the task log)");
	return OUTPOST_OK;
}

int sshp_exec(outpost_ctx *ctx, struct sshp_state *st, const cJSON *p)
{
	struct sshp_target t;
	struct sshp_conn conn;
	struct exec_opts o;
	const char *command = NULL;
	const cJSON *commands = NULL, *item;
	cJSON *result = NULL, *list = NULL;
	ssh_event ev = NULL;
	double t0 = sshp_now();
	char accepts[128], fail_msg[1024] = "";
	int rc, fail_rc = OUTPOST_OK, total, index = 0, failed = 0, ran = 0;
	bool connected = false;

	rc = sshp_target_parse(ctx, p, &t);
	if (rc == OUTPOST_OK)
		rc = parse_opts(ctx, p, &o);
	if (rc != OUTPOST_OK)
		return rc;
	(void)outpost_get_str(ctx, p, "command", &command, NULL);
	(void)outpost_get_arr(ctx, p, "commands", &commands);
	total = command ? 1 : cJSON_GetArraySize(commands);
	accepted_text(&o, accepts, sizeof(accepts));

	rc = sshp_connect(ctx, st, &t, &conn);
	if (rc != OUTPOST_OK)
		return rc;
	connected = true;
	outpost_debug(ctx, "connected to %s in %.3fs", conn.target_label, sshp_now() - t0);
	ev = ssh_event_new();
	if (ev == NULL || ssh_event_add_session(ev, conn.target) != SSH_OK ||
	    ssh_event_add_fd(ev, st->wake[0], POLLIN, on_wake, NULL) != SSH_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "cannot set up the event loop");
		goto out;
	}
	result = cJSON_CreateObject();
	if (result == NULL) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
		goto out;
	}
	cJSON_AddStringToObject(result, "host", t.hops[t.n_hops - 1].host);
	if (commands != NULL)
		list = cJSON_AddArrayToObject(result, "commands");

	for (item = commands ? commands->child : NULL; index < total;
	     index++, item = item ? item->next : NULL) {
		const char *cmd = command ? command : item->valuestring;
		struct run r;
		const char *how = NULL;
		double c0 = sshp_now();
		int stopped = OUTPOST_OK;
		cJSON *one;
		char line[256];

		if (sshp_cancelled(ctx, st)) {
			fail_rc = OUTPOST_ERR_CANCELLED;
			snprintf(fail_msg, sizeof(fail_msg),
				 "cancelled after %d of %d commands", index, total);
			break;
		}
		if (total > 1) {
			outpost_host->progress(ctx, (double)index / total, NULL);
			outpost_info(ctx, "[%d/%d] $ %s", index + 1, total, cmd);
		}
		memset(&r, 0, sizeof(r));
		r.ctx = ctx;
		r.limit = o.capture_limit;
		rc = run_one(ctx, st, conn.target, ev, &o, cmd, conn.target_label, &r, &stopped,
			     &how);
		if (rc != OUTPOST_OK) {
			sshp_buf_release(&r.out);
			sshp_buf_release(&r.err);
			goto out;
		}
		ran++;
		one = run_json(&r, cmd, list != NULL, sshp_now() - c0);
		if (one == NULL) {
			sshp_buf_release(&r.out);
			sshp_buf_release(&r.err);
			rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
			goto out;
		}
		if (list != NULL) {
			cJSON_AddItemToArray(list, one);
		} else {
			cJSON *m;

			while ((m = one->child) != NULL) {
				cJSON_DetachItemViaPointer(one, m);
				if (strcmp(m->string, "duration") == 0)
					cJSON_Delete(m); /* the task's duration follows */
				else
					cJSON_AddItemToObject(result, m->string, m);
			}
			cJSON_Delete(one);
		}
		last_line(&r.err, line, sizeof(line));
		{
			char which[64] = "command";
			char detail[400] = "";

			if (total > 1)
				snprintf(which, sizeof(which), "command %d of %d", index + 1, total);
			if (line[0])
				snprintf(detail, sizeof(detail), "; stderr: %s", line);
			if (stopped != OUTPOST_OK) {
				char stop_how[160];

				if (how != NULL)
					snprintf(stop_how, sizeof(stop_how),
						 "the remote command was stopped with %s", how);
				else
					snprintf(stop_how, sizeof(stop_how),
						 "the server did not stop the remote command after "
						 "SIGTERM and SIGKILL, so it may still run there");
				fail_rc = stopped;
				if (stopped == OUTPOST_ERR_TIMEOUT)
					snprintf(fail_msg, sizeof(fail_msg),
						 "%s timed out after %gs (params.timeout): %s",
						 which, o.timeout, stop_how);
				else
					snprintf(fail_msg, sizeof(fail_msg), "cancelled: %s",
						 stop_how);
				failed++;
				sshp_buf_release(&r.out);
				sshp_buf_release(&r.err);
				break;
			}
			if (r.got_signal) {
				failed++;
				if (fail_rc == OUTPOST_OK) {
					fail_rc = OUTPOST_ERR_FAILED;
					snprintf(fail_msg, sizeof(fail_msg),
						 "%s was killed by signal %s%s%s", which, r.signal,
						 r.core ? " (core dumped)" : "", detail);
				}
			} else if (!r.got_status) {
				failed++;
				if (fail_rc == OUTPOST_OK) {
					fail_rc = OUTPOST_ERR_FAILED;
					snprintf(fail_msg, sizeof(fail_msg),
						 "%s ended without an exit status (the server closed "
						 "the channel)%s",
						 which, detail);
				}
			} else if (!accepted(&o, r.status)) {
				failed++;
				if (fail_rc == OUTPOST_OK) {
					fail_rc = OUTPOST_ERR_FAILED;
					snprintf(fail_msg, sizeof(fail_msg),
						 "%s exited with status %d (accepted: %s)%s", which,
						 r.status, accepts, detail);
				}
			}
		}
		sshp_buf_release(&r.out);
		sshp_buf_release(&r.err);
		if (fail_rc != OUTPOST_OK && o.stop_on_error)
			break;
	}
	if (list != NULL) {
		cJSON_AddNumberToObject(result, "ran", ran);
		cJSON_AddNumberToObject(result, "failed", failed);
	}
	cJSON_AddNumberToObject(result, "duration", sshp_now() - t0);
	if (outpost_set_result(ctx, result) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "cannot hand over the result");
		goto out;
	}
	if (fail_rc != OUTPOST_OK)
		rc = outpost_fail(ctx, fail_rc, "%s", fail_msg);
	else
		rc = OUTPOST_OK;
out:
	if (ev != NULL) {
		/* ssh_event_free() does not free what ssh_event_add_fd() allocated. */
		ssh_event_remove_fd(ev, st->wake[0]);
		if (connected)
			ssh_event_remove_session(ev, conn.target);
		ssh_event_free(ev);
	}
	cJSON_Delete(result);
	if (connected)
		sshp_conn_release(&conn);
	return rc;
}
