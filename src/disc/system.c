/*
 * disc/system.c — Vmdcsystem: segments are anonymous private mappings from
 * the kernel, zero-filled, released with munmap, grown and shrunk in place
 * with mremap (without moving, as the discipline contract requires). The
 * default raw memory of Vmheap and of regions that name no better source.
 *
 * Two internal twins serve Vmbest when its region's discipline is
 * Vmdcsystem (method/best.c, method/page.c); they give segments aligned to
 * 64 KiB, in whole 32 KiB, and their memory is not promised zero:
 *   vm_dc_system_aligned  small-block pages and best-fit segments;
 *   vm_dc_system_kept     huge blocks, each in a segment of its own.
 * A segment released through vm_dc_system_kept is kept mapped for a while
 * ("kept ranges"), so that the next huge block, or the next segment of
 * either twin, gets pages that are resident already: a program that frees
 * a buffer of some MiB and soon asks for another pays no munmap, no mmap
 * and no page fault per 4 KiB touched again (jemalloc keeps freed extents
 * until they decay; mimalloc keeps freed segments in its arenas).
 *
 * Kept ranges: at most SYS_NKEPT, SYS_KEEPMAX bytes together, address
 * ranges that the kernel maps and no segment uses. A new segment of either
 * twin is cut out of the smallest range that holds it (what is left on
 * either side stays kept); when none holds it the process is growing, so
 * every range goes back to the kernel before a new mapping is made: memory
 * kept for reuse never adds to the peak. A segment that grows in place
 * takes the kept range that follows it (sys_absorb): that is where the rest
 * of the range it was cut from lies. A range goes back SYS_KEEP_MS
 * after it was released, at the next call here or the next timed upkeep
 * step of a Vmbest region (vm_dc_system_tick, from a slow path or the
 * upkeep thread), and at once by vmcompact (malloc_trim) through
 * vm_dc_system_flush.
 *
 * Reservations. The kernel places mappings top-down, each just below the
 * last, so the addresses after a new segment are soon taken and mremap
 * cannot grow it. A new mapping of either twin is therefore the start of a
 * reserved span (no memory until touched, no commit charge: os.c's
 * vm_os_reserve) of twice its size, at least SYS_SPANMIN: growing the
 * segment within it opens pages (vm_os_commit), shrinking closes them
 * again (their memory goes back), releasing it unmaps the span (the kept
 * twin keeps the segment's pages and gives back the tail). Growth is
 * refused while a kept range exists that is at most SYS_KEPTFIT times the
 * growth: its pages are resident, and the caller's new segment is cut from
 * it; a range larger than that stays whole for a huge block. A block
 * growing at the end of a segment (the paper's fragment pattern: 7 moves
 * and 4 KiB copied, where 8 moves had copied 132 KiB and the arena held
 * both copies), a huge block's realloc, and the small-block pages (their
 * segment grows by an eighth instead of a new one mapped x1.25 larger) use
 * them. At most SYS_NRESV spans are open; the oldest then ends (its
 * segment becomes an ordinary mapping), and every span ends before a plain
 * mapping is retried when address space runs out (RLIMIT_AS). None on
 * 32-bit systems.
 *
 * Bounds: O(SYS_NKEPT + SYS_NRESV) per call of the twins; one global lock,
 * taken only there (segment calls, the slow path of every method).
 */
#include "../vmhdr.h"

#define SYSTEM_ALIGN ((size_t)64 << 10)
#define SYSTEM_ROUND ((size_t)32 << 10)
#define SYS_NKEPT 8
#define SYS_KEEPMAX ((size_t)32 << 20)
#define SYS_KEEP_MS 500
#define SYS_NRESV 64
#define SYS_SPANMIN ((size_t)2 << 20)
#define SYS_TAILMAX ((size_t)1 << 30)

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
Vmdisc_t* Vmdcsystem = &vm_dc_system;

/* ---- kept ranges ------------------------------------------------------------ */

