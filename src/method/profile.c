/*
 * method/profile.c — Vmprofile, best fit with per-call-site accounting
 * (paper §2.3.4, §4, Figure 10), and vmprofile(), which writes the profile.
 *
 * Blocks come from an inner Vmbest region (inner.c), each behind a 32-byte
 * header {check word, requested size, call site record}. A call site is the
 * -DVMFL file and line, or, for code built without it, the caller's return
 * address (the outermost public entry point notes it); sites are kept in a
 * chained hash table with their counts n_alloc, n_free, s_alloc, s_free.
 * A free is counted at the site that allocated the block; a resize counts as
 * a free of the old block there and an allocation of the new size at the
 * resize's own site (so s_alloc - s_free is always the busy bytes). vmclear
 * counts every busy block as freed. Site records and the table live in
 * segments of the region itself (vm_seg_get), never in the inner region, so
 * they are neither blocks nor counted as busy; should that memory run out,
 * the allocation is still made and counted at an anonymous site.
 *
 * The profile (vmprofile, and at exit for VMPROFILE):
 *   ALLOCATION USAGE SUMMARY:n_alloc=..:n_free=..:s_alloc=..:s_free=..:
 *   region=R:n_alloc=..:n_free=..:s_alloc=..:s_free=..:max_busy=..:extent=..:
 *   file=F:n_alloc=..:n_free=..:s_alloc=..:s_free=..:
 *       line=L:region=R:n_alloc=..:n_free=..:s_alloc=..:s_free=..:
 * files in name order with file=<> (code without -DVMFL) first, lines in
 * order; a site known by return address is a line=0 record under file=<>
 * followed by at=FUNCTION+0xOFF:in=MODULE+0xOFF: (the second offset is what
 * `addr2line -e MODULE` takes). Then every block still busy, as
 *   leak:region=R:block=B:size=N:allocated at=SITE:
 * (at most PF_MAXLEAKS per region, then leak:region=R:more=N:).
 *
 * Bounds: a call costs O(1) expected beyond the inner region's work; the
 * profile is O(sites log sites + busy blocks) and allocates nothing from any
 * region (its scratch array is mapped from the system).
 */
#include "../vmhdr.h"

#define PF_CHUNK ((size_t)64 << 10) /* site records are carved from chunks this size */
#define PF_MAXLEAKS 1000

typedef struct pf_site_s {
    const char* file;
    int line;
    void* caller;
    size_t n_alloc, n_free, s_alloc, s_free;
    struct pf_site_s* next; /* hash chain */
} Pf_site_t;

typedef struct pf_hdr_s {
    uint64_t check; /* vm_check(vm, hdr, pf_word(hdr)) */
    size_t size;
    Pf_site_t* site;
    uint32_t lead; /* the inner block starts lead bytes before the header */
    uint32_t pad;
} Pf_hdr_t;

typedef struct pf_s {
    Vminner_t in;
    Pf_site_t** table; /* tabcap chains; NULL until the first site */
    size_t tabcap, nsites;
    Vmseg_t* tabseg;        /* the segment holding table */
    char *chunk, *chunkend; /* where the next site record goes */
    Pf_site_t anon;         /* the site of last resort */
    size_t n_alloc, n_free, s_alloc, s_free;
} Pf_t;

_Static_assert(sizeof(Pf_hdr_t) % 16 == 0, "the header keeps blocks 16-aligned");

static inline Pf_t* pf_state(Vmalloc_t* vm) { return (Pf_t*)vm_state(vm); }

static inline uint64_t pf_word(const Pf_hdr_t* h)
{
    return ((uint64_t)h->size ^ ((uint64_t)(uintptr_t)h->site << 3) ^ ((uint64_t)h->lead << 40)) &
           ~((uint64_t)1 << 63);
}

static inline char* pf_user(Pf_hdr_t* h) { return (char*)(h + 1); }

/* ---- sites -------------------------------------------------------------- */

static inline size_t pf_hash(const char* file, int line, const void* caller)
{
    uint64_t x = (uint64_t)(uintptr_t)file * 0x9E3779B97F4A7C15ull ^ (uint64_t)line * 0xC2B2AE3D27D4EB4Full ^
                 (uint64_t)(uintptr_t)caller * 0x165667B19E3779F9ull;
    return (size_t)(x ^ (x >> 31));
}

