/*
 * scope.c — scoped heaps after librcd: a per-thread stack of heaps managed
 * with the call stack (vmenter/vmleave, VM_SUBHEAP), escape and import of
 * blocks between heaps, heap switching, transactional sub-heaps, the global
 * heap, heaps owned by structures, and destructors attached to blocks. Also
 * the method behind every such heap, Vmscope.
 *
 * Vmscope (the method). Blocks are bumped out of chunks, each block behind a
 * 16-byte header {usable size | flags, check word}; the check word mixes the
 * header's address, the size word, the chunk's generation and a process
 * secret, so a pointer that is not a live block start is refused without
 * walking anything. A chunk counts its live blocks: freeing the last block
 * laid rolls the chunk's top back, and a chunk whose count drops to zero is
 * reset (its generation bumped, which invalidates every old header) or given
 * back. Blocks over SCOPE_LARGE bytes get a segment of their own. A heap's
 * home segment (where the region struct lives) holds no block, so a heap's
 * whole content can change owner by moving its chunk segments into another
 * region's segment table: that is how a transaction commits, in O(chunks),
 * every address kept. Chunks carry no owner in their headers (the check word
 * is region-independent) for the same reason.
 *
 * Memory. Chunks come from a discipline whose per-thread cache keeps a
 * bounded number of freed segments of each small power-of-two size, and each
 * thread keeps up to SCOPE_HEAPCACHE left heaps, reset but open, with their
 * first chunk. So vmenter + a small vmnew + vmleave in the steady state is a
 * pop, a bump and a reset: no system call, no lock. A sub-heap is private to
 * its thread: the owner changes it without the lock, except its segment
 * table, which vmregion() reads from any thread. What is kept is bounded per
 * thread (SCOPE_CACHEBYTES of chunks, SCOPE_HEAPCACHE heaps), so memory stays flat;
 * a thread's caches and any heaps it never left go at its exit.
 *
 * Moving blocks. vmescape and vmimport copy: the block gets a new address in
 * the target heap (returned, like realloc's) and the old one is freed; cost
 * O(size). A block with a segment of its own (over SCOPE_LARGE bytes) moves
 * without copying: its segment changes region and the address is kept.
 * vmtxn_commit keeps every address (the chunks change region). librcd keeps
 * addresses on escape by building heaps over malloc (its page says so); here
 * heaps stay regions of contiguous chunks, and a result made of several linked
 * blocks is built in a transactional sub-heap or directly in the parent.
 *
 * Errors (a message on fd 2, -1/NULL with errno; abort when VMSCOPE_DEBUG is
 * set or the library is built with VMALLOC_SCOPE_DEBUG): using a sub-heap of
 * another thread, freeing into a sub-heap that is not current nor an
 * ancestor, leaving a heap that is not a sub-heap or not current, escaping
 * from the bottom heap, vmclose of a scoped heap. Debug mode also fills new
 * blocks with 0xa0 and freed ones with 0xfe (librcd's patterns) and ends each
 * large block at a guard page (mprotect'ed; unprotected before the segment
 * goes back to the discipline's cache or is resized).
 */
#include "vmhdr.h"

#include <stdio.h>
#include <stdlib.h>

#define SCOPE_HDR ((size_t)16)              /* block header bytes */
#define SCOPE_LARGE ((size_t)1024)          /* bigger blocks get a segment of their own */
#define SCOPE_CHUNK0 ((size_t)4096)         /* raw bytes of a heap's first chunk */
#define SCOPE_CHUNKMAX ((size_t)64 << 10)   /* chunks double up to this */
#define SCOPE_CLASSES 5                     /* cached sizes: 4, 8, 16, 32, 64 KiB */
#define SCOPE_CACHEBYTES ((size_t)512 << 10) /* chunk bytes one thread keeps */
#define SCOPE_HEAPCACHE 16                  /* left heaps one thread keeps */

#define SCOPE_FMT 1u   /* seg->mflags: a chunk (not the home segment) */
#define SCOPE_BIG 2u   /* the chunk holds one large block */
#define SCOPE_SPARE 4u /* an empty chunk its discipline refused to take back */
#define SCOPE_GUARD 8u /* debug mode: the last page of this big chunk is a guard page */

#define SCOPE_DTOR ((size_t)1)  /* size word: a destructor is attached */
#define SCOPE_REC ((size_t)2)   /* size word: a destructor record, not a user block */
#define SCOPE_FLAGS ((size_t)15)

enum { SCOPE_PLAIN, SCOPE_GLOBAL, SCOPE_SUB, SCOPE_TXN, SCOPE_OWNED, SCOPE_IDLE };
static const char* const scope_kindname[] = {"plain", "global", "sub", "txn", "owned", "left"};

typedef struct scope_thr_s Scopethr_t;
typedef struct scope_rec_s Scoperec_t;

/* The first bytes of every chunk's data. */
typedef struct scope_chunk_s {
    char* top;    /* blocks lie in [first, top); top <= seg->end */
    size_t live;  /* busy blocks and destructor records below top */
    uint64_t gen; /* bumped at every reset: older headers fail their check */
    Vmseg_t* next; /* the spare list (SCOPE_SPARE) */
} Scopechunk_t;

#define SCOPE_FIRST vm_align_up(sizeof(Scopechunk_t), 16)

/* A destructor: a record block in the block's heap. */
struct scope_rec_s {
    Scoperec_t* next; /* the heap's records, newest first */
    void* block;
    void (*fn)(void*);
};

/* The method state of a heap. */
typedef struct scope_s {
    Vmseg_t* cur;        /* the chunk allocation bumps in, or NULL */
    Vmseg_t* keep;       /* the chunk a reset keeps, or NULL */
    Vmseg_t* spare;      /* empty chunks kept because their discipline refused them */
    size_t next;         /* raw bytes of the next chunk */
    int kind;            /* SCOPE_* */
    int closing;         /* scope.c itself is closing it: VM_CLOSE is allowed */
    Vmalloc_t* parent;   /* sub/txn: the heap current when it was entered; owned: where opened */
    Scopethr_t* owner;   /* sub/txn: the thread whose stack holds it */
    Scoperec_t* dtors;   /* destructors, newest first */
    void* nogrow;        /* a large block whose segment could not grow in place */
    Vmalloc_t* kids;     /* owned heaps opened in this one */
    Vmalloc_t* sib;      /* the next owned heap of the same parent */
} Scope_t;

/* One thread's stack and caches; lives in memory mapped for it. */
struct scope_thr_s {
    Vmalloc_t* cur; /* the current heap; never NULL once made */
    int dead;       /* the thread is exiting: no caching any more */
    int nheap;
    Vmalloc_t* heaps[SCOPE_HEAPCACHE];
    size_t cached; /* bytes in chunks[] */
    void* chunks[SCOPE_CLASSES]; /* freed segments by size class, linked through their first word */
};

static inline Scope_t* scope_state(Vmalloc_t* vm) { return (Scope_t*)vm_state(vm); }
static inline Scopechunk_t* scope_chunk(const Vmseg_t* seg) { return (Scopechunk_t*)seg->data; }
static inline char* scope_first(const Vmseg_t* seg) { return seg->data + SCOPE_FIRST; }
/* Where blocks of seg must end: its end, or its guard page. */
static inline char* scope_end(const Vmseg_t* seg)
{
    return (seg->mflags & SCOPE_GUARD) ? seg->end - vm_os_pagesize() : seg->end;
}

static uint64_t scope_secret; /* set before the first heap exists */

