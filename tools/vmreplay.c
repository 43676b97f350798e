/*
 * vmreplay.c — replay an allocation trace against an allocator (paper §3).
 *
 * A trace (README "Traces": old:new:size:region:method:[file,line:], or the
 * binary form --convert writes) is parsed into an array of operations before
 * anything is measured: trace addresses become dense slot numbers (freed
 * slots are reused), so the replay is array indexing. All of the replayer's
 * own memory comes from mmap, never from malloc, and is touched before the
 * timed part, so it is not in the figures.
 *
 * The replay itself runs in a child process (one per --runs), which takes
 * getrusage() before and after: CPU time is user+sys of the replay only, and
 * rss_kb is the peak resident set minus the one measured just before. Every
 * allocated block is written (memset) so its pages are really touched, as the
 * paper does. Targets: best, last, pool, debug, profile (one region of that method over
 * Vmdcsystem per trace region, opened at its first record; Vmlast frees and
 * resizes only its last block, so a refused free is left for vmclear and a
 * refused resize becomes allocate+copy, a move; arena is the
 * largest sum of their vmstat extents, sampled every 1024 operations, when
 * the live bytes pass the last sampled peak by 1/16, before a block of 128 KiB
 * or more is freed or resized, before each clear/close and at the end; the
 * CPU time of that sampling is measured and taken out of cpu_ms) and malloc (the process's malloc, which is
 * the system's or whatever LD_PRELOAD brings; arena is the peak RSS delta).
 *
 * --svg draws the regions' arenas, as the paper's Figures 6 and 7, at the
 * moment the live requested bytes first exceed --at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vmalloc.h>

/* ---- memory from mmap ------------------------------------------------------ */

/* Grow *p (capacity *cap elements of elem bytes) to hold at least need. */
static void mgrow(void* pp, size_t* cap, size_t elem, size_t need)
{
    void** p = pp;
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    void* q;
    if (*p)
        q = mremap(*p, *cap * elem, n * elem, MREMAP_MAYMOVE);
    else
        q = mmap(NULL, n * elem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) {
        fprintf(stderr, "vmreplay: out of memory (%zu bytes of bookkeeping)\n", n * elem);
        exit(1);
    }
    *p = q;
    *cap = n;
}

static void* mzalloc(size_t bytes)
{
    void* p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "vmreplay: out of memory (%zu bytes of bookkeeping)\n", bytes);
        exit(1);
    }
    return p;
}

/* Touch every page so that it is resident before the baseline is taken. */
static void touch(void* p, size_t bytes)
{
    volatile char* c = p;
    for (size_t i = 0; i < bytes; i += 4096)
        c[i] = c[i];
}

/* ---- the parsed trace ------------------------------------------------------- */

enum { OP_ALLOC = 1, OP_FREE, OP_RESIZE, OP_CLEAR, OP_CLOSE };

typedef struct {
    uint32_t kind;
    uint32_t region; /* index into the trace's regions */
    uint32_t slot;   /* the block: a dense number */
    uint32_t pad;
    uint64_t size; /* requested bytes (alloc, resize) */
} Op_t;

/* The binary form: this header, then n_ops Op_t. */
#define BIN_MAGIC "VMRTRC1\n"
typedef struct {
    char magic[8];
    uint64_t n_ops, n_slots, n_regions;
    uint64_t allocs, frees, resizes, unknown_frees;
    uint64_t max_alloc, max_busy;
} Binhdr_t;

static Op_t* ops;
static size_t n_ops, cap_ops;
static Binhdr_t H; /* counts; the magic is set when written */

/* ---- parsing ------------------------------------------------------------ */

typedef struct {
    uint64_t addr; /* 0: empty */
    uint32_t slot;
} Ent_t;

static Ent_t* tab;
static size_t tab_n, tab_used; /* tab_n: a power of two */
static uint32_t* slot_region;  /* parse-time: each live slot's region */
static uint64_t* slot_size;
static size_t cap_slot_region, cap_slot_size;
static uint32_t* free_slots;
static size_t n_free_slots, cap_free_slots;
static uint64_t* reg_addr; /* trace regions: address, 0 once closed */
static size_t n_regions, cap_regions;

static inline size_t hash(uint64_t a) { return (size_t)((a >> 4) * 0x9E3779B97F4A7C15ull); }

static void tab_init(size_t n)
{
    tab_n = n;
    tab_used = 0;
    tab = mzalloc(n * sizeof *tab);
}

static Ent_t* tab_find(uint64_t a)
{
    for (size_t i = hash(a) & (tab_n - 1);; i = (i + 1) & (tab_n - 1))
        if (tab[i].addr == a || tab[i].addr == 0)
            return &tab[i];
}

static void tab_put(uint64_t a, uint32_t slot);