/* Double the table (or make it); 0, or -1 if no memory (the old one stays). */
static int pf_grow(Vmalloc_t* vm, Pf_t* st)
{
    size_t cap = st->tabcap ? 2 * st->tabcap : 1024;
    Vmseg_t* seg = vm_seg_get(vm, cap * sizeof(Pf_site_t*));
    if (!seg)
        return -1;
    Pf_site_t** tab = (Pf_site_t**)seg->data;
    memset(tab, 0, cap * sizeof *tab);
    for (size_t i = 0; i < st->tabcap; ++i) {
        for (Pf_site_t *s = st->table[i], *next; s; s = next) {
            next = s->next;
            size_t k = pf_hash(s->file, s->line, s->caller) & (cap - 1);
            s->next = tab[k];
            tab[k] = s;
        }
    }
    if (st->tabseg)
        (void)vm_seg_put(vm, st->tabseg);
    st->table = tab;
    st->tabcap = cap;
    st->tabseg = seg;
    return 0;
}

/* The record of the current call's site, made if new. Never NULL. */
static Pf_site_t* pf_site(Vmalloc_t* vm)
{
    Pf_t* st = pf_state(vm);
    const char* file = vm->sitefile;
    int line = file ? vm->siteline : 0;
    void* caller = file ? NULL : vm->sitecaller;
    int fault = vm->fault;
    void* faultobj = vm->faultobj;
    size_t h = pf_hash(file, line, caller);
    if (st->tabcap) {
        for (Pf_site_t* s = st->table[h & (st->tabcap - 1)]; s; s = s->next)
            if (s->file == file && s->line == line && s->caller == caller)
                return s;
    }
    /* Bookkeeping that finds no memory is no failure of the call: the
     * block is counted at the anonymous site, and the fault forgotten. */
    if (st->nsites >= st->tabcap / 2)
        (void)pf_grow(vm, st);
    if (st->tabcap && (size_t)(st->chunkend - st->chunk) < sizeof(Pf_site_t)) {
        Vmseg_t* seg = vm_seg_get(vm, PF_CHUNK);
        if (seg) {
            st->chunk = seg->data;
            st->chunkend = seg->end;
        }
    }
    vm_fault(vm, fault, faultobj);
    if (!st->tabcap || (size_t)(st->chunkend - st->chunk) < sizeof(Pf_site_t))
        return &st->anon;
    Pf_site_t* s = (Pf_site_t*)st->chunk;
    st->chunk += vm_align_up(sizeof *s, VM_ALIGN);
    memset(s, 0, sizeof *s);
    s->file = file;
    s->line = line;
    s->caller = caller;
    size_t k = h & (st->tabcap - 1);
    s->next = st->table[k];
    st->table[k] = s;
    st->nsites += 1;
    return s;
}

static void pf_count_alloc(Pf_t* st, Pf_site_t* s, size_t size)
{
    s->n_alloc += 1;
    s->s_alloc += size;
    st->n_alloc += 1;
    st->s_alloc += size;
}

static void pf_count_free(Pf_t* st, Pf_site_t* s, size_t size)
{
    s->n_free += 1;
    s->s_free += size;
    st->n_free += 1;
    st->s_free += size;
}

/* ---- blocks ------------------------------------------------------------- */

/* The header of a busy block p, or NULL. Reads nothing outside the
 * region's segments. */
static Pf_hdr_t* pf_lookup(Vmalloc_t* vm, void* p)
{
    char* u = p;
    Vmseg_t* seg = ((uintptr_t)u & 15) ? NULL : vm_seg_find(vm, u);
    if (!seg || u - sizeof(Pf_hdr_t) < seg->addr)
        return NULL;
    Pf_hdr_t* h = (Pf_hdr_t*)(u - sizeof(Pf_hdr_t));
    return h->check == vm_check(vm, h, pf_word(h)) ? h : NULL;
}

