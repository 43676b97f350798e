/*
 * disc/system.c — Vmdcsystem: segments are anonymous private mappings from
 * the kernel, zero-filled, released with munmap, grown and shrunk in place
 * with mremap (without moving, as the discipline contract requires). The
 * default raw memory of Vmheap and of regions that name no better source.
 * A second, internal discipline (vm_dc_system_aligned) aligns new segments
 * to 64 KiB: Vmbest takes its small-block pages from it when the region's
 * discipline is Vmdcsystem (method/page.h).
 */
#include "../vmhdr.h"

#define SYSTEM_ALIGN ((size_t)64 << 10)

static void* system_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    (void)vm;
    (void)disc;
    if (csz == 0)
        return nsz ? vm_os_map(nsz) : NULL;
    if (nsz == 0)
        return vm_os_unmap(addr, csz) == 0 ? addr : NULL;
    return vm_os_remap_inplace(addr, csz, nsz) == 0 ? addr : NULL;
}

Vmdisc_t vm_dc_system = {system_memory, NULL, 0};

static void* system_aligned_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz,
                                   Vmdisc_t* disc)
{
    if (csz == 0)
        return nsz ? vm_os_map_aligned(nsz, SYSTEM_ALIGN) : NULL;
    return system_memory(vm, addr, csz, nsz, disc);
}

Vmdisc_t vm_dc_system_aligned = {system_aligned_memory, NULL, 0};
Vmdisc_t* Vmdcsystem = &vm_dc_system;
