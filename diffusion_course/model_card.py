"""A Hugging Face style model card for a checkpoint, written from its manifest alone.

The card is `README.md` beside the checkpoint's files: YAML front matter (library, tags, and the
measured KID as a `model-index` result), then the sections of the published DDIM model's card
(huggingface.co/keras-io/denoising-diffusion-implicit-models): description, intended uses,
training data, training procedure, and a table of
hyperparameters. Everything in it comes from `manifest.json`, so regenerating the checkpoint
and then the card keeps the two in agreement.

    write_model_card("data/checkpoints/quick/ddim")   # -> data/checkpoints/quick/ddim/README.md

Why not huggingface_hub's `ModelCard`/`ModelCardData`: they would render the same text and YAML
from a template, at the cost of a dependency (with its HTTP and cache stack) for string
formatting; nothing here talks to the Hub. The Hub reads our cards as its own: huggingface_hub
2.5.0's `ModelCard.load` parses both committed cards, library, tags and KID result included.
"""

import dataclasses
import json
from pathlib import Path

from diffusion_course.checkpoints import read_manifest
from diffusion_course.models import model_name_of

CARD_NAME = "README.md"
KERAS_DDIM_EXAMPLE = "https://keras.io/examples/generative/ddim/"
KERAS_DDPM_EXAMPLE = "https://keras.io/examples/generative/ddpm/"

# the table's names for the configuration's fields, as in that published card; other fields get
# their own name with spaces. Options that change speed, not the model, are left out.
HYPERPARAMETER_NAMES = {
    "num_epochs": "num epochs",
    "dataset_repetitions": "dataset repetitions per epoch",
    "image_size": "image resolution",
    "embedding_dims": "embedding dimensions",
    "widths": "block widths",
    "ema": "exponential moving average",
}
NOT_HYPERPARAMETERS = ("profile", "jit_compile", "mixed_precision", "kid_image_size",
                       "kid_diffusion_steps", "plot_diffusion_steps")
OPTIMIZERS = {"ddim": "[AdamW](https://arxiv.org/abs/1711.05101)",
              "ddpm": "[Adam](https://arxiv.org/abs/1412.6980)"}

DESCRIPTIONS = {
    "ddim": (
        "A [denoising diffusion implicit model (DDIM)](https://arxiv.org/abs/2010.02502) in "
        "continuous time. The network is a [U-Net](https://arxiv.org/abs/1505.04597) with "
        "identical input and output dimensions. It progressively downsamples and upsamples its "
        "input image, adding skip connections between layers of the same resolution. The "
        "architecture is a simplified version of the architecture of "
        "[DDPM](https://arxiv.org/abs/2006.11239): convolutional residual blocks, no attention "
        "layers. The network takes two inputs, the noisy images and the variances of their "
        "noise components, which it encodes with "
        "[sinusoidal embeddings](https://arxiv.org/abs/1706.03762)."),
    "ddpm": (
        "A [denoising diffusion probabilistic model (DDPM)](https://arxiv.org/abs/2006.11239) "
        "with discrete timesteps and a linear schedule of noise variances. The network is a "
        "[U-Net](https://arxiv.org/abs/1505.04597) of residual blocks with group "
        "normalization, with self-attention at the resolutions marked in the table below; it "
        "takes the noisy images and their timestep, which it encodes with "
        "[sinusoidal embeddings](https://arxiv.org/abs/1706.03762), and predicts the noise."),
}


def write_model_card(checkpoint):
    """Writes `README.md` into the checkpoint folder; returns its path."""
    checkpoint = Path(checkpoint)
    card = model_card(read_manifest(checkpoint), checkpoint)
    path = checkpoint / CARD_NAME
    path.write_text(card, encoding="utf-8")
    return path


