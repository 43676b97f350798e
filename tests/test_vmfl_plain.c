/*
 * test_vmfl_plain.c — calls from code compiled without -DVMFL, for
 * test_vmfl: their trace lines must carry no file,line part, even right
 * after an instrumented call that the library refused.
 */
#include <stdlib.h>

#include "vmalloc.h"

#ifdef VMFL
#error "test_vmfl_plain.c must be compiled without VMFL"
#endif

void* plain_malloc(size_t n);
void plain_free(void* p);
void* plain_vmalloc(Vmalloc_t* vm, size_t n);

void* plain_malloc(size_t n) { return malloc(n); }
void plain_free(void* p) { free(p); }
void* plain_vmalloc(Vmalloc_t* vm, size_t n) { return vmalloc(vm, n); }
