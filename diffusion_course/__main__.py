"""`python -m diffusion_course COMMAND`: see `diffusion_course.cli`."""

import os
import sys

# TensorFlow's C++ start-up notices would bury the command's own output
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from diffusion_course.cli import main  # noqa: E402

sys.exit(main())
