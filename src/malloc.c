/*
 * malloc.c — the malloc-compatible interface (paper §4): malloc, free,
 * calloc, realloc, reallocarray, memalign, posix_memalign, aligned_alloc,
 * valloc, pvalloc, malloc_usable_size, and answers for mallopt, malloc_trim,
 * mallinfo2 and malloc_stats. Compiled in only with VMALLOC_MALLOC=ON.
 *
 * Every call goes to Vmregion (Vmheap unless the program or the environment
 * says otherwise). A block freed or resized that Vmregion does not own is
 * looked up with vmregion() and handed to its own region; a pointer no
 * region owns (memory from before a preload, a stack or static address) is
 * ignored by free() and refused by realloc(): never corruption.
 *
 * The environment is read once, at the first allocation (which may come from
 * the dynamic loader, before any constructor): one table of options, each
 * with its name in VMALLOC_OPTIONS and, where the paper has one, its own
 * variable (VMETHOD, VMDEBUG, VMTRACE, VMPROFILE), which wins. Nothing here
 * allocates while reading it, so the first malloc can set the heap up.
 */
#define _GNU_SOURCE
#include "vmhdr.h"

#include <malloc.h>
#include <stdlib.h>

/* ---- the options table --------------------------------------------------- */

typedef struct mal_option_s {
    const char* name; /* key in VMALLOC_OPTIONS */
    const char* env;  /* the paper's own variable, or NULL */
    int value;        /* takes "=value" */
    const char* doc;
} Mal_option_t;

enum { OPT_METHOD, OPT_TRACE, OPT_DEBUG, OPT_ABORT, OPT_CHECK, OPT_WATCH, OPT_GUARD, OPT_PROFILE, OPT_WARN, OPT_PURGE };

static const Mal_option_t mal_options[] = {
    [OPT_METHOD] = {"method", "VMETHOD", 1, "method of the malloc region: best, last, pool, debug, profile"},
    [OPT_TRACE] = {"trace", "VMTRACE", 1, "write a trace line per call to this path (%p: the process id)"},
    [OPT_DEBUG] = {"debug", "VMDEBUG", 0, "select Vmdebug (VMDEBUG=1[,addr,...][,a][,c][,cN][,g])"},
    [OPT_ABORT] = {"abort", NULL, 0, "Vmdebug: abort at the first error"},
    [OPT_CHECK] = {"check", NULL, 0, "Vmdebug: check the whole heap at every call (check=N: every Nth)"},
    [OPT_WATCH] = {"watch", NULL, 1, "Vmdebug: report calls that meet this address"},
    [OPT_GUARD] = {"guard", NULL, 0, "Vmdebug: every block on its own pages before an inaccessible page"},
    [OPT_PROFILE] = {"profile", "VMPROFILE", 1, "select Vmprofile; write the profile to this path at exit"},
    [OPT_WARN] = {"warn", NULL, 1, "where vmalloc's warnings go (default: standard error)"},
    [OPT_PURGE] = {"purge_thread", NULL, 1, "purge freed memory from a thread once the heap reaches 32 MiB (0: only in calls)"},
};
#define MAL_NOPTIONS ((int)(sizeof mal_options / sizeof mal_options[0]))

static int mal_warn_fd = 2;

/* One line "vmalloc: <a><b><c>" on the warning descriptor. */
static void mal_warn(const char* a, const char* b, const char* c)
{
    char line[512];
    size_t n = 0;
    const char* parts[] = {"vmalloc: ", a, b, c, "\n"};
    for (int i = 0; i < 5; ++i)
        for (const char* s = parts[i]; s && *s && n < sizeof line - 2; ++s)
            line[n++] = *s;
    if (line[n - 1] != '\n')
        line[n++] = '\n';
    (void)vm_os_write(mal_warn_fd, line, n);
}

