/* rss.h — resident memory and clocks for the benchmarks that watch memory
 * (synth_purge, synth_soak), read without allocating.
 *
 * The programs run under another allocator's LD_PRELOAD and measure what
 * that allocator gives back, so a measurement must not itself call malloc:
 * stdio's fopen would. /proc/self/statm is read with open/read into a stack
 * buffer; its second field is the resident set in pages. Linux only (the
 * study's platform); elsewhere rss_kb() answers -1 and the programs say so. */
#ifndef BENCH_RSS_H
#define BENCH_RSS_H

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The resident set of this process in KiB, or -1 if /proc is not there. */
static inline long rss_kb(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char* p = buf;
    (void)strtol(p, &p, 10); /* total size; the resident set follows */
    long pages = strtol(p, NULL, 10);
    return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Seconds on CLOCK (CLOCK_MONOTONIC for the wall, CLOCK_PROCESS_CPUTIME_ID
 * for the CPU time of every thread of the process). */
static inline double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sleeps for MS milliseconds of wall time (restarting after a signal). */
static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

#endif
