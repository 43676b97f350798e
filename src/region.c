/*
 * region.c — the region core: vmopen/vmclose/vmclear/vmcompact, the
 * allocation entry points, statistics, flags, disciplines, events, and the
 * list of open regions behind vmregion() and vmwalk(NULL).
 *
 * The core checks arguments (NULL region, impossible sizes, bad alignments),
 * takes the region lock unless VM_TRUST, calls the method through its table,
 * writes the trace line, and then — unlocked — announces the call's fault to
 * the discipline's exceptf: VM_NOMEM (a positive answer retries the whole
 * call) or VM_BADADDR. Handlers may therefore use the region freely. The core
 * knows nothing of any method's structures.
 *
 * Lock order: vm_list_lock, then one region lock. A region lock may be held
 * while a discipline takes another region's lock (Vmdcheap -> Vmheap); never
 * the reverse, since Vmheap's discipline is the system's.
 */
#include "vmhdr.h"

#include <stdlib.h>

pthread_mutex_t vm_list_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t vm_cache_lock = PTHREAD_MUTEX_INITIALIZER;
int vm_malloc_slow = VM_SLOW_INIT; /* malloc.c clears it once configured */
Vmalloc_t* vm_list; /* regions made by vmopen; Vmheap is not on it */

static inline int vm_lock(Vmalloc_t* vm)
{
    if (vm->flags & VM_TRUST)
        return 0;
    pthread_mutex_lock(&vm->lock);
    return 1;
}

static inline void vm_unlock(Vmalloc_t* vm, int locked)
{
    if (locked)
        pthread_mutex_unlock(&vm->lock);
}

int vm_region_lock(Vmalloc_t* vm) { return vm_lock(vm); }

void vm_region_unlock(Vmalloc_t* vm, int locked) { vm_unlock(vm, locked); }

static int vm_event(Vmalloc_t* vm, Vmdisc_t* disc, int type, void* obj)
{
    return disc && disc->exceptf ? disc->exceptf(vm, type, obj, disc) : 0;
}

/* Announce the fault the method recorded; 1 if the call should be retried. */
static int vm_announce(Vmalloc_t* vm, int fault, void* obj)
{
    if (fault == VM_NOMEM) {
        if (vm_event(vm, vm->disc, VM_NOMEM, obj) > 0)
            return 1;
        errno = ENOMEM;
    } else if (fault == VM_BADADDR) {
        (void)vm_event(vm, vm->disc, VM_BADADDR, obj);
        errno = EINVAL;
    }
    return 0;
}

/* Zero the usable bytes [from, usable size of p). Locked. */
static void vm_zero_tail(Vmalloc_t* vm, void* p, long from)
{
    long to = vm->meth->sizef(vm, p);
    if (from < 0)
        from = 0;
    if (to > from)
        memset((char*)p + from, 0, (size_t)(to - from));
}

/* The call site of the call about to reach the method (region locked). */
static inline void vm_site(Vmalloc_t* vm, const char* file, int line, void* caller)
{
    vm->sitefile = file;
    vm->siteline = line;
    vm->sitecaller = caller;
}

/* The caller an entry point noted, taken with the call's file and line. */
static inline void* vm_caller(void)
{
    return __builtin_expect(__atomic_load_n(&vm_sites_on, __ATOMIC_RELAXED), 0) ? vm_caller_take()
                                                                                 : NULL;
}

/* The one allocation path behind vmalloc, vmalign and vmresize(NULL). */
static void* vm_alloc_call(Vmalloc_t* vm, size_t size, size_t align, int clear)
{
    const char* file;
    int line;
    vm_fl_take(&file, &line); /* even a call that fails uses its VMFL note up */
    void* caller = vm_caller();
    if (!vm) {
        errno = EINVAL;
        return NULL;
    }
    if (size > VM_MAXSIZE) {
        errno = ENOMEM;
        return NULL;
    }
    for (;;) {
        int locked = vm_lock(vm);
        vm->fault = 0;
        vm_site(vm, file, line, caller);
        void* p = vm->meth->allocf(vm, size, align);
        int fault = vm->fault;
        void* obj = vm->faultobj;
        if (p) {
            if (clear)
                vm_zero_tail(vm, p, 0);
            if (vm_tracing(vm))
                vm_trace(vm, NULL, p, size, file, line);
        }
        vm_unlock(vm, locked);
        vm_upkeep_poll();
        if (p)
            return p;
        if (!vm_announce(vm, fault, obj))
            return NULL;
    }
}

