/* SPDX-License-Identifier: Apache-2.0 */
/* The checks behind `outpost-agent check`: config, control plane, TLS, clock, identity, dirs,
 * disk, plugins, secrets and the service, each with what to do about it. */
#include "checks.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "discovery.h"
#include "enroll.h"
#include "identity.h"
#include "service.h"
#include "transport.h"
#include "units.h"

const char *ag_check_status_name(enum ag_check_status s)
{
	static const char *const names[] = {"OK", "WARN", "FAIL", "SKIP"};

	return (unsigned)s < OP_ARRAY_LEN(names) ? names[s] : "?";
}

/* Appends a check; FIX may be NULL. Out of memory drops the line (and is reported at the end). */
__attribute__((format(printf, 5, 6))) static void add(struct ag_check_report *rep,
						       const char *name, enum ag_check_status st,
						       const char *fix, const char *fmt, ...)
{
	struct ag_check *grown = realloc(rep->v, (rep->n + 1) * sizeof(*grown)), *c;
	va_list ap;

	if (grown == NULL)
		return;
	rep->v = grown;
	c = &rep->v[rep->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->status = st;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
	/* a multi-line hint reads as one line here */
	for (char *p = c->fix; *p; p++)
		if (*p == '\n')
			*p = ';';
	if (st == AG_CHECK_WARN)
		rep->n_warn++;
	else if (st == AG_CHECK_FAIL)
		rep->n_fail++;
}

static void fmt_size(double bytes, char *out, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	size_t u = 0;

	while (bytes >= 1024 && u + 1 < OP_ARRAY_LEN(units)) {
		bytes /= 1024;
		u++;
	}
	snprintf(out, size, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
}

/* "12 days", "5 h", "40 min". */
static void fmt_left(double s, char *out, size_t size)
{
	if (s >= 2 * 86400)
		snprintf(out, size, "%.0f days", s / 86400);
	else if (s >= 2 * 3600)
		snprintf(out, size, "%.0f h", s / 3600);
	else
		snprintf(out, size, "%.0f min", s / 60);
}

static const char *cfg_flag(const struct ag_config *cfg, char *buf, size_t size)
{
	if (cfg->file == NULL || strcmp(cfg->file, AG_DEFAULT_CONFIG) == 0)
		return "";
	snprintf(buf, size, " --config %s", cfg->file);
	return buf;
}

/* ---- the control plane ------------------------------------------------------------------- */

struct net_state {
	bool reachable; /* an HTTP answer or at least a TLS handshake */
	bool trusted;	/* the TLS check passed (or verification is off) */
};

/* control-plane (GET /health, verified), tls, clock (dates ignored) and registration
 * (GET /agent/self): each skipped when what it needs failed. */
static void check_network(const struct ag_config *cfg, struct ag_check_report *rep,
			  struct net_state *ns)
{
	struct tp_config tc;
	struct tp_response r;
	struct ag_outcome o;
	struct op_error e = {0};
	char clock_fix[512], cf[PATH_MAX + 16];
	const cJSON *v;
	op_rc rc;

	memset(ns, 0, sizeof(*ns));
	snprintf(clock_fix, sizeof(clock_fix),
		 "synchronize the clock with NTP: timedatectl set-ntp true, then timedatectl status");
	if (tp_config_from(&tc, cfg, false, &e) != OP_OK) {
		add(rep, "control-plane", AG_CHECK_FAIL, "set control_plane in the config", "%s",
		    e.msg);
		return;
	}
	rc = tp_request(&tc, "GET", "/health", NULL, &r, &e);
	if (rc == OP_OK) {
		ns->reachable = true;
		ns->trusted = true;
		v = cJSON_GetObjectItemCaseSensitive(r.json, "version");
		if (r.status == 200 && cJSON_GetObjectItemCaseSensitive(r.json, "server_time"))
			add(rep, "control-plane", AG_CHECK_OK, NULL,
			    "%s answers GET /health (version %s, %.0f ms)", tc.base_url,
			    cJSON_IsString(v) ? v->valuestring : "?", r.total_s * 1000);
		else
			add(rep, "control-plane", AG_CHECK_FAIL,
			    "check control_plane in the config: it must be the control plane's URL",
			    "GET %s/health answered HTTP %ld, not as a control plane does", tc.base_url,
			    r.status);
	} else if (r.fail == TP_DNS || r.fail == TP_REFUSED || r.fail == TP_TIMEOUT ||
		   r.fail == TP_PROXY || r.fail == TP_NET) {
		add(rep, "control-plane", AG_CHECK_FAIL, tp_hint(r.fail), "%s", e.msg);
	} else {
		ns->reachable = true;
		add(rep, "control-plane", AG_CHECK_OK, NULL,
		    "%s accepts connections (its TLS certificate is not trusted: see tls)",
		    tc.base_url);
	}
	if (cfg->insecure_skip_verify)
		add(rep, "tls", AG_CHECK_WARN,
		    "for tests only: trust the control plane's CA with ca_file (install --ca-cert) "
		    "and remove insecure_skip_verify",
		    "INSECURE: TLS verification of the control plane is OFF (insecure_skip_verify): "
		    "anyone on the network path can impersonate it");
	else if (rc == OP_OK)
		add(rep, "tls", AG_CHECK_OK, NULL, "the control plane's certificate is trusted (%s)",
		    cfg->ca_file ? cfg->ca_file : "the system's CA certificates");
	else if (ns->reachable)
		add(rep, "tls", AG_CHECK_FAIL, tp_hint(r.fail), "%s", e.msg);
	else
		add(rep, "tls", AG_CHECK_SKIP, NULL, "not checked: the control plane is unreachable");
	tp_response_release(&r);

	/* the clock, with certificate dates ignored */
	memset(&o, 0, sizeof(o));
	op_error_clear(&e);
	if (!ns->reachable) {
		add(rep, "clock", AG_CHECK_SKIP, NULL, "not checked: the control plane is unreachable");
	} else if ((rc = ag_clock_check(&tc, &o, &e)) == OP_OK || o.clock) {
		double s = fabs(o.skew);
		const char *dir = o.skew < 0 ? "behind" : "ahead of";

		if (o.clock)
			add(rep, "clock", AG_CHECK_FAIL, clock_fix,
			    "this host is %.0f s %s the control plane: more than %.0f s apart, "
			    "certificates are refused (%s)",
			    s, dir, AG_MAX_CLOCK_SKEW, e.msg);
		else if (s > 60)
			add(rep, "clock", AG_CHECK_WARN, clock_fix,
			    "this host is %.0f s %s the control plane (certificates are refused "
			    "beyond %.0f s)",
			    s, dir, AG_MAX_CLOCK_SKEW);
		else
			add(rep, "clock", AG_CHECK_OK, NULL, "within %.1f s of the control plane", s);
	} else {
		add(rep, "clock", AG_CHECK_SKIP, NULL, "not checked: %s", e.msg);
	}
	tp_config_release(&tc);

	/* registration */
	if (!ns->reachable || !ns->trusted) {
		add(rep, "registration", AG_CHECK_SKIP, NULL,
		    "not checked: the control plane is unreachable or not trusted");
	} else {
		char idp[PATH_MAX];
		cJSON *rec = NULL;

		id_path(cfg->state_dir, ID_AGENT, idp, sizeof(idp));
		memset(&o, 0, sizeof(o));
		op_error_clear(&e);
		if (access(idp, F_OK) < 0) {
			add(rep, "registration", AG_CHECK_SKIP, NULL, "not checked: not enrolled");
		} else if ((rc = ag_self(cfg, &rec, &o, &e)) == OP_OK) {
			const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "id"));
			const char *host = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "hostname"));
			const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "status"));
			const char *ds = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "desired_state"));
			char fix[256];

			snprintf(fix, sizeof(fix), "outpost-server agents undrain %s", id ? id : "ID");
			if (ds && strcmp(ds, "drain") == 0)
				add(rep, "registration", AG_CHECK_WARN, fix,
				    "registered as %s (hostname %s), but drained by an operator: it "
				    "takes no new tasks",
				    id ? id : "?", host ? host : "?");
			else
				add(rep, "registration", AG_CHECK_OK, NULL,
				    "registered as %s (hostname %s, %s)", id ? id : "?",
				    host ? host : "?", status ? status : "?");
		} else if (o.net != TP_OK) {
			add(rep, "registration", AG_CHECK_FAIL, o.hint, "%s", e.msg);
		} else {
			char hint[1024];

			ag_reason_hint(o.reason, cfg->file, hint, sizeof(hint));
			if (strcmp(o.reason, "cert_expired") == 0)
				snprintf(hint, sizeof(hint),
					 "outpost-agent rotate-cert%s (within the control plane's grace "
					 "after expiry; later, make a new token and reinstall)",
					 cfg_flag(cfg, cf, sizeof(cf)));
			add(rep, "registration", AG_CHECK_FAIL, hint[0] ? hint : o.hint, "%s%s%s%s",
			    e.msg, o.reason[0] ? " (" : "", o.reason, o.reason[0] ? ")" : "");
		}
		cJSON_Delete(rec);
	}
}