/* path with %p replaced by the process id, into buf. */
static const char* mal_path(const char* path, char* buf, size_t size)
{
    size_t n = 0;
    for (const char* s = path; *s && n + 24 < size; ++s) {
        if (s[0] == '%' && s[1] == 'p') {
            n = (size_t)(vm_fmt_dec(buf + n, (size_t)vm_os_getpid()) - buf);
            ++s;
        } else
            buf[n++] = *s;
    }
    buf[n] = 0;
    return buf;
}

static int mal_strieq(const char* a, const char* b, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return b[n] == 0;
}

/* The method named by s (length n): "best" or "Vmbest" and so on. */
static const char* mal_method_name(const char* s, size_t n)
{
    static const char* names[] = {"best", "last", "pool", "debug", "profile"};
    if (n > 2 && (s[0] == 'v' || s[0] == 'V') && (s[1] == 'm' || s[1] == 'M')) {
        s += 2;
        n -= 2;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
        if (mal_strieq(s, names[i], n))
            return names[i];
    return NULL;
}

typedef struct mal_settings_s {
    const char* value[MAL_NOPTIONS]; /* NULL: not given */
    size_t len[MAL_NOPTIONS];
} Mal_settings_t;

static void mal_set(Mal_settings_t* st, int opt, const char* v, size_t n)
{
    st->value[opt] = v;
    st->len[opt] = n;
}

/* VMALLOC_OPTIONS=name[=value],... */
static void mal_parse_options(Mal_settings_t* st, const char* s)
{
    while (s && *s) {
        const char* end = s;
        while (*end && *end != ',')
            ++end;
        const char* eq = s;
        while (eq < end && *eq != '=')
            ++eq;
        size_t klen = (size_t)(eq - s);
        int found = 0;
        for (int i = 0; i < MAL_NOPTIONS; ++i) {
            if (strlen(mal_options[i].name) == klen && memcmp(mal_options[i].name, s, klen) == 0) {
                const char* v = eq < end ? eq + 1 : "";
                mal_set(st, i, v, eq < end ? (size_t)(end - v) : 0);
                found = 1;
            }
        }
        if (!found && klen > 0) {
            char key[64];
            size_t k = klen < sizeof key - 1 ? klen : sizeof key - 1;
            memcpy(key, s, k);
            key[k] = 0;
            mal_warn("VMALLOC_OPTIONS: unknown option '", key, "' ignored");
        }
        s = *end ? end + 1 : end;
    }
}

/* Open a path (with %p) for writing; -1 with a warning on failure. */
static int mal_open(const char* what, const char* v, size_t n)
{
    char raw[4096], path[4200];
    if (n >= sizeof raw) {
        mal_warn(what, ": path too long", "");
        return -1;
    }
    memcpy(raw, v, n);
    raw[n] = 0;
    int fd = vm_os_open_append(mal_path(raw, path, sizeof path));
    if (fd < 0)
        mal_warn(what, ": cannot open ", path);
    return fd;
}

/* A trace path naming the process id (%p): a forked child writes its own
 * file, as a separate run would. Empty when the path has no %p. */
static char mal_trace_template[4096];

static void mal_keep_template(const char* v, size_t n)
{
    mal_trace_template[0] = 0;
    if (n >= sizeof mal_trace_template)
        return;
    for (size_t i = 0; i + 1 < n; ++i)
        if (v[i] == '%' && v[i + 1] == 'p') {
            memcpy(mal_trace_template, v, n);
            mal_trace_template[n] = 0;
            return;
        }
}

/* In the child of fork(), after the library's locks are released: what the
 * parent traced is written (vm_fork_prepare flushed it), so switch to the
 * child's own file. */
static void mal_fork_child(void)
{
    if (!mal_trace_template[0] || vm_trace_fd < 0)
        return;
    int fd = mal_open("trace", mal_trace_template, strlen(mal_trace_template));
    if (fd >= 0)
        vm_os_close(vmtrace(fd));
}

/* The profile path of VMPROFILE (with %p), written at exit; empty: none. */
static char mal_profile_path[4096];

/* A number: decimal, or hex after 0x; 0 if none. */
static uintptr_t mal_number(const char* s, size_t n)
{
    uintptr_t v = 0;
    int hex = n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    for (size_t i = hex ? 2 : 0; i < n; ++i) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
              : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        v = v * (hex ? 16 : 10) + (uintptr_t)d;
    }
    return v;
}

