/* SPDX-License-Identifier: Apache-2.0 */
/* The throughput ceiling for a fresh process per task: posix_spawn + wait of a libc-only
 * binary, back to back. Usage: spawn_rate BINARY COUNT; prints spawns per second. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv)
{
	struct timespec a, b;
	char *args[2];
	long n;

	if (argc < 3) {
		fprintf(stderr, "usage: spawn_rate BINARY COUNT\n");
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	args[0] = argv[1];
	args[1] = NULL;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		pid_t pid;
		int st;

		if (posix_spawn(&pid, argv[1], NULL, NULL, args, environ) != 0)
			return 1;
		waitpid(pid, &st, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", (double)n / ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9));
	return 0;
}
