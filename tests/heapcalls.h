/*
 * heapcalls.h — the heap calls of tests that run in every build: malloc()
 * and friends when the library provides them (VMALLOC_MALLOC_ON), else the
 * same calls on Vmheap, so the sanitizer builds (whose malloc is the
 * sanitizer's) drive the region path instead.
 */
#ifndef HEAPCALLS_H
#define HEAPCALLS_H

#include "vmalloc.h"

#include <stdlib.h>

#ifdef VMALLOC_MALLOC_ON
#define A_ALLOC(n) malloc(n)
#define A_RESIZE(p, n) realloc(p, n)
#define A_FREE(p) free(p)
#else
#define A_ALLOC(n) vmalloc(Vmheap, n)
#define A_RESIZE(p, n) vmresize(Vmheap, p, n, VM_RSCOPY)
#define A_FREE(p) vmfree(Vmheap, p)
#endif

#endif /* HEAPCALLS_H */
