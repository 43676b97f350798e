/*
 * method/last.c — Vmlast, allocation where only the last block can be freed
 * or resized (paper §2.3.2): the method for phases of work whose memory all
 * goes at once, with vmclear().
 *
 * Algorithm. Each segment has a busy span [data, top): allocation bumps the
 * top of the current segment, padding it to the block's alignment (the
 * natural alignment of the rounded size, min(VM_ALIGN, largest power of two
 * dividing it), or more for vmalign). Sizes are rounded up to 8, at least 8.
 * The region remembers one block, the last one allocated, with the top its
 * segment had before it; freeing it restores that top (there is one level of
 * undo, as in AST's vmlast: the block before it does not become "last"), and
 * resizing it moves the top. When the current segment is full, the method
 * takes, in order: a spare segment (emptied by vmclear or left empty), the
 * current segment grown in place through the discipline, a new segment
 * (doubling from 64 KiB up to 1 MiB, or the block's size). The tail of a
 * segment left behind is lost until vmclear and counts as free.
 *
 * No per-block record exists, so vmsize() answers only for the last block
 * (-1 otherwise); vmaddr() gives the offset in the last block, or, for other
 * busy memory, the offset from the start of its segment's busy span; vmwalk()
 * reports each non-empty span as one block. Freeing or resizing another
 * address inside a span is refused (-1/NULL, EINVAL) without a fault; an
 * address outside every span is a bad address (VM_BADADDR).
 *
 * Bounds. Allocation, free and resize of the last block are O(1) plus a
 * discipline call when the region grows; freeing another block is
 * O(log segments). vmstat, vmwalk, vmdbcheck and vmcompact visit every
 * segment.
 */
#include "../vmhdr.h"

#define LAST_SPARE 1u                  /* seg->mflags: empty, on the spare list via mdata */
#define LAST_SEGMIN ((size_t)64 << 10) /* the first segment asked for */
#define LAST_SEGMAX ((size_t)1 << 20)  /* segments stop doubling here */

typedef struct last_s {
    Vmseg_t* cur;     /* the segment allocation bumps in; NULL: none yet */
    char* last;       /* the last block, in cur; NULL: none */
    size_t lastsize;  /* its usable size */
    char* lasttop;    /* cur's top before the last block and its padding */
    Vmseg_t* spare;   /* empty segments, lowest address first */
    size_t segsize;   /* bytes to ask for the next new segment */
} Last_t;

static inline Last_t* last_state(Vmalloc_t* vm) { return (Last_t*)vm_state(vm); }

static inline size_t last_round(size_t size) { return size <= 8 ? 8 : vm_align_up(size, 8); }

/* The alignment C requires of an object of n bytes (a multiple of 8). */
static inline size_t last_natural(size_t n)
{
    size_t low = n & (~n + 1);
    return low < VM_ALIGN ? low : VM_ALIGN;
}

/* The end of seg's busy span. A spare segment's mdata is its list link, and
 * a segment never used has mdata NULL; both have an empty span. */
static inline char* last_top(const Vmseg_t* seg)
{
    return (seg->mflags & LAST_SPARE) || !seg->mdata ? seg->data : (char*)seg->mdata;
}

static inline void last_settop(Vmseg_t* seg, char* top) { seg->mdata = top; }

static inline int last_empty(const Vmseg_t* seg) { return last_top(seg) == seg->data; }

/* Where n bytes aligned to a would go at the top of seg, or NULL. */
static char* last_place(const Vmseg_t* seg, size_t n, size_t a)
{
    char* top = last_top(seg);
    char* p = vm_ptr_up(top, a);
    if (p < top || p > seg->end || (size_t)(seg->end - p) < n)
        return NULL;
    return p;
}

/* Put seg, which must have an empty span, on the spare list in address
 * order. O(spares); spares exist only after vmclear or a move-away. */
static void last_spare_put(Last_t* st, Vmseg_t* seg)
{
    Vmseg_t** pp = &st->spare;
    while (*pp && *pp < seg)
        pp = (Vmseg_t**)&(*pp)->mdata;
    seg->mdata = *pp;
    seg->mflags |= LAST_SPARE;
    *pp = seg;
}