def model_card(manifest, checkpoint_path="CHECKPOINT"):
    """The card's text for a checkpoint's manifest."""
    model_name = model_name_of(manifest["config_class"])
    extra = manifest.get("extra") or {}
    sections = [
        front_matter(manifest, model_name),
        f"This model was trained with `diffusion_course`, the teaching kit of a course on "
        f"diffusion models, as the {'DDIM assignment' if model_name == 'ddim' else 'DDPM lab'}"
        f"'s model ({manifest['profile']} profile). It follows the Keras code example on "
        f"[{model_name.upper()}]"
        f"({KERAS_DDIM_EXAMPLE if model_name == 'ddim' else KERAS_DDPM_EXAMPLE}).",
        "## Model description\n\n" + DESCRIPTIONS[model_name],
        "## Intended uses & limitations\n\n" + intended_uses(manifest),
        "## Training and evaluation data\n\n" + training_data(extra.get("run", {})),
        "## Training procedure\n\n" + training_procedure(manifest, model_name, checkpoint_path),
        "## Evaluation\n\n" + evaluation(manifest, model_name),
        "## Training hyperparameters\n\n" + hyperparameter_table(manifest, model_name),
        "## Files\n\n" + files_table(manifest),
    ]
    return "\n\n".join(sections) + "\n"


def front_matter(manifest, model_name):
    """YAML between `---` lines; strings are JSON-quoted, which YAML reads as they are."""
    kid = (manifest.get("extra") or {}).get("kid")
    lines = ["---", "library_name: keras", "tags:"]
    lines += [f"- {tag}" for tag in ("generative", "denoising", "diffusion", model_name,
                                     "unconditional-image-generation")]
    if kid:
        data = (manifest["extra"].get("run") or {}).get("data", "unknown")
        name = f"diffusion_course {model_name} ({manifest['profile']} profile)"
        lines += [
            "model-index:",
            f"- name: {json.dumps(name)}",
            "  results:",
            "  - task:",
            "      type: unconditional-image-generation",
            "    dataset:",
            f"      name: {json.dumps(data)}",
            f"      type: {json.dumps(data)}",
            "    metrics:",
            "    - type: kid",
            f"      value: {kid['value']!r}",
            f"      name: {json.dumps('KID, features: ' + kid['features'])}",
        ]
    return "\n".join(lines + ["---"])


def intended_uses(manifest):
    text = ("The model is intended for educational purposes, as a simple example of denoising "
            "diffusion generative models. It has modest compute requirements.")
    run = (manifest.get("extra") or {}).get("run", {})
    if manifest["profile"] == "quick":
        text += (f"\n\nThis is a **quick-profile** checkpoint: a tiny network trained for "
                 f"{manifest['step']:,} steps on a CPU, a smoke reference for tests, the labs "
                 "and the autograder. Its samples are not meant to resemble photographs.")
    if run.get("data") == "synthetic":
        text += (" It was trained on synthetic flower-like images, not on a photo dataset, so "
                 "it generates nothing but such drawings.")
    return text


def training_data(run):
    source = run.get("data")
    if source is None:
        return "The manifest does not record the training data."
    if source == "synthetic":
        return ("Synthetic flower-like images (`diffusion_course.synthetic`: petals around a "
                "centre on a gradient background, random colours, sizes and positions), made "
                "on the fly because the machines that build the course have no internet. "
                "Training and validation images come from different seeds.")
    from diffusion_course.data import parse_source
    from diffusion_course.datasets import tfds_dataset

    kind, location = parse_source(source)
    if kind == "folder":
        return (f"The JPEG/PNG images of the folder `{location}`, split 80% for training and "
                "20% for validation (always the same files). Centre crops.")
    dataset = tfds_dataset(location)
    splits = (f"Training split `{dataset.train_split}` "
              f"(the DDPM lab trains on `{dataset.ddpm_train_split}`), validation split "
              f"`{dataset.validation_split}`.")
    return (f"[{dataset.title}]({dataset.catalog_url}) through tensorflow-datasets "
            f"(`{dataset.name}`): {dataset.description}\n\n{splits}")


