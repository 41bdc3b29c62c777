"""File I/O shared by every stage: JSONL read/write, atomic writes, one-line user errors.

Every artifact is written atomically (temp file in the same folder + os.replace) so a killed run never
leaves a half-written file where a finished one is expected; resume logic relies on that.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


class UserError(Exception):
    """A problem with the user's input. The CLI prints `error: <message>` as one line and exits with code 2.

    The message names the file (and line / field where known), e.g. `problems.jsonl:7: missing key 'query'`.
    """


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def read_jsonl_lines(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """(line number, record) for each non-blank line of a JSONL file; errors name `file:line`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
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
