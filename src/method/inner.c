/*
 * method/inner.c — what Vmdebug and Vmprofile share: the inner Vmbest region
 * their blocks come from, the placement of a method header in front of each
 * block, and the text of a call site.
 *
 * Design. A Vmdebug or Vmprofile region owns an inner Vmbest region
 * (vm_open_inner: VM_TRUST, since the outer region's lock already serialises
 * every call, and unlisted, so vmregion() names the outer region). The inner
 * region's discipline is the forwarder below: each segment it asks for is a
 * segment of the outer region (vm_seg_get), whose [data, end) the inner region
 * takes as its raw memory. So the outer region's segment table, extent,
 * vmsegment() and vmregion() cover every block, the user's discipline serves
 * all the memory, and closing the outer region releases the inner one with
 * it. Only the public API and the method contract are used on the inner
 * region: nothing here knows how Vmbest lays its blocks out.
 *
 * A block of the outer method is an inner block holding [header][user bytes]
 * [method's tail]. When the user block needs more alignment than VM_ALIGN,
 * the header sits further in, and the inner block starts with a lead marker
 * (a check word and the header's offset) so a walk of the inner region finds
 * the header again. Header check words never have bit 63 set, the marker's
 * word is keyed with it, so the two cannot be confused.
 *
 * Bounds: placement is one inner allocation; finding a header from an inner
 * block is O(1).
 */
#include "../vmhdr.h"

#define INNER_LEADTAG ((uint64_t)1 << 63)

typedef struct inner_mark_s {
    uint64_t check; /* vm_check(outer, mark, INNER_LEADTAG ^ lead) */
    uint64_t lead;  /* bytes from the inner block to the header */
} Inner_mark_t;

/* The discipline of an inner region: segments of the outer region. Called
 * with the outer region locked (inside one of its methods' calls), or from
 * vm_open_inner during the outer region's initf. */
static void* inner_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Vminner_t* in = (Vminner_t*)disc;
    Vmalloc_t* out = in->outer;
    (void)vm;
    if (csz == 0) {
        Vmseg_t* seg = vm_seg_get(out, nsz); /* faults the outer region with VM_NOMEM */
        return seg ? seg->data : NULL;
    }
    Vmseg_t* seg = vm_seg_find(out, addr);
    if (!seg || seg->data != (char*)addr)
        return NULL;
    if (nsz == 0)
        return vm_seg_put(out, seg) == 0 ? addr : NULL;
    return vm_seg_resize(out, seg, nsz) == 0 ? addr : NULL;
}

/* While the inner region is being made (inside vmopen of the outer one,
 * which is not yet anyone's and not locked), no memory is announced to the
 * outer discipline as vmopen would, so that its handler may ask to try
 * again. Later, the outer region's core announces it after unlocking. */
static int inner_except(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    Vminner_t* in = (Vminner_t*)disc;
    Vmdisc_t* od = in->outer->disc;
    (void)vm;
    if (type != VM_NOMEM || !in->opening || !od->exceptf)
        return 0;
    return od->exceptf(NULL, VM_NOMEM, obj, od);
}

int vm_inner_open(Vminner_t* in, Vmalloc_t* outer)
{
    in->disc.memoryf = inner_memory;
    in->disc.exceptf = inner_except;
    in->disc.round = 4 * VM_ALIGN;
    in->outer = outer;
    in->opening = 1;
    in->secret = outer->secret;
    in->vm = vm_open_inner(&in->disc, Vmbest);
    in->opening = 0;
    if (!in->vm)
        return -1;
    __atomic_store_n(&vm_sites_on, 1, __ATOMIC_RELAXED);
    vm_malloc_slow_stick(VM_SLOW_SITES);
    return 0;
}

/* Write a lead marker at ib for a header lead bytes in (lead >= 16). */
static void inner_mark(const Vminner_t* in, char* ib, size_t lead)
{
    Inner_mark_t* m = (Inner_mark_t*)ib;
    m->lead = lead;
    m->check = vm_check(in->outer, m, INNER_LEADTAG ^ lead);
}

