/*
 * method/debug.c — Vmdebug, best fit with memory error detection (paper
 * §2.3.3, §4, Figure 9): overwrites past the end or before the start of a
 * block, frees and resizes of addresses never allocated or already freed,
 * writes to freed blocks, and alerts for watched addresses. The program keeps
 * running past every error (unless VM_DBABORT): a bad call is refused and
 * reported, never carried out.
 *
 * Layout. Blocks come from an inner Vmbest region (inner.c). Each is
 *     [Db_hdr_t header, ending in a 16-byte front guard][user bytes][tail guard]
 * the tail guard filling up to the next 16 bytes plus DB_TAIL (32), so an
 * overflow by up to 32 bytes stays inside the block, where it is seen. The header holds
 * the requested size, the allocation site (file, line, caller), the state
 * (busy or freed) and a check word keyed with the region's secret, so any
 * pointer is validated without trusting it: it must lie in one of the
 * region's segments, be 16-aligned, and have a header whose check word
 * matches. New blocks are filled with DB_NEW, guards with DB_GUARD, freed
 * blocks with DB_FREED.
 *
 * Freed blocks are not given back at once: they wait in a quarantine (a ring
 * of at most DB_QUARN blocks and DB_QUARBYTES bytes), still marked freed, so
 * a second free says "already freed" and a write after free is seen when the
 * block leaves the quarantine or at a check.
 *
 * Guard-page mode (VM_DBGUARD at vmopen, librcd's PAGE_AND_NOREUSE): a block
 * is [header page][data pages][guard page], the user bytes ending at the end
 * of the data pages (up to alignment), the guard page inaccessible; a freed
 * block's data pages are made inaccessible while it is in quarantine. An
 * overflow past the alignment slack, or any use after free, faults at the
 * faulting instruction. Pointers are then validated with vmaddr() on the
 * inner region, which never touches the protected pages.
 *
 * Checks. Each call checks the DB_NRECENT blocks allocated last (where fresh
 * overflows happen) and, with VM_DBCHECK or a period, the whole region;
 * vmdbcheck() checks it on demand, and every Vmdebug region is checked once
 * more at exit. A corrupted block is reported once.
 *
 * Messages go to standard error, one write() per line, formatted without
 * allocating:
 *   corrupted data:region=R:block=B:bad byte at=N:allocated at=F,L:
 *   corrupted data:region=R:block=B:bad byte at=N:freed block:allocated at=F,L:
 *   free error:region=R:block=B:unallocated block:detected at=F,L:
 *   free error:region=R:block=B:already freed:detected at=F,L:
 *   resize error:... (the same two, for vmresize/realloc)
 *   alert:region=R:block=B:size=N:just allocated|being freed|being resized:detected at=F,L:
 * F,L is the -DVMFL site, or function+0xoffset of the caller, or <>,0.
 *
 * Bounds: a call costs O(size) for filling and checking the block, O(1)
 * otherwise (plus DB_NRECENT small checks); a whole-region check is O(total
 * bytes). Memory: an 80-byte header and 32 to 47 bytes of tail guard per
 * block, plus the quarantine.
 */
#include "../vmhdr.h"

#define DB_NEW 0xa5u   /* fresh blocks */
#define DB_FREED 0xdfu /* freed blocks in quarantine */
#define DB_GUARD 0xdbu /* guard bytes around a block */

#define DB_BUSY 1u
#define DB_FREE 2u
#define DB_GPAGE 1u /* hdr->mode: a guard-page block */

#define DB_NWATCH 32
#define DB_NRECENT 8
#define DB_QUARN 1024
#define DB_QUARBYTES ((size_t)8 << 20)
#define DB_FRONT 16

