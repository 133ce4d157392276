/* SPDX-License-Identifier: Apache-2.0 */
/* dlopen + negotiation + descriptor validation, with errors that name file and versions. */
#include "plugin_load.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

static bool valid_plugin_name(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

/* "<plugin>.<verb>" style: [a-z0-9_-]+ '.' [a-z0-9_.-]+ */
static bool valid_type_name(const char *s)
{
	const char *dot;

	if (s == NULL || strlen(s) > 128)
		return false;
	dot = strchr(s, '.');
	if (dot == NULL || dot == s || dot[1] == '\0')
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' ||
		      *s == '-' || *s == '.'))
			return false;
	return true;
}

/* For a missing v1 entry: look for other majors to say which one the plugin was built for. */
static int other_major(void *dl)
{
	char sym[32];

	for (int m = 0; m <= 16; m++) {
		if (m == OUTPOST_ABI_MAJOR)
			continue;
		snprintf(sym, sizeof(sym), "outpost_plugin_v%d", m);
		if (dlsym(dl, sym) != NULL)
			return m;
	}
	return -1;
}

static const char *opt(const char *s)
{
	return s ? s : "";
}

op_rc wk_plugin_load(const char *path, const struct outpost_host_api *host, struct wk_plugin *p,
		     const char **stage, struct op_error *err)
{
	struct outpost_negotiate neg;
	outpost_plugin_entry_fn entry;
	const struct outpost_plugin *d;
	char schema_err[512];
	op_rc rc = OP_OK;
	size_t copy;
	int major;

	memset(p, 0, sizeof(*p));
	p->path = strdup(path);
	if (p->path == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	*stage = WK_STAGE_LOAD;
	p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (p->dl == NULL) {
		rc = op_fail(err, OP_EINVAL, "cannot load plugin %s: %s", path, dlerror());
		goto out;
	}
	*stage = WK_STAGE_ENTRY;
	*(void **)&entry = dlsym(p->dl, OUTPOST_PLUGIN_ENTRY_NAME);
	if (entry == NULL) {
		major = other_major(p->dl);
		if (major >= 0)
			rc = op_fail(err, OP_EINVAL,
				     "plugin %s was built for plugin ABI %d, this agent speaks ABI %d.%d "
				     "(it exports outpost_plugin_v%d, not %s): rebuild it against "
				     "the Outpost SDK for ABI %d",
				     path, major, OUTPOST_ABI_MAJOR, OUTPOST_ABI_MINOR, major,
				     OUTPOST_PLUGIN_ENTRY_NAME, OUTPOST_ABI_MAJOR);
		else
			rc = op_fail(err, OP_EINVAL,
				     "plugin %s does not export %s: it is not an Outpost plugin, or "
				     "not one for plugin ABI %d (this agent speaks ABI %d.%d)",
				     path, OUTPOST_PLUGIN_ENTRY_NAME, OUTPOST_ABI_MAJOR,
				     OUTPOST_ABI_MAJOR, OUTPOST_ABI_MINOR);
		goto out;
	}
	*stage = WK_STAGE_NEGOTIATE;
	memset(&neg, 0, sizeof(neg));
	neg.size = sizeof(neg);
	neg.host_major = OUTPOST_ABI_MAJOR;
	neg.host_minor = OUTPOST_ABI_MINOR;
	neg.host = host;
	if (entry(&neg) != 0) {
		rc = op_fail(err, OP_EINVAL,
			     "plugin %s refused to load with this agent's plugin ABI %d.%d", path,
			     OUTPOST_ABI_MAJOR, OUTPOST_ABI_MINOR);
		goto out;
	}
	*stage = WK_STAGE_DESCRIPTOR;
	d = neg.plugin;
	if (d == NULL || d->size < OUTPOST_PLUGIN_MIN_SIZE) {
		rc = op_fail(err, OP_EINVAL,
			     "plugin %s returned %s descriptor (size %u, at least %zu needed)", path,
			     d == NULL ? "no" : "a truncated", d ? d->size : 0,
			     (size_t)OUTPOST_PLUGIN_MIN_SIZE);
		goto out;
	}
	if (d->abi_major != OUTPOST_ABI_MAJOR) {
		rc = op_fail(err, OP_EINVAL,
			     "plugin %s declares plugin ABI %u.%u but exports the ABI %d entry "
			     "point; this agent speaks ABI %d.%d",
			     path, d->abi_major, d->abi_minor, OUTPOST_ABI_MAJOR, OUTPOST_ABI_MAJOR,
			     OUTPOST_ABI_MINOR);
		goto out;
	}
	if (d->abi_minor > OUTPOST_ABI_MINOR) {
		rc = op_fail(err, OP_EINVAL,
			     "plugin %s was built for plugin ABI %u.%u, newer than this agent's "
			     "ABI %d.%d: upgrade the agent, or rebuild the plugin against an SDK "
			     "for ABI %d.%d",
			     path, d->abi_major, d->abi_minor, OUTPOST_ABI_MAJOR, OUTPOST_ABI_MINOR,
			     OUTPOST_ABI_MAJOR, OUTPOST_ABI_MINOR);
		goto out;
	}
	copy = d->size < sizeof(p->desc) ? d->size : sizeof(p->desc);
	memcpy(&p->desc, d, copy);
	p->desc.size = (uint32_t)copy;
	if (!valid_plugin_name(p->desc.name)) {
		rc = op_fail(err, OP_EINVAL,
			     "plugin %s has an invalid name \"%s\": use 1 to 64 of [a-z0-9_-]",
			     path, opt(p->desc.name));
		goto out;
	}
	if (p->desc.execute == NULL) {
		rc = op_fail(err, OP_EINVAL, "plugin %s (%s) has no execute callback", path,
			     p->desc.name);
		goto out;
	}
	if (p->desc.n_types == 0 || p->desc.n_types > 256 || p->desc.types == NULL) {
		rc = op_fail(err, OP_EINVAL, "plugin %s (%s) declares no task types", path,
			     p->desc.name);
		goto out;
	}
	p->types = calloc(p->desc.n_types, sizeof(*p->types));
	p->schemas = calloc(p->desc.n_types, sizeof(*p->schemas));
	if (p->types == NULL || p->schemas == NULL) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < p->desc.n_types; i++) {
		/* The array's elements have the plugin's struct size, which may be smaller (older
		 * minor) or larger (newer) than ours: step by the first element's size. */
		uint32_t stride = p->desc.types[0].size;
		const struct outpost_task_type *t =
			(const void *)((const char *)p->desc.types + (size_t)i * stride);
		size_t tsz = t->size < sizeof(*t) ? t->size : sizeof(*t);

		if (t->size != stride ||
		    t->size < offsetof(struct outpost_task_type, name) + sizeof(t->name)) {
			rc = op_fail(err, OP_EINVAL, "plugin %s (%s): task type %u has size %u",
				     path, p->desc.name, i, t->size);
			goto out;
		}
		memcpy(&p->types[i], t, tsz);
		if (!valid_type_name(p->types[i].name)) {
			rc = op_fail(err, OP_EINVAL,
				     "plugin %s (%s): invalid task type name \"%s\": use "
				     "\"<plugin>.<verb>\" with [a-z0-9_.-]",
				     path, p->desc.name, opt(p->types[i].name));
			goto out;
		}
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(p->types[j].name, p->types[i].name) == 0) {
				rc = op_fail(err, OP_EINVAL,
					     "plugin %s (%s) declares task type %s twice", path,
					     p->desc.name, p->types[i].name);
				goto out;
			}
		if (p->types[i].params_schema != NULL) {
			p->schemas[i] = cJSON_Parse(p->types[i].params_schema);
			if (p->schemas[i] == NULL) {
				rc = op_fail(err, OP_EINVAL,
					     "plugin %s (%s): the params schema of %s is not valid JSON",
					     path, p->desc.name, p->types[i].name);
				goto out;
			}
			if (op_schema_check(p->schemas[i], schema_err, sizeof(schema_err)) < 0) {
				rc = op_fail(err, OP_EINVAL,
					     "plugin %s (%s): the params schema of %s is invalid: %s",
					     path, p->desc.name, p->types[i].name, schema_err);
				goto out;
			}
		}
	}