/* vm_served's rare half: sites are on, so the caller's note must go. */
__attribute__((noinline)) static void* vm_served_noted(void* p)
{
    (void)vm_caller_take();
    return p;
}

/* The lock-free path served a call with p: the call leaves no caller note
 * behind (vm_caller_forget). p passes through, so that the fast half of
 * vmalloc need not keep it in a saved register while the note is taken. */
static inline void* vm_served(void* p)
{
    if (__builtin_expect(__atomic_load_n(&vm_sites_on, __ATOMIC_RELAXED), 0))
        return vm_served_noted(p);
    return p;
}

/* The locked half of vmalloc, out of line so that the lock-free half saves
 * no registers. */
__attribute__((noinline)) void* vm_alloc_locked(Vmalloc_t* vm, size_t size, void* caller)
{
    vm_caller_here(caller);
    return vm_alloc_call(vm, size, 0, 0);
}

/* No bit of VM_SLOW_REGION: a method's tail entries may serve the call. */
static inline int vm_tail_ok(const Vmalloc_t* vm)
{
    return (__atomic_load_n(&vm_malloc_slow, __ATOMIC_RELAXED) & VM_SLOW_REGION) == 0 &&
           vm->meth->tailallocf;
}

/* vmalloc when the method has no tail entry or a slow bit is set. */
__attribute__((noinline)) static void* vm_alloc_other(Vmalloc_t* vm, size_t size, void* caller)
{
    if (vm && vm_fast_ok(vm)) {
        void* p = vm->meth->fastallocf(vm, size, 0);
        if (p)
            return vm_served(p);
    }
    return vm_alloc_locked(vm, size, caller);
}

void* vmalloc(Vmalloc_t* vm, size_t size)
{
    if (__builtin_expect(vm != NULL, 1) && __builtin_expect(vm_tail_ok(vm), 1))
        return vm->meth->tailallocf(vm, size, __builtin_return_address(0));
    return vm_alloc_other(vm, size, __builtin_return_address(0));
}

void* vmalign(Vmalloc_t* vm, size_t size, size_t align)
{
    if (vm && align <= VM_ALIGN && vm_is_pow2(align) && vm_fast_ok(vm)) {
        void* p = vm->meth->fastallocf(vm, size, align);
        if (p)
            return vm_served(p);
    }
    vm_caller_here(__builtin_return_address(0));
    if (!vm_is_pow2(align)) {
        vm_fl_drop();
        errno = EINVAL;
        return NULL;
    }
    return vm_alloc_call(vm, size, align, 0);
}

/* vmfree, announcing a bad address to the discipline or not. */
static int vm_free_call(Vmalloc_t* vm, void* block, int announce)
{
    const char* file;
    int line;
    vm_fl_take(&file, &line);
    void* caller = vm_caller();
    if (!vm) {
        errno = EINVAL;
        return -1;
    }
    if (!block)
        return 0;
    int locked = vm_lock(vm);
    vm->fault = 0;
    vm_site(vm, file, line, caller);
    long size = vm_tracing(vm) ? vm->meth->sizef(vm, block) : 0;
    int r = vm->meth->freef(vm, block);
    if (r == 0 && vm_tracing(vm))
        vm_trace(vm, block, NULL, (size_t)size, file, line);
    int fault = vm->fault;
    vm_unlock(vm, locked);
    if (r < 0) {
        errno = EINVAL; /* a refusal (e.g. Vmlast, not the last block) */
        if (announce)
            (void)vm_announce(vm, fault, block);
    }
    return r < 0 ? -1 : 0;
}

/* The method's lock-free free; 1 when it served the call. */
static inline int vm_free_fast(Vmalloc_t* vm, void* block)
{
    if (!vm || !block || !vm_fast_ok(vm) || vm->meth->fastfreef(vm, block) != 0)
        return 0;
    vm_caller_forget();
    return 1;
}

/* The locked half of vmfree (see vm_alloc_locked). */
__attribute__((noinline)) int vm_free_locked(Vmalloc_t* vm, void* block, void* caller)
{
    vm_caller_here(caller);
    return vm_free_call(vm, block, 1);
}

/* vmfree when the method has no tail entry or a slow bit is set. */
__attribute__((noinline)) static int vm_free_other(Vmalloc_t* vm, void* block, void* caller)
{
    if (vm_free_fast(vm, block))
        return 0;
    return vm_free_locked(vm, block, caller);
}