static inline uint64_t scope_check(const void* hdr, size_t word, uint64_t gen)
{
    /* One multiply: the fields are xor'ed at different rotations so that no
     * two of them cancel, the secret keeps the result unpredictable. */
    uint64_t x = (uint64_t)(uintptr_t)hdr ^ ((uint64_t)word << 40 | (uint64_t)word >> 24) ^
                 (gen << 17 | gen >> 47) ^ scope_secret;
    x *= 0x9E3779B97F4A7C15ull;
    return (x ^ (x >> 31)) | 1; /* never 0: 0 marks a freed header */
}

static inline size_t scope_hword(const char* hdr)
{
    size_t w;
    memcpy(&w, hdr, sizeof w);
    return w;
}
static inline uint64_t scope_hcheck(const char* hdr)
{
    uint64_t c;
    memcpy(&c, hdr + 8, sizeof c);
    return c;
}
static inline void scope_hset(char* hdr, size_t word, uint64_t check)
{
    memcpy(hdr, &word, sizeof word);
    memcpy(hdr + 8, &check, sizeof check);
}
static inline size_t scope_usable(size_t word) { return word & ~SCOPE_FLAGS; }

/* ---- debug mode and messages ---------------------------------------------- */

#ifdef VMALLOC_SCOPE_DEBUG
static int scope_debug = 1;
#else
static int scope_debug = -1; /* -1: VMSCOPE_DEBUG not read yet */
#endif

static int scope_debugging(void)
{
    int d = __atomic_load_n(&scope_debug, __ATOMIC_RELAXED);
    if (d < 0) {
        const char* s = getenv("VMSCOPE_DEBUG");
        d = s && *s && strcmp(s, "0") != 0;
        __atomic_store_n(&scope_debug, d, __ATOMIC_RELAXED);
    }
    return d;
}

/* "vmalloc: CALL: WHAT heap=0x..(KIND)" on fd 2, errno EINVAL; abort in
 * debug mode. Writes without allocating (it may run with a heap locked). */
static void scope_error(const char* call, const char* what, Vmalloc_t* vm)
{
    char buf[256], *p = buf, *end = buf + sizeof buf - 48;
    const char* parts[] = {"vmalloc: ", call, ": ", what};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; ++i)
        for (const char* s = parts[i]; *s && p < end; ++s)
            *p++ = *s;
    if (vm) {
        memcpy(p, ": heap=", 7);
        p = vm_fmt_hex(p + 7, (uintptr_t)vm);
        if (vm->meth == &vm_scope_method) {
            const char* k = scope_kindname[scope_state(vm)->kind];
            *p++ = '(';
            while (*k)
                *p++ = *k++;
            *p++ = ')';
        }
    }
    *p++ = '\n';
    (void)vm_os_write(2, buf, (size_t)(p - buf));
    errno = EINVAL;
    if (scope_debugging())
        vm_os_abort();
}

/* ---- the thread's record and its chunk cache ------------------------------- */

static __thread Scopethr_t* scope_me_p __attribute__((tls_model("initial-exec")));
static pthread_key_t scope_key;
static pthread_once_t scope_once = PTHREAD_ONCE_INIT;
static void scope_thread_exit(void* arg);

static void scope_init_once(void)
{
    scope_secret = vm_os_random();
    (void)pthread_key_create(&scope_key, scope_thread_exit);
    (void)scope_debugging();
}

/* The calling thread's record, made on first use; NULL only when no memory. */
static Scopethr_t* scope_me(void)
{
    Scopethr_t* t = scope_me_p;
    if (t)
        return t;
    pthread_once(&scope_once, scope_init_once);
    t = vm_os_map(vm_round_size(sizeof *t, vm_os_pagesize()));
    if (!t)
        return NULL;
    scope_me_p = t;
    (void)pthread_setspecific(scope_key, t);
    return t;
}

/* The size class of a raw segment size, or -1 if it is not cached. */
static inline int scope_class(size_t size)
{
    for (int c = 0; c < SCOPE_CLASSES; ++c)
        if (size == SCOPE_CHUNK0 << c)
            return c;
    return -1;
}

/* The discipline of every scoped heap: the calling thread's cache of freed
 * segments, then the kernel. Segments are page multiples (round 0). */
static void* scope_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    (void)vm;
    (void)disc;
    Scopethr_t* t = scope_me_p;
    if (csz == 0) {
        int c = scope_class(nsz);
        if (c >= 0 && t && t->chunks[c]) {
            void* p = t->chunks[c];
            memcpy(&t->chunks[c], p, sizeof(void*));
            t->cached -= nsz;
            return p;
        }
        return vm_os_map(nsz);
    }
    if (scope_debug > 0)
        (void)vm_os_protect(addr, csz, 1); /* a guard page must not go back guarded */
    if (nsz == 0) {
        int c = scope_class(csz);
        if (c >= 0 && t && !t->dead && t->cached + csz <= SCOPE_CACHEBYTES) {
            memcpy(addr, &t->chunks[c], sizeof(void*));
            t->chunks[c] = addr;
            t->cached += csz;
            return addr;
        }
        return vm_os_unmap(addr, csz) == 0 ? addr : NULL;
    }
    return vm_os_remap_inplace(addr, csz, nsz) == 0 ? addr : NULL;
}

/* Scoped heaps may be closed only by scope.c: a vmclose() would pull a heap
 * from under a thread's stack or a parent's list. */
static int scope_except(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    (void)obj;
    (void)disc;
    if (type == VM_CLOSE && vm && vm->meth == &vm_scope_method && !scope_state(vm)->closing) {
        scope_error("vmclose", "a scoped heap is closed by vmleave, vmtxn_*, vmheap_close", vm);
        return -1;
    }
    return 0;
}

static Vmdisc_t scope_disc = {scope_memory, scope_except, 0};

/* ---- the method -------------------------------------------------------------- */


/* Lock two heaps, the lower address first (two threads moving blocks
 * between the same two shared heaps in opposite directions must not
 * deadlock). Returns a bit mask for scope_unlock2. */
static int scope_lock2(Vmalloc_t* a, Vmalloc_t* b)
{
    if (a > b) {
        Vmalloc_t* x = a;
        a = b;
        b = x;
    }
    int mask = vm_region_lock(a); /* a first: the operands of | have no order */
    return mask | vm_region_lock(b) << 1;
}
static void scope_unlock2(Vmalloc_t* a, Vmalloc_t* b, int mask)
{
    if (a > b) {
        Vmalloc_t* x = a;
        a = b;
        b = x;
    }
    vm_region_unlock(b, mask & 2);
    vm_region_unlock(a, mask & 1);
}

static inline int scope_is_stacked(const Scope_t* st)
{
    return st->kind == SCOPE_SUB || st->kind == SCOPE_TXN;
}

/* Is vm the current heap of thread t or one of its ancestors? */
static int scope_on_chain(const Scopethr_t* t, const Vmalloc_t* vm)
{
    for (Vmalloc_t* h = t->cur; h; h = scope_state(h)->parent)
        if (h == vm)
            return 1;
    return 0;
}

/* Is vm a private heap of another thread? Reads only what never changes
 * while the heap is open (its owner), so another thread may ask safely. */
static inline int scope_foreign(Vmalloc_t* vm)
{
    const Scopethr_t* o = scope_state(vm)->owner;
    return o && o != scope_me_p;
}

/* May the calling thread use vm (for allocating: any heap of its own stack;
 * for freeing: the current heap or an ancestor)? 0, or -1 after a message.
 * The owner is checked first: another thread's sub-heap is not looked into. */