typedef struct db_hdr_s {
    uint64_t check; /* vm_check(vm, hdr, db_word(hdr)) */
    size_t size;    /* requested bytes */
    const char* file;
    void* caller;
    int line;
    uint16_t state;   /* DB_BUSY or DB_FREE */
    uint8_t mode;     /* DB_GPAGE */
    uint8_t reported; /* a corruption of this block was reported */
    uint32_t lead;    /* the inner block starts lead bytes before the header */
    uint32_t uoff;    /* the user block starts uoff bytes after the header */
    size_t dbytes;    /* guard-page block: bytes of its data pages */
    uint64_t spare;
    unsigned char front[DB_FRONT];
} Db_hdr_t;

typedef struct db_s {
    Vminner_t in;
    unsigned period;  /* check the whole region every period-th call; 0: never */
    unsigned long calls;
    int guard;        /* guard-page mode, fixed at vmopen */
    int nwatch;
    void* watch[DB_NWATCH];
    Db_hdr_t* recent[DB_NRECENT]; /* busy: db_retire takes a block out, vmclear all */
    unsigned nextrecent;
    Db_hdr_t* quar[DB_QUARN]; /* ring: quar[qhead] is the oldest */
    size_t qhead, qn, qbytes;
} Db_t;

_Static_assert(sizeof(Db_hdr_t) % 16 == 0, "the header keeps blocks 16-aligned");

static inline Db_t* db_state(Vmalloc_t* vm) { return (Db_t*)vm_state(vm); }

/* What the check word covers; bit 63 is never set (inner.c's marker). */
static inline uint64_t db_word(const Db_hdr_t* h)
{
    return ((uint64_t)h->size ^ ((uint64_t)h->state << 60) ^ ((uint64_t)h->mode << 58) ^
            ((uint64_t)h->lead << 24) ^ ((uint64_t)h->uoff << 8)) &
           ~((uint64_t)1 << 63);
}

static inline void db_seal(Vmalloc_t* vm, Db_hdr_t* h) { h->check = vm_check(vm, h, db_word(h)); }

static inline int db_sealed(Vmalloc_t* vm, const Db_hdr_t* h)
{
    return h->check == vm_check(vm, h, db_word(h));
}

static inline char* db_user(Db_hdr_t* h) { return (char*)h + h->uoff; }

static inline size_t db_page(void) { return vm_os_pagesize(); }

/* Bytes from the user block's start to its inner block's end: the block and
 * a tail guard at least DB_TAIL bytes long, so an overflow by that much
 * stays inside the block, where it is seen. */
#define DB_TAIL 32
static inline size_t db_tail(size_t size) { return vm_align_up(size, 16) + DB_TAIL; }

/* The guard spans of a block: [f0, f1) before the user bytes (besides the
 * header's front guard) and [t0, t1) after them. */
static void db_spans(Db_hdr_t* h, char** f0, char** f1, char** t0, char** t1)
{
    char* u = db_user(h);
    if (h->mode & DB_GPAGE) {
        char* data = (char*)h + sizeof *h; /* the header ends its page */
        *f0 = data;
        *f1 = u;
        *t0 = u + h->size;
        *t1 = data + h->dbytes;
    } else {
        *f0 = *f1 = u;
        *t0 = u + h->size;
        *t1 = u + db_tail(h->size);
    }
}

/* ---- messages ----------------------------------------------------------- */

static void db_emit(Vmalloc_t* vm, char* buf, char* p)
{
    *p++ = '\n';
    (void)vm_os_write(2, buf, (size_t)(p - buf));
    if (vm->flags & VM_DBABORT)
        vm_os_abort();
}

/* "KIND:region=R:block=B:" */
static char* db_head(char* p, char* end, const char* kind, Vmalloc_t* vm, const void* b)
{
    p = vm_put_str(p, end, kind);
    p = vm_put_str(p, end, ":region=");
    p = vm_fmt_hex(p, (uintptr_t)vm);
    p = vm_put_str(p, end, ":block=");
    p = vm_fmt_hex(p, (uintptr_t)b);
    *p++ = ':';
    return p;
}