char* vm_inner_place(Vminner_t* in, size_t hsize, size_t n, size_t align, size_t* lead)
{
    size_t slack = align > VM_ALIGN ? align + sizeof(Inner_mark_t) : 0;
    char* ib = vmalign(in->vm, hsize + n + slack, VM_ALIGN);
    *lead = 0;
    if (!ib || !slack)
        return ib;
    char* u = vm_ptr_up(ib + hsize, align);
    if (u - hsize != ib && (size_t)(u - hsize - ib) < sizeof(Inner_mark_t))
        u += align;
    *lead = (size_t)(u - hsize - ib);
    if (*lead)
        inner_mark(in, ib, *lead);
    return u - hsize;
}

char* vm_inner_place_lead(Vminner_t* in, size_t total, size_t align, size_t lead)
{
    char* ib = vmalign(in->vm, total, align);
    if (ib && lead)
        inner_mark(in, ib, lead);
    return ib;
}

char* vm_inner_head(const Vminner_t* in, char* ib, size_t ibsize)
{
    const Inner_mark_t* m = (const Inner_mark_t*)ib;
    if (ibsize >= sizeof *m && m->check == vm_check(in->outer, m, INNER_LEADTAG ^ m->lead)) {
        if (m->lead < sizeof *m || m->lead >= ibsize)
            return NULL;
        return ib + m->lead;
    }
    return ib;
}

char* vm_inner_find(const Vminner_t* in, const void* addr, size_t* ibsize)
{
    long off = vmaddr(in->vm, (void*)addr);
    if (off < 0)
        return NULL;
    char* ib = (char*)addr - off;
    long n = vmsize(in->vm, ib);
    if (n < 0)
        return NULL;
    *ibsize = (size_t)n;
    return ib;
}

void vm_inner_wipe(char* ib) { memset(ib, 0, sizeof(Inner_mark_t)); }

void vm_inner_close(Vminner_t* in)
{
    if (in->vm && in->vm->meth->closef)
        in->vm->meth->closef(in->vm);
}

int vm_inner_stat(Vminner_t* in, Vmstat_t* st)
{
    Vmstat_t is;
    if (vmstat(in->vm, &is) < 0)
        return -1;
    st->n_free = is.n_free;
    st->s_free = is.s_free;
    st->m_free = is.m_free;
    st->m_busy = is.m_busy;
    return 0;
}

int vm_inner_clear(Vminner_t* in, Vmvisit_f visit, void* arg)
{
    Vmalloc_t* out = in->outer;
    uint64_t fresh = out->secret;
    if (visit) {
        out->secret = in->secret;
        (void)vmwalk(in->vm, visit, arg);
        out->secret = fresh;
    }
    in->secret = fresh;
    return vmclear(in->vm);
}

char* vm_site_put(char* p, char* end, const char* file, int line, const void* caller)
{
    if (file) {
        while (*file && p < end - 24)
            *p++ = *file++;
        *p++ = ',';
        return vm_fmt_dec(p, line < 0 ? 0 : (size_t)line);
    }
    if (caller && end - p > 64) {
        const char* mod;
        uintptr_t off;
        return vm_os_symbol(caller, p, (size_t)(end - p) < 200 ? (size_t)(end - p) : 200, &mod,
                            &off);
    }
    *p++ = '<';
    *p++ = '>';
    *p++ = ',';
    *p++ = '0';
    return p;
}

char* vm_put_str(char* p, char* end, const char* s)
{
    while (*s && p < end)
        *p++ = *s++;
    return p;
}

char* vm_put_field(char* p, char* end, const char* key, size_t v)
{
    p = vm_put_str(p, end - 24, key);
    p = vm_fmt_dec(p, v);
    *p++ = ':';
    return p;
}
