/*
 * test_vmfl.c — trace lines and -DVMFL call sites (paper Figures 8-10).
 *
 * This file is compiled with -DVMFL, so its calls of malloc, calloc,
 * realloc, free, vmalloc, vmalign, vmresize and vmfree name __FILE__ and
 * __LINE__; test_vmfl_plain.c is not, so its calls must name nothing.
 *
 * The test runs itself again with VMTRACE=<dir>/trace. That process makes
 * a scripted series of calls and writes, for each, the exact trace line it
 * expects into <dir>/expect ("E line": must be in the trace, once, in this
 * order) and prefixes that must begin no line ("X prefix": calls that the
 * library refused or ignored leave no record). Then this process checks:
 *   - every line of the trace is well formed: old:new:size:region:method:
 *     with lower-case 0x hex, 0x0 for NULL, a decimal size, a known method,
 *     then nothing, a file,line: part, or a region keyword (open, clear,
 *     close) — and a region record, only a region record, has both
 *     addresses 0x0 and size 0;
 *   - the expected lines: allocation 0x0:NEW:size:, free OLD:0x0:usable:,
 *     resize OLD:NEW:newsize:, with file,line: from instrumented calls and
 *     none from plain ones (also right after an instrumented call that
 *     failed or was ignored: a noted call site must not leak to the next
 *     call); region records for vmopen, vmclear and vmclose of a Vmdcheap
 *     region; method names best, pool and last.
 * Finally, without VMTRACE, vmtrace(fd) and the VM_TRACE flag trace one
 * region and nothing else.
 */
#define _GNU_SOURCE
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmalloc.h" /* last: with VMFL it renames the allocation calls */

#ifndef VMFL
#error "test_vmfl.c must be compiled with -DVMFL"
#endif

void* plain_malloc(size_t n);
void plain_free(void* p);
void* plain_vmalloc(Vmalloc_t* vm, size_t n);

static void* volatile launder_slot;
static void* launder(void* p)
{
    launder_slot = p;
    return launder_slot;
}

/* ---- formatting a record the way the paper writes it ------------------------ */

