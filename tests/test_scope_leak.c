/*
 * test_scope_leak.c — a million sub-heap scopes keep resident memory flat.
 * Each scope allocates a few small blocks, now and then a large one (a
 * segment of its own) and a destructor, nests a sub-heap, and escapes a
 * result into a request-group heap that is itself left every 1000 scopes;
 * every 100,000 scopes a transaction commits into the group. Resident memory
 * (/proc/self/statm) after the first 50,000 scopes and at the end must differ
 * by less than 2 MiB, and the global heap holds nothing more.
 */
#define _POSIX_C_SOURCE 200809L
#include "t.h"

#include <vmalloc.h>

#include <string.h>

#define SCOPES 1000000

static long rss_kib(void)
{
    FILE* f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned long dtors;
static void count(void* b)
{
    (void)b;
    dtors++;
}

int main(void)
{
    long base = 0;
    Vmstat_t g0, g1;
    vmstat(vmglobal(), &g0);
    Vmalloc_t* group = vmenter();
    for (long i = 0; i < SCOPES; ++i) {
        VM_SUBHEAP {
            char* a = vmnew(24);
            char* b = vmnew((size_t)(i % 500));
            memset(b, 1, (size_t)(i % 500));
            if (i % 97 == 0)
                memset(vmnew(8000 + (size_t)(i % 4000)), 2, 8000);
            if (i % 13 == 0)
                vmdestructor(a, count);
            VM_SUBHEAP {
                vmnew(100);
            }
            if (i % 10 == 0)
                CHECK(vmescape(a), "escape at %ld", i);
        }
        if (i % 100000 == 0) {
            VM_TXN(t) {
                vmnew(300);
            }
        }
        if (i % 1000 == 999) {
            CHECK(vmleave(group) == 0, "leave the group at %ld", i);
            group = vmenter();
        }
        if (i == 50000)
            base = rss_kib();
    }
    vmleave(group);
    long end = rss_kib();
    vmstat(vmglobal(), &g1);
    printf("test_scope_leak: %d scopes, rss %ld KiB after 50,000, %ld KiB at the end, "
           "%lu destructors\n", SCOPES, base, end, dtors);
    EXPECT(end - base < 2048, "resident memory grew by %ld KiB", end - base);
    EXPECT(dtors == (SCOPES + 12) / 13, "every destructor ran: %lu", dtors);
    EXPECT(g1.n_busy == g0.n_busy && vmcurrent() == vmglobal(), "the global heap holds nothing new");
    return T_DONE();
}
