"""File I/O shared by every stage: JSONL read/write, atomic writes, stage markers, one-line user errors.

Every artifact is written atomically (a temp file in the same folder, fsynced, then os.replace) so a killed run
never leaves a half-written file where a finished one is expected. Files and folders get the modes the umask
gives (0644 / 0755 under the default umask), so teammates on a shared cluster can read a run. A stage whose
output is a folder (SFT, a DPO iteration) is done only when its DONE.json marker is complete and names files
that are all there with the sizes it recorded (write_done / is_done); the marker is written last, by us, after
the trainer's own files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

TEMP_SUFFIX = ".tmp"
DONE = "DONE.json"


class UserError(Exception):
    """A problem with the user's input. The CLI prints `error: <message>` as one line and exits with code 2.

    The message names the file (and line / field where known), e.g. `problems.jsonl:7: missing key 'query'`.
    """


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _writable_parent(path: Path, folder: bool = False) -> None:
    if path.is_dir() and not folder:
        raise UserError(f"{path}: is a directory, expected a file to write")
    if path.is_file() and folder:
        raise UserError(f"{path}: is a file, expected a folder to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create its folder ({e.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"{path}: not writable (permission denied on {path.parent})")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`, on failure delete it.
    The file gets the mode the umask gives a new file."""
    path = Path(path)
    _writable_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        if tmp_path.exists():
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder next to `path`; on success move it into place (an existing `path` is
    replaced whole, never written into), on failure delete it. Folder mode follows the umask."""
    path = Path(path)
    _writable_parent(path, folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old{TEMP_SUFFIX}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete the temp files and folders a killed run left under `folder` (names `.X.*.tmp`); returns how many.

    A folder that atomic_folder had moved aside (`.X.old.tmp`) when the kill came, before the new one took its
    place, is put back as X rather than deleted: it is the last complete copy."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in sorted(folder.rglob(f".*{TEMP_SUFFIX}"), key=lambda p: -len(p.parts)):
        original = p.with_name(p.name[1:-len(f".old{TEMP_SUFFIX}")]) if p.name.endswith(f".old{TEMP_SUFFIX}") else None
        if original is not None and p.is_dir() and not original.exists():
            os.replace(p, original)
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records as JSON lines atomically; returns the number written."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
    return n


def write_done(folder: str | os.PathLike, info: dict | None = None) -> None:
    """Mark a folder stage complete: DONE.json lists every file under it (but itself) with its size, plus `info`
    (the stage's metrics). Written last, atomically and fsynced."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != DONE and not p.name.endswith(TEMP_SUFFIX)}
    write_json(folder / DONE, {"files": files, "info": info or {}})


def read_done(folder: str | os.PathLike) -> dict | None:
    """The DONE.json of a complete stage folder, or None when the stage is not complete: no marker, a truncated
    or unreadable one, or a listed file missing or of another size."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / DONE).read_text(encoding="utf-8"))
        files = marker["files"]
        if not isinstance(files, dict) or not files:
            return None
        for name, size in files.items():
            if (folder / name).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return marker


def is_done(folder: str | os.PathLike) -> bool:
    return read_done(folder) is not None


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:  # json's decoder recurses per nesting level
        raise UserError(f"{where}: JSON nested too deeply") from None
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # an integer of more digits than Python converts
        raise UserError(f"{where}: invalid JSON ({e})") from None


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    _check_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    try:
        return _loads(text, str(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def read_jsonl_lines(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """(line number, record) for each non-blank line of a JSONL file; errors name `file:line`."""
    path = Path(path)
    _check_file(path)
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = _loads(line, f"{path}:{lineno}")
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
                out.append((lineno, rec))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    return out


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict]:
    """Read a JSONL file. Blank lines are skipped. Errors name `file:line` and the field.

    `required` lists keys every record must have.
    """
    required = list(required)
    out = []
    for lineno, rec in read_jsonl_lines(path):
        for key in required:
            if key not in rec:
                raise UserError(f"{path}:{lineno}: missing key '{key}'")
        out.append(rec)
    return out
