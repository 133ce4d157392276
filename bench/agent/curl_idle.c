/* SPDX-License-Identifier: Apache-2.0 */
/* The idle-memory floor: a C program that made one HTTPS request with libcurl + OpenSSL, then
 * sleeps. Usage: curl_idle URL CA_FILE SECONDS */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

int main(int argc, char **argv)
{
	CURL *h;
	CURLcode rc;

	if (argc < 4) {
		fprintf(stderr, "usage: curl_idle URL CA_FILE SECONDS\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, argv[1]);
	curl_easy_setopt(h, CURLOPT_CAINFO, argv[2]);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		fprintf(stderr, "curl_idle: %s\n", curl_easy_strerror(rc));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	sleep((unsigned)strtoul(argv[3], NULL, 10));
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return 0;
}