static int scope_thread_ok(Vmalloc_t* vm, const char* call, int freeing)
{
    if (scope_foreign(vm)) {
        scope_error(call, "a sub-heap of another thread", vm);
        return -1;
    }
    Scope_t* st = scope_state(vm);
    if (!scope_is_stacked(st))
        return st->kind == SCOPE_IDLE ? (scope_error(call, "the heap was left", vm), -1) : 0;
    Scopethr_t* t = scope_me_p;
    if (freeing && t->cur != vm && !scope_on_chain(t, vm)) {
        scope_error(call, "freeing into a sub-heap that is neither current nor an ancestor", vm);
        return -1;
    }
    return 0;
}

static int scope_init(Vmalloc_t* vm)
{
    pthread_once(&scope_once, scope_init_once);
    Scope_t* st = scope_state(vm);
    st->next = SCOPE_CHUNK0;
    return 0;
}

/* Generations are unique in the process (threads take them in ranges), so
 * a header left from any earlier use of the same memory never passes. */
static uint64_t scope_gen_pool = 1;
static __thread uint64_t scope_gen_next __attribute__((tls_model("initial-exec")));
static __thread uint64_t scope_gen_end __attribute__((tls_model("initial-exec")));

static inline uint64_t scope_newgen(void)
{
    if (scope_gen_next == scope_gen_end) {
        scope_gen_next = __atomic_fetch_add(&scope_gen_pool, (uint64_t)1 << 20, __ATOMIC_RELAXED);
        scope_gen_end = scope_gen_next + ((uint64_t)1 << 20);
    }
    return scope_gen_next++;
}

/* Make seg an empty chunk of a new generation. */
static void scope_chunk_format(Vmseg_t* seg, unsigned big)
{
    Scopechunk_t* ch = scope_chunk(seg);
    ch->top = scope_first(seg);
    ch->live = 0;
    ch->gen = scope_newgen();
    ch->next = NULL;
    seg->mflags = SCOPE_FMT | big;
}

/* A chunk whose [first, end) has room for need bytes: a spare one, else a
 * new segment (doubling up to SCOPE_CHUNKMAX, or just big enough when big). */
static Vmseg_t* scope_chunk_get(Vmalloc_t* vm, size_t need, unsigned big)
{
    Scope_t* st = scope_state(vm);
    for (Vmseg_t **pp = &st->spare, *s; (s = *pp); pp = &scope_chunk(s)->next) {
        if ((size_t)(s->end - scope_first(s)) >= need) {
            *pp = scope_chunk(s)->next;
            scope_chunk_format(s, big);
            return s;
        }
    }
    size_t over = vm_seg_need(0, 0) + SCOPE_FIRST;
    size_t raw = big ? need + over : st->next;
    if (!big && raw < need + over)
        raw = vm_round_size(need + over, SCOPE_CHUNK0);
    Vmseg_t* seg = vm_seg_get(vm, raw - vm_seg_need(0, 0));
    if (!seg)
        return NULL;
    if (!big && st->next < SCOPE_CHUNKMAX)
        st->next *= 2;
    scope_chunk_format(seg, big);
    return seg;
}

/* seg holds no live block: keep it for reuse, or give it back. */
static void scope_chunk_empty(Vmalloc_t* vm, Vmseg_t* seg)
{
    Scope_t* st = scope_state(vm);
    Scopechunk_t* ch = scope_chunk(seg);
    if (seg == st->cur || seg == st->keep) {
        scope_chunk_format(seg, 0);
        return;
    }
    if (vm_seg_put(vm, seg) == 0)
        return;
    scope_chunk_format(seg, 0);
    seg->mflags |= SCOPE_SPARE;
    ch->next = st->spare;
    st->spare = seg;
}

/* Lay a block of n usable bytes aligned to a at seg's top, or NULL if it
 * does not fit. Padding becomes a freed filler block so that the chunk stays
 * walkable. */
static char* scope_place(Vmalloc_t* vm, Vmseg_t* seg, size_t n, size_t a, size_t flags)
{
    Scopechunk_t* ch = scope_chunk(seg);
    char* top = ch->top;
    char* b = vm_ptr_up(top + SCOPE_HDR, a);
    char* end = scope_end(seg);
    if (b > end || (size_t)(end - b) < n)
        return NULL;
    char* hdr = b - SCOPE_HDR;
    if (hdr > top)
        scope_hset(top, (size_t)(hdr - top) - SCOPE_HDR, 0);
    scope_hset(hdr, n | flags, scope_check(hdr, n | flags, ch->gen));
    ch->top = b + n;
    ch->live += 1;
    (void)vm;
    return b;
}

/* Debug mode: make the last page of big chunk seg a guard page and move its
 * top so that the next block of n bytes aligned to a ends right before it
 * (an overflow then faults at once). 0, or -1 if it cannot be done. */
static int scope_guard(Vmseg_t* seg, size_t n, size_t a)
{
    size_t page = vm_os_pagesize();
    char* g = (char*)((uintptr_t)seg->end & ~(uintptr_t)(page - 1)) - page;
    char* b = (char*)((uintptr_t)(g - n) & ~(uintptr_t)(a - 1));
    char* hdr = b - SCOPE_HDR;
    Scopechunk_t* ch = scope_chunk(seg);
    if (g + page != seg->end || hdr < ch->top || vm_os_protect(g, page, 0) < 0)
        return -1;
    if (hdr > ch->top) /* then by at least SCOPE_HDR: both are 16-aligned */
        scope_hset(ch->top, (size_t)(hdr - ch->top) - SCOPE_HDR, 0); /* a filler */
    ch->top = hdr;
    return 0;
}

static void* scope_alloc_flags(Vmalloc_t* vm, size_t size, size_t align, size_t flags)
{
    Scope_t* st = scope_state(vm);
    size_t n = size ? vm_align_up(size, 16) : 16;
    size_t a = align > 16 ? align : 16;
    char* b = NULL;
    if (n + a - 16 > SCOPE_LARGE) {
        int guard = scope_debug > 0 && vm->disc == &scope_disc;
        size_t page = vm_os_pagesize();
        Vmseg_t* seg = scope_chunk_get(vm, n + a + (guard ? 2 * page : 0), SCOPE_BIG);
        if (!seg)
            return NULL;
        if (guard && scope_guard(seg, n, a) == 0)
            seg->mflags |= SCOPE_GUARD;
        b = scope_place(vm, seg, n, a, flags);
    } else {
        if (st->cur)
            b = scope_place(vm, st->cur, n, a, flags);
        if (!b) {
            Vmseg_t* seg = scope_chunk_get(vm, n + a, 0);
            if (!seg)
                return NULL;
            Vmseg_t* old = st->cur;
            st->cur = seg;
            if (!st->keep)
                st->keep = seg;
            if (old && scope_chunk(old)->live == 0)
                scope_chunk_empty(vm, old);
            b = scope_place(vm, seg, n, a, flags);
        }
    }
    if (!(flags & SCOPE_REC)) {
        vm_busy_add(vm, n);
        if (scope_debug > 0)
            memset(b, 0xa0, n);
    }
    return b;
}

static void* scope_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    if (scope_thread_ok(vm, "vmalloc", 0) < 0)
        return NULL;
    return scope_alloc_flags(vm, size, align, 0);
}

/* The header of busy block b of vm (a record too when rec), and its chunk;
 * NULL if b is not one. */
