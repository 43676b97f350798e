/*
 * fig2_heapmem.c — the paper's Figure 2 as a program: heapmem(), the
 * memory-obtaining function of Vmdcheap, written by the application and used
 * as the memoryf of its own discipline. A Vmbest region opened over it takes
 * its segments from Vmheap as ordinary blocks, so Vmheap's statistics show
 * the region's memory coming and going.
 */
#include <stdio.h>
#include <string.h>

#include "vmalloc.h"

/* Figure 2, verbatim. Like the paper's, it uses neither vm nor disc. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
void* heapmem(Vmalloc_t* vm, void* addr,
            size_t csz, size_t nsz, Vmdisc_t* disc)
{   if(csz == 0)
    return vmalloc(Vmheap,nsz);
  else if(nsz == 0)
    return vmfree(Vmheap,addr) >= 0 ? addr : (void*)0;
  else return vmresize(Vmheap,addr,nsz,0);
}
#pragma GCC diagnostic pop

int main(void)
{
    Vmdisc_t disc = {heapmem, NULL, 0};
    Vmstat_t heap0, heap1, heap2, st;
    int bad = 0;

    /* Print first: when libvmalloc is the program's malloc too, stdio's
     * buffer comes from Vmheap, and it must be there before heap0 is taken. */
    printf("Figure 2: a region whose segments are Vmheap blocks (heapmem)\n");
    vmstat(Vmheap, &heap0);
    Vmalloc_t* vm = vmopen(&disc, Vmbest, 0);
    if (!vm) {
        printf("fig2: vmopen over heapmem failed\n");
        return 1;
    }
    char* blocks[100];
    for (int i = 0; i < 100; ++i) {
        blocks[i] = vmalloc(vm, 1000 + (size_t)i * 100);
        memset(blocks[i], i, 1000);
    }
    vmstat(vm, &st);
    vmstat(Vmheap, &heap1);
    printf("region over heapmem: %zu blocks, %zu bytes busy, arena %zu bytes in %zu segment(s)\n",
           st.n_busy, st.s_busy, st.extent, st.n_seg);
    printf("Vmheap meanwhile: %zu -> %zu blocks, %zu -> %zu bytes busy\n", heap0.n_busy,
           heap1.n_busy, heap0.s_busy, heap1.s_busy);
    /* The region's segments are Vmheap blocks, and the region is found from
     * any of its blocks. */
    void* seg = vmsegment(vm, blocks[50]);
    printf("block 50 is in region %s, in segment %p, a Vmheap block of %ld bytes\n",
           vmregion(blocks[50]) == vm ? "vm" : "?", seg, vmsize(Vmheap, seg));
    bad |= vmregion(blocks[50]) != vm || vmsize(Vmheap, seg) <= 0;
    bad |= heap1.s_busy < heap0.s_busy + st.s_busy;

    for (int i = 0; i < 100; ++i)
        bad |= blocks[i][999] != (char)i;
    vmclose(vm);
    vmstat(Vmheap, &heap2);
    printf("after vmclose: Vmheap has %zu blocks, %zu bytes busy\n", heap2.n_busy, heap2.s_busy);
    bad |= heap2.n_busy != heap0.n_busy || heap2.s_busy != heap0.s_busy;

    if (bad) {
        printf("fig2: a check failed\n");
        return 1;
    }
    printf("fig2: every segment came from Vmheap through heapmem and went back on vmclose\n");
    return 0;
}