/* The first spare segment where n bytes aligned to a fit, taken off the list
 * with an empty span; NULL if none fits. */
static Vmseg_t* last_spare_take(Last_t* st, size_t n, size_t a)
{
    for (Vmseg_t** pp = &st->spare; *pp; pp = (Vmseg_t**)&(*pp)->mdata) {
        Vmseg_t* seg = *pp;
        if (last_place(seg, n, a)) {
            *pp = seg->mdata;
            seg->mflags &= ~LAST_SPARE;
            seg->mdata = NULL;
            return seg;
        }
    }
    return NULL;
}

/* Grow seg in place so that its usable space reaches at least want bytes.
 * Asks for a generous size first (the segment doubled, by at most
 * LAST_SEGMAX) so a run of small allocations does not call the discipline
 * each time, then for exactly want. 0, or -1 if the discipline cannot. */
static int last_extend(Vmalloc_t* vm, Vmseg_t* seg, size_t want)
{
    size_t have = (size_t)(seg->end - seg->data);
    size_t step = have < LAST_SEGMIN ? LAST_SEGMIN : have > LAST_SEGMAX ? LAST_SEGMAX : have;
    size_t generous = have + step;
    if (want > VM_MAXSIZE)
        return -1;
    if (generous > want && vm_seg_resize(vm, seg, generous) == 0)
        return 0;
    return vm_seg_resize(vm, seg, want);
}

/* A new segment that holds n bytes aligned to a: the doubling size if the
 * discipline has it, else just enough. NULL with the VM_NOMEM fault set. */
static Vmseg_t* last_newseg(Vmalloc_t* vm, Last_t* st, size_t n, size_t a)
{
    size_t need = n + (a > VM_ALIGN ? a - VM_ALIGN : 0); /* data is VM_ALIGN-aligned */
    size_t fixed = vm_seg_need(0, 0);
    size_t want = st->segsize ? st->segsize : LAST_SEGMIN;
    size_t minsize = want > fixed ? want - fixed : 0;
    if (minsize < need)
        minsize = need;
    Vmseg_t* seg = vm_seg_get(vm, minsize);
    if (!seg && need < minsize)
        seg = vm_seg_get(vm, need);
    if (!seg)
        return NULL;
    vm->fault = 0; /* a first refusal above was answered by the second try */
    if (want < LAST_SEGMAX)
        st->segsize = want * 2;
    return seg;
}

/* Find room for n bytes aligned to a and make its segment current; returns
 * the address, not yet committed. extend says whether growing the current
 * segment in place is worth a try (a resize that already tried says no). A
 * current segment left behind empty becomes a spare. NULL with the VM_NOMEM
 * fault set. */
static char* last_find(Vmalloc_t* vm, Last_t* st, size_t n, size_t a, int extend)
{
    Vmseg_t* cur = st->cur;
    char* p;
    if (cur && (p = last_place(cur, n, a)))
        return p;
    Vmseg_t* seg = last_spare_take(st, n, a);
    if (!seg && cur && extend) {
        char* top = last_top(cur);
        size_t want = (size_t)(vm_ptr_up(top, a) - cur->data) + n;
        if (vm_ptr_up(top, a) >= top && last_extend(vm, cur, want) == 0 &&
            (p = last_place(cur, n, a)))
            return p;
    }
    if (!seg && !(seg = last_newseg(vm, st, n, a)))
        return NULL;
    if (cur && last_empty(cur) && !(cur->mflags & LAST_SPARE))
        last_spare_put(st, cur);
    st->cur = seg;
    st->last = NULL; /* the last block, if any, was not in seg */
    return last_place(seg, n, a);
}

/* Make [p, p + n) in the current segment the last block. */
static void last_commit(Last_t* st, char* p, size_t n)
{
    st->lasttop = last_top(st->cur);
    last_settop(st->cur, p + n);
    st->last = p;
    st->lastsize = n;
}

/* Is addr inside some segment's busy span? */
static int last_in_span(Vmalloc_t* vm, const void* addr)
{
    Vmseg_t* seg = vm_seg_find(vm, addr);
    return seg && (const char*)addr >= seg->data && (const char*)addr < last_top(seg);
}

/* Reject an address that is not the last block: a refusal inside a busy
 * span, a bad address elsewhere. */
