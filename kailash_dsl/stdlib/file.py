"""``std.file``: text, JSON and CSV files, with atomic writes.

Relative paths are resolved against ``ctx.base_dir`` (the ``.kflow`` file's folder, set
by the runtime), else ``$KFLOW_BASE_DIR``, else the current directory.
"""

from __future__ import annotations

import csv
import io
import json as _json
import os
import tempfile
from pathlib import Path
from typing import Any

from ._support import log, resolve_path
from .errors import NodeError


def _read(path: str, ctx: Any, encoding: str = "utf-8", newline: str | None = None) -> tuple[Path, str]:
    p = resolve_path(path, ctx)
    try:
        with open(p, encoding=encoding, newline=newline) as fh:
            return p, fh.read()
    except FileNotFoundError as exc:
        raise NodeError("FileNotFound", f"no such file: {p}") from exc
    except IsADirectoryError as exc:
        raise NodeError("FileError", f"is a folder, not a file: {p}") from exc
    except UnicodeDecodeError as exc:
        raise NodeError("FileError", f"{p} is not valid {encoding}: {exc}") from exc


def atomic_write(path: Path, data: bytes) -> int:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            try:
                os.chmod(tmp, path.stat().st_mode & 0o7777)
            except OSError:
                pass
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return len(data)


def read_text(path: str, encoding: str = "utf-8", *, ctx: Any = None) -> str:
    """Read a whole text file."""
    return _read(path, ctx, encoding)[1]


def write_text(path: str, text: str, encoding: str = "utf-8", *, ctx: Any = None) -> dict[str, Any]:
    """Write a whole text file atomically."""
    p = resolve_path(path, ctx)
    size = atomic_write(p, str(text).encode(encoding))
    log(ctx, f"wrote {size} bytes to {p}")
    return {"path": str(p), "size": size}


def read_json(path: str, *, ctx: Any = None) -> Any:
    """Read a JSON file."""
    p, text = _read(path, ctx)
    try:
        return _json.loads(text)
    except ValueError as exc:
        raise NodeError("JsonError", f"{p} is not valid JSON: {exc}") from exc


def write_json(path: str, value: Any, indent: int = 2, *, ctx: Any = None) -> dict[str, Any]:
    """Write ``value`` as JSON atomically (one line when ``indent`` is 0)."""
    p = resolve_path(path, ctx)
    try:
        if indent:
            text = _json.dumps(value, indent=indent, ensure_ascii=False) + "\n"
        else:
            text = _json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
    except (TypeError, ValueError) as exc:
        raise NodeError("JsonError", f"value is not JSON: {exc}") from exc
    size = atomic_write(p, text.encode("utf-8"))
    log(ctx, f"wrote {size} bytes to {p}")
    return {"path": str(p), "size": size}


def read_csv(path: str, delimiter: str = ",", *, ctx: Any = None) -> list[dict[str, str]]:
    """Read a CSV file with a header row into a list of column → text maps."""
    p, text = _read(path, ctx, "utf-8-sig", newline="")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise NodeError("CsvError", f"{p}: {exc}") from exc
    header = [h.strip() for h in header]
    rows: list[dict[str, str]] = []
    try:
        for record in reader:
            if not record or all(not cell.strip() for cell in record):
                continue  # blank line
            if len(record) > len(header):
                raise NodeError(
                    "CsvError",
                    f"{p} line {reader.line_num}: {len(record)} values but the header has "
                    f"{len(header)} columns",
                )
            rows.append({h: (record[i] if i < len(record) else "") for i, h in enumerate(header)})
    except csv.Error as exc:
        raise NodeError("CsvError", f"{p} line {reader.line_num}: {exc}") from exc
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def write_csv(path: str, rows: list[Any], columns: list[str] | None = None,
              delimiter: str = ",", *, ctx: Any = None) -> dict[str, Any]:
    """Write rows as CSV with a header row, atomically."""
    p = resolve_path(path, ctx)
    cols = list(columns or [])
    if not cols:
        seen: dict[str, None] = {}
        for row in rows:
            if not isinstance(row, dict):
                raise NodeError("CsvError", f"every row must be a record or map, found {type(row).__name__}")
            for key in row:
                seen.setdefault(str(key), None)
        cols = list(seen)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        if not isinstance(row, dict):
            raise NodeError("CsvError", f"every row must be a record or map, found {type(row).__name__}")
        writer.writerow([_cell(row.get(c)) for c in cols])
    size = atomic_write(p, buf.getvalue().encode("utf-8"))
    log(ctx, f"wrote {len(rows)} rows ({size} bytes) to {p}")
    return {"path": str(p), "size": size, "count": len(rows)}


__all__ = ["read_text", "write_text", "read_json", "write_json", "read_csv", "write_csv",
           "atomic_write"]
