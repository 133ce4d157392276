/* SPDX-License-Identifier: Apache-2.0 */
/* The admin CLI: subcommands that talk to a running server over the admin API (libcurl). */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "jsonprint.h"
#include "units.h"
#include "util.h"
#include "yamltree.h"

#define DEFAULT_DATA_DIR "/var/lib/outpost-server"

struct cli {
	char server[512];
	char token[256];
	char ca_file[PATH_MAX];
	bool json;
	CURL *curl;
	const char *cmd; /* "task submit", for messages */
};

/* ---- options ----------------------------------------------------------------------------- */

struct opt {
	const char *name; /* "--pool" */
	bool has_value;
	const char **value; /* set when given */
	bool *flag;	    /* set when given (no value) */
};

/* Parses ARGV against OPTS plus the common connection flags; POS gets positional arguments.
 * Returns -1 (and prints why) on an unknown option, 1 for --help, 0 otherwise. */
struct common {
	const char *server, *token_file, *ca_file, *data_dir, *admin_config;
	bool json, help;
};

static int parse(int argc, char **argv, const struct opt *opts, struct common *co,
		 const char **pos, int maxpos, int *npos, const char *cmd)
{
	const struct opt common[] = {
		{"--server", true, &co->server, NULL},	       {"--token-file", true, &co->token_file, NULL},
		{"--ca-file", true, &co->ca_file, NULL},       {"--data-dir", true, &co->data_dir, NULL},
		{"--admin-config", true, &co->admin_config, NULL}, {"--json", false, NULL, &co->json},
		{"--help", false, NULL, &co->help},	       {"-h", false, NULL, &co->help},
	};

	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct opt *o = NULL;
		const char *eq = NULL;
		char name[64];

		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (*npos >= maxpos) {
				fprintf(stderr, "outpost-server %s: unexpected argument %s (see --help)\n", cmd, a);
				return -1;
			}
			pos[(*npos)++] = a;
			continue;
		}
		op_strlcpy(name, a, sizeof(name));
		if ((eq = strchr(a, '=')) != NULL && (size_t)(eq - a) < sizeof(name))
			name[eq - a] = '\0';
		for (size_t k = 0; opts && opts[k].name; k++)
			if (strcmp(opts[k].name, name) == 0)
				o = &opts[k];
		for (size_t k = 0; o == NULL && k < OP_ARRAY_LEN(common); k++)
			if (strcmp(common[k].name, name) == 0)
				o = &common[k];
		if (o == NULL) {
			fprintf(stderr, "outpost-server %s: unknown option %s (see --help)\n", cmd, a);
			return -1;
		}
		if (o->has_value) {
			if (eq)
				*o->value = eq + 1;
			else if (i + 1 < argc)
				*o->value = argv[++i];
			else {
				fprintf(stderr, "outpost-server %s: %s needs a value\n", cmd, name);
				return -1;
			}
		} else {
			*o->flag = true;
		}
	}
	return co->help ? 1 : 0;
}

/* ---- connection settings ----------------------------------------------------------------- */

