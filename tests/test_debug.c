/*
 * test_debug.c — Vmdebug (paper §2.3.3, Figure 9).
 *
 *   - The shadow model (shadow.h) over every test discipline, and once more
 *     in guard-page mode: Vmdebug keeps every promise of a best-fit method.
 *     Its bad-address probes are errors Vmdebug reports; the report stream
 *     (standard error, redirected) must hold only free and resize errors,
 *     never "corrupted data", since the model writes only inside blocks.
 *   - A table of detections: each case makes one memory error on a fresh
 *     region, with the call sites noted as -DVMFL would (_vmflinfo), and
 *     must produce exactly the expected report lines, with the calls
 *     answering as documented, and the region intact and usable afterwards.
 *   - VM_DBCHECK and the period find a corruption at the next call;
 *     vmdbwatch alerts; VM_DBABORT ends the process with SIGABRT.
 *   - Guard-page mode (VM_DBGUARD): an overflow past the block and a write
 *     after free fault at once (in a child, which must die of SIGSEGV).
 */
#include "shadow.h"
#include "t.h"

#include <signal.h>
#include <sys/wait.h>

static char t_static_block[64];

/* ---- capturing what Vmdebug reports ------------------------------------------ */

static char t_capture_path[] = "/tmp/test_debug.XXXXXX";
static int t_saved_fd = -1;

