/* SPDX-License-Identifier: Apache-2.0 */
/* Plugin discovery: safe files only, allowlist, out-of-process scan, cache, quarantine. */
#ifndef AG_DISCOVERY_H
#define AG_DISCOVERY_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "config.h"
#include "op.h"
#include "supervisor.h"

enum dc_state {
	DC_LOADED,	/* loadable, enabled, no conflict */
	DC_DISABLED,	/* not in plugins.enabled: never opened */
	DC_REFUSED,	/* unsafe file, or a duplicate name or task type */
	DC_FAILED,	/* opened and refused by the ABI checks or init */
	DC_QUARANTINED	/* crashed or hung the scanner: skipped until the file changes */
};

struct dc_plugin {
	char *file;	 /* full path */
	char *stem;	 /* file name without .so */
	enum dc_state state;
	char *reason;	 /* why, when not loaded */
	char *stage;	 /* load stage of a failure ("entry", "init", ...) */
	cJSON *descriptor; /* when the scan succeeded: name, version, abi, types... */
	bool cached;	 /* this run took it from the cache */
};

struct dc_result {
	struct dc_plugin *v;
	size_t n;
	size_t scanned; /* how many files a scan worker opened this time */
};

struct dc_options {
	const char *dir;
	const struct ag_config *cfg; /* enabled list, settings, scan timeout */
	const struct sv_options *sv; /* worker path and network settings for init */
	const char *cache_path;	     /* NULL: no cache */
	const char *only_stem;	     /* look at NAME.so only (plugin run's fast path) */
	bool check_only;	     /* file checks and allowlist, no scan: safe files are left
					DC_LOADED with no descriptor (the task worker loads them) */
};

/* Finds the plugins in DIR. Per-plugin problems land in the result; the call fails only when
 * the directory itself is unusable (missing, unsafe). */
op_rc dc_discover(const struct dc_options *opts, struct dc_result *out, struct op_error *err);
void dc_result_release(struct dc_result *r);

const char *dc_state_name(enum dc_state s);
/* The descriptor's name (or the stem) and its types as a JSON array (borrowed). */
const char *dc_plugin_name(const struct dc_plugin *p);
const cJSON *dc_plugin_types(const struct dc_plugin *p);

#endif
