/*
 * os.c — every call vmalloc makes to the kernel, behind one small contract
 * (vmhdr.h): map fresh pages, reserve address space and open or close
 * pages of it, unmap, resize a mapping without moving it, purge pages,
 * move the program break, random bits, write a buffer.
 *
 * Nothing else in the library includes a system header for memory. Porting
 * vmalloc to another kernel means rewriting this file only.
 */
#define _GNU_SOURCE
#include "vmhdr.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

size_t vm_os_pagesize(void)
{
    static size_t page;
    size_t p = __atomic_load_n(&page, __ATOMIC_RELAXED);
    if (p == 0) {
        long s = sysconf(_SC_PAGESIZE);
        p = s > 0 ? (size_t)s : 4096;
        __atomic_store_n(&page, p, __ATOMIC_RELAXED);
    }
    return p;
}

static void* os_mmap(size_t size, int prot, int noreserve)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0);
    void* p = mmap(NULL, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void* vm_os_map(size_t size) { return os_mmap(size, PROT_READ | PROT_WRITE, 0); }

/* No MAP_ALIGNED on Linux. The kernel places mappings top-down, next to
 * each other, so once one is aligned the following ones of aligned sizes
 * usually are: try a plain mapping first, and only if it is misaligned map
 * size + align and trim both ends. */
static void* os_mmap_aligned(size_t size, size_t align, int prot, int noreserve)
{
    char* p = os_mmap(size, prot, noreserve);
    if (!p || ((uintptr_t)p & (align - 1)) == 0)
        return p;
    (void)munmap(p, size);
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    p = os_mmap(size + align, prot, noreserve);
    if (!p)
        return NULL;
    char* a = (char*)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (a > p)
        (void)munmap(p, (size_t)(a - p));
    if (a + size < p + size + align)
        (void)munmap(a + size, (size_t)(p + size + align - (a + size)));
    return a;
}

void* vm_os_map_aligned(size_t size, size_t align)
{
    return os_mmap_aligned(size, align, PROT_READ | PROT_WRITE, 0);
}

/* Does the kernel overcommit (vm.overcommit_memory 0 or 1, Linux's
 * default)? Then a reservation is mapped writable with MAP_NORESERVE and
 * opening pages of it costs no call: only the pages touched take memory,
 * as with any mapping (jemalloc decides the same way). In strict mode (2)
 * it is PROT_NONE, and opening is an mprotect, which the kernel charges.
 * An mprotect per growth cost dot's replay 6 ms of system time in 40. */
static int os_overcommits(void)
{
    static int known; /* 0: not read yet; 1: yes; 2: no */
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v == 0) {
        char c = '0';
        int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, &c, 1) != 1)
                c = '0';
            close(fd);
        }
        v = c == '2' ? 2 : 1;
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v == 1;
}

/* Address space only: no memory until touched, no commit charge until
 * vm_os_commit opens part of it. */
void* vm_os_reserve(size_t size, size_t align)
{
    return os_mmap_aligned(size, align, os_overcommits() ? PROT_READ | PROT_WRITE : PROT_NONE, 1);
}

/* Addresses that read as zeros and take no memory until written: a write
 * needs vm_os_commit first. Readable in strict mode too (PROT_READ, which
 * the kernel does not charge), so a table kept there may be read at any
 * index, written or not: the page map (method/page.c). Left out of core
 * dumps: a dump piped to a handler (systemd-coredump, apport) would carry
 * every never-written page of it as zeros, 32 GiB for the page map (so a
 * debugger cannot read the map from a core). */
void* vm_os_reserve_zero(size_t size)
{
    void* p = os_mmap(size, os_overcommits() ? PROT_READ | PROT_WRITE : PROT_READ, 1);
#ifdef MADV_DONTDUMP
    if (p)
        (void)madvise(p, size, MADV_DONTDUMP);
#endif
#ifdef MADV_NOHUGEPAGE
    /* Transparent huge pages set to "always" would back a written entry's
     * 2 MiB, not its 4 KiB, and khugepaged could fill in sparse spans. */
    if (p)
        (void)madvise(p, size, MADV_NOHUGEPAGE);
#endif
    return p;
}

/* Is the process's address space limited (RLIMIT_AS, `ulimit -v`)? */
int vm_os_as_limited(void)
{
    struct rlimit rl;
    return getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
}

/* Pages of a reservation never opened, or closed by vm_os_decommit, read as
 * zero once opened. */
int vm_os_commit(void* addr, size_t size)
{
    return os_overcommits() ? 0 : mprotect(addr, size, PROT_READ | PROT_WRITE);
}