static Pf_hdr_t* pf_make(Vmalloc_t* vm, size_t size, size_t align, Pf_site_t* site)
{
    size_t lead;
    /* At least a byte, so that the user block's address is inside its inner
     * block (vmaddr on the inner region finds it). */
    Pf_hdr_t* h = (Pf_hdr_t*)vm_inner_place(&pf_state(vm)->in, sizeof *h, size ? size : 1, align,
                                            &lead);
    if (!h)
        return NULL;
    h->size = size;
    h->site = site;
    h->lead = (uint32_t)lead;
    h->pad = 0;
    h->check = vm_check(vm, h, pf_word(h));
    return h;
}

static void pf_unmake(Vmalloc_t* vm, Pf_hdr_t* h)
{
    char* ib = (char*)h - h->lead;
    h->check = 0;
    if (h->lead)
        vm_inner_wipe(ib);
    (void)vmfree(pf_state(vm)->in.vm, ib);
}

/* ---- the method ----------------------------------------------------------- */

static int pf_init(Vmalloc_t* vm) { return vm_inner_open(&pf_state(vm)->in, vm) < 0 ? -1 : 0; }

static void* pf_alloc(Vmalloc_t* vm, size_t size, size_t align)
{
    Pf_site_t* site = pf_site(vm);
    Pf_hdr_t* h = pf_make(vm, size, align, site);
    if (!h)
        return NULL;
    pf_count_alloc(pf_state(vm), site, size);
    vm_busy_add(vm, size);
    return pf_user(h);
}

static int pf_free(Vmalloc_t* vm, void* block)
{
    Pf_hdr_t* h = pf_lookup(vm, block);
    if (!h) {
        vm_fault(vm, VM_BADADDR, block);
        return -1;
    }
    pf_count_free(pf_state(vm), h->site, h->size);
    vm_busy_sub(vm, h->size);
    pf_unmake(vm, h);
    return 0;
}

static void* pf_resize(Vmalloc_t* vm, void* block, size_t size, int type)
{
    Pf_t* st = pf_state(vm);
    Pf_hdr_t* h = pf_lookup(vm, block);
    if (!h) {
        vm_fault(vm, VM_BADADDR, block);
        return NULL;
    }
    char* ib = (char*)h - h->lead;
    size_t need = h->lead + sizeof *h + size, old = h->size;
    long have = vmsize(st->in.vm, ib);
    if ((have >= 0 && (size_t)have >= need) || vmresize(st->in.vm, ib, need, 0)) {
        Pf_site_t* site = pf_site(vm);
        pf_count_free(st, h->site, old);
        pf_count_alloc(st, site, size);
        h->size = size;
        h->site = site;
        h->check = vm_check(vm, h, pf_word(h));
        vm_busy_resize(vm, old, size);
        return block;
    }
    if (!(type & (VM_RSMOVE | VM_RSCOPY)))
        return NULL;
    char* p = pf_alloc(vm, size, 0);
    if (!p)
        return NULL;
    if (type & VM_RSCOPY)
        memcpy(p, block, old < size ? old : size);
    (void)pf_free(vm, block);
    return p;
}

static long pf_addr(Vmalloc_t* vm, void* addr)
{
    Pf_t* st = pf_state(vm);
    size_t ibsize;
    char* ib = vm_inner_find(&st->in, addr, &ibsize);
    Pf_hdr_t* h = ib ? (Pf_hdr_t*)vm_inner_head(&st->in, ib, ibsize) : NULL;
    if (!h || h->check != vm_check(vm, h, pf_word(h)))
        return -1;
    return vm_user_offset(pf_user(h), h->size, addr);
}

static long pf_size(Vmalloc_t* vm, void* block)
{
    Pf_hdr_t* h = pf_lookup(vm, block);
    return h ? (long)h->size : -1;
}

typedef struct pf_walk_s {
    Vmalloc_t* vm;
    Vmvisit_f visit; /* vmwalk's visitor, or NULL */
    void* arg;
    int (*each)(Vmalloc_t* vm, Pf_hdr_t* h, void* arg); /* else this */
} Pf_walk_t;

