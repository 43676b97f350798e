/*
 * test_fork.c — fork() while other threads allocate.
 *
 * Part 1: worker threads allocate, resize and free without pause (cookies in
 * every block, blocks handed between threads) while the main thread forks a
 * few dozen times. Each child — a copy of the process taken at an arbitrary
 * moment of the workers' calls — must be able to allocate, resize and free,
 * open and close a region, find Vmheap intact (vmdbcheck) and start a thread
 * of its own; it exits 0 only if all of that worked. A child that does not
 * finish within a generous bound is reported as deadlocked (a lock inherited
 * held) and killed: that bound is a hang detector, not a timing.
 *
 * Part 2 (malloc interface only): the library's trace across fork and exec.
 * The test runs itself again with VMTRACE set: that process allocates a
 * block of a size no one else uses, forks (the child allocates another size
 * and exits), allocates a third size, and exits. With VMTRACE=dir/trace.%p
 * the parent's and the child's lines must be in two files named after the
 * pids, each line once (nothing buffered before the fork may be written by
 * both processes); with a plain VMTRACE path both processes' lines reach the
 * one file, each once. Then the same with exec: lines traced before an
 * execve() must reach the file, whether the new image traces or not. And a
 * traced process whose signal handler calls _exit() (async-signal-safe)
 * while the program is inside malloc must end, not hang.
 *
 * Allocation goes through malloc() when the library provides it
 * (VMALLOC_MALLOC_ON), else through vmalloc(Vmheap, ...), so that the
 * sanitizer builds (whose malloc is the sanitizer's) test the region path.
 */
#define _GNU_SOURCE
#include "t.h"
#include "heapcalls.h"
#include "vmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


enum { NWORKERS = 3, LIVE = 64, FORKS = 40 };

static volatile int stop;

/* A block starts with its size and a cookie, repeated at the end. */
static void stamp(unsigned char* p, size_t n, uint32_t cookie)
{
    memcpy(p, &n, sizeof n);
    memcpy(p + 8, &cookie, 4);
    memcpy(p + n - 4, &cookie, 4);
}

static int good(const unsigned char* p, uint32_t* cookie_out)
{
    size_t n;
    uint32_t a, b;
    memcpy(&n, p, sizeof n);
    memcpy(&a, p + 8, 4);
    memcpy(&b, p + n - 4, 4);
    *cookie_out = a;
    return a == b;
}

static size_t pick_size(uint64_t* s)
{
    uint64_t r = t_rand(s);
    switch (r % 8) {
    case 0:
        return 16 + (size_t)(r >> 8) % 20000;
    case 1:
        return (r >> 8) % 64 == 0 ? (size_t)(1 << 20) + (size_t)(r >> 16) % 100000 : 200;
    default:
        return 16 + (size_t)(r >> 8) % 300;
    }
}

/* Blocks handed from one worker to another. */
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char* xslot[16];

static unsigned long worker_errors;

static void* worker(void* arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * (uintptr_t)arg + 1;
    unsigned char* live[LIVE] = {0};
    unsigned long errors = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        int i = (int)(t_rand(&s) % LIVE);
        uint32_t c;
        if (live[i]) {
            if (!good(live[i], &c))
                errors += 1;
            uint64_t r = t_rand(&s) % 4;
            if (r == 0) {
                size_t n = pick_size(&s);
                unsigned char* q = A_RESIZE(live[i], n);
                if (!q) {
                    errors += 1;
                    continue;
                }
                stamp(q, n, c);
                live[i] = q;
                continue;
            }
            if (r == 1) { /* hand it on, or free the one waiting in the slot */
                pthread_mutex_lock(&xlock);
                unsigned char** slot = &xslot[t_rand(&s) % 16];
                unsigned char* old = *slot;
                *slot = live[i];
                pthread_mutex_unlock(&xlock);
                live[i] = NULL;
                if (old) {
                    if (!good(old, &c))
                        errors += 1;
                    A_FREE(old);
                }
                continue;
            }
            A_FREE(live[i]);
            live[i] = NULL;
        } else {
            size_t n = pick_size(&s);
            unsigned char* p = A_ALLOC(n);
            if (!p) {
                errors += 1;
                continue;
            }
            stamp(p, n, (uint32_t)t_rand(&s));
            live[i] = p;
        }
    }
    for (int i = 0; i < LIVE; ++i)
        if (live[i])
            A_FREE(live[i]);
    __atomic_add_fetch(&worker_errors, errors, __ATOMIC_RELAXED);
    return NULL;
}

