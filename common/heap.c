/* SPDX-License-Identifier: Apache-2.0 */
#include "heap.h"

#include <malloc.h>

#define MMAP_THRESHOLD (4 * 1024 * 1024)
#define TRIM_THRESHOLD (64 * 1024 * 1024)

bool op_heap_retain(void)
{
	/* Setting either one also stops glibc's own adjustment of the two. */
	return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 &&
	       mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1;
}

void op_heap_release(void)
{
	/* Its result only says whether anything was released. */
	(void)malloc_trim(0);
}