static void last_reject(Vmalloc_t* vm, void* addr)
{
    if (last_in_span(vm, addr))
        errno = EINVAL;
    else
        vm_fault(vm, VM_BADADDR, addr);
}

/* A fresh or cleared region: every segment, home included, is a spare. */
static int last_init(Vmalloc_t* vm)
{
    Last_t* st = last_state(vm);
    st->cur = NULL;
    st->last = NULL;
    st->lastsize = 0;
    st->lasttop = NULL;
    st->spare = NULL;
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        seg->mflags = LAST_SPARE;
        seg->mdata = st->spare;
        st->spare = seg;
    }
    return 0;
}

static void* last_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    Last_t* st = last_state(vm);
    size_t n = last_round(size);
    size_t a = last_natural(n);
    if (align > VM_MAXSIZE) {
        errno = EINVAL;
        return NULL;
    }
    if (align > a)
        a = align;
    char* p = last_find(vm, st, n, a, 1);
    if (!p)
        return NULL;
    last_commit(st, p, n);
    vm_busy_add(vm, n);
    return p;
}

static int last_free(Vmalloc_t* vm, void* block)
{
    Last_t* st = last_state(vm);
    if (!st->last || block != st->last) {
        last_reject(vm, block);
        return -1;
    }
    last_settop(st->cur, st->lasttop);
    st->last = NULL;
    vm_busy_sub(vm, st->lastsize);
    return 0;
}

/* Resize the last block. In place when its address suits the new size's
 * alignment and the segment has (or can grow to) the room. Otherwise, when
 * type allows a move: first lower in the same segment (down to the top before
 * the block, which also fixes a misaligned address without spending space),
 * else in another segment; the old block's space is then given back to its
 * segment. The content moves with VM_RSCOPY; the core zeroes for VM_RSCLEAR. */
static void* last_resize(Vmalloc_t* vm, void* block, size_t size, int type)
{
    Last_t* st = last_state(vm);
    if (!st->last || block != st->last) {
        last_reject(vm, block);
        return NULL;
    }
    Vmseg_t* cur = st->cur;
    char* b = block;
    size_t old = st->lastsize, n = last_round(size), a = last_natural(n);
    if ((uintptr_t)b % a == 0) {
        if ((size_t)(cur->end - b) >= n ||
            (last_extend(vm, cur, (size_t)(b - cur->data) + n) == 0 &&
             (size_t)(cur->end - b) >= n)) {
            last_settop(cur, b + n);
            st->lastsize = n;
            vm_busy_resize(vm, old, n);
            return b;
        }
    }
    if (!(type & (VM_RSMOVE | VM_RSCOPY)))
        return NULL;
    size_t keep = old < n ? old : n;
    char* q = vm_ptr_up(st->lasttop, a);
    if (q >= st->lasttop && q <= cur->end && (size_t)(cur->end - q) >= n) {
        if (type & VM_RSCOPY)
            memmove(q, b, keep);
        last_settop(cur, q + n);
        st->last = q;
        st->lastsize = n;
        vm_busy_resize(vm, old, n);
        return q;
    }
    char* oldtop = st->lasttop;
    q = last_find(vm, st, n, a, 0);
    if (!q)
        return NULL;
    if (type & VM_RSCOPY)
        memcpy(q, b, keep);
    last_settop(cur, oldtop); /* cur is no longer current: drop the old block */
    if (last_empty(cur))
        last_spare_put(st, cur);
    last_commit(st, q, n);
    vm_busy_resize(vm, old, n);
    return q;
}

static long last_addr(Vmalloc_t* vm, void* addr)
{
    Last_t* st = last_state(vm);
    char* p = addr;
    if (st->last && p >= st->last && p < st->last + st->lastsize)
        return (long)(p - st->last);
    Vmseg_t* seg = vm_seg_find(vm, p);
    if (seg && p >= seg->data && p < last_top(seg))
        return (long)(p - seg->data);
    return -1;
}

static long last_size(Vmalloc_t* vm, void* block)
{
    Last_t* st = last_state(vm);
    return st->last && block == st->last ? (long)st->lastsize : -1;
}

/* Every span empties and every segment becomes a spare. */
static int last_clear(Vmalloc_t* vm) { return last_init(vm); }

