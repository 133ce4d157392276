/* SPDX-License-Identifier: Apache-2.0 */
/* `outpost-agent install`: enrolls this host, writes its config, gives its user the dirs, and
 * sets up the service. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_identity.h"
#include "config.h"
#include "discovery.h"
#include "enroll.h"
#include "fsutil.h"
#include "identity.h"
#include "log.h"
#include "service.h"

enum { D_CONFIG, D_STATE, D_WORKSPACE, D_CACHE, N_DIRS };

struct inst {
	/* options */
	const char *control_plane, *token_arg, *token_file, *ca_cert, *pool, *environment, *tags;
	const char *config_dir, *state_dir, *cache_dir, *plugins_dir, *user, *https_proxy,
		*no_proxy;
	bool insecure, no_service;
	char *env_token;

	/* derived */
	char dirs[N_DIRS][PATH_MAX];
	char config[PATH_MAX], server_ca[PATH_MAX];
	char user_name[256];
	uid_t uid;
	gid_t gid;
	bool root;
	char *token;
	struct ag_config cfg;
	bool have_cfg;

	/* what this run created, undone on failure */
	bool made[N_DIRS];
	char top[N_DIRS][PATH_MAX]; /* the highest directory made for dirs[i] (parents included) */
	bool started; /* past the checks: from here on a failure undoes what was written */
	bool wrote_config, wrote_server_ca, enrolled;
};

static void install_usage(FILE *f)
{
	fprintf(f,
		"usage: outpost-agent install --control-plane URL --token-file FILE [options]\n"
		"\n"
		"Enrolls this host with the control plane: makes the agent's key here (EC P-256,\n"
		"mode 0600), sends a CSR with the enrollment token, stores the certificate, CA bundle\n"
		"and agent id in the state dir, writes config.yaml (mode 0640) in the config dir, and\n"
		"where systemd runs installs, enables and starts outpost-agent.service.\n"
		"\n"
		"The enrollment token (single use), one of:\n"
		"  --token-file FILE        read it from FILE (safest)\n"
		"  --token -                read it from stdin\n"
		"  OUTPOST_TOKEN=TOKEN      from the environment\n"
		"  --token TOKEN            on the command line (wiped from the process's argv at\n"
		"                           once, but shells and sudo log command lines)\n"
		"\n"
		"Options:\n"
		"  --control-plane URL      https://HOST:PORT of the control plane (required)\n"
		"  --ca-cert FILE           CA certificate(s) to trust for the control plane (kept as\n"
		"                           STATE_DIR/server-ca.crt, the config's ca_file)\n"
		"  --insecure-skip-verify   do not verify the control plane's certificate (tests only;\n"
		"                           every later start warns loudly)\n"
		"  --pool P, --environment E, --tags a,b\n"
		"                           where this agent belongs (a token's pool and environment win)\n"
		"  --config-dir DIR         where config.yaml goes (default " AG_DEFAULT_CONFIG_DIR ")\n"
		"  --state-dir DIR          key, certificate, agent id, work (default " AG_DEFAULT_STATE_DIR ")\n"
		"  --cache-dir DIR          plugin caches (default " AG_DEFAULT_CACHE_DIR ", or\n"
		"                           STATE_DIR/cache with --state-dir)\n"
		"  --plugins-dir DIR        where plugins are (default: the packaged plugins)\n"
		"  --https-proxy URL        proxy to the control plane (http://proxy:3128)\n"
		"  --no-proxy LIST          hosts that bypass the proxy\n"
		"  --user NAME              the user the agent runs as (root only; default: the\n"
		"                           system user " AG_DEFAULT_USER ", created when missing)\n"
		"  --no-service             do not install the systemd service; print how to start\n"
		"\n"
		"Exit status: 0 enrolled, 1 refused or failed (e.g. the token was used), 2 bad usage,\n"
		"5 control plane unreachable or untrusted, or the clocks too far apart, 6 already\n"
		"enrolled (uninstall first). docs/operations.md has the details.\n");
}

/* ---- the token --------------------------------------------------------------------------- */

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	if (i)
		memmove(s, s + i, n - i + 1);
}

