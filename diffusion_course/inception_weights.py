"""Where KID's InceptionV3 ImageNet weights are looked up, without importing Keras.

`kid.py` loads the weights; this module only names them and their place in the Keras cache, so
that a process can tell which KID features it would use (the grader's cache keys name them)
without starting TensorFlow.
"""

import os

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    + INCEPTION_WEIGHTS_FILE
)


# Why not Keras's own cache lookup (`keras.utils.get_file(..., file_hash=...)`): it has no
# look-up-only mode, so offline it tries a download, and a cached file with the wrong hash is
# re-downloaded, and offline deleted. Ours only looks, keeps a bad file and says what to do.
def inception_weights_cache_dir():
    """Where Keras caches the weights: `$KERAS_HOME/models`, with `~/.keras` as KERAS_HOME.

    Read at call time (Keras itself reads KERAS_HOME once, at import), following the rules of
    `keras.utils.get_file`, which falls back to /tmp/.keras when the folder is not writable.
    """
    keras_home = os.environ.get("KERAS_HOME")
    if keras_home is None:
        home = os.path.expanduser("~")
        keras_home = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    keras_home = os.path.expanduser(keras_home)
    if not os.access(keras_home, os.W_OK):
        keras_home = os.path.join("/tmp", ".keras")
    return os.path.join(keras_home, "models")


def inception_weights_cached():
    """Whether the weights are in the Keras cache (a download is never tried here)."""
    return os.path.isfile(os.path.join(inception_weights_cache_dir(), INCEPTION_WEIGHTS_FILE))
