"""A seccomp filter for bwrap (`--seccomp FD`): the system calls a grading run never needs and
that kernel exploits love, refused with EPERM.

- new user namespaces (`unshare`, `clone` with CLONE_NEWUSER, `setns`): they give back
  capabilities, inside the namespace, that reach far more kernel code;
- mounts of any kind, and the kernel's keyrings, eBPF, userfaultfd, perf events, io_uring,
  module loading, kexec, ptrace and file handles.

`clone3` answers ENOSYS, so that the C library falls back to `clone`, whose flags a filter can
read. Only x86-64 is described; elsewhere the sandbox refuses to start (sandbox.protection says
why, and that AUTOGRADER_SANDBOX=off is the only way to grade there, unprotected).

Why not libseccomp: it would bring every architecture's numbers, but its Python bindings cannot
be had in a venv: Debian's python3-seccomp is built for the system Python, libseccomp publishes
none on PyPI, and PyPI has only pyseccomp 0.1.2 (a ctypes wrapper, last released 2021) and
mephi42-seccomp (one person's build of libseccomp's binding). Thirty numbers from the kernel's own
table and the short program below (tests/test_sandbox.py attacks it with unshare and
clone(CLONE_NEWUSER)) are less to trust than an unmaintained binding.
"""

import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
CLONE_NEWUSER = 0x10000000
CLONE, CLONE3 = 56, 435
REFUSED = {  # x86-64 numbers, from arch/x86/entry/syscalls/syscall_64.tbl
    "ptrace": 101, "pivot_root": 155, "mount": 165, "umount2": 166, "init_module": 175,
    "delete_module": 176, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "setns": 308, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442,
}

# classic BPF (linux/filter.h, linux/seccomp.h)
LOAD_WORD, JUMP_EQUAL, JUMP_GREATER_EQUAL, JUMP_SET, RETURN = 0x20, 0x15, 0x35, 0x45, 0x06
NR_OFFSET, ARCH_OFFSET, ARG0_OFFSET = 0, 4, 16
ALLOW, KILL_PROCESS, ERRNO = 0x7FFF0000, 0x80000000, 0x00050000


def supported():
    return platform.machine() == "x86_64"


def _instruction(code, k, jump_true=0, jump_false=0):
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def program():
    """The filter as bytes, the format bwrap reads from its --seccomp descriptor."""
    instructions = [
        _instruction(LOAD_WORD, ARCH_OFFSET),
        _instruction(JUMP_EQUAL, AUDIT_ARCH_X86_64, 1, 0),
        _instruction(RETURN, KILL_PROCESS),  # 32-bit system calls would dodge the numbers below
        _instruction(LOAD_WORD, NR_OFFSET),
        _instruction(JUMP_GREATER_EQUAL, X32_SYSCALL_BIT, 0, 1),
        _instruction(RETURN, KILL_PROCESS),
    ]
    for number in REFUSED.values():
        instructions += [_instruction(JUMP_EQUAL, number, 0, 1),
                         _instruction(RETURN, ERRNO | errno.EPERM)]
    instructions += [
        _instruction(JUMP_EQUAL, CLONE3, 0, 1),
        _instruction(RETURN, ERRNO | errno.ENOSYS),
        _instruction(JUMP_EQUAL, CLONE, 0, 3),
        _instruction(LOAD_WORD, ARG0_OFFSET),  # the flags' low 32 bits (little-endian)
        _instruction(JUMP_SET, CLONE_NEWUSER, 0, 1),
        _instruction(RETURN, ERRNO | errno.EPERM),
        _instruction(RETURN, ALLOW),
    ]
    return b"".join(instructions)