/* "detected at=SITE:" with the site of the current call. */
static char* db_detected(char* p, char* end, Vmalloc_t* vm)
{
    p = vm_put_str(p, end, "detected at=");
    p = vm_site_put(p, end, vm->sitefile, vm->siteline, vm->sitecaller);
    *p++ = ':';
    return p;
}

/* free error / resize error: what is "unallocated block" or "already freed". */
static void db_bad_call(Vmalloc_t* vm, const char* kind, const void* b, const char* what)
{
    char buf[640], *end = buf + sizeof buf - 1;
    char* p = db_head(buf, end, kind, vm, b);
    p = vm_put_str(p, end, what);
    *p++ = ':';
    db_emit(vm, buf, db_detected(p, end, vm));
}

static void db_alert(Vmalloc_t* vm, const void* b, size_t size, const char* what)
{
    Db_t* st = db_state(vm);
    for (int i = 0; i < st->nwatch; ++i) {
        if (st->watch[i] == b) {
            char buf[640], *end = buf + sizeof buf - 1;
            char* p = db_head(buf, end, "alert", vm, b);
            p = vm_put_field(p, end, "size=", size);
            p = vm_put_str(p, end, what);
            *p++ = ':';
            db_emit(vm, buf, db_detected(p, end, vm));
            return;
        }
    }
}

static void db_corrupted(Vmalloc_t* vm, Db_hdr_t* h, long at)
{
    char buf[640], *end = buf + sizeof buf - 1;
    char* p = db_head(buf, end, "corrupted data", vm, db_user(h));
    p = vm_put_str(p, end, "bad byte at=");
    if (at < 0) {
        *p++ = '-';
        at = -at;
    }
    p = vm_fmt_dec(p, (size_t)at);
    *p++ = ':';
    if (h->state == DB_FREE)
        p = vm_put_str(p, end, "freed block:");
    p = vm_put_str(p, end, "allocated at=");
    p = vm_site_put(p, end, h->file, h->line, h->caller);
    *p++ = ':';
    h->reported = 1;
    db_emit(vm, buf, p);
}

/* ---- checking a block ----------------------------------------------------- */

/* The first byte of [p, e) that is not v, or NULL; eight at a time. */
static const unsigned char* db_bad(const unsigned char* p, const unsigned char* e, unsigned v)
{
    uint64_t all = 0x0101010101010101ull * (uint8_t)v, w;
    for (; e - p >= 8; p += 8) {
        memcpy(&w, p, 8);
        if (w != all)
            break;
    }
    for (; p < e; ++p)
        if (*p != v)
            return p;
    return NULL;
}

/* Are h's guards (and, freed, its bytes) intact? If not: 1, reported once.
 * The first bad byte after the block wins over one before it, as that is
 * the usual overflow. Guard-page freed blocks are inaccessible: only the
 * header is looked at. */
static int db_check_block(Vmalloc_t* vm, Db_hdr_t* h)
{
    char *f0, *f1, *t0, *t1;
    const unsigned char* bad;
    char* u = db_user(h);
    long at = 0;
    int found = 0;
    if ((h->mode & DB_GPAGE) && h->state == DB_FREE)
        return 0;
    db_spans(h, &f0, &f1, &t0, &t1);
    if (h->state == DB_FREE && (bad = db_bad((unsigned char*)u, (unsigned char*)t0, DB_FREED))) {
        at = (long)((char*)bad - u);
        found = 1;
    } else if ((bad = db_bad((unsigned char*)t0, (unsigned char*)t1, DB_GUARD))) {
        at = (long)((char*)bad - u);
        found = 1;
    } else if ((bad = db_bad(h->front, h->front + DB_FRONT, DB_GUARD))) {
        at = -(long)((char*)h->front + DB_FRONT - (char*)bad) - (long)(f1 - f0);
        found = 1;
    } else if ((bad = db_bad((unsigned char*)f0, (unsigned char*)f1, DB_GUARD))) {
        at = -(long)(f1 - (char*)bad);
        found = 1;
    }
    if (found && !h->reported)
        db_corrupted(vm, h, at);
    return found;
}