static void tab_rebuild(size_t n, int drop_region, uint32_t r)
{
    Ent_t* old = tab;
    size_t on = tab_n;
    tab_init(n);
    for (size_t i = 0; i < on; ++i) {
        if (!old[i].addr)
            continue;
        if (drop_region && slot_region[old[i].slot] == r) {
            mgrow(&free_slots, &cap_free_slots, sizeof *free_slots, n_free_slots + 1);
            free_slots[n_free_slots++] = old[i].slot;
            continue;
        }
        tab_put(old[i].addr, old[i].slot);
    }
    munmap(old, on * sizeof *old);
}

static void tab_put(uint64_t a, uint32_t slot)
{
    if ((tab_used + 1) * 2 > tab_n)
        tab_rebuild(tab_n * 2, 0, 0);
    Ent_t* e = tab_find(a);
    if (!e->addr)
        tab_used += 1;
    e->addr = a;
    e->slot = slot;
}

/* Remove a (present) key: backward-shift deletion keeps probe chains whole. */
static void tab_del(Ent_t* e)
{
    size_t i = (size_t)(e - tab), mask = tab_n - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!tab[j].addr)
            break;
        size_t k = hash(tab[j].addr) & mask;
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            tab[i] = tab[j];
            i = j;
        }
    }
    tab[i].addr = 0;
    tab_used -= 1;
}

static uint32_t slot_new(uint32_t region)
{
    uint32_t s;
    if (n_free_slots)
        s = free_slots[--n_free_slots];
    else {
        s = (uint32_t)H.n_slots++;
        mgrow(&slot_region, &cap_slot_region, sizeof *slot_region, H.n_slots);
        mgrow(&slot_size, &cap_slot_size, sizeof *slot_size, H.n_slots);
    }
    slot_region[s] = region;
    slot_size[s] = 0;
    return s;
}

static void op_add(uint32_t kind, uint32_t region, uint32_t slot, uint64_t size)
{
    mgrow(&ops, &cap_ops, sizeof *ops, n_ops + 1);
    ops[n_ops++] = (Op_t){kind, region, slot, 0, size};
}

static uint64_t busy; /* parse-time live requested bytes */

static void note_busy(void)
{
    if (busy > H.max_busy)
        H.max_busy = busy;
}

static void slot_free(Ent_t* e)
{
    uint32_t s = e->slot;
    busy -= slot_size[s];
    tab_del(e);
    mgrow(&free_slots, &cap_free_slots, sizeof *free_slots, n_free_slots + 1);
    free_slots[n_free_slots++] = s;
}

static uint32_t region_of(uint64_t a)
{
    for (size_t i = n_regions; i-- > 0;)
        if (reg_addr[i] == a)
            return (uint32_t)i;
    mgrow(&reg_addr, &cap_regions, sizeof *reg_addr, n_regions + 1);
    reg_addr[n_regions] = a;
    return (uint32_t)n_regions++;
}

static const char* trace_path;
static size_t line_no;

static void die2(const char* fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vmreplay: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "vmreplay: %s:%zu: ", trace_path, line_no);                                \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        exit(2);                                                                                   \
    } while (0)

static uint64_t parse_hex(const char* s, size_t n, const char* what)
{
    if (n < 3 || s[0] != '0' || s[1] != 'x')
        BAD("bad %s address '%.*s' (expected 0x followed by hexadecimal digits)", what, (int)n, s);
    if (n - 2 > 16)
        BAD("%s address '%.*s' is too long", what, (int)n, s);
    uint64_t v = 0;
    for (size_t i = 2; i < n; ++i) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            BAD("bad %s address '%.*s' (not a hexadecimal digit: '%c')", what, (int)n, s, c);
        v = v * 16 + (uint64_t)d;
    }
    return v;
}

static uint64_t parse_dec(const char* s, size_t n, const char* what)
{
    if (n == 0)
        BAD("empty %s", what);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            BAD("bad %s '%.*s' (not a decimal number)", what, (int)n, s);
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            BAD("%s '%.*s' is too large", what, (int)n, s);
        v = v * 10 + d;
    }
    return v;
}

