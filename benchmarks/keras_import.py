"""CPU seconds of a process that imports Keras (TensorFlow backend) and the DDIM model, with and
without `diffusion_course.lean_imports`, alternately, in one run.

    python benchmarks/keras_import.py [--runs 5]

Every grading starts three such processes (the kernel, the student runner, the judge's
evaluation), every command one. It prints the median of each and their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START = """
import resource, sys
if {lean}:
    from diffusion_course.lean_imports import skip_unused_optional_imports
    skip_unused_optional_imports()
import keras
import diffusion_course.ddim
usage = resource.getrusage(resource.RUSAGE_SELF)
print(usage.ru_utime + usage.ru_stime)
"""


def cpu_seconds(lean):
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", START.format(lean=lean)], env=environment,
                            capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return float(result.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    seconds = {False: [], True: []}
    for _ in range(runs):
        for lean in (False, True):
            seconds[lean].append(cpu_seconds(lean))
    plain, lean = (statistics.median(seconds[mode]) for mode in (False, True))
    print(f"import keras + diffusion_course.ddim, median of {runs} (CPU s): "
          f"plain {plain:.2f}, lean {lean:.2f}, ratio {lean / plain:.2f} "
          f"({plain - lean:.2f} s saved per process)")


if __name__ == "__main__":
    main()