static char* scope_find(Vmalloc_t* vm, const void* b, Vmseg_t** segp, int rec)
{
    if ((uintptr_t)b % 16 != 0)
        return NULL;
    Vmseg_t* seg = vm_seg_find(vm, b);
    if (!seg || !(seg->mflags & SCOPE_FMT))
        return NULL;
    Scopechunk_t* ch = scope_chunk(seg);
    const char* p = b;
    if (p < scope_first(seg) + SCOPE_HDR || p >= ch->top)
        return NULL;
    char* hdr = (char*)p - SCOPE_HDR;
    size_t w = scope_hword(hdr);
    if (scope_hcheck(hdr) != scope_check(hdr, w, ch->gen) || ((w & SCOPE_REC) && !rec) ||
        scope_usable(w) > (size_t)(ch->top - p))
        return NULL;
    *segp = seg;
    return hdr;
}

/* Free the block at hdr in seg without running its destructor. */
static void scope_release(Vmalloc_t* vm, Vmseg_t* seg, char* hdr)
{
    Scopechunk_t* ch = scope_chunk(seg);
    size_t w = scope_hword(hdr);
    size_t n = scope_usable(w);
    char* b = hdr + SCOPE_HDR;
    scope_hset(hdr, n, 0);
    if (!(w & SCOPE_REC)) {
        vm_busy_sub(vm, n);
        if (scope_debug > 0)
            memset(b, 0xfe, n);
    }
    if (b + n == ch->top)
        ch->top = hdr;
    if (--ch->live == 0) {
        if (seg->mflags & SCOPE_BIG) {
            if (vm_seg_put(vm, seg) == 0)
                return;
            seg->mflags &= ~SCOPE_BIG;
        }
        scope_chunk_empty(vm, seg);
    }
}

/* Unlink and return block b's destructor record, or NULL. */
static Scoperec_t* scope_rec_take(Scope_t* st, const void* b)
{
    for (Scoperec_t** pp = &st->dtors; *pp; pp = &(*pp)->next) {
        if ((*pp)->block == b) {
            Scoperec_t* r = *pp;
            *pp = r->next;
            return r;
        }
    }
    return NULL;
}

/* Drop a record block (already unlinked). */
static void scope_rec_free(Vmalloc_t* vm, Scoperec_t* r)
{
    Vmseg_t* seg;
    char* hdr = scope_find(vm, r, &seg, 1);
    if (hdr)
        scope_release(vm, seg, hdr);
}

static int scope_free(Vmalloc_t* vm, void* block)
{
    Scope_t* st = scope_state(vm);
    if (scope_thread_ok(vm, "vmfree", 1) < 0)
        return -1;
    Vmseg_t* seg;
    char* hdr = scope_find(vm, block, &seg, 0);
    if (!hdr) {
        vm_fault(vm, VM_BADADDR, block);
        return -1;
    }
    if (scope_hword(hdr) & SCOPE_DTOR) {
        /* Run the destructor first, the block still valid; it runs with the
         * heap locked, so it must not call this heap's functions. */
        Scoperec_t* r = scope_rec_take(st, block);
        if (r) {
            if (r->fn)
                r->fn(block);
            scope_rec_free(vm, r);
        }
    }
    scope_release(vm, seg, hdr);
    return 0;
}

/* Move block (header hdr in seg) to a new block of size bytes in the same
 * heap, carrying its destructor; NULL if there is no memory. */
static void* scope_move_within(Vmalloc_t* vm, Vmseg_t* seg, char* hdr, size_t size, int type)
{
    size_t w = scope_hword(hdr);
    size_t old = scope_usable(w);
    char* b = hdr + SCOPE_HDR;
    char* p = scope_alloc_flags(vm, size, 0, w & SCOPE_DTOR);
    if (!p)
        return NULL;
    if (type & VM_RSCOPY)
        memcpy(p, b, old < size ? old : size);
    if (w & SCOPE_DTOR)
        for (Scoperec_t* r = scope_state(vm)->dtors; r; r = r->next)
            if (r->block == b)
                r->block = p;
    /* scope_alloc_flags may have made b's chunk no longer current, never freed it. */
    hdr = scope_find(vm, b, &seg, 0);
    if (hdr)
        scope_release(vm, seg, hdr);
    return p;
}

static void* scope_resize(Vmalloc_t* vm, void* block, size_t size, int type)
{
    if (scope_thread_ok(vm, "vmresize", 1) < 0)
        return NULL;
    Vmseg_t* seg;
    char* hdr = scope_find(vm, block, &seg, 0);
    if (!hdr) {
        vm_fault(vm, VM_BADADDR, block);
        return NULL;
    }
    Scopechunk_t* ch = scope_chunk(seg);
    size_t w = scope_hword(hdr), old = scope_usable(w);
    size_t n = vm_align_up(size, 16);
    char* b = block;
    int last = b + old == ch->top;
    if (n <= old && !last)
        return block;
    /* A grow in place the discipline refused is not asked again when the
     * core retries the call after VM_NOMEM: the move alone is retried. */
    Scope_t* st = scope_state(vm);
    int grow = last && (seg->mflags & SCOPE_BIG) && st->nogrow != block;
    if (grow && (seg->mflags & SCOPE_GUARD))
        seg->mflags &= ~SCOPE_GUARD; /* the discipline unprotects it before resizing */
    if (last && (n <= old || (size_t)(scope_end(seg) - b) >= n ||
                 (grow && vm_seg_resize(vm, seg, (size_t)(b - seg->data) + n) == 0))) {
        st->nogrow = NULL;
        size_t nw = n | (w & SCOPE_FLAGS);
        scope_hset(hdr, nw, scope_check(hdr, nw, ch->gen));
        ch->top = b + n;
        vm_busy_resize(vm, old, n);
        if (scope_debug > 0 && n > old)
            memset(b + old, 0xa0, n - old);
        return block;
    }
    if (!(type & (VM_RSMOVE | VM_RSCOPY)))
        return NULL;
    st->nogrow = grow ? block : NULL;
    void* p = scope_move_within(vm, seg, hdr, size, type);
    if (p)
        st->nogrow = NULL;
    return p;
}

/* Visit the blocks of seg in order: fn(hdr, arg) for every header below
 * top; stops at a non-zero answer. Bounded by the chunk. */
static int scope_each(const Vmseg_t* seg, int (*fn)(const Vmseg_t*, char*, void*), void* arg)
{
    const Scopechunk_t* ch = scope_chunk(seg);
    for (char* h = scope_first(seg); h < ch->top;) {
        size_t n = scope_usable(scope_hword(h));
        if (n > (size_t)(ch->top - h) - SCOPE_HDR)
            return -1; /* broken: a size that runs past the top */
        int r = fn(seg, h, arg);
        if (r)
            return r;
        h += SCOPE_HDR + n;
    }
    return 0;
}

static inline int scope_busy(const Vmseg_t* seg, const char* h, int rec)
{
    size_t w = scope_hword(h);
    return scope_hcheck(h) == scope_check(h, w, scope_chunk(seg)->gen) &&
           (rec || !(w & SCOPE_REC));
}

typedef struct {
    const char* addr;
    long off;
} Scopeaddr_t;

static int scope_addr_one(const Vmseg_t* seg, char* h, void* arg)
{
    Scopeaddr_t* q = arg;
    char* b = h + SCOPE_HDR;
    size_t n = scope_usable(scope_hword(h));
    if (q->addr >= b && q->addr < b + (n ? n : 1) && scope_busy(seg, h, 0)) {
        q->off = q->addr - b;
        return 1;
    }
    return q->addr < b + n ? 2 : 0;
}

static long scope_addrf(Vmalloc_t* vm, void* addr)
{
    if (scope_foreign(vm))
        return -1;
    Vmseg_t* seg = vm_seg_find(vm, addr);
    if (!seg || !(seg->mflags & SCOPE_FMT))
        return -1;
    Scopeaddr_t q = {addr, -1};
    (void)scope_each(seg, scope_addr_one, &q);
    return q.off;
}