/* Vmdebug for the malloc region. VMDEBUG's list after its first item:
 * addresses to watch, "a" abort at the first error, "c" check the heap at
 * every call, "cN" every Nth call, "g" guard pages. */
static void mal_debug(const Mal_settings_t* st)
{
    int flags = st->value[OPT_ABORT] ? VM_DBABORT : 0;
    unsigned period = 0;
    uintptr_t watch[32];
    int nwatch = 0;
    if (st->value[OPT_GUARD])
        flags |= VM_DBGUARD;
    if (st->value[OPT_CHECK])
        period = st->len[OPT_CHECK] ? (unsigned)mal_number(st->value[OPT_CHECK], st->len[OPT_CHECK]) : 1;
    if (st->value[OPT_WATCH] && nwatch < 32)
        watch[nwatch++] = mal_number(st->value[OPT_WATCH], st->len[OPT_WATCH]);
    const char* s = st->value[OPT_DEBUG];
    const char* end = s ? s + st->len[OPT_DEBUG] : NULL;
    for (int first = 1; s && s < end; first = 0) {
        const char* e = s;
        while (e < end && *e != ',')
            ++e;
        size_t n = (size_t)(e - s);
        if (first)
            ; /* "1": Vmdebug on */
        else if (n == 1 && s[0] == 'a')
            flags |= VM_DBABORT;
        else if (n == 1 && s[0] == 'g')
            flags |= VM_DBGUARD;
        else if (n >= 1 && s[0] == 'c')
            period = n == 1 ? 1 : (unsigned)mal_number(s + 1, n - 1);
        else if (n && nwatch < 32)
            watch[nwatch++] = mal_number(s, n);
        s = e < end ? e + 1 : e;
    }
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmdebug, flags);
    if (!vm) {
        mal_warn("cannot open the debug region: using Vmbest", "", "");
        return;
    }
    for (int i = 0; i < nwatch; ++i)
        if (watch[i])
            (void)vmdbwatch(vm, (void*)watch[i]);
    if (period == 1)
        (void)vmset(vm, VM_DBCHECK, 1);
    else
        vm_debug_period(vm, period);
    Vmregion = vm;
}

/* Vmprofile for the malloc region; the profile goes to path at exit. */
static void mal_profile(const char* path, size_t n)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmprofile, 0);
    if (!vm) {
        mal_warn("cannot open the profile region: using Vmbest", "", "");
        return;
    }
    if (path && n && n < sizeof mal_profile_path) {
        memcpy(mal_profile_path, path, n);
        mal_profile_path[n] = 0;
    }
    Vmregion = vm;
}

/* At exit, after the program's own destructors: the profile of VMPROFILE. */
__attribute__((destructor)) static void mal_at_exit(void)
{
    if (!mal_profile_path[0])
        return;
    char path[4200];
    int fd = vm_os_open_trunc(mal_path(mal_profile_path, path, sizeof path));
    if (fd < 0) {
        mal_warn("profile: cannot open ", path, "");
        return;
    }
    if (vmprofile(NULL, fd) < 0)
        mal_warn("profile: cannot write ", path, "");
    vm_os_close(fd);
}

