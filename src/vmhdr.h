/*
 * vmhdr.h — the private picture of vmalloc: the internal types, their
 * invariants, the contract between the region core and a method, and the
 * operating-system primitives (implemented only in os.c).
 *
 * Glossary
 *   region (Vmalloc_t)  a discipline, a method, flags, a lock, the segments
 *                       it holds, and the method's state right behind it.
 *                       A region made by vmopen() lives at the start of its
 *                       first ("home") segment, so a region over a user's
 *                       buffer is wholly inside that buffer.
 *   segment (Vmseg_t)   one piece of raw memory from a discipline. Its header
 *                       sits at the start of the piece; the method owns
 *                       [data, end). Segments of one region never overlap.
 *                         addr <= (char*)seg < data < end <= addr + size
 *                         data, end are multiples of VM_ALIGN
 *   segment table       the region's segments sorted by address, for an
 *                       O(log n) answer to "which segment holds p?". It lives
 *                       inline in the region while small, then in a chunk of
 *                       discipline memory.
 *   method (Vmethod_t)  a table of functions. The core calls them with the
 *                       region locked (unless VM_TRUST) and arguments checked
 *                       for NULL and size overflow; a method never locks,
 *                       never calls exceptf, and reports trouble through
 *                       vm_fault() so that the core announces it unlocked.
 *   accounting          the core keeps n_busy/s_busy/max_busy; a method
 *                       reports each block it hands out or takes back with
 *                       vm_busy(), in usable bytes:
 *                         s_busy = sum of vmsize(b) over busy blocks b
 *                         max_busy = max of s_busy since vmopen/vmclear
 */
#ifndef VMHDR_H
#define VMHDR_H

#include "vmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

/* Alignment of every vmalloc() result and of segment data. */
#define VM_ALIGN ((size_t)alignof(max_align_t))
/* Inline slots of the segment table before it moves to discipline memory. */
#define VM_INLINE_SEGS 8

typedef struct _vmseg_s Vmseg_t;
typedef int (*Vmvisit_f)(Vmalloc_t*, void* block, size_t size, Vmdisc_t*, void* arg);

struct _vmseg_s {
    Vmalloc_t* vm;  /* owner */
    Vmdisc_t* disc; /* the discipline that gave it and takes it back */
    char* addr;     /* as memoryf returned it */
    size_t size;    /* as memoryf was asked: a multiple of the discipline's round */
    char* data;     /* first byte the method may use */
    char* end;      /* one past the last byte the method may use */
    unsigned mflags; /* the method's own marks (e.g. a segment given to one huge block) */
    void* mdata;    /* the method's own pointer */
};

/* A method: what the core calls. Every function runs with the region locked
 * (unless VM_TRUST), gets a region whose state is valid, and a size that is
 * representable (no size + header overflow is possible below VM_MAXSIZE). */
struct _vmethod_s {
    const char* name; /* "best", "pool", "last": trace lines and messages */
    int id;           /* VM_MTBEST, ... */
    size_t statesize; /* bytes of method state placed right after Vmalloc_t */

    /* Make the state of a new or just-cleared region. State memory is zeroed
     * before the first call. 0, or -1 (vm_fault set) to refuse the region. */
    int (*initf)(Vmalloc_t* vm);
    /* A busy block of at least size bytes aligned to align: a power of two,
     * or 0 for vmalloc's "aligned for any C type that fits in size bytes".
     * size may be 0. NULL with vm_fault(VM_NOMEM, size) when the discipline
     * gave no memory, or with errno set (e.g. EINVAL) for a refusal. */
    void* (*allocf)(Vmalloc_t* vm, size_t size, size_t align);
    /* Free a block. 0, or -1 with vm_fault(VM_BADADDR, block) when block is
     * not a busy block of vm, or -1 without a fault for a refusal (Vmlast: not
     * the last block). Either way nothing changes. block is not NULL. */
    int (*freef)(Vmalloc_t* vm, void* block);
    /* Resize a busy block (block != NULL, size > 0) following type (vmresize).
     * NULL leaves the block as it was; the fault says why (bad address, no
     * memory, or none when type 0 simply could not resize in place). */
    void* (*resizef)(Vmalloc_t* vm, void* block, size_t size, int type);
    /* Offset of addr in the busy block holding it, or -1. */
    long (*addrf)(Vmalloc_t* vm, void* addr);
    /* Usable size of the busy block starting at block, or -1. */
    long (*sizef)(Vmalloc_t* vm, void* block);
    /* Free every block; keep the segments. The core renews vm->secret and
     * resets the accounting around it. 0 or -1. */
    int (*clearf)(Vmalloc_t* vm);
    /* Give unused memory back through vm_seg_put/vm_seg_resize. 0 or -1. */
    int (*compactf)(Vmalloc_t* vm);
    /* Fill n_free, s_free, m_busy, m_free (the core fills the rest). */
    int (*statf)(Vmalloc_t* vm, Vmstat_t* st);
    /* Call visit on every busy block in address order; stop at a non-zero
     * return and give it back. 0 when all were visited. */
    int (*walkf)(Vmalloc_t* vm, Vmvisit_f visit, void* arg);
    /* Verify every invariant of the method's structures; return the number of
     * violations found (0: intact). Must not crash on a corrupted region
     * where that can be avoided: it follows no pointer it has not bounded. */
    int (*checkf)(Vmalloc_t* vm);

