/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the agent config (YAML through libyaml into the typed table) and secrets files. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct ag_config cfg;
	struct op_error err = {0};
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/outpost-fuzz-config.%ld.yaml", (long)getpid());
	f = fopen(path, "w");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	(void)ag_config_load(path, &cfg, &err);
	ag_config_release(&cfg);
	if (ag_config_defaults(&cfg, &err) == OP_OK) {
		(void)ag_config_load_secrets(path, &cfg, &err);
		ag_config_release(&cfg);
	}
	return 0;
}
