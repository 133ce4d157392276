/* SPDX-License-Identifier: Apache-2.0 */
/* Loading one plugin .so inside a worker: dlopen, ABI negotiation, descriptor checks. */
#ifndef WK_PLUGIN_LOAD_H
#define WK_PLUGIN_LOAD_H

#include <cjson/cJSON.h>
#include <outpost/plugin.h>

#include "op.h"

struct wk_plugin {
	char *path;
	void *dl;
	struct outpost_plugin desc;	 /* zero-extended copy of the plugin's descriptor */
	struct outpost_task_type *types; /* zero-extended copies */
	cJSON **schemas;		 /* parsed params schemas (NULL where none) */
};

/* The stages a load can fail at, as FR_LOAD_ERROR and `plugins list` name them. */
#define WK_STAGE_LOAD "load"
#define WK_STAGE_ENTRY "entry"
#define WK_STAGE_NEGOTIATE "negotiate"
#define WK_STAGE_DESCRIPTOR "descriptor"
#define WK_STAGE_INIT "init"

/* Loads PATH and negotiates with HOST. On failure sets *stage and ERR (a full sentence that
 * names the file and both ABI versions where they matter). */
op_rc wk_plugin_load(const char *path, const struct outpost_host_api *host, struct wk_plugin *p,
		     const char **stage, struct op_error *err);
/* The descriptor as JSON: name, version, vendor, license, description, abi, types. */
cJSON *wk_plugin_describe(const struct wk_plugin *p);
/* The task type NAME, or -1. */
int wk_plugin_find_type(const struct wk_plugin *p, const char *name);
/* Frees the copies; never dlcloses (a plugin's libraries may have atexit handlers). */
void wk_plugin_release(struct wk_plugin *p);

#endif