def training_procedure(manifest, model_name, checkpoint_path):
    extra = manifest.get("extra") or {}
    training = extra.get("training", {})
    run = extra.get("run", {})
    objective = ("The model is trained to denoise noisy images, and generates images by "
                 "iteratively denoising pure Gaussian noise.")
    facts = [f"- training steps: {manifest['step']:,}"]
    if "epochs" in training:
        facts.append(f"- epochs: {training['epochs']}"
                     + (f" of {run['steps_per_epoch']} steps" if run.get("steps_per_epoch")
                        else ""))
    if "wall_time_s" in training:
        facts.append(f"- wall time of training: {format_duration(training['wall_time_s'])}")
    facts.append(f"- seed: {manifest['seed']}")
    if extra.get("made_by"):
        facts.append(f"- made by: `{extra['made_by']}`")
    versions = manifest.get("versions", {})
    if versions:
        facts.append("- software: " + ", ".join(
            f"{name} {versions[name]}" for name in ("keras", "tensorflow", "diffusion_course")
            if name in versions) + f" (backend: {versions.get('backend', 'unknown')})")
    usage = (f"To sample from it: `python -m diffusion_course sample {checkpoint_path} --out "
             "samples.png`; to measure it: `python -m diffusion_course evaluate "
             f"{checkpoint_path}`.")
    return "\n\n".join([objective, "\n".join(facts), usage])


def evaluation(manifest, model_name):
    from diffusion_course.cli.common import preview_steps
    from diffusion_course.models import config_from_manifest

    kid = (manifest.get("extra") or {}).get("kid")
    if not kid:
        return "No KID was recorded for this checkpoint."
    steps = preview_steps(config_from_manifest(manifest))[0]
    return (f"[Kernel Inception Distance (KID)](https://arxiv.org/abs/1801.01401) against the "
            f"validation images, measured after epoch {kid['epoch']} on images generated with "
            f"{steps} deterministic DDIM steps (lower is better):\n\n"
            f"| metric | value | feature extractor |\n| :-- | :-- | :-- |\n"
            f"| KID | {kid['value']:.4g} | {kid['features']} |\n\n"
            "KID values are comparable only between measurements with the same feature "
            "extractor and image size.")


def hyperparameter_table(manifest, model_name):
    """One row per configuration field, in the configuration's order, then the seed."""
    from diffusion_course.models import config_class

    rows = [("Hyperparameters", "Value"), (":--", ":--")]
    config = manifest["config"]
    for field in dataclasses.fields(config_class(model_name)):
        if field.name in NOT_HYPERPARAMETERS or field.name not in config:
            continue
        field, value = field.name, config[field.name]
        rows.append((HYPERPARAMETER_NAMES.get(field, field.replace("_", " ")),
                     format_value(value)))
        if field == "ema":
            rows.append(("optimizer", OPTIMIZERS[model_name]))
    rows.append(("seed", str(manifest["seed"])))
    return "\n".join(f"| {name} | {value} |" for name, value in rows)


def files_table(manifest):
    rows = ["| file | size | sha256 |", "| :-- | --: | :-- |"]
    rows += [f"| `{entry['file']}` | {entry['size_bytes']:,} bytes | `{entry['sha256']}` |"
             for entry in manifest["networks"].values()]
    return ("The networks' weights (Keras 3 `.weights.h5`), listed in `manifest.json`, which "
            "also holds the full configuration and the training record:\n\n" + "\n".join(rows))


def format_value(value):
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_duration(seconds):
    """"19.5 s", "3 min 8 s (187.7 s)", "2 h 5 min (7512.0 s)"."""
    if seconds < 60:
        return f"{seconds} s"
    minutes, whole_seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    readable = f"{hours} h {minutes} min" if hours else f"{minutes} min {whole_seconds} s"
    return f"{readable} ({seconds} s)"
