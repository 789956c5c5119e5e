"""Replacing a checkpoint folder so that a kill at any moment never destroys the previous one.

`replace_atomically` is the swap behind `save_checkpoint` and `copy_checkpoint`:

1. everything is written into a new sibling folder `.tmp-<name>-<random>` and flushed to disk;
2. the previous folder `<name>` is renamed aside to `.old-<name>-<random>`;
3. the new folder is renamed to `<name>`;
4. the old copy is deleted.

A rename within one file system is atomic, so at every instant one complete folder exists:
at `<name>`, or, only between steps 2 and 3, at `.old-<name>-<random>`. A reader can find that
aside copy with `newest_aside`, and the next replacement renames it back before it starts and
deletes leftover `.tmp-`/`.old-` folders. One process at a time may replace a given folder, and
a replacement refuses to replace a non-empty folder without the `marker` file that every complete
folder holds (a checkpoint's manifest), or a symbolic link.
"""

import os
import re
import secrets
import shutil


def replace_atomically(directory, write_files, marker, wrap_error):
    """Steps 1-4 of the module docstring: `write_files(temporary)` fills a new sibling folder,
    which is flushed and then swapped in for `directory` (a `Path`, absolute).

    `wrap_error(directory, error)` turns an `OSError` of the file system into the exception to
    raise; the refusals to replace other files, and those of `write_files`, are raised as they are.
    """
    _refuse_to_replace_other_files(directory, marker)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        _finish_interrupted_saves(directory, marker)
        temporary = _new_sibling(directory, "tmp")
        os.mkdir(temporary)
    except OSError as error:
        raise wrap_error(directory, error) from error
    try:
        write_files(temporary)
        fsync(temporary)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, FileExistsError):
            raise wrap_error(directory, error) from error
        raise
    try:
        _swap_into_place(temporary, directory)
    except OSError as error:
        raise wrap_error(directory, error) from error


def newest_aside(directory, marker):
    """The newest complete copy (one holding `marker`) that a killed save left renamed aside, or
    None."""
    complete = [path for path in _siblings(directory, "old") if (path / marker).is_file()]
    return max(complete, key=lambda path: path.stat().st_mtime, default=None)


def fsync(path):
    """Flushes a file, or a folder's entries, to disk."""
    if os.name == "nt" and path.is_dir():
        return  # Windows cannot open folders; NTFS journals renames itself
    descriptor = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _swap_into_place(temporary, directory):
    """Steps 2-4 of the module docstring: old aside, new in, old deleted."""
    aside = None
    if directory.exists():
        aside = _new_sibling(directory, "old")
        _rename(directory, aside)
    try:
        _rename(temporary, directory)
    except BaseException:
        if aside is not None:
            _rename(aside, directory)
        raise
    if aside is not None:
        shutil.rmtree(aside)


def _finish_interrupted_saves(directory, marker):
    """Puts back a checkpoint that a killed save left aside, and deletes unfinished folders."""
    if not directory.exists():
        aside = newest_aside(directory, marker)
        if aside is not None:
            _rename(aside, directory)
    for leftover in _siblings(directory, "tmp") + _siblings(directory, "old"):
        shutil.rmtree(leftover, ignore_errors=True)


def _refuse_to_replace_other_files(directory, marker):
    """A save replaces the whole folder, so it must hold a checkpoint or nothing at all; a
    symbolic link would be replaced by a folder, and what it points to left behind."""
    if directory.is_symlink():
        raise FileExistsError(
            f"{directory} is a symbolic link (to {os.readlink(directory)}), and saving would "
            "replace the link, not the folder it points to. Save to the real folder, or replace "
            "the link with a folder."
        )
    if not directory.exists():
        return
    if directory.is_dir():
        if (directory / marker).is_file() or not any(directory.iterdir()):
            return
    raise FileExistsError(
        f"{directory} exists but is not a checkpoint (it has no {marker}), and saving "
        f"would replace it. Save into a folder of its own, e.g. {directory / 'checkpoint'}."
    )


def _new_sibling(directory, kind):
    while True:
        sibling = directory.with_name(f".{kind}-{directory.name}-{secrets.token_hex(4)}")
        if not os.path.lexists(sibling):
            return sibling


def _siblings(directory, kind):
    """`.tmp-`/`.old-` folders of exactly this checkpoint (not of `<name>-2`, say)."""
    pattern = re.compile(rf"\.{kind}-{re.escape(directory.name)}-[0-9a-f]{{8}}")
    if not directory.parent.is_dir():
        return []
    return [path for path in directory.parent.iterdir()
            if pattern.fullmatch(path.name) and path.is_dir()]


def _rename(source, target):
    os.rename(source, target)
    # flush the parent folder's entries, so a power cut cannot undo the rename
    fsync(target.parent)