static char* put_hex(char* p, uintptr_t v)
{
    char tmp[2 * sizeof v];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    *p++ = '0';
    *p++ = 'x';
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* "old:new:size:region:method:" + tail ("" / "file,line:" / "open:") */
static void format_rec(char* out, const void* old, const void* new, size_t size,
                       const void* region, const char* method, const char* tail)
{
    char* p = out;
    p = put_hex(p, (uintptr_t)old);
    *p++ = ':';
    p = put_hex(p, (uintptr_t)new);
    p += sprintf(p, ":%zu:", size);
    p = put_hex(p, (uintptr_t)region);
    sprintf(p, ":%s:%s", method, tail);
}

static int expect_fd = -1;

static void expect_rec(const void* old, const void* new, size_t size, const void* region,
                       const char* method, const char* file, int line)
{
    char tail[600], rec[800], out[820];
    if (file)
        snprintf(tail, sizeof tail, "%s,%d:", file, line);
    else
        tail[0] = 0;
    format_rec(rec, old, new, size, region, method, tail);
    int n = snprintf(out, sizeof out, "E %s\n", rec);
    CHECK(write(expect_fd, out, (size_t)n) == n, "writing the expectations failed");
}

static void expect_region(const void* region, const char* method, const char* what)
{
    char tail[16], rec[200], out[220];
    snprintf(tail, sizeof tail, "%s:", what);
    format_rec(rec, NULL, NULL, 0, region, method, tail);
    int n = snprintf(out, sizeof out, "E %s\n", rec);
    CHECK(write(expect_fd, out, (size_t)n) == n, "writing the expectations failed");
}

/* No line may start with old address a (a call that left no record). */
static void expect_none(const void* a)
{
    char rec[64], out[80], *p = put_hex(rec, (uintptr_t)a);
    *p++ = ':';
    *p = 0;
    int n = snprintf(out, sizeof out, "X %s\n", rec);
    CHECK(write(expect_fd, out, (size_t)n) == n, "writing the expectations failed");
}

/* ---- the traced process ------------------------------------------------------- */

#define F __FILE__

static int traced_main(const char* expect_path)
{
    expect_fd = open(expect_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(expect_fd >= 0, "cannot create %s", expect_path);
    const void* heap = Vmheap;
    char stack_buf[32];
    int L;

    /* the malloc family, instrumented (Figure 10's lines) */
    char* p1 = malloc(4); L = __LINE__;
    CHECK(p1, "malloc failed");
    expect_rec(NULL, p1, 4, heap, "best", F, L);
    char* p2 = calloc(3, 5); L = __LINE__;
    CHECK(p2, "calloc failed");
    expect_rec(NULL, p2, 15, heap, "best", F, L);
    char* p3 = realloc(p2, 100); L = __LINE__;
    CHECK(p3, "realloc failed");
    expect_rec(p2, p3, 100, heap, "best", F, L);
    char* p4 = realloc(NULL, 40); L = __LINE__;
    CHECK(p4, "realloc(NULL, 40) failed");
    expect_rec(NULL, p4, 40, heap, "best", F, L);
    size_t u1 = malloc_usable_size(p1);
    free(p1); L = __LINE__;
    expect_rec(p1, NULL, u1, heap, "best", F, L);
    size_t u4 = malloc_usable_size(p4);
    char* r0 = realloc(p4, 0); L = __LINE__;
    CHECK(r0 == NULL, "realloc(p, 0) returned %p", (void*)r0);
    expect_rec(p4, NULL, u4, heap, "best", F, L);

    /* plain calls: no file,line, also after instrumented calls that did nothing */
    void* q = plain_malloc(24);
    expect_rec(NULL, q, 24, heap, "best", NULL, 0);
    free(NULL);
    void* q2 = plain_malloc(25);
    expect_rec(NULL, q2, 25, heap, "best", NULL, 0);
    free(launder(stack_buf));
    expect_none(stack_buf);
    void* q3 = plain_malloc(26);
    expect_rec(NULL, q3, 26, heap, "best", NULL, 0);
    errno = 0;
    void* rr = realloc(launder(stack_buf), 10);
    CHECK(rr == NULL && errno == EINVAL, "realloc(stack) = %p, errno %d", rr, errno);
    void* q4 = plain_malloc(27);
    expect_rec(NULL, q4, 27, heap, "best", NULL, 0);
    size_t uq = malloc_usable_size(q);
    plain_free(q);
    expect_rec(q, NULL, uq, heap, "best", NULL, 0);

    /* a Vmdcheap region: region records and instrumented region calls */
    Vmalloc_t* vm = vmopen(Vmdcheap, Vmbest, 0);
    CHECK(vm, "vmopen failed");
    expect_region(vm, "best", "open");
    void* b1 = vmalloc(vm, 10); L = __LINE__;
    CHECK(b1, "vmalloc failed");
    expect_rec(NULL, b1, 10, vm, "best", F, L);
    void* b2 = vmalign(vm, 100, 256); L = __LINE__;
    CHECK(b2, "vmalign failed");
    expect_rec(NULL, b2, 100, vm, "best", F, L);
    void* b3 = vmresize(vm, b1, 2000, VM_RSCOPY); L = __LINE__;
    CHECK(b3, "vmresize failed");
    expect_rec(b1, b3, 2000, vm, "best", F, L);
    long ub2 = vmsize(vm, b2);
    CHECK(vmfree(vm, b2) == 0, "vmfree failed"); L = __LINE__;
    expect_rec(b2, NULL, (size_t)ub2, vm, "best", F, L);
    CHECK(vmalloc(NULL, 10) == NULL, "vmalloc(NULL) succeeded");
    void* c1 = plain_vmalloc(vm, 11);
    expect_rec(NULL, c1, 11, vm, "best", NULL, 0);
    CHECK(vmalign(vm, 10, 3) == NULL, "vmalign(align 3) succeeded");
    void* c2 = plain_vmalloc(vm, 12);
    expect_rec(NULL, c2, 12, vm, "best", NULL, 0);
    CHECK(vmfree(vm, launder(stack_buf)) < 0, "vmfree(stack) succeeded");
    void* c3 = plain_vmalloc(vm, 13);
    expect_rec(NULL, c3, 13, vm, "best", NULL, 0);
    CHECK(vmresize(vm, b3, SIZE_MAX, VM_RSCOPY) == NULL, "vmresize(SIZE_MAX) succeeded");
    void* c4 = plain_vmalloc(vm, 14);
    expect_rec(NULL, c4, 14, vm, "best", NULL, 0);
    CHECK(vmclear(vm) == 0, "vmclear failed");
    expect_region(vm, "best", "clear");
    void* b4 = vmalloc(vm, 33); L = __LINE__;
    CHECK(b4, "vmalloc after vmclear failed");
    expect_rec(NULL, b4, 33, vm, "best", F, L);
    CHECK(vmclose(vm) == 0, "vmclose failed");
    expect_region(vm, "best", "close");

    /* other methods' names */
    Vmalloc_t* pool = vmopen(Vmdcsystem, Vmpool, 0);
    CHECK(pool, "vmopen(Vmpool) failed");
    expect_region(pool, "pool", "open");
    void* e1 = vmalloc(pool, 40); L = __LINE__;
    CHECK(e1, "vmalloc(pool) failed");
    expect_rec(NULL, e1, 40, pool, "pool", F, L);
    long ue1 = vmsize(pool, e1);
    free(e1); L = __LINE__; /* free() of a region's block: the region's record */
    expect_rec(e1, NULL, (size_t)ue1, pool, "pool", F, L);
    CHECK(vmclose(pool) == 0, "vmclose(pool) failed");
    expect_region(pool, "pool", "close");
    Vmalloc_t* last = vmopen(Vmdcsystem, Vmlast, 0);
    CHECK(last, "vmopen(Vmlast) failed");
    expect_region(last, "last", "open");
    void* f1 = vmalloc(last, 24); L = __LINE__;
    CHECK(f1, "vmalloc(last) failed");
    expect_rec(NULL, f1, 24, last, "last", F, L);
    CHECK(vmclose(last) == 0, "vmclose(last) failed");
    expect_region(last, "last", "close");

    free(p3); /* unchecked: any record */
    close(expect_fd);
    return 0; /* exit() writes the trace buffer out */
}

/* ---- checking ------------------------------------------------------------------ */

/* Split text into lines in place; returns the count. */
static size_t split_lines(char* text, char*** out)
{
    size_t n = 0, cap = 256;
    char** v = malloc(cap * sizeof *v);
    for (char* l = text; *l;) {
        char* e = strchr(l, '\n');
        if (e)
            *e = 0;
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = l;
        if (!e)
            break;
        l = e + 1;
    }
    *out = v;
    return n;
}

/* 0x followed by lower-case hex digits, no leading zero but 0x0 */
static const char* parse_hex(const char* s, int* zero)
{
    if (s[0] != '0' || s[1] != 'x')
        return NULL;
    s += 2;
    const char* b = s;
    while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))
        ++s;
    if (s == b || (b[0] == '0' && s - b > 1))
        return NULL;
    *zero = s - b == 1 && b[0] == '0';
    return s;
}