/* Read the environment and set Vmregion up. Allocates nothing. */
static void mal_configure(void)
{
    Mal_settings_t st;
    memset(&st, 0, sizeof st);
    mal_parse_options(&st, getenv("VMALLOC_OPTIONS"));
    for (int i = 0; i < MAL_NOPTIONS; ++i) {
        const char* v = mal_options[i].env ? getenv(mal_options[i].env) : NULL;
        if (v)
            mal_set(&st, i, v, strlen(v));
    }
    if (st.value[OPT_WARN]) {
        int fd = mal_open("warn", st.value[OPT_WARN], st.len[OPT_WARN]);
        if (fd >= 0)
            mal_warn_fd = fd;
    }
    /* Debug settings select Vmdebug; a profile path, Vmprofile (debug wins). */
    int debug = st.value[OPT_DEBUG] || st.value[OPT_ABORT] || st.value[OPT_CHECK] ||
                st.value[OPT_WATCH] || st.value[OPT_GUARD];
    if (debug) {
        if (st.value[OPT_PROFILE])
            mal_warn("Vmdebug and Vmprofile both asked for: using Vmdebug, no profile", "", "");
        mal_debug(&st);
    } else if (st.value[OPT_PROFILE])
        mal_profile(st.value[OPT_PROFILE], st.len[OPT_PROFILE]);
    if (st.value[OPT_METHOD] && !debug && !st.value[OPT_PROFILE]) {
        const char* name = mal_method_name(st.value[OPT_METHOD], st.len[OPT_METHOD]);
        Vmethod_t* meth = NULL;
        if (!name) {
            char bad[64];
            size_t k = st.len[OPT_METHOD] < sizeof bad - 1 ? st.len[OPT_METHOD] : sizeof bad - 1;
            memcpy(bad, st.value[OPT_METHOD], k);
            bad[k] = 0;
            mal_warn("unknown method '", bad, "' (best, last, pool, debug, profile): using Vmbest");
        } else if (strcmp(name, "last") == 0)
            meth = Vmlast;
        else if (strcmp(name, "pool") == 0)
            meth = Vmpool;
        else if (strcmp(name, "debug") == 0)
            mal_debug(&st);
        else if (strcmp(name, "profile") == 0)
            mal_profile(NULL, 0);
        if (meth) {
            Vmalloc_t* vm = vmopen(Vmdcsystem, meth, 0);
            if (vm)
                Vmregion = vm;
            else
                mal_warn("cannot open the ", name, " region: using Vmbest");
        }
    }
    /* The upkeep thread serves Vmheap when it is the malloc region. */
    int purge = 1;
    if (st.value[OPT_PURGE]) {
        const char* v = st.value[OPT_PURGE];
        if (st.len[OPT_PURGE] == 1 && (v[0] == '0' || v[0] == '1'))
            purge = v[0] == '1';
        else
            mal_warn("VMALLOC_OPTIONS: purge_thread takes 0 or 1: keeping the thread", "", "");
    }
    if (purge && Vmregion == Vmheap)
        vm_upkeep_enable(Vmheap);
    if (st.value[OPT_TRACE]) {
        int fd = mal_open("trace", st.value[OPT_TRACE], st.len[OPT_TRACE]);
        mal_keep_template(st.value[OPT_TRACE], st.len[OPT_TRACE]);
        if (fd >= 0) {
            vm_trace_all = 1;
            (void)vmtrace(fd);
            if (Vmregion != Vmheap)
                vm_trace_region(Vmregion, "open");
        }
    }
}

/* 0: nothing done; 1: a thread is configuring; 2: ready. */
static int mal_state;

/* May this call take Vmbest's direct entries (vmhdr.h)? Not before the
 * environment is read, nor while anything is traced, new blocks go to
 * scoped heaps, or once the program has noted a call's file and line
 * (VMFL): the general path sorts those out (and may still go lock-free). */
static inline int mal_fast_now(void)
{
    return (__atomic_load_n(&vm_malloc_slow, __ATOMIC_ACQUIRE) & VM_SLOW_MALLOC) == 0;
}

static void* mal_malloc_slow(size_t n, void* caller);
static void mal_free_slow(void* p, void* caller);
static void* mal_realloc_slow(void* p, size_t n, void* caller);

