/*
 * disc/sbrk.c — Vmdcsbrk: segments from the program break, as in the paper.
 *
 * The break is one stack of memory shared with anything else in the process
 * that calls sbrk (glibc's malloc does), so a segment can grow in place or be
 * given back only while it is the topmost thing on that stack; a mutex keeps
 * our own checks and moves of the break atomic with respect to each other.
 * Releasing a segment that is not on top cannot lower the break: its pages
 * are purged instead (their memory goes back to the kernel, the addresses
 * stay reserved), and the release counts as done.
 */
#include "../vmhdr.h"

static pthread_mutex_t sbrk_lock = PTHREAD_MUTEX_INITIALIZER;

static int sbrk_at_top(char* addr, size_t csz) { return (char*)vm_os_sbrk(0) == addr + csz; }

/* Purge the whole pages inside [addr, addr + size). */
static void sbrk_purge(char* addr, size_t size)
{
    size_t page = vm_os_pagesize();
    char* lo = vm_ptr_up(addr, page);
    char* hi = (char*)((uintptr_t)(addr + size) & ~(uintptr_t)(page - 1));
    if (hi > lo)
        (void)vm_os_purge(lo, (size_t)(hi - lo));
}

static void* sbrk_memory(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    (void)vm;
    (void)disc;
    void* r = NULL;
    if (csz > (size_t)INTPTR_MAX || nsz > (size_t)INTPTR_MAX)
        return NULL;
    pthread_mutex_lock(&sbrk_lock);
    if (csz == 0) {
        void* p = nsz ? vm_os_sbrk((intptr_t)nsz) : (void*)-1;
        r = p == (void*)-1 ? NULL : p;
    } else if (nsz == 0) {
        if (sbrk_at_top(addr, csz) && vm_os_sbrk(-(intptr_t)csz) != (void*)-1)
            r = addr;
        else {
            sbrk_purge(addr, csz);
            r = addr;
        }
    } else if (sbrk_at_top(addr, csz)) {
        intptr_t delta = (intptr_t)nsz - (intptr_t)csz;
        if (vm_os_sbrk(delta) != (void*)-1)
            r = addr;
    }
    /* else: another's memory lies above; the segment cannot change in place. */
    pthread_mutex_unlock(&sbrk_lock);
    return r;
}

Vmdisc_t vm_dc_sbrk = {sbrk_memory, NULL, 0};
Vmdisc_t* Vmdcsbrk = &vm_dc_sbrk;

void vm_sbrk_lock(void) { pthread_mutex_lock(&sbrk_lock); }
void vm_sbrk_unlock(void) { pthread_mutex_unlock(&sbrk_lock); }