/* ---- identity on disk -------------------------------------------------------------------- */

static void check_identity(const struct ag_config *cfg, struct ag_check_report *rep, uid_t uid,
			   bool uid_known, const char *user)
{
	char cert[PATH_MAX], key[PATH_MAX], cnew[PATH_MAX], knew[PATH_MAX], t[40], left[32];
	char fix[512], cf[PATH_MAX + 16];
	struct id_cert_info ci;
	struct op_error e = {0};
	cJSON *agent = NULL;
	struct stat st;
	double now = tp_now(), life;

	id_path(cfg->state_dir, ID_CERT, cert, sizeof(cert));
	id_path(cfg->state_dir, ID_KEY, key, sizeof(key));
	id_path(cfg->state_dir, ID_CERT_NEW, cnew, sizeof(cnew));
	id_path(cfg->state_dir, ID_KEY_NEW, knew, sizeof(knew));
	if (id_load_agent(cfg->state_dir, &agent, &e) != OP_OK) {
		add(rep, "certificate", AG_CHECK_FAIL,
		    "enroll: outpost-agent install --control-plane URL --token-file FILE", "%s", e.msg);
		add(rep, "key", AG_CHECK_SKIP, NULL, "not checked: not enrolled");
		return;
	}
	cJSON_Delete(agent);
	snprintf(fix, sizeof(fix), "outpost-agent rotate-cert%s", cfg_flag(cfg, cf, sizeof(cf)));
	if (id_cert_info(cert, &ci, &e) != OP_OK) {
		add(rep, "certificate", AG_CHECK_FAIL, fix, "%s", e.msg);
	} else if (now < ci.not_before - AG_MAX_CLOCK_SKEW) {
		tp_format_time(ci.not_before, t, sizeof(t));
		add(rep, "certificate", AG_CHECK_FAIL,
		    "synchronize the clock with NTP: timedatectl set-ntp true",
		    "%s is not valid before %s: this host's clock is behind", cert, t);
	} else if (now > ci.not_after) {
		tp_format_time(ci.not_after, t, sizeof(t));
		fmt_left(now - ci.not_after, left, sizeof(left));
		snprintf(fix, sizeof(fix),
			 "outpost-agent rotate-cert%s (accepted within the control plane's grace, 7 "
			 "days by default; later, make a new token and reinstall)",
			 cfg_flag(cfg, cf, sizeof(cf)));
		add(rep, "certificate", AG_CHECK_FAIL, fix, "%s expired at %s (%s ago)", cert, t, left);
	} else {
		life = ci.not_after - ci.not_before;
		tp_format_time(ci.not_after, t, sizeof(t));
		fmt_left(ci.not_after - now, left, sizeof(left));
		if (life > 0 && ci.not_after - now < 0.4 * life)
			add(rep, "certificate", AG_CHECK_WARN, fix,
			    "valid until %s (%s left), past the renewal the running agent makes at "
			    "half its lifetime: is the agent running?",
			    t, left);
		else
			add(rep, "certificate", AG_CHECK_OK, NULL, "valid until %s (%s left, serial %s)",
			    t, left, ci.serial);
	}
	if (access(cnew, F_OK) == 0 || access(knew, F_OK) == 0)
		add(rep, "certificate", AG_CHECK_WARN, fix,
		    "an interrupted rotation left %s behind: rotate-cert completes it", cnew);

	/* the key: 0600, the agent's, and the certificate's */
	if (stat(key, &st) < 0) {
		add(rep, "key", AG_CHECK_FAIL, "make a new token and reinstall", "%s: %s", key,
		    strerror(errno));
		return;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(fix, sizeof(fix), "chmod 600 %s", key);
		add(rep, "key", AG_CHECK_FAIL, fix, "%s is readable by others (mode %04o)", key,
		    (unsigned)(st.st_mode & 07777));
	} else if (uid_known && st.st_uid != uid) {
		snprintf(fix, sizeof(fix), "chown %s %s", user, key);
		add(rep, "key", AG_CHECK_FAIL, fix, "%s belongs to uid %u, not to the agent's user %s",
		    key, (unsigned)st.st_uid, user);
	} else if (id_key_matches(cert, key, &e) != OP_OK) {
		add(rep, "key", AG_CHECK_FAIL, fix, "%s", e.msg);
	} else {
		add(rep, "key", AG_CHECK_OK, NULL, "%s is mode 0600 and matches %s", key, cert);
	}
}