static void mal_init_slow(void)
{
    int expect = 0;
    if (__atomic_compare_exchange_n(&mal_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        mal_configure();
        __atomic_store_n(&mal_state, 2, __ATOMIC_RELEASE);
        /* Vmbest's direct entries hand their failures here; published by
         * the gate's release. */
        vm_malloc_else = mal_malloc_slow;
        vm_free_else = mal_free_slow;
        vm_realloc_else = mal_realloc_slow;
        vm_malloc_slow_set(VM_SLOW_INIT, 0);
        return;
    }
    /* Another thread is reading the environment; it allocates nothing, so it
     * is never this thread re-entering. Wait for Vmregion to be settled. */
    while (__atomic_load_n(&mal_state, __ATOMIC_ACQUIRE) != 2)
        vm_os_yield();
}

static inline Vmalloc_t* mal_region(void)
{
    if (__builtin_expect(__atomic_load_n(&mal_state, __ATOMIC_ACQUIRE) != 2, 0))
        mal_init_slow();
    return Vmregion;
}

/* The core's fork handlers (region.c) call this in the child once the
 * library's locks are released. The environment is read here at the latest,
 * for programs whose first allocation comes later. */
__attribute__((constructor)) static void mal_constructor(void)
{
    (void)mal_region();
    vm_fork_child_hook = mal_fork_child;
}

/* ---- the malloc family --------------------------------------------------- */

/* Whose block is p: vm if it is busy there, else the region vmregion()
 * finds, else NULL. The fast case costs one validation. */
static Vmalloc_t* mal_owner(Vmalloc_t* vm, void* p)
{
    if (vmsize(vm, p) >= 0)
        return vm;
    Vmalloc_t* r = vmregion(p);
    return r && vmsize(r, p) >= 0 ? r : (r == vm ? vm : NULL);
}

/* Every block is aligned for max_align_t, except in a pool: its one size
 * fixes its blocks' alignment (C's rule: what an object of that size needs),
 * and asking for more would refuse every size whose blocks cannot give it. */
static inline void* mal_alloc(Vmalloc_t* vm, size_t n)
{
    return vm->meth == &vm_pool_method ? vmalloc(vm, n) : vmalign(vm, n, VM_ALIGN);
}

/* Where a new block goes: vm, or with vmscope_malloc(1) the calling thread's
 * current sub-heap (scope.c). One branch on a global when it is off. */
static inline Vmalloc_t* mal_target(Vmalloc_t* vm)
{
    return __builtin_expect(vm_scope_malloc, 0) ? vm_scope_region(vm) : vm;
}

/* The general path of malloc, out of line so that the fast one saves no
 * registers. */
__attribute__((noinline)) static void* mal_malloc_slow(size_t n, void* caller)
{
    Vmalloc_t* vm = mal_target(mal_region());
    if (vm_fast_ok(vm)) {
        void* p = vm->meth->fastallocf(vm, n, 0);
        if (p)
            return p;
    }
    vm_caller_here(caller);
    return mal_alloc(vm, n);
}

void* malloc(size_t n)
{
    if (__builtin_expect(mal_fast_now(), 1))
        return vm_best_malloc(n, __builtin_return_address(0), Vmregion);
    return mal_malloc_slow(n, __builtin_return_address(0));
}

/* Methods whose moves keep malloc's alignment, and that take any size. */
static inline int mal_bestlike(const Vmalloc_t* vm)
{
    return vm->meth == &vm_best_method || vm->meth == &vm_debug_method ||
           vm->meth == &vm_profile_method;
}

/* The general path of free (see mal_malloc_slow). */
__attribute__((noinline)) static void mal_free_slow(void* p, void* caller)
{
    Vmalloc_t* vm = mal_region();
    if (p && vm_fast_ok(vm) && vm->meth->fastfreef(vm, p) == 0)
        return;
    const char* file;
    int line;
    vm_fl_take(&file, &line); /* for whichever region owns p */
    if (!p)
        return;
    vm_caller_here(caller);
    int e = errno;
    if (file)
        _vmflinfo(file, line);
    if (vm->meth == &vm_debug_method) {
        /* Vmdebug reports what it does not own: ask the others first. */
        Vmalloc_t* r = vmregion(p);
        (void)vmfree(r && r != vm ? r : vm, p);
        errno = e;
        return;
    }
    if (vm_free_quiet(vm, p) < 0) {
        /* Another region's block, or nobody's (then it is left alone). */
        Vmalloc_t* r = vmregion(p);
        if (r && r != vm) {
            if (file)
                _vmflinfo(file, line);
            (void)vmfree(r, p);
        }
    }
    errno = e;
}

void free(void* p)
{
    if (__builtin_expect(mal_fast_now(), 1)) {
        vm_best_free(p, __builtin_return_address(0), Vmregion);
        return;
    }
    mal_free_slow(p, __builtin_return_address(0));
}

/* n * m into *size; 0 with ENOMEM (and the call's VMFL note dropped) when
 * it overflows. */
static int mal_product(size_t n, size_t m, size_t* size)
{
    if (!__builtin_mul_overflow(n, m, size))
        return 1;
    vm_fl_drop();
    errno = ENOMEM;
    return 0;
}

void* calloc(size_t n, size_t m)
{
    vm_caller_here(__builtin_return_address(0));
    size_t size;
    if (!mal_product(n, m, &size))
        return NULL;
    void* p = mal_alloc(mal_target(mal_region()), size);
    if (p)
        memset(p, 0, size);
    return p;
}

/* Bytes of p that a moving realloc may copy: its usable size, or — Vmlast
 * keeps none for blocks but the last — what is left of its busy span. */
typedef struct {
    char* p;
    size_t room;
} Mal_span_t;

static int mal_span_visit(Vmalloc_t* vm, void* block, size_t size, Vmdisc_t* disc, void* arg)
{
    (void)vm;
    (void)disc;
    Mal_span_t* s = arg;
    if (s->p >= (char*)block && s->p < (char*)block + size) {
        s->room = (size_t)((char*)block + size - s->p);
        return 1;
    }
    return 0;
}

static size_t mal_copysize(Vmalloc_t* vm, void* p)
{
    long n = vmsize(vm, p);
    if (n >= 0)
        return (size_t)n;
    Mal_span_t s = {p, 0};
    (void)vmwalk(vm, mal_span_visit, &s);
    return s.room;
}

/* The general path of realloc (see mal_malloc_slow). */
__attribute__((noinline)) static void* mal_realloc_slow(void* p, size_t n, void* caller)
{
    vm_caller_here(caller);
    Vmalloc_t* vm = mal_region();
    if (!p)
        return mal_alloc(mal_target(vm), n);
    if (n == 0) { /* glibc: free and return NULL */
        free(p);
        return NULL;
    }
    const char* file;
    int line;
    vm_fl_take(&file, &line); /* noted again for whichever call serves p */
    if (vm->meth == &vm_debug_method) {
        /* Vmdebug reports a bad block: ask the other regions first. */
        Vmalloc_t* r = vmregion(p);
        if (!r || r == vm) {
            if (file)
                _vmflinfo(file, line);
            return vmresize(vm, p, n, VM_RSCOPY);
        }
    } else if (vm->meth == &vm_best_method || vm->meth == &vm_profile_method) {
        /* The common case, a block of Vmregion itself: one validation. */
        if (file)
            _vmflinfo(file, line);
        void* q = vm_resize_quiet(vm, p, n, VM_RSCOPY);
        if (q || errno != EINVAL)
            return q;
    }
    Vmalloc_t* own = mal_owner(vm, p);
    if (!own) {
        errno = EINVAL;
        return NULL;
    }
    if (file)
        _vmflinfo(file, line);
    if (mal_bestlike(own)) /* moves keep 16-byte alignment */
        return vmresize(own, p, n, VM_RSCOPY);
    void* q = vmresize(own, p, n, 0);
    if (q)
        return q;
    /* Vmlast/Vmpool: move by hand, so the new block is aligned as malloc's. */
    q = mal_alloc(own, n);
    if (!q)
        return NULL;
    size_t keep = mal_copysize(own, p);
    memcpy(q, p, keep < n ? keep : n);
    (void)vmfree(own, p);
    return q;
}

void* realloc(void* p, size_t n)
{
    if (__builtin_expect(mal_fast_now(), 1) && n)
        return vm_best_realloc(p, n, __builtin_return_address(0), Vmregion);
    return mal_realloc_slow(p, n, __builtin_return_address(0));
}

void* reallocarray(void* p, size_t n, size_t m)
{
    vm_caller_here(__builtin_return_address(0));
    size_t size;
    if (!mal_product(n, m, &size))
        return NULL;
    return realloc(p, size);
}

static size_t mal_pow2_up(size_t a)
{
    size_t p = VM_ALIGN;
    while (p < a && p <= VM_MAXSIZE)
        p <<= 1;
    return p;
}

void* memalign(size_t align, size_t n)
{
    vm_caller_here(__builtin_return_address(0));
    if (align > VM_MAXSIZE) {
        vm_fl_drop();
        errno = EINVAL;
        return NULL;
    }
    return vmalign(mal_region(), n, mal_pow2_up(align));
}

void* aligned_alloc(size_t align, size_t n)
{
    vm_caller_here(__builtin_return_address(0));
    if (!vm_is_pow2(align)) {
        vm_fl_drop();
        errno = EINVAL;
        return NULL;
    }
    return memalign(align, n);
}

int posix_memalign(void** pp, size_t align, size_t n)
{
    vm_caller_here(__builtin_return_address(0));
    if (!vm_is_pow2(align) || align % sizeof(void*) != 0) {
        vm_fl_drop();
        return EINVAL;
    }
    int e = errno;
    void* p = memalign(align, n);
    errno = e;
    if (!p)
        return ENOMEM;
    *pp = p;
    return 0;
}

void* valloc(size_t n)
{
    vm_caller_here(__builtin_return_address(0));
    return memalign(vm_os_pagesize(), n);
}

void* pvalloc(size_t n)
{
    vm_caller_here(__builtin_return_address(0));
    size_t page = vm_os_pagesize();
    size_t size = vm_align_up(n ? n : 1, page);
    if (size < n) {
        vm_fl_drop();
        errno = ENOMEM;
        return NULL;
    }
    return memalign(page, size);
}

size_t malloc_usable_size(void* p)
{
    if (!p)
        return 0;
    Vmalloc_t* own = mal_owner(mal_region(), p);
    long n = own ? vmsize(own, p) : -1;
    return n > 0 ? (size_t)n : 0;
}

/* glibc's tuning knobs mean nothing here; accept them. */
int mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}