static int pf_walk_inner(Vmalloc_t* inner, void* ib, size_t size, Vmdisc_t* disc, void* arg)
{
    Pf_walk_t* w = arg;
    (void)inner;
    (void)disc;
    Pf_hdr_t* h = (Pf_hdr_t*)vm_inner_head(&pf_state(w->vm)->in, ib, size);
    if (!h || h->check != vm_check(w->vm, h, pf_word(h)))
        return 0;
    if (w->visit)
        return w->visit(w->vm, pf_user(h), h->size, w->vm->disc, w->arg);
    return w->each(w->vm, h, w->arg);
}

/* each(vm, header, arg) on every busy block, in address order. */
static int pf_each(Vmalloc_t* vm, int (*each)(Vmalloc_t*, Pf_hdr_t*, void*), void* arg)
{
    Pf_walk_t w = {vm, NULL, arg, each};
    return vmwalk(pf_state(vm)->in.vm, pf_walk_inner, &w);
}

static int pf_walk(Vmalloc_t* vm, Vmvisit_f visit, void* arg)
{
    Pf_walk_t w = {vm, visit, arg, NULL};
    return vmwalk(pf_state(vm)->in.vm, pf_walk_inner, &w);
}

static int pf_count_cleared(Vmalloc_t* vm, Pf_hdr_t* h, void* arg)
{
    (void)arg;
    pf_count_free(pf_state(vm), h->site, h->size);
    return 0;
}

static int pf_clear(Vmalloc_t* vm)
{
    Pf_walk_t w = {vm, NULL, NULL, pf_count_cleared};
    return vm_inner_clear(&pf_state(vm)->in, pf_walk_inner, &w);
}

static void pf_close(Vmalloc_t* vm) { vm_inner_close(&pf_state(vm)->in); }

static int pf_compact(Vmalloc_t* vm) { return vmcompact(pf_state(vm)->in.vm); }

static int pf_stat(Vmalloc_t* vm, Vmstat_t* st) { return vm_inner_stat(&pf_state(vm)->in, st); }

static int pf_check(Vmalloc_t* vm)
{
    int bad = vmdbcheck(pf_state(vm)->in.vm);
    return bad > 0 ? bad : 0;
}

Vmethod_t vm_profile_method = {
    .name = "profile",
    .id = VM_MTPROFILE,
    .statesize = sizeof(Pf_t),
    .initf = pf_init,
    .allocf = pf_alloc,
    .freef = pf_free,
    .resizef = pf_resize,
    .addrf = pf_addr,
    .sizef = pf_size,
    .clearf = pf_clear,
    .compactf = pf_compact,
    .statf = pf_stat,
    .walkf = pf_walk,
    .checkf = pf_check,
    .closef = pf_close,
};

Vmethod_t* Vmprofile = &vm_profile_method;

/* ---- writing the profile --------------------------------------------------- */

typedef struct pf_rec_s {
    const char* file;
    int line;
    void* caller;
    Vmalloc_t* vm;
    size_t n_alloc, n_free, s_alloc, s_free;
} Pf_rec_t;

typedef struct pf_out_s {
    int fd, err;
    size_t len;
    char buf[8192];
} Pf_out_t;

static void pf_flush(Pf_out_t* o)
{
    if (o->len && vm_os_write(o->fd, o->buf, o->len) < 0)
        o->err = 1;
    o->len = 0;
}

/* Room for one line (at most 1 KiB) at the end of the buffer. */
static char* pf_line(Pf_out_t* o)
{
    if (sizeof o->buf - o->len < 1024)
        pf_flush(o);
    return o->buf + o->len;
}

static void pf_done(Pf_out_t* o, char* p)
{
    *p++ = '\n';
    o->len = (size_t)(p - o->buf);
}

static char* pf_counts(char* p, char* end, size_t na, size_t nf, size_t sa, size_t sf)
{
    p = vm_put_field(p, end, "n_alloc=", na);
    p = vm_put_field(p, end, "n_free=", nf);
    p = vm_put_field(p, end, "s_alloc=", sa);
    return vm_put_field(p, end, "s_free=", sf);
}

