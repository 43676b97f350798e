/*
 * trace.c — trace lines in the paper's format (Figure 10):
 *     old:new:size:region:method:[file,line:]
 * an allocation is 0x0:NEW:size:..., a free OLD:0x0:size:... (the usable size
 * of the freed block), a resize OLD:NEW:newsize:... . Regions are announced
 * by records of their own, 0x0:0x0:0:REGION:METHOD:open: (and clear:,
 * close:); no allocation record has both addresses 0x0, so a replayer tells
 * them apart by that.
 *
 * Lines are formatted without allocating (the trace follows the allocator
 * that serves printf itself) into one process-wide buffer guarded by a mutex,
 * written out when full, when vmtrace() changes the descriptor, at exit (after
 * which lines go straight out, for allocations in later destructors), around
 * fork() and, for programs that preload libvmalloc.so, before exec.
 *
 * Regions opened with VM_TRACE (or given it by vmset) are traced; with
 * vm_trace_all (VMTRACE in the environment) every region is.
 */
#include "vmhdr.h"

int vm_trace_fd = -1;
int vm_trace_all;

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static char trace_buf[1 << 16];
static size_t trace_len;
static int trace_direct; /* set at exit: no buffering from then on */
static uint64_t trace_fileid; /* what vm_trace_fd referred to when it was set */

/* The file and line a -DVMFL caller noted for its next call on this thread. */
__thread const char* vm_fl_file __attribute__((tls_model("initial-exec")));
static __thread int trace_line __attribute__((tls_model("initial-exec")));

void _vmflinfo(const char* file, int line)
{
    vm_fl_file = file;
    trace_line = line;
    /* For good: a program built with VMFL notes (nearly) every call, so
     * its mallocs take the general path, which reads the note; the others
     * never pay a look at this thread's note on each call. */
    vm_malloc_slow_stick(VM_SLOW_FL);
}

/* The caller an entry point noted for this thread's current call. */
static __thread void* trace_caller __attribute__((tls_model("initial-exec")));
int vm_sites_on;

void vm_caller_note(void* ra)
{
    if (!trace_caller)
        trace_caller = ra;
}

/* Like vm_fl_take, the thread's TLS is written only when there is something
 * to forget. */
void* vm_caller_take(void)
{
    void* ra = trace_caller;
    if (ra)
        trace_caller = NULL;
    return ra;
}

void vm_fl_take(const char** file, int* line)
{
    *file = vm_fl_file;
    *line = 0;
    /* Write the thread's TLS only when a -DVMFL caller set it. Allocation
     * calls also come from glibc itself, among them while it creates and
     * ends threads; clearing the variable unconditionally on those calls
     * corrupted Vmheap under thread churn (test_churn, shared library only),
     * and reading is all an uninstrumented call needs. */
    if (*file) {
        *line = trace_line;
        vm_fl_file = NULL;
    }
}

/* Is vm_trace_fd still the file it was when set? A program may close every
 * descriptor and open its own files, which can get the number back: then
 * tracing stops rather than write into the program's file. trace_lock held. */
static int trace_fd_ok(void)
{
    if (vm_trace_fd < 0)
        return 0;
    if (vm_os_file_id(vm_trace_fd) == trace_fileid)
        return 1;
    vm_trace_fd = -1;
    vm_malloc_slow_set(VM_SLOW_TRACE, 0);
    return 0;
}

/* Write what is buffered. trace_lock held. */
static void trace_drain_locked(void)
{
    if (trace_len && trace_fd_ok())
        (void)vm_os_write(vm_trace_fd, trace_buf, trace_len);
    trace_len = 0;
}

void vm_trace_flush(void)
{
    pthread_mutex_lock(&trace_lock);
    trace_drain_locked();
    pthread_mutex_unlock(&trace_lock);
}

/* For _exit and exec, which may run in a signal handler that interrupted a
 * traced call holding the lock on this very thread: write the buffer only if
 * the lock is free, never wait for it. */
void vm_trace_flush_try(void)
{
    if (pthread_mutex_trylock(&trace_lock) != 0)
        return;
    trace_drain_locked();
    pthread_mutex_unlock(&trace_lock);
}

int vmtrace(int fd)
{
    pthread_mutex_lock(&trace_lock);
    trace_drain_locked(); /* what was traced so far belongs to the old descriptor */
    int old = vm_trace_fd;
    vm_trace_fd = fd;
    trace_fileid = vm_os_file_id(fd);
    vm_malloc_slow_set(VM_SLOW_TRACE, fd >= 0);
    pthread_mutex_unlock(&trace_lock);
    return old;
}

/* fork(): the buffer is written out and the lock held across, so neither
 * process inherits half a line or a lock held by a thread that is gone. */
void vm_trace_fork_prepare(void)
{
    pthread_mutex_lock(&trace_lock);
    trace_drain_locked();
}

void vm_trace_fork_after(void) { pthread_mutex_unlock(&trace_lock); }

__attribute__((destructor)) static void trace_at_exit(void)
{
    pthread_mutex_lock(&trace_lock);
    trace_drain_locked();
    trace_direct = 1;
    pthread_mutex_unlock(&trace_lock);
}

static char* put_str(char* p, const char* s, size_t max)
{
    while (*s && max--)
        *p++ = *s++;
    return p;
}

char* vm_fmt_hex(char* p, uintptr_t v)
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

char* vm_fmt_dec(char* p, size_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void trace_emit(const char* line, size_t n)
{
    pthread_mutex_lock(&trace_lock);
    if (trace_direct) {
        if (trace_fd_ok())
            (void)vm_os_write(vm_trace_fd, line, n);
    } else {
        if (trace_len + n > sizeof trace_buf)
            trace_drain_locked();
        memcpy(trace_buf + trace_len, line, n);
        trace_len += n;
    }
    pthread_mutex_unlock(&trace_lock);
}

/* One record; what is NULL prints 0x0, file NULL leaves out "file,line:". */
static void trace_record(Vmalloc_t* vm, const void* old, const void* new, size_t size,
                         const char* what, const char* file, int line)
{
    char buf[512], *p = buf;
    p = vm_fmt_hex(p, (uintptr_t)old);
    *p++ = ':';
    p = vm_fmt_hex(p, (uintptr_t)new);
    *p++ = ':';
    p = vm_fmt_dec(p, size);
    *p++ = ':';
    p = vm_fmt_hex(p, (uintptr_t)vm);
    *p++ = ':';
    p = put_str(p, vm->meth->name, 16);
    *p++ = ':';
    if (what) {
        p = put_str(p, what, 16);
        *p++ = ':';
    } else if (file) {
        p = put_str(p, file, 400);
        *p++ = ',';
        p = vm_fmt_dec(p, line < 0 ? 0 : (size_t)line);
        *p++ = ':';
    }
    *p++ = '\n';
    trace_emit(buf, (size_t)(p - buf));
}

void vm_trace(Vmalloc_t* vm, const void* old, const void* new, size_t size, const char* file,
              int line)
{
    trace_record(vm, old, new, size, NULL, file, line);
}

void vm_trace_region(Vmalloc_t* vm, const char* what)
{
    trace_record(vm, NULL, NULL, 0, what, NULL, 0);
}
