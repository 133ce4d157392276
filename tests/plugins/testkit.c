/* SPDX-License-Identifier: Apache-2.0 */
/* A test plugin with every misbehaviour the host must survive, chosen by params.action. */
#include <outpost/sdk.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t cancelled;

static void on_cancel(void *state)
{
	(void)state;
	cancelled = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int run(outpost_ctx *ctx, void *state, const char *type, const char *params, size_t len)
{
	cJSON *p, *r = NULL;
	const char *action = "echo";
	int rc = OUTPOST_OK;

	(void)state;
	(void)type;
	if (len == 2 && memcmp(params, "{}", 2) == 0)
		return OUTPOST_OK; /* the no-op task of the benchmarks */
	p = outpost_params_parse(ctx, params, len);
	if (p == NULL)
		return OUTPOST_ERR_PARAMS;
	outpost_get_str(ctx, p, "action", &action, "echo");
	if (strcmp(action, "echo") == 0) {
		outpost_info(ctx, "echo: %s", params);
		outpost_set_result(ctx, p);
	} else if (strcmp(action, "fail") == 0) {
		const char *msg = "it failed";

		outpost_get_str(ctx, p, "message", &msg, msg);
		rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "%s", msg);
	} else if (strcmp(action, "segv") == 0) {
		raise(SIGSEGV);
	} else if (strcmp(action, "abort") == 0) {
		abort();
	} else if (strcmp(action, "exit") == 0) {
		exit(3);
	} else if (strcmp(action, "hang") == 0) {
		for (;;)
			pause(); /* ignores cancel: only SIGKILL stops it */
	} else if (strcmp(action, "sleep") == 0) {
		double secs = 10;

		outpost_get_duration(ctx, p, "for", &secs, secs);
		for (long i = 0; i < (long)(secs * 100); i++) {
			if (cancelled || outpost_host->is_cancelled(ctx)) {
				rc = outpost_fail(ctx, OUTPOST_ERR_CANCELLED, "stopped after %ld ms", i * 10);
				goto out;
			}
			sleep_ms(10);
		}
		r = cJSON_CreateObject();
		cJSON_AddBoolToObject(r, "slept", 1);
		outpost_set_result(ctx, r);
	} else if (strcmp(action, "alloc") == 0) {
		for (;;) {
			char *m = malloc(1 << 20);

			if (m == NULL)
				abort(); /* what most programs do on OOM */
			memset(m, 1, 1 << 20);
		}
	} else if (strcmp(action, "print") == 0) {
		int64_t bytes = 1024;
		static char line[4096];

		outpost_get_int(ctx, p, "bytes", &bytes, bytes);
		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 2] = '\n';
		for (int64_t done = 0; done < bytes; done += (int64_t)sizeof(line) - 1) {
			if (fwrite(line, 1, sizeof(line) - 1, stdout) == 0)
				break;
			outpost_output(ctx, OUTPOST_STREAM_STDOUT, line, sizeof(line) - 1);
		}
		fflush(stdout);
	} else if (strcmp(action, "raw") == 0) {
		const char *text = "{}";

		outpost_get_str(ctx, p, "text", &text, text);
		if (outpost_host->set_result(ctx, text, strlen(text)) != 0)
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "set_result refused the text");
	} else if (strcmp(action, "env") == 0) {
		const char *name = "PATH", *v;

		outpost_get_str(ctx, p, "name", &name, name);
		v = getenv(name);
		r = cJSON_CreateObject();
		if (v)
			cJSON_AddStringToObject(r, "value", v);
		else
			cJSON_AddNullToObject(r, "value");
		outpost_set_result(ctx, r);
	} else if (strcmp(action, "fork") == 0) {
		bool detach = false;
		pid_t pid;

		outpost_get_bool(ctx, p, "setsid", &detach, false);
		pid = fork();
		if (pid == 0) {
			if (detach)
				setsid();
			for (;;)
				sleep(1000);
		}
		r = cJSON_CreateObject();
		cJSON_AddNumberToObject(r, "child", pid);
		outpost_set_result(ctx, r);
	} else if (strcmp(action, "secret") == 0) {
		const char *name = "", *host = NULL, *v;
		size_t n = 0;

		outpost_get_str(ctx, p, "name", &name, "");
		outpost_get_str(ctx, p, "host", &host, NULL);
		v = outpost_secret(ctx, name, host, &n);
		if (v == NULL) {
			rc = OUTPOST_ERR_DENIED;
			goto out;
		}
		outpost_info(ctx, "the secret is %s", v);
		outpost_output(ctx, OUTPOST_STREAM_STDOUT, v, n);
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "leaked", v);
		cJSON_AddNumberToObject(r, "length", (double)n);
		outpost_set_result(ctx, r);
	} else if (strcmp(action, "secret_late") == 0) {
		/* a result set before the secret is asked for, with its value in it all the same */
		const char *name = "", *guess = "";
		size_t n = 0;

		outpost_get_str(ctx, p, "name", &name, "");
		outpost_get_str(ctx, p, "guess", &guess, "");
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "guess", guess);
		outpost_set_result(ctx, r);
		if (outpost_secret(ctx, name, NULL, &n) == NULL)
			rc = OUTPOST_ERR_DENIED;
	} else if (strcmp(action, "artifact") == 0) {
		const char *name = "out.txt", *content = "hello\n";
		int fd = -1;

		outpost_get_str(ctx, p, "name", &name, name);
		outpost_get_str(ctx, p, "content", &content, content);
		if (outpost_host->artifact_open(ctx, name, &fd) < 0) {
			rc = outpost_fail(ctx, OUTPOST_ERR_FAILED, "artifact_open(%s) refused", name);
			goto out;
		}
		if (write(fd, content, strlen(content)) < 0)
			rc = OUTPOST_ERR_INTERNAL;
		close(fd);
	} else if (strcmp(action, "call") == 0) {
		const char *step_type = "template.echo";
		const cJSON *step_params = NULL;
		cJSON *outcome = NULL;

		outpost_get_str(ctx, p, "type", &step_type, step_type);
		outpost_get_obj(ctx, p, "params", &step_params);
		if (outpost_call(ctx, step_type, step_params, 0, &outcome) < 0) {
			cJSON_Delete(outcome);
			rc = OUTPOST_ERR_FAILED;
			goto out;
		}
		r = cJSON_CreateObject();
		cJSON_AddItemToObject(r, "step", outcome);
		outpost_set_result(ctx, r);
	} else if (strcmp(action, "record") == 0) {
		int64_t n = 2;

		outpost_get_int(ctx, p, "count", &n, n);
		for (int64_t i = 0; i < n; i++) {
			cJSON *rec = cJSON_CreateObject();

			cJSON_AddNumberToObject(rec, "index", (double)i);
			cJSON_AddStringToObject(rec, "phase", "end");
			outpost_record(ctx, rec);
			cJSON_Delete(rec);
		}
	} else if (strcmp(action, "memory") == 0) {
		/* this worker's private memory: what the heap it prepared holds (heap.h) */
		FILE *f = fopen("/proc/self/status", "r");
		char line[256];
		long kb = -1;

		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
				break;
		if (f)
			fclose(f);
		r = cJSON_CreateObject();
		cJSON_AddNumberToObject(r, "rss_anon_kb", (double)kb);
		outpost_set_result(ctx, r);
	} else if (strcmp(action, "workspace") == 0) {
		char cwd[4096];

		r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "workspace", outpost_host->workspace(ctx));
		cJSON_AddStringToObject(r, "cwd", getcwd(cwd, sizeof(cwd)) ? cwd : "");
		cJSON_AddStringToObject(r, "env_home", getenv("HOME") ? getenv("HOME") : "");
		cJSON_AddStringToObject(r, "env_allowed",
					getenv("OUTPOST_TEST_ALLOWED") ? getenv("OUTPOST_TEST_ALLOWED") : "");
		{
			int open_fds = 0;

			for (int fd = 0; fd < 1024; fd++)
				if (fcntl(fd, F_GETFD) != -1)
					open_fds++;
			cJSON_AddNumberToObject(r, "open_fds", open_fds);
		}
		outpost_set_result(ctx, r);
	} else {
		rc = outpost_fail(ctx, OUTPOST_ERR_PARAMS, "params.action: unknown action %s", action);
	}
out:
	cJSON_Delete(r);
	cJSON_Delete(p);
	return rc;
}

static const char schema[] = "{\"type\":\"object\",\"properties\":{"
			     "\"action\":{\"type\":\"string\"},"
			     "\"count\":{\"type\":\"integer\",\"minimum\":0}}}";

static const struct outpost_task_type types[] = {
	OUTPOST_TASK_TYPE("testkit.run", "Does what params.action says", schema),
	OUTPOST_TASK_TYPE("testkit.strict", "Only takes {\"name\": string}",
			  "{\"type\":\"object\",\"additionalProperties\":false,"
			  "\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"}}}"),
};

OUTPOST_PLUGIN_DEFINE(.name = "testkit", .version = "1.2.3", .vendor = "Outpost tests",
		      .license = "Apache-2.0", .description = "Misbehaves on request",
		      .types = types, .n_types = OUTPOST_COUNT(types), .execute = run,
		      .cancel = on_cancel)