/* Order: file=<> first, then files by name, lines, callers, regions. */
static int pf_before(const Pf_rec_t* a, const Pf_rec_t* b)
{
    if (!a->file != !b->file)
        return !a->file;
    int c = a->file && a->file != b->file ? strcmp(a->file, b->file) : 0;
    if (c)
        return c < 0;
    if (a->line != b->line)
        return a->line < b->line;
    if (a->caller != b->caller)
        return (uintptr_t)a->caller < (uintptr_t)b->caller;
    return (uintptr_t)a->vm < (uintptr_t)b->vm;
}

static int pf_samefile(const Pf_rec_t* a, const Pf_rec_t* b)
{
    return a->file == b->file || (a->file && b->file && strcmp(a->file, b->file) == 0);
}

/* Shell sort: no allocation, fine for the thousands of sites a program has. */
static void pf_sort(Pf_rec_t* r, size_t n)
{
    static const size_t gaps[] = {3905, 1577, 701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; ++g) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; ++i) {
            Pf_rec_t t = r[i];
            size_t j = i;
            for (; j >= gap && pf_before(&t, &r[j - gap]); j -= gap)
                r[j] = r[j - gap];
            r[j] = t;
        }
    }
}

static inline int pf_is_profile(Vmalloc_t* vm) { return vm->meth == &vm_profile_method; }

/* The regions to write: vm alone, or every open Vmprofile region (list lock
 * held by the caller). k-th of them, or NULL past the last. */
static Vmalloc_t* pf_region(Vmalloc_t* vm, size_t k)
{
    if (vm)
        return k == 0 ? vm : NULL;
    for (Vmalloc_t* v = vm_list; v; v = v->next)
        if (pf_is_profile(v) && k-- == 0)
            return v;
    return NULL;
}

typedef struct pf_leaks_s {
    Pf_out_t* out;
    size_t n;
} Pf_leaks_t;

static int pf_leak(Vmalloc_t* vm, Pf_hdr_t* h, void* arg)
{
    Pf_leaks_t* l = arg;
    if (l->n++ >= PF_MAXLEAKS)
        return 0;
    char* p = pf_line(l->out);
    char* end = p + 1000;
    p = vm_put_str(p, end, "leak:region=");
    p = vm_fmt_hex(p, (uintptr_t)vm);
    p = vm_put_str(p, end, ":block=");
    p = vm_fmt_hex(p, (uintptr_t)pf_user(h));
    *p++ = ':';
    p = vm_put_field(p, end, "size=", h->size);
    p = vm_put_str(p, end, "allocated at=");
    p = vm_site_put(p, end - 24, h->site->file, h->site->line, h->site->caller);
    *p++ = ':';
    pf_done(l->out, p);
    return 0;
}

/* The per-site lines for records [from, to) of one file. */
static void pf_write_file(Pf_out_t* o, const Pf_rec_t* r, size_t from, size_t to)
{
    size_t na = 0, nf = 0, sa = 0, sf = 0;
    for (size_t i = from; i < to; ++i) {
        na += r[i].n_alloc;
        nf += r[i].n_free;
        sa += r[i].s_alloc;
        sf += r[i].s_free;
    }
    char* p = pf_line(o);
    char* end = p + 1000;
    p = vm_put_str(p, end, "file=");
    p = vm_put_str(p, end - 100, r[from].file ? r[from].file : "<>");
    *p++ = ':';
    pf_done(o, pf_counts(p, end, na, nf, sa, sf));
    for (size_t i = from; i < to; ++i) {
        p = pf_line(o);
        end = p + 1000;
        p = vm_put_str(p, end, "    ");
        p = vm_put_field(p, end, "line=", (size_t)(r[i].line < 0 ? 0 : r[i].line));
        p = vm_put_str(p, end, "region=");
        p = vm_fmt_hex(p, (uintptr_t)r[i].vm);
        *p++ = ':';
        p = pf_counts(p, end, r[i].n_alloc, r[i].n_free, r[i].s_alloc, r[i].s_free);
        if (!r[i].file && r[i].caller) {
            const char* mod;
            uintptr_t off;
            p = vm_put_str(p, end, "at=");
            p = vm_os_symbol(r[i].caller, p, 300, &mod, &off);
            *p++ = ':';
            if (mod) {
                p = vm_put_str(p, end, "in=");
                p = vm_put_str(p, end - 200, mod);
                *p++ = '+';
                p = vm_fmt_hex(p, off);
                *p++ = ':';
            }
        }
        pf_done(o, p);
    }
}