static long scope_sizef(Vmalloc_t* vm, void* block)
{
    if (scope_foreign(vm))
        return -1;
    Vmseg_t* seg;
    char* hdr = scope_find(vm, block, &seg, 0);
    return hdr ? (long)scope_usable(scope_hword(hdr)) : -1;
}

/* Empty the heap: every chunk back but the kept one, which is reset; the
 * destructor records go with their chunks. Locked, or not yet visible. */
static void scope_reset(Vmalloc_t* vm)
{
    Scope_t* st = scope_state(vm);
    st->dtors = NULL;
    st->spare = NULL;
    st->cur = NULL;
    for (size_t i = vm->nsegs; i-- > 0;) {
        Vmseg_t* seg = vm->segs[i];
        if (seg == vm->home)
            continue;
        if (seg != st->keep && vm_seg_put(vm, seg) == 0)
            continue;
        scope_chunk_format(seg, 0);
        if (seg == st->keep)
            continue;
        seg->mflags |= SCOPE_SPARE;
        scope_chunk(seg)->next = st->spare;
        st->spare = seg;
    }
    st->cur = st->keep;
    st->next = SCOPE_CHUNK0 * 2;
    if (!st->keep)
        st->next = SCOPE_CHUNK0;
    vm->n_busy = vm->s_busy = vm->max_busy = 0;
}

/* vmclear: destructors run first, with the heap locked (see scope_free). */
static int scope_clear(Vmalloc_t* vm)
{
    Scope_t* st = scope_state(vm);
    while (st->dtors) {
        Scoperec_t* r = st->dtors;
        st->dtors = r->next;
        if (r->fn)
            r->fn(r->block);
    }
    scope_reset(vm);
    return 0;
}

static int scope_compact(Vmalloc_t* vm)
{
    Scope_t* st = scope_state(vm);
    Vmseg_t* s = st->spare;
    st->spare = NULL;
    while (s) {
        Vmseg_t* next = scope_chunk(s)->next;
        s->mflags &= ~SCOPE_SPARE;
        if (vm_seg_put(vm, s) < 0) {
            s->mflags |= SCOPE_SPARE;
            scope_chunk(s)->next = st->spare;
            st->spare = s;
        }
        s = next;
    }
    Vmseg_t* k = st->keep;
    if (k && k != st->cur && scope_chunk(k)->live == 0 && vm_seg_put(vm, k) == 0)
        st->keep = NULL;
    return 0;
}

typedef struct {
    Vmstat_t* st;
    size_t nfree, sfree;
} Scopestat_t;

static int scope_stat_one(const Vmseg_t* seg, char* h, void* arg)
{
    Scopestat_t* q = arg;
    size_t n = scope_usable(scope_hword(h));
    if (scope_busy(seg, h, 0)) {
        if (n > q->st->m_busy)
            q->st->m_busy = n;
    } else if (!scope_busy(seg, h, 1)) {
        q->st->n_free += 1;
        q->st->s_free += n;
        if (n > q->st->m_free)
            q->st->m_free = n;
    }
    return 0;
}

/* Another thread's sub-heap changes without its lock: its blocks are not
 * walked from here (vmstat, vmwalk, vmdbcheck see it as empty). */
static int scope_stat(Vmalloc_t* vm, Vmstat_t* st)
{
    if (scope_foreign(vm))
        return 0;
    Scopestat_t q = {st, 0, 0};
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (!(seg->mflags & SCOPE_FMT))
            continue;
        (void)scope_each(seg, scope_stat_one, &q);
        size_t tail = (size_t)(scope_end(seg) - scope_chunk(seg)->top);
        if (tail) {
            st->n_free += 1;
            st->s_free += tail;
            if (tail > st->m_free)
                st->m_free = tail;
        }
    }
    return 0;
}

typedef struct {
    Vmalloc_t* vm;
    Vmvisit_f visit;
    void* arg;
} Scopewalk_t;

static int scope_walk_one(const Vmseg_t* seg, char* h, void* arg)
{
    Scopewalk_t* q = arg;
    if (!scope_busy(seg, h, 0))
        return 0;
    return q->visit(q->vm, h + SCOPE_HDR, scope_usable(scope_hword(h)), q->vm->disc, q->arg);
}

static int scope_walk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    if (scope_foreign(vm))
        return 0;
    Scopewalk_t q = {vm, visit, arg};
    for (size_t i = 0; i < vm->nsegs; ++i) {
        if (!(vm->segs[i]->mflags & SCOPE_FMT))
            continue;
        int r = scope_each(vm->segs[i], scope_walk_one, &q);
        if (r)
            return r;
    }
    return 0;
}

typedef struct {
    size_t live, nbusy, sbusy;
} Scopecount_t;

static int scope_count_one(const Vmseg_t* seg, char* h, void* arg)
{
    Scopecount_t* q = arg;
    if (scope_busy(seg, h, 1)) {
        q->live += 1;
        if (!(scope_hword(h) & SCOPE_REC)) {
            q->nbusy += 1;
            q->sbusy += scope_usable(scope_hword(h));
        }
    }
    return 0;
}

/* Every chunk walks to its top exactly, its live count is what it holds, the
 * heap's accounting is the sum, cur/keep/spares are its own chunks, and every
 * destructor record names a busy block that says it has one. */
static int scope_checkf(Vmalloc_t* vm)
{
    if (scope_foreign(vm))
        return 0;
    Scope_t* st = scope_state(vm);
    int bad = 0;
    Scopecount_t all = {0, 0, 0};
    for (size_t i = 0; i < vm->nsegs; ++i) {
        Vmseg_t* seg = vm->segs[i];
        if (seg == vm->home || !(seg->mflags & SCOPE_FMT)) {
            bad += seg != vm->home;
            continue;
        }
        Scopechunk_t* ch = scope_chunk(seg);
        if (ch->top < scope_first(seg) || ch->top > scope_end(seg)) {
            bad += 1;
            continue;
        }
        Scopecount_t c = {0, 0, 0};
        if (scope_each(seg, scope_count_one, &c) != 0 || c.live != ch->live)
            bad += 1;
        all.nbusy += c.nbusy;
        all.sbusy += c.sbusy;
    }
    if (all.nbusy != vm->n_busy || all.sbusy != vm->s_busy)
        bad += 1;
    if ((st->cur && vm_seg_find(vm, st->cur->data) != st->cur) ||
        (st->keep && vm_seg_find(vm, st->keep->data) != st->keep))
        bad += 1;
    size_t nrec = 0;
    for (Scoperec_t* r = st->dtors; r && nrec <= vm->n_busy; r = r->next, ++nrec) {
        Vmseg_t* seg;
        char* h = scope_find(vm, r->block, &seg, 0);
        if (!h || !(scope_hword(h) & SCOPE_DTOR) || !scope_find(vm, r, &seg, 1))
            bad += 1;
    }
    if (nrec > vm->n_busy)
        bad += 1;
    return bad;
}

Vmethod_t vm_scope_method = {
    .name = "scope",
    .id = VM_MTSCOPE,
    .statesize = sizeof(Scope_t),
    .initf = scope_init,
    .allocf = scope_alloc,
    .freef = scope_free,
    .resizef = scope_resize,
    .addrf = scope_addrf,
    .sizef = scope_sizef,
    .clearf = scope_clear,
    .compactf = scope_compact,
    .statf = scope_stat,
    .walkf = scope_walk,
    .checkf = scope_checkf,
};
Vmethod_t* Vmscope = &vm_scope_method;