static const char* parse_dec(const char* s, int* zero)
{
    const char* b = s;
    while (*s >= '0' && *s <= '9')
        ++s;
    if (s == b || (b[0] == '0' && s - b > 1))
        return NULL;
    *zero = s - b == 1 && b[0] == '0';
    return s;
}

/* NULL if the line is well formed, else what is wrong. */
static const char* bad_line(const char* l)
{
    int z_old, z_new, z_size, z_reg;
    const char* s = parse_hex(l, &z_old);
    if (!s || *s++ != ':')
        return "old address";
    if (!(s = parse_hex(s, &z_new)) || *s++ != ':')
        return "new address";
    if (!(s = parse_dec(s, &z_size)) || *s++ != ':')
        return "size";
    if (!(s = parse_hex(s, &z_reg)) || *s++ != ':' || z_reg)
        return "region";
    static const char* methods[] = {"best:", "last:", "pool:", "debug:", "profile:"};
    size_t m = 0;
    for (; m < 5; ++m)
        if (strncmp(s, methods[m], strlen(methods[m])) == 0)
            break;
    if (m == 5)
        return "method";
    s += strlen(methods[m]);
    int region_rec = strcmp(s, "open:") == 0 || strcmp(s, "clear:") == 0 || strcmp(s, "close:") == 0;
    if (region_rec)
        return z_old && z_new && z_size ? NULL : "region record with addresses or a size";
    if (z_old && z_new)
        return "allocation record with both addresses 0x0";
    if (*s == 0)
        return NULL;
    const char* comma = strrchr(s, ',');
    if (!comma || comma == s || memchr(s, ':', (size_t)(comma - s)))
        return "file,line part";
    int z;
    const char* e = parse_dec(comma + 1, &z);
    if (!e || strcmp(e, ":") != 0)
        return "line number";
    return NULL;
}