/* Standard error goes to a fresh file until t_capture_end. */
static void t_capture_begin(void)
{
    int fd = mkstemp(t_capture_path);
    CHECK(fd >= 0, "mkstemp failed");
    fflush(stderr);
    t_saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* What was reported since t_capture_begin (malloc'd). */
static char* t_capture_end(void)
{
    dup2(t_saved_fd, 2);
    close(t_saved_fd);
    char* text = t_read_file(t_capture_path, NULL);
    unlink(t_capture_path);
    strcpy(t_capture_path, "/tmp/test_debug.XXXXXX");
    CHECK(text, "cannot read the captured reports");
    return text;
}

static const char* t_file = __FILE__;

/* "0x..." as Vmdebug writes an address. */
static const char* hx(const void* p, char* buf)
{
    sprintf(buf, "0x%llx", (unsigned long long)(uintptr_t)p);
    return buf;
}

/* ---- the detection table ------------------------------------------------------- */

typedef struct t_case_s {
    const char* name;
    /* Makes the error on vm; writes the expected report into want. */
    void (*run)(Vmalloc_t* vm, char* want);
    int faults; /* in guard-page mode this error faults: left to test_guard */
} T_case_t;

#define AT(call) (_vmflinfo(t_file, __LINE__), call)

static void corrupt_line(char* want, Vmalloc_t* vm, void* b, long at, const char* freed, int line)
{
    char r[32], k[32];
    want += strlen(want);
    sprintf(want, "corrupted data:region=%s:block=%s:bad byte at=%ld:%sallocated at=%s,%d:\n",
            hx(vm, r), hx(b, k), at, freed, t_file, line);
}

static void error_line(char* want, const char* kind, Vmalloc_t* vm, void* b, const char* what,
                       int line)
{
    char r[32], k[32];
    want += strlen(want);
    sprintf(want, "%s error:region=%s:block=%s:%s:detected at=%s,%d:\n", kind, hx(vm, r), hx(b, k),
            what, t_file, line);
}

static void case_overflow1(Vmalloc_t* vm, char* want)
{
    int line = __LINE__ + 1;
    char* p = AT(vmalloc(vm, 10));
    p[10] = 'x';
    CHECK(AT(vmfree(vm, p)) == 0, "the free of an overwritten block is refused");
    corrupt_line(want, vm, p, 10, "", line);
}

static void case_overflow32(Vmalloc_t* vm, char* want)
{
    int line = __LINE__ + 1;
    char* p = AT(vmalloc(vm, 24));
    memset(p + 24, 'x', 32);
    char* q = AT(vmalloc(vm, 24)); /* the check at this call finds it */
    CHECK(q && AT(vmfree(vm, q)) == 0, "a later block is unusable");
    CHECK(AT(vmfree(vm, p)) == 0, "the free of an overwritten block is refused");
    corrupt_line(want, vm, p, 24, "", line);
}

static void case_underflow(Vmalloc_t* vm, char* want)
{
    int line = __LINE__ + 1;
    char* p = AT(vmalloc(vm, 16));
    p[-1] = 'x';
    CHECK(AT(vmfree(vm, p)) == 0, "the free of an overwritten block is refused");
    corrupt_line(want, vm, p, -1, "", line);
}

static void double_free(Vmalloc_t* vm, char* want, size_t size)
{
    char* p = AT(vmalloc(vm, size));
    CHECK(p && AT(vmfree(vm, p)) == 0, "vmalloc/vmfree of %zu bytes failed", size);
    int line = __LINE__ + 1;
    int r = AT(vmfree(vm, p));
    CHECK(r == -1 && errno == EINVAL, "a double free answered %d (errno %d)", r, errno);
    error_line(want, "free", vm, p, "already freed", line);
}

static void case_double_small(Vmalloc_t* vm, char* want) { double_free(vm, want, 24); }
static void case_double_large(Vmalloc_t* vm, char* want) { double_free(vm, want, 1 << 20); }

static void bad_free(Vmalloc_t* vm, char* want, void* p)
{
    int line = __LINE__ + 1;
    int r = AT(vmfree(vm, p));
    CHECK(r == -1 && errno == EINVAL, "a bad free answered %d (errno %d)", r, errno);
    error_line(want, "free", vm, p, "unallocated block", line);
}

static void case_free_stack(Vmalloc_t* vm, char* want)
{
    char stack[64];
    bad_free(vm, want, stack + 16);
}

static void case_free_static(Vmalloc_t* vm, char* want) { bad_free(vm, want, t_static_block + 16); }

static void case_free_interior(Vmalloc_t* vm, char* want)
{
    char* p = AT(vmalloc(vm, 100));
    bad_free(vm, want, p + 16);
    bad_free(vm, want, p + 1);
    CHECK(AT(vmfree(vm, p)) == 0, "the block was harmed by the bad frees");
}

static void case_write_after_free(Vmalloc_t* vm, char* want)
{
    int line = __LINE__ + 1;
    char* p = AT(vmalloc(vm, 100));
    CHECK(AT(vmfree(vm, p)) == 0, "vmfree failed");
    p[5] = 1;
    int n = vmdbcheck(vm);
    CHECK(n == 1, "vmdbcheck found %d errors, want 1", n);
    corrupt_line(want, vm, p, 5, "freed block:", line);
}

static void case_realloc_freed(Vmalloc_t* vm, char* want)
{
    char* p = AT(vmalloc(vm, 40));
    CHECK(AT(vmfree(vm, p)) == 0, "vmfree failed");
    int line = __LINE__ + 1;
    void* q = AT(vmresize(vm, p, 80, VM_RSCOPY));
    CHECK(!q && errno == EINVAL, "a resize of a freed block gave %p (errno %d)", q, errno);
    error_line(want, "resize", vm, p, "already freed", line);
}

static void case_realloc_interior(Vmalloc_t* vm, char* want)
{
    char* p = AT(vmalloc(vm, 40));
    int line = __LINE__ + 1;
    void* q = AT(vmresize(vm, p + 32, 80, VM_RSCOPY));
    CHECK(!q && errno == EINVAL, "a resize of an interior pointer gave %p", q);
    error_line(want, "resize", vm, p + 32, "unallocated block", line);
    CHECK(AT(vmfree(vm, p)) == 0, "the block was harmed");
}

static const T_case_t t_cases[] = {
    {"overflow by 1", case_overflow1, 0},
    {"overflow by 32", case_overflow32, 1},
    {"underflow", case_underflow, 0},
    {"double free, small", case_double_small, 0},
    {"double free, large", case_double_large, 0},
    {"free of a stack address", case_free_stack, 0},
    {"free of a static address", case_free_static, 0},
    {"free of interior pointers", case_free_interior, 0},
    {"write after free", case_write_after_free, 1},
    {"realloc of a freed block", case_realloc_freed, 0},
    {"realloc of an interior pointer", case_realloc_interior, 0},
};

/* Each case on a fresh region: exactly its reports, then the region works. */
static void test_table(int flags)
{
    for (size_t k = 0; k < sizeof t_cases / sizeof t_cases[0]; ++k) {
        if ((flags & VM_DBGUARD) && t_cases[k].faults)
            continue;
        Vmalloc_t* vm = vmopen(Vmdcsystem, Vmdebug, flags);
        CHECK(vm, "vmopen(Vmdebug) failed");
        static char want[4096];
        want[0] = 0;
        t_capture_begin();
        t_cases[k].run(vm, want);
        char* got = t_capture_end();
        EXPECT(strcmp(got, want) == 0, "%s%s: reported\n%s--- want\n%s", t_cases[k].name,
               flags ? " (guard pages)" : "", got, want);
        free(got);
        /* Survived, and the region still serves. */
        char* p = vmalloc(vm, 1000);
        CHECK(p && vmfree(vm, p) == 0, "%s: the region is unusable afterwards", t_cases[k].name);
        CHECK(vmclose(vm) == 0, "vmclose failed");
    }
}

/* ---- checks, watches, abort ---------------------------------------------------- */

/* A corruption of an old block (out of the recent ones each call looks at)
 * is found at the next call with VM_DBCHECK, and only by vmdbcheck otherwise
 * (the period, VMALLOC_OPTIONS=check=N, is tested by vmfl_fig10.sh). */
static void test_dbcheck(void)
{
    for (int mode = 0; mode < 2; ++mode) {
        Vmalloc_t* vm = vmopen(Vmdcsystem, Vmdebug, mode == 1 ? VM_DBCHECK : 0);
        CHECK(vm, "vmopen failed");
        char* old = vmalloc(vm, 48);
        char* more[20];
        for (int i = 0; i < 20; ++i)
            more[i] = vmalloc(vm, 32);
        old[48] = 1;
        t_capture_begin();
        char* q = vmalloc(vm, 8);
        char* got = t_capture_end();
        int found = strstr(got, "corrupted data:") != NULL;
        EXPECT(found == (mode == 1), "mode %d: the next call %s the corruption", mode,
               found ? "found" : "missed");
        free(got);
        t_capture_begin();
        int n = vmdbcheck(vm);
        got = t_capture_end();
        EXPECT(n == 1, "vmdbcheck found %d errors", n);
        EXPECT((strstr(got, "corrupted data:") != NULL) == (mode != 1),
               "mode %d: vmdbcheck reported '%s' (a block is reported once)", mode, got);
        free(got);
        vmfree(vm, q);
        for (int i = 0; i < 20; ++i)
            vmfree(vm, more[i]);
        vmclose(vm);
    }
}

static void test_watch(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmdebug, 0);
    char* p = vmalloc(vm, 32);
    vmfree(vm, p);
    /* the quarantine keeps p from coming back at once: watch a fresh block */
    Vmalloc_t* best = vmopen(Vmdcsystem, Vmbest, 0);
    EXPECT(vmdbwatch(best, p) == -1 && errno == EINVAL, "vmdbwatch on Vmbest is not EINVAL");
    vmclose(best);
    char* q = vmalloc(vm, 20);
    CHECK(vmdbwatch(vm, q) == 0, "vmdbwatch failed");
    char r[32], b[32], want[1024];
    t_capture_begin();
    int l1 = __LINE__ + 1;
    char* q2 = AT(vmresize(vm, q, 10, 0));
    int l2 = __LINE__ + 1;
    AT(vmfree(vm, q2));
    char* got = t_capture_end();
    snprintf(want, sizeof want,
             "alert:region=%s:block=%s:size=10:being resized:detected at=%s,%d:\n"
             "alert:region=%s:block=%s:size=10:being freed:detected at=%s,%d:\n",
             hx(vm, r), hx(q, b), t_file, l1, r, b, t_file, l2);
    EXPECT(q2 == q && strcmp(got, want) == 0, "watch alerts:\n%s--- want\n%s", got, want);
    free(got);
    CHECK(vmdbwatch(vm, NULL) == 0, "vmdbwatch(NULL) clears the list");
    vmclose(vm);
}

/* In a child, on a fresh Vmdebug region with flags: does bad(vm) kill it
 * with signal sig? */
static int t_dies(int flags, void (*bad)(Vmalloc_t*), int sig)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        Vmalloc_t* vm = vmopen(Vmdcsystem, Vmdebug, flags);
        if (!vm)
            _exit(3);
        bad(vm);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

static void double_free_now(Vmalloc_t* vm)
{
    char* p = vmalloc(vm, 10);
    vmfree(vm, p);
    vmfree(vm, p);
}

static void test_abort(void)
{
    EXPECT(t_dies(VM_DBABORT, double_free_now, SIGABRT), "VM_DBABORT: no SIGABRT");
}

/* ---- guard pages ------------------------------------------------------------- */

static void guard_overflow(Vmalloc_t* vm)
{
    volatile char* p = vmalloc(vm, 4096 - 64);
    p[4096 - 64] = 1; /* the first byte past the block: the guard page */
}

static void guard_use_after_free(Vmalloc_t* vm)
{
    volatile char* p = vmalloc(vm, 100);
    vmfree(vm, (void*)p);
    p[0] = 1;
}

static void test_guard(void)
{
    EXPECT(t_dies(VM_DBGUARD, guard_overflow, SIGSEGV), "an overflow into the guard page did not fault");
    EXPECT(t_dies(VM_DBGUARD, guard_use_after_free, SIGSEGV), "a write after free did not fault");
    /* Guard pages in a user's buffer: after vmclose the whole buffer is
     * the user's again, accessible, blocks freed or not. */
    static char buffer[(size_t)4 << 20];
    static Sh_disc_t bd;
    sh_buf_init(&bd, buffer, sizeof buffer, 4096);
    Vmalloc_t* vm = vmopen(&bd.disc, Vmdebug, VM_DBGUARD);
    CHECK(vm, "vmopen over a buffer with VM_DBGUARD failed");
    char* kept = vmalloc(vm, 100);
    char* freed = vmalloc(vm, 5000);
    CHECK(kept && freed && vmfree(vm, freed) == 0, "guard-page blocks in a buffer failed");
    CHECK(vmclose(vm) == 0, "vmclose failed");
    memset(buffer, 1, sizeof buffer); /* faults if a page stayed inaccessible */
    /* Blocks are 16-aligned, so a size that is not a multiple of 16 leaves
     * slack before the guard page: overflows there are seen at the free. */
    test_table(VM_DBGUARD);
}

int main(int argc, char** argv)
{
    uint64_t seed = sh_seed(argc, argv);
    test_table(0);
    test_dbcheck();
    test_watch();
    test_abort();
    test_guard();

    Sh_conf_t conf = sh_conf_general(SH_DEBUG, 12000);
    conf.align_max = (size_t)1 << 16;
    /* The shadow runs in a child whose reports come through a pipe: they
     * are hundreds of thousands of lines, counted here, not kept. */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe failed");
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        int ndisc;
        sh_run_all("test_debug", Vmdebug, &conf, seed, &ndisc);
        Sh_conf_t guard = conf;
        guard.steps = 3000;
        guard.maxlive = 300;
        guard.large_max = (size_t)1 << 20;
        sh_run("test_debug", "system+guard", Vmdcsystem, Vmdebug, VM_DBGUARD, &guard,
               sh_seed_of(seed, 9), 0, 0);
        _exit(0);
    }
    close(fds[1]);
    FILE* in = fdopen(fds[0], "r");
    char line[1024];
    size_t errs = 0, other = 0;
    while (fgets(line, sizeof line, in)) {
        if (strncmp(line, "free error:", 11) == 0 || strncmp(line, "resize error:", 13) == 0)
            errs++;
        else if (other++ < 10)
            fprintf(stderr, "%s", line);
    }
    fclose(in);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the shadow runs failed (status 0x%x)",
          status);
    CHECK(other == 0 && errs > 0, "the shadow runs reported %zu other lines, %zu bad-call errors",
          other, errs);
    long steps = sh_steps(&conf) * 4 + 3000; /* 3 full runs, 4 quarter runs, guard pages */
    printf("test_debug: about %ld steps, 7 disciplines + guard pages, %zu bad calls reported,"
           " seed 0x%llx: %s\n", steps, errs, (unsigned long long)seed,
           T_DONE() ? "FAILED" : "ok");
    return T_DONE();
}