/* ---- directories, disk ------------------------------------------------------------------- */

/* Creates and removes a file in DIR as the current user: 0 or an errno. */
static int try_write(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (op_snprintf(path, sizeof(path), "%s/.outpost-check.XXXXXX", dir) < 0)
		return ENAMETOOLONG;
	fd = mkstemp(path);
	if (fd < 0)
		return errno;
	close(fd);
	unlink(path);
	return 0;
}

/* Whether USER (UID, GID) can write in DIR: 0, an errno, or -1 when this process cannot
 * tell (not root, and not that user). */
static int writable_as(const char *dir, const char *user, uid_t uid, gid_t gid)
{
	pid_t pid;
	int ws;

	if (geteuid() == uid)
		return try_write(dir);
	if (geteuid() != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(EPERM);
		_exit(try_write(dir) & 0xff);
	}
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : EIO;
}

/* DIR exists, is a directory, and USER can create files in it. */
static void check_dir(struct ag_check_report *rep, const char *name, const char *dir,
		      const char *user, uid_t uid, gid_t gid, bool uid_known)
{
	char fix[PATH_MAX * 2 + 64];
	struct stat st;
	int e;

	snprintf(fix, sizeof(fix), "mkdir -p %s && chown %s %s && chmod 700 %s", dir, user, dir, dir);
	if (stat(dir, &st) < 0) {
		add(rep, name, AG_CHECK_FAIL, fix, "%s: %s", dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		add(rep, name, AG_CHECK_FAIL, fix, "%s is not a directory", dir);
		return;
	}
	if (!uid_known) {
		add(rep, name, AG_CHECK_SKIP, NULL, "%s: no user %s on this host to test it as", dir,
		    user);
		return;
	}
	e = writable_as(dir, user, uid, gid);
	snprintf(fix, sizeof(fix), "chown -R %s %s && chmod u+rwx %s", user, dir, dir);
	if (e == 0)
		add(rep, name, AG_CHECK_OK, NULL, "%s is writable by %s", dir, user);
	else if (e < 0)
		add(rep, name, AG_CHECK_SKIP, NULL,
		    "%s: cannot test it as %s without root (run check as root)", dir, user);
	else
		add(rep, name, AG_CHECK_FAIL, fix, "%s is not writable by %s: %s", dir, user,
		    strerror(e));
}

/* Free space and inodes of the state and workspace filesystems against health.*. */
static void check_disk(const struct ag_config *cfg, struct ag_check_report *rep)
{
	const char *dirs[] = {cfg->state_dir, cfg->workspace_dir};
	dev_t seen = (dev_t)-1;

	for (size_t i = 0; i < OP_ARRAY_LEN(dirs); i++) {
		struct statvfs vs;
		struct stat st;
		char free_s[32], min_s[32];
		double free_b;
		bool inodes;

		if (stat(dirs[i], &st) < 0 || st.st_dev == seen || statvfs(dirs[i], &vs) < 0)
			continue;
		seen = st.st_dev;
		free_b = (double)vs.f_bavail * (double)vs.f_frsize;
		inodes = vs.f_files > 0; /* some filesystems have no inode limit */
		fmt_size(free_b, free_s, sizeof(free_s));
		fmt_size((double)cfg->min_free_disk, min_s, sizeof(min_s));
		if (free_b < 16.0 * 1024 * 1024 || (inodes && vs.f_favail < 100))
			add(rep, "disk", AG_CHECK_FAIL,
			    "free space: old task workspaces, rotated logs, temp files (du -xsh DIR/*)",
			    "%s: %s and %llu inodes free: the agent cannot record its work", dirs[i],
			    free_s, (unsigned long long)vs.f_favail);
		else if (free_b < (double)cfg->min_free_disk ||
			 (inodes && vs.f_favail < cfg->min_free_inodes))
			add(rep, "disk", AG_CHECK_WARN,
			    "free space (old task workspaces, rotated logs), or lower "
			    "health.min_free_disk / health.min_free_inodes",
			    "%s: %s and %llu inodes free, under the health thresholds (%s, %llu): the "
			    "agent reports itself degraded",
			    dirs[i], free_s, (unsigned long long)vs.f_favail, min_s,
			    (unsigned long long)cfg->min_free_inodes);
		else if (inodes)
			add(rep, "disk", AG_CHECK_OK, NULL, "%s: %s and %llu inodes free", dirs[i],
			    free_s, (unsigned long long)vs.f_favail);
		else
			add(rep, "disk", AG_CHECK_OK, NULL, "%s: %s free", dirs[i], free_s);
	}
}

static struct {
	double bytes;
	size_t entries;
} ws_sum;

static int ws_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	ws_sum.bytes += (double)st->st_blocks * 512;
	if (ftw->level == 1)
		ws_sum.entries++;
	return 0;
}