static void check_traced(const char* self)
{
    char dir[] = "/tmp/vmalloc-vmfl-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp failed");
    char trace[256], expect[256];
    snprintf(trace, sizeof trace, "%s/trace", dir);
    snprintf(expect, sizeof expect, "%s/expect", dir);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        setenv("VMTRACE", trace, 1);
        char* argv[] = {(char*)self, "traced", expect, NULL};
        execv(self, argv);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the traced run failed (status %#x)",
          status);

    size_t tlen;
    char* ttext = t_read_file(trace, &tlen);
    CHECK(ttext && tlen > 0, "no trace in %s", trace);
    char* etext = t_read_file(expect, NULL);
    CHECK(etext, "no expectations in %s", expect);
    CHECK(ttext[tlen - 1] == '\n', "the trace does not end with a newline");
    char** tl;
    char** el;
    size_t nt = split_lines(ttext, &tl), ne = split_lines(etext, &el);

    for (size_t i = 0; i < nt; ++i) {
        const char* why = bad_line(tl[i]);
        EXPECT(!why, "trace line %zu '%s': bad %s", i + 1, tl[i], why);
    }
    size_t at = 0; /* expected lines appear in order */
    for (size_t k = 0; k < ne; ++k) {
        const char* want = el[k] + 2;
        if (el[k][0] == 'X') {
            for (size_t i = 0; i < nt; ++i)
                EXPECT(strncmp(tl[i], want, strlen(want)) != 0,
                       "trace line %zu '%s': a record of a call that was refused or ignored",
                       i + 1, tl[i]);
            continue;
        }
        size_t seen = 0, first = nt;
        for (size_t i = 0; i < nt; ++i)
            if (strcmp(tl[i], want) == 0) {
                seen += 1;
                if (first == nt)
                    first = i;
            }
        if (seen != 1) {
            /* show the line with the same addresses and size, if any */
            const char* near = "(none)";
            const char* c = strchr(want, ':');
            c = c ? strchr(c + 1, ':') : NULL;
            c = c ? strchr(c + 1, ':') : NULL;
            for (size_t i = 0; c && i < nt; ++i)
                if (strncmp(tl[i], want, (size_t)(c - want)) == 0)
                    near = tl[i];
            EXPECT(0, "expected line '%s' is in the trace %zu times (want once); nearest: '%s'",
                   want, seen, near);
            continue;
        }
        EXPECT(first >= at, "expected line '%s' is out of order (line %zu, after %zu)", want,
               first + 1, at);
        at = first;
    }
    fprintf(stderr, "test_vmfl: %zu trace lines, %zu expectations\n", nt, ne);
    free(tl);
    free(el);
    free(ttext);
    free(etext);
    unlink(trace);
    unlink(expect);
    rmdir(dir);
}

/* vmtrace(fd) with VM_TRACE traces that region alone when VMTRACE is unset. */
static void check_explicit(void)
{
    if (getenv("VMTRACE") || getenv("VMALLOC_OPTIONS"))
        return; /* the environment traces everything: nothing to tell apart */
    char path[] = "/tmp/vmalloc-vmfl-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    unlink(path);
    int old = vmtrace(fd);
    EXPECT(old == -1, "vmtrace: the old descriptor is %d without VMTRACE, want -1", old);
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmbest, VM_TRACE);
    CHECK(vm, "vmopen failed");
    void* a = vmalloc(vm, 64);
    int L = __LINE__ - 1;
    void* m = malloc(64); /* Vmheap is not traced */
    free(m);
    long ua = vmsize(vm, a);
    vmfree(vm, a);
    int L2 = __LINE__ - 1;
    CHECK(vmclose(vm) == 0, "vmclose failed");
    EXPECT(vmtrace(old) == fd, "vmtrace did not return the descriptor it was given");
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    CHECK(n > 0, "nothing was traced with vmtrace(fd) and VM_TRACE");
    buf[n] = 0;
    char want[1024], rec[4][300], tail[300];
    format_rec(rec[0], NULL, NULL, 0, vm, "best", "open:");
    snprintf(tail, sizeof tail, "%s,%d:", F, L);
    format_rec(rec[1], NULL, a, 64, vm, "best", tail);
    snprintf(tail, sizeof tail, "%s,%d:", F, L2);
    format_rec(rec[2], a, NULL, (size_t)ua, vm, "best", tail);
    format_rec(rec[3], NULL, NULL, 0, vm, "best", "close:");
    snprintf(want, sizeof want, "%s\n%s\n%s\n%s\n", rec[0], rec[1], rec[2], rec[3]);
    EXPECT(strcmp(buf, want) == 0, "vmtrace(fd) + VM_TRACE wrote\n%s\nwant\n%s", buf, want);
}

int main(int argc, char** argv)
{
    if (argc > 2 && strcmp(argv[1], "traced") == 0)
        return traced_main(argv[2]);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink(/proc/self/exe) failed");
    self[n] = 0;
    check_traced(self);
    check_explicit();
    return T_DONE();
}
