"""Publishing a set of outputs all at once: a reader sees the previous complete set or the new one, never a mix.

A folder of outputs (a portfolio's folder in Dagster, the `--out` folder of `twin clone`) holds:
  .versions/<id>/     one complete set of outputs each; a run writes only into its own version
  .current            a link to the published version: publishing is one atomic rename of this link
  synthetic.csv, ...  stable links `<name> -> .current/<name>`, the documented download paths, so every one of
                      them switches with `.current` in the same rename
A version starts as a hard-linked copy of the one it builds on (the published one, or a failed run's when a
re-execution continues it), so a run that rewrites only some outputs still publishes a complete set, at no cost
in disk; files are replaced by atomic renames (new inodes), so a version never changes another's files.
A killed writer leaves at worst an unpublished version, and the published set is untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

VERSIONS = ".versions"
CURRENT = ".current"
MARKER = ".version"  # every version holds it, so a half-made version is never an empty folder
STALE_SECONDS = 7 * 24 * 3600  # unpublished versions (failed runs) older than this are removed on publish


def current(folder: Path) -> Path | None:
    """The published version of `folder`, or None."""
    link = Path(folder) / CURRENT
    return (Path(folder) / os.readlink(link)) if link.is_symlink() and link.exists() else None


def version(folder: Path, name: str, base: Path | None = None, inherit: bool = True) -> Path:
    """The version `name` of `folder`, made (once, atomically) as a hard-linked copy of `base` (default: the
    published version), or empty with inherit=False; concurrent callers all get the same folder."""
    target = Path(folder) / VERSIONS / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name[:60]}.", dir=target.parent))
    try:
        base = base if base is not None and base.is_dir() else current(folder)
        if base is not None and inherit:
            shutil.copytree(base, staging, symlinks=True, copy_function=os.link, dirs_exist_ok=True)
        (staging / MARKER).write_text(name + "\n")
        try:
            os.rename(staging, target)  # fails if another process made it first (it is not empty: MARKER)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def publish(folder: Path, published: Path, superseded: tuple[str, ...] = ()) -> list[str]:
    """Make `published` (a version of `folder`) the published set in one rename of `.current`; then link the
    download paths to it and remove the versions it replaces: the previously published one, those named in
    `superseded` (the failed runs a re-execution continued), and any older than STALE_SECONDS. Other unpublished
    versions stay meanwhile: a run of the same folder may still be writing one, or a re-execution continue it.
    Returns the names of the removed versions."""
    folder = Path(folder)
    previous = current(folder)
    names = sorted(entry.name for entry in published.iterdir() if entry.name != MARKER)
    for name in names:  # new download links first: dangling for an instant at most, never pointing at a mix
        _link(folder / name, Path(CURRENT) / name)
    _link(folder / CURRENT, Path(VERSIONS) / published.name)  # the publication: one atomic rename
    for stale in folder.iterdir():
        if stale.is_symlink() and stale.name != CURRENT and os.readlink(stale).startswith(CURRENT + os.sep) \
                and stale.name not in names:
            stale.unlink()
    removed, now = [], time.time()
    for other in (folder / VERSIONS).iterdir():
        if other == published:
            continue
        age = now - other.stat().st_mtime
        if other == previous or other.name in superseded or age > STALE_SECONDS:
            shutil.rmtree(other, ignore_errors=True)
            removed.append(other.name)
    return removed


def link_late_outputs(folder: Path, version_dir: Path, names) -> None:
    """Download links for files written into a version after it was published (the privacy audit runs after the
    product is out); a version not (yet) published gets its links when it is."""
    published = current(folder)
    if published is not None and published.resolve() == Path(version_dir).resolve():
        for name in names:
            _link(Path(folder) / name, Path(CURRENT) / name)


def _link(path: Path, target: Path) -> None:
    """Point the link `path` at `target` by renaming a fresh link onto it (atomic; replaces a plain file too)."""
    if path.is_symlink() and os.readlink(path) == str(target):
        return
    fresh = path.with_name(f".{path.name[:100]}.{os.getpid()}.link")
    fresh.unlink(missing_ok=True)
    os.symlink(target, fresh)
    os.replace(fresh, path)