static void* child_thread(void* arg)
{
    void* p = A_ALLOC(1000);
    if (p)
        memset(p, 3, 1000);
    A_FREE(p);
    *(int*)arg = p != NULL;
    return NULL;
}

/* What a child does; its exit status tells which step failed (0: all). */
static int child_work(int round)
{
    uint64_t s = 12345 + (uint64_t)round;
    unsigned char* blk[200];
    for (int i = 0; i < 200; ++i) {
        size_t n = pick_size(&s);
        blk[i] = A_ALLOC(n);
        if (!blk[i])
            return 2;
        stamp(blk[i], n, (uint32_t)i);
    }
    for (int i = 0; i < 200; i += 2) {
        unsigned char* q = A_RESIZE(blk[i], 3000);
        if (!q)
            return 3;
        blk[i] = q;
        stamp(q, 3000, (uint32_t)i);
    }
    for (int i = 0; i < 200; ++i) {
        uint32_t c;
        if (!good(blk[i], &c) || c != (uint32_t)i)
            return 4;
        A_FREE(blk[i]);
    }
#ifdef VMALLOC_MALLOC_ON
    void* z = calloc(100, 10);
    if (!z || vmregion(z) != Vmheap)
        return 5;
    free(z);
#endif
    Vmalloc_t* vm = vmopen(Vmdcheap, Vmbest, 0);
    if (!vm)
        return 6;
    for (int i = 0; i < 100; ++i)
        if (!vmalloc(vm, 100 + (size_t)i))
            return 7;
    if (vmclose(vm) != 0)
        return 8;
    if (vmdbcheck(Vmheap) != 0)
        return 9;
/* The sanitizers' runtimes cannot start a thread in the child of a threaded
 * fork (TSan refuses; ASan's allocator lock may be inherited held). */
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
    pthread_t t;
    int ok = 0;
    if (pthread_create(&t, NULL, child_thread, &ok) != 0 || pthread_join(t, NULL) != 0 || !ok)
        return 10;
#else
    (void)child_thread;
#endif
    return 0;
}

/* Wait for pid; a child that never ends is a deadlock: kill it, report it. */
static int wait_child(pid_t pid, int* status)
{
    struct timespec nap = {0, 2 * 1000 * 1000};
    for (long waited = 0; waited < 120L * 500; ++waited) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        CHECK(r == 0, "waitpid failed: errno %d", errno);
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, status, 0);
    return 0;
}

static void test_fork_under_load(void)
{
    pthread_t th[NWORKERS];
    for (uintptr_t i = 0; i < NWORKERS; ++i)
        CHECK(pthread_create(&th[i], NULL, worker, (void*)i) == 0, "pthread_create failed");
    for (int round = 0; round < FORKS; ++round) {
        /* let the workers run a little between forks */
        struct timespec nap = {0, (long)(round % 5) * 300 * 1000};
        nanosleep(&nap, NULL);
        pid_t pid = fork();
        CHECK(pid >= 0, "fork failed: errno %d", errno);
        if (pid == 0)
            _exit(child_work(round));
        /* the parent goes on allocating while the child works */
        void* p = A_ALLOC(777);
        CHECK(p, "the parent could not allocate after fork");
        A_FREE(p);
        int status = 0;
        CHECK(wait_child(pid, &status), "round %d: the child deadlocked (killed after 120 s)",
              round);
        EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "round %d: the child failed (exit %d, signal %d); the exit code names the step",
               round, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NWORKERS; ++i)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 16; ++i)
        if (xslot[i])
            A_FREE(xslot[i]);
    EXPECT(worker_errors == 0, "workers saw %lu broken cookies or failed calls", worker_errors);
    EXPECT(vmdbcheck(Vmheap) == 0, "Vmheap is damaged after the forks");
}

