/*
 * segment.c — raw memory for methods: getting, resizing in place and giving
 * back discipline segments, and the region's segment table.
 *
 * Every segment starts with a Vmseg_t header (in the segment itself, so a
 * region over a user's buffer keeps its bookkeeping there). The table holds
 * the region's segments sorted by address: lookup is a binary search,
 * O(log n); insertion and removal shift the array, O(n), and happen only when
 * memory moves between the region and its discipline. The table lives inline
 * in the region for the first VM_INLINE_SEGS segments, then in a chunk of
 * discipline memory that doubles as needed.
 *
 * All functions here run with the region locked (or VM_TRUST).
 */
#include "vmhdr.h"

size_t vm_round(const Vmdisc_t* disc)
{
    return disc && disc->round ? disc->round : vm_os_pagesize();
}

size_t vm_round_size(size_t n, size_t r)
{
    if (n > SIZE_MAX - r)
        return 0;
    return (n + r - 1) / r * r;
}

/* Header at the first aligned address, then prefix, then data; a segment from
 * an unaligned buffer loses at most VM_ALIGN - 1 bytes at each end. */
size_t vm_seg_need(size_t prefix, size_t minsize)
{
    size_t fixed = sizeof(Vmseg_t) + vm_align_up(prefix, VM_ALIGN) + 2 * VM_ALIGN;
    if (minsize > VM_MAXSIZE)
        return 0;
    return fixed + vm_align_up(minsize, VM_ALIGN);
}

Vmseg_t* vm_seg_format(char* addr, size_t size, Vmdisc_t* disc, size_t prefix)
{
    char* last = addr + size;
    Vmseg_t* seg = (Vmseg_t*)vm_ptr_up(addr, VM_ALIGN);
    char* data = (char*)(seg + 1) + vm_align_up(prefix, VM_ALIGN);
    char* end = (char*)((uintptr_t)last & ~(uintptr_t)(VM_ALIGN - 1));
    if ((char*)(seg + 1) > last || data >= end)
        return NULL;
    seg->vm = NULL;
    seg->disc = disc;
    seg->addr = addr;
    seg->size = size;
    seg->data = data;
    seg->end = end;
    seg->mflags = 0;
    seg->mdata = NULL;
    return seg;
}

/* Index of the last segment whose addr <= p, or -1. */
static long seg_search(const Vmalloc_t* vm, const void* p)
{
    long lo = 0, hi = (long)vm->nsegs - 1, found = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if ((const char*)vm->segs[mid]->addr <= (const char*)p) {
            found = mid;
            lo = mid + 1;
        } else
            hi = mid - 1;
    }
    return found;
}

Vmseg_t* vm_seg_find(const Vmalloc_t* vm, const void* p)
{
    long i = seg_search(vm, p);
    if (i < 0)
        return NULL;
    Vmseg_t* seg = vm->segs[i];
    return (const char*)p < seg->addr + seg->size ? seg : NULL;
}

/* Double the table, moving it into a chunk from the region's discipline. */
static int seg_table_grow(Vmalloc_t* vm)
{
    Vmdisc_t* disc = vm->disc;
    size_t cap = vm->capsegs * 2;
    size_t size = vm_round_size(cap * sizeof(Vmseg_t*) + sizeof(void*), vm_round(disc));
    if (size == 0)
        return -1;
    char* chunk = disc->memoryf(vm, NULL, 0, size, disc);
    if (!chunk)
        return -1;
    Vmseg_t** segs = (Vmseg_t**)vm_ptr_up(chunk, sizeof(void*));
    memcpy(segs, vm->segs, vm->nsegs * sizeof(Vmseg_t*));
    if (vm->tabdisc)
        (void)vm->tabdisc->memoryf(vm, vm->tabaddr, vm->tabsize, 0, vm->tabdisc);
    vm->extent = vm->extent - vm->tabsize + size;
    vm->segs = segs;
    vm->capsegs = cap;
    vm->tabdisc = disc;
    vm->tabaddr = chunk;
    vm->tabsize = size;
    return 0;
}