/* Reads the token from exactly one place; registers it with the log redactor. */
static int read_token(struct inst *in)
{
	struct op_error err = {0};
	struct op_buf b = OP_BUF_INIT;

	if (in->token_arg && in->token_file) {
		cli_error("give the token once: --token or --token-file");
		return AG_EXIT_USAGE;
	}
	if (in->token_arg && strcmp(in->token_arg, "-") == 0) {
		char line[4096];

		if (fgets(line, sizeof(line), stdin) == NULL) {
			cli_error("--token -: no token on stdin");
			return AG_EXIT_USAGE;
		}
		in->token = strdup(line);
		explicit_bzero(line, sizeof(line));
	} else if (in->token_arg) {
		in->token = strdup(in->token_arg);
		explicit_bzero((char *)in->token_arg, strlen(in->token_arg)); /* our argv copy */
	} else if (in->token_file) {
		struct stat st;

		if (op_read_file(in->token_file, 4096, &b, &err) != OP_OK) {
			cli_error("--token-file: %s", err.msg);
			return AG_EXIT_USAGE;
		}
		if (stat(in->token_file, &st) == 0 && (st.st_mode & 077) != 0)
			op_log_warn(NULL, "the token file %s is readable by other users (mode %04o): "
					  "chmod 600 it, or delete it after install",
				    in->token_file, (unsigned)(st.st_mode & 07777));
		in->token = op_buf_detach(&b);
	} else if (in->env_token) {
		in->token = strdup(in->env_token);
	} else {
		cli_error("no enrollment token: pass --token-file FILE, --token - (stdin), "
			  "OUTPOST_TOKEN or --token TOKEN");
		return AG_EXIT_USAGE;
	}
	op_buf_release(&b);
	if (in->token == NULL) {
		cli_error("out of memory");
		return AG_EXIT_FAILED;
	}
	trim(in->token);
	if (in->token[0] == '\0') {
		cli_error("the enrollment token is empty");
		return AG_EXIT_USAGE;
	}
	op_log_redact(in->token, strlen(in->token));
	return AG_EXIT_OK;
}

/* ---- paths, user, config ----------------------------------------------------------------- */

static int absolute(const char *path, char *out, size_t size, const char *what)
{
	char cwd[PATH_MAX];
	int r;

	if (path[0] == '/') {
		r = op_snprintf(out, size, "%s", path);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			cli_error("%s: cannot resolve %s: %s", what, path, strerror(errno));
			return -1;
		}
		r = op_snprintf(out, size, "%s/%s", cwd, path);
	}
	if (r < 0) {
		cli_error("%s: path too long", what);
		return -1;
	}
	while (strlen(out) > 1 && out[strlen(out) - 1] == '/')
		out[strlen(out) - 1] = '\0';
	return 0;
}

static int set_str(char **slot, const char *v)
{
	char *c = v ? strdup(v) : NULL;

	if (v && c == NULL)
		return -1;
	free(*slot);
	*slot = c;
	return 0;
}