int vm_profile_write(Vmalloc_t* vm, int fd)
{
    static Pf_out_t out; /* one profile at a time: the list lock is held */
    pthread_mutex_lock(&vm_list_lock);
    Pf_out_t* o = &out;
    o->fd = fd;
    o->err = 0;
    o->len = 0;
    size_t nreg = 0, nsites = 0;
    for (Vmalloc_t* v; (v = pf_region(vm, nreg)); ++nreg) {
        int locked = vm_region_lock(v);
        nsites += pf_state(v)->nsites + 1;
        vm_region_unlock(v, locked);
    }
    size_t cap = nsites + 64, bytes = vm_align_up(cap * sizeof(Pf_rec_t), vm_os_pagesize());
    Pf_rec_t* rec = vm_os_map(bytes);
    if (!rec) {
        pthread_mutex_unlock(&vm_list_lock);
        errno = ENOMEM;
        return -1;
    }
    size_t n = 0, na = 0, nf = 0, sa = 0, sf = 0;
    for (size_t k = 0; k < nreg; ++k) {
        Vmalloc_t* v = pf_region(vm, k);
        int locked = vm_region_lock(v);
        Pf_t* st = pf_state(v);
        na += st->n_alloc;
        nf += st->n_free;
        sa += st->s_alloc;
        sf += st->s_free;
        for (size_t i = 0; i <= st->tabcap; ++i) {
            Pf_site_t* s = i < st->tabcap ? st->table[i] : &st->anon;
            for (; s && n < cap; s = i < st->tabcap ? s->next : NULL) {
                if (!s->n_alloc && !s->n_free)
                    continue;
                rec[n++] = (Pf_rec_t){s->file, s->line, s->caller, v,
                                      s->n_alloc, s->n_free, s->s_alloc, s->s_free};
            }
        }
        vm_region_unlock(v, locked);
    }
    char* p = pf_line(o);
    p = vm_put_str(p, p + 100, "ALLOCATION USAGE SUMMARY:");
    pf_done(o, pf_counts(p, p + 900, na, nf, sa, sf));
    for (size_t k = 0; k < nreg; ++k) {
        Vmalloc_t* v = pf_region(vm, k);
        int locked = vm_region_lock(v);
        Pf_t* st = pf_state(v);
        p = pf_line(o);
        char* end = p + 1000;
        p = vm_put_str(p, end, "region=");
        p = vm_fmt_hex(p, (uintptr_t)v);
        *p++ = ':';
        p = pf_counts(p, end, st->n_alloc, st->n_free, st->s_alloc, st->s_free);
        p = vm_put_field(p, end, "max_busy=", v->max_busy);
        p = vm_put_field(p, end, "extent=", v->extent);
        vm_region_unlock(v, locked);
        pf_done(o, p);
    }
    pf_sort(rec, n);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && pf_samefile(&rec[i], &rec[j]); ++j)
            ;
        pf_write_file(o, rec, i, j);
    }
    for (size_t k = 0; k < nreg; ++k) {
        Vmalloc_t* v = pf_region(vm, k);
        Pf_leaks_t l = {o, 0};
        int locked = vm_region_lock(v);
        (void)pf_each(v, pf_leak, &l);
        vm_region_unlock(v, locked);
        if (l.n > PF_MAXLEAKS) {
            p = pf_line(o);
            p = vm_put_str(p, p + 100, "leak:region=");
            p = vm_fmt_hex(p, (uintptr_t)v);
            *p++ = ':';
            pf_done(o, vm_put_field(p, p + 100, "more=", l.n - PF_MAXLEAKS));
        }
    }
    pf_flush(o);
    pthread_mutex_unlock(&vm_list_lock);
    (void)vm_os_unmap(rec, bytes);
    if (o->err) {
        errno = EIO;
        return -1;
    }
    return 0;
}