/* One line (without its newline). */
static void parse_line(const char* s, size_t n)
{
    if (n && s[n - 1] == '\r')
        n -= 1;
    if (n == 0)
        return;
    const char* f[5];
    size_t fl[5];
    size_t i = 0, k;
    for (k = 0; k < 5; ++k) {
        size_t j = i;
        while (j < n && s[j] != ':')
            j += 1;
        if (j >= n)
            BAD("too few fields: %zu of old:new:size:region:method: (a line ends with ':')", k);
        f[k] = s + i;
        fl[k] = j - i;
        i = j + 1;
    }
    /* What is left: "" or "word:" (region record, or file,line: of -DVMFL). */
    const char* rest = s + i;
    size_t rn = n - i;
    if (rn && rest[rn - 1] != ':')
        BAD("trailing '%.*s' is not terminated by ':'", (int)rn, rest);
    if (rn)
        rn -= 1;
    uint64_t old = parse_hex(f[0], fl[0], "old");
    uint64_t new = parse_hex(f[1], fl[1], "new");
    uint64_t size = parse_dec(f[2], fl[2], "size");
    uint64_t reg = parse_hex(f[3], fl[3], "region");
    if (fl[4] == 0)
        BAD("empty method");
    if (old == 0 && new == 0) {
        uint32_t r = region_of(reg);
        if (rn == 4 && !memcmp(rest, "open", 4))
            return;
        int clear = rn == 5 && !memcmp(rest, "clear", 5);
        int close = rn == 5 && !memcmp(rest, "close", 5);
        if (!clear && !close)
            BAD("region record '%.*s' is not open, clear or close", (int)rn, rest);
        /* Every live block of the region goes. */
        size_t before = tab_used;
        uint64_t gone = 0;
        for (size_t t = 0; t < tab_n; ++t)
            if (tab[t].addr && slot_region[tab[t].slot] == r)
                gone += slot_size[tab[t].slot];
        if (gone || before)
            tab_rebuild(tab_n, 1, r);
        busy -= gone;
        op_add(clear ? OP_CLEAR : OP_CLOSE, r, 0, 0);
        if (close)
            reg_addr[r] = 0; /* the address may come back as a new region */
        return;
    }
    if (rn) {
        const char* comma = memrchr(rest, ',', rn);
        if (!comma)
            BAD("'%.*s' is neither open/clear/close nor file,line", (int)rn, rest);
        (void)parse_dec(comma + 1, rn - (size_t)(comma + 1 - rest), "line number");
    }
    uint32_t r = region_of(reg);
    if (old == 0) { /* allocation */
        H.allocs += 1;
        H.max_alloc += size;
        Ent_t* e = tab_find(new);
        if (e->addr) { /* its free was not traced: free it now */
            uint32_t s = e->slot;
            op_add(OP_FREE, slot_region[s], s, 0);
            slot_free(e);
        }
        uint32_t s = slot_new(r);
        slot_size[s] = size;
        busy += size;
        note_busy();
        op_add(OP_ALLOC, r, s, size);
        tab_put(new, s);
    } else if (new == 0) { /* free */
        Ent_t* e = tab_find(old);
        if (!e->addr) {
            H.unknown_frees += 1;
            return;
        }
        H.frees += 1;
        uint32_t s = e->slot;
        op_add(OP_FREE, slot_region[s], s, 0);
        slot_free(e);
    } else { /* resize: the block keeps its slot wherever it goes */
        H.resizes += 1;
        H.max_alloc += size;
        Ent_t* e = tab_find(old);
        int known = e->addr != 0;
        uint32_t s;
        if (!known) {
            s = slot_new(r);
        } else {
            s = e->slot;
            busy -= slot_size[s];
            if (old != new)
                tab_del(e);
        }
        if (old != new || !known) {
            Ent_t* d = tab_find(new);
            if (d->addr) { /* NEW was live: its free was not traced */
                uint32_t o = d->slot;
                op_add(OP_FREE, slot_region[o], o, 0);
                slot_free(d);
            }
        }
        op_add(known ? OP_RESIZE : OP_ALLOC, slot_region[s], s, size);
        slot_size[s] = size;
        busy += size;
        note_busy();
        if (old != new || !known)
            tab_put(new, s);
    }
}

static int progress;

/* ---- the size-class floor ----------------------------------------------------- */

/* Bytes a block of n bytes takes in Vmbest's small-block layer (the classes
 * the README states: 16-byte steps to 256, then 8 per doubling to 16 KiB),
 * with *page the size of the pages of its class; a block over 16 KiB has a
 * segment of its own (*page = 0). */
static uint64_t floor_class(uint64_t n, uint64_t* page)
{
    if (n > 16384) {
        *page = 0;
        return (n + 15) & ~(uint64_t)15;
    }
    *page = n <= 2048 ? 32768 : 65536;
    if (n <= 256)
        return n <= 16 ? 16 : (n + 15) & ~(uint64_t)15;
    unsigned b = 63u - (unsigned)__builtin_clzll(n - 1);
    uint64_t step = (uint64_t)1 << (b - 3);
    return ((n - 1) / step + 1) * step;
}

/* Index of a small class of f bytes (f from floor_class) among 16384 / 16. */
static inline size_t floor_index(uint64_t f) { return (size_t)(f >> 4); }

/* The least a heap of size-class pages (Vmbest's classes and page sizes)
 * must hold at the trace's peak of live requested bytes: for each region
 * and class, whole pages for its live blocks as if they were packed with no
 * hole, and the blocks over 16 KiB at their size. No such allocator can do
 * with less however it places blocks; the study sets Vmbest's arena against
 * it. Two passes over the operations: the first finds the peak, the second
 * counts the blocks live there. */