/* The config (defaults, OUTPOST_* overrides, then the flags) and every path it implies. */
static int prepare(struct inst *in)
{
	struct op_error err = {0};
	struct ag_config *cfg = &in->cfg;
	const char *state;

	if (ag_config_defaults(cfg, &err) != OP_OK || ag_config_env(cfg, &err) != OP_OK) {
		cli_error("%s", err.msg);
		return AG_EXIT_USAGE;
	}
	in->have_cfg = true;
	op_log_set_level(cfg->log_level >= OP_LOG_DEBUG ? OP_LOG_DEBUG : OP_LOG_INFO);
	if (absolute(in->config_dir ? in->config_dir : AG_DEFAULT_CONFIG_DIR, in->dirs[D_CONFIG],
		     PATH_MAX, "--config-dir") < 0 ||
	    absolute(in->state_dir ? in->state_dir : cfg->state_dir, in->dirs[D_STATE], PATH_MAX,
		     "--state-dir") < 0)
		return AG_EXIT_USAGE;
	state = in->dirs[D_STATE];
	if (in->cache_dir) {
		if (absolute(in->cache_dir, in->dirs[D_CACHE], PATH_MAX, "--cache-dir") < 0)
			return AG_EXIT_USAGE;
	} else if (in->state_dir && getenv("OUTPOST_CACHE_DIR") == NULL) {
		snprintf(in->dirs[D_CACHE], PATH_MAX, "%s/cache", state);
	} else {
		snprintf(in->dirs[D_CACHE], PATH_MAX, "%s", cfg->cache_dir);
	}
	if (cfg->workspace_dir)
		snprintf(in->dirs[D_WORKSPACE], PATH_MAX, "%s", cfg->workspace_dir);
	else
		snprintf(in->dirs[D_WORKSPACE], PATH_MAX, "%s/work", state);
	if (op_snprintf(in->config, sizeof(in->config), "%s/config.yaml", in->dirs[D_CONFIG]) < 0) {
		cli_error("--config-dir: path too long");
		return AG_EXIT_USAGE;
	}
	id_path(state, ID_SERVER_CA, in->server_ca, sizeof(in->server_ca));

	if (set_str(&cfg->control_plane, in->control_plane) < 0 ||
	    set_str(&cfg->state_dir, state) < 0 || set_str(&cfg->cache_dir, in->dirs[D_CACHE]) < 0 ||
	    set_str(&cfg->workspace_dir, in->dirs[D_WORKSPACE]) < 0 ||
	    (in->pool && set_str(&cfg->pool, in->pool) < 0) ||
	    (in->environment && set_str(&cfg->environment, in->environment) < 0) ||
	    (in->plugins_dir && set_str(&cfg->plugins_dir, in->plugins_dir) < 0) ||
	    (in->https_proxy && set_str(&cfg->https_proxy, in->https_proxy) < 0) ||
	    (in->no_proxy && set_str(&cfg->no_proxy, in->no_proxy) < 0) ||
	    (in->ca_cert && set_str(&cfg->ca_file, in->server_ca) < 0)) {
		cli_error("out of memory");
		return AG_EXIT_FAILED;
	}
	if (in->tags) {
		ag_strlist_release(&cfg->tags);
		if (ag_strlist_split(&cfg->tags, in->tags) != OP_OK) {
			cli_error("--tags: invalid list \"%s\"", in->tags);
			return AG_EXIT_USAGE;
		}
	}
	if (in->insecure)
		cfg->insecure_skip_verify = true;
	if (cfg->https_proxy && cfg->https_proxy[0] && strstr(cfg->https_proxy, "://") == NULL) {
		cli_error("--https-proxy: \"%s\" has no scheme: write it as http://%s",
			  cfg->https_proxy, cfg->https_proxy);
		return AG_EXIT_USAGE;
	}
	return AG_EXIT_OK;
}

/* Who the agent runs as. As root: --user NAME (which must exist) or the system user
 * outpost-agent, created when missing. Otherwise: the user running install. */
static int resolve_user(struct inst *in)
{
	struct op_error err = {0};
	struct passwd *pw;
	bool created = false;

	in->root = geteuid() == 0;
	if (!in->root) {
		pw = getpwuid(geteuid());
		if (pw == NULL) {
			cli_error("cannot find the name of uid %u", (unsigned)geteuid());
			return AG_EXIT_FAILED;
		}
		if (in->user && strcmp(in->user, pw->pw_name) != 0) {
			cli_error("--user %s: only root can install an agent for another user",
				  in->user);
			return AG_EXIT_USAGE;
		}
		snprintf(in->user_name, sizeof(in->user_name), "%s", pw->pw_name);
		in->uid = pw->pw_uid;
		in->gid = pw->pw_gid;
		return AG_EXIT_OK;
	}
	snprintf(in->user_name, sizeof(in->user_name), "%s", in->user ? in->user : AG_DEFAULT_USER);
	if (strcmp(in->user_name, "nobody") == 0)
		op_log_warn(NULL, "--user nobody: that user is shared with unrelated services, which "
				  "could then read the agent's key; give the agent a user of its own");
	if (ag_user_ensure(in->user_name, in->user == NULL, in->dirs[D_STATE], &in->uid, &in->gid,
			   &created, &err) != OP_OK) {
		fprintf(stderr, "FATAL: %s\n", err.msg);
		return in->user ? AG_EXIT_USAGE : AG_EXIT_FAILED;
	}
	if (created)
		printf("created the system user %s\n", in->user_name);
	return AG_EXIT_OK;
}

