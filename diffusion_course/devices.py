"""Which accelerator the active Keras backend sees, and the speed options that follow from it."""

import contextlib

import keras

MIXED_POLICY = "mixed_float16"


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


def network_dtype_policy(setting):
    """The networks' dtype policy for a `mixed_precision` setting.

    "mixed_float16" keeps the weights in float32 and computes in float16 (Micikevicius et al.
    2018, "Mixed precision training"), which roughly halves the memory traffic on a GPU.
    """
    return MIXED_POLICY if resolve_mixed_precision(setting) else "float32"


@contextlib.contextmanager
def dtype_policy(name):
    """Layers created inside this block take the dtype policy `name`.

    Keras has only a global policy; the models build their networks in this block, so that the
    rest of the process (the normalizer, the KID network, the loss) stays float32.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_loss_scaling(optimizer, network):
    """Wraps `optimizer` in dynamic loss scaling when `network` computes in float16.

    Small float16 gradients underflow to zero; the loss is multiplied by a large factor before
    differentiation and the gradients divided by it after (Micikevicius et al. 2018, section 3.2).
    Keras's train step calls `optimizer.scale_loss` on every backend.
    """
    if network.dtype_policy.name != MIXED_POLICY:
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
