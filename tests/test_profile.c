/*
 * test_profile.c — Vmprofile (paper §2.3.4, Figure 10).
 *
 *   - The shadow model (shadow.h) over every test discipline: Vmprofile
 *     keeps every promise of a best-fit method.
 *   - The profile of a scripted run, line by line: the summary, the region
 *     line, file=<> with the sites of uninstrumented code named by function
 *     (this program is linked with -rdynamic so that dladdr knows its
 *     functions), then this file's lines in order with their counts, then
 *     the blocks still busy; resizes and vmclear counted as documented;
 *     vmprofile(NULL, fd) sums every Vmprofile region.
 */
#include "shadow.h"
#include "t.h"

static const char* t_file = __FILE__;

#define AT(call) (_vmflinfo(t_file, __LINE__), call)

static const char* hx(const void* p, char* buf)
{
    sprintf(buf, "0x%llx", (unsigned long long)(uintptr_t)p);
    return buf;
}

/* Uninstrumented calls: their site is this function. */
__attribute__((noinline)) void* t_plain_alloc(Vmalloc_t* vm, size_t n);
__attribute__((noinline)) void* t_plain_alloc(Vmalloc_t* vm, size_t n)
{
    void* p = vmalloc(vm, n);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
    return p;
}

/* The profile of vm (NULL: all) as text (malloc'd). */
static char* t_profile(Vmalloc_t* vm)
{
    char path[] = "/tmp/test_profile.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    CHECK(vmprofile(vm, fd) == 0, "vmprofile failed");
    close(fd);
    char* text = t_read_file(path, NULL);
    unlink(path);
    CHECK(text, "cannot read the profile");
    return text;
}

static int t_starts(const char* text, const char* prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Is line the next line of *text? Advances past it. prefix: only its start. */
static int t_next(char** text, const char* line, int prefix)
{
    char* nl = strchr(*text, '\n');
    size_t n = nl ? (size_t)(nl - *text) : strlen(*text);
    size_t m = strlen(line);
    int ok = prefix ? (n >= m && strncmp(*text, line, m) == 0)
                    : (n == m && strncmp(*text, line, m) == 0);
    if (!ok)
        fprintf(stderr, "profile line '%.*s'\n          want '%s'%s\n", (int)n, *text, line,
                prefix ? "..." : "");
    *text += nl ? n + 1 : n;
    return ok;
}

static void test_profile_lines(void)
{
    Vmalloc_t* vm = vmopen(Vmdcsystem, Vmprofile, 0);
    CHECK(vm, "vmopen(Vmprofile) failed");
    char r[32], b[32], want[512];
    hx(vm, r);
    int la = __LINE__ + 3;
    char* keep[3];
    for (int i = 0; i < 3; ++i)
        keep[i] = AT(vmalloc(vm, 10));
    int lb = __LINE__ + 1;
    char* gone = AT(vmalloc(vm, 100));
    AT(vmfree(vm, gone));
    int lc = __LINE__ + 1;
    char* moved = AT(vmresize(vm, keep[2], 5000, VM_RSCOPY)); /* a free at la, an alloc at lc */
    void* plain = t_plain_alloc(vm, 7);
    CHECK(keep[0] && keep[1] && moved && plain, "allocations failed");

    char* text = t_profile(vm);
    char* s = text;
    int ok = 1;
    /* allocations: 3x10 + 100 + 5000 + 7; frees: 100 + 10 */
    ok &= t_next(&s, "ALLOCATION USAGE SUMMARY:n_alloc=6:n_free=2:s_alloc=5137:s_free=110:", 0);
    Vmstat_t st;
    vmstat(vm, &st);
    snprintf(want, sizeof want,
             "region=%s:n_alloc=6:n_free=2:s_alloc=5137:s_free=110:max_busy=%zu:extent=%zu:", r,
             st.max_busy, st.extent);
    ok &= st.max_busy >= 5137 - 110 && t_next(&s, want, 0);
    ok &= t_next(&s, "file=<>:n_alloc=1:n_free=0:s_alloc=7:s_free=0:", 0);
    snprintf(want, sizeof want,
             "    line=0:region=%s:n_alloc=1:n_free=0:s_alloc=7:s_free=0:at=t_plain_alloc+0x", r);
    ok &= t_next(&s, want, 1);
    snprintf(want, sizeof want, "file=%s:n_alloc=5:n_free=2:s_alloc=5130:s_free=110:", t_file);
    ok &= t_next(&s, want, 0);
    snprintf(want, sizeof want, "    line=%d:region=%s:n_alloc=3:n_free=1:s_alloc=30:s_free=10:",
             la, r);
    ok &= t_next(&s, want, 0);
    snprintf(want, sizeof want,
             "    line=%d:region=%s:n_alloc=1:n_free=1:s_alloc=100:s_free=100:", lb, r);
    ok &= t_next(&s, want, 0);
    snprintf(want, sizeof want, "    line=%d:region=%s:n_alloc=1:n_free=0:s_alloc=5000:s_free=0:",
             lc, r);
    ok &= t_next(&s, want, 0);
    /* The busy blocks, in address order: check the set. */
    int leaks = 0;
    void* busy[4] = {keep[0], keep[1], moved, plain};
    while (*s) {
        char* nl = strchr(s, '\n');
        int hit = 0;
        for (int i = 0; i < 4; ++i) {
            snprintf(want, sizeof want, "leak:region=%s:block=%s:size=", r, hx(busy[i], b));
            hit |= strncmp(s, want, strlen(want)) == 0;
        }
        if (!hit)
            fprintf(stderr, "unexpected line '%.*s'\n", (int)(nl ? nl - s : (long)strlen(s)), s);
        ok &= hit;
        leaks += 1;
        s = nl ? nl + 1 : s + strlen(s);
    }
    ok &= leaks == 4;
    EXPECT(ok, "the profile is not as expected:\n%s", text);
    free(text);

    /* vmclear frees every block: counted as frees at their sites. */
    CHECK(vmclear(vm) == 0, "vmclear failed");
    text = t_profile(vm);
    EXPECT(t_starts(text, "ALLOCATION USAGE SUMMARY:n_alloc=6:n_free=6:s_alloc=5137:s_free=5137:\n"),
           "after vmclear: %.200s", text);
    free(text);

    /* Two regions: vmprofile(NULL, fd) sums them. */
    Vmalloc_t* other = vmopen(Vmdcsystem, Vmprofile, 0);
    CHECK(other && vmalloc(other, 50), "a second region failed");
    text = t_profile(NULL);
    EXPECT(t_starts(text, "ALLOCATION USAGE SUMMARY:n_alloc=7:n_free=6:s_alloc=5187:s_free=5137:\n"),
           "vmprofile(NULL): %.300s", text);
    free(text);
    vmclose(other);
    vmclose(vm);
}

int main(int argc, char** argv)
{
    uint64_t seed = sh_seed(argc, argv);
    test_profile_lines();
    Sh_conf_t conf = sh_conf_general(SH_PROFILE, 30000);
    int ndisc;
    long steps = sh_run_all("test_profile", Vmprofile, &conf, seed, &ndisc);
    printf("test_profile: %ld steps, %d disciplines, seed 0x%llx: %s\n", steps, ndisc,
           (unsigned long long)seed, T_DONE() ? "FAILED" : "ok");
    return T_DONE();
}