/* ---- finding a block -------------------------------------------------------- */

/* The header of the inner block ib (usable ibsize), if it is a block of
 * this region in one of the given states. */
static Db_hdr_t* db_hdr_of(Vmalloc_t* vm, char* ib, size_t ibsize, unsigned states)
{
    Db_t* st = db_state(vm);
    Db_hdr_t* h = (Db_hdr_t*)vm_inner_head(&st->in, ib, ibsize);
    if (!h || (char*)h + sizeof *h > ib + ibsize || !db_sealed(vm, h) || !(h->state & states))
        return NULL;
    return h;
}

/* The header of p, which claims to be a block of vm: busy or freed (in
 * quarantine), or NULL. Reads no memory outside the region's segments. */
static Db_hdr_t* db_lookup(Vmalloc_t* vm, void* p)
{
    Db_t* st = db_state(vm);
    char* u = p;
    if (((uintptr_t)u & 15) != 0)
        return NULL;
    Db_hdr_t* h;
    if (st->guard) {
        size_t ibsize;
        char* ib = vm_inner_find(&st->in, u, &ibsize);
        if (!ib)
            return NULL;
        h = db_hdr_of(vm, ib, ibsize, DB_BUSY | DB_FREE);
    } else {
        Vmseg_t* seg = vm_seg_find(vm, u);
        if (!seg || u - sizeof(Db_hdr_t) < seg->addr)
            return NULL;
        h = (Db_hdr_t*)(u - sizeof(Db_hdr_t));
        if (!db_sealed(vm, h) || !(h->state & (DB_BUSY | DB_FREE)))
            return NULL;
    }
    return h && db_user(h) == u ? h : NULL;
}

/* A busy block for freef/resizef, or NULL after the error is reported. */
static Db_hdr_t* db_busy(Vmalloc_t* vm, void* p, const char* kind)
{
    Db_hdr_t* h = db_lookup(vm, p);
    if (h && h->state == DB_BUSY)
        return h;
    db_bad_call(vm, kind, p, h ? "already freed" : "unallocated block");
    vm_fault(vm, VM_BADADDR, p);
    return NULL;
}

/* ---- whole-region checks ------------------------------------------------------ */

typedef struct db_walk_s {
    Vmalloc_t* vm;
    int found;                                   /* corrupted blocks */
    Vmvisit_f visit;                             /* vmwalk's visitor, or NULL: check */
    void* arg;
} Db_walk_t;

static int db_walk_inner(Vmalloc_t* inner, void* ib, size_t size, Vmdisc_t* disc, void* arg)
{
    Db_walk_t* w = arg;
    (void)inner;
    (void)disc;
    Db_hdr_t* h = db_hdr_of(w->vm, ib, size, w->visit ? DB_BUSY : DB_BUSY | DB_FREE);
    if (!h)
        return 0;
    if (w->visit)
        return w->visit(w->vm, db_user(h), h->size, w->vm->disc, w->arg);
    w->found += db_check_block(w->vm, h);
    return 0;
}

static int db_check_all(Vmalloc_t* vm)
{
    Db_walk_t w = {vm, 0, NULL, NULL};
    (void)vmwalk(db_state(vm)->in.vm, db_walk_inner, &w);
    return w.found;
}

/* At the start of every call: the blocks allocated last, and the whole
 * region when VM_DBCHECK or the period says so. */
static void db_entry(Vmalloc_t* vm)
{
    Db_t* st = db_state(vm);
    st->calls += 1;
    if ((vm->flags & VM_DBCHECK) || (st->period && st->calls % st->period == 0)) {
        (void)db_check_all(vm);
        return;
    }
    if (st->guard)
        return;
    /* A header an underflow has reached no longer checks: its block is left
     * alone (its free will say "unallocated block") rather than trusted. */
    for (int i = 0; i < DB_NRECENT; ++i) {
        Db_hdr_t* h = st->recent[i];
        if (h && !h->reported && db_sealed(vm, h))
            (void)db_check_block(vm, h);
    }
}

