/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the agent config: types, defaults, file:line errors, env overrides, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "secrets.h"

static char path[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/outpost-config-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void write_config(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Loads TEXT; expects success (WANT NULL) or an error that contains WANT after "FILE:". */
static void load_expect(const char *text, const char *want)
{
	struct ag_config cfg;
	struct op_error err = {0};
	op_rc rc;

	write_config(text);
	rc = ag_config_load(path, &cfg, &err);
	if (want == NULL) {
		if (rc != OP_OK)
			fail_msg("unexpected error: %s", err.msg);
	} else {
		char full[1200];

		assert_int_not_equal(rc, OP_OK);
		snprintf(full, sizeof(full), "%s:%s", path, want);
		if (strcmp(err.msg, full) != 0)
			fail_msg("expected [%s]\n     got [%s]", full, err.msg);
	}
	ag_config_release(&cfg);
}

static void test_defaults(void **state)
{
	struct ag_config cfg;
	struct op_error err = {0};

	(void)state;
	write_config("");
	assert_int_equal(ag_config_load(path, &cfg, &err), OP_OK);
	assert_int_equal(cfg.concurrency, 1);
	assert_true(cfg.drain_grace == 300);
	assert_string_equal(cfg.state_dir, "/var/lib/outpost-agent");
	assert_string_equal(cfg.workspace_dir, "/var/lib/outpost-agent/work");
	assert_true(cfg.plugins_all);
	assert_true(cfg.spare.on);
	assert_true(cfg.fork_server.on);
	assert_true(cfg.spare_heap == 8 * 1048576ULL);
	ag_config_release(&cfg);
}

static void test_values(void **state)
{
	struct ag_config cfg;
	struct op_error err = {0};

	(void)state;
	write_config("control_plane: https://cp.example.com:8000\n"
		     "concurrency: 4\n"
		     "state_dir: /srv/outpost\n"
		     "https_proxy: http://proxy:3128\n"
		     "tags: [gpu, eu]\n"
		     "log:\n  level: debug\n  max_size: 5MiB\n"
		     "plugins:\n  enabled: [http, ssh]\n  config:\n    ssh:\n      known_hosts: /k\n"
		     "      env_allow: [SSH_AUTH_SOCK]\n"
		     "workers:\n  spare: {default: true, odbc: false}\n  memory_limit: 512MiB\n"
		     "  spare_heap: 0\n"
		     "  fork_server: {default: false, http: true}\n"
		     "secrets:\n  db: file:/etc/db\n  api:\n    from: env:API\n"
		     "    allow: {types: [http.*], hosts: ['*.example.com']}\n");
	assert_int_equal(ag_config_load(path, &cfg, &err), OP_OK);
	assert_string_equal(cfg.control_plane, "https://cp.example.com:8000");
	assert_int_equal(cfg.concurrency, 4);
	assert_string_equal(cfg.workspace_dir, "/srv/outpost/work");
	assert_int_equal((int)cfg.tags.n, 2);
	assert_int_equal(cfg.log_level, 3);
	assert_true(cfg.log_max_size == 5 * 1048576);
	assert_false(cfg.plugins_all);
	assert_true(ag_config_plugin_enabled(&cfg, "ssh"));
	assert_false(ag_config_plugin_enabled(&cfg, "odbc"));
	assert_non_null(ag_config_plugin_settings(&cfg, "ssh"));
	assert_null(ag_config_plugin_settings(&cfg, "http"));
	assert_true(ag_plugin_switch_for(&cfg.spare, "http"));
	assert_false(ag_plugin_switch_for(&cfg.spare, "odbc"));
	assert_true(ag_plugin_switch_for(&cfg.fork_server, "http"));
	assert_false(ag_plugin_switch_for(&cfg.fork_server, "ssh"));
	assert_true(cfg.memory_limit == 512 * 1048576ULL);
	assert_true(cfg.spare_heap == 0);
	assert_int_equal((int)cfg.n_secrets, 2);
	assert_true(cfg.secrets[1].fenced);
	ag_config_release(&cfg);
}

static void test_errors(void **state)
{
	(void)state;
	load_expect("concurency: 2\n", "1: unknown key \"concurency\" (did you mean \"concurrency\"?)");
	load_expect("log:\n  levle: info\n", "2: unknown key \"log.levle\" (did you mean \"log.level\"?)");
	load_expect("frobnicate: 1\n", "1: unknown key \"frobnicate\"");
	load_expect("concurrency: two\n",
		    "1: concurrency: expected an integer from 1 to 256, got \"two\"");
	load_expect("concurrency: [1]\n", "1: concurrency: expected a single value, got a list");
	load_expect("drain_grace: soon\n",
		    "1: drain_grace: expected a duration such as 30s, 5m or 1h, got \"soon\"");
	load_expect("https_proxy: proxy.corp:3128\n",
		    "1: https_proxy: proxy \"proxy.corp:3128\" has no scheme: write it as "
		    "http://proxy.corp:3128");
	load_expect("control_plane: cp.example.com\n",
		    "1: control_plane: \"cp.example.com\" is not a URL: use https://HOST:PORT");
	load_expect("log: info\n", "1: log: expected a mapping, got a scalar");
	load_expect("insecure_skip_verify: maybe\n",
		    "1: insecure_skip_verify: expected true or false, got \"maybe\"");
	load_expect("workers:\n  spare_heap: 2GiB\n",
		    "2: workers.spare_heap: expected a size of at most 1024MiB, got \"2GiB\"");
	load_expect("workers:\n  memory_limit: big\n",
		    "2: workers.memory_limit: expected a size such as 512MiB or 1GB, got \"big\"");
	load_expect("secrets:\n  db: hunter2\n",
		    "2: secrets.db: \"hunter2\" is not a secret source: use file:/path/to/file or "
		    "env:VARIABLE (secret values never go in the config itself)");
	load_expect("secrets:\n  db:\n    from: file:/x\n    allow: {users: [a]}\n",
		    "4: secrets.db.allow.users: unknown key (allowed: types, hosts)");
	load_expect("plugins:\n  config:\n    http: 5\n",
		    "3: plugins.config.http: expected a mapping of settings");
	load_expect("a: [1,\n", "2:1: did not find expected node content while parsing a flow node");
	load_expect("plugins:\n  config:\n    http: {}\n  enabled: [http]\n  config:\n    ssh: {}\n",
		    "5: duplicate key \"config\" (first on line 2)");
	load_expect("? [a, b]\n: 1\n", "1: a key must be a plain value, not a list");
	load_expect("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n", "1: unknown key \"a\"");
	load_expect("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
		    "1: more than 100000 values (aliases expanded)");
}

static void test_env(void **state)
{
	struct ag_config cfg;
	struct op_error err = {0};

	(void)state;
	write_config("concurrency: 2\n");
	setenv("OUTPOST_CONCURRENCY", "3", 1);
	setenv("OUTPOST_LOG_LEVEL", "warn", 1);
	assert_int_equal(ag_config_load(path, &cfg, &err), OP_OK);
	assert_int_equal(cfg.concurrency, 3);
	assert_int_equal(cfg.log_level, 1);
	ag_config_release(&cfg);
	setenv("OUTPOST_HTTPS_PROXY", "squid:3128", 1);
	assert_int_not_equal(ag_config_load(path, &cfg, &err), OP_OK);
	assert_string_equal(err.msg, "environment variable OUTPOST_HTTPS_PROXY: proxy \"squid:3128\" "
				     "has no scheme: write it as http://squid:3128");
	ag_config_release(&cfg);
	unsetenv("OUTPOST_CONCURRENCY");
	unsetenv("OUTPOST_LOG_LEVEL");
	unsetenv("OUTPOST_HTTPS_PROXY");
}

static void test_secrets(void **state)
{
	struct ag_config cfg;
	struct op_error err = {0};
	struct op_buf v = OP_BUF_INIT;
	char why[512];
	char spath[64] = "/tmp/outpost-secret-XXXXXX";
	char text[512];
	int fd = mkstemp(spath);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\n", 7), 7);
	close(fd);
	snprintf(text, sizeof(text),
		 "secrets:\n  plain: file:%s\n  fenced:\n    from: file:%s\n"
		 "    allow: {types: ['ssh.*'], hosts: ['db-*.internal']}\n  envy: env:OUTPOST_T_SECRET\n",
		 spath, spath);
	write_config(text);
	assert_int_equal(ag_config_load(path, &cfg, &err), OP_OK);
	assert_int_equal(ag_secret_lookup(&cfg, "http.request", "plain", NULL, &v, why, sizeof(why)), 1);
	assert_string_equal(v.data, "s3cret");
	op_buf_reset(&v);
	assert_int_equal(ag_secret_lookup(&cfg, "ssh.exec", "fenced", "db-1.internal", &v, why,
					  sizeof(why)), 1);
	assert_int_equal(ag_secret_lookup(&cfg, "http.request", "fenced", "db-1.internal", &v, why,
					  sizeof(why)), 0);
	assert_string_equal(why, "secret \"fenced\" is not allowed for task type http.request "
				 "(allow.types: ssh.*)");
	assert_int_equal(ag_secret_lookup(&cfg, "ssh.exec", "fenced", "evil.com", &v, why, sizeof(why)),
			 0);
	assert_string_equal(why, "secret \"fenced\" is not allowed for host evil.com (allow.hosts: "
				 "db-*.internal)");
	assert_int_equal(ag_secret_lookup(&cfg, "ssh.exec", "nope", NULL, &v, why, sizeof(why)), 0);
	assert_string_equal(why, "no secret named \"nope\" in the agent config (secrets:)");
	assert_int_equal(ag_secret_lookup(&cfg, "ssh.exec", "envy", NULL, &v, why, sizeof(why)), 0);
	assert_string_equal(why, "secret \"envy\": environment variable OUTPOST_T_SECRET is not set");
	op_buf_release(&v);
	ag_config_release(&cfg);
	unlink(spath);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