    /* Optional. The lock-free paths of a method that can serve some calls
     * without the region lock (Vmbest's thread caches). The core calls them
     * unlocked, before the locked path, when the call is not traced and
     * carries no VMFL note; they never fault and never set errno:
     *   fastallocf  a block as allocf would give, or NULL: take the locked path;
     *   fastfreef   0 when freed, anything else: take the locked path (which
     *               validates again and reports);
     *   fastresizef a realloc-style resize (VM_RSCOPY: may move, keeps the
     *               content; size > 0) of a busy block, or NULL: take the
     *               locked path (the block is then as it was).
     * fastallocf and fastfreef come together; fastresizef is optional. */
    void* (*fastallocf)(Vmalloc_t* vm, size_t size, size_t align);
    int (*fastfreef)(Vmalloc_t* vm, void* block);
    void* (*fastresizef)(Vmalloc_t* vm, void* block, size_t size);
    /* Optional, with fastallocf and fastfreef: the same for vmalloc and
     * vmfree, which jump to them while no bit of VM_SLOW_REGION is set
     * (nothing is traced, noted or recorded around the call). What they
     * cannot serve they hand to the core's locked path, vm_alloc_locked or
     * vm_free_locked (caller passed on), by a tail call of their own, as
     * Vmbest's malloc entries do: the core's entry then keeps no frame and
     * tests no answer, and a private region costs what malloc does. They
     * come together (vmfree asks only whether tailallocf is there). */
    void* (*tailallocf)(Vmalloc_t* vm, size_t size, void* caller);
    int (*tailfreef)(Vmalloc_t* vm, void* block, void* caller);
    /* Optional. The region is about to be closed (unlocked, no calls in
     * progress): let go of anything outside its segments. */
    void (*closef)(Vmalloc_t* vm);
    /* Optional. Timed upkeep, region locked: do what has come due (purge
     * memory unused for a while); the ms until more comes due, or -1 when
     * nothing waits. The method calls it from its own slow paths too; the
     * upkeep thread (upkeep.c) calls it when the program makes no calls. */
    long (*tickf)(Vmalloc_t* vm);
};

/* The malloc interface's direct entries into Vmbest (method/page.c): the
 * method's lock-free paths for vm (malloc's Vmregion, any region) without
 * the method table, through the calling thread's heap of the region the
 * interface used last (one TLS load). The caller checks what the core
 * would (not traced, no VMFL note); vm may be of any method (then they
 * say no).
 *   vm_best_malloc  a block, or what vm_malloc_else(size, caller) answers
 *                   (the general path), reached by a tail call;
 *   vm_best_free    frees p, or calls vm_free_else(p, caller) (p is not a
 *                   busy block of vm: the general path decides), by a tail
 *                   call;
 *   vm_best_realloc p resized as fastresizef would (size > 0), or what
 *                   vm_realloc_else(p, size, caller) answers, by a tail
 *                   call.
 * Handing the general path over, rather than answering "no", lets malloc
 * and free jump to these and keep nothing on the stack; the arguments come
 * in the order the general path takes them, so failing costs no moves. The
 * general paths are malloc.c's, set before it first calls these. */
