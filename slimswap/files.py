"""Writing files so that a crash never leaves half a file under its real name, and hashing them.

Every output (media, reports, shards, weights, manifests, job files) is written to a hidden
temporary file beside its target and renamed when complete: the rename is atomic on one
file system, so a reader sees the old file or the new one, never a mixture. A process killed
with SIGKILL cannot delete its temporary file, so the name carries the writer's pid and the
next write to the same target removes temporaries whose writer is gone.
"""

from __future__ import annotations

import glob
import hashlib
import os
import secrets
from pathlib import Path

from slimswap.errors import UserError

PathLike = str | os.PathLike[str]
TEMP_TAG = ".tmp"


def temp_path(target: PathLike) -> Path:
    """A fresh hidden name beside `target`: `.{stem}.{pid}-{random}.tmp{suffix}`.

    The suffix stays last because PyAV, Pillow and matplotlib pick the format from it; the
    random part keeps parallel writers in one process apart.
    """
    target = Path(target)
    return target.with_name(
        f".{target.stem}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_TAG}{target.suffix}"
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(target: PathLike) -> list[Path]:
    """Delete the temporaries of `target` left by writers that no longer run; returns them.

    A temporary of a live process (this one included) is never touched.
    """
    target = Path(target)
    prefix, suffix = f".{target.stem}.", f"{TEMP_TAG}{target.suffix}"
    removed = []
    for name in glob.glob(glob.escape(str(target.parent / prefix)) + "*" + glob.escape(suffix)):
        path = Path(name)
        tag = path.name[len(prefix) : -len(suffix)]
        pid, _, token = tag.partition("-")
        if not (pid.isdigit() and token) or _pid_alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class atomic_write:
    """A temporary path beside `target` that becomes `target` only when complete.

    As a context manager it yields the temporary path and renames it onto `target` if the
    block succeeds; on any exception (Ctrl-C included) the temporary is deleted and `target`
    is untouched. Writers that outlive one block (VideoWriter) call `commit` or `discard`.
    Temporaries of earlier writers that were killed are removed first.
    """

    def __init__(self, target: PathLike) -> None:
        self.target = Path(target)
        remove_stale_temps(self.target)
        self.path = temp_path(self.target)

    def commit(self) -> Path:
        os.replace(self.path, self.target)
        return self.target

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.discard()


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: PathLike, expected: str) -> None:
    """Refuse a file whose sha256 is not `expected` (a damaged download, a stray edit)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file missing: {path}; restore it with `git checkout -- {path}`")
    actual = sha256_file(path)
    if actual != expected:
        raise UserError(
            f"model file {path} is corrupted or not the released one (sha256 {actual[:12]}..., "
            f"expected {expected[:12]}...); restore it with `git checkout -- {path}`"
        )
