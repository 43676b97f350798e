/*
 * disc/heap.c — Vmdcheap: segments are blocks of the Vmheap region, exactly
 * the paper's Figure 2. Growing or shrinking a segment is vmresize() of the
 * block without moving it (type 0), because the region has pointers into it.
 */
#include "../vmhdr.h"

static void* heap_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    (void)vm;
    (void)disc;
    if (csz == 0)
        return vmalloc(Vmheap, nsz);
    if (nsz == 0)
        return vmfree(Vmheap, addr) >= 0 ? addr : NULL;
    return vmresize(Vmheap, addr, nsz, 0);
}

Vmdisc_t vm_dc_heap = {heap_memory, NULL, 0};
Vmdisc_t* Vmdcheap = &vm_dc_heap;
