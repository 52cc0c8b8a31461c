/* A small program run inside the sandbox by tests/hardening.rs: it tries each syscall the
 * seccomp policy denies and prints "<name> <errno>" (0 = succeeded), or for int80 how the
 * child that tried it ended. Built static for the host (native) and for armhf (in the rootfs,
 * with its gcc) so the filter is checked directly and through qemu's translation. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Older headers (the ARM rootfs's) may lack the newest numbers; they are the same on every
 * architecture of the unified table. */
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#define SYS_io_uring_enter 426
#define SYS_io_uring_register 427
#endif
#ifndef SYS_set_mempolicy_home_node
#define SYS_set_mempolicy_home_node 450
#endif

static void report(const char *name, long ret) {
    printf("%s %d\n", name, ret < 0 ? errno : 0);
}

/* personality(value), then back to PER_LINUX so later probes run as usual. */
static void persona(const char *name, unsigned long value) {
    long ret = syscall(SYS_personality, value);
    int e = errno;
    syscall(SYS_personality, 0UL);
    errno = e;
    report(name, ret);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *t = argv[i];
        errno = 0;
        if (!strcmp(t, "getpid")) report(t, syscall(SYS_getpid));
        else if (!strcmp(t, "keyctl")) report(t, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
        else if (!strcmp(t, "add_key")) report(t, syscall(SYS_add_key, "user", "k", "v", 1, -3));
        else if (!strcmp(t, "bpf")) report(t, syscall(SYS_bpf, 0, NULL, 0));
        else if (!strcmp(t, "perf_event_open")) report(t, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        else if (!strcmp(t, "userfaultfd")) report(t, syscall(SYS_userfaultfd, 0));
        else if (!strcmp(t, "ptrace")) report(t, syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0));
        else if (!strcmp(t, "kexec_load")) report(t, syscall(SYS_kexec_load, 0, 0, NULL, 0));
        else if (!strcmp(t, "init_module")) report(t, syscall(SYS_init_module, NULL, 0, ""));
        else if (!strcmp(t, "open_by_handle_at")) report(t, syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
        else if (!strcmp(t, "mount")) report(t, mount("none", "/tmp", "tmpfs", 0, NULL));
        else if (!strcmp(t, "unshare_user")) report(t, unshare(CLONE_NEWUSER));
        else if (!strcmp(t, "unshare_ns")) report(t, unshare(CLONE_NEWNS));
        else if (!strcmp(t, "clone3")) report(t, syscall(SYS_clone3, NULL, 0));
        /* io_uring: without the filter these fail with EFAULT (no params), never EPERM. */
        else if (!strcmp(t, "io_uring_setup")) report(t, syscall(SYS_io_uring_setup, 1, NULL));
        else if (!strcmp(t, "io_uring_enter")) report(t, syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
        else if (!strcmp(t, "io_uring_register")) report(t, syscall(SYS_io_uring_register, -1, 0, NULL, 0));
        else if (!strcmp(t, "kcmp")) report(t, syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 1, 1));
        /* NUMA: each harmless (the default policy, this process, nothing moved). */
        else if (!strcmp(t, "get_mempolicy")) {
            int mode = 0;
            report(t, syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 0));
        } else if (!strcmp(t, "set_mempolicy")) report(t, syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, NULL, 0));
        else if (!strcmp(t, "mbind") || !strcmp(t, "set_mempolicy_home_node")) {
            long page = sysconf(_SC_PAGESIZE);
            void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (!strcmp(t, "mbind")) report(t, syscall(SYS_mbind, p, page, 0 /* MPOL_DEFAULT */, NULL, 0, 0));
            else report(t, syscall(SYS_set_mempolicy_home_node, p, page, 0, 0));
        } else if (!strcmp(t, "migrate_pages")) {
            unsigned long nodes = 1;
            report(t, syscall(SYS_migrate_pages, 0, 8 * sizeof nodes, &nodes, &nodes));
        } else if (!strcmp(t, "move_pages")) report(t, syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0));
        /* personality: the values Docker's profile allows pass, the others are refused. */
        else if (!strcmp(t, "personality_query")) persona(t, 0xffffffffUL);
        else if (!strcmp(t, "personality_linux")) persona(t, PER_LINUX);
        else if (!strcmp(t, "personality_linux32")) persona(t, PER_LINUX32);
        else if (!strcmp(t, "personality_no_randomize")) persona(t, PER_LINUX | ADDR_NO_RANDOMIZE);
        else if (!strcmp(t, "personality_read_implies_exec")) persona(t, READ_IMPLIES_EXEC);
#if __SIZEOF_LONG__ > 4
        /* High bits set: the kernel reads an unsigned int, and so must the filter. */
        else if (!strcmp(t, "personality_high")) persona(t, 1UL << 32 | ADDR_NO_RANDOMIZE);
#endif
        else if (!strcmp(t, "fork")) {
            pid_t p = fork();
            if (p == 0) _exit(7);
            int st = 0;
            waitpid(p, &st, 0);
            printf("fork %d\n", p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : 1);
        } else if (!strncmp(t, "tiocsti", 7)) {
            /* Our own pty as controlling terminal, so only a filter can refuse TIOCSTI. */
            int m = posix_openpt(O_RDWR | O_NOCTTY);
            grantpt(m);
            unlockpt(m);
            int s = open(ptsname(m), O_RDWR);
            setsid();
            ioctl(s, TIOCSCTTY, 0);
            char c = 'x';
            unsigned long req = TIOCSTI;
            if (!strcmp(t, "tiocsti_high")) req |= 0x100000000UL;
            report(t, syscall(SYS_ioctl, s, req, &c));
        }
#if defined(__x86_64__)
        else if (!strcmp(t, "x32")) report(t, syscall(0x40000000 | SYS_getpid));
        else if (!strcmp(t, "int80")) {
            pid_t p = fork();
            if (p == 0) {
                long ret;
                __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory"); /* i386 getpid */
                _exit(0);
            }
            int st = 0;
            waitpid(p, &st, 0);
            printf("int80 %s%d\n", WIFSIGNALED(st) ? "signal " : "exit ", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
#endif
        else printf("%s unknown\n", t);
        fflush(stdout);
    }
    return 0;
}