int malloc_trim(size_t pad)
{
    (void)pad;
    Vmalloc_t* vm = mal_region();
    Vmstat_t before, after;
    (void)vmstat(vm, &before);
    (void)vmcompact(vm);
    (void)vmstat(vm, &after);
    return after.extent < before.extent;
}

struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 mi;
    Vmstat_t st;
    memset(&mi, 0, sizeof mi);
    (void)vmstat(mal_region(), &st);
    mi.arena = st.extent;
    mi.ordblks = st.n_free;
    mi.uordblks = st.s_busy;
    mi.fordblks = st.s_free;
    mi.keepcost = st.m_free;
    return mi;
}

/* One line per figure, formatted without allocating. */
static char* mal_put(char* p, const char* key, size_t v)
{
    while (*key)
        *p++ = *key++;
    p = vm_fmt_dec(p, v);
    *p++ = ':';
    return p;
}

void malloc_stats(void)
{
    Vmalloc_t* vm = mal_region();
    Vmstat_t st;
    char line[512], *p = line;
    (void)vmstat(vm, &st);
    const char* m = vm->meth->name;
    memcpy(p, "vmalloc: method=", 16);
    p += 16;
    while (*m)
        *p++ = *m++;
    *p++ = ':';
    p = mal_put(p, "n_busy=", st.n_busy);
    p = mal_put(p, "s_busy=", st.s_busy);
    p = mal_put(p, "n_free=", st.n_free);
    p = mal_put(p, "s_free=", st.s_free);
    p = mal_put(p, "max_busy=", st.max_busy);
    p = mal_put(p, "n_seg=", st.n_seg);
    p = mal_put(p, "extent=", st.extent);
    *p++ = '\n';
    (void)vm_os_write(2, line, (size_t)(p - line));
}