/* How many task workspaces there are and what they hold (decisions.md 17). */
static void check_workspace_size(const struct ag_config *cfg, struct ag_check_report *rep)
{
	char size_s[32], age[32];

	memset(&ws_sum, 0, sizeof(ws_sum));
	if (access(cfg->workspace_dir, F_OK) < 0) {
		add(rep, "workspace-size", AG_CHECK_SKIP, NULL, "%s does not exist", cfg->workspace_dir);
		return;
	}
	if (nftw(cfg->workspace_dir, ws_add, 16, FTW_PHYS) < 0) {
		add(rep, "workspace-size", AG_CHECK_WARN, NULL, "cannot measure %s: %s",
		    cfg->workspace_dir, strerror(errno));
		return;
	}
	fmt_size(ws_sum.bytes, size_s, sizeof(size_s));
	op_format_duration(cfg->workspace_max_age, age, sizeof(age));
	add(rep, "workspace-size", AG_CHECK_OK, NULL,
	    "%s holds %zu task workspaces, %s in all (removed after %s, or sooner when disk runs low)",
	    cfg->workspace_dir, ws_sum.entries, size_s, age);
}

/* ---- plugins, secrets, service ----------------------------------------------------------- */

static void check_plugins(const struct ag_config *cfg, struct ag_check_report *rep)
{
	struct dc_result found;
	struct op_error e = {0};
	struct op_buf ok = OP_BUF_INIT;
	size_t loaded = 0, bad = 0;

	if (ag_plugins_scan(cfg, &found, &e) != OP_OK) {
		add(rep, "plugins", AG_CHECK_FAIL, "check plugins.dir in the config and the outpost "
						   "plugin packages", "%s", e.msg);
		return;
	}
	for (size_t i = 0; i < found.n; i++) {
		const struct dc_plugin *p = &found.v[i];
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p->descriptor, "version"));

		if (p->state == DC_LOADED) {
			op_buf_printf(&ok, "%s%s %s", loaded ? ", " : "", dc_plugin_name(p), v ? v : "");
			loaded++;
		} else if (p->state != DC_DISABLED) {
			char fix[PATH_MAX + 128];

			snprintf(fix, sizeof(fix),
				 "outpost-agent plugins list --config %s shows why; update or remove "
				 "%s, or take it out of plugins.enabled",
				 cfg->file ? cfg->file : AG_DEFAULT_CONFIG, p->file);
			add(rep, "plugins", AG_CHECK_FAIL, fix, "plugin %s does not load (%s): %s",
			    dc_plugin_name(p), dc_state_name(p->state), p->reason ? p->reason : "?");
			bad++;
		}
	}
	for (size_t i = 0; !cfg->plugins_all && i < cfg->plugins_enabled.n; i++) {
		bool there = false;

		for (size_t j = 0; j < found.n; j++)
			there = there || strcmp(found.v[j].stem, cfg->plugins_enabled.v[i]) == 0;
		if (!there)
			add(rep, "plugins", AG_CHECK_WARN, "install the plugin or remove it from plugins.enabled",
			    "plugins.enabled names %s, but %s/%s.so does not exist",
			    cfg->plugins_enabled.v[i], cfg->plugins_dir, cfg->plugins_enabled.v[i]);
	}
	if (loaded > 0)
		add(rep, "plugins", AG_CHECK_OK, NULL, "%zu loadable: %s", loaded, ok.data);
	else if (bad == 0)
		add(rep, "plugins", AG_CHECK_WARN,
		    "install plugin packages, or list plugins in plugins.enabled",
		    "no plugin is enabled and loadable in %s: this agent can run no task",
		    cfg->plugins_dir);
	op_buf_release(&ok);
	dc_result_release(&found);
}

