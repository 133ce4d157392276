/* SPDX-License-Identifier: Apache-2.0 */
/* The ssh benchmark's ceiling: a minimal libssh client, one session, a channel per command. */

/*
 * usage: ssh-ceiling HOST PORT USER KEY_FILE KNOWN_HOSTS COUNT [--nagle]
 * Connects once (TCP_NODELAY on unless --nagle), checks the host key against KNOWN_HOSTS,
 * logs in with KEY_FILE, then runs "echo I" COUNT times, each on its own channel, reading its
 * output and exit status. Prints the seconds the whole thing took, connect included.
 */
#include <libssh/libssh.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(ssh_session s, const char *cmd, size_t *out_bytes)
{
	ssh_channel ch = ssh_channel_new(s);
	char buf[4096];
	int n, status;

	if (ch == NULL || ssh_channel_open_session(ch) != SSH_OK ||
	    ssh_channel_request_exec(ch, cmd) != SSH_OK)
		return -1;
	ssh_channel_send_eof(ch);
	while ((n = ssh_channel_read(ch, buf, sizeof(buf), 0)) > 0)
		*out_bytes += (size_t)n;
	status = ssh_channel_get_exit_status(ch);
	ssh_channel_close(ch);
	ssh_channel_free(ch);
	return n < 0 ? -1 : status;
}

int main(int argc, char **argv)
{
	ssh_session s;
	ssh_key key = NULL;
	double t0;
	size_t out_bytes = 0;
	long count;
	int port, nodelay = 1, off = 0, i;

	if (argc < 7) {
		fprintf(stderr, "usage: %s HOST PORT USER KEY_FILE KNOWN_HOSTS COUNT [--nagle]\n",
			argv[0]);
		return 2;
	}
	port = (int)strtol(argv[2], NULL, 10);
	count = strtol(argv[6], NULL, 10);
	if (argc > 7 && strcmp(argv[7], "--nagle") == 0)
		nodelay = 0;
	t0 = now();
	s = ssh_new();
	if (s == NULL)
		return 1;
	ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &off);
	ssh_options_set(s, SSH_OPTIONS_HOST, argv[1]);
	ssh_options_set(s, SSH_OPTIONS_PORT, &port);
	ssh_options_set(s, SSH_OPTIONS_USER, argv[3]);
	ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, argv[5]);
	ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay);
	if (ssh_connect(s) != SSH_OK) {
		fprintf(stderr, "connect: %s\n", ssh_get_error(s));
		return 1;
	}
	if (ssh_session_is_known_server(s) != SSH_KNOWN_HOSTS_OK) {
		fprintf(stderr, "host key not known\n");
		return 1;
	}
	if (ssh_pki_import_privkey_file(argv[4], NULL, NULL, NULL, &key) != SSH_OK ||
	    ssh_userauth_publickey(s, NULL, key) != SSH_AUTH_SUCCESS) {
		fprintf(stderr, "login: %s\n", ssh_get_error(s));
		return 1;
	}
	ssh_key_free(key);
	for (i = 0; i < count; i++) {
		char cmd[32];

		snprintf(cmd, sizeof(cmd), "echo %d", i);
		if (run(s, cmd, &out_bytes) != 0) {
			fprintf(stderr, "command %d failed: %s\n", i, ssh_get_error(s));
			return 1;
		}
	}
	ssh_disconnect(s);
	ssh_free(s);
	printf("%.3f\n", now() - t0);
	return 0;
}
