"""Which accelerator the active Keras backend sees, and what that implies for speed options."""

import keras


def has_gpu():
    """True when the active Keras backend has a GPU to run on."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def resolve_jit_compile(setting):
    """`"auto"` compiles with XLA on a GPU, and on a CPU only under JAX (always compiled)."""
    if setting != "auto":
        return bool(setting)
    return has_gpu() or keras.backend.backend() == "jax"


def resolve_mixed_precision(setting):
    """`"auto"` uses float16 compute only on a GPU: on a CPU it is slower, not faster."""
    if setting != "auto":
        return bool(setting)
    return has_gpu()