/* Secrets without an allow list are usable by any task: WARN (decisions.md 18). */
static void check_secrets(const struct ag_config *cfg, struct ag_check_report *rep)
{
	struct op_buf open_ = OP_BUF_INIT;
	size_t n_open = 0;

	for (size_t i = 0; i < cfg->n_secrets; i++) {
		if (cfg->secrets[i].fenced)
			continue;
		op_buf_printf(&open_, "%s%s", n_open ? ", " : "", cfg->secrets[i].name);
		n_open++;
	}
	if (n_open)
		add(rep, "secrets", AG_CHECK_WARN,
		    "give each an allow: {types: [...], hosts: [...]} list (docs/configuration.md, "
		    "Secrets)",
		    "%zu secret%s without an allow list, usable by every task type and host: %s", n_open,
		    n_open == 1 ? "" : "s", open_.data);
	else if (cfg->n_secrets)
		add(rep, "secrets", AG_CHECK_OK, NULL, "%zu secrets, each with an allow list",
		    cfg->n_secrets);
	else
		add(rep, "secrets", AG_CHECK_OK, NULL, "no secrets configured");
	op_buf_release(&open_);
}

/* Where systemd runs, the unit must be active (and enabled). */
static void check_service(const struct ag_config *cfg, struct ag_check_report *rep)
{
	char active[64], enabled[64], fix[PATH_MAX + 64];
	struct op_error e = {0};

	if (!ag_systemd_running()) {
		snprintf(fix, sizeof(fix), "outpost-agent run --config %s",
			 cfg->file ? cfg->file : AG_DEFAULT_CONFIG);
		add(rep, "service", AG_CHECK_SKIP, NULL,
		    "systemd is not running on this host: start the agent with `%s`", fix);
		return;
	}
	if (ag_service_status(active, sizeof(active), enabled, sizeof(enabled), &e) != OP_OK) {
		add(rep, "service", AG_CHECK_FAIL, NULL, "%s", e.msg);
		return;
	}
	if (strcmp(active, "active") != 0)
		add(rep, "service", AG_CHECK_FAIL,
		    "systemctl enable --now outpost-agent; journalctl -u outpost-agent -n 50 says why "
		    "it stopped",
		    "%s is %s (%s)", AG_UNIT_NAME, active, enabled);
	else if (strcmp(enabled, "enabled") != 0)
		add(rep, "service", AG_CHECK_WARN, "systemctl enable outpost-agent",
		    "%s is active but %s: it will not start at boot", AG_UNIT_NAME, enabled);
	else
		add(rep, "service", AG_CHECK_OK, NULL, "%s is active and enabled", AG_UNIT_NAME);
}