typedef struct {
    char* addr;
    size_t size;  /* a multiple of the OS page */
    uint64_t ms;  /* when it was released */
} Sysrange_t;

static pthread_mutex_t sys_lock = PTHREAD_MUTEX_INITIALIZER;
static Sysrange_t sys_kept[SYS_NKEPT]; /* oldest first; guarded by sys_lock */
static size_t sys_nkept, sys_keptbytes;

typedef struct {
    char* addr;  /* the segment's start, and the span's */
    size_t size; /* the segment's bytes, open (a multiple of the OS page) */
    size_t span; /* bytes reserved from addr: the segment grows in place up to this */
} Sysresv_t;

static Sysresv_t sys_resv[SYS_NRESV]; /* oldest first; guarded by sys_lock */
static size_t sys_nresv;

/* Range i leaves the list. Locked. */
static void sys_remove(size_t i)
{
    sys_keptbytes -= sys_kept[i].size;
    sys_nkept -= 1;
    memmove(&sys_kept[i], &sys_kept[i + 1], (sys_nkept - i) * sizeof sys_kept[0]);
}

/* Give range i back to the kernel. Locked. */
static void sys_drop(size_t i)
{
    (void)vm_os_unmap(sys_kept[i].addr, sys_kept[i].size);
    sys_remove(i);
}

/* Give back the ranges released SYS_KEEP_MS ago or more (all if all). Locked. */
static void sys_expire(int all)
{
    uint64_t now = sys_nkept ? vm_os_now_ms() : 0;
    while (sys_nkept && (all || now - sys_kept[0].ms >= SYS_KEEP_MS))
        sys_drop(0);
}

/* Keep [addr, addr + size) (OS-page aligned), unless it is too big to keep:
 * the oldest ranges go back to make room. Locked. */
static void sys_keep(char* addr, size_t size, uint64_t ms)
{
    if (size > SYS_KEEPMAX) {
        (void)vm_os_unmap(addr, size);
        return;
    }
    while (sys_nkept == SYS_NKEPT || sys_keptbytes + size > SYS_KEEPMAX)
        sys_drop(0);
    sys_kept[sys_nkept++] = (Sysrange_t){addr, size, ms};
    sys_keptbytes += size;
}

/* size bytes at a multiple of SYSTEM_ALIGN cut out of the smallest kept
 * range that holds them, or NULL. Locked. */
static char* sys_take(size_t size)
{
    size_t best = sys_nkept;
    for (size_t i = 0; i < sys_nkept; ++i) {
        char* a = vm_ptr_up(sys_kept[i].addr, SYSTEM_ALIGN);
        if (a + size <= sys_kept[i].addr + sys_kept[i].size &&
            (best == sys_nkept || sys_kept[i].size < sys_kept[best].size))
            best = i;
    }
    if (best == sys_nkept)
        return NULL;
    Sysrange_t r = sys_kept[best];
    sys_remove(best);
    char* a = vm_ptr_up(r.addr, SYSTEM_ALIGN);
    char* end = r.addr + r.size;
    if (a > r.addr)
        sys_keep(r.addr, (size_t)(a - r.addr), r.ms);
    if (a + size < end)
        sys_keep(a + size, (size_t)(end - (a + size)), r.ms);
    return a;
}

/* Is a kept range there for a new segment instead of a growth by grow
 * bytes? One that it would not cut to pieces: a range more than
 * SYS_KEPTFIT times larger is left whole for a huge block (sqlite's replay
 * had a 128 KiB page segment cut from the front of a freed 2 MiB block's
 * range, and the next 2 MiB block then mapped fresh pages: +1.2 MiB at the
 * peak). Locked. */
#define SYS_KEPTFIT 16
static int sys_kept_fit(size_t grow)
{
    for (size_t i = 0; i < sys_nkept; ++i)
        if (sys_kept[i].size / SYS_KEPTFIT <= grow)
            return 1;
    return 0;
}