typedef void* (*Vm_malloc_else_f)(size_t size, void* caller);
typedef void (*Vm_free_else_f)(void* p, void* caller);
typedef void* (*Vm_realloc_else_f)(void* p, size_t size, void* caller);
extern Vm_malloc_else_f vm_malloc_else;
extern Vm_free_else_f vm_free_else;
extern Vm_realloc_else_f vm_realloc_else;
void* vm_best_malloc(size_t size, void* caller, Vmalloc_t* vm);
void vm_best_free(void* p, void* caller, Vmalloc_t* vm);
void* vm_best_realloc(void* p, size_t size, void* caller, Vmalloc_t* vm);

struct _vmalloc_s {
    Vmethod_t* meth;
    Vmdisc_t* disc;
    int flags;            /* VM_TRUST | VM_TRACE | VM_DBCHECK | VM_DBABORT */
    pthread_mutex_t lock; /* held around every method call unless VM_TRUST */
    uint64_t secret;      /* keys the methods' header check words; renewed by vmclear */

    /* Accounting (see the glossary). n_busy is kept apart from s_busy: side
     * by side, GCC 12 merges vm_busy_sub's two decrements into a vector
     * read-modify-write of both (eight instructions instead of two, and a
     * 16-byte load that a preceding 8-byte store cannot forward to). */
    size_t s_busy, max_busy, n_busy;

    /* Segments. */
    Vmseg_t* home;        /* the segment this struct lives in; NULL for Vmheap */
    Vmseg_t** segs;       /* sorted by address; == seginline or a chunk from tabdisc */
    size_t nsegs, capsegs;
    Vmdisc_t* tabdisc;    /* gave the chunk behind segs (NULL: inline) */
    void* tabaddr;        /* that chunk as memoryf returned it */
    size_t tabsize;       /* its size */
    size_t extent;        /* sum of seg->size, plus tabsize */
    Vmseg_t* seginline[VM_INLINE_SEGS];

    /* The fault of the current call, announced by the core once unlocked. */
    int fault;     /* 0, VM_NOMEM or VM_BADADDR */
    void* faultobj;

    Vmalloc_t* next; /* the list of open regions (vmregion, vmwalk(NULL)) */

    /* The call site of the current call, set by the core (locked) before it
     * calls allocf/freef/resizef, for the methods that report it (Vmdebug,
     * Vmprofile): the -DVMFL file and line (file NULL when the caller was
     * not built with VMFL), and the caller's return address (NULL: unknown). */
    const char* sitefile;
    int siteline;
    void* sitecaller;
    /* method state follows, aligned to VM_ALIGN */
};

/* An internal flag, outside VM_FLAGS: a region a method opened for its own
 * use (vm_open_inner): never on the list of open regions, never traced. */
#define VM_INNER 0x10000

/* The method's state, right behind the region struct. */
static inline void* vm_state(Vmalloc_t* vm)
{
    return (char*)vm + ((sizeof(Vmalloc_t) + VM_ALIGN - 1) & ~(VM_ALIGN - 1));
}

/* Largest block size any method accepts: leaves room for headers, alignment
 * and rounding so that no size arithmetic can wrap. */
#define VM_MAXSIZE (((size_t)1 << (sizeof(size_t) * 8 - 2)))

static inline size_t vm_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline char* vm_ptr_up(const void* p, size_t a)
{
    return (char*)(((uintptr_t)p + a - 1) & ~(uintptr_t)(a - 1));
}
static inline int vm_is_pow2(size_t a) { return a && (a & (a - 1)) == 0; }

/* Record the fault of this call (the core announces it after unlocking). */
static inline void vm_fault(Vmalloc_t* vm, int type, void* obj)
{
    vm->fault = type;
    vm->faultobj = obj;
}

/* A block of usable size n became busy (+) or free (-). */
static inline void vm_busy_add(Vmalloc_t* vm, size_t n)
{
    vm->n_busy += 1;
    vm->s_busy += n;
    if (__builtin_expect(vm->s_busy > vm->max_busy, 0)) /* a new peak: rare once warm */
        vm->max_busy = vm->s_busy;
}
static inline void vm_busy_sub(Vmalloc_t* vm, size_t n)
{
    vm->n_busy -= 1;
    vm->s_busy -= n;
}
/* A busy block changed usable size in place or by moving. */
static inline void vm_busy_resize(Vmalloc_t* vm, size_t oldn, size_t newn)
{
    vm->s_busy = vm->s_busy - oldn + newn;
    if (vm->s_busy > vm->max_busy)
        vm->max_busy = vm->s_busy;
}

/* Check words: a busy block's header carries vm_check(vm, hdr, word) so that
 * a pointer that is not a block start (interior, stale, foreign) is rejected
 * with probability 1 - 2^-64, and vmclear invalidates every old header. */
