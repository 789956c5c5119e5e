"""The grading kernel's side of the sandbox: it talks over IPC sockets in a folder of its own.

nbgrader runs each student's notebook in a kernel started from `kernels/ddim-grading`, which
runs ipykernel through `python -m autograder.sandbox run --kernel-connection ...`. The sandbox
has no network, so the kernel cannot use TCP; and no kernel may see another one's connection
file (its key) or sockets. Each kernel therefore gets a fresh folder (mode 0700) holding its
connection file and its IPC sockets, and the sandbox makes that folder, and nothing else of
the grader's, visible to it.
"""

import shutil
import tempfile
from pathlib import Path

from jupyter_client import AsyncKernelManager
from nbgrader.preprocessors import Execute


class PrivateKernelManager(AsyncKernelManager):
    """A kernel manager whose connection file and IPC sockets live in a fresh private folder."""

    def __init__(self, **kwargs):
        self.private_folder = Path(tempfile.mkdtemp(prefix="ddim-kernel-"))
        kwargs.setdefault("transport", "ipc")
        # the sockets are <folder>/kernel-ipc-<port>, beside the connection file
        kwargs.setdefault("connection_file", str(self.private_folder / "kernel.json"))
        super().__init__(**kwargs)

    def cleanup_connection_file(self):
        super().cleanup_connection_file()
        shutil.rmtree(self.private_folder, ignore_errors=True)


class PrivateExecute(Execute):
    """nbgrader's Execute with the private kernel manager (Execute forces its own default)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", PrivateKernelManager)
        super().__init__(*args, **kwargs)