/* ---- reservations ------------------------------------------------------------ */

/* Span reserved for a new segment of size bytes: room to double, at least
 * SYS_SPANMIN, at most SYS_TAILMAX beyond the segment; 0 where address
 * space is scarce (32 bits). */
static size_t sys_span(size_t size)
{
    if (sizeof(void*) < 8 || size > SYS_TAILMAX)
        return 0;
    size_t span = size < SYS_SPANMIN / 2 ? SYS_SPANMIN : 2 * size;
    return vm_align_up(span, SYSTEM_ALIGN);
}

/* The reservation that starts at addr, or SYS_NRESV. Locked. */
static size_t sys_resv_find(const char* addr)
{
    size_t i = 0;
    while (i < sys_nresv && sys_resv[i].addr != addr)
        ++i;
    return i < sys_nresv ? i : SYS_NRESV;
}

static void sys_resv_remove(size_t i)
{
    sys_nresv -= 1;
    memmove(&sys_resv[i], &sys_resv[i + 1], (sys_nresv - i) * sizeof sys_resv[0]);
}

/* Reservation i ends: its tail goes back, its segment stays an ordinary
 * mapping (mremap then resizes it). Locked. */
static void sys_resv_drop(size_t i)
{
    Sysresv_t r = sys_resv[i];
    if (r.span > r.size)
        (void)vm_os_unmap(r.addr + r.size, r.span - r.size);
    sys_resv_remove(i);
}

/* size bytes at a multiple of SYSTEM_ALIGN at the start of a new
 * reservation, or NULL. The oldest reservation ends if the table is full.
 * Locked. */
static char* sys_reserve(size_t size)
{
    size_t span = sys_span(size);
    char* a = span ? vm_os_reserve(span, SYSTEM_ALIGN) : NULL;
    if (!a)
        return NULL;
    if (vm_os_commit(a, size) != 0) {
        (void)vm_os_unmap(a, span);
        return NULL;
    }
    if (sys_nresv == SYS_NRESV)
        sys_resv_drop(0);
    sys_resv[sys_nresv++] = (Sysresv_t){a, size, span};
    return a;
}

/* Resize the segment at addr in place within its reservation: 1 if done,
 * -1 if it has one but nsz does not fit in it, 0 if it has none. nsz = 0
 * ends the reservation with its segment (keep: the segment's pages stay
 * mapped for the caller to keep). Locked. */
static int sys_resv_resize(char* addr, size_t nsz, int keep)
{
    size_t i = sys_resv_find(addr);
    if (i == SYS_NRESV)
        return 0;
    Sysresv_t* r = &sys_resv[i];
    size_t n = vm_align_up(nsz, vm_os_pagesize());
    if (n == 0) {
        if (keep)
            sys_resv_drop(i);
        else {
            (void)vm_os_unmap(r->addr, r->span);
            sys_resv_remove(i);
        }
        return 1;
    }
    if (n > r->span)
        return -1;
    if (n > r->size) {
        /* Kept pages first: they are resident already, and a new segment
         * cut from them costs no page fault (the caller makes one when
         * this fails); growing here instead faulted dot's replay 13 ms of
         * system time in, and expiring them first added to the peak. */
        sys_expire(0);
        if (sys_kept_fit(n - r->size) || vm_os_commit(r->addr + r->size, n - r->size) != 0)
            return -1;
    }
    if (n < r->size && vm_os_decommit(r->addr + n, r->size - n) != 0)
        return -1;
    r->size = n;
    return 1;
}

/* A new segment for either twin: from a kept range, else (every range
 * given back first: the process grows) at the start of a reservation, else
 * a plain mapping, with every reservation's tail given back first if
 * address space ran out. */
