"""One sandbox's control group: memory (no swap), process count and CPU share, then which was hit.

cgroup v2 where this process's cgroup can take children with those controllers; otherwise the
cgroup v1 hierarchies (memory, pids, cpu) that are mounted writable; otherwise none, and the
sandbox falls back to rlimits. Needs root (the sandbox's own root mode).
"""

import os
import signal
import time
from pathlib import Path

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


def _mounts():
    """{controller: mount point} of the cgroup hierarchies, "unified" for cgroup v2."""
    found = {}
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            separator = fields.index("-")
            fstype, options = fields[separator + 1], fields[separator + 3].split(",")
            if fstype == "cgroup2":
                found.setdefault("unified", fields[4])
            elif fstype == "cgroup":
                for controller in CONTROLLERS:
                    if controller in options:
                        found.setdefault(controller, fields[4])
    return found


def _own_paths():
    """{controller or "unified": this process's cgroup path}, from /proc/self/cgroup."""
    paths = {}
    with open("/proc/self/cgroup") as own:
        for line in own:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else ["unified"]:
                paths[controller] = path
    return paths


def _cpu_quota_us(limits):
    """CPU time per period: the share of all the CPUs this process may use."""
    return int(limits.cpu_share * len(os.sched_getaffinity(0)) * CPU_PERIOD_US)


def _write(path, value):
    with open(path, "w") as file:
        file.write(str(value))


def _read_counter(path, key):
    """The value of `key` in a flat-keyed file like memory.events ("oom_kill 1"), else 0."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class CgroupError(OSError):
    """A writable cgroup hierarchy refused this sandbox's cgroup: the grader's fault."""


class Cgroup:
    """The cgroup folders of one sandbox; `create` returns None where no hierarchy is writable
    and raises CgroupError when a writable one fails."""

    def __init__(self, folders, version):
        self.folders = folders  # {controller: Path}
        self.version = version

    @classmethod
    def create(cls, name, limits):
        if os.geteuid() != 0:
            return None
        mounts, own = _mounts(), _own_paths()
        for attempt in (cls._create_v2, cls._create_v1):
            cgroup = attempt(name, limits, mounts, own)
            if cgroup is not None:
                return cgroup
        return None

    @classmethod
    def _create_v2(cls, name, limits, mounts, own):
        if "unified" not in mounts or "unified" not in own:
            return None
        parent = Path(mounts["unified"]) / own["unified"].lstrip("/")
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids", "cpu"} <= set(enabled):
                _write(parent / "cgroup.subtree_control", "+memory +pids +cpu")
        except OSError:
            return None
        folder = parent / name
        cgroup = cls({controller: folder for controller in CONTROLLERS}, 2)
        try:
            _fresh_folder(folder)
            _write(folder / "memory.max", limits.memory_bytes)
            _write(folder / "memory.swap.max", 0)
            _write(folder / "pids.max", limits.processes)
            _write(folder / "cpu.max", f"{_cpu_quota_us(limits)} {CPU_PERIOD_US}")
        except OSError as error:
            cgroup.remove()
            raise CgroupError(f"cannot set up the cgroup {folder}: {error}") from None
        return cgroup

    @classmethod
    def _create_v1(cls, name, limits, mounts, own):
        if not all(controller in mounts and controller in own for controller in CONTROLLERS):
            return None
        folders = {controller: Path(mounts[controller]) / own[controller].lstrip("/") / name
                   for controller in CONTROLLERS}
        if not all(os.access(folder.parent, os.W_OK) for folder in folders.values()):
            return None
        cgroup = cls(folders, 1)
        try:
            for folder in folders.values():
                _fresh_folder(folder)
            memory = folders["memory"]
            _write(memory / "memory.limit_in_bytes", limits.memory_bytes)
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap accounting is on
                _write(memory / "memory.memsw.limit_in_bytes", limits.memory_bytes)
            _write(memory / "memory.swappiness", 0)
            _write(folders["pids"] / "pids.max", limits.processes)
            _write(folders["cpu"] / "cpu.cfs_period_us", CPU_PERIOD_US)
            _write(folders["cpu"] / "cpu.cfs_quota_us", _cpu_quota_us(limits))
        except OSError as error:
            cgroup.remove()
            raise CgroupError(f"cannot set up the cgroup {name}: {error}") from None
        return cgroup

    def enter(self):
        """Moves the calling process (the sandbox, before it starts) into this cgroup."""
        for folder in set(self.folders.values()):
            _write(folder / "cgroup.procs", os.getpid())

    def limit_hit(self):
        """"memory" or "process" when the kernel enforced that limit, else None."""
        if self.version == 2:
            if _read_counter(self.folders["memory"] / "memory.events", "oom_kill"):
                return "memory"
        else:
            control = self.folders["memory"] / "memory.oom_control"
            if _read_counter(control, "oom_kill"):
                return "memory"
        if _read_counter(self.folders["pids"] / "pids.events", "max"):
            return "process"
        return None

    def peak_memory_bytes(self):
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.folders["memory"] / name).read_text())
        except (OSError, ValueError):
            return None

    def remove(self):
        """Removes the folders; every process in them must have exited (the PID namespace)."""
        for folder in set(self.folders.values()):
            try:
                folder.rmdir()
            except OSError:
                pass

    def describe(self):
        return f"cgroup v{self.version}"


def _fresh_folder(folder):
    """A new, empty cgroup folder. A leftover of this slot's previous sandbox (its wrapper was
    killed before cleaning up) goes first, with any process still dying in it."""
    for _ in range(50):
        try:
            folder.rmdir()
        except FileNotFoundError:
            break
        except OSError:  # busy: the slot's lock is ours, so these processes are a dead sandbox's
            for pid in (folder / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
    folder.mkdir()
