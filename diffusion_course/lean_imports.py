"""A leaner TensorFlow and Keras start-up: optional imports that this kit never uses, skipped.

Importing Keras on the TensorFlow backend (and the course's model) costs about 5 CPU seconds
on a 2-core machine, and 1.9 s of that goes to packages that are imported only because they
are installed:

- scikit-learn (0.8 s): `keras.wrappers` defines scikit-learn estimators;
- JAX (0.4 s, where it is installed): `tf.lite`'s converter can take JAX functions, and
  Keras's Orbax checkpoint callback patches a JAX function (on the JAX backend, JAX is
  imported before either, and nothing changes);
- matplotlib and OpenCV (0.4 s): `keras.visualization` draws galleries and bounding boxes
  with them (the kit draws its own pictures with matplotlib, which it imports when it plots).

Each of these importers tries the import and goes on without the package when it fails. The
finder below makes exactly those importers fail: every other importer, a student's notebook
cell included, imports these packages as usual. What a process loses when it calls
`skip_unused_optional_imports()` before its first Keras import: Keras's scikit-learn
estimators, tf.lite's JAX conversion, the Orbax callback's patch and `keras.visualization`.
The kit's processes call it where they start: `quiet_tensorflow_startup()` (the notebooks,
and so the grading kernel), the command line, the student runner and the judge.

    python benchmarks/keras_import.py   # the CPU seconds of `import keras`, with and without
"""

import importlib.abc
import sys

# optional package: the modules whose `try: import ...` may go without it
UNUSED_OPTIONAL_IMPORTS = {
    "sklearn": ("keras.src.wrappers.",),
    "jax": ("tensorflow.lite.", "keras.src.callbacks.orbax_checkpoint"),
    "matplotlib": ("keras.src.visualization.",),
    "cv2": ("keras.src.visualization.",),
}
_IMPORT_MACHINERY = ("importlib", "_frozen_importlib", "_frozen_importlib_external")


def _importing_module():
    """The `__name__` of the module whose code runs the import that is being looked up."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != __name__ and not name.startswith(_IMPORT_MACHINERY):
            return name
        frame = frame.f_back
    return ""


class _SkipForImporters(importlib.abc.MetaPathFinder):
    """Tells the importers in UNUSED_OPTIONAL_IMPORTS that their optional package is missing."""

    def find_spec(self, fullname, path=None, target=None):
        importers = UNUSED_OPTIONAL_IMPORTS.get(fullname.partition(".")[0])
        if importers and _importing_module().startswith(importers):
            raise ModuleNotFoundError(
                f"{fullname} is skipped for {_importing_module()} (diffusion_course.lean_imports)",
                name=fullname)
        return None


def skip_unused_optional_imports():
    """Installs the finder (once); call it before the process first imports TensorFlow."""
    if not any(isinstance(finder, _SkipForImporters) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SkipForImporters())