/* Refuses to enroll over an enrollment; clears what an interrupted install left. */
static int refuse_existing(struct inst *in)
{
	char path[PATH_MAX];
	struct op_error err = {0};
	cJSON *agent = NULL;

	id_path(in->dirs[D_STATE], ID_AGENT, path, sizeof(path));
	if (access(path, F_OK) == 0) {
		const char *cp = NULL;

		if (id_load_agent(in->dirs[D_STATE], &agent, &err) == OP_OK)
			cp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(agent, "control_plane"));
		fprintf(stderr,
			"FATAL: this host is already enrolled as %s with %s (state in %s)\n"
			"  to enroll it again, uninstall first (it deregisters the old agent):\n"
			"  outpost-agent uninstall --config %s\n",
			agent ? id_agent_id(agent) : "an agent", cp ? cp : "a control plane",
			in->dirs[D_STATE], in->config);
		cJSON_Delete(agent);
		return AG_EXIT_ENROLLED;
	}
	if (access(in->config, F_OK) == 0) {
		fprintf(stderr,
			"FATAL: %s already exists: this host was installed before\n"
			"  run `outpost-agent uninstall --config %s` first, or move the file away\n",
			in->config, in->config);
		return AG_EXIT_ENROLLED;
	}
	id_path(in->dirs[D_STATE], ID_KEY, path, sizeof(path));
	if (access(path, F_OK) == 0) {
		ag_identity_remove(in->dirs[D_STATE]);
		op_log_info(NULL, "removed the key an interrupted install left in %s",
			    in->dirs[D_STATE]);
	}
	return AG_EXIT_OK;
}

/* Creates the config, state, workspace and cache dirs, remembering what it made. */
static int make_dirs(struct inst *in)
{
	static const mode_t modes[N_DIRS] = {0755, 0700, 0700, 0750};
	struct op_error err = {0};

	for (int i = 0; i < N_DIRS; i++) {
		struct stat st;

		if (stat(in->dirs[i], &st) == 0) {
			if (!S_ISDIR(st.st_mode)) {
				cli_error("%s exists and is not a directory", in->dirs[i]);
				return AG_EXIT_USAGE;
			}
			continue;
		}
		snprintf(in->top[i], PATH_MAX, "%s", in->dirs[i]);
		for (;;) {
			char parent[PATH_MAX], *slash;

			snprintf(parent, sizeof(parent), "%s", in->top[i]);
			slash = strrchr(parent, '/');
			if (slash == NULL || slash == parent)
				break;
			*slash = '\0';
			if (access(parent, F_OK) == 0)
				break;
			snprintf(in->top[i], PATH_MAX, "%s", parent);
		}
		if (op_mkdir_p(in->dirs[i], modes[i], &err) != OP_OK) {
			fprintf(stderr, "FATAL: %s\n  %s\n", err.msg,
				in->root ? "check the path"
					 : "run install as root (sudo), or choose directories you can "
					   "write with --config-dir and --state-dir");
			return err.rc == OP_EPERM ? AG_EXIT_USAGE : AG_EXIT_FAILED;
		}
		(void)chmod(in->dirs[i], modes[i]);
		in->made[i] = true;
	}
	return AG_EXIT_OK;
}

/* Keeps --ca-cert (checked to be a PEM certificate) as STATE/server-ca.crt. */
static int copy_server_ca(struct inst *in)
{
	struct op_error err = {0};
	struct op_buf b = OP_BUF_INIT;
	struct id_cert_info ci;
	int rc = AG_EXIT_OK;

	if (in->ca_cert == NULL)
		return AG_EXIT_OK;
	if (op_read_file(in->ca_cert, 1 << 20, &b, &err) != OP_OK ||
	    id_cert_info(in->ca_cert, &ci, &err) != OP_OK) {
		fprintf(stderr, "FATAL: --ca-cert: %s\n", err.msg);
		rc = AG_EXIT_USAGE;
	} else if (op_write_file_atomic(in->server_ca, b.data, b.len, 0644, &err) != OP_OK) {
		fprintf(stderr, "FATAL: %s\n", err.msg);
		rc = AG_EXIT_FAILED;
	} else {
		in->wrote_server_ca = true;
	}
	op_buf_release(&b);
	return rc;
}