/* ---- heaps: made, recycled, closed ----------------------------------------------- */

static Vmalloc_t* scope_global_vm;
static pthread_mutex_t scope_global_lock = PTHREAD_MUTEX_INITIALIZER;

/* A heap of kind for thread t (NULL: none). A sub-heap (sub, txn) is private
 * to t for its whole life: its owner is set once, when it is opened, and it
 * is recycled through t's cache only. The owner changes its blocks and
 * accounting without the lock; the segment table, which vmregion() reads
 * from any thread, changes only under the lock. Shared heaps (global, owned)
 * are locked for everything and not recycled. */
static Vmalloc_t* scope_heap_new(Scopethr_t* t, int kind, Vmalloc_t* parent)
{
    int private = kind == SCOPE_SUB || kind == SCOPE_TXN;
    Vmalloc_t* vm = NULL;
    if (private && t && t->nheap)
        vm = t->heaps[--t->nheap];
    else {
        vm = vmopen(&scope_disc, &vm_scope_method, 0);
        if (!vm)
            return NULL;
        scope_state(vm)->owner = private ? t : NULL;
    }
    Scope_t* st = scope_state(vm);
    st->kind = kind;
    st->parent = parent;
    return vm;
}

static int scope_heap_close(Vmalloc_t* vm);

/* Run vm's destructors (newest first) and close its owned heaps, unlocked:
 * destructors may use any heap. Then empty it. */
static void scope_heap_empty(Vmalloc_t* vm)
{
    Scope_t* st = scope_state(vm);
    while (st->kids || st->dtors) {
        int locked = vm_region_lock(vm);
        Vmalloc_t* kid = st->kids;
        Scoperec_t* r = kid ? NULL : st->dtors;
        if (kid)
            st->kids = scope_state(kid)->sib;
        else
            st->dtors = r->next;
        vm_region_unlock(vm, locked);
        if (kid)
            (void)scope_heap_close(kid);
        else if (r->fn)
            r->fn(r->block);
    }
    int locked = vm_region_lock(vm);
    scope_reset(vm);
    vm_region_unlock(vm, locked);
}

/* vm is empty and no longer anyone's: keep it in the calling thread's cache
 * or close it. */
static void scope_heap_retire(Vmalloc_t* vm)
{
    Scope_t* st = scope_state(vm);
    Scopethr_t* t = scope_me_p;
    st->kind = SCOPE_IDLE;
    st->parent = NULL;
    st->kids = st->sib = NULL;
    if (st->owner && st->owner == t && !t->dead && t->nheap < SCOPE_HEAPCACHE) {
        t->heaps[t->nheap++] = vm;
        return;
    }
    st->closing = 1;
    if (vmclose(vm) < 0)
        st->closing = 0;
}

/* Unlink owned heap vm from its parent's list of kids (under its lock). */
static void scope_unkid(Vmalloc_t* vm)
{
    Vmalloc_t* p = scope_state(vm)->parent;
    if (!p)
        return;
    int locked = vm_region_lock(p);
    for (Vmalloc_t** pp = &scope_state(p)->kids; *pp; pp = &scope_state(*pp)->sib)
        if (*pp == vm) {
            *pp = scope_state(vm)->sib;
            break;
        }
    vm_region_unlock(p, locked);
}

static int scope_heap_close(Vmalloc_t* vm)
{
    scope_heap_empty(vm);
    scope_heap_retire(vm);
    return 0;
}