/* ---- making and retiring blocks ------------------------------------------------ */

static void db_fill_guards(Db_hdr_t* h)
{
    char *f0, *f1, *t0, *t1;
    db_spans(h, &f0, &f1, &t0, &t1);
    memset(h->front, DB_GUARD, DB_FRONT);
    memset(f0, DB_GUARD, (size_t)(f1 - f0));
    memset(t0, DB_GUARD, (size_t)(t1 - t0));
}

/* A new busy block of size bytes aligned to align; NULL (fault set) if the
 * inner region has no memory. Not counted in the region's accounting. */
static char* db_make(Vmalloc_t* vm, size_t size, size_t align)
{
    Db_t* st = db_state(vm);
    size_t a = align > VM_ALIGN ? align : VM_ALIGN;
    size_t dbytes = 0;
    Db_hdr_t* h;
    char* u;
    uint32_t lead;
    unsigned mode = 0;
    if (st->guard && a <= db_page()) {
        size_t page = db_page();
        size_t data = vm_align_up(size ? size : 1, page);
        if (data > VM_MAXSIZE - 2 * page)
            return NULL;
        char* ib = vm_inner_place_lead(&st->in, data + 2 * page, page, page - sizeof *h);
        if (!ib)
            return NULL;
        h = (Db_hdr_t*)(ib + page - sizeof *h);
        u = (char*)((uintptr_t)(ib + page + data - size) & ~(uintptr_t)(a - 1));
        lead = (uint32_t)(page - sizeof *h);
        mode = DB_GPAGE;
        dbytes = data;
        /* Should the kernel refuse, the tail bytes still catch overflows. */
        (void)vm_os_protect(ib + page + data, page, 0);
    } else {
        size_t lead0;
        h = (Db_hdr_t*)vm_inner_place(&st->in, sizeof *h, db_tail(size), a, &lead0);
        if (!h)
            return NULL;
        u = (char*)(h + 1);
        lead = (uint32_t)lead0;
    }
    memset(h, 0, sizeof *h);
    h->size = size;
    h->file = vm->sitefile;
    h->line = vm->siteline;
    h->caller = vm->sitecaller;
    h->state = DB_BUSY;
    h->mode = (uint8_t)mode;
    h->uoff = (uint32_t)(u - (char*)h);
    h->lead = lead;
    h->dbytes = dbytes;
    db_seal(vm, h);
    memset(u, DB_NEW, size);
    db_fill_guards(h);
    st->recent[st->nextrecent++ % DB_NRECENT] = h;
    return u;
}

/* The inner block of h. */
static inline char* db_inner_block(Db_hdr_t* h) { return (char*)h - h->lead; }

/* Give a freed block back to the inner region, after a last look for writes
 * made since it was freed. */
static void db_release(Vmalloc_t* vm, Db_hdr_t* h)
{
    Db_t* st = db_state(vm);
    char* ib = db_inner_block(h);
    if (h->mode & DB_GPAGE) {
        (void)vm_os_protect((char*)h + sizeof *h, h->dbytes + db_page(), 1);
    }
    (void)db_check_block(vm, h);
    h->check = 0;
    h->state = 0;
    if (ib != (char*)h)
        vm_inner_wipe(ib);
    (void)vmfree(st->in.vm, ib);
}