static void* sys_new(size_t size)
{
    size = vm_align_up(size, vm_os_pagesize());
    pthread_mutex_lock(&sys_lock);
    sys_expire(0);
    char* a = sys_take(size);
    if (!a) {
        sys_expire(1);
        a = sys_reserve(size);
    }
    pthread_mutex_unlock(&sys_lock);
    if (!a && !(a = vm_os_map_aligned(size, SYSTEM_ALIGN))) {
        pthread_mutex_lock(&sys_lock);
        while (sys_nresv)
            sys_resv_drop(0);
        pthread_mutex_unlock(&sys_lock);
        a = vm_os_map_aligned(size, SYSTEM_ALIGN);
    }
    return a;
}

/* Grow the segment [addr, addr + csz) in place to nsz bytes over the kept
 * range that starts where it ends, when that range is long enough: its
 * pages are mapped already (a segment cut from a range is followed by the
 * rest of it), where mremap would find the addresses taken. What the
 * growth leaves of the range stays kept. 1 if done. */
static int sys_absorb(char* addr, size_t csz, size_t nsz)
{
    size_t page = vm_os_pagesize();
    char* end = addr + vm_align_up(csz, page);
    size_t grow = vm_align_up(nsz, page) - (size_t)(end - addr);
    int done = 0;
    pthread_mutex_lock(&sys_lock);
    for (size_t i = 0; i < sys_nkept && !done; ++i) {
        if (sys_kept[i].addr != end || sys_kept[i].size < grow)
            continue;
        Sysrange_t r = sys_kept[i];
        sys_remove(i);
        if (r.size > grow)
            sys_keep(end + grow, r.size - grow, r.ms);
        done = 1;
    }
    pthread_mutex_unlock(&sys_lock);
    return done;
}

/* Resize or release [addr, addr + csz) within its reservation: 1 done, -1
 * refused, 0 it has none. */
static int sys_resv_call(char* addr, size_t nsz, int keep)
{
    pthread_mutex_lock(&sys_lock);
    int r = sys_resv_resize(addr, nsz, keep);
    pthread_mutex_unlock(&sys_lock);
    return r;
}

static void* system_aligned_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz,
                                   Vmdisc_t* disc)
{
    if (csz == 0)
        return nsz ? sys_new(nsz) : NULL;
    int r = sys_resv_call(addr, nsz, 0);
    if (r != 0)
        return r > 0 ? addr : NULL;
    if (nsz > csz && sys_absorb(addr, csz, nsz))
        return addr;
    return system_memory(vm, addr, csz, nsz, disc);
}

static void* system_kept_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    if (csz == 0 || nsz != 0)
        return system_aligned_memory(vm, addr, csz, nsz, disc);
    (void)sys_resv_call(addr, 0, 1); /* the tail goes, the pages are kept */
    pthread_mutex_lock(&sys_lock);
    sys_expire(0);
    sys_keep(addr, vm_align_up(csz, vm_os_pagesize()), vm_os_now_ms());
    pthread_mutex_unlock(&sys_lock);
    return addr;
}

/* Sizes in whole 32 KiB, a small page: a page segment grows in place by
 * one page. (Segments start at a multiple of 64 KiB, a large page; new
 * mappings are mostly reservations, whose spans are whole 64 KiB, so the
 * kernel's next placement stays aligned.) */
Vmdisc_t vm_dc_system_aligned = {system_aligned_memory, NULL, SYSTEM_ROUND};
Vmdisc_t vm_dc_system_kept = {system_kept_memory, NULL, SYSTEM_ROUND};

int vm_dc_system_tick(void)
{
    pthread_mutex_lock(&sys_lock);
    sys_expire(0);
    int left = sys_nkept > 0;
    pthread_mutex_unlock(&sys_lock);
    return left;
}

void vm_dc_system_flush(void)
{
    pthread_mutex_lock(&sys_lock);
    sys_expire(1);
    pthread_mutex_unlock(&sys_lock);
}

void vm_system_lock(void) { pthread_mutex_lock(&sys_lock); }
void vm_system_unlock(void) { pthread_mutex_unlock(&sys_lock); }