Vmalloc_t* vmglobal(void)
{
    Vmalloc_t* g = __atomic_load_n(&scope_global_vm, __ATOMIC_ACQUIRE);
    if (g)
        return g;
    pthread_mutex_lock(&scope_global_lock);
    g = scope_global_vm;
    if (!g) {
        g = scope_heap_new(NULL, SCOPE_GLOBAL, NULL);
        if (g)
            __atomic_store_n(&scope_global_vm, g, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&scope_global_lock);
    if (!g)
        errno = ENOMEM;
    return g;
}

/* The calling thread's record with its current heap set; NULL: no memory. */
static Scopethr_t* scope_thr(void)
{
    Scopethr_t* t = scope_me();
    if (t && !t->cur && !(t->cur = vmglobal()))
        return NULL;
    return t;
}

Vmalloc_t* vmcurrent(void)
{
    Scopethr_t* t = scope_me_p;
    if (t && t->cur)
        return t->cur;
    t = scope_thr();
    return t ? t->cur : NULL;
}

static inline int scope_is_heap(const Vmalloc_t* vm)
{
    return vm && vm->meth == &vm_scope_method;
}

Vmalloc_t* vmparent(Vmalloc_t* heap)
{
    if (!scope_is_heap(heap)) {
        errno = EINVAL;
        return NULL;
    }
    Vmalloc_t* p = scope_state(heap)->parent;
    if (!p)
        errno = ENOENT;
    return p;
}

static Vmalloc_t* scope_push(int kind)
{
    Scopethr_t* t = scope_thr();
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    Vmalloc_t* vm = scope_heap_new(t, kind, t->cur);
    if (!vm)
        return NULL;
    t->cur = vm;
    return vm;
}

Vmalloc_t* vmenter(void) { return scope_push(SCOPE_SUB); }

Vmalloc_t* vmtxn_begin(void) { return scope_push(SCOPE_TXN); }

/* Where heap stands for popping by the calling thread: 0 when it is the
 * current sub-heap; after leaving the sub-heaps entered above it and never
 * left (a return or longjmp out of their blocks), -1 with a message; -2 when
 * it cannot be popped at all. */
static int scope_pop_check(Vmalloc_t* heap, const char* call, Scopethr_t** tp)
{
    if (!scope_is_heap(heap)) {
        scope_error(call, "not a scoped heap", heap);
        return -2;
    }
    Scope_t* st = scope_state(heap);
    Scopethr_t* t = scope_me_p;
    *tp = t;
    if (scope_foreign(heap)) {
        scope_error(call, "leaving a sub-heap of another thread", heap);
        return -2;
    }
    if (!scope_is_stacked(st)) {
        scope_error(call, st->kind == SCOPE_IDLE ? "the heap was already left"
                                                 : "not a sub-heap (vmenter, vmtxn_begin)",
                    heap);
        return -2;
    }
    if (t->cur == heap)
        return 0;
    if (!scope_on_chain(t, heap)) {
        scope_error(call, "the sub-heap is not on the current heap's stack (switched away?)",
                    heap);
        return -2;
    }
    scope_error(call, "sub-heaps entered after it were never left: leaving them first", heap);
    (void)vmunwind(heap);
    return -1;
}

/* Pop heap (current, checked): free it all, make its parent current. */
static void scope_pop(Scopethr_t* t, Vmalloc_t* heap)
{
    Scope_t* st = scope_state(heap);
    t->cur = st->parent;
    if (st->kids || st->dtors) {
        /* Destructors run with heap current again, as the block left it. */
        t->cur = heap;
        scope_heap_empty(heap);
        t->cur = st->parent;
    } else if (heap->nsegs == 1 || (heap->nsegs == 2 && st->keep && !st->spare)) {
        scope_reset(heap); /* the owner's, and the table does not change: no lock */
    } else {
        int locked = vm_region_lock(heap);
        scope_reset(heap);
        vm_region_unlock(heap, locked);
    }
    scope_heap_retire(heap);
}

int vmleave(Vmalloc_t* heap)
{
    Scopethr_t* t = scope_me_p;
    if (t && heap && t->cur == heap && heap->meth == &vm_scope_method &&
        scope_is_stacked(scope_state(heap)) && scope_state(heap)->owner == t) {
        scope_pop(t, heap);
        return 0;
    }
    int r = scope_pop_check(heap, "vmleave", &t);
    if (r == -2)
        return -1;
    scope_pop(t, heap);
    return r;
}

int vmunwind(Vmalloc_t* heap)
{
    Scopethr_t* t = scope_me_p;
    if (!t || !heap || !scope_on_chain(t, heap)) {
        scope_error("vmunwind", "not a heap of the calling thread's stack", heap);
        return -1;
    }
    while (t->cur != heap) {
        Vmalloc_t* h = t->cur;
        Scope_t* st = scope_state(h);
        if (scope_is_stacked(st) && st->owner == t)
            scope_pop(t, h);
        else
            t->cur = st->parent; /* a switch never switched back */
    }
    return 0;
}

/* Move every chunk of from into to (to locked by the caller): addresses and
 * destructors kept. 0, or -1 when to's table cannot grow (what moved, moved;
 * the rest stays in from). */
static int scope_merge(Vmalloc_t* from, Vmalloc_t* to)
{
    Scope_t* fs = scope_state(from);
    Scope_t* ts = scope_state(to);
    int r = 0;
    for (size_t i = from->nsegs; i-- > 0;) {
        Vmseg_t* seg = from->segs[i];
        /* Empty chunks (spares, a fresh kept one) stay for the heap's reuse. */
        if (seg == from->home || !(seg->mflags & SCOPE_FMT) || scope_chunk(seg)->live == 0)
            continue;
        vm_seg_unlink(from, seg);
        if (vm_seg_enter(to, seg) < 0) {
            (void)vm_seg_enter(from, seg); /* the slot it left is free again */
            r = -1;
            break;
        }
        if (seg == fs->cur)
            fs->cur = NULL;
        if (seg == fs->keep)
            fs->keep = NULL;
    }
    if (r == 0) {
        to->n_busy += from->n_busy;
        to->s_busy += from->s_busy;
        if (to->s_busy > to->max_busy)
            to->max_busy = to->s_busy;
        from->n_busy = from->s_busy = 0;
        Scoperec_t** pp = &fs->dtors;
        while (*pp)
            pp = &(*pp)->next;
        *pp = ts->dtors;
        ts->dtors = fs->dtors;
        fs->dtors = NULL;
        while (fs->kids) {
            Vmalloc_t* k = fs->kids;
            fs->kids = scope_state(k)->sib;
            scope_state(k)->parent = to;
            scope_state(k)->sib = ts->kids;
            ts->kids = k;
        }
    }
    return r;
}

int vmtxn_commit(Vmalloc_t* heap)
{
    Scopethr_t* t;
    if (scope_is_heap(heap) && !scope_foreign(heap) && scope_state(heap)->kind != SCOPE_TXN) {
        scope_error("vmtxn_commit", "not a transactional sub-heap (vmtxn_begin)", heap);
        return -1;
    }
    int r = scope_pop_check(heap, "vmtxn_commit", &t);
    if (r == -2)
        return -1;
    Scope_t* st = scope_state(heap);
    Vmalloc_t* p = st->parent;
    int mask = scope_lock2(heap, p); /* both tables change */
    int m = scope_merge(heap, p);
    scope_unlock2(heap, p, mask);
    if (m < 0) {
        /* What could not move stays alive as an owned heap of the parent. */
        t->cur = p;
        st->kind = SCOPE_OWNED;
        st->owner = NULL;
        int locked = vm_region_lock(p);
        st->sib = scope_state(p)->kids;
        scope_state(p)->kids = heap;
        vm_region_unlock(p, locked);
        scope_error("vmtxn_commit", "out of memory: the rest is kept as an owned heap", heap);
        return -1;
    }
    scope_pop(t, heap);
    return r;
}

int vmtxn_abort(Vmalloc_t* heap)
{
    if (scope_is_heap(heap) && !scope_foreign(heap) && scope_state(heap)->kind != SCOPE_TXN) {
        scope_error("vmtxn_abort", "not a transactional sub-heap (vmtxn_begin)", heap);
        return -1;
    }
    Scopethr_t* t;
    int r = scope_pop_check(heap, "vmtxn_abort", &t);
    if (r == -2)
        return -1;
    scope_pop(t, heap);
    return r;
}

Vmalloc_t* vmswitch(Vmalloc_t* heap)
{
    if (!scope_is_heap(heap)) {
        scope_error("vmswitch", "not a scoped heap", heap);
        return NULL;
    }
    Scope_t* st = scope_state(heap);
    Scopethr_t* t = scope_thr();
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    if (scope_foreign(heap) || st->kind == SCOPE_IDLE) {
        scope_error("vmswitch", scope_foreign(heap) ? "a sub-heap of another thread"
                                                    : "the heap was left",
                    heap);
        return NULL;
    }
    Vmalloc_t* old = t->cur;
    t->cur = heap;
    return old;
}

Vmalloc_t* vmheap_open(void)
{
    Scopethr_t* t = scope_thr();
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    Vmalloc_t* p = t->cur;
    Vmalloc_t* vm = scope_heap_new(t, SCOPE_OWNED, p);
    if (!vm)
        return NULL;
    int locked = vm_region_lock(p);
    scope_state(vm)->sib = scope_state(p)->kids;
    scope_state(p)->kids = vm;
    vm_region_unlock(p, locked);
    return vm;
}

int vmheap_close(Vmalloc_t* heap)
{
    if (!scope_is_heap(heap) || scope_state(heap)->kind != SCOPE_OWNED) {
        scope_error("vmheap_close", "not a heap made by vmheap_open", heap);
        return -1;
    }
    Scopethr_t* t = scope_me_p;
    if (t && scope_on_chain(t, heap)) {
        scope_error("vmheap_close", "the heap is current (switch away first)", heap);
        return -1;
    }
    scope_unkid(heap);
    return scope_heap_close(heap);
}

/* The fast path bumps in the current chunk of the current heap without the
 * core's call (no trace to write, no VMFL note to take); anything else goes
 * through vmalloc(). */
void* vmnew(size_t size)
{
    Scopethr_t* t = scope_me_p;
    Vmalloc_t* vm = t ? t->cur : NULL;
    if (vm && size <= SCOPE_LARGE && vm->meth == &vm_scope_method && scope_debug <= 0 &&
        !vm_tracing(vm)) {
        Scope_t* st = scope_state(vm);
        /* t->cur is never another thread's: a sub-heap there is the caller's
         * own, used without the lock (a shared heap is not even looked at
         * here). Its current chunk has no guard page; its top is 16-aligned. */
        Vmseg_t* seg = st->owner ? st->cur : NULL;
        if (seg) {
            Scopechunk_t* ch = scope_chunk(seg);
            size_t n = size ? vm_align_up(size, 16) : 16;
            char* hdr = ch->top;
            if ((size_t)(seg->end - hdr) >= n + SCOPE_HDR) {
                scope_hset(hdr, n, scope_check(hdr, n, ch->gen));
                ch->top = hdr + SCOPE_HDR + n;
                ch->live += 1;
                vm_busy_add(vm, n);
                return hdr + SCOPE_HDR;
            }
        }
    }
    return vmalloc(vm ? vm : vmcurrent(), size);
}

/* ---- moving blocks and destructors ------------------------------------------- */

/* Move block from heap `from` to heap `to` (both scoped, distinct), both
 * locked: a large block's segment changes region (the address is kept),
 * other blocks are copied; the destructor goes with it. The new address, or
 * NULL with errno and nothing changed. */
static void* scope_move_locked(Vmalloc_t* from, Vmalloc_t* to, void* block, const char* call)
{
    if (scope_thread_ok(from, call, 1) < 0)
        return NULL;
    Vmseg_t* seg;
    char* hdr = scope_find(from, block, &seg, 0);
    if (!hdr) {
        scope_error(call, "not a busy block of the heap", from);
        return NULL;
    }
    size_t w = scope_hword(hdr), n = scope_usable(w);
    Scoperec_t* nr = NULL;
    if ((w & SCOPE_DTOR) && !(nr = scope_alloc_flags(to, sizeof *nr, 0, SCOPE_REC))) {
        errno = ENOMEM;
        return NULL;
    }
    void* p = NULL;
    if (seg->mflags & SCOPE_BIG) {
        vm_seg_unlink(from, seg);
        if (vm_seg_enter(to, seg) == 0) {
            vm_busy_sub(from, n);
            vm_busy_add(to, n);
            p = block;
        } else
            (void)vm_seg_enter(from, seg);
    }
    if (!p && (p = scope_alloc_flags(to, n, 0, w & SCOPE_DTOR))) {
        memcpy(p, block, n);
        scope_release(from, seg, hdr);
    }
    if (!p) {
        if (nr)
            scope_rec_free(to, nr);
        errno = ENOMEM;
        return NULL;
    }
    if (nr) {
        Scoperec_t* old = scope_rec_take(scope_state(from), block);
        nr->fn = old ? old->fn : NULL;
        if (old)
            scope_rec_free(from, old);
        nr->block = p;
        nr->next = scope_state(to)->dtors;
        scope_state(to)->dtors = nr;
    }
    return p;
}

static void* scope_move(Vmalloc_t* from, Vmalloc_t* to, void* block, const char* call)
{
    int mask = scope_lock2(from, to);
    void* p = scope_move_locked(from, to, block, call);
    scope_unlock2(from, to, mask);
    return p;
}

void* vmescape(void* block)
{
    Vmalloc_t* cur = vmcurrent();
    if (!cur || !block) {
        errno = EINVAL;
        return NULL;
    }
    Vmalloc_t* p = scope_state(cur)->parent;
    if (!p) {
        scope_error("vmescape", "escaping from the bottom heap (it has no parent)", cur);
        return NULL;
    }
    return scope_move(cur, p, block, "vmescape");
}

int vmescape_list(void** blocks, size_t n)
{
    if (!blocks && n) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; ++i) {
        if (!blocks[i])
            continue;
        void* p = vmescape(blocks[i]);
        if (!p)
            return -1;
        blocks[i] = p;
    }
    return 0;
}