static inline uint64_t vm_check(const Vmalloc_t* vm, const void* hdr, uint64_t word)
{
    uint64_t x = ((uint64_t)(uintptr_t)hdr ^ word ^ vm->secret) * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

/* segment.c — raw memory for methods (region locked). */
/* A new segment whose [data, end) has at least minsize bytes; NULL with
 * vm_fault(VM_NOMEM, minsize) when the discipline has none (or the segment
 * table cannot grow). */
Vmseg_t* vm_seg_get(Vmalloc_t* vm, size_t minsize);
/* The same from a given discipline (not the region's). */
Vmseg_t* vm_seg_get_from(Vmalloc_t* vm, Vmdisc_t* disc, size_t minsize);
/* Give seg back to its discipline; 0, or -1 if the discipline refused (the
 * segment then stays the region's, untouched). The home segment is refused. */
int vm_seg_put(Vmalloc_t* vm, Vmseg_t* seg);
/* Resize seg in place so that end - data >= minsize (rounded up to the
 * discipline's round); 0, or -1 if the discipline cannot. */
int vm_seg_resize(Vmalloc_t* vm, Vmseg_t* seg, size_t minsize);
/* The segment whose [addr, addr + size) holds p, or NULL. O(log nsegs). */
Vmseg_t* vm_seg_find(const Vmalloc_t* vm, const void* p);
/* Release every segment but home, then the table chunk (vmclose). */
void vm_seg_release_all(Vmalloc_t* vm);
/* Lay a segment header over raw memory [addr, addr + size) from disc,
 * reserving prefix bytes (aligned) right after the header, at seg + 1, for
 * the caller (vmopen puts the region there). NULL if it does not fit. */
Vmseg_t* vm_seg_format(char* addr, size_t size, Vmdisc_t* disc, size_t prefix);
/* Raw bytes a segment needs around minsize usable bytes with prefix reserved. */
size_t vm_seg_need(size_t prefix, size_t minsize);
/* n rounded up to a multiple of r (any r > 0); 0 on overflow. */
size_t vm_round_size(size_t n, size_t r);
/* Enter seg into vm's table; 0, or -1 when the table cannot grow. */
int vm_seg_enter(Vmalloc_t* vm, Vmseg_t* seg);
/* Take seg out of vm's table without releasing it (to enter it into another
 * region's table: scope.c moves chunks between heaps this way). */
void vm_seg_unlink(Vmalloc_t* vm, Vmseg_t* seg);
/* The round used for disc: disc->round or the page size. */
size_t vm_round(const Vmdisc_t* disc);

/* region.c */
/* Hold a region as the core does around a method call (for vmprofile's
 * writer and Vmdebug's check at exit); the answer goes to the unlock. */
int vm_region_lock(Vmalloc_t* vm);
void vm_region_unlock(Vmalloc_t* vm, int locked);
/* vmfree without the VM_BADADDR event: for probing whether vm owns block. */
int vm_free_quiet(Vmalloc_t* vm, void* block);
/* The locked paths of vmalloc and vmfree for a call made at caller (the
 * tail entries' fallbacks). */
void* vm_alloc_locked(Vmalloc_t* vm, size_t size, void* caller);
int vm_free_locked(Vmalloc_t* vm, void* block, void* caller);
/* vmresize without the VM_BADADDR event: NULL with EINVAL for a bad address. */
void* vm_resize_quiet(Vmalloc_t* vm, void* block, size_t size, int type);
extern pthread_mutex_t vm_list_lock; /* guards the list of open regions */
/* Guards the birth and death of methods' per-thread caches. Taken before any
 * region lock (a thread holding a region lock may only try it); the core's
 * fork handlers take it first. */
extern pthread_mutex_t vm_cache_lock;
extern Vmalloc_t* vm_list;           /* open regions, Vmheap first */
/* Move-and-copy part of a resize, shared by methods: allocate a new block,
 * copy min(oldsize, size) bytes if VM_RSCOPY, free the old one. Locked. */
void* vm_resize_move(Vmalloc_t* vm, void* block, size_t oldsize, size_t size, int type);

/* trace.c. The flags every entry point reads are hidden: the library's
 * own, so code compiled for a shared object reads them directly, without
 * first loading their address from the GOT. */
#define VM_HIDDEN __attribute__((visibility("hidden")))
extern VM_HIDDEN int vm_trace_fd;  /* where trace lines go; -1: nowhere */
extern VM_HIDDEN int vm_trace_all; /* trace every region, not only those with VM_TRACE */
/* Is a call on vm to be traced? */
static inline int vm_tracing(const Vmalloc_t* vm)
{
    return __builtin_expect(vm_trace_fd >= 0, 0) && !(vm->flags & VM_INNER) &&
           ((vm->flags & VM_TRACE) || vm_trace_all);
}
/* A record for a call; file NULL when the caller was not built with VMFL. */
void vm_trace(Vmalloc_t* vm, const void* old, const void* new, size_t size, const char* file,
              int line);
/* A region record: what is "open", "clear" or "close". */
void vm_trace_region(Vmalloc_t* vm, const char* what);
/* Take (and forget) the file and line the calling thread noted with VMFL. */
void vm_fl_take(const char** file, int* line);
/* Has the calling thread a VMFL note waiting? (One TLS load.) */
extern __thread const char* vm_fl_file __attribute__((tls_model("initial-exec")));
static inline int vm_fl_pending(void) { return vm_fl_file != NULL; }
/* Callers' return addresses, for call sites of code built without VMFL.
 * vm_sites_on is set once a Vmdebug or Vmprofile region exists; until then
 * no entry point notes anything (a thread-local write per call is not free,
 * and glibc calls malloc while a thread's TLS is being made or unmade). The
 * outermost public entry notes its caller (the first note wins); the core
 * takes it with the call's file and line. */
extern VM_HIDDEN int vm_sites_on;
void vm_caller_note(void* ra);
void* vm_caller_take(void);
static inline void vm_caller_here(void* ra)
{
    if (__builtin_expect(__atomic_load_n(&vm_sites_on, __ATOMIC_RELAXED), 0))
        vm_caller_note(ra);
}
/* A call served by a method's lock-free path leaves no note behind. */
static inline void vm_caller_forget(void)
{
    if (__builtin_expect(__atomic_load_n(&vm_sites_on, __ATOMIC_RELAXED), 0))
        (void)vm_caller_take();
}
/* Forget it: for calls that fail before reaching the region. */
static inline void vm_fl_drop(void)
{
    const char* f;
    int l;
    vm_fl_take(&f, &l);
    if (__builtin_expect(__atomic_load_n(&vm_sites_on, __ATOMIC_RELAXED), 0))
        (void)vm_caller_take();
}
/* Number formatting that never allocates (for traces and messages): write
 * v at p, return the end. Hex is "0x" and lower-case digits. */
char* vm_fmt_hex(char* p, uintptr_t v);
char* vm_fmt_dec(char* p, size_t v);
void vm_trace_flush(void);
void vm_trace_flush_try(void); /* async-signal-safe: skips if the lock is held */
void vm_trace_fork_prepare(void);
void vm_trace_fork_after(void);
/* region.c: every lock of the library, taken before fork and released after
 * it in the parent and in the child. */
void vm_fork_prepare(void);
void vm_fork_parent(void);
void vm_fork_child(void);
extern void (*vm_fork_child_hook)(void); /* run in the child after the locks are released */
/* disc/sbrk.c: its lock, for fork. */
void vm_sbrk_lock(void);
void vm_sbrk_unlock(void);
/* disc/system.c: the kept ranges' lock, for fork. */
void vm_system_lock(void);
void vm_system_unlock(void);

/* region.c: a region for a method's own use (Vmdebug's and Vmprofile's
 * blocks come from an inner Vmbest region): made as vmopen makes one, with
 * VM_TRUST | VM_INNER, but not listed, so vmregion(), vmwalk(NULL) and fork
 * see only the outer region, and never traced. It needs no closing: its
 * memory is the discipline's, which for those methods hands out segments of
 * the outer region, released with it. NULL with errno on failure. */
Vmalloc_t* vm_open_inner(Vmdisc_t* disc, Vmethod_t* meth);

/* method/inner.c — shared by Vmdebug and Vmprofile (see that file). */
typedef struct vm_inner_s {
    Vmdisc_t disc;     /* the forwarder: segments of outer */
    Vmalloc_t* outer;  /* the region whose method state holds this */
    Vmalloc_t* vm;     /* the inner Vmbest region */
    int opening;       /* vm_inner_open is making it */
    uint64_t secret;   /* outer->secret when the live headers were sealed */
} Vminner_t;
/* Open in->vm for outer (from the outer method's initf). 0, or -1. */
int vm_inner_open(Vminner_t* in, Vmalloc_t* outer);
/* A header of hsize bytes (a multiple of VM_ALIGN) followed by n bytes that
 * start aligned to align (0 or up to VM_ALIGN: VM_ALIGN). Returns the header,
 * or NULL (the outer region's fault set by the forwarder when memory ran
 * out). The inner block starts at header - *lead (0 or >= 16, then recorded
 * by a marker there too). */
char* vm_inner_place(Vminner_t* in, size_t hsize, size_t n, size_t align, size_t* lead);
/* An inner block of total bytes aligned to align whose header is lead bytes
 * in (lead 0 or >= 16: a marker is written); returns the inner block. */
char* vm_inner_place_lead(Vminner_t* in, size_t total, size_t align, size_t lead);
/* The header of the inner block ib of ibsize usable bytes, or NULL. */
char* vm_inner_head(const Vminner_t* in, char* ib, size_t ibsize);
/* The busy inner block holding addr, and its usable bytes in *ibsize; NULL
 * if addr is in none. */
char* vm_inner_find(const Vminner_t* in, const void* addr, size_t* ibsize);
/* vmaddr's answer for addr against a user block of size bytes at u: the
 * offset, or -1 outside it (a block of size 0 answers for its address). */
static inline long vm_user_offset(const char* u, size_t size, const void* addr)
{
    const char* a = addr;
    if (a < u || (a >= u + size && a != u))
        return -1;
    return (long)(a - u);
}
/* n_free, s_free, m_free, m_busy of the outer region's statf: the inner
 * region's (its busy blocks are a little larger than the blocks they hold,
 * so m_busy is an upper bound). */
int vm_inner_stat(Vminner_t* in, Vmstat_t* st);
/* The outer region is being closed (its closef): the inner region lets go
 * of what lies outside its segments; its segments go with the outer ones. */
void vm_inner_close(Vminner_t* in);
/* Forget the marker of ib (before giving the block back). */
void vm_inner_wipe(char* ib);
/* vmclear of the outer region, from its clearf: the core has renewed the
 * outer secret already, so first visit (vmwalk of the inner region) every
 * inner block with the old secret in force, so that their headers still
 * check; then clear the inner region. visit may be NULL. 0 or -1. */
int vm_inner_clear(Vminner_t* in, Vmvisit_f visit, void* arg);
/* A call site as text at p (never past end, which leaves 24 bytes of room
 * for the caller's own fields): "file,line", "function+0xoff" for a return
 * address, or "<>,0" when nothing is known. Returns the end. No allocation. */
char* vm_site_put(char* p, char* end, const char* file, int line, const void* caller);
char* vm_put_str(char* p, char* end, const char* s);
/* "key" then v in decimal then ':'. */
char* vm_put_field(char* p, char* end, const char* key, size_t v);

/* method/debug.c and method/profile.c, for region.c's vmdbwatch/vmprofile
 * and malloc.c's settings. */
int vm_debug_watch(Vmalloc_t* vm, void* addr);  /* locked; vm is a Vmdebug region */
/* Vmdebug settings of a region: check every period-th call (0: only on
 * demand; VM_DBCHECK is period 1). Locked. */
void vm_debug_period(Vmalloc_t* vm, unsigned period);
/* The whole profile of vm (NULL: every Vmprofile region) on fd; -1 with
 * errno on a write error. Takes the locks itself. */
int vm_profile_write(Vmalloc_t* vm, int fd);

/* scope.c: malloc's hook. While vm_scope_malloc is set (vmscope_malloc), a
 * malloc goes to vm_scope_region(Vmregion): the calling thread's current
 * sub-heap, or Vmregion when the thread is in none. */
extern int vm_scope_malloc;
Vmalloc_t* vm_scope_region(Vmalloc_t* dflt);

/* Why a call cannot take a lock-free path without a closer look, a bit per
 * reason: malloc reads one word per call instead of one per reason, and so
 * do the region entries (region.c), each under its own mask. malloc takes
 * Vmbest's direct entries only when no bit of VM_SLOW_MALLOC is set; a
 * region call takes its method's lock-free path at once when no bit of
 * VM_SLOW_REGION is, and otherwise after looking at the region and the
 * thread (tracing, a VMFL note). A bit set while its reason is gone only
 * costs speed; VM_SLOW_FL (a -DVMFL note was seen) and VM_SLOW_SITES (a
 * Vmdebug or Vmprofile region exists: callers are noted) stay set. */
enum { VM_SLOW_INIT = 1, VM_SLOW_TRACE = 2, VM_SLOW_SCOPE = 4, VM_SLOW_FL = 8, VM_SLOW_SITES = 16 };
enum {
    VM_SLOW_MALLOC = VM_SLOW_INIT | VM_SLOW_TRACE | VM_SLOW_SCOPE | VM_SLOW_FL,
    VM_SLOW_REGION = VM_SLOW_TRACE | VM_SLOW_FL | VM_SLOW_SITES
};
extern VM_HIDDEN int vm_malloc_slow; /* read by every malloc and free: hidden, one load */
static inline void vm_malloc_slow_set(int why, int on)
{
    if (on)
        (void)__atomic_or_fetch(&vm_malloc_slow, why, __ATOMIC_ACQ_REL);
    else
        (void)__atomic_and_fetch(&vm_malloc_slow, ~why, __ATOMIC_ACQ_REL);
}
/* Set a bit that stays set (VM_SLOW_FL, VM_SLOW_SITES): its callers run on
 * every call that notes a site, so the word is written only the first time. */
static inline void vm_malloc_slow_stick(int why)
{
    if (!(__atomic_load_n(&vm_malloc_slow, __ATOMIC_RELAXED) & why))
        vm_malloc_slow_set(why, 1);
}

/* May a call on vm take its method's lock-free path? Not when it is traced
 * or carries a VMFL note: those go the locked way, which records them. One
 * load of vm_malloc_slow answers for every region while none of its
 * VM_SLOW_REGION bits is set; only then are the thread's note and the
 * region's tracing looked at. (region.c's entries, malloc's general path.) */
static inline int vm_fast_ok(const Vmalloc_t* vm)
{
    if (!vm->meth->fastallocf)
        return 0;
    if (__builtin_expect((__atomic_load_n(&vm_malloc_slow, __ATOMIC_RELAXED) & VM_SLOW_REGION) == 0, 1))
        return 1;
    return !vm_fl_pending() && !vm_tracing(vm);
}

/* The upkeep thread (upkeep.c): one thread that calls the tickf of one
 * region (the malloc interface's heap) when it is due, so that memory a
 * program frees goes back to the kernel within a second even when the
 * program makes no further calls. Started lazily, at an allocation, once
 * the region's extent reaches VM_UPKEEP_MIN: small programs never get it.
 *   vm_upkeep_enable  serve vm (before it is used; vm's method has tickf)
 *   vm_upkeep_grew    vm's extent grew (vm locked: segment.c)
 *   vm_upkeep_poll    start the thread if it is wanted (no lock held, in an
 *                     allocation: never in a free, which glibc calls while
 *                     holding locks pthread_create takes)
 *   vm_upkeep_note    vm's method left work for a later tick (vm locked):
 *                     wakes the thread if it waits with nothing to do
 *   vm_upkeep_fork_child  the child of fork has no thread */
#define VM_UPKEEP_MIN ((size_t)32 << 20)
enum { VM_UPKEEP_NONE, VM_UPKEEP_RUNNING, VM_UPKEEP_FAILED }; /* vm_upkeep_state */
extern Vmalloc_t* vm_upkeep_vm;
extern int vm_upkeep_state, vm_upkeep_wanted, vm_upkeep_idle;
void vm_upkeep_enable(Vmalloc_t* vm);
void vm_upkeep_start(void);
void vm_upkeep_wake(void);
void vm_upkeep_fork_child(void);
static inline void vm_upkeep_grew(Vmalloc_t* vm)
{
    if (__builtin_expect(vm == vm_upkeep_vm, 0) && vm->extent >= VM_UPKEEP_MIN &&
        __atomic_load_n(&vm_upkeep_state, __ATOMIC_RELAXED) == VM_UPKEEP_NONE)
        __atomic_store_n(&vm_upkeep_wanted, 1, __ATOMIC_RELAXED);
}
static inline void vm_upkeep_poll(void)
{
    if (__builtin_expect(__atomic_load_n(&vm_upkeep_wanted, __ATOMIC_RELAXED), 0))
        vm_upkeep_start();
}
static inline void vm_upkeep_note(Vmalloc_t* vm)
{
    if (__builtin_expect(vm == vm_upkeep_vm, 0) && __atomic_load_n(&vm_upkeep_idle, __ATOMIC_RELAXED))
        vm_upkeep_wake();
}

/* The built-in objects, for static initialisers. */
extern Vmethod_t vm_best_method, vm_pool_method, vm_last_method;
extern Vmethod_t vm_debug_method, vm_profile_method;
extern Vmethod_t vm_scope_method; /* scope.c: the method of scoped heaps */
extern Vmdisc_t vm_dc_system, vm_dc_sbrk, vm_dc_heap;
/* Vmdcsystem's internal twins for Vmbest (disc/system.c): new segments
 * aligned to 64 KiB, their memory not promised zero; what is released
 * through vm_dc_system_kept stays mapped a while for the next segment. */
extern Vmdisc_t vm_dc_system_aligned, vm_dc_system_kept;
int vm_dc_system_tick(void);        /* give back the ranges kept long enough; 1 if some are left */
void vm_dc_system_flush(void);      /* give back every kept range now */

/* Is d Vmdcsystem or one of its twins (memory the kernel can purge)? */
static inline int vm_disc_os(const Vmdisc_t* d)
{
    return d == &vm_dc_system || d == &vm_dc_system_aligned || d == &vm_dc_system_kept;
}
/* The discipline a user sees for a segment of d: the twins are internal. */
static inline Vmdisc_t* vm_disc_shown(Vmdisc_t* d) { return vm_disc_os(d) ? &vm_dc_system : d; }
extern Vmalloc_t* vm_heap_region(void); /* the static Vmheap object */

/* os.c — the only file that talks to the kernel. Sizes are multiples of the
 * page size where the call needs it; NULL or -1 on failure with errno set. */
size_t vm_os_pagesize(void);
void* vm_os_map(size_t size);                            /* fresh zeroed pages */
void* vm_os_map_aligned(size_t size, size_t align);      /* the same, at a multiple of align */
void* vm_os_reserve(size_t size, size_t align);          /* addresses, no memory until touched; aligned */
void* vm_os_reserve_zero(size_t size);                   /* reads as zeros; commit to write */
int vm_os_as_limited(void);                              /* RLIMIT_AS is finite */
int vm_os_commit(void* addr, size_t size);               /* open reserved pages: zeroed, writable */
int vm_os_decommit(void* addr, size_t size);             /* drop pages, keep the addresses reserved */
uint64_t vm_os_now_ms(void);                             /* a monotonic clock, cheap and coarse */
int vm_os_unmap(void* addr, size_t size);
int vm_os_remap_inplace(void* addr, size_t osize, size_t nsize); /* 0: done, no move */
int vm_os_purge(void* addr, size_t size);                /* drop the pages' content */
void* vm_os_sbrk(intptr_t incr);                         /* (void*)-1 on failure */
uint64_t vm_os_random(void);
int vm_os_write(int fd, const void* buf, size_t n);      /* all of it, or -1 */
int vm_os_open_append(const char* path); /* write-only, created, appended to (never truncated:
                                          * an exec keeps the pid, so %p names the same file) */
int vm_os_open_trunc(const char* path); /* write-only, created, emptied */
long vm_os_getpid(void);
uint64_t vm_os_file_id(int fd); /* what fd refers to (device, inode); 0 if nothing */
int vm_os_close(int fd);
_Noreturn void vm_os_exit(int status); /* end the process now, no handlers */
_Noreturn void vm_os_abort(void);      /* SIGABRT, for VM_DBABORT */
/* Pages [addr, addr + size) readable and writable (on) or inaccessible
 * (off); addr and size are multiples of the page size. 0, or -1. */
int vm_os_protect(void* addr, size_t size, int on);
/* "function+0xoffset" for a code address (or "module+0xoffset", or the
 * address in hex), into buf of n bytes (NUL-terminated); *modoff gets the
 * address relative to its module's load address (for addr2line), 0 if
 * unknown. Returns the end of the text. Allocates nothing. */
char* vm_os_symbol(const void* addr, char* buf, size_t n, const char** module, uintptr_t* modoff);
void vm_os_yield(void);
void vm_os_lock_init(pthread_mutex_t* m); /* a region lock: spins briefly before it sleeps */
/* Its static form, for Vmheap (adaptive where the C library has it and the
 * file defines _GNU_SOURCE). */
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define VM_LOCK_INITIALIZER PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#else
#define VM_LOCK_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#endif

#endif /* VMHDR_H */