#ifdef VMALLOC_MALLOC_ON

/* Sizes no other allocation of this small program uses. */
enum { SZ_BEFORE = 12345, SZ_CHILD = 23456, SZ_AFTER = 34567, SZ_EXEC = 45678, SZ_EXECED = 56789 };

static void* volatile keep;

static void on_alarm(int sig)
{
    (void)sig;
    _exit(0);
}

/* The traced process (argv[1] == "traced"): see the file header. */
static int traced_main(const char* mode, const char* self)
{
    if (strcmp(mode, "execed") != 0)
        keep = malloc(SZ_BEFORE); /* buffered, not yet written */
    if (strcmp(mode, "fork") == 0) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            keep = malloc(SZ_CHILD);
            exit(0); /* exit(): the library writes its buffer out */
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 3;
        keep = malloc(SZ_AFTER);
        return 0;
    }
    if (strcmp(mode, "exec") == 0 || strcmp(mode, "exec-untraced") == 0) {
        keep = malloc(SZ_EXEC);
        if (strcmp(mode, "exec-untraced") == 0)
            unsetenv("VMTRACE"); /* the new image writes no trace */
        char* argv[] = {(char*)self, "traced", "execed", NULL};
        execv(self, argv);
        return 4;
    }
    if (strcmp(mode, "sigexit") == 0) {
        /* _exit() and execve() are async-signal-safe: a handler may end the
         * process while the interrupted code is inside a traced call */
        signal(SIGALRM, on_alarm);
        struct itimerval it = {{0, 0}, {0, 300}};
        setitimer(ITIMER_REAL, &it, NULL);
        for (;;) {
            void* p = malloc(32);
            keep = p;
            free(p);
        }
    }
    if (strcmp(mode, "execed") == 0) {
        keep = malloc(SZ_EXECED);
        return 0;
    }
    return 5;
}

/* How many allocation records of size n are in the trace text. */
static int count_allocs(const char* text, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, ":%zu:", n);
    int count = 0;
    for (const char* l = text; l && *l;) {
        const char* e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        if (strncmp(l, "0x0:", 4) == 0) {
            const char* f = memmem(l, len, pat, strlen(pat));
            /* the size is the third field: the match must start after the second ':' */
            const char* c2 = memchr(l + 4, ':', len - 4);
            if (f && c2 && f == c2)
                count += 1;
        }
        l = e ? e + 1 : l + len;
    }
    return count;
}

/* Run self with VMTRACE=trace and the mode; return its exit status. */
static int run_traced(const char* self, const char* trace, const char* mode)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        setenv("VMTRACE", trace, 1);
        char* argv[] = {(char*)self, "traced", (char*)mode, NULL};
        execv(self, argv);
        _exit(127);
    }
    int status;
    CHECK(wait_child(pid, &status), "the traced process (%s) deadlocked", mode);
    CHECK(WIFEXITED(status), "the traced process (%s) died of signal %d", mode,
          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return WEXITSTATUS(status);
}