/* A YAML double-quoted scalar. */
static void yq(struct op_buf *b, const char *s)
{
	op_buf_puts(b, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			op_buf_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			op_buf_printf(b, "\\x%02x", ch);
		else
			op_buf_append(b, s, 1);
	}
	op_buf_puts(b, "\"");
}

static void yq_list(struct op_buf *b, const struct ag_strlist *l)
{
	op_buf_puts(b, "[");
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			op_buf_puts(b, ", ");
		yq(b, l->v[i]);
	}
	op_buf_puts(b, "]");
}

static void yq_key(struct op_buf *b, const char *key, const char *v)
{
	if (v == NULL)
		return;
	op_buf_printf(b, "%s: ", key);
	yq(b, v);
	op_buf_puts(b, "\n");
}

/* Writes config.yaml (0640, readable by the agent's group) and loads it back: what install
 * writes is what the agent accepts. */
static int write_config(struct inst *in, const struct ag_strlist *enabled)
{
	const struct ag_config *cfg = &in->cfg;
	struct op_buf b = OP_BUF_INIT;
	struct op_error err = {0};
	struct ag_config check;
	char when[40];
	int rc = AG_EXIT_OK;

	tp_format_time(tp_now(), when, sizeof(when));
	op_buf_printf(&b,
		      "# outpost-agent configuration, written by `outpost-agent install` at %s.\n"
		      "# Every key, its default and its OUTPOST_* override: docs/configuration.md.\n"
		      "# After a change: systemctl reload outpost-agent, then outpost-agent check.\n",
		      when);
	yq_key(&b, "control_plane", cfg->control_plane);
	if (in->ca_cert)
		yq_key(&b, "ca_file", in->server_ca);
	if (cfg->insecure_skip_verify)
		op_buf_puts(&b, "# TLS verification of the control plane is OFF: for tests only.\n"
				"insecure_skip_verify: true\n");
	yq_key(&b, "https_proxy", in->https_proxy);
	yq_key(&b, "no_proxy", in->no_proxy);
	yq_key(&b, "state_dir", in->dirs[D_STATE]);
	{
		char work[PATH_MAX + 8];

		snprintf(work, sizeof(work), "%s/work", in->dirs[D_STATE]);
		if (strcmp(in->dirs[D_WORKSPACE], work) != 0)
			yq_key(&b, "workspace_dir", in->dirs[D_WORKSPACE]);
	}
	if (strcmp(in->dirs[D_CACHE], AG_DEFAULT_CACHE_DIR) != 0)
		yq_key(&b, "cache_dir", in->dirs[D_CACHE]);
	yq_key(&b, "user", in->user_name);
	yq_key(&b, "pool", cfg->pool);
	yq_key(&b, "environment", cfg->environment);
	if (cfg->tags.n) {
		op_buf_puts(&b, "tags: ");
		yq_list(&b, &cfg->tags);
		op_buf_puts(&b, "\n");
	}
	op_buf_puts(&b, "plugins:\n");
	if (in->plugins_dir) {
		op_buf_puts(&b, "  dir: ");
		yq(&b, cfg->plugins_dir);
		op_buf_puts(&b, "\n");
	}
	op_buf_puts(&b, "  # the plugins found at install; add a name to enable another\n"
			"  enabled: ");
	yq_list(&b, enabled);
	op_buf_puts(&b, "\n");
	if (b.data == NULL) {
		cli_error("out of memory");
		return AG_EXIT_FAILED;
	}
	if (op_write_file_atomic(in->config, b.data, b.len, 0640, &err) != OP_OK) {
		fprintf(stderr, "FATAL: %s\n", err.msg);
		rc = AG_EXIT_FAILED;
		goto out;
	}
	in->wrote_config = true;
	if (ag_config_load(in->config, &check, &err) != OP_OK) {
		fprintf(stderr, "FATAL: the config install wrote does not load (a bug): %s\n", err.msg);
		rc = AG_EXIT_FAILED;
	}
	ag_config_release(&check);
out:
	op_buf_release(&b);
	return rc;
}

