/* SPDX-License-Identifier: Apache-2.0 */
/* What a fork server per plugin would pay for a fresh process per task: fork + _exit + wait of
 * a process that has dlopen'ed PLUGIN, back to back (docs/performance.md, "The agent").
 * Usage: fork_rate PLUGIN.so COUNT; prints forks per second. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec a, b;
	long n;

	if (argc < 3) {
		fprintf(stderr, "usage: fork_rate PLUGIN.so COUNT\n");
		return 2;
	}
	if (dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) == NULL) {
		fprintf(stderr, "fork_rate: %s\n", dlerror());
		return 1;
	}
	n = strtol(argv[2], NULL, 10);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		int st;

		if (pid < 0)
			return 1;
		if (pid == 0)
			_exit(0);
		waitpid(pid, &st, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", (double)n / ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9));
	return 0;
}