static void test_trace_fork_exec(const char* self)
{
    char dir[] = "/tmp/vmalloc-fork-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp failed");
    char pattern[256], single[256];
    snprintf(pattern, sizeof pattern, "%s/trace.%%p", dir);
    snprintf(single, sizeof single, "%s/single", dir);

    /* %p: one file per process */
    EXPECT(run_traced(self, pattern, "fork") == 0, "the traced fork run failed");
    char* parent_text = NULL;
    char* child_text = NULL;
    int files = 0;
    DIR* d = opendir(dir);
    CHECK(d, "opendir failed");
    struct dirent* e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "trace.", 6) != 0)
            continue;
        files += 1;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char* t = t_read_file(path, NULL);
        CHECK(t, "cannot read %s", path);
        char* end;
        long pid = strtol(e->d_name + 6, &end, 10);
        EXPECT(*end == 0 && pid > 0, "trace file %s is not named after a pid", e->d_name);
        if (count_allocs(t, SZ_AFTER))
            parent_text = t;
        else
            child_text = t;
        unlink(path);
    }
    closedir(d);
    EXPECT(files == 2, "%d trace files for a process that forked once, want 2", files);
    EXPECT(parent_text && child_text, "no parent and child trace files");
    EXPECT(count_allocs(parent_text, SZ_BEFORE) == 1 && count_allocs(parent_text, SZ_AFTER) == 1 &&
               count_allocs(parent_text, SZ_CHILD) == 0,
           "the parent's file has %d/%d/%d lines for before/after/child, want 1/1/0",
           count_allocs(parent_text, SZ_BEFORE), count_allocs(parent_text, SZ_AFTER),
           count_allocs(parent_text, SZ_CHILD));
    EXPECT(count_allocs(child_text, SZ_CHILD) == 1 && count_allocs(child_text, SZ_BEFORE) == 0,
           "the child's file has %d lines of its own allocation (want 1) and %d of the "
           "parent's before the fork (want 0)",
           count_allocs(child_text, SZ_CHILD), count_allocs(child_text, SZ_BEFORE));
    free(parent_text);
    free(child_text);

    /* one file for both */
    EXPECT(run_traced(self, single, "fork") == 0, "the traced fork run failed");
    char* t = t_read_file(single, NULL);
    CHECK(t, "no trace file %s", single);
    EXPECT(count_allocs(t, SZ_BEFORE) == 1 && count_allocs(t, SZ_CHILD) == 1 &&
               count_allocs(t, SZ_AFTER) == 1,
           "one trace file for parent and child: %d/%d/%d lines for before/child/after, want "
           "1/1/1",
           count_allocs(t, SZ_BEFORE), count_allocs(t, SZ_CHILD), count_allocs(t, SZ_AFTER));
    free(t);
    unlink(single);

    /* exec: what was traced before it must not be lost, whether the new
     * image is traced too (it opens the same file) or not */
    const char* modes[] = {"exec-untraced", "exec"};
    for (int m = 0; m < 2; ++m) {
        EXPECT(run_traced(self, single, modes[m]) == 0, "the traced %s run failed", modes[m]);
        t = t_read_file(single, NULL);
        CHECK(t, "no trace file %s", single);
        EXPECT(count_allocs(t, SZ_BEFORE) == 1 && count_allocs(t, SZ_EXEC) == 1,
               "%s: lines traced before execve were lost (%d, %d; want 1, 1)", modes[m],
               count_allocs(t, SZ_BEFORE), count_allocs(t, SZ_EXEC));
        EXPECT(count_allocs(t, SZ_EXECED) == m, "%s: %d lines of the new image, want %d",
               modes[m], count_allocs(t, SZ_EXECED), m);
        free(t);
        unlink(single);
    }

    /* a signal handler's _exit() ends a traced process whatever it interrupted */
    for (int i = 0; i < 20; ++i) {
        EXPECT(run_traced(self, single, "sigexit") == 0, "run %d: _exit() in a signal handler "
               "of a traced process did not exit 0", i);
        unlink(single);
    }
    rmdir(dir);
}
#endif

int main(int argc, char** argv)
{
#ifdef VMALLOC_MALLOC_ON
    if (argc > 2 && strcmp(argv[1], "traced") == 0)
        return traced_main(argv[2], argv[0]);
#endif
    (void)argc;
    test_fork_under_load();
#ifdef VMALLOC_MALLOC_ON
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink(/proc/self/exe) failed");
    self[n] = 0;
    test_trace_fork_exec(self);
#else
    (void)argv;
#endif
    return T_DONE();
}
