"""The `card` command: a model card generated from a checkpoint's manifest, and the committed
cards of the quick references, which must match their manifests."""

import shutil
from pathlib import Path

import pytest
import yaml

from diffusion_course.checkpoints import read_manifest
from diffusion_course.cli import main
from diffusion_course.model_card import CARD_NAME, model_card

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK_REFERENCES = ["data/checkpoints/quick/ddim", "data/checkpoints/quick/ddpm"]


def card_parts(text):
    """(front matter as parsed by PyYAML, markdown body)."""
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def table_rows(body, heading):
    """{first cell: second cell} of the first table after `heading`."""
    lines = body.split(heading, 1)[1].splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return {row[0]: row[1] for row in table[2:]}  # after the header and the alignment row


@pytest.mark.parametrize("reference", QUICK_REFERENCES)
def test_card_command_writes_a_card_from_the_manifest(reference, tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(REPO_ROOT / reference, checkpoint)
    (checkpoint / CARD_NAME).unlink(missing_ok=True)
    assert main(["card", str(checkpoint)]) == 0
    assert "Model card written" in capsys.readouterr().out

    manifest = read_manifest(checkpoint)
    front, body = card_parts((checkpoint / CARD_NAME).read_text(encoding="utf-8"))
    assert front["library_name"] == "keras"
    assert manifest["config_class"][:4].lower() in front["tags"]
    metric = front["model-index"][0]["results"][0]["metrics"][0]
    assert metric["type"] == "kid" and metric["value"] == manifest["extra"]["kid"]["value"]
    assert manifest["extra"]["kid"]["features"] in metric["name"]

    for heading in ("## Model description", "## Intended uses & limitations",
                    "## Training and evaluation data", "## Training procedure",
                    "## Evaluation", "## Training hyperparameters"):
        assert heading in body
    hyperparameters = table_rows(body, "## Training hyperparameters")
    config = manifest["config"]
    assert hyperparameters["batch size"] == str(config["batch_size"])
    assert hyperparameters["image resolution"] == str(config["image_size"])
    assert hyperparameters["block widths"] == ", ".join(map(str, config["widths"]))
    assert float(hyperparameters["learning rate"]) == config["learning_rate"]
    assert float(hyperparameters["exponential moving average"]) == config["ema"]
    assert hyperparameters["seed"] == str(manifest["seed"])
    assert "jit compile" not in hyperparameters  # a speed option, not a hyperparameter
    assert f"training steps: {manifest['step']:,}" in body
    assert f"{manifest['extra']['training']['wall_time_s']} s" in body
    assert f"{manifest['extra']['kid']['value']:.4g}" in body
    assert "synthetic flower-like images" in body  # the quick references' data


@pytest.mark.parametrize("reference", QUICK_REFERENCES)
def test_committed_reference_cards_match_their_manifests(reference):
    checkpoint = REPO_ROOT / reference
    expected = model_card(read_manifest(checkpoint), reference)
    assert (checkpoint / CARD_NAME).read_text(encoding="utf-8") == expected, (
        f"{reference}/{CARD_NAME} is out of date: run `python -m diffusion_course card "
        f"{reference}` from the repository root")


def test_a_card_names_a_tfds_dataset_and_its_splits():
    manifest = read_manifest(REPO_ROOT / QUICK_REFERENCES[0])
    manifest["extra"]["run"]["data"] = "tfds:caltech_birds2011"
    body = card_parts(model_card(manifest))[1]
    assert "[Caltech-UCSD Birds 200 (2011)]" in body and "bounding box" in body
    assert "validation split `test`" in body


def test_card_of_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["card", str(tmp_path / "nothing")]) == 1
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
