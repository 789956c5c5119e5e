"""Release archives of the reference checkpoints: how the full-profile ones travel outside git.

The full-profile references (~16 MB and ~510 MB) are published as assets of a GitHub release of
the course repository, tagged `references-full-v<N>`. The TA who regenerated them packs them:

    python -m diffusion_course pack --profile full --out dist/
    gh release create references-full-v1 dist/*

which writes one tar per reference (`ddim-full.tar`, `ddpm-full.tar`; weights do not compress)
and `SHA256SUMS`. Everyone else downloads the three files from the release and runs

    python -m diffusion_course install ddim-full.tar --sums SHA256SUMS

which checks the archive's sha256 against the published list, unpacks it into a temporary
folder (the files of one folder only: no links, no paths outside it), verifies it as `verify`
does, and only then swaps it into data/checkpoints/<profile>/<model>, so a bad download never
replaces a good checkpoint. Packing is deterministic: the same checkpoint gives a
byte-identical archive, so re-packing an unchanged release keeps its sums.

Why not `pooch.retrieve(known_hash=...)` or `keras.utils.get_file(file_hash=...)`: what they add
is the download, and here the TA downloads (gh or a browser). What they lack is what this module
does: the hash from the release's SHA256SUMS rather than one pinned in code, packing, the
checkpoint's own verification, and the swap that never leaves a half-installed checkpoint.
"""

import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from diffusion_course.checkpoints import (
    MANIFEST_NAME,
    copy_checkpoint,
    file_sha256,
    read_manifest,
)
from diffusion_course.config import PROFILES
from diffusion_course.model_card import CARD_NAME
from diffusion_course.models import model_name_of
from diffusion_course.references import DEFAULT_ROOT, REFERENCE_RUNS, reference_checkpoint

ARCHIVE_SUFFIX = ".tar"
SUMS_NAME = "SHA256SUMS"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArchiveError(Exception):
    """An archive is damaged, unlisted or not a reference checkpoint (nothing was installed)."""


def archive_name(model, profile):
    """e.g. "ddpm-full.tar"; its one folder is named like it, without the suffix."""
    return f"{model}-{profile}{ARCHIVE_SUFFIX}"


def pack(profile, root=DEFAULT_ROOT, out=Path("dist")):
    """Verifies every reference of `profile` under `root` and writes its archive and the sums
    to `out`. Returns {archive name: sha256}."""
    from diffusion_course.cli.verify import verify

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sums = {}
    for reference in REFERENCE_RUNS[profile]:
        folder = reference_checkpoint(profile, reference.model, root)
        manifest = verify(folder, reference.model, profile)
        path = out / archive_name(reference.model, profile)
        _write_archive(folder, manifest, path)
        sums[path.name] = file_sha256(path)
    _write_atomically(out / SUMS_NAME, "".join(f"{digest}  {name}\n"
                                               for name, digest in sorted(sums.items())))
    return sums


