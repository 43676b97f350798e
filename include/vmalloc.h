/*
 * vmalloc.h — the public interface of vmalloc: regions of memory, each with a
 * discipline (where raw memory comes from) and a method (how blocks are carved
 * out of it), after K.-P. Vo, "Vmalloc: A General and Efficient Memory
 * Allocator", Software—Practice and Experience 26(3), 1996.
 *
 * Names and signatures are the paper's, so its Figures 1-3 compile unchanged.
 * Every function accepts a NULL region and answers with an error (-1/NULL and
 * errno), never a crash, except vmstat(NULL, ...), which reports Vmheap, and
 * vmwalk(NULL, ...), which walks every region.
 */
#ifndef VMALLOC_H
#define VMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMALLOC_VERSION "0.1.0"

typedef struct _vmalloc_s Vmalloc_t; /* a region (opaque) */
typedef struct _vmethod_s Vmethod_t; /* a method (opaque) */
typedef struct _vmdisc_s Vmdisc_t;   /* a discipline (public; extend by embedding) */
typedef struct _vmstat_s Vmstat_t;

/* Get, resize in place, or release a segment (contract below). */
typedef void* (*Vmemory_f)(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc);
/* Announce an event (VM_OPEN ...); the meaning of the return depends on it. */
typedef int (*Vmexcept_f)(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc);

/*
 * Discipline contract (paper §2.2). memoryf(vm, addr, csz, nsz, disc), with at
 * most one of csz and nsz zero:
 *   csz == 0            return a new segment of nsz bytes, or NULL;
 *   nsz == 0            release the segment at addr of csz bytes; return addr
 *                       on success, NULL on failure;
 *   both non-zero       resize the segment at addr from csz to nsz bytes
 *                       WITHOUT moving it; return addr, or NULL if it cannot.
 * Sizes are multiples of round (0: the page size). Segments need not be
 * aligned to anything. A discipline is extended by making Vmdisc_t the first
 * member of a larger struct (paper Figure 3).
 */
struct _vmdisc_s {
    Vmemory_f memoryf;  /* get, grow/shrink in place, or release a segment */
    Vmexcept_f exceptf; /* announce events; may be NULL */
    size_t round;       /* segment sizes are multiples of this; 0: the page size */
};

struct _vmstat_s {
    size_t n_busy, s_busy; /* busy blocks: count, usable bytes */
    size_t n_free, s_free; /* free blocks: count, bytes */
    size_t m_busy, m_free; /* largest busy block, largest free block */
    size_t max_busy;       /* peak of s_busy since vmopen or the last vmclear */
    size_t n_seg;          /* segments held from the discipline */
    size_t extent;         /* bytes of those segments: the arena */
    int mode;              /* the region's method (VM_MT*) and flags */
};

/* Methods. Vmdebug: best fit with error detection (guard bytes, a quarantine
 * of freed blocks, watched addresses; reports on standard error in the
 * paper's format). Vmprofile: best fit with per-call-site accounting. */
extern Vmethod_t *Vmbest, *Vmpool, *Vmlast, *Vmdebug, *Vmprofile;

/* Disciplines. */
extern Vmdisc_t* Vmdcsystem; /* anonymous mmap: the default raw memory */
extern Vmdisc_t* Vmdcsbrk;   /* sbrk(), as in the paper */
extern Vmdisc_t* Vmdcheap;   /* memory from the Vmheap region */

extern Vmalloc_t* Vmheap;   /* Vmbest over Vmdcsystem; never closed */
extern Vmalloc_t* Vmregion; /* where malloc() and friends go; Vmheap unless set */

/* Flags for vmopen() and vmset(). */
#define VM_TRUST 0x0001   /* no locking, no address validation: caller guarantees correct use */
#define VM_TRACE 0x0002   /* write a trace line per call to the vmtrace() descriptor */
#define VM_DBCHECK 0x0004 /* Vmdebug: check the whole region at every call */
#define VM_DBABORT 0x0008 /* Vmdebug: abort on the first error */
#define VM_DBGUARD 0x0010 /* Vmdebug, at vmopen: each block ends its own pages, before an
                             inaccessible page; freed blocks' pages made inaccessible */