void* vmimport(Vmalloc_t* from, void* block)
{
    Vmalloc_t* cur = vmcurrent();
    if (!scope_is_heap(from) || !cur || !block) {
        scope_error("vmimport", "not a scoped heap or no block", from);
        return NULL;
    }
    if (from == cur)
        return block;
    return scope_move(from, cur, block, "vmimport");
}

/* The scoped heap holding busy block b: the calling thread's heaps first
 * (current, ancestors), then any region. */
static Vmalloc_t* scope_holder(void* b)
{
    Scopethr_t* t = scope_me_p;
    for (Vmalloc_t* h = t ? t->cur : NULL; h; h = scope_state(h)->parent)
        if (vm_seg_find(h, b))
            return h;
    Vmalloc_t* vm = vmregion(b);
    return scope_is_heap(vm) ? vm : NULL;
}

int vmdestructor(void* block, void (*fn)(void* block))
{
    Vmalloc_t* vm = block && fn ? scope_holder(block) : NULL;
    if (!vm || scope_foreign(vm)) {
        scope_error("vmdestructor", vm ? "a block of another thread's sub-heap"
                                       : "not a block of a scoped heap", vm);
        return -1;
    }
    int locked = vm_region_lock(vm);
    Vmseg_t* seg;
    char* hdr = scope_find(vm, block, &seg, 0);
    int r = -1;
    if (hdr) {
        Scope_t* st = scope_state(vm);
        size_t w = scope_hword(hdr);
        Scoperec_t* rec = NULL;
        if (w & SCOPE_DTOR)
            for (rec = st->dtors; rec && rec->block != block; rec = rec->next)
                ;
        if (!rec && (rec = scope_alloc_flags(vm, sizeof *rec, 0, SCOPE_REC))) {
            rec->block = block;
            rec->next = st->dtors;
            st->dtors = rec;
            hdr = scope_find(vm, block, &seg, 0); /* still there: allocation moves nothing */
            w |= SCOPE_DTOR;
            scope_hset(hdr, w, scope_check(hdr, w, scope_chunk(seg)->gen));
        }
        if (rec) {
            rec->fn = fn;
            r = 0;
        } else
            errno = ENOMEM;
    }
    vm_region_unlock(vm, locked);
    if (!hdr)
        scope_error("vmdestructor", "not a busy block of a scoped heap", vm);
    return r;
}

/* ---- threads ---------------------------------------------------------------- */

/* At thread exit: leave what the thread never left, close its cached heaps,
 * give back its chunks and its record. */
static void scope_thread_exit(void* arg)
{
    Scopethr_t* t = arg;
    while (t->cur) {
        Vmalloc_t* h = t->cur;
        Scope_t* st = scope_state(h);
        if (scope_is_stacked(st) && st->owner == t)
            scope_pop(t, h);
        else
            t->cur = st->parent;
    }
    t->dead = 1;
    while (t->nheap) {
        Vmalloc_t* vm = t->heaps[--t->nheap];
        scope_state(vm)->closing = 1;
        (void)vmclose(vm);
    }
    for (int c = 0; c < SCOPE_CLASSES; ++c) {
        while (t->chunks[c]) {
            void* p = t->chunks[c];
            memcpy(&t->chunks[c], p, sizeof(void*));
            (void)vm_os_unmap(p, SCOPE_CHUNK0 << c);
        }
    }
    scope_me_p = NULL;
    (void)vm_os_unmap(t, vm_round_size(sizeof *t, vm_os_pagesize()));
}

/* ---- malloc into the current sub-heap ---------------------------------------------- */

int vm_scope_malloc;

int vmscope_malloc(int on)
{
    /* The flag and malloc's gate bit change together: two threads switching
     * it at once must not leave the bit clear with the flag set. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    int old = __atomic_exchange_n(&vm_scope_malloc, on != 0, __ATOMIC_RELAXED);
    vm_malloc_slow_set(VM_SLOW_SCOPE, on != 0);
    pthread_mutex_unlock(&lock);
    return old;
}

Vmalloc_t* vm_scope_region(Vmalloc_t* dflt)
{
    Scopethr_t* t = scope_me_p;
    Vmalloc_t* h = t ? t->cur : NULL;
    return h && scope_is_stacked(scope_state(h)) ? h : dflt;
}

/* ---- helpers of the block macros ------------------------------------------------- */

int vmtxn_end(Vmalloc_t* heap)
{
    Scopethr_t* t = scope_me_p;
    /* Compare before touching heap: after vmtxn_abort it may be closed. */
    if (!t || !heap || t->cur != heap)
        return 0;
    return vmtxn_commit(heap);
}

Vmalloc_t* vmmust(Vmalloc_t* heap, const char* what)
{
    if (heap)
        return heap;
    int err = errno;
    scope_error(what ? what : "vmmust", err == ENOMEM ? "out of memory" : "failed", NULL);
    vm_os_abort();
}