def _write_archive(folder, manifest, path):
    """A plain tar of the manifest and its files in one folder, with fixed owners, modes and
    times, so that its bytes depend on the files' contents only."""
    top = path.name.removesuffix(ARCHIVE_SUFFIX)
    names = [MANIFEST_NAME, *sorted(entry["file"] for entry in manifest["networks"].values())]
    if (Path(folder) / CARD_NAME).is_file():  # the model card travels with its checkpoint
        names.append(CARD_NAME)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name in names:
                member = tarfile.TarInfo(f"{top}/{name}")
                member.size = (Path(folder) / name).stat().st_size
                member.mode = 0o644
                with open(Path(folder) / name, "rb") as file:
                    tar.addfile(member, file)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_atomically(path, text):
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def expected_sha256(archive, sums=None, sha256=None):
    """The published sha256 of `archive`: given directly, or its line in a SHA256SUMS file."""
    if sha256 is not None:
        if not _SHA256.fullmatch(sha256.lower()):
            raise ArchiveError(f"{sha256!r} is not a sha256: 64 hexadecimal digits expected.")
        return sha256.lower()
    if sums is None:
        raise ArchiveError(f"No published sha256 for {archive}: give the release's {SUMS_NAME} "
                           "file or the archive's sha256, so that a damaged or replaced "
                           "download is caught.")
    try:
        lines = Path(sums).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not a text file"
        raise ArchiveError(f"Cannot read the sums file {sums}: {reason}. Give the {SUMS_NAME} "
                           "file downloaded from the release, or the archive's --sha256.") from None
    listed = {}
    for line in lines:
        digest, _, name = line.strip().partition(" ")
        if _SHA256.fullmatch(digest.lower()):
            listed[name.strip().lstrip("*")] = digest.lower()  # "*name": sha256sum's binary mode
    name = Path(archive).name
    if name not in listed:
        raise ArchiveError(f"{sums} lists no {name!r} (it lists {sorted(listed) or 'nothing'}). "
                           "Download the archive and the sums from the same release, and keep "
                           "the archive's file name.")
    return listed[name]


def install(archive, sums=None, sha256=None, root=DEFAULT_ROOT):
    """Checks, unpacks, verifies and installs a reference archive under `root`.

    Returns (the installed folder, its manifest). Raises `ArchiveError` or a checkpoint error,
    leaving `root` as it was, when anything does not check out.
    """
    from diffusion_course.cli.verify import verify

    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive} does not exist or is not a file.")
    expected = expected_sha256(archive, sums, sha256)
    actual = file_sha256(archive)
    if actual != expected:
        raise ArchiveError(f"{archive} is damaged or is not the published file: its sha256 is "
                           f"{actual}, but {expected} was published. Download it again.")
    with tempfile.TemporaryDirectory(prefix="reference-archive-") as temporary:
        folder = _unpack(archive, Path(temporary))
        saved = read_manifest(folder)
        model, profile = model_name_of(saved.get("config_class") or "(none)"), saved["profile"]
        if profile not in PROFILES or folder.name != f"{model}-{profile}":
            raise ArchiveError(f"{archive} holds the folder {folder.name!r}, but its checkpoint "
                               f"is the {model} model of the {profile!r} profile: the archive "
                               "was renamed or packed by hand. Use the release's archives.")
        # sha256s, that profile's architecture and noise schedule, weights that fit
        manifest = verify(folder, model, profile)
        destination = reference_checkpoint(profile, model, root)
        copy_checkpoint(folder, destination)
    return destination, manifest


def _unpack(archive, into):
    """Extracts an archive of one folder of regular files into `into`; returns that folder."""
    try:
        with tarfile.open(archive, "r:") as tar:
            members = [member for member in tar.getmembers() if not member.isdir()]
            folders = {_member_folder(archive, member) for member in members}
            if len(folders) != 1:
                raise ArchiveError(f"{archive} holds {len(folders)} folders, but a reference "
                                   "archive holds exactly one checkpoint folder.")
            folder = into / folders.pop()
            folder.mkdir()
            for member in members:
                target = folder / PurePosixPath(member.name).name
                if target.exists():
                    raise ArchiveError(f"{archive} holds {member.name!r} twice.")
                with tar.extractfile(member) as source, open(target, "xb") as file:
                    shutil.copyfileobj(source, file)
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"{archive} is not a readable tar archive ({error}); it is probably "
                           "truncated. Download it again.") from error
    return folder


def _member_folder(archive, member):
    """The folder of a member of the form FOLDER/FILE, a regular file; anything else is refused."""
    parts = PurePosixPath(member.name).parts
    if (not member.isfile() or len(parts) != 2 or member.name.startswith("/")
            or any(part in (".", "..") for part in parts)):
        raise ArchiveError(f"{archive} holds {member.name!r}, which is not a file inside one "
                           "folder (links and other paths are refused): it is not a reference "
                           "archive. Nothing was installed.")
    return parts[0]
