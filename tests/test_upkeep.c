/*
 * test_upkeep.c — the malloc heap's upkeep thread (src/upkeep.c), with the
 * malloc family linked in:
 *   - a small program has no thread; one whose heap reaches 32 MiB gets
 *     exactly one, named vmalloc-upkeep;
 *   - after a peak is freed, the resident set falls back near where it was
 *     while the program makes no allocator call at all (the method's own
 *     slow paths would keep up to 32 MiB of freed pages until its next
 *     call); the heap passes vmdbcheck afterwards;
 *   - the same when one block in each page survives: the pages' free
 *     parts go back (the survivors intact);
 *   - a child of fork has no thread until its own heap grows;
 *   - VMALLOC_OPTIONS=purge_thread=0 (the test runs itself again with it):
 *     no thread, however big the heap.
 * No wall-clock limit: the wait for the purge gives up only after a minute,
 * far beyond the thread's 0.3-0.6 s, and measures nothing.
 */
#define _GNU_SOURCE
#include "t.h"
#include "vmalloc.h"

#include <dirent.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

enum { NSMALL = 600000, SMALL = 96, NMEDIUM = 1500, MEDIUM = 12 << 10 };
static void* blocks[NSMALL + NMEDIUM];

/* Threads of this process named vmalloc-upkeep. */
static int upkeep_threads(void)
{
    DIR* dir = opendir("/proc/self/task");
    CHECK(dir, "cannot list /proc/self/task");
    int n = 0;
    struct dirent* e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[128], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, comm, sizeof comm - 1);
        close(fd);
        if (k > 0 && strncmp(comm, "vmalloc-upkeep", 14) == 0)
            n++;
    }
    closedir(dir);
    return n;
}

/* The resident set in KiB, read without allocating. */
static long rss_kb(void)
{
    char buf[128] = {0};
    int fd = open("/proc/self/statm", O_RDONLY);
    CHECK(fd >= 0, "cannot open /proc/self/statm");
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(k > 0, "cannot read /proc/self/statm");
    long size = 0, res = 0;
    CHECK(sscanf(buf, "%ld %ld", &size, &res) == 2, "statm: %s", buf);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A peak of ~70 MiB, every block written. */
static void build_peak(void)
{
    for (size_t i = 0; i < NSMALL; ++i) {
        blocks[i] = malloc(SMALL);
        CHECK(blocks[i], "malloc(%d)", SMALL);
        memset(blocks[i], 1, SMALL);
    }
    for (size_t i = NSMALL; i < NSMALL + NMEDIUM; ++i) {
        blocks[i] = malloc(MEDIUM);
        CHECK(blocks[i], "malloc(%d)", MEDIUM);
        memset(blocks[i], 2, MEDIUM);
    }
}

static void free_peak(void)
{
    for (size_t i = 0; i < NSMALL + NMEDIUM; ++i)
        free(blocks[i]);
}

/* Run with purge_thread=0: a big heap and no thread. */
static int run_off(void)
{
    build_peak();
    int n = upkeep_threads();
    free_peak();
    if (n != 0) {
        fprintf(stderr, "purge_thread=0: %d upkeep threads\n", n);
        return 1;
    }
    return 0;
}

int main(int argc, char** argv)
{
    if (argc > 1 && strcmp(argv[1], "off") == 0)
        return run_off();
    free(malloc(1));
    EXPECT(upkeep_threads() == 0, "a small heap has an upkeep thread");

    long base = rss_kb();
    build_peak();
    long peak = rss_kb();
    CHECK(upkeep_threads() == 1, "a heap of %ld KiB: %d upkeep threads", peak - base,
          upkeep_threads());
    free_peak();

    /* No allocator call from here until the resident set has fallen. */
    long freed = rss_kb(), now = freed;
    int waited = 0;
    while (now > base + 12 * 1024 && waited < 60000) {
        sleep_ms(20);
        waited += 20;
        now = rss_kb();
    }
    EXPECT(now <= base + 12 * 1024,
           "resident set not given back: %ld KiB before the peak, %ld at it, %ld after the "
           "frees, %ld a minute later",
           base, peak, freed, now);
    CHECK(vmdbcheck(Vmheap) == 0, "Vmheap damaged");

    /* A survivor in every page of the small blocks keeps its page active:
     * the page's free parts go back all the same (its owner hands it to
     * the heap when it thins out, and the thread purges what no block
     * uses), still with no allocator call. Each survivor keeps at most two
     * OS pages. */
    base = rss_kb();
    build_peak();
    size_t per = 32768 / SMALL, kept = 0;
    for (size_t i = 0; i < NSMALL + NMEDIUM; ++i)
        if (i >= NSMALL || i % per != per / 2)
            free(blocks[i]);
        else
            ++kept;
    long limit = base + 12 * 1024 + (long)kept * 8;
    freed = now = rss_kb();
    waited = 0;
    while (now > limit && waited < 60000) {
        sleep_ms(20);
        waited += 20;
        now = rss_kb();
    }
    EXPECT(now <= limit,
           "thin pages not given back: %ld KiB before the peak, %ld after the frees, %ld a "
           "minute later (%zu survivors)", base, freed, now, kept);
    for (size_t i = per / 2; i < NSMALL; i += per)
        CHECK(((unsigned char*)blocks[i])[SMALL - 1] == 1, "survivor %zu changed", i);
    CHECK(vmdbcheck(Vmheap) == 0, "Vmheap damaged by the purge of thin pages");
    for (size_t i = per / 2; i < NSMALL; i += per)
        free(blocks[i]);

    /* The child of fork starts with no thread, and gets one as it grows. */
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int before = upkeep_threads();
        build_peak();
        int after = upkeep_threads();
        free_peak();
        _exit(before == 0 && after == 1 && vmdbcheck(Vmheap) == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "the child of fork: no thread before it grew and one after, expected");

    /* purge_thread=0, in a fresh process (the environment is read once). */
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        setenv("VMALLOC_OPTIONS", "purge_thread=0", 1);
        execl("/proc/self/exe", argv[0], "off", (char*)NULL);
        _exit(2);
    }
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "purge_thread=0: status %d", status);
    return T_DONE();
}
