/* SPDX-License-Identifier: Apache-2.0 */
/* Heap pages faulted in ahead of the work that needs them, kept for the next large document,
 * and given back when idle. */
#ifndef OP_HEAP_H
#define OP_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* glibc gives freed memory back to the kernel as soon as more than 128 KiB lie free at the
 * top of the heap, and serves blocks over 128 KiB with an mmap of their own. A process that
 * handles one large document after another (the agent a task's result, the server a
 * completion) then faults in every page of every document again: ~10 us a page on a VM,
 * ~8 ms for a 300 KB result parsed into a tree. After op_heap_retain(KEEP) glibc keeps up to
 * KEEP (at least 64 MiB) of freed heap and serves blocks of up to 32 MiB from it. False when
 * the allocator did not take the settings (a sanitizer's): nothing changed, which is harmless,
 * and op_heap_prepare() then does nothing. */
bool op_heap_retain(size_t keep);
/* Faults in BYTES of heap in one madvise(MADV_POPULATE_WRITE) a block (~0.8 us a page instead
 * of a fault's ~10 us) and frees them into the kept heap, where the next allocations find
 * them. Pages already there cost a page-table walk. Best effort: it needs op_heap_retain()
 * first, and Linux 5.14 for MADV_POPULATE_WRITE. */
void op_heap_prepare(size_t bytes);
/* op_heap_prepare(), and then a write to each page: for a process with time on its hands (a
 * spare worker waiting for its task, `plugin run` while its worker loads). Where the kernel's
 * page tables are shadowed by a hypervisor's (this project's CI VMs), a page's first write
 * after the madvise still costs ~3 us, paid here instead of by the work that needs it. */
void op_heap_prepare_idle(size_t bytes);
/* Gives the freed heap back to the kernel: for a process that has gone idle (jemalloc does
 * the same after its decay time). */
void op_heap_release(void);

/* op_heap_prepare() for parsing TEXT_BYTES of JSON into a cJSON tree, when it is large (16 KiB
 * and over): the tree, its strings and what is printed from it take about 8 bytes for each
 * byte of text. */
void op_heap_prepare_json(size_t text_bytes);

#endif
