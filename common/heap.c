/* SPDX-License-Identifier: Apache-2.0 */
#include "heap.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* glibc's largest dynamic mmap threshold: blocks up to it come from the heap. */
#define MMAP_THRESHOLD (32 * 1024 * 1024)
#define MIN_KEEP ((size_t)64 * 1024 * 1024)
#define BLOCK ((size_t)16 * 1024 * 1024)

static bool retained;

bool op_heap_retain(size_t keep)
{
	if (keep < MIN_KEEP)
		keep = MIN_KEEP;
	if (keep > INT32_MAX)
		keep = INT32_MAX;
	/* Setting either one also stops glibc's own adjustment of the two. */
	retained = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 &&
		   mallopt(M_TRIM_THRESHOLD, (int)keep) == 1;
	return retained;
}

static void prepare(size_t bytes, bool touch)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0, cap;
	void *fixed[8], **blocks = fixed;

	if (!retained || bytes < page)
		return;
	/* In blocks under the mmap threshold, so that they come from the heap and go back to it;
	 * all held until the last is populated, so that each is fresh heap. */
	cap = (bytes + BLOCK - 1) / BLOCK;
	if (cap > sizeof(fixed) / sizeof(fixed[0]) &&
	    (blocks = malloc(cap * sizeof(*blocks))) == NULL)
		return;
	for (size_t left = bytes; left > 0 && n < cap; n++) {
		size_t size = left < BLOCK ? left : BLOCK;
		uintptr_t start, end;

		blocks[n] = malloc(size);
		if (blocks[n] == NULL)
			break;
		start = ((uintptr_t)blocks[n] + page - 1) & ~(uintptr_t)(page - 1);
		end = ((uintptr_t)blocks[n] + size) & ~(uintptr_t)(page - 1);
#ifdef MADV_POPULATE_WRITE
		if (end > start)
			(void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#endif
		/* A write a page: what a first write from the program costs after the madvise. */
		for (uintptr_t a = start; touch && a < end; a += page)
			*(volatile char *)a = 0;
		left -= size;
	}
	while (n > 0)
		free(blocks[--n]);
	if (blocks != fixed)
		free(blocks);
}

void op_heap_prepare(size_t bytes)
{
	prepare(bytes, false);
}

void op_heap_prepare_idle(size_t bytes)
{
	prepare(bytes, true);
}

void op_heap_prepare_json(size_t text_bytes)
{
	if (text_bytes >= 16 * 1024 && text_bytes <= SIZE_MAX / 8)
		op_heap_prepare(8 * text_bytes);
}

void op_heap_release(void)
{
	/* Its result only says whether anything was released. */
	(void)malloc_trim(0);
}
