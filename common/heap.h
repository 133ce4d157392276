/* SPDX-License-Identifier: Apache-2.0 */
/* Keeping freed heap for the next large document, and giving it back when idle. */
#ifndef OP_HEAP_H
#define OP_HEAP_H

#include <stdbool.h>

/* glibc gives freed memory back to the kernel as soon as more than 128 KiB lie free at the
 * top of the heap, and serves blocks over 128 KiB with an mmap of their own. A process that
 * handles one large document after another (the agent a task's result, the server a
 * completion) then faults in every page of every document again: ~10 us a page on a VM,
 * ~8 ms for a 300 KB result parsed into a tree. After op_heap_retain() glibc keeps up to
 * 64 MiB of freed heap and serves blocks of up to 4 MiB from it. False when the allocator
 * did not take the settings (a sanitizer's allocator): nothing changed, which is harmless. */
bool op_heap_retain(void);
/* Gives the freed heap back to the kernel: for a process that has gone idle (jemalloc does
 * the same after its decay time). */
void op_heap_release(void);

#endif
