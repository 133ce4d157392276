/* SPDX-License-Identifier: Apache-2.0 */
/* Plugins that break the ABI in one way each; the VARIANT_* macro picks which (CMakeLists). */
#include <outpost/sdk.h>

#include <signal.h>
#include <string.h>
#include <unistd.h>

static int execute(outpost_ctx *ctx, void *state, const char *type, const char *params, size_t len)
{
	(void)state;
	(void)type;
	(void)params;
	(void)len;
	outpost_host->set_result(ctx, "{\"variant\":\"" VARIANT_NAME "\"}",
				 strlen("{\"variant\":\"" VARIANT_NAME "\"}"));
	return OUTPOST_OK;
}

#if defined(VARIANT_OLD_MINOR)
/* Built "for an older minor": its structs end before fields a later minor has. Here the
 * descriptor stops after execute and the task type has no params_schema member. */
struct old_task_type {
	uint32_t size;
	const char *name;
	const char *description;
};
struct old_plugin {
	uint32_t size;
	uint16_t abi_major, abi_minor;
	const char *name, *version, *vendor, *license, *description;
	const struct old_task_type *types;
	uint32_t n_types;
	int (*init)(outpost_ctx *, const char *, size_t, void **);
	int (*validate)(outpost_ctx *, void *, const char *, const char *, size_t);
	int (*execute)(outpost_ctx *, void *, const char *, const char *, size_t);
};
static const struct old_task_type old_types[] = {
	{sizeof(struct old_task_type), "old_minor.run", "runs"},
};
static const struct old_plugin old_desc = {
	sizeof(struct old_plugin), OUTPOST_ABI_MAJOR, 0, "old_minor", "0.9", "tests", "MIT",
	"a plugin with smaller structs", old_types, 1, NULL, NULL, execute,
};
OUTPOST_EXPORT int outpost_plugin_v1(struct outpost_negotiate *n);
OUTPOST_EXPORT int outpost_plugin_v1(struct outpost_negotiate *n)
{
	outpost_host = n->host;
	n->plugin = (const struct outpost_plugin *)&old_desc;
	return 0;
}

#elif defined(VARIANT_WRONG_MAJOR)
/* A plugin for a future ABI 2: only the v2 entry point. */
OUTPOST_EXPORT int outpost_plugin_v2(void *n);
OUTPOST_EXPORT int outpost_plugin_v2(void *n)
{
	(void)n;
	(void)execute;
	return 0;
}

#elif defined(VARIANT_NO_ENTRY)
/* A shared object that is not an Outpost plugin at all. */
OUTPOST_EXPORT int some_other_library_function(void);
OUTPOST_EXPORT int some_other_library_function(void)
{
	(void)execute;
	return 42;
}

#elif defined(VARIANT_CRASH_LOAD)
OUTPOST_EXPORT int outpost_plugin_v1(struct outpost_negotiate *n);
OUTPOST_EXPORT int outpost_plugin_v1(struct outpost_negotiate *n)
{
	(void)n;
	(void)execute;
	raise(SIGSEGV);
	return 0;
}

#elif defined(VARIANT_HANG_LOAD)
OUTPOST_EXPORT int outpost_plugin_v1(struct outpost_negotiate *n);
OUTPOST_EXPORT int outpost_plugin_v1(struct outpost_negotiate *n)
{
	(void)n;
	(void)execute;
	for (;;)
		pause();
	return 0;
}

#else
#if defined(VARIANT_NEW_MINOR)
#undef OUTPOST_ABI_MINOR
#define OUTPOST_ABI_MINOR 7 /* "built against a newer SDK" */
#define NAME "new_minor"
#define TYPE "new_minor.run"
#elif defined(VARIANT_DUP_NAME)
#define NAME "testkit" /* testkit.so is already there */
#define TYPE "dup_name.run"
#elif defined(VARIANT_DUP_TYPE)
#define NAME "dup_type"
#define TYPE "testkit.run" /* served by testkit.so already */
#elif defined(VARIANT_INIT_FAIL)
#define NAME "init_fail"
#define TYPE "init_fail.run"
#define INIT init_fail
static int init_fail(outpost_ctx *ctx, const char *config, size_t len, void **state)
{
	(void)config;
	(void)len;
	(void)state;
	return outpost_fail(ctx, OUTPOST_ERR_INTERNAL, "cannot reach the license server");
}
#elif defined(VARIANT_BAD_SCHEMA)
#define NAME "bad_schema"
#define TYPE "bad_schema.run"
#define SCHEMA "{\"type\":\"object\",\"oneOf\":[]}"
#else
#error "unknown VARIANT"
#endif
#ifndef INIT
#define INIT NULL
#endif
#ifndef SCHEMA
#define SCHEMA NULL
#endif
static const struct outpost_task_type types[] = {OUTPOST_TASK_TYPE(TYPE, "runs", SCHEMA)};
OUTPOST_PLUGIN_DEFINE(.name = NAME, .version = "1.0", .types = types,
		      .n_types = OUTPOST_COUNT(types), .init = INIT, .execute = execute)
#endif
