"""The files report writes into a folder, and the record (.report.json) that keeps it from writing over
a file it did not write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lstm_cls import UserError, cli, sweeps
from lstm_cls.checkpoints import write_json_atomic

RECORD = ".report.json"  # what report wrote into a folder: {name: {"file": its file, "sha256": its checksum}}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Outputs:
    """The files report writes into a folder, never over one it did not write: a file it wrote before
    (recorded in `.report.json` with its checksum, unchanged since) is rewritten; any other file of that
    name (your own `summary.md`, one you edited) is left as it is, and report writes beside it under a
    free name (`summary-2.md`), as predict does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.record = self._read()

    def _read(self) -> dict[str, dict[str, str]]:
        f = self.root / RECORD
        try:
            data = json.loads(f.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise UserError(f"{f} cannot be read ({e}); move it away") from None
        if not isinstance(data, dict):
            raise UserError(
                f"{f}: the whole file is {sweeps.json_kind(data)}, not a JSON object; move it away"
            )
        for name, entry in data.items():
            file = entry.get("file") if isinstance(entry, dict) else None
            if not (
                isinstance(file, str)
                and file not in ("", ".", "..")
                and "/" not in file
                and "\\" not in file
                and isinstance(entry.get("sha256"), str)
            ):
                raise UserError(f"{f}: {name} is not a file report wrote ({{file, sha256}}); move it away")
        return data

    def ours(self, name: str) -> Path | None:
        """The file an earlier report wrote for `name`, if it still holds what report wrote there."""
        entry = self.record.get(name)
        if entry is None:
            return None
        p = self.root / entry["file"]
        try:
            return p if p.is_file() and not p.is_symlink() and _sha256(p) == entry["sha256"] else None
        except OSError:
            return None

    def path(self, name: str) -> Path:
        """Where to write `name`: report's earlier file, else the name itself if free, else a free name."""
        mine = self.ours(name)
        if mine is not None:
            return mine
        target = self.root / name
        if not target.exists() and not target.is_symlink():
            return target
        return cli.free_path(self.root, Path(name).stem, Path(name).suffix)

    def wrote(self, name: str, path: Path) -> None:
        """Record `path` as report's file for `name` (at once: an interrupted report leaves no stranger)."""
        self.record[name] = {"file": path.name, "sha256": _sha256(path)}
        write_json_atomic(self.root / RECORD, self.record)

    def remove(self, name: str) -> None:
        """Remove report's earlier file for `name` (a figure that no longer applies); never any other."""
        mine = self.ours(name)
        if mine is not None:
            mine.unlink()
        if name in self.record:
            del self.record[name]
            write_json_atomic(self.root / RECORD, self.record)
