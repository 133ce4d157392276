/* SPDX-License-Identifier: Apache-2.0 */
/* What a worker would cost linked like the agent: libcurl + OpenSSL + libyaml + cJSON. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <yaml.h>

int main(int argc, char **argv)
{
	(void)argv;
	/* Referenced so the linker keeps every library; never true when spawned. */
	if (argc > 99)
		return curl_version() != NULL && OpenSSL_version(0) != NULL &&
		       yaml_get_version_string() != NULL && cJSON_Version() != NULL;
	return 0;
}
