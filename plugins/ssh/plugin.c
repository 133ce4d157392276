/* SPDX-License-Identifier: Apache-2.0 */
/* The ssh plugin: descriptor, params schemas, settings, and the callbacks the host calls. */
#include "sshp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- params schemas (Outpost's JSON Schema subset) -------------------------------------- */

#define DURATION "{\"type\": [\"string\", \"number\"], \"description\": "
#define SIZE "{\"type\": [\"string\", \"integer\"], \"description\": "

#define AUTH_SCHEMA                                                                              \
	"{\"type\": \"object\", \"additionalProperties\": false,"                               \
	" \"description\": \"how to log in; secrets are named, never inline\","                \
	" \"properties\": {"                                                                   \
	"  \"key_secret\": {\"type\": \"string\", \"minLength\": 1,"                            \
	"    \"description\": \"secret holding a private key (OpenSSH or PEM)\"},"              \
	"  \"passphrase_secret\": {\"type\": \"string\", \"minLength\": 1,"                     \
	"    \"description\": \"secret holding the key's passphrase\"},"                        \
	"  \"password_secret\": {\"type\": \"string\", \"minLength\": 1,"                       \
	"    \"description\": \"secret holding the password\"},"                                \
	"  \"agent\": {\"type\": \"boolean\", \"default\": false,"                              \
	"    \"description\": \"use the ssh-agent at SSH_AUTH_SOCK (needs env_allow)\"}"        \
	"}}"

#define HOP_PROPS                                                                                \
	"\"host\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 253,"                \
	"  \"pattern\": \"^[A-Za-z0-9._:%-]+$\", \"description\": \"host name or address\"},"  \
	"\"port\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 65535, \"default\": 22}," \
	"\"user\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 64,"                 \
	"  \"pattern\": \"^[^[:space:]:/@]+$\"},"                                               \
	"\"auth\": " AUTH_SCHEMA ","                                                            \
	"\"host_key\": {\"type\": \"string\", \"pattern\": \"^SHA256:[A-Za-z0-9+/]{43}=?$\","   \
	"  \"description\": \"pinned host key fingerprint, as ssh-keygen -l prints it\"},"     \
	"\"insecure_ignore_host_key\": {\"type\": \"boolean\", \"default\": false,"             \
	"  \"description\": \"accept any host key (logged as a warning)\"}"

#define CONN_PROPS                                                                               \
	HOP_PROPS ","                                                                           \
	"\"jump\": {\"type\": \"array\", \"maxItems\": 8,"                                      \
	"  \"description\": \"jump hosts, first to last (ProxyJump)\","                        \
	"  \"items\": {\"type\": \"object\", \"additionalProperties\": false,"                  \
	"    \"required\": [\"host\", \"user\", \"auth\"], \"properties\": {" HOP_PROPS "}}},"   \
	"\"connect_timeout\": " DURATION "\"TCP connect, handshake and login, per hop\","      \
	"  \"default\": \"30s\"}"

static const char exec_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false,"
	" \"required\": [\"host\", \"user\", \"auth\"],"
	" \"properties\": {" CONN_PROPS ","
	"  \"command\": {\"type\": \"string\", \"minLength\": 1},"
	"  \"commands\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 10000,"
	"    \"items\": {\"type\": \"string\", \"minLength\": 1}},"
	"  \"env\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}},"
	"  \"stdin\": {\"type\": \"string\"},"
	"  \"cwd\": {\"type\": \"string\", \"minLength\": 1},"
	"  \"pty\": {\"type\": \"boolean\", \"default\": false},"
	"  \"timeout\": " DURATION "\"limit per command\"},"
	"  \"accept_exit_codes\": {\"type\": \"array\", \"minItems\": 1, \"default\": [0],"
	"    \"items\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 255}},"
	"  \"capture_limit\": " SIZE "\"stdout/stderr kept in the result, per stream\","
	"    \"default\": \"64KiB\"},"
	"  \"stop_on_error\": {\"type\": \"boolean\", \"default\": true}"
	"}}";

