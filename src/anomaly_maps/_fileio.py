"""Safe writes shared by every module that creates files.

Outputs are written to a temporary file beside the target and then moved into place,
so a crash never leaves a half-written file under the real name, and an existing file
is never replaced unless the caller asked for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import AnomalyMapsError

__all__ = ["atomic_path", "full_suffix", "write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
"""mkstemp creates 0600 files; outputs get the mode ``open()`` would give them."""


def full_suffix(path: str | os.PathLike) -> str:
    """The suffix that decides the format: ``.nii.gz`` counts as one suffix."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(path).suffix.lower()


@contextmanager
def atomic_path(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    error: type[AnomalyMapsError] = AnomalyMapsError,
) -> Iterator[Path]:
    """Yield a temporary path to write to; on success move it to ``path``.

    Parameters
    ----------
    path
        Final destination. Its parent folder is created if needed.
    overwrite
        Replace an existing ``path``. If False, an existing file raises ``error``
        before anything is written, and a file that appears while writing is kept.
    error
        Exception class raised for an existing destination.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise error(
            f"{path}: already exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{full_suffix(path)}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(_FILE_MODE)  # after writing: some writers (safetensors) recreate the file
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic and refuses to replace a file created meanwhile
            except FileExistsError:
                raise error(f"{path}: appeared while writing; kept it, nothing written") from None
            except OSError:  # file systems without hard links: check, then move
                if path.exists():
                    raise error(f"{path}: appeared while writing; kept it") from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> None:
    """Write a small text file atomically (temporary file, then rename)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