/* Give back every segment but home whose span is empty (the current one too:
 * allocation then starts over from a spare or a new segment), and shrink the
 * lost tails of the other non-current segments. The spare list is rebuilt
 * from what stays. */
static int last_compact(Vmalloc_t* vm)
{
    Last_t* st = last_state(vm);
    st->spare = NULL;
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        int empty = last_empty(seg);
        if (empty && seg != vm->home) {
            seg->mflags &= ~LAST_SPARE;
            seg->mdata = NULL;
            if (vm_seg_put(vm, seg) == 0) {
                if (seg == st->cur)
                    st->cur = NULL;
                continue;
            }
        } else if (!empty && seg != st->cur && seg != vm->home)
            (void)vm_seg_resize(vm, seg, (size_t)(last_top(seg) - seg->data));
        if (empty && seg != st->cur) {
            seg->mflags |= LAST_SPARE;
            seg->mdata = st->spare;
            st->spare = seg;
        }
    }
    if (vm->nsegs <= 1)
        st->segsize = 0; /* an emptied region starts small again */
    return 0;
}

static int last_stat(Vmalloc_t* vm, Vmstat_t* st)
{
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        char* top = last_top(seg);
        size_t span = (size_t)(top - seg->data), room = (size_t)(seg->end - top);
        if (room) {
            st->n_free += 1;
            st->s_free += room;
            if (room > st->m_free)
                st->m_free = room;
        }
        if (span > st->m_busy)
            st->m_busy = span;
    }
    return 0;
}

static int last_walk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        char* top = last_top(seg);
        if (top > seg->data) {
            int r = visit(vm, seg->data, (size_t)(top - seg->data), vm->disc, arg);
            if (r)
                return r;
        }
    }
    return 0;
}

static int last_check(Vmalloc_t* vm)
{
    Last_t* st = last_state(vm);
    int bad = 0;
    size_t spans = 0, nspare = 0;
    if (vm->nsegs > vm->capsegs)
        return 1;
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg->mflags & LAST_SPARE) {
            nspare++;
            continue;
        }
        char* top = last_top(seg);
        if (top < seg->data || top > seg->end || (uintptr_t)top % 8 != 0) {
            bad++;
            continue;
        }
        spans += (size_t)(top - seg->data);
    }
    /* The spare list: segments of the table, marked, in address order. */
    size_t n = 0;
    for (Vmseg_t* seg = st->spare; seg; seg = seg->mdata) {
        if (n == nspare || vm_seg_find(vm, seg) != seg || !(seg->mflags & LAST_SPARE) ||
            (seg->mdata && (Vmseg_t*)seg->mdata <= seg)) {
            bad++;
            break;
        }
        n++;
    }
    if (n != nspare)
        bad++;
    Vmseg_t* cur = st->cur;
    if (cur && (vm_seg_find(vm, cur) != cur || (cur->mflags & LAST_SPARE)))
        return bad + 1; /* nothing below can be trusted */
    if (st->last) {
        char* top = cur ? last_top(cur) : NULL;
        if (!cur || st->lasttop < cur->data || st->lasttop > st->last ||
            (uintptr_t)st->last % 8 != 0 || st->lastsize < 8 || st->lastsize % 8 != 0 ||
            st->last > top || (size_t)(top - st->last) != st->lastsize)
            bad++;
        if (vm->n_busy == 0 || vm->s_busy < st->lastsize)
            bad++;
    }
    if (vm->s_busy > spans || vm->s_busy < 8 * vm->n_busy || (vm->n_busy == 0 && spans != 0) ||
        vm->max_busy < vm->s_busy)
        bad++;
    return bad;
}

Vmethod_t vm_last_method = {
    .name = "last",
    .id = VM_MTLAST,
    .statesize = sizeof(Last_t),
    .initf = last_init,
    .allocf = last_alloc,
    .freef = last_free,
    .resizef = last_resize,
    .addrf = last_addr,
    .sizef = last_size,
    .clearf = last_clear,
    .compactf = last_compact,
    .statf = last_stat,
    .walkf = last_walk,
    .checkf = last_check,
};

Vmethod_t* Vmlast = &vm_last_method;
