"""The grading kernel's side of the sandbox: IPC sockets in a folder of its own, and a death
that names its cause.

nbgrader runs each student's notebook in a kernel started from `kernels/ddim-grading`, which
runs ipykernel through `python -m autograder.sandbox run --kernel-connection ...`. The sandbox
has no network, so the kernel cannot use TCP; and no kernel may see another one's connection
file (its key) or sockets. Each kernel therefore gets a fresh folder (mode 0700, the grader's):

    ddim-kernel-XXXX/kernel.json          the connection file; the kernel sees a read-only copy
    ddim-kernel-XXXX/kernel.json.report   the sandbox's report (autograder.sandbox.read_report)
    ddim-kernel-XXXX/ipc/kernel-<port>    its IPC sockets: the only folder it shares with us
"""

import shutil
import tempfile
from pathlib import Path

from jupyter_client import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbgrader.preprocessors import Execute

from autograder.sandbox import read_report

REPORT_SUFFIX = ".report"  # kernels/ddim-grading/kernel.json: --report {connection_file}.report


class PrivateKernelManager(AsyncKernelManager):
    """A kernel manager whose connection file and IPC sockets live in a fresh private folder."""

    def __init__(self, **kwargs):
        self.private_folder = Path(tempfile.mkdtemp(prefix="ddim-kernel-"))
        (self.private_folder / "ipc").mkdir(mode=0o700)
        self.sandbox_report = None  # the sandbox's report, once the kernel is gone
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("connection_file", str(self.private_folder / "kernel.json"))
        kwargs.setdefault("ip", str(self.private_folder / "ipc" / "kernel"))
        super().__init__(**kwargs)

    def cleanup_connection_file(self):
        super().cleanup_connection_file()
        try:
            self.sandbox_report = read_report(self.connection_file + REPORT_SUFFIX)
        except (OSError, ValueError):
            pass  # still running, or never started
        shutil.rmtree(self.private_folder, ignore_errors=True)


class PrivateExecute(Execute):
    """nbgrader's Execute with the private kernel manager (Execute forces its own default);
    when the kernel dies, the error says whether the sandbox stopped it, and why."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", PrivateKernelManager)
        super().__init__(*args, **kwargs)

    def create_kernel_manager(self):
        self.last_kernel_manager = super().create_kernel_manager()
        return self.last_kernel_manager

    def preprocess(self, *args, **kwargs):
        try:
            return super().preprocess(*args, **kwargs)
        except DeadKernelError as error:
            manager = getattr(self, "last_kernel_manager", None)
            if manager is not None:
                manager.cleanup_connection_file()  # reads the report
                report = manager.sandbox_report or {}
                if report.get("setup_error"):
                    raise DeadKernelError(f"{error} (grader error: the sandbox could not start: "
                                          f"{report['setup_error']})") from error
                if report.get("limit"):
                    raise DeadKernelError(f"{error}: {report['limit']}") from error
            raise