/* Into the quarantine; the oldest blocks leave it to keep it bounded. */
static void db_retire(Vmalloc_t* vm, Db_hdr_t* h)
{
    Db_t* st = db_state(vm);
    char* u = db_user(h);
    for (int i = 0; i < DB_NRECENT; ++i)
        if (st->recent[i] == h)
            st->recent[i] = NULL;
    h->state = DB_FREE;
    h->reported = 0;
    db_seal(vm, h);
    if (h->mode & DB_GPAGE)
        (void)vm_os_protect((char*)h + sizeof *h, h->dbytes, 0);
    else
        memset(u, DB_FREED, h->size);
    size_t bytes = h->size + sizeof *h;
    if (bytes > DB_QUARBYTES) {
        db_release(vm, h);
        return;
    }
    while (st->qn && (st->qn == DB_QUARN || st->qbytes + bytes > DB_QUARBYTES)) {
        Db_hdr_t* old = st->quar[st->qhead];
        st->qhead = (st->qhead + 1) % DB_QUARN;
        st->qn -= 1;
        st->qbytes -= old->size + sizeof *old;
        db_release(vm, old);
    }
    st->quar[(st->qhead + st->qn) % DB_QUARN] = h;
    st->qn += 1;
    st->qbytes += bytes;
}

/* ---- the method ------------------------------------------------------------------ */

static int db_init(Vmalloc_t* vm)
{
    Db_t* st = db_state(vm);
    st->guard = (vm->flags & VM_DBGUARD) != 0;
    return vm_inner_open(&st->in, vm) < 0 ? -1 : 0;
}

static void* db_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    db_entry(vm);
    char* u = db_make(vm, size, align);
    if (!u)
        return NULL;
    vm_busy_add(vm, size);
    db_alert(vm, u, size, "just allocated");
    return u;
}

static int db_free(Vmalloc_t* vm, void* block)
{
    db_entry(vm);
    Db_hdr_t* h = db_busy(vm, block, "free error");
    if (!h)
        return -1;
    db_alert(vm, block, h->size, "being freed");
    (void)db_check_block(vm, h);
    vm_busy_sub(vm, h->size);
    db_retire(vm, h);
    return 0;
}

/* Can h hold size bytes where it is (growing its inner block in place if
 * grow)? A guard-page block only within its data pages. */
static int db_fits(Vmalloc_t* vm, Db_hdr_t* h, size_t size, int grow)
{
    if (h->mode & DB_GPAGE)
        return size <= h->dbytes - (size_t)(db_user(h) - ((char*)h + sizeof *h));
    Db_t* st = db_state(vm);
    char* ib = db_inner_block(h);
    size_t need = (size_t)(db_user(h) - ib) + db_tail(size);
    long have = vmsize(st->in.vm, ib);
    if (have >= 0 && (size_t)have >= need)
        return 1;
    return grow && vmresize(st->in.vm, ib, need, 0) != NULL;
}

static void* db_resize(Vmalloc_t* vm, void* block, size_t size, int type)
{
    db_entry(vm);
    Db_hdr_t* h = db_busy(vm, block, "resize error");
    if (!h)
        return NULL;
    db_alert(vm, block, size, "being resized");
    (void)db_check_block(vm, h);
    size_t old = h->size;
    if (db_fits(vm, h, size, 1)) {
        char* u = db_user(h);
        if (size > old)
            memset(u + old, DB_NEW, size - old);
        h->size = size;
        db_seal(vm, h);
        db_fill_guards(h);
        vm_busy_resize(vm, old, size);
        return block;
    }
    if (!(type & (VM_RSMOVE | VM_RSCOPY)))
        return NULL;
    char* u = db_make(vm, size, 0);
    if (!u)
        return NULL;
    if (type & VM_RSCOPY)
        memcpy(u, block, old < size ? old : size);
    vm_busy_sub(vm, old);
    vm_busy_add(vm, size);
    db_retire(vm, h);
    db_alert(vm, u, size, "just allocated");
    return u;
}