static void strip(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

static int load_admin_config(struct cli *c, const char *path, bool required)
{
	struct op_ydoc doc;
	struct op_error err;
	op_rc rc = op_yaml_load(path, 1 << 16, &doc, &err);

	if (rc == OP_ENOENT && !required)
		return 0;
	if (rc != OP_OK) {
		fprintf(stderr, "outpost-server %s: %s\n", c->cmd, err.msg);
		return -1;
	}
	if (doc.root && doc.root->kind == OP_Y_MAP) {
		for (size_t i = 0; i < doc.root->n; i++) {
			struct op_ynode *v = doc.root->items[i];
			const char *k = doc.root->keys[i];

			if (v->kind != OP_Y_SCALAR)
				continue;
			if (strcmp(k, "server") == 0)
				op_strlcpy(c->server, v->value, sizeof(c->server));
			else if (strcmp(k, "token") == 0)
				op_strlcpy(c->token, v->value, sizeof(c->token));
			else if (strcmp(k, "ca_file") == 0)
				op_strlcpy(c->ca_file, v->value, sizeof(c->ca_file));
		}
	}
	op_ydoc_release(&doc);
	return 0;
}

static int setup(struct cli *c, const struct common *co)
{
	const char *cfg = co->admin_config ? co->admin_config : getenv("OUTPOST_ADMIN_CONFIG");
	const char *dir = co->data_dir ? co->data_dir : getenv("OUTPOST_DATA_DIR");
	const char *v;
	char path[PATH_MAX];

	c->json = co->json;
	if (cfg) {
		if (load_admin_config(c, cfg, true) < 0)
			return EXIT_USAGE;
	} else {
		snprintf(path, sizeof(path), "%s/%s", dir ? dir : DEFAULT_DATA_DIR, SRV_ADMIN_FILE);
		if (load_admin_config(c, path, dir != NULL) < 0)
			return EXIT_USAGE;
	}
	if ((v = co->server ? co->server : getenv("OUTPOST_SERVER_URL")) != NULL)
		op_strlcpy(c->server, v, sizeof(c->server));
	if ((v = co->ca_file ? co->ca_file : getenv("OUTPOST_CA_FILE")) != NULL)
		op_strlcpy(c->ca_file, v, sizeof(c->ca_file));
	if (co->token_file) {
		struct op_buf b = OP_BUF_INIT;
		struct op_error err;

		if (op_read_file(co->token_file, 4096, &b, &err) != OP_OK) {
			fprintf(stderr, "outpost-server %s: %s\n", c->cmd, err.msg);
			return EXIT_USAGE;
		}
		op_strlcpy(c->token, b.data ? b.data : "", sizeof(c->token));
		op_buf_release(&b);
	} else if ((v = getenv("OUTPOST_ADMIN_TOKEN")) != NULL) {
		op_strlcpy(c->token, v, sizeof(c->token));
	}
	strip(c->token);
	strip(c->server);
	while (strlen(c->server) > 0 && c->server[strlen(c->server) - 1] == '/')
		c->server[strlen(c->server) - 1] = '\0';
	if (c->server[0] == '\0') {
		fprintf(stderr,
			"outpost-server %s: no server: give --server URL, OUTPOST_SERVER_URL, or --data-dir D "
			"(its admin.yaml, written by init)\n",
			c->cmd);
		return EXIT_USAGE;
	}
	if (c->token[0] == '\0') {
		fprintf(stderr,
			"outpost-server %s: no admin token: give --token-file F, OUTPOST_ADMIN_TOKEN, or "
			"--data-dir D (its admin.yaml)\n",
			c->cmd);
		return EXIT_USAGE;
	}
	c->curl = curl_easy_init();
	return c->curl ? 0 : EXIT_FAIL;
}

static void print_json(const cJSON *v);

/* ---- HTTP ------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	return op_buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static int exit_for(long status)
{
	if (status == 401 || status == 403)
		return EXIT_AUTH;
	if (status == 404)
		return EXIT_NOT_FOUND;
	if (status == 409)
		return EXIT_CONFLICT;
	if (status >= 500)
		return EXIT_UNAVAILABLE;
	return EXIT_FAIL;
}

static char *path_escape(struct cli *c, const char *s)
{
	return curl_easy_escape(c->curl, s, 0);
}

/* Calls METHOD PATH with BODY (may be NULL). On 2xx sets *RESP (NULL for 204) and returns 0;
 * otherwise prints the server's reason and message and returns an exit code. */
static int call(struct cli *c, const char *method, const char *path, const cJSON *body,
		cJSON **resp)
{
	struct op_buf in = OP_BUF_INIT;
	struct curl_slist *h = NULL;
	char url[2048], auth[300], errbuf[CURL_ERROR_SIZE] = "";
	char *text = NULL;
	long status = 0;
	CURLcode cc;
	int rc = 0;

	*resp = NULL;
	snprintf(url, sizeof(url), "%s%s", c->server, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/json");
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &in);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	if (c->ca_file[0]) {
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(c->curl, CURLOPT_CAPATH, NULL);
	}
	if (body) {
		text = op_json_print(body, false);
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text ? text : "{}");
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	cc = curl_easy_perform(c->curl);
	if (cc != CURLE_OK) {
		fprintf(stderr, "outpost-server %s: cannot reach %s: %s\n", c->cmd, c->server,
			errbuf[0] ? errbuf : curl_easy_strerror(cc));
		if (cc == CURLE_COULDNT_CONNECT)
			fprintf(stderr, "hint: is `outpost-server serve` running there?\n");
		else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
			fprintf(stderr, "hint: give the server's CA with --ca-file (DATA_DIR/ca.crt)\n");
		rc = EXIT_UNREACHABLE;
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (in.len > 0)
		*resp = cJSON_ParseWithLength(in.data, in.len);
	if (status >= 400) {
		const char *reason = srv_jstr(*resp, "reason"), *msg = srv_jstr(*resp, "message");

		if (c->json && *resp)
			print_json(*resp);
		fprintf(stderr, "outpost-server %s: %s (%s, HTTP %ld)\n", c->cmd,
			msg ? msg : "request failed", reason ? reason : "no reason", status);
		rc = exit_for(status);
		cJSON_Delete(*resp);
		*resp = NULL;
		goto out;
	}
	if (status != 204 && *resp == NULL) {
		fprintf(stderr, "outpost-server %s: the server answered HTTP %ld with no JSON\n", c->cmd,
			status);
		rc = EXIT_FAIL;
	}
out:
	curl_slist_free_all(h);
	cJSON_free(text);
	op_buf_release(&in);
	return rc;
}

/* ---- output ------------------------------------------------------------------------------ */

/* Pretty JSON with two-space indents and "key": value, the way most tools print it. */
static void pretty(struct op_buf *b, const cJSON *v, int depth)
{
	const cJSON *x;
	int n = 0;

	if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
		bool obj = cJSON_IsObject(v);

		if (v->child == NULL) {
			op_buf_puts(b, obj ? "{}" : "[]");
			return;
		}
		op_buf_puts(b, obj ? "{\n" : "[\n");
		cJSON_ArrayForEach(x, v)
		{
			if (n++)
				op_buf_puts(b, ",\n");
			op_buf_printf(b, "%*s", 2 * (depth + 1), "");
			if (obj) {
				cJSON *k = cJSON_CreateString(x->string);
				char *ks = op_json_print(k, false);

				op_buf_printf(b, "%s: ", ks ? ks : "\"\"");
				cJSON_free(ks);
				cJSON_Delete(k);
			}
			pretty(b, x, depth + 1);
		}
		op_buf_printf(b, "\n%*s%s", 2 * depth, "", obj ? "}" : "]");
		return;
	}
	{
		char *s = op_json_print(v, false);

		op_buf_puts(b, s ? s : "null");
		cJSON_free(s);
	}
}

static void print_json(const cJSON *v)
{
	struct op_buf b = OP_BUF_INIT;

	pretty(&b, v, 0);
	printf("%s\n", b.data ? b.data : "null");
	op_buf_release(&b);
}

/* A number as people write it: whole numbers in full (2592000, not 2.592e+06). */
static const char *num_text(double v, char *out, size_t size)
{
	if (v == (double)(long long)v && v > -1e15 && v < 1e15)
		snprintf(out, size, "%lld", (long long)v);
	else
		snprintf(out, size, "%.6g", v);
	return out;
}

/* A value as table text: strings as they are, arrays joined with commas, null as "-". */
static void cell(const cJSON *v, char *out, size_t size)
{
	if (v == NULL || cJSON_IsNull(v)) {
		snprintf(out, size, "-");
	} else if (cJSON_IsString(v)) {
		snprintf(out, size, "%s", v->valuestring[0] ? v->valuestring : "-");
	} else if (cJSON_IsNumber(v)) {
		num_text(v->valuedouble, out, size);
	} else if (cJSON_IsBool(v)) {
		snprintf(out, size, "%s", cJSON_IsTrue(v) ? "yes" : "no");
	} else if (cJSON_IsArray(v)) {
		struct op_buf b = OP_BUF_INIT;
		const cJSON *x;

		cJSON_ArrayForEach(x, v)
		{
			char one[256];

			cell(x, one, sizeof(one));
			op_buf_printf(&b, "%s%s", b.len ? "," : "", one);
		}
		snprintf(out, size, "%s", b.data ? b.data : "-");
		op_buf_release(&b);
	} else {
		char *p = op_json_print(v, false);

		snprintf(out, size, "%s", p ? p : "?");
		cJSON_free(p);
	}
}

/* "12s ago", "3m ago" for an RFC 3339 time; "-" for null. */
static void ago(const cJSON *v, char *out, size_t size)
{
	int64_t ms;
	double d;
	char dur[32];

	if (!cJSON_IsString(v) || srv_parse_time(v->valuestring, &ms) < 0) {
		snprintf(out, size, "-");
		return;
	}
	d = (double)(srv_now_ms() - ms) / 1000.0;
	if (d < 0) {
		op_format_duration(-d, dur, sizeof(dur));
		snprintf(out, size, "in %s", dur);
		return;
	}
	op_format_duration(d < 1 ? 0 : (double)(int64_t)d, dur, sizeof(dur));
	snprintf(out, size, "%s ago", d < 1 ? "0s" : dur);
}

struct col {
	const char *title;
	const char *key;
	int kind; /* 0 plain, 1 age */
};

static void table(const cJSON *rows, const struct col *cols, size_t ncols)
{
	size_t nrows = (size_t)cJSON_GetArraySize(rows), w[16] = {0};
	char ***cells = calloc(nrows ? nrows : 1, sizeof(*cells));
	const cJSON *row;
	size_t r = 0;

	if (cells == NULL)
		return;
	for (size_t k = 0; k < ncols; k++)
		w[k] = strlen(cols[k].title);
	cJSON_ArrayForEach(row, rows)
	{
		cells[r] = calloc(ncols, sizeof(char *));
		for (size_t k = 0; cells[r] && k < ncols; k++) {
			char buf[512];
			const cJSON *v = row;
			char key[128], *tok, *save = NULL;

			op_strlcpy(key, cols[k].key, sizeof(key));
			for (tok = strtok_r(key, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
				v = cJSON_GetObjectItemCaseSensitive(v, tok);
			if (cols[k].kind == 1)
				ago(v, buf, sizeof(buf));
			else
				cell(v, buf, sizeof(buf));
			if (strlen(buf) > 60)
				memcpy(buf + 57, "...", 4);
			cells[r][k] = strdup(buf);
			if (cells[r][k] && strlen(cells[r][k]) > w[k])
				w[k] = strlen(cells[r][k]);
		}
		r++;
	}
	for (size_t k = 0; k < ncols; k++)
		printf("%-*s%s", k + 1 < ncols ? (int)w[k] : 0, cols[k].title, k + 1 < ncols ? "  " : "\n");
	for (r = 0; r < nrows; r++) {
		for (size_t k = 0; cells[r] && k < ncols; k++) {
			printf("%-*s%s", k + 1 < ncols ? (int)w[k] : 0, cells[r][k] ? cells[r][k] : "",
			       k + 1 < ncols ? "  " : "\n");
			free(cells[r][k]);
		}
		free(cells[r]);
	}
	free(cells);
}

static void field(const char *label, const cJSON *obj, const char *key)
{
	char buf[4096];

	cell(cJSON_GetObjectItemCaseSensitive(obj, key), buf, sizeof(buf));
	printf("%-18s %s\n", label, buf);
}

/* ---- commands ---------------------------------------------------------------------------- */

#define MAXPOS 4

static int bad_duration(struct cli *c, const char *flag, const char *v)
{
	fprintf(stderr, "outpost-server %s: %s: \"%s\" is not a duration (examples: 30s, 10m, 1h)\n",
		c->cmd, flag, v);
	return EXIT_USAGE;
}

static int need_pos(struct cli *c, int npos, int want, const char *what)
{
	if (npos < want) {
		fprintf(stderr, "outpost-server %s: %s is required (see --help)\n", c->cmd, what);
		return EXIT_USAGE;
	}
	return 0;
}

static int simple_post(struct cli *c, const char *path, cJSON *body, cJSON **resp)
{
	int rc = call(c, "POST", path, body ? body : NULL, resp);

	cJSON_Delete(body);
	return rc;
}

static int cmd_token(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *pool = NULL, *env = NULL, *tags = NULL;
	const char *ttl = NULL, *uses = NULL, *desc = NULL;
	bool all = false;
	struct opt opts[] = {{"--pool", true, &pool, NULL},
			     {"--environment", true, &env, NULL},
			     {"--tags", true, &tags, NULL},
			     {"--ttl", true, &ttl, NULL},
			     {"--uses", true, &uses, NULL},
			     {"--description", true, &desc, NULL},
			     {"--all", false, NULL, &all},
			     {NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL, *body;
	char path[512];

	c->cmd = "token";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "token");
	if (rc != 0 || sub[0] == '\0') {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server token create [--pool P] [--environment E] [--tags a,b] [--ttl 1h] [--uses 1] [--description D]\n"
			   "       outpost-server token list [--all]\n"
			   "       outpost-server token revoke ID\n"
			   "  create prints the enrollment token (oe_...) once on stdout; it is stored hashed.\n"
			   "  An agent enrolling with it gets the token's pool and environment (they win over\n"
			   "  the agent's own) and the union of both tag sets. Default: single use, no expiry.\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if (strcmp(sub, "create") == 0) {
		double secs;
		long long n;

		body = cJSON_CreateObject();
		if (pool)
			cJSON_AddStringToObject(body, "pool", pool);
		if (env)
			cJSON_AddStringToObject(body, "environment", env);
		if (tags)
			cJSON_AddItemToObject(body, "tags", srv_split_csv(tags));
		if (ttl) {
			if (op_parse_duration(ttl, &secs) < 0 || secs < 1) {
				cJSON_Delete(body);
				return bad_duration(c, "--ttl", ttl);
			}
			cJSON_AddNumberToObject(body, "ttl", secs);
		}
		if (uses) {
			if (op_parse_i64(uses, 1, 1000000, &n) < 0) {
				cJSON_Delete(body);
				fprintf(stderr, "outpost-server token: --uses must be a number from 1 to 1000000\n");
				return EXIT_USAGE;
			}
			cJSON_AddNumberToObject(body, "uses", (double)n);
		}
		if (desc)
			cJSON_AddStringToObject(body, "description", desc);
		if ((rc = simple_post(c, "/admin/tokens", body, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			char exp[64];

			cell(cJSON_GetObjectItemCaseSensitive(resp, "expires_at"), exp, sizeof(exp));
			fprintf(stderr, "enrollment token %s: uses %lld, expires %s (shown once below)\n"
					"enroll a host with: outpost-agent install --control-plane %s "
					"--token-file FILE%s%s\n",
				srv_jstr(resp, "id"), (long long)srv_jint(resp, "uses_max", 1),
				strcmp(exp, "-") == 0 ? "never" : exp, c->server,
				c->ca_file[0] ? " --ca-cert " : "", c->ca_file);
			printf("%s\n", srv_jstr(resp, "token"));
		}
	} else if (strcmp(sub, "list") == 0) {
		if ((rc = call(c, "GET", all ? "/admin/tokens?all=1" : "/admin/tokens", NULL, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			static const struct col cols[] = {
				{"ID", "id", 0},	 {"STATUS", "status", 0}, {"POOL", "pool", 0},
				{"ENVIRONMENT", "environment", 0}, {"TAGS", "tags", 0},
				{"USED", "uses", 0},	 {"OF", "uses_max", 0},	  {"EXPIRES", "expires_at", 1},
				{"CREATED BY", "created_by", 0}};

			table(cJSON_GetObjectItemCaseSensitive(resp, "tokens"), cols, OP_ARRAY_LEN(cols));
		}
	} else if (strcmp(sub, "revoke") == 0) {
		char *id;

		if ((rc = need_pos(c, npos, 1, "the token id")) != 0)
			return rc;
		id = path_escape(c, pos[0]);
		snprintf(path, sizeof(path), "/admin/tokens/%s/revoke", id ? id : "");
		curl_free(id);
		if ((rc = simple_post(c, path, NULL, &resp)) != 0)
			return rc;
		if (c->json)
			print_json(resp);
		else
			printf("enrollment token %s revoked\n", srv_jstr(resp, "id"));
	} else {
		fprintf(stderr, "outpost-server token: unknown subcommand %s (create, list, revoke)\n", sub);
		return EXIT_USAGE;
	}
	cJSON_Delete(resp);
	return EXIT_OK;
}

static int cmd_admin_token(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *name = NULL, *desc = NULL;
	struct opt opts[] = {{"--name", true, &name, NULL},
			     {"--description", true, &desc, NULL},
			     {NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL, *body;
	char path[512];

	c->cmd = "admin-token";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "admin-token");
	if (rc != 0 || sub[0] == '\0') {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server admin-token create --name NAME [--description D]\n"
			   "       outpost-server admin-token create --name NAME --offline --data-dir D\n"
			   "       outpost-server admin-token list\n"
			   "       outpost-server admin-token revoke NAME\n"
			   "  Admin tokens are named: the name is who the audit log and change-request\n"
			   "  approvals record. create prints the token (oa_...) once on stdout.\n"
			   "  --offline writes it straight into a stopped server's database (break-glass).\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if (strcmp(sub, "create") == 0) {
		if (name == NULL) {
			fprintf(stderr, "outpost-server admin-token create: --name NAME is required\n");
			return EXIT_USAGE;
		}
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "name", name);
		if (desc)
			cJSON_AddStringToObject(body, "description", desc);
		if ((rc = simple_post(c, "/admin/admin-tokens", body, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			fprintf(stderr, "admin token %s created (shown once below)\n", srv_jstr(resp, "name"));
			printf("%s\n", srv_jstr(resp, "token"));
		}
	} else if (strcmp(sub, "list") == 0) {
		if ((rc = call(c, "GET", "/admin/admin-tokens", NULL, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			static const struct col cols[] = {{"NAME", "name", 0},
							  {"STATUS", "status", 0},
							  {"CREATED", "created_at", 1},
							  {"CREATED BY", "created_by", 0},
							  {"LAST USED", "last_used_at", 1},
							  {"DESCRIPTION", "description", 0}};

			table(cJSON_GetObjectItemCaseSensitive(resp, "admin_tokens"), cols, OP_ARRAY_LEN(cols));
		}
	} else if (strcmp(sub, "revoke") == 0) {
		char *id;

		if ((rc = need_pos(c, npos, 1, "the token name")) != 0)
			return rc;
		id = path_escape(c, pos[0]);
		snprintf(path, sizeof(path), "/admin/admin-tokens/%s/revoke", id ? id : "");
		curl_free(id);
		if ((rc = simple_post(c, path, NULL, &resp)) != 0)
			return rc;
		if (c->json)
			print_json(resp);
		else
			printf("admin token %s revoked\n", srv_jstr(resp, "name"));
	} else {
		fprintf(stderr, "outpost-server admin-token: unknown subcommand %s (create, list, revoke)\n", sub);
		return EXIT_USAGE;
	}
	cJSON_Delete(resp);
	return EXIT_OK;
}

static void show_agent(const cJSON *a)
{
	const cJSON *v, *cert = cJSON_GetObjectItemCaseSensitive(a, "certificate");
	char buf[4096];

	field("id", a, "id");
	field("hostname", a, "hostname");
	field("status", a, "status");
	field("state", a, "state");
	field("reported state", a, "reported_state");
	field("os/arch", a, "os");
	field("version", a, "version");
	field("pool", a, "pool");
	field("environment", a, "environment");
	field("tags", a, "tags");
	field("task types", a, "task_types");
	field("slots", a, "slots");
	field("running", a, "running");
	ago(cJSON_GetObjectItemCaseSensitive(a, "last_seen"), buf, sizeof(buf));
	printf("%-18s %s (%s)\n", "last seen", buf,
	       srv_jstr(a, "last_seen") ? srv_jstr(a, "last_seen") : "never");
	field("enrolled", a, "enrolled_at");
	field("enrolled with", a, "token_id");
	if (cert) {
		field("cert serial", cert, "serial");
		field("cert expires", cert, "not_after");
		if (srv_jstr(cert, "next_serial"))
			field("rotated to", cert, "next_serial");
	}
	if (srv_jstr(a, "revoked_at")) {
		field("revoked", a, "revoked_at");
		field("revoked by", a, "revoked_by");
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(a, "health")) && cJSON_IsObject(v)) {
		field("health", v, "status");
		field("  problems", v, "problems");
		field("  disk free", v, "disk_free_bytes");
		field("  inodes free", v, "inodes_free");
		field("  workspace ok", v, "workspace_writable");
		field("  last error", v, "last_error");
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(a, "plugins"))
	{
		char types[1024];

		cell(cJSON_GetObjectItemCaseSensitive(v, "types"), types, sizeof(types));
		printf("%-18s %s %s (%s)\n", "plugin", srv_jstr(v, "name") ? srv_jstr(v, "name") : "?",
		       srv_jstr(v, "version") ? srv_jstr(v, "version") : "", types);
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(a, "change_types"))
	{
		printf("%-18s %s (digest %s)\n", "change type", srv_jstr(v, "name") ? srv_jstr(v, "name") : "?",
		       srv_jstr(v, "digest") ? srv_jstr(v, "digest") : "?");
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(a, "leases"))
	{
		printf("%-18s %s task %s (expires %s)\n", "lease", srv_jstr(v, "lease_id"),
		       srv_jstr(v, "task_id"), srv_jstr(v, "expires_at") ? srv_jstr(v, "expires_at") : "-");
	}
}

static int cmd_agents(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *status = NULL, *pool = NULL;
	bool all = false;
	struct opt opts[] = {{"--status", true, &status, NULL},
			     {"--pool", true, &pool, NULL},
			     {"--all", false, NULL, &all},
			     {NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL;
	char path[600];
	char *id = NULL;

	c->cmd = "agents";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "agents");
	if (rc != 0 || sub[0] == '\0') {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server agents list [--status online|offline|draining|revoked] [--pool P] [--all]\n"
			   "       outpost-server agents show ID\n"
			   "       outpost-server agents drain ID      no new leases; running tasks finish\n"
			   "       outpost-server agents undrain ID\n"
			   "       outpost-server agents revoke ID     its certificate stops working at once\n"
			   "       outpost-server agents delete ID     revoke and remove the record\n"
			   "  list hides revoked agents unless --all or --status revoked.\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if (strcmp(sub, "list") == 0) {
		struct op_buf q = OP_BUF_INIT;

		op_buf_puts(&q, "/admin/agents?x=1");
		if (status)
			op_buf_printf(&q, "&status=%s", status);
		if (pool) {
			char *e = path_escape(c, pool);

			op_buf_printf(&q, "&pool=%s", e ? e : "");
			curl_free(e);
		}
		if (all)
			op_buf_puts(&q, "&all=1");
		rc = call(c, "GET", q.data, NULL, &resp);
		op_buf_release(&q);
		if (rc != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			static const struct col cols[] = {
				{"ID", "id", 0},	    {"HOSTNAME", "hostname", 0}, {"STATUS", "status", 0},
				{"POOL", "pool", 0},	    {"ENVIRONMENT", "environment", 0},
				{"TAGS", "tags", 0},	    {"VERSION", "version", 0},
				{"LAST SEEN", "last_seen", 1}};

			table(cJSON_GetObjectItemCaseSensitive(resp, "agents"), cols, OP_ARRAY_LEN(cols));
		}
		cJSON_Delete(resp);
		return EXIT_OK;
	}
	if ((rc = need_pos(c, npos, 1, "the agent id")) != 0)
		return rc;
	id = path_escape(c, pos[0]);
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/admin/agents/%s", id);
		rc = call(c, "GET", path, NULL, &resp);
	} else if (strcmp(sub, "drain") == 0 || strcmp(sub, "undrain") == 0 ||
		   strcmp(sub, "revoke") == 0) {
		snprintf(path, sizeof(path), "/admin/agents/%s/%s", id, sub);
		rc = simple_post(c, path, NULL, &resp);
	} else if (strcmp(sub, "delete") == 0) {
		snprintf(path, sizeof(path), "/admin/agents/%s", id);
		rc = call(c, "DELETE", path, NULL, &resp);
	} else {
		fprintf(stderr, "outpost-server agents: unknown subcommand %s (list, show, drain, undrain, revoke, delete)\n",
			sub);
		curl_free(id);
		return EXIT_USAGE;
	}
	curl_free(id);
	if (rc != 0)
		return rc;
	if (c->json)
		print_json(resp);
	else if (strcmp(sub, "show") == 0)
		show_agent(resp);
	else if (strcmp(sub, "delete") == 0)
		printf("agent %s deleted\n", pos[0]);
	else
		printf("agent %s (%s): %s\n", srv_jstr(resp, "id"),
		       srv_jstr(resp, "hostname") ? srv_jstr(resp, "hostname") : "?", srv_jstr(resp, "status"));
	cJSON_Delete(resp);
	return EXIT_OK;
}

/* Reads params: JSON, or YAML (converted), from FILE or stdin ("-"). */
static cJSON *read_params(struct cli *c, const char *file)
{
	struct op_buf b = OP_BUF_INIT;
	struct op_error err;
	cJSON *v = NULL;

	if (strcmp(file, "-") == 0) {
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
			op_buf_append(&b, chunk, n);
	} else if (op_read_file(file, 16 << 20, &b, &err) != OP_OK) {
		fprintf(stderr, "outpost-server %s: --params: %s\n", c->cmd, err.msg);
		return NULL;
	}
	if (b.data)
		v = cJSON_ParseWithLength(b.data, b.len);
	if (v == NULL && b.data) {
		struct op_ydoc doc;

		if (op_yaml_parse(strcmp(file, "-") == 0 ? "stdin" : file, b.data, b.len, &doc, &err) ==
		    OP_OK) {
			v = doc.root ? op_ynode_to_json(doc.root) : NULL;
			op_ydoc_release(&doc);
		} else {
			fprintf(stderr, "outpost-server %s: --params: neither JSON nor YAML: %s\n", c->cmd,
				err.msg);
			op_buf_release(&b);
			return NULL;
		}
	}
	op_buf_release(&b);
	if (!cJSON_IsObject(v)) {
		fprintf(stderr, "outpost-server %s: --params %s must hold a JSON (or YAML) object\n", c->cmd,
			file);
		cJSON_Delete(v);
		return NULL;
	}
	return v;
}

static void show_task(const cJSON *t)
{
	const cJSON *v, *routing = cJSON_GetObjectItemCaseSensitive(t, "routing");

	field("id", t, "id");
	if (srv_jstr(t, "name"))
		field("name", t, "name");
	field("type", t, "type");
	field("state", t, "state");
	if (srv_jstr(t, "reason"))
		field("reason", t, "reason");
	if (routing)
		field("routing", routing, "message");
	field("attempt", t, "attempt");
	field("max attempts", t, "max_attempts");
	field("timeout (s)", t, "timeout");
	field("pool", t, "pool");
	field("environment", t, "environment");
	field("tags", t, "tags");
	field("target host", t, "target_host");
	if (srv_jstr(t, "target_agent"))
		field("target agent", t, "target_agent");
	field("agent", t, "agent_id");
	if (srv_jstr(t, "cr_id"))
		field("change request", t, "cr_id");
	field("submitted by", t, "submitted_by");
	field("created", t, "created_at");
	field("started", t, "started_at");
	field("finished", t, "finished_at");
	field("duration (s)", t, "duration");
	field("log bytes", t, "log_size");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "cancel_requested")))
		field("cancelled by", t, "cancelled_by");
	field("params", t, "params");
	if ((v = cJSON_GetObjectItemCaseSensitive(t, "error")) && !cJSON_IsNull(v))
		field("error", t, "error");
	if ((v = cJSON_GetObjectItemCaseSensitive(t, "result")) && !cJSON_IsNull(v))
		field("result", t, "result");
	if ((v = cJSON_GetObjectItemCaseSensitive(t, "artifacts")) && !cJSON_IsNull(v))
		field("artifacts", t, "artifacts");
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(t, "leases"))
	{
		printf("%-18s #%lld %s agent %s: %s%s%s\n", "lease", (long long)srv_jint(v, "attempt", 0),
		       srv_jstr(v, "lease_id"), srv_jstr(v, "agent_id"), srv_jstr(v, "state"),
		       srv_jstr(v, "status") ? " " : "", srv_jstr(v, "status") ? srv_jstr(v, "status") : "");
	}
}

static const char *const FINAL[] = {"succeeded", "failed", "cancelled", "timed_out", "crashed",
				    "invalid", "expired", "abandoned", "rejected"};

static bool is_final(const char *s)
{
	for (size_t i = 0; s && i < OP_ARRAY_LEN(FINAL); i++)
		if (strcmp(s, FINAL[i]) == 0)
			return true;
	return false;
}

static void nap(double secs)
{
	struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};

	nanosleep(&ts, NULL);
}

static int task_logs(struct cli *c, const char *id, bool follow)
{
	int64_t offset = 0;
	char path[600];
	char *e = path_escape(c, id);
	int rc = 0;

	for (;;) {
		cJSON *resp = NULL;
		const char *data;
		bool final;

		snprintf(path, sizeof(path), "/admin/tasks/%s/logs?offset=%lld", e, (long long)offset);
		if ((rc = call(c, "GET", path, NULL, &resp)) != 0)
			break;
		data = srv_jstr(resp, "data");
		if (data && *data) {
			fputs(data, stdout);
			fflush(stdout);
		}
		offset = srv_jint(resp, "next_offset", offset);
		final = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "final"));
		if (offset < srv_jint(resp, "size", 0)) {
			cJSON_Delete(resp);
			continue; /* more is already there */
		}
		cJSON_Delete(resp);
		if (!follow || final)
			break;
		nap(0.5);
	}
	curl_free(e);
	return rc;
}

/* Writes an uploaded artifact's bytes to OUT (or stdout). */
static int task_artifact(struct cli *c, const char *task, const char *name, const char *out)
{
	char path[800];
	char *t, *n;
	cJSON *resp = NULL;
	unsigned char *bytes = NULL;
	long len;
	int rc;

	if (name == NULL) {
		fprintf(stderr, "outpost-server task artifact: the artifact name is required\n");
		return EXIT_USAGE;
	}
	t = path_escape(c, task);
	n = path_escape(c, name);
	snprintf(path, sizeof(path), "/admin/tasks/%s/artifacts/%s", t, n);
	curl_free(t);
	curl_free(n);
	if ((rc = call(c, "GET", path, NULL, &resp)) != 0)
		return rc;
	len = srv_b64_decode(srv_jstr(resp, "content") ? srv_jstr(resp, "content") : "", &bytes);
	if (len < 0) {
		fprintf(stderr, "outpost-server task artifact: the server sent content that is not base64\n");
		cJSON_Delete(resp);
		return EXIT_FAIL;
	}
	if (out) {
		struct op_error err;

		if (op_write_file_atomic(out, bytes ? (const void *)bytes : "", (size_t)len, 0644, &err) != OP_OK) {
			fprintf(stderr, "outpost-server task artifact: %s\n", err.msg);
			rc = EXIT_FAIL;
		} else {
			fprintf(stderr, "%s: %ld bytes, sha256 %s\n", out, len, srv_jstr(resp, "sha256"));
		}
	} else if (len > 0 && fwrite(bytes, 1, (size_t)len, stdout) != (size_t)len) {
		rc = EXIT_FAIL;
	}
	free(bytes);
	cJSON_Delete(resp);
	return rc;
}

static int cmd_task(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *type = NULL, *params = NULL, *name = NULL;
	const char *pool = NULL, *env = NULL, *tags = NULL, *host = NULL, *agent = NULL;
	const char *timeout = NULL, *attempts = NULL, *state = NULL, *limit = NULL, *action = NULL;
	const char *outfile = NULL;
	bool wait = false, follow = false;
	struct opt opts[] = {{"--type", true, &type, NULL},
			     {"--params", true, &params, NULL},
			     {"--name", true, &name, NULL},
			     {"--pool", true, &pool, NULL},
			     {"--environment", true, &env, NULL},
			     {"--tags", true, &tags, NULL},
			     {"--target-host", true, &host, NULL},
			     {"--target-agent", true, &agent, NULL},
			     {"--agent", true, &agent, NULL},
			     {"--timeout", true, &timeout, NULL},
			     {"--max-attempts", true, &attempts, NULL},
			     {"--state", true, &state, NULL},
			     {"--limit", true, &limit, NULL},
			     {"--action", true, &action, NULL},
			     {"--out", true, &outfile, NULL},
			     {"-o", true, &outfile, NULL},
			     {"--wait", false, NULL, &wait},
			     {"--follow", false, NULL, &follow},
			     {"-f", false, NULL, &follow},
			     {NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL, *body;
	char path[800];
	char *id = NULL;

	c->cmd = "task";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "task");
	if (rc != 0 || sub[0] == '\0') {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server task submit --type T [--params FILE|-] [--name N] [--pool P] [--environment E]\n"
			   "                  [--tags a,b] [--target-host H] [--target-agent ID] [--timeout 10m]\n"
			   "                  [--max-attempts 3] [--wait]\n"
			   "       outpost-server task show ID\n"
			   "       outpost-server task logs ID [--follow]\n"
			   "       outpost-server task list [--state S[,S]] [--type T] [--agent ID] [--limit N]\n"
			   "       outpost-server task cancel ID\n"
			   "       outpost-server task resolve ID --action resume|rollback|abandon\n"
			   "       outpost-server task artifacts ID\n"
			   "       outpost-server task artifact ID NAME [--out FILE]\n"
			   "  submit prints the task id; --params takes JSON or YAML (a file, or - for stdin);\n"
			   "  --wait waits for the end and exits 0 only when the task succeeded (8 otherwise).\n"
			   "  A task no agent can take is reported as `unroutable: no eligible agent` with the\n"
			   "  constraints that matched nobody. resolve decides a change request's task that\n"
			   "  needs attention (its lease was lost mid-change).\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if (strcmp(sub, "submit") == 0) {
		double secs;
		long long n;
		const cJSON *routing;

		if (type == NULL) {
			fprintf(stderr, "outpost-server task submit: --type T is required\n");
			return EXIT_USAGE;
		}
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "type", type);
		if (params) {
			cJSON *p = read_params(c, params);

			if (p == NULL) {
				cJSON_Delete(body);
				return EXIT_USAGE;
			}
			cJSON_AddItemToObject(body, "params", p);
		}
		if (name)
			cJSON_AddStringToObject(body, "name", name);
		if (pool)
			cJSON_AddStringToObject(body, "pool", pool);
		if (env)
			cJSON_AddStringToObject(body, "environment", env);
		if (tags)
			cJSON_AddItemToObject(body, "tags", srv_split_csv(tags));
		if (host)
			cJSON_AddStringToObject(body, "target_host", host);
		if (agent)
			cJSON_AddStringToObject(body, "target_agent", agent);
		if (timeout) {
			if (op_parse_duration(timeout, &secs) < 0 || secs <= 0) {
				cJSON_Delete(body);
				return bad_duration(c, "--timeout", timeout);
			}
			cJSON_AddNumberToObject(body, "timeout", secs);
		}
		if (attempts) {
			if (op_parse_i64(attempts, 1, 100, &n) < 0) {
				cJSON_Delete(body);
				fprintf(stderr, "outpost-server task submit: --max-attempts must be 1 to 100\n");
				return EXIT_USAGE;
			}
			cJSON_AddNumberToObject(body, "max_attempts", (double)n);
		}
		if ((rc = simple_post(c, "/admin/tasks", body, &resp)) != 0)
			return rc;
		routing = cJSON_GetObjectItemCaseSensitive(resp, "routing");
		if (routing && strcmp(srv_jstr(routing, "status") ? srv_jstr(routing, "status") : "", "ready") != 0)
			fprintf(stderr, "warning: task %s: %s\n", srv_jstr(resp, "id"), srv_jstr(routing, "message"));
		if (!wait) {
			if (c->json)
				print_json(resp);
			else
				printf("%s\n", srv_jstr(resp, "id"));
			cJSON_Delete(resp);
			return EXIT_OK;
		}
		id = path_escape(c, srv_jstr(resp, "id"));
		cJSON_Delete(resp);
		resp = NULL;
		snprintf(path, sizeof(path), "/admin/tasks/%s", id);
		curl_free(id);
		for (;;) {
			if ((rc = call(c, "GET", path, NULL, &resp)) != 0)
				return rc;
			if (is_final(srv_jstr(resp, "state")))
				break;
			cJSON_Delete(resp);
			nap(0.2);
		}
		if (c->json)
			print_json(resp);
		else
			printf("%s %s%s%s\n", srv_jstr(resp, "id"), srv_jstr(resp, "state"),
			       srv_jstr(resp, "reason") ? ": " : "",
			       srv_jstr(resp, "reason") ? srv_jstr(resp, "reason") : "");
		rc = strcmp(srv_jstr(resp, "state"), "succeeded") == 0 ? EXIT_OK : EXIT_TASK_FAILED;
		cJSON_Delete(resp);
		return rc;
	}
	if (strcmp(sub, "list") == 0) {
		struct op_buf q = OP_BUF_INIT;

		op_buf_puts(&q, "/admin/tasks?x=1");
		if (state)
			op_buf_printf(&q, "&state=%s", state);
		if (type) {
			char *e = path_escape(c, type);

			op_buf_printf(&q, "&type=%s", e ? e : "");
			curl_free(e);
		}
		if (agent)
			op_buf_printf(&q, "&agent=%s", agent);
		if (limit)
			op_buf_printf(&q, "&limit=%s", limit);
		rc = call(c, "GET", q.data, NULL, &resp);
		op_buf_release(&q);
		if (rc != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			static const struct col cols[] = {
				{"ID", "id", 0},	  {"TYPE", "type", 0},	    {"STATE", "state", 0},
				{"ATTEMPT", "attempt", 0}, {"AGENT", "agent_id", 0},
				{"CREATED", "created_at", 1}, {"REASON", "reason", 0},
				{"ROUTING", "routing.message", 0}};

			table(cJSON_GetObjectItemCaseSensitive(resp, "tasks"), cols, OP_ARRAY_LEN(cols));
		}
		cJSON_Delete(resp);
		return EXIT_OK;
	}
	if ((rc = need_pos(c, npos, 1, "the task id")) != 0)
		return rc;
	if (strcmp(sub, "logs") == 0)
		return task_logs(c, pos[0], follow);
	if (strcmp(sub, "artifact") == 0)
		return task_artifact(c, pos[0], npos > 1 ? pos[1] : NULL, outfile);
	if (strcmp(sub, "artifacts") == 0) {
		id = path_escape(c, pos[0]);
		snprintf(path, sizeof(path), "/admin/tasks/%s/artifacts", id);
		curl_free(id);
		if ((rc = call(c, "GET", path, NULL, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			static const struct col up[] = {{"UPLOADED", "name", 0}, {"SIZE", "size", 0},
							{"SHA256", "sha256", 0}, {"AGENT", "agent_id", 0}};
			static const struct col rep[] = {{"ON THE AGENT HOST", "name", 0}, {"SIZE", "size", 0},
							 {"SHA256", "sha256", 0}, {"PATH", "path", 0}};

			table(cJSON_GetObjectItemCaseSensitive(resp, "uploaded"), up, OP_ARRAY_LEN(up));
			table(cJSON_GetObjectItemCaseSensitive(resp, "reported"), rep, OP_ARRAY_LEN(rep));
		}
		cJSON_Delete(resp);
		return EXIT_OK;
	}
	id = path_escape(c, pos[0]);
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/admin/tasks/%s", id);
		rc = call(c, "GET", path, NULL, &resp);
	} else if (strcmp(sub, "cancel") == 0) {
		snprintf(path, sizeof(path), "/admin/tasks/%s/cancel", id);
		rc = simple_post(c, path, NULL, &resp);
	} else if (strcmp(sub, "resolve") == 0) {
		if (action == NULL) {
			fprintf(stderr, "outpost-server task resolve: --action resume|rollback|abandon is required\n");
			curl_free(id);
			return EXIT_USAGE;
		}
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "action", action);
		snprintf(path, sizeof(path), "/admin/tasks/%s/resolve", id);
		rc = simple_post(c, path, body, &resp);
	} else {
		fprintf(stderr, "outpost-server task: unknown subcommand %s (submit, show, logs, list, cancel, resolve)\n",
			sub);
		curl_free(id);
		return EXIT_USAGE;
	}
	curl_free(id);
	if (rc != 0)
		return rc;
	if (c->json)
		print_json(resp);
	else if (strcmp(sub, "show") == 0)
		show_task(resp);
	else
		printf("task %s: %s%s\n", srv_jstr(resp, "id"), srv_jstr(resp, "state"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "cancel_requested")) &&
				       strcmp(srv_jstr(resp, "state"), "leased") == 0
			       ? " (cancel requested: the agent stops it at its next renewal)"
			       : "");
	cJSON_Delete(resp);
	return EXIT_OK;
}

/* Reads a change request file: YAML with change_type, target_agent, params, title,
 * description, timeout. Unknown keys are errors with their line. */
static cJSON *read_cr_file(struct cli *c, const char *file)
{
	struct op_ydoc doc;
	struct op_error err;
	cJSON *body = NULL;
	static const char *const keys[] = {"change_type", "target_agent", "params", "title",
					   "description", "timeout"};

	if (op_yaml_load(file, 1 << 20, &doc, &err) != OP_OK) {
		fprintf(stderr, "outpost-server cr create: %s\n", err.msg);
		return NULL;
	}
	if (doc.root == NULL || doc.root->kind != OP_Y_MAP) {
		fprintf(stderr, "outpost-server cr create: %s: expected a mapping with change_type, target_agent and params\n",
			file);
		goto out;
	}
	body = cJSON_CreateObject();
	for (size_t i = 0; i < doc.root->n; i++) {
		const char *k = doc.root->keys[i];
		struct op_ynode *v = doc.root->items[i];
		bool known = false;

		for (size_t j = 0; j < OP_ARRAY_LEN(keys); j++)
			known |= strcmp(k, keys[j]) == 0;
		if (!known) {
			fprintf(stderr,
				"outpost-server cr create: %s:%d: unknown key \"%s\" (expected change_type, "
				"target_agent, params, title, description, timeout)\n",
				file, doc.root->key_lines[i], k);
			goto fail;
		}
		if (strcmp(k, "params") == 0) {
			if (v->kind != OP_Y_MAP) {
				fprintf(stderr, "outpost-server cr create: %s:%d: params must be a mapping\n",
					file, v->line);
				goto fail;
			}
			cJSON_AddItemToObject(body, "params", op_ynode_to_json(v));
		} else if (v->kind != OP_Y_SCALAR) {
			fprintf(stderr, "outpost-server cr create: %s:%d: %s must be a single value\n", file,
				v->line, k);
			goto fail;
		} else if (strcmp(k, "timeout") == 0) {
			double secs;

			if (op_parse_duration(v->value, &secs) < 0 || secs <= 0) {
				fprintf(stderr, "outpost-server cr create: %s:%d: timeout \"%s\" is not a duration (e.g. 10m)\n",
					file, v->line, v->value);
				goto fail;
			}
			cJSON_AddNumberToObject(body, "timeout", secs);
		} else {
			cJSON_AddStringToObject(body, k, v->value);
		}
	}
	for (size_t j = 0; j < 2; j++) {
		if (cJSON_GetObjectItemCaseSensitive(body, keys[j]) == NULL) {
			fprintf(stderr, "outpost-server cr create: %s: %s is required\n", file, keys[j]);
			goto fail;
		}
	}
	goto out;
fail:
	cJSON_Delete(body);
	body = NULL;
out:
	(void)c;
	op_ydoc_release(&doc);
	return body;
}

/* One step record as a line: the change plugin's records (with "event") read as sentences,
 * anything else prints as its JSON. */
static void step_line(const cJSON *s, char *out, size_t size)
{
	const char *ev = srv_jstr(s, "event"), *st = srv_jstr(s, "status");
	const char *action = srv_jstr(s, "action"), *v;
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "output"), *run, *a;
	struct op_buf b = OP_BUF_INIT;

	if (ev == NULL) {
		cell(s, out, size);
		return;
	}
	if (strcmp(ev, "refused") == 0) {
		snprintf(out, size, "refused: %s", srv_jstr(s, "reason") ? srv_jstr(s, "reason") : "?");
		return;
	}
	op_buf_printf(&b, "%lld %s \"%s\"%s%s%s", (long long)srv_jint(s, "index", 0),
		      srv_jstr(s, "phase") ? srv_jstr(s, "phase") : "?",
		      srv_jstr(s, "name") ? srv_jstr(s, "name") : "?",
		      action && strcmp(action, "apply") != 0 ? " (" : "",
		      action && strcmp(action, "apply") != 0 ? action : "",
		      action && strcmp(action, "apply") != 0 ? ")" : "");
	if (strcmp(ev, "start") == 0) {
		op_buf_printf(&b, ": started (%s)", srv_jstr(s, "kind") ? srv_jstr(s, "kind") : "?");
	} else if (strcmp(ev, "dry_run") == 0 && st && strcmp(st, "ok") == 0) {
		run = cJSON_GetObjectItemCaseSensitive(s, "would_run");
		if (srv_jstr(run, "type"))
			op_buf_printf(&b, ": dry run, would run %s", srv_jstr(run, "type"));
		else
			op_buf_puts(&b, ": dry run, would run");
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(run, "argv"))
		{
			const char *t = cJSON_IsString(a) ? a->valuestring : "?";
			int n = (int)strcspn(t, "\n");

			op_buf_printf(&b, " %.*s%s", n, t, t[n] ? " ..." : "");
		}
	} else {
		op_buf_printf(&b, ": %s%s", strcmp(ev, "dry_run") == 0 ? "dry run, " : "",
			      st ? st : ev);
		if (cJSON_GetObjectItemCaseSensitive(s, "duration"))
			op_buf_printf(&b, " in %.3fs", srv_jnum(s, "duration", 0));
		if (cJSON_GetObjectItemCaseSensitive(s, "exit_code"))
			op_buf_printf(&b, ", exit %lld", (long long)srv_jint(s, "exit_code", 0));
		if ((v = srv_jstr(s, "step_status")))
			op_buf_printf(&b, ", step %s", v);
		if (srv_jint(s, "attempts", 1) > 1)
			op_buf_printf(&b, ", %lld attempts", (long long)srv_jint(s, "attempts", 1));
		if ((v = srv_jstr(o, "sha256")))
			op_buf_printf(&b, ", output %.19s... (%lld bytes)", v,
				      (long long)srv_jint(o, "bytes", 0));
		if ((v = srv_jstr(s, "reason")))
			op_buf_printf(&b, " (%s)", v);
		if ((v = srv_jstr(s, "error")))
			op_buf_printf(&b, ": %s", v);
	}
	snprintf(out, size, "%s", b.data ? b.data : "");
	op_buf_release(&b);
}

static void show_cr(const cJSON *cr)
{
	const cJSON *v, *def = cJSON_GetObjectItemCaseSensitive(cr, "definition");
	char buf[2048];
	int i = 1;

	field("id", cr, "id");
	field("title", cr, "title");
	field("state", cr, "state");
	field("change type", cr, "change_type");
	field("digest", cr, "definition_digest");
	printf("%-18s %s (%s)\n", "target", srv_jstr(cr, "target_agent_id"),
	       srv_jstr(cr, "target_hostname") ? srv_jstr(cr, "target_hostname") : "?");
	field("requested by", cr, "requested_by");
	cell(cJSON_GetObjectItemCaseSensitive(cr, "approvers"), buf, sizeof(buf));
	printf("%-18s %s (%d of %lld needed)\n", "approved by", buf,
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cr, "approvers")),
	       (long long)srv_jint(cr, "approvals_required", 1));
	if (srv_jstr(cr, "rejected_by")) {
		field("rejected by", cr, "rejected_by");
		field("reason", cr, "reject_reason");
	}
	field("created", cr, "created_at");
	field("approved", cr, "approved_at");
	field("start before", cr, "not_after");
	field("task", cr, "task_id");
	if ((v = cJSON_GetObjectItemCaseSensitive(cr, "task")) && cJSON_IsObject(v)) {
		printf("%-18s %s%s%s\n", "task state", srv_jstr(v, "state"), srv_jstr(v, "reason") ? ": " : "",
		       srv_jstr(v, "reason") ? srv_jstr(v, "reason") : "");
	}
	if (srv_jstr(cr, "resolution")) {
		field("resolution", cr, "resolution");
		field("resolved by", cr, "resolved_by");
	}
	if (srv_jstr(cr, "description"))
		field("description", cr, "description");
	field("params", cr, "params");
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(def, "steps"))
	{
		char one[512];

		if (cJSON_IsString(v))
			snprintf(one, sizeof(one), "%s", v->valuestring);
		else if (srv_jstr(v, "name"))
			snprintf(one, sizeof(one), "%s%s%s%s%s", srv_jstr(v, "phase") ? srv_jstr(v, "phase") : "",
				 srv_jstr(v, "phase") ? ": " : "", srv_jstr(v, "name"),
				 srv_jstr(v, "description") ? ": " : "",
				 srv_jstr(v, "description") ? srv_jstr(v, "description") : "");
		else
			cell(v, one, sizeof(one));
		printf("%-18s %d. %s\n", i == 1 ? "planned steps" : "", i, one);
		i++;
	}
	i = 0;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cr, "steps"))
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "step");

		step_line(s, buf, sizeof(buf));
		printf("%-18s [attempt %lld %s] %s%s\n", i++ == 0 ? "step record" : "",
		       (long long)srv_jint(v, "attempt", 0),
		       srv_jstr(v, "received_at") ? srv_jstr(v, "received_at") : "", buf,
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "late")) ? " (after the lease was lost)" : "");
	}
}