int vmfree(Vmalloc_t* vm, void* block)
{
    if (__builtin_expect(vm != NULL, 1) && __builtin_expect(vm_tail_ok(vm), 1))
        return vm->meth->tailfreef(vm, block, __builtin_return_address(0));
    return vm_free_other(vm, block, __builtin_return_address(0));
}

int vm_free_quiet(Vmalloc_t* vm, void* block)
{
    return vm_free_fast(vm, block) ? 0 : vm_free_call(vm, block, 0);
}

/* vmresize, announcing a bad address to the discipline or not. */
static void* vm_resize_call(Vmalloc_t* vm, void* block, size_t size, int type, int announce)
{
    if (!vm) {
        vm_fl_drop();
        errno = EINVAL;
        return NULL;
    }
    if (!block)
        return vm_alloc_call(vm, size, 0, (type & VM_RSCLEAR) != 0);
    if (size == 0) {
        (void)vmfree(vm, block);
        return NULL;
    }
    if ((type & ~VM_RSMOVE) == VM_RSCOPY && vm->meth->fastresizef && vm_fast_ok(vm) &&
        size <= VM_MAXSIZE) {
        void* p = vm->meth->fastresizef(vm, block, size);
        if (p) {
            vm_caller_forget();
            return p;
        }
    }
    const char* file;
    int line;
    vm_fl_take(&file, &line);
    void* caller = vm_caller();
    if (size > VM_MAXSIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (type & VM_RSCOPY)
        type |= VM_RSMOVE;
    for (;;) {
        int locked = vm_lock(vm);
        vm->fault = 0;
        vm_site(vm, file, line, caller);
        long old = (type & VM_RSCLEAR) ? vm->meth->sizef(vm, block) : 0;
        int saved = errno;
        errno = 0;
        void* p = vm->meth->resizef(vm, block, size, type);
        int err = errno;
        errno = saved;
        int fault = vm->fault;
        void* obj = vm->faultobj;
        if (p) {
            if (type & VM_RSCLEAR)
                vm_zero_tail(vm, p, (p == block || (type & VM_RSCOPY)) ? old : 0);
            if (vm_tracing(vm))
                vm_trace(vm, block, p, size, file, line);
        }
        vm_unlock(vm, locked);
        if (p)
            return p;
        if (fault == 0) { /* a refusal, or no room in place: the block is unchanged */
            errno = err ? err : ENOMEM;
            return NULL;
        }
        if (fault == VM_BADADDR && !announce) {
            errno = EINVAL;
            return NULL;
        }
        if (!vm_announce(vm, fault, obj))
            return NULL;
    }
}

void* vmresize(Vmalloc_t* vm, void* block, size_t size, int type)
{
    vm_caller_here(__builtin_return_address(0));
    return vm_resize_call(vm, block, size, type, 1);
}

void* vm_resize_quiet(Vmalloc_t* vm, void* block, size_t size, int type)
{
    return vm_resize_call(vm, block, size, type, 0);
}

void* vm_resize_move(Vmalloc_t* vm, void* block, size_t oldsize, size_t size, int type)
{
    if (!(type & (VM_RSMOVE | VM_RSCOPY)))
        return NULL;
    void* p = vm->meth->allocf(vm, size, 0);
    if (!p)
        return NULL;
    if (type & VM_RSCOPY)
        memcpy(p, block, oldsize < size ? oldsize : size);
    (void)vm->meth->freef(vm, block);
    return p;
}

void* _vmnewof(Vmalloc_t* vm, void* p, size_t tsize, size_t n, size_t x, int type)
{
    vm_caller_here(__builtin_return_address(0));
    size_t size;
    if (__builtin_mul_overflow(tsize, n, &size) || __builtin_add_overflow(size, x, &size)) {
        vm_fl_drop();
        errno = ENOMEM;
        return NULL;
    }
    return vmresize(vm, p, size, type);
}

char* vmstrdup(Vmalloc_t* vm, const char* s)
{
    vm_caller_here(__builtin_return_address(0));
    if (!s) {
        vm_fl_drop();
        errno = EINVAL;
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char* p = vmalloc(vm, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

long vmaddr(Vmalloc_t* vm, void* addr)
{
    if (!vm || !addr) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    long r = vm->meth->addrf(vm, addr);
    vm_unlock(vm, locked);
    return r;
}

long vmsize(Vmalloc_t* vm, void* block)
{
    if (!vm || !block) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    long r = vm->meth->sizef(vm, block);
    vm_unlock(vm, locked);
    return r;
}

void* vmsegment(Vmalloc_t* vm, void* addr)
{
    if (!vm) {
        errno = EINVAL;
        return NULL;
    }
    int locked = vm_lock(vm);
    Vmseg_t* seg = vm_seg_find(vm, addr);
    void* r = seg ? seg->addr : NULL;
    vm_unlock(vm, locked);
    return r;
}

int vmclear(Vmalloc_t* vm)
{
    if (!vm) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    vm->secret = vm_os_random(); /* every old header check word is now stale */
    if (vm_tracing(vm))
        vm_trace_region(vm, "clear");
    int r = vm->meth->clearf(vm);
    vm->n_busy = vm->s_busy = vm->max_busy = 0;
    vm_unlock(vm, locked);
    return r;
}

int vmcompact(Vmalloc_t* vm)
{
    if (!vm) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    int r = vm->meth->compactf(vm);
    vm_unlock(vm, locked);
    return r;
}

int vmstat(Vmalloc_t* vm, Vmstat_t* st)
{
    if (!st) {
        errno = EINVAL;
        return -1;
    }
    if (!vm)
        vm = vm_heap_region();
    memset(st, 0, sizeof *st);
    int locked = vm_lock(vm);
    st->n_busy = vm->n_busy;
    st->s_busy = vm->s_busy;
    st->max_busy = vm->max_busy;
    st->n_seg = vm->nsegs + (vm->tabdisc ? 1 : 0);
    st->extent = vm->extent;
    st->mode = vm->meth->id | (vm->flags & VM_FLAGS);
    int r = vm->meth->statf(vm, st); /* may correct the busy figures (thread caches) */
    vm_unlock(vm, locked);
    return r;
}

int vmset(Vmalloc_t* vm, int flags, int on)
{
    if (!vm) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    int old = vm->flags;
    flags &= VM_FLAGS;
    vm->flags = on ? (old | flags) : (old & ~flags);
    vm_unlock(vm, locked); /* the lock taken, if any, is released even if VM_TRUST changed */
    return old & VM_FLAGS;
}

Vmdisc_t* vmdisc(Vmalloc_t* vm, Vmdisc_t* disc)
{
    if (!vm) {
        errno = EINVAL;
        return NULL;
    }
    if (!disc)
        return vm->disc;
    if (!disc->memoryf) {
        errno = EINVAL;
        return NULL;
    }
    if (vm_event(vm, vm->disc, VM_DISC, disc) < 0) {
        errno = EPERM;
        return NULL;
    }
    /* Segments remember the discipline that gave them, so the old one still
     * takes back what it gave; the new one serves every later request. */
    int locked = vm_lock(vm);
    Vmdisc_t* old = vm->disc;
    vm->disc = disc;
    vm_unlock(vm, locked);
    return old;
}

int vmdbcheck(Vmalloc_t* vm)
{
    if (!vm) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    int n = vm->meth->checkf(vm);
    vm_unlock(vm, locked);
    return n;
}

/* Watching addresses is Vmdebug's: other regions refuse. */
int vmdbwatch(Vmalloc_t* vm, void* addr)
{
    if (!vm || vm->meth != &vm_debug_method) {
        errno = EINVAL;
        return -1;
    }
    int locked = vm_lock(vm);
    int r = vm_debug_watch(vm, addr);
    vm_unlock(vm, locked);
    return r;
}

/* Profiles are Vmprofile's; vm NULL writes every Vmprofile region's. */
int vmprofile(Vmalloc_t* vm, int fd)
{
    if ((vm && vm->meth != &vm_profile_method) || fd < 0) {
        errno = EINVAL;
        return -1;
    }
    return vm_profile_write(vm, fd);
}

/* ---- opening and closing ---------------------------------------------- */

static size_t vm_prefix(const Vmethod_t* meth)
{
    return (size_t)((char*)vm_state((Vmalloc_t*)0) - (char*)0) + meth->statesize;
}

static int vm_is_method(const Vmethod_t* meth)
{
    return meth && (meth == &vm_best_method || meth == &vm_pool_method || meth == &vm_last_method ||
                    meth == &vm_debug_method || meth == &vm_profile_method ||
                    meth == &vm_scope_method);
}

/* vmopen up to the VM_ENDOPEN event: everything but the list and the trace. */
static Vmalloc_t* vm_make(Vmdisc_t* disc, Vmethod_t* meth, int flags)
{
    if (vm_event(NULL, disc, VM_OPEN, NULL) < 0) {
        errno = ECANCELED;
        return NULL;
    }
    size_t prefix = vm_prefix(meth);
    size_t size = vm_round_size(vm_seg_need(prefix, 0), vm_round(disc));
    char* addr;
    while (!(addr = disc->memoryf(NULL, NULL, 0, size, disc))) {
        if (vm_event(NULL, disc, VM_NOMEM, (void*)size) <= 0) {
            errno = ENOMEM;
            return NULL;
        }
    }
    Vmseg_t* seg = vm_seg_format(addr, size, disc, prefix);
    if (!seg) {
        (void)disc->memoryf(NULL, addr, size, 0, disc);
        errno = ENOMEM;
        return NULL;
    }
    Vmalloc_t* vm = (Vmalloc_t*)(seg + 1);
    memset(vm, 0, prefix);
    vm->meth = meth;
    vm->disc = disc;
    vm->flags = flags;
    vm_os_lock_init(&vm->lock);
    vm->secret = vm_os_random();
    vm->segs = vm->seginline;
    vm->capsegs = VM_INLINE_SEGS;
    vm->home = seg;
    (void)vm_seg_enter(vm, seg);
    if (meth->initf(vm) < 0) {
        vm_seg_release_all(vm);
        pthread_mutex_destroy(&vm->lock);
        (void)disc->memoryf(NULL, addr, size, 0, disc);
        errno = ENOMEM;
        return NULL;
    }
    (void)vm_event(vm, disc, VM_ENDOPEN, NULL);
    return vm;
}

Vmalloc_t* vm_open_inner(Vmdisc_t* disc, Vmethod_t* meth)
{
    return vm_make(disc, meth, VM_TRUST | VM_INNER);
}

Vmalloc_t* vmopen(Vmdisc_t* disc, Vmethod_t* meth, int flags)
{
    if (!disc || !disc->memoryf || !vm_is_method(meth)) {
        errno = EINVAL;
        return NULL;
    }
    Vmalloc_t* vm = vm_make(disc, meth, flags & VM_FLAGS);
    if (!vm)
        return NULL;
    pthread_mutex_lock(&vm_list_lock);
    vm->next = vm_list;
    vm_list = vm;
    pthread_mutex_unlock(&vm_list_lock);
    if (vm_tracing(vm))
        vm_trace_region(vm, "open");
    return vm;
}

/* Unlink vm from the open list; 0, or -1 if it is not an open region. */
static int vm_unlist(Vmalloc_t* vm)
{
    int r = -1;
    pthread_mutex_lock(&vm_list_lock);
    for (Vmalloc_t** pp = &vm_list; *pp; pp = &(*pp)->next) {
        if (*pp == vm) {
            *pp = vm->next;
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&vm_list_lock);
    return r;
}

static int vm_listed(Vmalloc_t* vm)
{
    int r = 0;
    pthread_mutex_lock(&vm_list_lock);
    for (Vmalloc_t* v = vm_list; v; v = v->next)
        if (v == vm)
            r = 1;
    pthread_mutex_unlock(&vm_list_lock);
    return r;
}

int vmclose(Vmalloc_t* vm)
{
    if (!vm || vm == vm_heap_region() || !vm_listed(vm)) {
        errno = EINVAL;
        return -1;
    }
    Vmdisc_t* disc = vm->disc;
    if (vm_event(vm, disc, VM_CLOSE, NULL) < 0) {
        errno = EPERM;
        return -1;
    }
    if (vm_unlist(vm) < 0) { /* closed meanwhile by another thread */
        errno = EINVAL;
        return -1;
    }
    if (vm->meth->closef)
        vm->meth->closef(vm);
    int locked = vm_lock(vm); /* wait for calls in progress */
    if (vm_tracing(vm))
        vm_trace_region(vm, "close");
    vm_seg_release_all(vm);
    Vmseg_t* home = vm->home;
    Vmdisc_t* hdisc = home->disc;
    char* addr = home->addr;
    size_t size = home->size;
    vm_unlock(vm, locked);
    pthread_mutex_destroy(&vm->lock);
    (void)hdisc->memoryf(vm, addr, size, 0, hdisc); /* vm lives here: last */
    (void)vm_event(vm, disc, VM_ENDCLOSE, NULL);
    return 0;
}

/* ---- questions about all regions ---------------------------------------- */

/* The size of vm's segment holding addr, or 0; takes vm's lock (a segment
 * may grow in place meanwhile, so its size is read under it). */
static size_t vm_holder(Vmalloc_t* vm, void* addr)
{
    int locked = vm_lock(vm);
    Vmseg_t* seg = vm_seg_find(vm, addr);
    size_t size = seg ? seg->size : 0;
    vm_unlock(vm, locked);
    return size;
}

/* Regions can nest (a Vmdcheap region's segments are Vmheap blocks), so the
 * answer is the region whose segment holding addr is the smallest. */
Vmalloc_t* vmregion(void* addr)
{
    if (!addr)
        return NULL;
    Vmalloc_t* best = NULL;
    size_t bestsize = SIZE_MAX;
    pthread_mutex_lock(&vm_list_lock);
    Vmalloc_t* heap = vm_heap_region();
    for (Vmalloc_t* vm = heap; vm; vm = (vm == heap) ? vm_list : vm->next) {
        size_t size = vm_holder(vm, addr);
        if (size && size < bestsize) {
            best = vm;
            bestsize = size;
        }
    }
    pthread_mutex_unlock(&vm_list_lock);
    return best;
}

static int vm_walk_one(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    int locked = vm_lock(vm);
    int r = vm->meth->walkf(vm, visit, arg);
    vm_unlock(vm, locked);
    return r;
}

int vmwalk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    if (!visit) {
        errno = EINVAL;
        return -1;
    }
    if (vm)
        return vm_walk_one(vm, visit, arg);
    int r = 0;
    pthread_mutex_lock(&vm_list_lock);
    Vmalloc_t* heap = vm_heap_region();
    for (Vmalloc_t* v = heap; v && r == 0; v = (v == heap) ? vm_list : v->next)
        r = vm_walk_one(v, visit, arg);
    pthread_mutex_unlock(&vm_list_lock);
    return r;
}

/* ---- fork ---------------------------------------------------------------- */

/* Take every lock in the library's order: the thread caches' lock, the
 * region list, each open region (newest first: a region made over another
 * region is newer than it, and its discipline takes the other's lock inside
 * its own), Vmheap, the sbrk discipline's lock, the system discipline's
 * kept ranges, the trace buffer. Released in reverse by the handlers
 * below, in the parent and in the child. */
void vm_fork_prepare(void)
{
    pthread_mutex_lock(&vm_cache_lock);
    pthread_mutex_lock(&vm_list_lock);
    for (Vmalloc_t* vm = vm_list; vm; vm = vm->next)
        if (!(vm->flags & VM_TRUST))
            pthread_mutex_lock(&vm->lock);
    Vmalloc_t* heap = vm_heap_region();
    if (!(heap->flags & VM_TRUST))
        pthread_mutex_lock(&heap->lock);
    vm_sbrk_lock();
    vm_system_lock();
    vm_trace_fork_prepare();
}

void vm_fork_parent(void)
{
    vm_trace_fork_after();
    vm_system_unlock();
    vm_sbrk_unlock();
    Vmalloc_t* heap = vm_heap_region();
    if (!(heap->flags & VM_TRUST))
        pthread_mutex_unlock(&heap->lock);
    for (Vmalloc_t* vm = vm_list; vm; vm = vm->next)
        if (!(vm->flags & VM_TRUST))
            pthread_mutex_unlock(&vm->lock);
    pthread_mutex_unlock(&vm_list_lock);
    pthread_mutex_unlock(&vm_cache_lock);
}

void (*vm_fork_child_hook)(void);

/* The child is one thread, the one that forked, which holds every lock.
 * Once they are released, the malloc interface may act (its own trace file
 * for a child whose trace path names the pid). */
void vm_fork_child(void)
{
    vm_fork_parent();
    vm_upkeep_fork_child();
    if (vm_fork_child_hook)
        vm_fork_child_hook();
}

/* Regions are safe across fork whether or not this library is the process's
 * malloc, so the core registers the handlers itself. */
__attribute__((constructor)) static void vm_fork_register(void)
{
    pthread_atfork(vm_fork_prepare, vm_fork_parent, vm_fork_child);
}