static const char upload_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false,"
	" \"required\": [\"host\", \"user\", \"auth\", \"path\"],"
	" \"properties\": {" CONN_PROPS ","
	"  \"path\": {\"type\": \"string\", \"minLength\": 1, \"description\": \"remote file\"},"
	"  \"content\": {\"type\": \"string\"},"
	"  \"encoding\": {\"type\": \"string\", \"enum\": [\"utf-8\", \"base64\"],"
	"    \"default\": \"utf-8\"},"
	"  \"source\": {\"type\": \"string\", \"minLength\": 1, \"description\": \"local file\"},"
	"  \"mode\": {\"type\": \"string\", \"pattern\": \"^[0-7]{3,4}$\"},"
	"  \"atomic\": {\"type\": \"boolean\", \"default\": true},"
	"  \"mkdirs\": {\"type\": \"boolean\", \"default\": false},"
	"  \"overwrite\": {\"type\": \"boolean\", \"default\": true}"
	"}}";

static const char download_schema[] =
	"{\"type\": \"object\", \"additionalProperties\": false,"
	" \"required\": [\"host\", \"user\", \"auth\", \"path\"],"
	" \"properties\": {" CONN_PROPS ","
	"  \"path\": {\"type\": \"string\", \"minLength\": 1, \"description\": \"remote file\"},"
	"  \"artifact\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200},"
	"  \"local_path\": {\"type\": \"string\", \"minLength\": 1},"
	"  \"max_size\": " SIZE "\"refuse larger files\"},"
	"  \"sha256\": {\"type\": \"string\", \"pattern\": \"^[0-9a-fA-F]{64}$\"}"
	"}}";

/* ---- state and settings ------------------------------------------------------------------ */

bool sshp_cancelled(outpost_ctx *ctx, struct sshp_state *st)
{
	return atomic_load(&st->cancelled) || outpost_host->is_cancelled(ctx);
}

static void state_free(struct sshp_state *st)
{
	size_t i;

	if (st == NULL)
		return;
	free(st->known_hosts);
	for (i = 0; i < st->n_local_paths; i++)
		free(st->local_paths[i]);
	free(st->local_paths);
	if (st->wake[0] >= 0)
		close(st->wake[0]);
	if (st->wake[1] >= 0)
		close(st->wake[1]);
	free(st);
}

/* Reads plugins.config.ssh. Unknown keys are errors, so a typo never goes unnoticed. */
static int read_settings(outpost_ctx *ctx, struct sshp_state *st, const cJSON *cfg)
{
	const cJSON *item;
	const char *kh = SSHP_DEFAULT_KNOWN_HOSTS;

	cJSON_ArrayForEach(item, cfg)
	{
		const char *k = item->string;

		if (strcmp(k, "known_hosts") == 0) {
			if (!cJSON_IsString(item) || item->valuestring[0] != '/')
				return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
						    "plugins.config.ssh.known_hosts: expected an "
						    "absolute file path");
			kh = item->valuestring;
		} else if (strcmp(k, "local_paths") == 0) {
			const cJSON *v;
			size_t n = 0;

			if (!cJSON_IsArray(item))
				return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
						    "plugins.config.ssh.local_paths: expected a list "
						    "of absolute directory paths");
			st->local_paths = calloc((size_t)cJSON_GetArraySize(item) + 1,
						 sizeof(char *));
			if (st->local_paths == NULL)
				return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
			cJSON_ArrayForEach(v, item)
			{
				if (!cJSON_IsString(v) || v->valuestring[0] != '/')
					return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
							    "plugins.config.ssh.local_paths[%zu]: "
							    "expected an absolute directory path",
							    n);
				st->local_paths[n] = strdup(v->valuestring);
				if (st->local_paths[n] == NULL)
					return outpost_fail(ctx, OUTPOST_ERR_INTERNAL,
							    "out of memory");
				st->n_local_paths = ++n;
			}
		} else if (strcmp(k, "env_allow") != 0) {
			return outpost_fail(ctx, OUTPOST_ERR_PARAMS,
					    "plugins.config.ssh: unknown setting \"%s\" (known: "
					    "known_hosts, local_paths, env_allow)",
					    k);
		}
	}
	st->known_hosts = strdup(kh);
	if (st->known_hosts == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	return OUTPOST_OK;
}