static uint64_t class_floor(void)
{
    if (n_ops == 0 || H.n_slots == 0)
        return 0;
    size_t nreg = H.n_regions ? (size_t)H.n_regions : 1, ncls = 16384 / 16 + 1;
    uint64_t* size = mzalloc(H.n_slots * sizeof *size);
    uint32_t* reg = mzalloc(H.n_slots * sizeof *reg);
    uint64_t* rlive = mzalloc(nreg * sizeof *rlive);
    uint64_t* count = mzalloc(nreg * ncls * sizeof *count); /* [region][class]; big bytes at 0 */
    uint64_t live = 0, peak = 0, pg;
    size_t at = 0;
    for (int pass = 0; pass < 2; ++pass) {
        memset(size, 0, H.n_slots * sizeof *size);
        memset(rlive, 0, nreg * sizeof *rlive);
        live = 0;
        for (size_t i = 0; i < (pass ? at + 1 : n_ops); ++i) {
            const Op_t* o = &ops[i];
            uint32_t s = o->slot;
            if (o->kind == OP_CLEAR || o->kind == OP_CLOSE) {
                /* Its blocks all go; their slots are only reused by a new
                 * allocation, which sets them afresh. */
                live -= rlive[o->region];
                rlive[o->region] = 0;
                if (pass)
                    memset(count + (size_t)o->region * ncls, 0, ncls * sizeof *count);
                continue;
            }
            if (o->kind == OP_FREE || o->kind == OP_RESIZE) {
                uint64_t old = size[s];
                live -= old;
                rlive[reg[s]] -= old;
                if (pass) {
                    uint64_t f = floor_class(old ? old : 1, &pg);
                    if (pg)
                        count[(size_t)reg[s] * ncls + floor_index(f)] -= 1;
                    else
                        count[(size_t)reg[s] * ncls] -= f;
                }
                size[s] = 0;
            }
            if (o->kind == OP_ALLOC || o->kind == OP_RESIZE) {
                uint64_t n = o->size;
                size[s] = n;
                reg[s] = o->region;
                live += n;
                rlive[o->region] += n;
                if (pass) {
                    uint64_t f = floor_class(n ? n : 1, &pg);
                    if (pg)
                        count[(size_t)o->region * ncls + floor_index(f)] += 1;
                    else
                        count[(size_t)o->region * ncls] += f;
                }
            }
            if (!pass && live > peak) {
                peak = live;
                at = i;
            }
        }
    }
    uint64_t total = 0;
    for (size_t r = 0; r < nreg; ++r) {
        total += count[r * ncls];
        for (size_t k = 1; k < ncls; ++k) {
            uint64_t n = count[r * ncls + k];
            if (!n)
                continue;
            uint64_t f = (uint64_t)k << 4;
            (void)floor_class(f, &pg);
            uint64_t per = pg / f; /* blocks per page (the first page of a segment
                                    * holds a few less: ignored, in our favour) */
            total += (n + per - 1) / per * pg;
        }
    }
    munmap(size, H.n_slots * sizeof *size);
    munmap(reg, H.n_slots * sizeof *reg);
    munmap(rlive, nreg * sizeof *rlive);
    munmap(count, nreg * ncls * sizeof *count);
    return total;
}

