"""Every resource limit of the grading sandbox, in one place (`autograder.sandbox` applies them).

Modelled on PrairieLearn's external grader: 2 GiB of memory and no swap, 1,024 processes, 1 GiB
of disk, a CPU share below 1, no network, 30-600 s. The CPU share is a fraction of the whole
machine (0.9: the trusted grader always keeps some), not of one core: a cap below one core would
double the time of the notebook's training on a 2-core machine. A submission that hits a limit
is stopped and the sandbox's report names the limit ("memory limit 2 GiB exceeded"); the rest of
the class is graded normally.
"""

import os
from dataclasses import dataclass

MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # resident memory of all its processes together, swap included (cgroup)
    processes: int  # processes and threads together (cgroup pids.max, RLIMIT_NPROC per uid)
    file_size_bytes: int  # the largest file it may write (RLIMIT_FSIZE)
    disk_bytes: int  # each private tmpfs, and the --write folders together
    cpu_seconds: int  # CPU time of each process (RLIMIT_CPU)
    cpu_share: float  # the fraction of the machine's CPUs it may keep busy (cgroup CPU quota)
    wall_seconds: int  # the whole run, start-up included
    output_bytes: int  # what it writes to stdout and stderr together
    address_space_bytes: int  # RLIMIT_AS, only where no memory cgroup is writable (TF maps ~6 GiB)

    def describe(self, name):
        """`memory limit 2 GiB` for the limit called `name` ("memory", "processes", ...)."""
        values = {"memory": self.memory_bytes, "process": self.processes,
                  "file size": self.file_size_bytes, "disk": self.disk_bytes,
                  "CPU time": self.cpu_seconds, "wall time": self.wall_seconds,
                  "output": self.output_bytes, "address space": self.address_space_bytes}
        value = values[name]
        if name in ("process",):
            return f"{name} limit {value}"
        if name in ("CPU time", "wall time"):
            return f"{name} limit {value} s"
        return f"{name} limit {_size(value)}"


def _size(num_bytes):
    return f"{num_bytes / GiB:g} GiB" if num_bytes >= GiB else f"{num_bytes / MiB:g} MiB"


# The student's notebook executed by nbgrader (quick profile: imports, a short training) and one
# student runner of the judge (the unit probes or one training run) need the same, so one set
# serves both. Both names stay: kernels/ddim-grading/kernel.json asks for "kernel", the runner
# (runner/launch.py) for "runner".
STUDENT_CODE_LIMITS = Limits(memory_bytes=2 * GiB, processes=1024, file_size_bytes=256 * MiB,
                             disk_bytes=1 * GiB, cpu_seconds=1200, cpu_share=0.9,
                             wall_seconds=600, output_bytes=16 * MiB,
                             address_space_bytes=16 * GiB)
LIMITS = {"kernel": STUDENT_CODE_LIMITS, "runner": STUDENT_CODE_LIMITS}

# The sandbox's own uids and gids (root mode): one per concurrent sandbox, so that per-uid
# limits (RLIMIT_NPROC) and file ownership never mix two sandboxes. Neither root nor a person.
SANDBOX_UID_BASE = int(os.environ.get("AUTOGRADER_SANDBOX_UID", "61000"))
SANDBOX_SLOTS = 64
