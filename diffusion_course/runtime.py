"""Process-wide TensorFlow settings that a training run fixes first: threads, seeds, determinism.

TensorFlow fixes its threads when it runs its first op, so a run calls `configure_cpu_threads`
before anything else, then `make_deterministic`.
"""


def configure_cpu_threads(profile):
    """Runs each TensorFlow op on one thread for the quick profile on a CPU; returns the number
    of threads per op (0: TensorFlow's default, one per core).

    The quick networks' ops are too small to split between cores: with one thread per op (ops
    still run side by side) a 2-core CPU trains them 1.3-1.5x faster, while the full profile's
    convolutions get slower (0.31 instead of 0.41 DDIM steps/s). Once TensorFlow has started
    this changes nothing.
    """
    import tensorflow as tf

    from diffusion_course.devices import has_gpu

    threads = 1 if profile == "quick" and not has_gpu() else 0
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow has started already: keep what it has
        return tf.config.threading.get_intra_op_parallelism_threads()
    return threads


def seed_everything(seed):
    """Seeds Python, NumPy, TensorFlow and Keras. tf.data's shuffles depend on TensorFlow's
    global seed too, so it must be set before any dataset is made."""
    import keras

    keras.utils.set_random_seed(int(seed))


def make_deterministic(seed):
    """Seeds everything, and makes TensorFlow's ops deterministic."""
    import tensorflow as tf

    seed_everything(seed)
    # without it, multithreaded kernels may sum in a different order in each run, and two runs
    # with one seed would drift apart after a few steps (and a resumed run from an unbroken one)
    tf.config.experimental.enable_op_determinism()