#define VM_FLAGS (VM_TRUST | VM_TRACE | VM_DBCHECK | VM_DBABORT | VM_DBGUARD)

/* The method part of Vmstat_t.mode. */
#define VM_MTBEST 0x0100
#define VM_MTPOOL 0x0200
#define VM_MTLAST 0x0400
#define VM_MTDEBUG 0x0800
#define VM_MTPROFILE 0x1000
#define VM_MTSCOPE 0x2000
#define VM_METHODS (VM_MTBEST | VM_MTPOOL | VM_MTLAST | VM_MTDEBUG | VM_MTPROFILE | VM_MTSCOPE)

/* Types for vmresize(). Type 0 resizes in place or fails, leaving the block as
 * it was. VM_RSCOPY implies VM_RSMOVE, so the paper's vmresize(vm,b,n,1) of
 * Figure 1 is a realloc(). */
#define VM_RSCOPY 0x0001  /* may move; the content is copied */
#define VM_RSMOVE 0x0002  /* may move; the content need not be kept */
#define VM_RSCLEAR 0x0004 /* space beyond the old size is zeroed */
#define VM_RSZERO VM_RSCLEAR

/* Events given to exceptf. */
#define VM_OPEN 1     /* before a region is made (vm NULL); negative refuses it */
#define VM_ENDOPEN 2  /* the region is made */
#define VM_CLOSE 3    /* before a region is closed; negative refuses it */
#define VM_ENDCLOSE 4 /* after; vm is no longer a region: use it as a key only */
#define VM_NOMEM 5    /* the discipline gave no memory; obj is the size asked (size_t);
                         a positive return means "try again" */
#define VM_BADADDR 6  /* vmfree/vmresize got an address that is not a busy block; obj is it */
#define VM_DISC 7     /* vmdisc() is about to change the discipline; obj is the new one;
                         negative refuses the change */

Vmalloc_t* vmopen(Vmdisc_t* disc, Vmethod_t* meth, int flags);
int vmclose(Vmalloc_t* vm);
int vmclear(Vmalloc_t* vm);
int vmcompact(Vmalloc_t* vm);
void* vmalloc(Vmalloc_t* vm, size_t size);
void* vmalign(Vmalloc_t* vm, size_t size, size_t align);
int vmfree(Vmalloc_t* vm, void* block);
void* vmresize(Vmalloc_t* vm, void* block, size_t size, int type);
int vmstat(Vmalloc_t* vm, Vmstat_t* st);
long vmaddr(Vmalloc_t* vm, void* addr);
long vmsize(Vmalloc_t* vm, void* block);
Vmalloc_t* vmregion(void* addr);
int vmset(Vmalloc_t* vm, int flags, int on);
char* vmstrdup(Vmalloc_t* vm, const char* s);
int vmdbcheck(Vmalloc_t* vm);
int vmdbwatch(Vmalloc_t* vm, void* addr);
int vmprofile(Vmalloc_t* vm, int fd);
int vmtrace(int fd);
void* vmsegment(Vmalloc_t* vm, void* addr);
/* vmwalk calls visit(vm, block, size, disc, arg) for every busy block in
 * address order, stopping at (and returning) the first non-zero answer. The
 * region is locked during the walk, and vmwalk(NULL, ...) also holds the list
 * of regions: visit must not call vmalloc functions on the walked region, nor
 * vmopen/vmclose/vmregion/vmwalk. Collect what it needs and act afterwards. */
int vmwalk(Vmalloc_t* vm, int (*visit)(Vmalloc_t*, void* block, size_t size, Vmdisc_t*, void* arg),
           void* arg);