static void load(const char* path)
{
    trace_path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die2("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        die2("%s: not a regular file", path);
    if (st.st_size == 0)
        die2("%s: empty trace", path);
    size_t len = (size_t)st.st_size;
    const char* m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        die2("%s: %s", path, strerror(errno));
    if (len >= sizeof(Binhdr_t) && !memcmp(m, BIN_MAGIC, 8)) {
        memcpy(&H, m, sizeof H);
        if (H.n_ops > len / sizeof(Op_t) || H.n_slots > UINT32_MAX ||
            len != sizeof H + H.n_ops * sizeof(Op_t))
            die2("%s: truncated binary trace (%zu bytes, expected %" PRIu64 ")", path, len,
                 (uint64_t)(sizeof H + H.n_ops * sizeof(Op_t)));
        n_ops = H.n_ops;
        n_regions = H.n_regions;
        ops = mzalloc(n_ops * sizeof *ops);
        memcpy(ops, m + sizeof H, n_ops * sizeof *ops);
        for (size_t i = 0; i < n_ops; ++i)
            if (ops[i].kind < OP_ALLOC || ops[i].kind > OP_CLOSE || ops[i].slot >= H.n_slots ||
                ops[i].region >= n_regions)
                die2("%s: corrupt binary trace (operation %zu)", path, i);
        munmap((void*)m, len);
    } else {
        tab_init(1 << 12);
        size_t step = len / 100 + 1, next = step;
        for (size_t i = 0; i < len;) {
            const char* nl = memchr(m + i, '\n', len - i);
            size_t e = nl ? (size_t)(nl - m) : len;
            line_no += 1;
            if (memchr(m + i, '\0', e - i))
                BAD("not a text line (NUL byte)");
            parse_line(m + i, e - i);
            i = e + 1;
            if (progress && i >= next) {
                fprintf(stderr, "\rvmreplay: parsing %3zu%%", i * 100 / len);
                next += step;
            }
        }
        if (progress)
            fputc('\n', stderr);
        munmap((void*)m, len);
        munmap(tab, tab_n * sizeof *tab);
        n_regions = n_regions ? n_regions : 1;
        H.n_ops = n_ops;
        H.n_regions = n_regions;
    }
    if (H.allocs + H.frees + H.resizes == 0)
        die2("%s: empty trace (no allocation records)", path);
}

/* ---- replay ----------------------------------------------------------------- */

typedef struct {
    double cpu_ms, user_ms, sys_ms;
    double rss_kb, arena, moves, copied;
} Result_t;

enum { T_BEST, T_LAST, T_POOL, T_MALLOC, T_DEBUG, T_PROFILE, T_COUNT };
static const char* target_names[T_COUNT] = {"best", "last", "pool", "malloc", "debug", "profile"};
static int target = T_BEST;

static const char* curve_path;
static const char* svg_path;
static uint64_t svg_at;
static uint64_t svg_row = 8192;
static int svg_done;

static void** rp;        /* slot -> block */
static uint64_t* rsz;    /* slot -> requested size */
static uint32_t* rreg;   /* slot -> region */
static Vmalloc_t** rvm;  /* region index -> our region */
static uint64_t (*curve)[2];
static size_t n_curve;


static Vmalloc_t* region(uint32_t r)
{
    if (!rvm[r]) {
        Vmethod_t* m = target == T_LAST      ? Vmlast
                       : target == T_POOL    ? Vmpool
                       : target == T_DEBUG   ? Vmdebug
                       : target == T_PROFILE ? Vmprofile
                                             : Vmbest;
        rvm[r] = vmopen(Vmdcsystem, m, 0);
        if (!rvm[r]) {
            fprintf(stderr, "vmreplay: vmopen failed: %s\n", strerror(errno));
            _exit(1);
        }
    }
    return rvm[r];
}

static double tv_ms(struct timeval t) { return (double)t.tv_sec * 1e3 + (double)t.tv_usec / 1e3; }

/* CPU time spent sampling the arena: taken out of the replay's figures. */
static double sample_user_ms, sample_sys_ms;

static uint64_t extents(void)
{
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    uint64_t sum = 0;
    for (size_t r = 0; r < n_regions; ++r) {
        Vmstat_t st;
        if (rvm[r] && vmstat(rvm[r], &st) == 0)
            sum += st.extent;
    }
    getrusage(RUSAGE_SELF, &b);
    sample_user_ms += tv_ms(b.ru_utime) - tv_ms(a.ru_utime);
    sample_sys_ms += tv_ms(b.ru_stime) - tv_ms(a.ru_stime);
    return sum;
}

static void svg_draw(void);

static void fail(size_t i, const char* what)
{
    fprintf(stderr, "vmreplay: %s: operation %zu: %s of %" PRIu64 " bytes failed on target %s: %s\n",
            trace_path, i, what, ops[i].size, target_names[target], strerror(errno));
    _exit(1);
}

/* Drop every live block of region r (after a clear or close). */
static void region_drop(uint32_t r, uint64_t* live)
{
    for (size_t s = 0; s < H.n_slots; ++s)
        if (rp[s] && rreg[s] == r) {
            if (target == T_MALLOC)
                free(rp[s]);
            *live -= rsz[s];
            rp[s] = NULL;
        }
}

static Result_t replay(void)
{
    Result_t res = {0};
    size_t ns = H.n_slots ? H.n_slots : 1;
    rp = mzalloc(ns * sizeof *rp);
    rsz = mzalloc(ns * sizeof *rsz);
    rreg = mzalloc(ns * sizeof *rreg);
    rvm = mzalloc(n_regions * sizeof *rvm);
    size_t every = n_ops / 1000 ? n_ops / 1000 : 1;
    curve = mzalloc((n_ops / every + 2) * sizeof *curve);
    touch(rp, ns * sizeof *rp);
    touch(rsz, ns * sizeof *rsz);
    touch(rreg, ns * sizeof *rreg);
    touch(rvm, n_regions * sizeof *rvm);
    touch(curve, (n_ops / every + 2) * sizeof *curve);
    touch(ops, n_ops * sizeof *ops);

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    uint64_t live = 0, arena = 0, moves = 0, copied = 0, peak_sampled = 0;
    int regions = target != T_MALLOC;
    size_t pstep = n_ops / 100 + 1, pnext = pstep;
    for (size_t i = 0; i < n_ops; ++i) {
        const Op_t* o = &ops[i];
        uint32_t s = o->slot;
        switch (o->kind) {
        case OP_ALLOC: {
            size_t n = o->size ? (size_t)o->size : 1;
            void* p = regions ? vmalloc(region(o->region), n) : malloc(n);
            if (!p)
                fail(i, "allocation");
            memset(p, 0xa5, (size_t)o->size);
            rp[s] = p;
            rsz[s] = o->size;
            rreg[s] = o->region;
            live += o->size;
            break;
        }
        case OP_FREE:
            if (regions)
                vmfree(region(rreg[s]), rp[s]);
            else
                free(rp[s]);
            rp[s] = NULL;
            live -= rsz[s];
            break;
        case OP_RESIZE: {
            size_t n = o->size ? (size_t)o->size : 1;
            void* old = rp[s];
            void* p = regions ? vmresize(region(rreg[s]), old, n, VM_RSCOPY) : realloc(old, n);
            if (!p && target == T_LAST && errno == EINVAL) {
                /* Vmlast resizes only its last block: another one moves to a
                 * new block and its old space waits for vmclear. */
                p = vmalloc(region(rreg[s]), n);
                if (p) {
                    memcpy(p, old, (size_t)(rsz[s] < o->size ? rsz[s] : o->size));
                    vmfree(region(rreg[s]), old);
                }
            }
            if (!p)
                fail(i, "resize");
            if (p != old) {
                moves += 1;
                copied += rsz[s] < o->size ? rsz[s] : o->size;
            }
            if (o->size > rsz[s])
                memset((char*)p + rsz[s], 0xa5, (size_t)(o->size - rsz[s]));
            live += o->size - rsz[s];
            rp[s] = p;
            rsz[s] = o->size;
            break;
        }
        case OP_CLEAR:
        case OP_CLOSE:
            if (regions) {
                uint64_t e = extents();
                if (e > arena)
                    arena = e;
                if (rvm[o->region]) {
                    if (o->kind == OP_CLEAR)
                        vmclear(rvm[o->region]);
                    else {
                        vmclose(rvm[o->region]);
                        rvm[o->region] = NULL;
                    }
                }
            }
            region_drop(o->region, &live);
            break;
        }
        /* Sample the arena every 1024 operations, when the live bytes pass
         * the last sampled peak by 1/16, and before a large block goes (a
         * method may give it straight back to the discipline). */
        if (regions && ((i & 1023) == 1023 || live > peak_sampled + peak_sampled / 16 ||
                        (i + 1 < n_ops && ops[i + 1].kind != OP_ALLOC &&
                         rsz[ops[i + 1].slot] >= ((uint64_t)128 << 10)))) {
            if (live > peak_sampled)
                peak_sampled = live;
            uint64_t e = extents();
            if (e > arena)
                arena = e;
        }
        if (i % every == 0) {
            curve[n_curve][0] = i;
            curve[n_curve][1] = live;
            n_curve += 1;
        }
        if (svg_path && !svg_done && live > svg_at) {
            svg_draw();
            svg_done = 1;
        }
        if (progress && i >= pnext) {
            fprintf(stderr, "\rvmreplay: %s %3zu%%", target_names[target], i * 100 / n_ops);
            pnext += pstep;
        }
    }
    if (regions) {
        uint64_t e = extents();
        if (e > arena)
            arena = e;
    }
    getrusage(RUSAGE_SELF, &r1);
    if (progress)
        fprintf(stderr, "\rvmreplay: %s 100%%\n", target_names[target]);
    res.user_ms = tv_ms(r1.ru_utime) - tv_ms(r0.ru_utime) - sample_user_ms;
    res.sys_ms = tv_ms(r1.ru_stime) - tv_ms(r0.ru_stime) - sample_sys_ms;
    res.user_ms = res.user_ms > 0 ? res.user_ms : 0;
    res.sys_ms = res.sys_ms > 0 ? res.sys_ms : 0;
    res.cpu_ms = res.user_ms + res.sys_ms;
    res.rss_kb = (double)(r1.ru_maxrss - r0.ru_maxrss);
    res.arena = regions ? (double)arena : res.rss_kb * 1024;
    res.moves = (double)moves;
    res.copied = (double)copied;

    if (curve_path) {
        FILE* f = fopen(curve_path, "w");
        if (!f) {
            fprintf(stderr, "vmreplay: %s: %s\n", curve_path, strerror(errno));
            _exit(1);
        }
        for (size_t k = 0; k < n_curve; ++k)
            fprintf(f, "%" PRIu64 " %" PRIu64 "\n", curve[k][0], curve[k][1]);
        if (fclose(f) != 0) {
            fprintf(stderr, "vmreplay: %s: write error\n", curve_path);
            _exit(1);
        }
    }
    if (svg_path && !svg_done) {
        fprintf(stderr, "vmreplay: busy bytes never exceeded %" PRIu64 "; drawing the end state\n",
                svg_at);
        svg_draw();
    }
    return res;
}

/* ---- the arena as SVG (paper Figures 6 and 7) ---------------------------------- */

/* vmview() draws every open region: the replay's regions (Vmheap is empty
 * here, the replayer's own memory being mapped directly). */
static void svg_draw(void)
{
    FILE* f = fopen(svg_path, "w");
    if (!f || vmview(NULL, fileno(f), (size_t)svg_row) < 0 || fclose(f) != 0) {
        fprintf(stderr, "vmreplay: %s: %s\n", svg_path, strerror(errno));
        _exit(1);
    }
}

static const char usage[] =
    "usage: vmreplay [--target best|last|pool|debug|profile|malloc] [--runs N] [--progress]\n"
    "                [--curve FILE] [--svg FILE [--at BYTES] [--row BYTES]] TRACE\n"
    "       vmreplay --convert OUT TRACE   write TRACE's binary form to OUT\n"
    "       vmreplay --stats TRACE         print the trace summary (paper Table 1) and\n"
    "                                      class_floor (below) only\n"
    "\n"
    "Replays the allocations, frees and resizes of TRACE (VMTRACE text format or the\n"
    "binary form) against an allocator and prints one line of key=value figures:\n"
    "  trace target ops allocs frees resizes max_busy cpu_ms user_ms sys_ms rss_kb\n"
    "  arena moves copied unknown_frees\n"
    "Targets best, last, pool, debug, profile: one region of that method per trace\n"
    "region (arena: peak of the summed vmstat extents); malloc: the process's malloc,\n"
    "e.g. another\n"
    "allocator by LD_PRELOAD (arena: peak RSS delta). CPU time is user+sys of the\n"
    "replay alone; --runs N replays N times, each in a fresh process, and prints\n"
    "medians. --curve FILE writes 'op busy_bytes' (requested sizes) about 1000 times.\n"
    "--svg FILE draws the regions' arenas (busy blocks thick, segments thin, a colour\n"
    "per region) when live bytes first exceed --at BYTES (default 0), --row BYTES\n"
    "per row (default 8192). Sizes take a k, m or g suffix.\n"
    "class_floor: the least a heap of Vmbest's size classes and pages holds at the\n"
    "trace's peak of live bytes, its live blocks packed without a hole (whole 32 or\n"
    "64 KiB pages per class and region; blocks over 16 KiB at their size).\n";

static uint64_t number(const char* opt, const char* s)
{
    if (!s)
        die2("%s needs a value (see --help)", opt);
    char* e;
    errno = 0;
    if (*s < '0' || *s > '9')
        die2("%s: bad number '%s'", opt, s);
    unsigned long long v = strtoull(s, &e, 10);
    if (errno)
        die2("%s: bad number '%s'", opt, s);
    int shift = 0;
    if (*e == 'k' || *e == 'K')
        shift = 10, e++;
    else if (*e == 'm' || *e == 'M')
        shift = 20, e++;
    else if (*e == 'g' || *e == 'G')
        shift = 30, e++;
    if (*e || (shift && v > (UINT64_MAX >> shift)))
        die2("%s: bad number '%s'", opt, s);
    return (uint64_t)v << shift;
}

static int dcmp(const void* a, const void* b)
{
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

static double median(double* v, size_t n)
{
    qsort(v, n, sizeof *v, dcmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char* trace_name(const char* path)
{
    const char* b = strrchr(path, '/');
    b = b ? b + 1 : path;
    static char name[256];
    snprintf(name, sizeof name, "%s", b);
    char* dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = 0;
    return name;
}

int main(int argc, char** argv)
{
    const char *trace = NULL, *convert = NULL;
    int stats = 0;
    uint64_t runs = 1;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--target")) {
            const char* t = argv[++i < argc ? i : argc - 1];
            if (i >= argc)
                die2("--target needs a value (best, last, pool, debug, profile or malloc)");
            int k;
            for (k = 0; k < T_COUNT && strcmp(t, target_names[k]); ++k)
                ;
            if (k == T_COUNT)
                die2("unknown target '%s' (best, last, pool, debug, profile or malloc)", t);
            target = k;
        } else if (!strcmp(a, "--runs")) {
            runs = number(a, i + 1 < argc ? argv[++i] : NULL);
            if (runs < 1 || runs > 1000)
                die2("--runs: between 1 and 1000");
        } else if (!strcmp(a, "--progress"))
            progress = 1;
        else if (!strcmp(a, "--curve")) {
            if (++i >= argc)
                die2("--curve needs a file");
            curve_path = argv[i];
        } else if (!strcmp(a, "--svg")) {
            if (++i >= argc)
                die2("--svg needs a file");
            svg_path = argv[i];
        } else if (!strcmp(a, "--at"))
            svg_at = number(a, i + 1 < argc ? argv[++i] : NULL);
        else if (!strcmp(a, "--row")) {
            svg_row = number(a, i + 1 < argc ? argv[++i] : NULL);
            if (svg_row < 16)
                die2("--row: at least 16 bytes");
        } else if (!strcmp(a, "--convert")) {
            if (++i >= argc)
                die2("--convert needs an output file");
            convert = argv[i];
        } else if (!strcmp(a, "--stats"))
            stats = 1;
        else if (a[0] == '-' && a[1])
            die2("unknown option '%s' (see --help)", a);
        else if (trace)
            die2("more than one trace ('%s' and '%s')", trace, a);
        else
            trace = a;
    }
    if (!trace)
        die2("no trace given (see --help)");
    if (svg_path && target == T_MALLOC)
        die2("--svg draws our regions: use --target best, last, pool, debug or profile");

    load(trace);
    const char* name = trace_name(trace);
    if (stats) {
        printf("trace=%s allocs=%" PRIu64 " frees=%" PRIu64 " resizes=%" PRIu64
               " max_alloc=%" PRIu64 " max_busy=%" PRIu64 " class_floor=%" PRIu64 "\n",
               name, H.allocs, H.frees, H.resizes, H.max_alloc, H.max_busy, class_floor());
        return 0;
    }
    if (convert) {
        memcpy(H.magic, BIN_MAGIC, 8);
        int fd = open(convert, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            die2("%s: %s", convert, strerror(errno));
        const char* parts[2] = {(const char*)&H, (const char*)ops};
        size_t lens[2] = {sizeof H, n_ops * sizeof *ops};
        for (int k = 0; k < 2; ++k)
            for (size_t off = 0; off < lens[k];) {
                ssize_t w = write(fd, parts[k] + off, lens[k] - off);
                if (w <= 0) {
                    fprintf(stderr, "vmreplay: %s: %s\n", convert, strerror(errno));
                    return 1;
                }
                off += (size_t)w;
            }
        if (close(fd) != 0)
            die2("%s: %s", convert, strerror(errno));
        return 0;
    }

    /* The parse's scratch is gone; what the children inherit is the op array. */
    if (slot_region)
        munmap(slot_region, cap_slot_region * sizeof *slot_region);
    if (slot_size)
        munmap(slot_size, cap_slot_size * sizeof *slot_size);
    if (free_slots)
        munmap(free_slots, cap_free_slots * sizeof *free_slots);
    fflush(NULL);

    double* col[7];
    for (int k = 0; k < 7; ++k)
        col[k] = mzalloc(runs * sizeof(double));
    for (uint64_t run = 0; run < runs; ++run) {
        int pfd[2];
        if (pipe(pfd) < 0)
            die2("pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            die2("fork: %s", strerror(errno));
        if (pid == 0) {
            close(pfd[0]);
            if (run > 0)
                curve_path = svg_path = NULL;
            Result_t r = replay();
            ssize_t w = write(pfd[1], &r, sizeof r);
            _exit(w == (ssize_t)sizeof r ? 0 : 1);
        }
        close(pfd[1]);
        Result_t r;
        ssize_t got = read(pfd[0], &r, sizeof r);
        close(pfd[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                fprintf(stderr, "vmreplay: %s: the replay died of signal %d\n", trace,
                        WTERMSIG(status));
            else
                fprintf(stderr, "vmreplay: %s: the replay failed\n", trace);
            return 1;
        }
        double v[7] = {r.cpu_ms, r.user_ms, r.sys_ms, r.rss_kb, r.arena, r.moves, r.copied};
        for (int k = 0; k < 7; ++k)
            col[k][run] = v[k];
    }
    double m[7];
    for (int k = 0; k < 7; ++k)
        m[k] = median(col[k], (size_t)runs);
    printf("trace=%s target=%s ops=%" PRIu64 " allocs=%" PRIu64 " frees=%" PRIu64
           " resizes=%" PRIu64 " max_busy=%" PRIu64
           " cpu_ms=%.3f user_ms=%.3f sys_ms=%.3f rss_kb=%.0f arena=%.0f moves=%.0f copied=%.0f"
           " unknown_frees=%" PRIu64 "\n",
           name, target_names[target], H.allocs + H.frees + H.resizes, H.allocs, H.frees,
           H.resizes, H.max_busy, m[0], m[1], m[2], m[3], m[4], m[5], m[6], H.unknown_frees);
    return 0;
}