int vm_seg_enter(Vmalloc_t* vm, Vmseg_t* seg)
{
    if (vm->nsegs == vm->capsegs && seg_table_grow(vm) < 0)
        return -1;
    long i = seg_search(vm, seg->addr) + 1;
    memmove(&vm->segs[i + 1], &vm->segs[i], (vm->nsegs - (size_t)i) * sizeof(Vmseg_t*));
    vm->segs[i] = seg;
    vm->nsegs += 1;
    vm->extent += seg->size;
    seg->vm = vm;
    vm_upkeep_grew(vm);
    return 0;
}

static void seg_remove(Vmalloc_t* vm, Vmseg_t* seg, size_t size)
{
    long i = seg_search(vm, seg->addr);
    memmove(&vm->segs[i], &vm->segs[i + 1], (vm->nsegs - (size_t)i - 1) * sizeof(Vmseg_t*));
    vm->nsegs -= 1;
    vm->extent -= size;
}

void vm_seg_unlink(Vmalloc_t* vm, Vmseg_t* seg) { seg_remove(vm, seg, seg->size); }

Vmseg_t* vm_seg_get(Vmalloc_t* vm, size_t minsize) { return vm_seg_get_from(vm, vm->disc, minsize); }

Vmseg_t* vm_seg_get_from(Vmalloc_t* vm, Vmdisc_t* disc, size_t minsize)
{
    size_t size = vm_round_size(vm_seg_need(0, minsize), vm_round(disc));
    /* Make room in the table first, so a segment is never held unrecorded. */
    if (size == 0 || (vm->nsegs == vm->capsegs && seg_table_grow(vm) < 0)) {
        vm_fault(vm, VM_NOMEM, (void*)minsize);
        return NULL;
    }
    char* addr = disc->memoryf(vm, NULL, 0, size, disc);
    Vmseg_t* seg = addr ? vm_seg_format(addr, size, disc, 0) : NULL;
    if (!seg || (size_t)(seg->end - seg->data) < minsize) {
        if (addr) /* a discipline that gave less than a segment's worth */
            (void)disc->memoryf(vm, addr, size, 0, disc);
        vm_fault(vm, VM_NOMEM, (void*)minsize);
        return NULL;
    }
    (void)vm_seg_enter(vm, seg); /* cannot fail: room was made above */
    return seg;
}

int vm_seg_put(Vmalloc_t* vm, Vmseg_t* seg)
{
    if (seg == vm->home)
        return -1;
    Vmdisc_t* disc = seg->disc;
    char* addr = seg->addr;
    size_t size = seg->size;
    seg_remove(vm, seg, size);
    if (disc->memoryf(vm, addr, size, 0, disc) != addr) {
        /* Refused: the header is untouched, so the segment is ours again. */
        (void)vm_seg_enter(vm, seg);
        return -1;
    }
    return 0;
}

int vm_seg_resize(Vmalloc_t* vm, Vmseg_t* seg, size_t minsize)
{
    if (minsize > VM_MAXSIZE)
        return -1;
    size_t lead = (size_t)(seg->data - seg->addr);
    size_t size = vm_round_size(lead + vm_align_up(minsize, VM_ALIGN) + VM_ALIGN,
                                vm_round(seg->disc));
    if (size == 0)
        return -1;
    if (size == seg->size)
        return 0;
    if (seg->disc->memoryf(vm, seg->addr, seg->size, size, seg->disc) != seg->addr)
        return -1;
    vm->extent = vm->extent - seg->size + size;
    seg->size = size;
    vm_upkeep_grew(vm);
    seg->end = (char*)((uintptr_t)(seg->addr + size) & ~(uintptr_t)(VM_ALIGN - 1));
    return 0;
}

void vm_seg_release_all(Vmalloc_t* vm)
{
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg != vm->home)
            (void)seg->disc->memoryf(vm, seg->addr, seg->size, 0, seg->disc);
    }
    vm->nsegs = 0;
    if (vm->tabdisc)
        (void)vm->tabdisc->memoryf(vm, vm->tabaddr, vm->tabsize, 0, vm->tabdisc);
    vm->tabdisc = NULL;
    vm->segs = vm->seginline;
    vm->capsegs = VM_INLINE_SEGS;
}