Vmdisc_t* vmdisc(Vmalloc_t* vm, Vmdisc_t* disc);
/* vmview draws vm's arena (NULL: every region) as an SVG picture on fd, like
 * the paper's Figures 6 and 7: one row per `row` bytes (0: 8192), busy blocks
 * thick, free space thin, a colour per region. 0, or -1 with errno. */
int vmview(Vmalloc_t* vm, int fd, size_t row);

/* vmnewof/vmoldof: resize p to n objects of type plus x bytes (may move, the
 * content is kept); vmnewof zeroes the new space. The size is computed without
 * overflow: an impossible n gives NULL with errno ENOMEM. */
void* _vmnewof(Vmalloc_t* vm, void* p, size_t tsize, size_t n, size_t x, int type);
#define vmnewof(vm, p, type, n, x)                                                             \
    ((type*)_vmnewof((vm), (p), sizeof(type), (size_t)(n), (size_t)(x),                          \
                     VM_RSMOVE | VM_RSCOPY | VM_RSCLEAR))
#define vmoldof(vm, p, type, n, x)                                                             \
    ((type*)_vmnewof((vm), (p), sizeof(type), (size_t)(n), (size_t)(x), VM_RSMOVE | VM_RSCOPY))

/*
 * Scoped heaps (after librcd): each thread has a stack of heaps managed with
 * the call stack, with the process-wide global heap at the bottom. Every heap
 * is an ordinary region of method Vmscope (vmalloc, vmfree, vmstat, vmwalk
 * work on it); vmnew allocates in the calling thread's current heap.
 *
 *   VM_SUBHEAP { ... }       enter a sub-heap, run the block, leave it: all
 *                            still in it is freed (also on break/continue).
 *   VM_SWITCH(h) { ... }     make h current for the block, then switch back.
 *   VM_GLOBAL { ... }        the same with vmglobal(): allocations there live
 *                            for the whole process.
 *   VM_TXN(h) { ... }        a transactional sub-heap: its contents merge
 *                            into the parent when the block ends (addresses
 *                            kept), unless it called vmtxn_abort(h) and left
 *                            the block (break) first.
 *
 * A return or longjmp out of a block skips its leave: the sub-heap stays
 * current until vmunwind(h) (or the vmleave of a heap below it, which
 * complains) leaves it. The safe way out: VM_SUBHEAP_AS(h) names the heap,
 * and `r = vmescape(r); vmunwind(vmparent(h)); return r;`; around setjmp,
 * keep `Vmalloc_t* mark = vmcurrent();` and call vmunwind(mark) after the
 * longjmp.
 *
 * vmescape/vmimport move a block by copying it (the new address is returned,
 * the old block is freed, like realloc), except blocks over 1 KiB, whose own
 * segment changes heap and keeps its address. Misuse (another thread's
 * sub-heap, freeing into a heap that is neither current nor an ancestor,
 * escaping from the bottom heap, leaving what is not the current sub-heap)
 * writes a "vmalloc: ..." line on fd 2 and fails with EINVAL; with
 * VMSCOPE_DEBUG=1 in the environment it aborts, new blocks are filled with
 * 0xa0, freed ones with 0xfe, and blocks over 1 KiB end at a guard page.
 */
extern Vmethod_t* Vmscope;