static int cmd_cr(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *file = NULL, *by = NULL, *reason = NULL;
	const char *state = NULL;
	struct opt opts[] = {{"--file", true, &file, NULL},	{"-f", true, &file, NULL},
			     {"--by", true, &by, NULL},		{"--reason", true, &reason, NULL},
			     {"--state", true, &state, NULL},	{NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL, *body = NULL;
	char path[600];
	char *id;

	c->cmd = "cr";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "cr");
	if (rc != 0 || sub[0] == '\0') {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server cr create --file CR.yaml\n"
			   "       outpost-server cr approve ID [--by NAME]\n"
			   "       outpost-server cr reject ID [--reason TEXT]\n"
			   "       outpost-server cr show ID\n"
			   "       outpost-server cr list [--state S[,S]]\n"
			   "  CR.yaml: change_type: NAME, target_agent: agt_..., params: {...}, and optional\n"
			   "  title, description, timeout (e.g. 30m). The params are checked against the\n"
			   "  target agent's schema for that change type. The approver is the admin token's\n"
			   "  name (--by NAME only asserts it); the requester cannot approve their own.\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if (strcmp(sub, "create") == 0) {
		if (file == NULL) {
			fprintf(stderr, "outpost-server cr create: --file CR.yaml is required\n");
			return EXIT_USAGE;
		}
		body = read_cr_file(c, file);
		if (body == NULL)
			return EXIT_USAGE;
		if ((rc = simple_post(c, "/admin/change-requests", body, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			fprintf(stderr, "change request %s: %s on %s (%s), waiting for approval\n",
				srv_jstr(resp, "id"), srv_jstr(resp, "change_type"),
				srv_jstr(resp, "target_agent_id"),
				srv_jstr(resp, "target_hostname") ? srv_jstr(resp, "target_hostname") : "?");
			printf("%s\n", srv_jstr(resp, "id"));
		}
		cJSON_Delete(resp);
		return EXIT_OK;
	}
	if (strcmp(sub, "list") == 0) {
		snprintf(path, sizeof(path), "/admin/change-requests%s%s", state ? "?state=" : "",
			 state ? state : "");
		if ((rc = call(c, "GET", path, NULL, &resp)) != 0)
			return rc;
		if (c->json) {
			print_json(resp);
		} else {
			static const struct col cols[] = {
				{"ID", "id", 0},	     {"STATE", "state", 0},
				{"CHANGE TYPE", "change_type", 0}, {"TARGET", "target_agent_id", 0},
				{"HOSTNAME", "target_hostname", 0}, {"REQUESTED BY", "requested_by", 0},
				{"APPROVERS", "approvers", 0},	{"CREATED", "created_at", 1},
				{"TITLE", "title", 0}};

			table(cJSON_GetObjectItemCaseSensitive(resp, "change_requests"), cols, OP_ARRAY_LEN(cols));
		}
		cJSON_Delete(resp);
		return EXIT_OK;
	}
	if ((rc = need_pos(c, npos, 1, "the change request id")) != 0)
		return rc;
	id = path_escape(c, pos[0]);
	if (strcmp(sub, "show") == 0) {
		snprintf(path, sizeof(path), "/admin/change-requests/%s", id);
		rc = call(c, "GET", path, NULL, &resp);
	} else if (strcmp(sub, "approve") == 0) {
		if (by) {
			cJSON *me = NULL;

			if ((rc = call(c, "GET", "/admin/whoami", NULL, &me)) != 0) {
				curl_free(id);
				return rc;
			}
			if (strcmp(srv_jstr(me, "name") ? srv_jstr(me, "name") : "", by) != 0) {
				fprintf(stderr,
					"outpost-server cr approve: --by %s, but this admin token belongs to %s: "
					"approvals are recorded under the token's name\n",
					by, srv_jstr(me, "name"));
				cJSON_Delete(me);
				curl_free(id);
				return EXIT_AUTH;
			}
			cJSON_Delete(me);
		}
		snprintf(path, sizeof(path), "/admin/change-requests/%s/approve", id);
		rc = simple_post(c, path, NULL, &resp);
	} else if (strcmp(sub, "reject") == 0) {
		body = cJSON_CreateObject();
		if (reason)
			cJSON_AddStringToObject(body, "reason", reason);
		snprintf(path, sizeof(path), "/admin/change-requests/%s/reject", id);
		rc = simple_post(c, path, body, &resp);
	} else {
		fprintf(stderr, "outpost-server cr: unknown subcommand %s (create, approve, reject, show, list)\n", sub);
		curl_free(id);
		return EXIT_USAGE;
	}
	curl_free(id);
	if (rc != 0)
		return rc;
	if (c->json)
		print_json(resp);
	else if (strcmp(sub, "show") == 0)
		show_cr(resp);
	else
		printf("change request %s: %s\n", srv_jstr(resp, "id"), srv_jstr(resp, "state"));
	cJSON_Delete(resp);
	return EXIT_OK;
}

static int cmd_settings(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *rv = NULL;
	struct opt opts[] = {{"--recommended-version", true, &rv, NULL}, {NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL, *body;

	c->cmd = "settings";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "settings");
	if (rc != 0 || sub[0] == '\0') {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server settings show\n"
			   "       outpost-server settings set --recommended-version V   (\"\" clears it)\n"
			   "  The recommended agent version is sent in every heartbeat answer.\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if (strcmp(sub, "show") == 0) {
		rc = call(c, "GET", "/admin/settings", NULL, &resp);
	} else if (strcmp(sub, "set") == 0) {
		body = cJSON_CreateObject();
		if (rv)
			cJSON_AddStringToObject(body, "recommended_version", rv);
		rc = simple_post(c, "/admin/settings", body, &resp);
	} else {
		fprintf(stderr, "outpost-server settings: unknown subcommand %s (show, set)\n", sub);
		return EXIT_USAGE;
	}
	if (rc != 0)
		return rc;
	if (c->json) {
		print_json(resp);
	} else {
		const cJSON *sv = cJSON_GetObjectItemCaseSensitive(resp, "server"), *v;

		field("recommended version", resp, "recommended_version");
		cJSON_ArrayForEach(v, sv)
		{
			char buf[256];

			cell(v, buf, sizeof(buf));
			printf("%-22s %s\n", v->string, buf);
		}
	}
	cJSON_Delete(resp);
	return EXIT_OK;
}

static int cmd_audit(struct cli *c, int argc, char **argv)
{
	int skip = argc > 0 && argv[0][0] != '-';
	const char *sub = skip ? argv[0] : "", *limit = NULL, *actor = NULL, *action = NULL;
	const char *since = NULL;
	struct opt opts[] = {{"--limit", true, &limit, NULL},
			     {"--actor", true, &actor, NULL},
			     {"--action", true, &action, NULL},
			     {"--since", true, &since, NULL},
			     {NULL, false, NULL, NULL}};
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL;
	struct op_buf q = OP_BUF_INIT;

	c->cmd = "audit";
	rc = parse(argc - skip, argv + skip, opts, &co, pos, MAXPOS, &npos, "audit");
	if (rc != 0 || sub[0] == '\0' || strcmp(sub, "list") != 0) {
		FILE *f = rc > 0 ? stdout : stderr;

		fprintf(f, "usage: outpost-server audit list [--limit N] [--actor NAME] [--action ACTION] [--since 2026-11-23T10:00:00Z]\n"
			   "  Every admin action: who (admin token name), what, when, from where, result.\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	op_buf_puts(&q, "/admin/audit?x=1");
	if (limit)
		op_buf_printf(&q, "&limit=%s", limit);
	if (actor) {
		char *e = path_escape(c, actor);

		op_buf_printf(&q, "&actor=%s", e ? e : "");
		curl_free(e);
	}
	if (action) {
		char *e = path_escape(c, action);

		op_buf_printf(&q, "&action=%s", e ? e : "");
		curl_free(e);
	}
	if (since) {
		char *e = path_escape(c, since);

		op_buf_printf(&q, "&since=%s", e ? e : "");
		curl_free(e);
	}
	rc = call(c, "GET", q.data, NULL, &resp);
	op_buf_release(&q);
	if (rc != 0)
		return rc;
	if (c->json) {
		print_json(resp);
	} else {
		static const struct col cols[] = {{"AT", "at", 0},	   {"ACTOR", "actor", 0},
						  {"ACTION", "action", 0}, {"TARGET", "target", 0},
						  {"RESULT", "result", 0}, {"FROM", "remote", 0}};

		table(cJSON_GetObjectItemCaseSensitive(resp, "entries"), cols, OP_ARRAY_LEN(cols));
	}
	cJSON_Delete(resp);
	return EXIT_OK;
}

static int cmd_simple_get(struct cli *c, int argc, char **argv, const char *cmd, const char *path)
{
	struct common co = {0};
	const char *pos[MAXPOS];
	int npos, rc;
	cJSON *resp = NULL;

	c->cmd = cmd;
	rc = parse(argc, argv, NULL, &co, pos, MAXPOS, &npos, cmd);
	if (rc != 0) {
		fprintf(rc > 0 ? stdout : stderr,
			"usage: outpost-server %s [--json]\n%s", cmd,
			strcmp(cmd, "status") == 0
				? "  The control plane's state: agents, tasks and change requests by status,\n"
				  "  active leases and waiting lease requests, and the store's group commits\n"
				  "  (transactions, jobs, largest batch, time per commit).\n"
				: "  The name of the admin the token in use belongs to.\n");
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	if ((rc = setup(c, &co)) != 0)
		return rc;
	if ((rc = call(c, "GET", path, NULL, &resp)) != 0)
		return rc;
	if (c->json || strcmp(cmd, "status") != 0) {
		if (strcmp(cmd, "whoami") == 0 && !c->json)
			printf("%s\n", srv_jstr(resp, "name"));
		else
			print_json(resp);
	} else {
		const cJSON *v;
		char buf[256], n[4][32];

		printf("outpost-server %s, started %s\n", srv_jstr(resp, "version"), srv_jstr(resp, "started_at"));
		printf("agents:");
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(resp, "agents"))
		{
			printf(" %s=%s", v->string, num_text(v->valuedouble, buf, sizeof(buf)));
		}
		printf("\ntasks:");
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(resp, "tasks"))
		{
			printf(" %s=%s", v->string, num_text(v->valuedouble, buf, sizeof(buf)));
		}
		printf("\nchange requests:");
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(resp, "change_requests"))
		{
			printf(" %s=%s", v->string, num_text(v->valuedouble, buf, sizeof(buf)));
		}
		cell(cJSON_GetObjectItemCaseSensitive(resp, "active_leases"), buf, sizeof(buf));
		printf("\nactive leases: %s, waiting lease requests: %s\n", buf,
		       num_text(srv_jnum(resp, "waiting_lease_requests", 0), n[0], sizeof(n[0])));
		v = cJSON_GetObjectItemCaseSensitive(resp, "database");
		printf("database: %s, %s transactions for %s jobs (largest batch %s), %sms per commit\n",
		       srv_jstr(v, "backend"), num_text(srv_jnum(v, "transactions", 0), n[0], sizeof(n[0])),
		       num_text(srv_jnum(v, "jobs", 0), n[1], sizeof(n[1])),
		       num_text(srv_jnum(v, "largest_batch", 0), n[2], sizeof(n[2])),
		       num_text(srv_jnum(v, "commit_ms_avg", 0), n[3], sizeof(n[3])));
	}
	cJSON_Delete(resp);
	return EXIT_OK;
}

int cli_main(int argc, char **argv)
{
	struct cli c;
	int rc;

	memset(&c, 0, sizeof(c));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[0], "token") == 0)
		rc = cmd_token(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "admin-token") == 0)
		rc = cmd_admin_token(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "agents") == 0 || strcmp(argv[0], "agent") == 0)
		rc = cmd_agents(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "task") == 0 || strcmp(argv[0], "tasks") == 0)
		rc = cmd_task(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "cr") == 0)
		rc = cmd_cr(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "settings") == 0)
		rc = cmd_settings(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "audit") == 0)
		rc = cmd_audit(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "status") == 0)
		rc = cmd_simple_get(&c, argc - 1, argv + 1, "status", "/admin/stats");
	else if (strcmp(argv[0], "whoami") == 0)
		rc = cmd_simple_get(&c, argc - 1, argv + 1, "whoami", "/admin/whoami");
	else
		rc = -1;
	if (c.curl)
		curl_easy_cleanup(c.curl);
	curl_global_cleanup();
	return rc;
}
