/* Calls each syscall a container's seccomp profile decides on and prints "name errno" (0: allowed and
 * it worked). Built static by the tests (gcc -static), so it runs in any image, busybox or none.
 * Each call is harmless when it succeeds: it changes only this process, or a child it made. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long rc) { printf("%s %d\n", name, rc < 0 ? errno : 0); }

/* Run fn in a child so that a call which succeeds (a new user namespace) leaves this process alone. */
static void in_child(const char *name, long (*fn)(void)) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        long rc = fn();
        int err = rc < 0 ? errno : 0;
        if (write(pipefd[1], &err, sizeof err) != sizeof err) _exit(2);
        _exit(0);
    }
    int err = -1;
    close(pipefd[1]);
    if (read(pipefd[0], &err, sizeof err) != sizeof err) err = -1;
    close(pipefd[0]);
    waitpid(pid, NULL, 0);
    printf("%s %d\n", name, err);
}

static long do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static long do_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long ptrace_sibling(void) {
    pid_t target = fork();
    if (target == 0) { pause(); _exit(0); }
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    pid_t tracer = fork();
    if (tracer == 0) {
        long rc = ptrace(PTRACE_ATTACH, target, 0, 0);
        int err = rc < 0 ? errno : 0;
        if (rc == 0) { waitpid(target, NULL, __WALL); ptrace(PTRACE_DETACH, target, 0, 0); }
        if (write(pipefd[1], &err, sizeof err) != sizeof err) _exit(2);
        _exit(0);
    }
    int err = -1;
    close(pipefd[1]);
    if (read(pipefd[0], &err, sizeof err) != sizeof err) err = -1;
    waitpid(tracer, NULL, 0);
    kill(target, SIGKILL);
    waitpid(target, NULL, 0);
    errno = err;
    return err ? -1 : 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getpid() != 1) {  /* as root on a host, mount, kexec_load and reboot would act on it */
        fprintf(stderr, "seccomp_probe: run me only as a container's first process\n");
        return 2;
    }
    in_child("unshare-user", do_unshare_user);
    in_child("clone-newuser", do_clone_newuser);
    report("mount", mount("none", "/", "tmpfs", 0, ""));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2 /* process keyring */, 1));
    report("add_key", syscall(SYS_add_key, "user", "dockyard-probe", "x", 1, -2));
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_SW_TASK_CLOCK;
    pe.disabled = 1;
    pe.exclude_kernel = 1;
    pe.exclude_hv = 1;
    report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    char handle[64];
    memset(handle, 0, sizeof handle);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL));
    report("swapon", syscall(SYS_swapon, "/nonexistent-swap", 0));
    report("ptrace-sibling", ptrace_sibling());
    report("personality-query", personality(0xffffffff));
    report("personality-addr-no-randomize", personality(ADDR_NO_RANDOMIZE));
    report("socket-vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    report("socket-unix", socket(AF_UNIX, SOCK_STREAM, 0));
    report("getppid", syscall(SYS_getppid));  /* glibc's getppid never sets errno */
    return 0;
}
