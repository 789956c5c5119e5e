"""The messages between a student runner and the judge: JSON with raw arrays, over a pipe.

The runner writes to a pipe that the trusted side created (its stdout), never to a file that
another process could read, replace or link. Each message is

    4 bytes   big-endian length of the header
    header    JSON: {"event": ..., ..., "arrays": [{"dtype": "float32", "shape": [3, 16]}, ...]}
    data      the arrays' raw bytes, in that order, C order, little-endian

and in the JSON an array appears as {"array": index}. The reader trusts nothing in it: the
dtype must be a plain number type, every size is checked against a cap before anything is
read, nothing is decompressed, nothing is unpickled. Runner side: `write_message`; trusted
side: `read_message`.
"""

import json
import struct

import numpy as np

DTYPES = ("bool", "uint8", "int32", "int64", "float16", "float32", "float64")
MAX_HEADER_BYTES = 8 * 2**20
MAX_DIMENSIONS = 8
HEADER_LENGTH = struct.Struct(">I")


class MalformedMessage(ValueError):
    """The runner's output does not follow the format, or exceeds a cap."""


class ArrayStore:
    """Collects a message's arrays; the JSON holds {"array": index} in their place."""

    def __init__(self):
        self.arrays = []

    def add(self, value):
        self.arrays.append(np.array(value, order="C"))
        return {"array": len(self.arrays) - 1}


def write_message(stream, body, store=None):
    """Writes one message: `body` (JSON-ready) and the arrays of `store`."""
    arrays = store.arrays if store is not None else []
    for array in arrays:
        if array.dtype.name not in DTYPES:
            raise TypeError(f"cannot send an array of dtype {array.dtype}")
    header = json.dumps({**body, "arrays": [{"dtype": array.dtype.name,
                                             "shape": list(array.shape)}
                                            for array in arrays]}).encode()
    stream.write(HEADER_LENGTH.pack(len(header)) + header)
    for array in arrays:
        stream.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    stream.flush()


def _read_exactly(stream, count):
    chunks, left = [], count
    while left:
        chunk = stream.read(min(left, 2**20))
        if not chunk:
            raise EOFError(f"the runner's output ended {left} bytes early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _array_size(description, budget):
    """(dtype, shape, bytes) of one declared array, refused if it does not fit `budget`."""
    try:
        dtype = np.dtype(description["dtype"]).newbyteorder("<")
        shape = tuple(description["shape"])
    except (KeyError, TypeError) as error:
        raise MalformedMessage(f"an array is described as {str(description)[:100]}") from error
    if (dtype.name not in DTYPES or len(shape) > MAX_DIMENSIONS
            or not all(type(size) is int and size >= 0 for size in shape)):
        raise MalformedMessage(f"an array has dtype {dtype.name} and shape {shape[:10]}")
    size = dtype.itemsize
    for dimension in shape:
        size *= dimension
        if size > budget:
            raise MalformedMessage(f"an array of shape {shape} exceeds the {budget}-byte cap")
    return dtype, shape, size


def read_message(stream, max_bytes):
    """The next message as a JSON value with its arrays in place, or None at the end.

    Raises MalformedMessage (or EOFError for a cut message) when it breaks the format or
    would take more than `max_bytes` in all.
    """
    prefix = stream.read(HEADER_LENGTH.size)
    if not prefix:
        return None
    if len(prefix) != HEADER_LENGTH.size:
        raise EOFError("the runner's output ended inside a message")
    (header_length,) = HEADER_LENGTH.unpack(prefix)
    if header_length > min(MAX_HEADER_BYTES, max_bytes):
        raise MalformedMessage(f"a message header of {header_length} bytes exceeds the cap")
    try:
        header = json.loads(_read_exactly(stream, header_length))
        descriptions = header.pop("arrays")
        if not isinstance(descriptions, list):
            raise TypeError("arrays is not a list")
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise MalformedMessage(f"a message header is not valid ({error})") from None
    budget = max_bytes - header_length
    arrays = []
    for description in descriptions:
        dtype, shape, size = _array_size(description, budget)
        budget -= size
        arrays.append(np.frombuffer(_read_exactly(stream, size), dtype).reshape(shape))

    def with_arrays(node):
        if isinstance(node, dict) and set(node) == {"array"}:
            index = node["array"]
            return arrays[index] if type(index) is int and 0 <= index < len(arrays) else None
        if isinstance(node, dict):
            return {key: with_arrays(value) for key, value in node.items()}
        if isinstance(node, list):
            return [with_arrays(item) for item in node]
        return node

    return with_arrays(header)