out:
	if (rc != OP_OK)
		wk_plugin_release(p);
	return rc;
}

cJSON *wk_plugin_describe(const struct wk_plugin *p)
{
	cJSON *o = cJSON_CreateObject(), *types;
	char abi[32];

	if (o == NULL)
		return NULL;
	snprintf(abi, sizeof(abi), "%u.%u", p->desc.abi_major, p->desc.abi_minor);
	cJSON_AddStringToObject(o, "name", p->desc.name);
	cJSON_AddStringToObject(o, "version", opt(p->desc.version));
	cJSON_AddStringToObject(o, "vendor", opt(p->desc.vendor));
	cJSON_AddStringToObject(o, "license", opt(p->desc.license));
	cJSON_AddStringToObject(o, "description", opt(p->desc.description));
	cJSON_AddStringToObject(o, "abi", abi);
	types = cJSON_AddArrayToObject(o, "types");
	for (uint32_t i = 0; types && i < p->desc.n_types; i++) {
		cJSON *t = cJSON_CreateObject();

		if (t == NULL)
			break;
		cJSON_AddStringToObject(t, "name", p->types[i].name);
		cJSON_AddStringToObject(t, "description", opt(p->types[i].description));
		if (p->schemas[i])
			cJSON_AddItemToObject(t, "params_schema", cJSON_Duplicate(p->schemas[i], true));
		cJSON_AddItemToArray(types, t);
	}
	return o;
}

int wk_plugin_find_type(const struct wk_plugin *p, const char *name)
{
	for (uint32_t i = 0; i < p->desc.n_types; i++)
		if (strcmp(p->types[i].name, name) == 0)
			return (int)i;
	return -1;
}

void wk_plugin_release(struct wk_plugin *p)
{
	if (p->schemas)
		for (uint32_t i = 0; i < p->desc.n_types; i++)
			cJSON_Delete(p->schemas[i]);
	free(p->schemas);
	free(p->types);
	free(p->path);
	memset(p, 0, sizeof(*p));
}