static long db_addr(Vmalloc_t* vm, void* addr)
{
    Db_t* st = db_state(vm);
    size_t ibsize;
    char* ib = vm_inner_find(&st->in, addr, &ibsize);
    Db_hdr_t* h = ib ? db_hdr_of(vm, ib, ibsize, DB_BUSY) : NULL;
    return h ? vm_user_offset(db_user(h), h->size, addr) : -1;
}

static long db_size(Vmalloc_t* vm, void* block)
{
    Db_hdr_t* h = db_lookup(vm, block);
    return h && h->state == DB_BUSY ? (long)h->size : -1;
}

/* Guard pages go back to normal before the inner region forgets its blocks. */
static int db_unprotect_inner(Vmalloc_t* inner, void* ib, size_t size, Vmdisc_t* disc, void* arg)
{
    (void)inner;
    (void)disc;
    Vmalloc_t* vm = arg;
    Db_hdr_t* h = db_hdr_of(vm, ib, size, DB_BUSY | DB_FREE);
    if (h && (h->mode & DB_GPAGE))
        (void)vm_os_protect((char*)h + sizeof *h, h->dbytes + db_page(), 1);
    return 0;
}

static int db_clear(Vmalloc_t* vm)
{
    Db_t* st = db_state(vm);
    st->qhead = st->qn = st->qbytes = 0;
    memset(st->recent, 0, sizeof st->recent);
    return vm_inner_clear(&st->in, st->guard ? db_unprotect_inner : NULL, vm);
}

/* Pages go back to the discipline accessible: a user's buffer is the user's
 * again after vmclose. */
static void db_close(Vmalloc_t* vm)
{
    Db_t* st = db_state(vm);
    if (st->guard)
        (void)vmwalk(st->in.vm, db_unprotect_inner, vm);
    vm_inner_close(&st->in);
}

static int db_compact(Vmalloc_t* vm) { return vmcompact(db_state(vm)->in.vm); }

static int db_stat(Vmalloc_t* vm, Vmstat_t* st) { return vm_inner_stat(&db_state(vm)->in, st); }

static int db_walk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    Db_walk_t w = {vm, 0, visit, arg};
    return vmwalk(db_state(vm)->in.vm, db_walk_inner, &w);
}

static int db_check(Vmalloc_t* vm)
{
    int bad = vmdbcheck(db_state(vm)->in.vm);
    return (bad > 0 ? bad : 0) + db_check_all(vm);
}

int vm_debug_watch(Vmalloc_t* vm, void* addr)
{
    Db_t* st = db_state(vm);
    if (!addr) {
        st->nwatch = 0;
        return 0;
    }
    for (int i = 0; i < st->nwatch; ++i)
        if (st->watch[i] == addr)
            return 0;
    if (st->nwatch == DB_NWATCH) {
        errno = ENOMEM;
        return -1;
    }
    st->watch[st->nwatch++] = addr;
    return 0;
}

void vm_debug_period(Vmalloc_t* vm, unsigned period) { db_state(vm)->period = period; }

Vmethod_t vm_debug_method = {
    .name = "debug",
    .id = VM_MTDEBUG,
    .statesize = sizeof(Db_t),
    .initf = db_init,
    .allocf = db_alloc,
    .freef = db_free,
    .resizef = db_resize,
    .addrf = db_addr,
    .sizef = db_size,
    .clearf = db_clear,
    .compactf = db_compact,
    .statf = db_stat,
    .walkf = db_walk,
    .checkf = db_check,
    .closef = db_close,
};

Vmethod_t* Vmdebug = &vm_debug_method;

/* The final check: every Vmdebug region still open, once, at exit. */
__attribute__((destructor)) static void db_at_exit(void)
{
    pthread_mutex_lock(&vm_list_lock);
    for (Vmalloc_t* vm = vm_list; vm; vm = vm->next) {
        if (vm->meth != &vm_debug_method)
            continue;
        int locked = vm_region_lock(vm);
        (void)db_check_all(vm);
        vm_region_unlock(vm, locked);
    }
    pthread_mutex_unlock(&vm_list_lock);
}
