"""A fingerprint of the code that makes a reference checkpoint, to tell when the two drift apart.

A reference checkpoint is what `python -m diffusion_course references` trains. Regenerating the
quick ones takes minutes, the full ones hours, too long for CI to check that they still come out
of today's code. Instead, the references record the sha256 of the code that trained them (this
module's `training_fingerprint`, in the manifest's `extra`), and a fast test recomputes it: any
change to that code that could change the weights, or which checkpoint is the best, fails the
test until the references are regenerated.

The fingerprint covers the modules that build, train, evaluate (KID picks the best checkpoint)
and save a model, including the configuration's profiles and the reference runs' table. Each is
hashed as its syntax tree without docstrings, so comments and docstrings can change freely.
It does not cover the library versions (requirements.txt pins them; the manifest records them)
or the machine: two CPUs may round differently, so it vouches for the code, not for bytes.
"""

import ast
import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
SHARED_MODULES = (
    "checkpoints.py", "config.py", "data.py", "datasets.py", "devices.py", "kid.py",
    "models.py", "references.py", "runtime.py", "synthetic.py", "training.py",
    "training_state.py", "cli/train.py", "cli/training_run.py", "networks/__init__.py",
    "networks/ema.py", "networks/embeddings.py",
)
# the modules of each model; the DDIM model samples its KID images with continuous_samplers.py
MODEL_MODULES = {
    "ddim": ("ddim.py", "configurable_ddim.py", "losses.py", "parametrizations.py",
             "schedules.py", "samplers.py", "continuous_samplers.py", "multistep_weights.py",
             "networks/residual_unet.py"),
    "ddpm": ("ddpm.py", "gaussian_diffusion.py", "samplers.py", "networks/attention_unet.py"),
}


def without_docstrings(tree):
    """The tree with the docstring of the module and of every class and function removed."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def training_fingerprint(model, package_root=PACKAGE_ROOT):
    """sha256 of the code that trains the reference of `model` ("ddim" or "ddpm")."""
    digest = hashlib.sha256()
    for relative in sorted({*SHARED_MODULES, *MODEL_MODULES[model]}):
        source = (Path(package_root) / relative).read_text(encoding="utf-8")
        digest.update(relative.encode())
        digest.update(ast.dump(without_docstrings(ast.parse(source))).encode())
    return digest.hexdigest()
