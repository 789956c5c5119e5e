"""`python -m diffusion_course COMMAND`: see `diffusion_course.cli`."""

import os
import sys

# TensorFlow's C++ start-up notices would bury the command's own output
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from diffusion_course.lean_imports import skip_unused_optional_imports  # noqa: E402

skip_unused_optional_imports()  # 1.5 CPU seconds of each command's Keras start-up

from diffusion_course.cli import main  # noqa: E402

sys.exit(main())