/* ---- all of them ------------------------------------------------------------------------- */

op_rc ag_checks_run(const char *config, struct ag_check_report *rep, struct op_error *err)
{
	struct ag_config cfg;
	struct op_error e = {0};
	struct net_state ns;
	struct passwd *pw;
	const char *user;
	uid_t uid = 0;
	gid_t gid = 0;
	bool uid_known = false;
	op_rc rc;

	memset(rep, 0, sizeof(*rep));
	if (config == NULL)
		config = AG_DEFAULT_CONFIG;
	snprintf(rep->config, sizeof(rep->config), "%s", config);
	rc = ag_config_load(config, &cfg, &e);
	if (rc != OP_OK) {
		add(rep, "config", AG_CHECK_FAIL,
		    rc == OP_ENOENT ? "install the agent (outpost-agent install), or pass --config FILE"
				    : "fix the file: docs/configuration.md lists every key",
		    "%s", e.msg);
		ag_config_release(&cfg);
		goto out;
	}
	if (cfg.control_plane == NULL) {
		add(rep, "config", AG_CHECK_FAIL, "set control_plane: https://HOST:PORT",
		    "%s: control_plane is not set", config);
		ag_config_release(&cfg);
		goto out;
	}
	add(rep, "config", AG_CHECK_OK, NULL, "%s is valid", config);

	{
		char name[256];

		user = cfg.user;
		if (user == NULL) {
			pw = getpwuid(geteuid());
			user = pw ? pw->pw_name : "root";
		}
		snprintf(name, sizeof(name), "%s", user);
		pw = getpwnam(name);
		if (pw) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
			uid_known = true;
		}
		check_network(&cfg, rep, &ns);
		check_identity(&cfg, rep, uid, uid_known, name);
		check_dir(rep, "state-dir", cfg.state_dir, name, uid, gid, uid_known);
		check_dir(rep, "workspace-dir", cfg.workspace_dir, name, uid, gid, uid_known);
		check_dir(rep, "cache-dir", cfg.cache_dir, name, uid, gid, uid_known);
	}
	check_disk(&cfg, rep);
	check_workspace_size(&cfg, rep);
	check_plugins(&cfg, rep);
	check_secrets(&cfg, rep);
	check_service(&cfg, rep);
	ag_config_release(&cfg);
out:
	if (rep->n == 0)
		return op_fail(err, OP_ENOMEM, "out of memory");
	return OP_OK;
}

void ag_check_report_release(struct ag_check_report *rep)
{
	free(rep->v);
	memset(rep, 0, sizeof(*rep));
}