static int ssh_plugin_init(outpost_ctx *ctx, const char *config, size_t len, void **state)
{
	struct sshp_state *st = calloc(1, sizeof(*st));
	cJSON *root = NULL;
	const cJSON *cfg;
	int rc;

	if (st == NULL)
		return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "out of memory");
	st->wake[0] = st->wake[1] = -1;
	atomic_store(&st->kill_fd, -1);
	if (ssh_init() != SSH_OK) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "libssh failed to initialise");
		goto fail;
	}
	if (pipe2(st->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "pipe: %s", strerror(errno));
		goto fail;
	}
	root = cJSON_ParseWithLength(config, len);
	cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
	if (cfg != NULL && !cJSON_IsObject(cfg) && !cJSON_IsNull(cfg)) {
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS,
				  "plugins.config.ssh: expected a mapping of settings");
		goto fail;
	}
	rc = read_settings(ctx, st, cJSON_IsObject(cfg) ? cfg : NULL);
	if (rc != OUTPOST_OK)
		goto fail;
	cJSON_Delete(root);
	*state = st;
	return OUTPOST_OK;
fail:
	cJSON_Delete(root);
	state_free(st);
	return rc;
}

static void ssh_plugin_shutdown(void *state)
{
	state_free(state);
	ssh_finalize();
}

/* May run in a signal handler or another thread: only async-signal-safe calls. */
static void ssh_plugin_cancel(void *state)
{
	struct sshp_state *st = state;
	ssize_t w;
	int fd;

	if (st == NULL)
		return;
	atomic_store(&st->cancelled, 1);
	w = st->wake[1] >= 0 ? write(st->wake[1], "c", 1) : 0;
	(void)w;
	/* A blocking handshake or login wakes up when its socket is shut down. */
	fd = atomic_load(&st->kill_fd);
	if (atomic_load(&st->connecting) && fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static int ssh_plugin_validate(outpost_ctx *ctx, void *state, const char *type,
			       const char *params, size_t len)
{
	cJSON *p = outpost_params_parse(ctx, params, len);
	int rc;

	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	if (strcmp(type, "ssh.exec") == 0)
		rc = sshp_exec_validate(ctx, state, p);
	else if (strcmp(type, "ssh.upload") == 0)
		rc = sshp_upload_validate(ctx, state, p);
	else if (strcmp(type, "ssh.download") == 0)
		rc = sshp_download_validate(ctx, state, p);
	else
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "unknown task type %s", type);
	cJSON_Delete(p);
	return rc;
}

static int ssh_plugin_execute(outpost_ctx *ctx, void *state, const char *type,
			      const char *params, size_t len)
{
	cJSON *p;
	int rc;

	rc = ssh_plugin_validate(ctx, state, type, params, len);
	if (rc != OUTPOST_OK)
		return rc;
	p = outpost_params_parse(ctx, params, len);
	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	if (strcmp(type, "ssh.exec") == 0)
		rc = sshp_exec(ctx, state, p);
	else if (strcmp(type, "ssh.upload") == 0)
		rc = sshp_upload(ctx, state, p);
	else
		rc = sshp_download(ctx, state, p);
	cJSON_Delete(p);
	return rc;
}

static const struct outpost_task_type types[] = {
	OUTPOST_TASK_TYPE("ssh.exec", "Runs commands on a host over SSH", exec_schema),
	OUTPOST_TASK_TYPE("ssh.upload", "Writes a file on a host over SFTP", upload_schema),
	OUTPOST_TASK_TYPE("ssh.download", "Fetches a file from a host over SFTP", download_schema),
};

OUTPOST_PLUGIN_DEFINE(.name = "ssh", .version = "1.0.0", .vendor = "Outpost",
		      .license = "Apache-2.0",
		      .description = "Commands and files on hosts over SSH (libssh), through "
				     "jump hosts",
		      .types = types, .n_types = OUTPOST_COUNT(types), .init = ssh_plugin_init,
		      .validate = ssh_plugin_validate, .execute = ssh_plugin_execute,
		      .cancel = ssh_plugin_cancel, .shutdown = ssh_plugin_shutdown)
