/*
 * test_scope.c — scoped heaps, one operation at a time: the stack (vmenter,
 * vmleave, VM_SUBHEAP with break and continue, nesting thousands deep),
 * vmnew, escape (one block, a list, chains across levels, a large block that
 * keeps its address), import, switch, transactions that commit and abort,
 * the global heap, owned heaps, destructors and their order, a return and a
 * longjmp out of a block with vmunwind, the errors (each message is read
 * back from fd 2), heaps as ordinary regions (vmstat, vmwalk, vmregion,
 * vmdbcheck), and debug mode (0xa0/0xfe fills, abort) in a child process.
 */
#define _POSIX_C_SOURCE 200809L
#include "t.h"

#include <vmalloc.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

/* ---- fd 2 captured into a file, to read error messages back ------------------ */

static int cap_saved = -1;
static char cap_path[] = "/tmp/test_scope.XXXXXX";
static int cap_fd = -1;

static void cap_start(void)
{
    fflush(stderr);
    if (cap_fd < 0)
        cap_fd = mkstemp(cap_path);
    CHECK(cap_fd >= 0, "mkstemp");
    CHECK(ftruncate(cap_fd, 0) == 0 && lseek(cap_fd, 0, SEEK_SET) == 0, "truncate");
    cap_saved = dup(2);
    dup2(cap_fd, 2);
}