/* As root: the state, workspace and cache dirs and what is in the state dir go to the agent's
 * user; config.yaml stays root's, readable by the agent's group. */
static void give_to_user(struct inst *in)
{
	DIR *d;
	struct dirent *e;

	if (!in->root)
		return;
	for (int i = D_STATE; i < N_DIRS; i++)
		if (chown(in->dirs[i], in->uid, in->gid) < 0)
			op_log_warn(NULL, "cannot give %s to %s: %s", in->dirs[i], in->user_name,
				    strerror(errno));
	d = opendir(in->dirs[D_STATE]);
	while (d && (e = readdir(d)) != NULL) {
		char p[PATH_MAX];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (op_snprintf(p, sizeof(p), "%s/%s", in->dirs[D_STATE], e->d_name) == 0 &&
		    lchown(p, in->uid, in->gid) < 0)
			op_log_warn(NULL, "cannot give %s to %s: %s", p, in->user_name,
				    strerror(errno));
	}
	if (d)
		closedir(d);
	if (chown(in->config, 0, in->gid) < 0)
		op_log_warn(NULL, "cannot set the group of %s: %s", in->config, strerror(errno));
}

/* Undoes what this run wrote: a retry with a new token starts from a clean slate. */
static void undo(struct inst *in)
{
	if (in->wrote_config)
		(void)unlink(in->config);
	if (in->wrote_server_ca)
		(void)unlink(in->server_ca);
	ag_identity_remove(in->dirs[D_STATE]);
	for (int i = N_DIRS - 1; i >= 0; i--) {
		char p[PATH_MAX], *slash;

		if (!in->made[i])
			continue;
		/* the directory, then the parents made for it, while they are empty */
		snprintf(p, sizeof(p), "%s", in->dirs[i]);
		while (rmdir(p) == 0 && strcmp(p, in->top[i]) != 0 &&
		       (slash = strrchr(p, '/')) != NULL && slash != p)
			*slash = '\0';
	}
}

/* ---- enrollment and the rest ------------------------------------------------------------- */

static void enabled_from(const struct dc_result *found, struct ag_strlist *out,
			 struct op_buf *shown)
{
	for (size_t i = 0; i < found->n; i++) {
		const struct dc_plugin *p = &found->v[i];

		if (p->state != DC_LOADED) {
			op_log_warn(NULL, "plugin %s is not enabled: %s (%s)", p->stem,
				    p->reason ? p->reason : "it does not load", dc_state_name(p->state));
			continue;
		}
		(void)ag_strlist_add(out, p->stem);
		op_buf_printf(shown, "%s%s", shown->len ? ", " : "", dc_plugin_name(p));
	}
}

/* Enrolls with the plugins found, recording in agent.json what install created. */
static int enroll(struct inst *in, const cJSON *plugins, struct ag_enrollment *got)
{
	struct ag_enroll_req req;
	struct ag_outcome o;
	struct op_error err = {0};
	cJSON *extra = cJSON_CreateObject(), *rec, *made;
	op_rc rc;

	if (extra == NULL)
		return AG_EXIT_FAILED;
	rec = cJSON_AddObjectToObject(extra, "install");
	cJSON_AddStringToObject(rec, "config", in->config);
	cJSON_AddStringToObject(rec, "user", in->user_name);
	made = cJSON_AddArrayToObject(rec, "created_dirs");
	for (int i = 0; i < N_DIRS; i++)
		if (in->made[i])
			cJSON_AddItemToArray(made, cJSON_CreateString(in->dirs[i]));
	memset(&req, 0, sizeof(req));
	req.cfg = &in->cfg;
	req.token = in->token;
	req.plugins = plugins;
	req.extra = extra;
	rc = ag_enroll(&req, got, &o, &err);
	cJSON_Delete(extra);
	if (rc != OP_OK)
		return cli_fatal("enrollment failed", rc, &err, &o);
	in->enrolled = true;
	return AG_EXIT_OK;
}

