"""`pack` and `install`: release archives of the reference checkpoints, checked on the way in.

The committed quick references stand in for the full ones, which are packed the same way.
"""

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from diffusion_course.checkpoints import read_manifest
from diffusion_course.cli import main
from diffusion_course.references import reference_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ddim", "ddpm")


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def folder_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


def committed(model):
    return REPO_ROOT / reference_checkpoint("quick", model)


def tar_of(path, members):
    """A tar built by hand: `members` maps names to bytes, or to ("symlink", target)."""
    with tarfile.open(path, "w") as tar:
        for name, content in members.items():
            member = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                member.type, member.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(member)
            else:
                member.size = len(content)
                tar.addfile(member, io.BytesIO(content))
    return path


def checkpoint_members(model, folder_name, tamper=None):
    files = {f"{folder_name}/{path.name}": path.read_bytes()
             for path in committed(model).iterdir()}
    if tamper:
        name = f"{folder_name}/network.weights.h5"
        files[name] = files[name][:-1] + bytes([files[name][-1] ^ 1])
    return files


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    assert main(["pack", "--profile", "quick", "--root", str(REPO_ROOT / "data/checkpoints"),
                 "--out", str(out)]) == 0
    return out


def test_pack_writes_one_archive_per_reference_and_their_sums(packed):
    sums = {}
    for line in (packed / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        sums[name] = digest
    assert sums == {f"{model}-quick.tar": sha256_of(packed / f"{model}-quick.tar")
                    for model in MODELS}
    for model in MODELS:
        with tarfile.open(packed / f"{model}-quick.tar") as tar:
            names = sorted(member.name for member in tar.getmembers())
            assert all(member.isfile() for member in tar.getmembers())
        listed = [entry["file"] for entry in read_manifest(committed(model))["networks"].values()]
        # the model card (README.md) travels with the checkpoint it describes
        assert names == sorted(f"{model}-quick/{name}"
                               for name in ["manifest.json", "README.md", *listed])


def test_packing_again_gives_byte_identical_archives(packed, tmp_path):
    assert main(["pack", "--profile", "quick", "--root", str(REPO_ROOT / "data/checkpoints"),
                 "--out", str(tmp_path)]) == 0
    assert folder_bytes(tmp_path) == folder_bytes(packed)


def test_install_puts_the_published_checkpoints_in_place(packed, tmp_path, capsys):
    for model in MODELS:
        assert main(["install", str(packed / f"{model}-quick.tar"), "--sums",
                     str(packed / "SHA256SUMS"), "--root", str(tmp_path)]) == 0
        assert folder_bytes(tmp_path / "quick" / model) == folder_bytes(committed(model))
    assert "Installed" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "quick" / "ddpm"), "--model", "ddpm",
                 "--profile", "quick"]) == 0


def install_over_a_good_copy(packed, root, archive, *published):
    """Installs the good DDIM archive, then `archive`; returns the second exit code."""
    assert main(["install", str(packed / "ddim-quick.tar"), "--sums",
                 str(packed / "SHA256SUMS"), "--root", str(root)]) == 0
    before = folder_bytes(root / "quick" / "ddim")
    code = main(["install", str(archive), *published, "--root", str(root)])
    assert folder_bytes(root / "quick" / "ddim") == before  # nothing already saved is lost
    assert sorted(path.name for path in (root / "quick").iterdir()) == ["ddim"]  # no leftovers
    return code


def test_a_damaged_download_is_refused(packed, tmp_path, capsys):
    truncated = tmp_path / "downloads" / "ddim-quick.tar"
    truncated.parent.mkdir()
    truncated.write_bytes((packed / "ddim-quick.tar").read_bytes()[:-4096])
    code = install_over_a_good_copy(packed, tmp_path / "root", truncated, "--sums",
                                    str(packed / "SHA256SUMS"))
    assert code == 1
    assert "sha256" in capsys.readouterr().err


@pytest.mark.parametrize("members, expected", [
    (lambda: checkpoint_members("ddim", "ddim-quick", tamper=True), "corrupt"),
    (lambda: checkpoint_members("ddim", "ddpm-quick"), "renamed"),
    (lambda: {**checkpoint_members("ddim", "ddim-quick"), "ddim-quick/../../escaped": b"x"},
     "not a file inside one folder"),
    (lambda: {**checkpoint_members("ddim", "ddim-quick"), "ddim-quick/link": ("symlink", "/")},
     "not a file inside one folder"),
    (lambda: {"ddim-quick/manifest.json": b"{"}, "not valid JSON"),
], ids=["tampered-weights", "renamed", "path-traversal", "symlink", "broken-manifest"])
def test_an_archive_that_matches_its_hash_but_not_a_checkpoint_is_refused(
        packed, tmp_path, capsys, members, expected):
    """The hash only proves the archive is what was published; the contents are checked too."""
    archive = tar_of(tmp_path / "ddim-quick.tar", members())
    code = install_over_a_good_copy(packed, tmp_path / "root", archive, "--sha256",
                                    sha256_of(archive))
    assert code == 1
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists()


def test_an_archive_the_sums_do_not_list_is_refused(packed, tmp_path, capsys):
    renamed = shutil.copy(packed / "ddim-quick.tar", tmp_path / "ddim-quick (1).tar")
    assert main(["install", str(renamed), "--sums", str(packed / "SHA256SUMS"),
                 "--root", str(tmp_path / "root")]) == 1
    assert "lists no 'ddim-quick (1).tar'" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_install_needs_the_published_hash(packed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["install", str(packed / "ddim-quick.tar"), "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--sums" in capsys.readouterr().err