/* Stop capturing; the text captured (static buffer). */
static const char* cap_stop(void)
{
    static char buf[4096];
    dup2(cap_saved, 2);
    close(cap_saved);
    ssize_t n = pread(cap_fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static void expect_msg(const char* got, const char* want)
{
    EXPECT(strstr(got, want) != NULL, "message '%s' lacks '%s'", got, want);
}

static size_t busy_of(Vmalloc_t* vm)
{
    Vmstat_t st;
    CHECK(vmstat(vm, &st) == 0, "vmstat");
    return st.n_busy;
}

/* ---- the stack ---------------------------------------------------------------- */

static void test_stack(void)
{
    Vmalloc_t* g = vmglobal();
    CHECK(g && vmcurrent() == g, "the global heap is current at first");
    CHECK(vmparent(g) == NULL, "it has no parent");
    Vmalloc_t* h = vmenter();
    CHECK(h && vmcurrent() == h && vmparent(h) == g, "vmenter pushes a sub-heap");
    char* p = vmnew(100);
    CHECK(p && vmregion(p) == h && vmsize(h, p) >= 100, "vmnew allocates in it");
    memset(p, 1, 100);
    char* q = vmalloc(h, 5000); /* large: a segment of its own */
    CHECK(q && vmregion(q) == h, "vmalloc on it works too");
    EXPECT(busy_of(h) == 2 && vmdbcheck(h) == 0, "vmstat sees both");
    EXPECT(vmfree(h, p) == 0 && busy_of(h) == 1, "vmfree in the current heap");
    EXPECT(vmleave(h) == 0 && vmcurrent() == g, "vmleave pops it");

    /* VM_SUBHEAP: leaves at the end, on break and on continue. */
    Vmalloc_t* seen = NULL;
    VM_SUBHEAP {
        seen = vmcurrent();
        EXPECT(seen != g && vmparent(seen) == g, "VM_SUBHEAP enters");
    }
    EXPECT(vmcurrent() == g, "and leaves");
    for (int i = 0; i < 3; ++i) {
        VM_SUBHEAP {
            if (i == 1)
                break;
            vmnew(10);
        }
        EXPECT(vmcurrent() == g, "break leaves (i=%d)", i);
    }
    VM_SUBHEAP {
        vmnew(10);
        continue;
    }
    EXPECT(vmcurrent() == g, "continue leaves");

    /* Nesting thousands deep: each level's block survives until its leave. */
    enum { DEPTH = 3000 };
    static Vmalloc_t* hs[DEPTH];
    static int* ps[DEPTH];
    for (int i = 0; i < DEPTH; ++i) {
        hs[i] = vmenter();
        CHECK(hs[i], "vmenter at depth %d", i);
        ps[i] = vmnew(sizeof(int) * 4);
        CHECK(ps[i], "vmnew at depth %d", i);
        ps[i][0] = i;
        EXPECT(vmparent(hs[i]) == (i ? hs[i - 1] : g), "parent at depth %d", i);
    }
    for (int i = DEPTH - 1; i >= 0; --i) {
        EXPECT(ps[i][0] == i && vmregion(ps[i]) == hs[i], "block at depth %d", i);
        EXPECT(vmleave(hs[i]) == 0, "leave depth %d", i);
    }
    EXPECT(vmcurrent() == g, "back at the bottom after %d levels", DEPTH);
}

/* Recursion with VM_SUBHEAP at every level, to depth n. */
static int recurse(int n)
{
    int r = 0;
    VM_SUBHEAP {
        int* x = vmnew(sizeof *x);
        *x = n;
        r = n ? recurse(n - 1) + (*x == n) : 1;
    }
    return r;
}

/* ---- escape and import ----------------------------------------------------------- */

static void test_escape(void)
{
    Vmalloc_t* g = vmglobal();
    char* out = NULL;
    VM_SUBHEAP_AS(a) {
        VM_SUBHEAP_AS(b) {
            VM_SUBHEAP_AS(c) {
                VM_SUBHEAP_AS(d) {
                    char* s = vmnew(32);
                    strcpy(s, "escaped four levels");
                    s = vmescape(s);
                    EXPECT(s && vmregion(s) == c, "escape d->c");
                    out = s;
                }
                out = vmescape(out);
                EXPECT(out && vmregion(out) == b, "escape c->b");
            }
            out = vmescape(out);
            EXPECT(out && vmregion(out) == a, "escape b->a");
            EXPECT(busy_of(b) == 0, "b keeps nothing");
        }
        out = vmescape(out);
        EXPECT(out && vmregion(out) == g, "escape a->global");
    }
    EXPECT(out && strcmp(out, "escaped four levels") == 0, "the content survives: %s", out);
    EXPECT(vmfree(g, out) == 0, "and is freed in the global heap");

    /* A list of blocks; a large block keeps its address. */
    void* list[4];
    char* big = NULL;
    VM_SUBHEAP_AS(p) {
        VM_SUBHEAP {
            for (int i = 0; i < 4; ++i) {
                list[i] = vmnew(24);
                memset(list[i], 'a' + i, 24);
            }
            list[2] = NULL; /* NULL entries are skipped */
            EXPECT(vmescape_list(list, 4) == 0, "vmescape_list");
            big = vmnew(20000);
            CHECK(big, "a large block");
            memset(big, 'z', 20000);
            char* moved = vmescape(big);
            EXPECT(moved == big, "a large block keeps its address");
        }
        for (int i = 0; i < 4; ++i)
            if (i != 2)
                EXPECT(vmregion(list[i]) == p && ((char*)list[i])[23] == 'a' + i,
                       "list[%d] in the parent", i);
        EXPECT(vmregion(big) == p && big[19999] == 'z' && vmdbcheck(p) == 0,
               "the large block is the parent's");
        EXPECT(busy_of(p) == 4, "the parent holds 4 blocks");
    }

    /* Import from an owned heap into the current one. */
    Vmalloc_t* own = vmheap_open();
    CHECK(own, "vmheap_open");
    char* x = NULL;
    VM_SWITCH(own) {
        x = vmnew(40);
        strcpy(x, "imported");
    }
    VM_SUBHEAP_AS(h) {
        char* y = vmimport(own, x);
        EXPECT(y && vmregion(y) == h && strcmp(y, "imported") == 0, "vmimport copies it in");
        EXPECT(vmsize(own, x) == -1 && busy_of(own) == 0, "and frees it in the source");
        EXPECT(vmimport(h, y) == y, "importing from the current heap changes nothing");
    }
    EXPECT(vmheap_close(own) == 0, "vmheap_close");
}

/* ---- switch, global, owned heaps ---------------------------------------------- */

static void test_switch(void)
{
    Vmalloc_t* g = vmglobal();
    char* forever = NULL;
    Vmalloc_t* own = NULL;
    VM_SUBHEAP_AS(a) {
        VM_SUBHEAP {
            VM_GLOBAL {
                EXPECT(vmcurrent() == g, "VM_GLOBAL switches to the global heap");
                forever = vmnew(16);
                strcpy(forever, "process");
            }
            own = vmheap_open();
            EXPECT(own && vmparent(own) == vmcurrent(), "an owned heap's parent is current");
        }
        EXPECT(vmcurrent() == a, "back in a");
        VM_SWITCH(a) {
            EXPECT(vmcurrent() == a, "switch to the current heap is fine");
            break;
        }
        EXPECT(vmcurrent() == a, "break leaves a switch block switched back");
    }
    EXPECT(strcmp(forever, "process") == 0 && vmregion(forever) == g, "global block lives on");
    vmfree(g, forever);
    /* own was opened in a sub-heap that is gone: it was closed with it (its
     * destructors show it: test_dtors). */
    (void)own;

    /* The owner-carries-its-heap pattern. */
    typedef struct {
        Vmalloc_t* heap;
        char* name;
    } Thing;
    Thing* t = NULL;
    VM_GLOBAL {
        Vmalloc_t* heap = vmheap_open();
        VM_SWITCH(heap) {
            t = vmnew(sizeof *t);
            t->heap = heap;
            t->name = vmnew(8);
            strcpy(t->name, "thing");
        }
    }
    CHECK(t, "the thing");
    EXPECT(vmregion(t) == t->heap && vmparent(t->heap) == g, "the thing lives in its heap");
    VM_SUBHEAP {
        VM_SWITCH(t->heap) {
            char* more = vmnew(100); /* the thing's heap grows while a sub-heap is current */
            EXPECT(vmregion(more) == t->heap, "switch inside a sub-heap");
        }
    }
    EXPECT(busy_of(t->heap) == 3, "three blocks in the thing's heap");
    EXPECT(vmheap_close(t->heap) == 0, "closing the owner's heap frees it all");
    cap_start();
    EXPECT(vmheap_close(g) == -1 && errno == EINVAL, "the global heap is no owned heap");
    expect_msg(cap_stop(), "vmheap_close");
}

/* ---- transactions ------------------------------------------------------------------ */

static int dtor_log[16];
static int dtor_n;
static void dtor(void* b) { dtor_log[dtor_n++ % 16] = *(int*)b; }

static void test_txn(void)
{
    VM_SUBHEAP_AS(p) {
        typedef struct node {
            struct node* next;
            int v;
        } Node;
        Node* head = NULL;
        Node* big = NULL;
        VM_TXN(t) {
            EXPECT(vmparent(t) == p && vmcurrent() == t, "VM_TXN enters");
            for (int i = 0; i < 100; ++i) {
                Node* n = vmnew(sizeof *n);
                n->v = i;
                n->next = head;
                head = n;
            }
            big = vmnew(50000);
            big->v = 7;
        }
        EXPECT(vmcurrent() == p, "commit pops");
        int count = 0, ok = 1;
        for (Node* n = head; n; n = n->next, ++count)
            ok &= n->v == 99 - count && vmregion(n) == p;
        EXPECT(count == 100 && ok, "100 linked nodes merged, addresses kept (%d)", count);
        EXPECT(big->v == 7 && vmregion(big) == p && busy_of(p) == 101 && vmdbcheck(p) == 0,
               "and the large block");
        EXPECT(vmfree(p, head) == 0, "a merged block frees in the parent");

        /* Abort: everything goes, destructors run. */
        dtor_n = 0;
        Vmalloc_t* t = vmtxn_begin();
        int* x = vmnew(sizeof *x);
        *x = 42;
        EXPECT(vmdestructor(x, dtor) == 0, "vmdestructor");
        EXPECT(vmtxn_abort(t) == 0 && vmcurrent() == p, "vmtxn_abort pops");
        EXPECT(dtor_n == 1 && dtor_log[0] == 42, "and ran the destructor");
        EXPECT(busy_of(p) == 100, "nothing reached the parent");

        /* VM_TXN aborted from inside. */
        size_t before = busy_of(p);
        VM_TXN(t2) {
            vmnew(10);
            vmtxn_abort(t2);
            break;
        }
        EXPECT(vmcurrent() == p && busy_of(p) == before, "abort and break in VM_TXN");

        /* A destructor moves with a commit, and runs when the parent goes. */
        dtor_n = 0;
        VM_TXN(t3) {
            int* y = vmnew(sizeof *y);
            *y = 9;
            vmdestructor(y, dtor);
        }
        EXPECT(dtor_n == 0, "commit runs no destructor");
        cap_start();
        Vmalloc_t* s = vmenter();
        EXPECT(vmtxn_commit(s) == -1 && errno == EINVAL, "commit of a plain sub-heap is refused");
        expect_msg(cap_stop(), "not a transactional sub-heap");
        vmleave(s);
    }
    EXPECT(dtor_n == 1 && dtor_log[0] == 9, "the committed destructor ran with the parent");
}

/* ---- destructors ------------------------------------------------------------------- */

static void test_dtors(void)
{
    dtor_n = 0;
    VM_SUBHEAP {
        for (int i = 1; i <= 3; ++i) {
            int* b = vmnew(sizeof *b);
            *b = i;
            vmdestructor(b, dtor);
        }
        VM_SUBHEAP {
            int* c = vmnew(sizeof *c);
            *c = 10;
            vmdestructor(c, dtor);
            int* e = vmnew(sizeof *e);
            *e = 20;
            vmdestructor(e, dtor);
            e = vmescape(e); /* goes to the parent with its destructor */
            EXPECT(*e == 20, "escaped");
        }
        EXPECT(dtor_n == 1 && dtor_log[0] == 10, "the child's destructor ran at its leave");
        int* f = vmnew(sizeof *f);
        *f = 30;
        vmdestructor(f, dtor);
        EXPECT(vmfree(vmcurrent(), f) == 0 && dtor_n == 2 && dtor_log[1] == 30,
               "vmfree runs the destructor");
        /* the owned heap's destructors run when its parent is left, first */
        Vmalloc_t* own = vmheap_open();
        VM_SWITCH(own) {
            int* o = vmnew(sizeof *o);
            *o = 40;
            vmdestructor(o, dtor);
        }
    }
    /* newest first: owned heap (40), escaped (20), then 3, 2, 1 */
    int want[] = {10, 30, 40, 20, 3, 2, 1};
    EXPECT(dtor_n == 7, "7 destructors ran, not %d", dtor_n);
    for (int i = 0; i < 7 && i < dtor_n; ++i)
        EXPECT(dtor_log[i] == want[i], "destructor %d ran for %d, expected %d", i, dtor_log[i],
               want[i]);
    /* a large block's destructor, moved by escape without copying */
    dtor_n = 0;
    VM_SUBHEAP {
        VM_SUBHEAP {
            int* big = vmnew(10000);
            *big = 77;
            vmdestructor(big, dtor);
            EXPECT(vmescape(big) == big, "large escape");
        }
        EXPECT(dtor_n == 0, "not run by the child");
    }
    EXPECT(dtor_n == 1 && dtor_log[0] == 77, "run by the parent");
    cap_start();
    int local;
    EXPECT(vmdestructor(&local, dtor) == -1 && errno == EINVAL, "a stack address has no heap");
    expect_msg(cap_stop(), "vmdestructor");
}

/* ---- leaving a block early ----------------------------------------------------------- */

static char* early_return(int n)
{
    VM_SUBHEAP_AS(h) {
        char* r = vmnew(16);
        snprintf(r, 16, "n=%d", n);
        r = vmescape(r);
        vmunwind(vmparent(h)); /* the safe way out of the block */
        return r;
    }
    return NULL;
}

static void bad_return(void)
{
    VM_SUBHEAP {
        vmnew(10);
        return; /* skips the leave: the sub-heap stays current */
    }
}

static jmp_buf jb;
static void deep_jump(int n)
{
    VM_SUBHEAP {
        vmnew(64);
        if (n == 0)
            longjmp(jb, 1);
        deep_jump(n - 1);
    }
}

static void test_early_exit(void)
{
    Vmalloc_t* g = vmglobal();
    VM_SUBHEAP_AS(outer) {
        char* r = early_return(5);
        EXPECT(vmcurrent() == outer && strcmp(r, "n=5") == 0 && vmregion(r) == outer,
               "return with vmunwind: back in the caller's heap, the result in it");
        bad_return();
        EXPECT(vmcurrent() != outer && vmparent(vmcurrent()) == outer,
               "a bare return leaves the sub-heap current");
        cap_start(); /* the leave of outer unwinds it, with a message */
    }
    expect_msg(cap_stop(), "never left");
    EXPECT(vmcurrent() == g, "the outer leave unwound the forgotten sub-heap");

    Vmalloc_t* mark = vmcurrent();
    if (setjmp(jb) == 0) {
        deep_jump(10);
        EXPECT(0, "longjmp did not happen");
    }
    EXPECT(vmcurrent() != mark, "after longjmp the sub-heaps are still entered");
    EXPECT(vmunwind(mark) == 0 && vmcurrent() == mark, "vmunwind(mark) leaves them");
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_errors(void)
{
    Vmalloc_t* g = vmglobal();
    const char* m;
    cap_start();
    EXPECT(vmescape(vmnew(8)) == NULL && errno == EINVAL, "escape from the bottom heap");
    m = cap_stop();
    expect_msg(m, "vmescape: escaping from the bottom heap");
    expect_msg(m, "(global)");

    cap_start();
    EXPECT(vmleave(g) == -1 && errno == EINVAL, "the global heap cannot be left");
    expect_msg(cap_stop(), "vmleave: not a sub-heap");

    Vmalloc_t* h = vmenter();
    char* p = vmnew(10);
    cap_start();
    VM_GLOBAL {
        EXPECT(vmfree(h, p) == -1 && errno == EINVAL, "free into a heap not on the chain");
    }
    expect_msg(cap_stop(), "neither current nor an ancestor");
    EXPECT(vmsize(h, p) >= 10, "the block is untouched");

    cap_start();
    EXPECT(vmclose(h) == -1, "vmclose of a sub-heap is refused");
    expect_msg(cap_stop(), "vmclose");
    EXPECT(vmleave(h) == 0, "it is left properly");

    cap_start();
    EXPECT(vmleave(h) == -1 && errno == EINVAL, "leaving twice");
    EXPECT(vmalloc(h, 10) == NULL, "allocating in a left heap");
    expect_msg(cap_stop(), "was left");

    cap_start();
    EXPECT(vmswitch(NULL) == NULL && vmleave(NULL) == -1 && vmimport(NULL, p) == NULL,
           "NULL heaps");
    EXPECT(vmescape(NULL) == NULL && vmescape_list(NULL, 1) == -1, "NULL blocks");
    Vmalloc_t* plain = vmopen(Vmdcsystem, Vmbest, 0);
    EXPECT(vmswitch(plain) == NULL, "switching to a region that is not a scoped heap");
    (void)cap_stop();
    vmclose(plain);

    VM_SUBHEAP {
        int local;
        cap_start();
        EXPECT(vmescape(&local) == NULL && errno == EINVAL, "escaping a non-block");
        expect_msg(cap_stop(), "not a busy block");
    }
    EXPECT(vmcurrent() == g, "the stack is intact after the errors");
}

/* ---- heaps are regions ------------------------------------------------------------- */

static int count_visit(Vmalloc_t* vm, void* b, size_t n, Vmdisc_t* d, void* arg)
{
    (void)vm, (void)b, (void)d;
    size_t* c = arg;
    c[0] += 1;
    c[1] += n;
    return 0;
}

static void test_regions(void)
{
    VM_SUBHEAP_AS(h) {
        for (int i = 0; i < 1000; ++i)
            vmnew((size_t)(i % 200));
        size_t c[2] = {0, 0};
        Vmstat_t st;
        vmstat(h, &st);
        EXPECT(vmwalk(h, count_visit, c) == 0 && c[0] == 1000 && c[0] == st.n_busy &&
                   c[1] == st.s_busy,
               "vmwalk and vmstat agree: %zu blocks", c[0]);
        EXPECT((st.mode & VM_METHODS) == VM_MTSCOPE, "mode");
        EXPECT(vmdbcheck(h) == 0, "vmdbcheck");
        char* s = vmstrdup(h, "dup");
        EXPECT(s && vmregion(s) == h, "vmstrdup");
        s = vmresize(h, s, 3000, VM_RSCOPY);
        EXPECT(s && strcmp(s, "dup") == 0, "vmresize");
        EXPECT(vmclear(h) == 0 && busy_of(h) == 0, "vmclear empties it");
    }
}

/* ---- malloc into the current sub-heap ------------------------------------------------ */

static void test_malloc_hook(void)
{
#ifdef VMALLOC_MALLOC_ON
    EXPECT(vmscope_malloc(1) == 0, "vmscope_malloc was off");
    char* outside = malloc(10);
    EXPECT(outside && vmregion(outside) == Vmregion, "outside sub-heaps malloc is Vmregion's");
    VM_SUBHEAP_AS(h) {
        char* p = malloc(100);
        EXPECT(p && vmregion(p) == h, "malloc in a sub-heap allocates there");
        char* q = calloc(10, 10);
        EXPECT(q && vmregion(q) == h && all_zero(q, 100), "calloc too");
        size_t n = busy_of(h);
        free(q);
        EXPECT(busy_of(h) == n - 1, "free finds the block in the sub-heap");
        p = realloc(p, 3000);
        EXPECT(p && vmregion(p) == h && busy_of(h) == n - 1, "realloc resizes it there");
        char* leak = malloc(50); /* never freed: the leave takes it */
        (void)leak;
    }
    EXPECT(vmscope_malloc(0) == 1, "switched off");
    VM_SUBHEAP {
        char* p = malloc(10);
        EXPECT(p && vmregion(p) == Vmregion, "off: malloc is Vmregion's again");
        free(p);
    }
    free(outside);
#endif
}

/* ---- debug mode, in a child ---------------------------------------------------------- */

static int debug_child(void)
{
    VM_SUBHEAP_AS(h) {
        unsigned char* p = vmnew(64);
        for (int i = 0; i < 64; ++i)
            if (p[i] != 0xa0)
                return 2;
        unsigned char* q = vmnew(64); /* keeps p's memory below the top */
        (void)q;
        vmfree(h, p);
        for (int i = 0; i < 64; ++i)
            if (p[i] != 0xfe)
                return 3;
    }
    vmleave(vmglobal()); /* an error: aborts in debug mode */
    return 4;
}

/* Guard pages behind large blocks: reuse, resize, then an overflow by one. */
static int guard_child(void)
{
    VM_SUBHEAP_AS(h) {
        for (int i = 0; i < 50; ++i) {
            char* b = vmnew(5000 + (size_t)i * 100);
            memset(b, 1, 5000 + (size_t)i * 100);
            if (i % 2)
                vmfree(h, b);
        }
        char* r = vmnew(10000);
        r = vmresize(h, r, 30000, VM_RSCOPY);
        memset(r, 2, 30000);
        char* b = vmnew(10000);
        b[9999] = 1;
        if (vmdbcheck(h) != 0)
            return 2;
        b[10000] = 1; /* faults: the guard page */
    }
    return 3;
}

static int run_child(const char* self, const char* what)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        setenv("VMSCOPE_DEBUG", "1", 1);
        setenv("ASAN_OPTIONS", "handle_segv=0", 1); /* the fault is the signal, not a report */
        execl(self, self, what, (char*)NULL);
        _exit(5);
    }
    int status;
    waitpid(pid, &status, 0);
    return status;
}

static void test_debug(const char* self)
{
    int status = run_child(self, "guard-child");
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
           "debug mode: an overflow of a large block hits its guard page (status 0x%x)", status);
    status = run_child(self, "debug-child");
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
           "debug mode: fills as librcd and aborts on an error (status 0x%x)", status);
}

int main(int argc, char** argv)
{
    if (argc > 1 && strcmp(argv[1], "debug-child") == 0)
        return debug_child();
    if (argc > 1 && strcmp(argv[1], "guard-child") == 0)
        return guard_child();
    test_stack();
    EXPECT(recurse(2000) == 2001, "VM_SUBHEAP recursion 2000 deep");
    test_escape();
    test_switch();
    test_txn();
    test_dtors();
    test_early_exit();
    test_errors();
    test_regions();
    test_malloc_hook();
    test_debug(argv[0]);
    EXPECT(vmcurrent() == vmglobal() && vmdbcheck(vmglobal()) == 0, "the end: stack intact");
    if (cap_fd >= 0)
        unlink(cap_path);
    printf("test_scope: %s\n", t_failures ? "FAILED" : "ok");
    return T_DONE();
}