Vmalloc_t* vmcurrent(void);                /* the calling thread's current heap */
Vmalloc_t* vmglobal(void);                 /* the process-wide heap at the bottom of every stack */
Vmalloc_t* vmenter(void);                  /* push a new sub-heap; it becomes current */
int vmleave(Vmalloc_t* heap);              /* pop it (must be current): free all still in it */
void* vmnew(size_t size);                  /* allocate in the current heap */
void* vmescape(void* block);               /* move block to the current heap's parent */
int vmescape_list(void** blocks, size_t n); /* vmescape each; the array gets the new addresses */
void* vmimport(Vmalloc_t* from, void* block); /* move block from `from` into the current heap */
Vmalloc_t* vmswitch(Vmalloc_t* heap);      /* make heap current; returns the previous one */
Vmalloc_t* vmtxn_begin(void);              /* push a transactional sub-heap */
int vmtxn_commit(Vmalloc_t* heap);         /* pop it, merging what is left into the parent */
int vmtxn_abort(Vmalloc_t* heap);          /* pop it, freeing everything in it */
int vmtxn_end(Vmalloc_t* heap);            /* commit if heap is still the current one, else 0 */
int vmdestructor(void* block, void (*fn)(void* block)); /* fn(block) when block is freed */
Vmalloc_t* vmheap_open(void);              /* a heap owned by a structure; closed with the current heap at the latest */
int vmheap_close(Vmalloc_t* heap);         /* run its destructors, free it all */
Vmalloc_t* vmparent(Vmalloc_t* heap);      /* the heap below heap (where it was made), or NULL */
int vmunwind(Vmalloc_t* heap);             /* leave every sub-heap above heap on this thread's stack */
Vmalloc_t* vmmust(Vmalloc_t* heap, const char* what); /* heap, or a message and abort() if NULL */
/* on != 0: malloc, calloc and realloc(NULL, n) of a thread inside a sub-heap
 * allocate in its current sub-heap (free and realloc find such blocks where
 * they are); outside sub-heaps they use Vmregion as always. Returns the old
 * setting. Only with the library's malloc (VMALLOC_MALLOC=ON). */
int vmscope_malloc(int on);

#define VM__CAT2(a, b) a##b
#define VM__CAT(a, b) VM__CAT2(a, b)
/* Two nested loops: the inner one runs the block once and absorbs break and
 * continue; the outer one's step then leaves (or switches back). */
#define VM__SCOPE(h, start, stop, o)                                                               \
    for (Vmalloc_t* h = vmmust((start), #start); h; stop, h = (Vmalloc_t*)0)                      \
        for (int o = 1; o; o = 0)
#define VM_SUBHEAP_AS(h) VM__SCOPE(h, vmenter(), vmleave(h), VM__CAT(vm__o, __COUNTER__))
#define VM_SUBHEAP VM_SUBHEAP_AS(VM__CAT(vm__h, __COUNTER__))
#define VM__SWITCH(p, heap) VM__SCOPE(p, vmswitch(heap), (void)vmswitch(p), VM__CAT(vm__o, __COUNTER__))
#define VM_SWITCH(heap) VM__SWITCH(VM__CAT(vm__p, __COUNTER__), (heap))
#define VM_GLOBAL VM_SWITCH(vmglobal())
#define VM_TXN(h) VM__SCOPE(h, vmtxn_begin(), (void)vmtxn_end(h), VM__CAT(vm__o, __COUNTER__))

/* -DVMFL: calls made from a file compiled with VMFL record __FILE__ and
 * __LINE__, which trace lines (and later debug and profile reports) name
 * (paper Figure 9). _vmflinfo notes them for the calling thread's next call. */
void _vmflinfo(const char* file, int line);

#ifdef __cplusplus
}
#endif

#if defined(VMFL) && !defined(__cplusplus)
#include <stdlib.h> /* declared before the macros below rename the calls */
#define malloc(n) (_vmflinfo(__FILE__, __LINE__), malloc(n))
#define calloc(n, m) (_vmflinfo(__FILE__, __LINE__), calloc(n, m))
#define realloc(p, n) (_vmflinfo(__FILE__, __LINE__), realloc(p, n))
#define free(p) (_vmflinfo(__FILE__, __LINE__), free(p))
#define vmalloc(vm, n) (_vmflinfo(__FILE__, __LINE__), vmalloc(vm, n))
#define vmalign(vm, n, a) (_vmflinfo(__FILE__, __LINE__), vmalign(vm, n, a))
#define vmfree(vm, p) (_vmflinfo(__FILE__, __LINE__), vmfree(vm, p))
#define vmresize(vm, p, n, t) (_vmflinfo(__FILE__, __LINE__), vmresize(vm, p, n, t))
#endif

#endif /* VMALLOC_H */
