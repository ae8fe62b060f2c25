"""Copying a dataset's image files into an export without widening who may read them."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path


def copy_image_file(src: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy `src` to `target` atomically (temporary sibling, then rename), with no permission bit the source lacks.

    Why: `shutil.copyfile` gives the copy the umask's default mode (usually 0644), so a private (0600) source
    became world-readable in the export. The copy gets the default mode masked by the source's mode.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(src, tmp)
        src_mode = stat.S_IMODE(os.stat(src).st_mode)
        os.chmod(tmp, stat.S_IMODE(os.stat(tmp).st_mode) & src_mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