/* The systemd service where it applies; otherwise how to start the agent. */
static int setup_service(struct inst *in)
{
	struct ag_service_spec spec;
	struct op_buf done = OP_BUF_INIT;
	struct op_error err = {0};
	bool systemd = ag_systemd_running();
	int rc = AG_EXIT_OK;

	if (!in->no_service && in->root && systemd) {
		memset(&spec, 0, sizeof(spec));
		spec.config = in->config;
		spec.user = in->user_name;
		spec.dirs[0] = in->dirs[D_STATE];
		spec.dirs[1] = in->dirs[D_WORKSPACE];
		spec.dirs[2] = in->dirs[D_CACHE];
		if (ag_service_install(&spec, &done, &err) == OP_OK) {
			printf("%sthe agent runs as %s: systemctl status outpost-agent; journalctl -u "
			       "outpost-agent -f\n",
			       done.data ? done.data : "", AG_UNIT_NAME);
			op_buf_release(&done);
			return AG_EXIT_OK;
		}
		fprintf(stderr,
			"FATAL: the agent is enrolled, but its service could not be set up: %s\n"
			"  do not reinstall: fix the cause, then systemctl enable --now outpost-agent\n",
			err.msg);
		rc = AG_EXIT_FAILED;
	} else if (!in->no_service && systemd) {
		printf("not root: no systemd service installed\n");
	} else if (!in->no_service) {
		printf("systemd is not running on this host: no service installed\n");
	}
	op_buf_release(&done);
	printf("start the agent with:\n  outpost-agent run --config %s\n", in->config);
	if (in->root && in->uid != 0)
		printf("as its user, from a root shell or your process supervisor:\n"
		       "  runuser -u %s -- outpost-agent run --config %s\n",
		       in->user_name, in->config);
	return rc;
}

/* Parses the options, then: token, config, checks, user, dirs, CA, plugins, config file,
 * enrollment, owners, service. Any failure before the enrollment undoes what was written. */
