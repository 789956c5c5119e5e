"""Quiet start-up for notebooks: TensorFlow's log noise out, real errors kept.

Importing TensorFlow 2.21 writes lines like these straight to the process's stderr (file
descriptor 2), before its own log filter is set up, so `TF_CPP_MIN_LOG_LEVEL` cannot hide them:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

A notebook shows them in red under its first cell. `quiet_tensorflow_startup()` imports
TensorFlow with stderr captured, then writes back every captured line except these known
start-up messages, so an unexpected message (a real error) still shows. It also sets
`TF_CPP_MIN_LOG_LEVEL=3` (unless already set), which hides the later C++ log lines of a CPU-only
machine (the red "failed call to cuInit", tf.data's "did not fully read the dataset being
cached"); Python exceptions are unaffected. Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything.
"""

import logging
import os
import re
import sys
import tempfile

from diffusion_course.lean_imports import skip_unused_optional_imports

# the start-up lines of a TensorFlow import (and of its GPU probe) that say nothing to a user
STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog"
    r"|^[IW]\d{4} .*(port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc|cuda_(fft|dnn|blas)\.cc)"
    r"|^E\d{4} .*cuda_\w+\.cc:\d+\] failed call to cuInit"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
)
# tfds logs this warning while it looks for a dataset that is not downloaded yet
TFDS_NOT_PREPARED = "has no dataset_info.json"


class _DropMessages(logging.Filter):
    def __init__(self, fragment):
        super().__init__()
        self.fragment = fragment

    def filter(self, record):
        return self.fragment not in record.getMessage()


def _import_with_stderr_captured(module_name, probe_gpus):
    """Imports `module_name` (and lists the GPUs, which logs the CUDA notices, if asked) with
    file descriptor 2 redirected; returns what was written."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            module = __import__(module_name)
            if probe_gpus:
                module.config.list_physical_devices("GPU")
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
        captured.seek(0)
        return captured.read().decode(errors="replace")


def quiet_tensorflow_startup(probe_gpus=False):
    """Imports TensorFlow without its start-up noise; call it before anything imports it.

    probe_gpus: also look for GPUs now, so that the CUDA probe's notices are filtered too (the
        command line does; a notebook leaves that to its profile cell)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    skip_unused_optional_imports()  # 1.5 CPU seconds of Keras's start-up (lean_imports.py)
    if "tensorflow" not in sys.modules:
        captured = _import_with_stderr_captured("tensorflow", probe_gpus)
        kept = [line for line in captured.splitlines() if not STARTUP_NOISE.search(line)]
        if kept:
            print("\n".join(kept), file=sys.stderr)
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(existing, _DropMessages) for existing in absl_logger.filters):
        absl_logger.addFilter(_DropMessages(TFDS_NOT_PREPARED))
