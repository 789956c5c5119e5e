"""TensorFlow's start-up log lines, filtered out of a command's output; real errors kept.

Importing TensorFlow 2.21 prints absl, oneDNN, CPU-feature and CUDA notices straight to the
process's stderr (file descriptor 2) from C++, before `TF_CPP_MIN_LOG_LEVEL` takes effect, so
Python cannot catch them. `import_tensorflow_quietly` imports it (and looks for GPUs, which logs
the CUDA ones) with descriptor 2 pointing to a temporary file, then writes back every line that
is not one of the known notices: an error at start-up still shows.
"""

import os
import re
import sys
import tempfile

# the informational notices: absl's pre-init banner, I/W-level lines, and the CUDA probe's
# "failed call to cuInit" on a machine without a GPU
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]"
    r"|E\d{4} [\d:. ]+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
    r"|To enable the following instructions: .* rebuild TensorFlow")


def import_tensorflow_quietly():
    """Imports TensorFlow and probes for GPUs, writing back only the lines that are not noise."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines()
            kept = [line for line in lines if not NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