int cmd_install(int argc, char **argv)
{
	enum { O_CP = 256, O_TOKEN, O_TOKEN_FILE, O_CA, O_INSECURE, O_POOL, O_ENV, O_TAGS,
	       O_CONFIG_DIR, O_STATE_DIR, O_CACHE_DIR, O_PLUGINS_DIR, O_USER, O_PROXY, O_NO_PROXY,
	       O_NO_SERVICE };
	static const struct option opts[] = {
		{"control-plane", required_argument, NULL, O_CP},
		{"token", required_argument, NULL, O_TOKEN},
		{"token-file", required_argument, NULL, O_TOKEN_FILE},
		{"ca-cert", required_argument, NULL, O_CA},
		{"insecure-skip-verify", no_argument, NULL, O_INSECURE},
		{"pool", required_argument, NULL, O_POOL},
		{"environment", required_argument, NULL, O_ENV},
		{"tags", required_argument, NULL, O_TAGS},
		{"config-dir", required_argument, NULL, O_CONFIG_DIR},
		{"state-dir", required_argument, NULL, O_STATE_DIR},
		{"cache-dir", required_argument, NULL, O_CACHE_DIR},
		{"plugins-dir", required_argument, NULL, O_PLUGINS_DIR},
		{"user", required_argument, NULL, O_USER},
		{"https-proxy", required_argument, NULL, O_PROXY},
		{"no-proxy", required_argument, NULL, O_NO_PROXY},
		{"no-service", no_argument, NULL, O_NO_SERVICE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct inst in;
	struct dc_result found;
	struct op_error err = {0};
	struct ag_strlist enabled = {NULL, 0};
	struct ag_enrollment got;
	struct op_buf shown = OP_BUF_INIT;
	cJSON *plugins = NULL;
	bool have_found = false;
	const char *env;
	char t[40];
	int c, rc = AG_EXIT_OK;

	memset(&in, 0, sizeof(in));
	/* The token leaves the environment at once: no child process inherits it. */
	env = getenv("OUTPOST_TOKEN");
	if (env && *env)
		in.env_token = strdup(env);
	unsetenv("OUTPOST_TOKEN");

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CP: in.control_plane = optarg; break;
		case O_TOKEN: in.token_arg = optarg; break;
		case O_TOKEN_FILE: in.token_file = optarg; break;
		case O_CA: in.ca_cert = optarg; break;
		case O_INSECURE: in.insecure = true; break;
		case O_POOL: in.pool = optarg; break;
		case O_ENV: in.environment = optarg; break;
		case O_TAGS: in.tags = optarg; break;
		case O_CONFIG_DIR: in.config_dir = optarg; break;
		case O_STATE_DIR: in.state_dir = optarg; break;
		case O_CACHE_DIR: in.cache_dir = optarg; break;
		case O_PLUGINS_DIR: in.plugins_dir = optarg; break;
		case O_USER: in.user = optarg; break;
		case O_PROXY: in.https_proxy = optarg; break;
		case O_NO_PROXY: in.no_proxy = optarg; break;
		case O_NO_SERVICE: in.no_service = true; break;
		case 'h':
			install_usage(stdout);
			goto out;
		default:
			install_usage(stderr);
			rc = AG_EXIT_USAGE;
			goto out;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		rc = AG_EXIT_USAGE;
		goto out;
	}
	if (in.control_plane == NULL) {
		cli_error("--control-plane https://HOST:PORT is required");
		rc = AG_EXIT_USAGE;
		goto out;
	}
	if (strncmp(in.control_plane, "https://", 8) != 0 || in.control_plane[8] == '\0') {
		cli_error("--control-plane \"%s\": use https://HOST:PORT (the token and the agent's "
			  "credentials never travel in clear)",
			  in.control_plane);
		rc = AG_EXIT_USAGE;
		goto out;
	}
	rc = read_token(&in);
	if (rc == AG_EXIT_OK)
		rc = prepare(&in);
	if (rc != AG_EXIT_OK)
		goto out;
	ag_warn_insecure(&in.cfg);
	rc = refuse_existing(&in);
	if (rc == AG_EXIT_OK)
		rc = resolve_user(&in);
	in.started = rc == AG_EXIT_OK;
	if (rc == AG_EXIT_OK)
		rc = make_dirs(&in);
	if (rc == AG_EXIT_OK)
		rc = copy_server_ca(&in);
	if (rc != AG_EXIT_OK)
		goto out;

	/* The plugins found now are reported at enrollment and enabled in the config. */
	if (ag_plugins_scan(&in.cfg, &found, &err) == OP_OK) {
		have_found = true;
		enabled_from(&found, &enabled, &shown);
		plugins = ag_plugins_report(&found);
	} else {
		op_log_warn(NULL, "no plugins enabled: %s", err.msg);
	}
	rc = write_config(&in, &enabled);
	if (rc == AG_EXIT_OK)
		rc = enroll(&in, plugins, &got);
	if (rc != AG_EXIT_OK)
		goto out;
	give_to_user(&in);

	tp_format_time(got.cert_not_after, t, sizeof(t));
	printf("enrolled as %s with %s\n"
	       "  hostname     %s\n"
	       "  certificate  %s/agent.crt, valid until %s\n"
	       "  config       %s\n"
	       "  state dir    %s (user %s)\n"
	       "  plugins      %s\n",
	       got.agent_id, in.control_plane, got.hostname, in.dirs[D_STATE], t, in.config,
	       in.dirs[D_STATE], in.user_name, shown.len ? shown.data : "none");
	rc = setup_service(&in);
out:
	if (rc != AG_EXIT_OK && in.started && !in.enrolled)
		undo(&in);
	if (in.token) {
		explicit_bzero(in.token, strlen(in.token));
		free(in.token);
	}
	if (in.env_token) {
		explicit_bzero(in.env_token, strlen(in.env_token));
		free(in.env_token);
	}
	op_log_redact_clear();
	if (have_found)
		dc_result_release(&found);
	cJSON_Delete(plugins);
	ag_strlist_release(&enabled);
	op_buf_release(&shown);
	if (in.have_cfg)
		ag_config_release(&in.cfg);
	return rc;
}
