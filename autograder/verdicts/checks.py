"""What every verdict is made of: the Verdict, a list of checks, and reading a probe's record.

The records come from the student runner, a process that student code controlled: every
helper here treats them as untrusted data and turns anything unexpected into `Unusable`.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Verdict:
    """The outcome of one graded test cell."""

    passed: bool
    score_fraction: float  # the share of the cell's checks that passed (training: 0 or 1)
    message: str



class Unusable(Exception):
    """The function cannot be judged at all (it raised, or returned the wrong kind of thing)."""


class Checks:
    """The checks of one test cell; the verdict lists every failure."""

    def __init__(self, function_name):
        self.function_name = function_name
        self.count = 0
        self.failures = []

    def expect(self, condition, failure_message):
        self.count += 1
        if not condition:
            self.failures.append(failure_message)

    def verdict(self):
        if not self.failures:
            return Verdict(True, 1.0, f"{self.function_name}: all {self.count} checks passed.")
        passed = self.count - len(self.failures)
        return Verdict(False, round(passed / self.count, 3),
                       f"{self.function_name}: {len(self.failures)} of {self.count} checks "
                       "failed:\n- " + "\n- ".join(self.failures))


def error_text(error):
    """What a recorded error says, as a verb phrase: "raised ValueError: ... (at line 3 ...)"."""
    if error["type"] == "NotImplementedError":
        text = ("still raises NotImplementedError: replace the `raise NotImplementedError()` "
                "in its cell with your code")
    else:
        text = f"raised {error['type']}: {error['message']}"
    if error.get("where"):
        text += f" (at {error['where']})"
    return text


def returned(record, what):
    """The value a probe recorded, or `Unusable` saying why there is none."""
    if record is None:
        raise Unusable(f"the grader got no result for {what}")
    if "error" in record:
        raise Unusable(f"{what} {error_text(record['error'])}")
    return record["returned"]


def tensor(value, what):
    """A recorded tensor as a float64 array (or `Unusable`)."""
    if value.get("kind") != "tensor" or value.get("value") is None:
        raise Unusable(f"{what} should be a tensor, got a {value.get('kind')}")
    return np.asarray(value["value"], np.float64)


def pair(record, what, names):
    """The two tensors of a returned (a, b) pair, with their recorded dtypes."""
    value = returned(record, what)
    items = value.get("items")
    if items is None or len(items) != 2:
        count = "" if items is None else f" of {len(items)} items"
        raise Unusable(f"{what} should return the pair ({', '.join(names)}), got a "
                        f"{value.get('kind')}{count}")
    return [(tensor(item, f"{name} returned by {what}"), item.get("dtype"))
            for item, name in zip(items, names)]


def close(actual, expected, tolerance=1e-5):
    """Same shape (after broadcasting a batch of scalars) and equal within the tolerance."""
    try:
        actual, expected = np.broadcast_arrays(actual, expected)
    except ValueError:
        return False
    return bool(np.all(np.abs(actual - expected) <= tolerance + tolerance * np.abs(expected)))


def largest_difference(actual, expected):
    try:
        return float(np.max(np.abs(np.subtract(actual, expected))))
    except ValueError:
        return float("inf")


def rounded(values, digits=3):
    return np.round(np.asarray(values, np.float64).ravel(), digits).tolist()