/* The pages go (and, in strict mode, a fresh PROT_NONE mapping over them
 * gives back their commit charge); the addresses stay reserved. */
int vm_os_decommit(void* addr, size_t size)
{
    if (os_overcommits())
        return vm_os_purge(addr, size);
    void* p = mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? -1 : 0;
}

uint64_t vm_os_now_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
#endif
        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int vm_os_unmap(void* addr, size_t size) { return munmap(addr, size); }

/* Linux mremap without MREMAP_MAYMOVE grows a mapping only when the pages
 * after it are free, and always shrinks in place: exactly the discipline
 * contract's "resize without moving". */
int vm_os_remap_inplace(void* addr, size_t osize, size_t nsize)
{
#ifdef __linux__
    void* p = mremap(addr, osize, nsize, 0);
    return p == MAP_FAILED ? -1 : 0;
#else
    if (nsize < osize)
        return munmap((char*)addr + nsize, osize - nsize);
    errno = ENOMEM;
    return -1;
#endif
}

int vm_os_purge(void* addr, size_t size) { return madvise(addr, size, MADV_DONTNEED); }

void* vm_os_sbrk(intptr_t incr) { return sbrk(incr); }

uint64_t vm_os_random(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&r;
    }
    return r;
}

int vm_os_write(int fd, const void* buf, size_t n)
{
    const char* p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The descriptor is moved high, out of the way of programs that assume
 * they own the low numbers (and close and reopen them). */
static int os_open_high(const char* path, int how)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | how, 0644);
    if (fd >= 0 && fd < 512) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 512);
        if (high >= 0) {
            close(fd);
            fd = high;
        }
    }
    return fd;
}

int vm_os_open_append(const char* path) { return os_open_high(path, O_APPEND); }

int vm_os_open_trunc(const char* path) { return os_open_high(path, O_TRUNC); }

uint64_t vm_os_file_id(int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return 0;
    return ((uint64_t)st.st_dev << 40) ^ (uint64_t)st.st_ino ^ 1;
}

long vm_os_getpid(void) { return (long)getpid(); }

void vm_os_yield(void) { sched_yield(); }

/* A region lock: glibc's adaptive mutex spins a little before it sleeps,
 * which suits critical sections of a few hundred instructions (a cache
 * refill or flush) taken by threads that run on other cores: a sleeping
 * waiter costs two context switches where a short spin costs nothing. */
void vm_os_lock_init(pthread_mutex_t* m)
{
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) == 0) {
        int ok = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP) == 0 &&
                 pthread_mutex_init(m, &a) == 0;
        pthread_mutexattr_destroy(&a);
        if (ok)
            return;
    }
#endif
    pthread_mutex_init(m, NULL);
}

int vm_os_close(int fd) { return fd >= 0 ? close(fd) : 0; }

_Noreturn void vm_os_exit(int status)
{
    for (;;)
        syscall(SYS_exit_group, status);
}

_Noreturn void vm_os_abort(void) { abort(); }

int vm_os_protect(void* addr, size_t size, int on)
{
    return mprotect(addr, size, on ? PROT_READ | PROT_WRITE : PROT_NONE);
}

/* dladdr takes the dynamic loader's lock and reads its tables; it does not
 * allocate, so a report may resolve names while a region lock is held. */
char* vm_os_symbol(const void* addr, char* buf, size_t n, const char** module, uintptr_t* modoff)
{
    Dl_info info;
    char* p = buf;
    char* end = buf + n - 1;
    const char* name = NULL;
    uintptr_t base = 0;
    *module = NULL;
    *modoff = 0;
    if (n < 24) {
        buf[0] = 0;
        return buf;
    }
    if (dladdr(addr, &info) != 0) {
        if (info.dli_fname && info.dli_fname[0]) {
            *module = info.dli_fname;
            *modoff = (uintptr_t)addr - (uintptr_t)info.dli_fbase;
        }
        if (info.dli_sname && info.dli_saddr) {
            name = info.dli_sname;
            base = (uintptr_t)info.dli_saddr;
        } else if (*module) {
            name = *module;
            for (const char* s = name; *s; ++s) /* the module's base name */
                if (*s == '/' && s[1])
                    name = s + 1;
            base = (uintptr_t)info.dli_fbase;
        }
    }
    if (name) {
        while (*name && p < end - 20)
            *p++ = *name++;
        *p++ = '+';
    }
    p = vm_fmt_hex(p, (uintptr_t)addr - base);
    *p = 0;
    return p;
}
