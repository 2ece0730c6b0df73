"""Labelled sequences of the UEA/UCR time-series classification archive, read with aeon's loaders.

aeon parses the archive's `.ts` files; this module turns what it returns into one float32 array
`[timesteps, channels]` per case and turns every way a file can be wrong into a one-line `UserError`
naming the setting and the file. aeon is imported inside the functions: its import takes about two
seconds, which a run on another data source should not pay.

What aeon does to a file, and so what `Cases` holds:
- labels are lower-cased (aeon lower-cases each data line): BasicMotions' `Standing` reads `standing`. So
  labels equal but for case (`A`, `a`) would silently be one class, and are refused here, as is a label the
  header's `@classLabel` does not declare (aeon checks neither: read from the file's own text);
- `?` and `nan` in the values become NaN, and are refused here (the archive's missing values);
- the `.ts` format has no channel names, so the channels are named `dim_0`, `dim_1`, ... as aeon names them.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TextIO

import numpy as np

from lstm_cls import UserError
from lstm_cls.data.header import first_line

SPLITS = ("train", "test")
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Cases:
    """The labelled cases of one `.ts` file (or one split of a data set aeon ships)."""

    x: list[np.ndarray]  # one float32 array per case, [timesteps_i, channels]
    y: np.ndarray  # class label of each case, as str, shape [cases]
    channel_names: list[str]  # "dim_0", "dim_1", ... (the .ts format has no channel names)
    source: str  # the file path or "aeon:<Name>"
    # each label (as in `y`, lower-cased) as the file spells it; empty without a file (a table's cases)
    spelled: dict[str, str] = field(default_factory=dict)


def _one_line(message: str) -> str:
    # a path or a token from a broken file may hold line breaks: the error must stay one line
    return re.sub(r"[\r\n]+", " ", message)


def _cut(text: str, limit: int = 200) -> str:
    # aeon quotes the offending token, and a fuzzed or binary file can make that token very long
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _aeon_data_dir() -> Path | None:
    """aeon's bundled `datasets/data` folder, found without importing aeon (its import takes seconds)."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _header(f: TextIO) -> dict[str, list[str]]:
    """The tags of an open .ts file's header, up to @data, split as aeon's `_load_header_info` splits them
    (the tag's first character dropped, whatever it is; the last line of a tag wins), but not lower-cased."""
    tags: dict[str, list[str]] = {}
    for line in f:
        tokens = re.sub(r"\s+", " ", line.strip()).split(" ")
        if not line.strip() or tokens[0].startswith("#"):
            continue
        key = tokens[0][1:].lower()
        if key == "data":
            break
        tags[key] = tokens[1:]
    return tags


def _is_classification(path: Path) -> bool:
    """Whether a shipped file's header declares class labels (`@classLabel` not false, as in aeon), not
    regression targets (`@targetLabel true`: a problem such as Covid3Month, useless to a classifier)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        tags = _header(f)
    said = {k: (tags.get(k) or [""])[0].lower() for k in ("classlabel", "targetlabel")}
    return said["classlabel"] != "false" and said["targetlabel"] != "true"


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Path]:
    """Name -> folder of each classification data set aeon ships with both a TRAIN and a TEST file.

    aeon's rule for a local data set is a folder `<Name>/` holding `<Name>_TRAIN.ts` and `<Name>_TEST.ts`.
    The same folder may also hold variants, `<Name>_eq_TRAIN.ts` (JapaneseVowels padded to equal
    length): those are listed as `<Name>_eq`, as `aeon.datasets.load_classification` names them.
    """
    root = _aeon_data_dir()
    if root is None or not root.is_dir():
        return {}
    found: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for train in folder.glob("*_TRAIN.ts"):
            name = train.name[: -len("_TRAIN.ts")]
            if name != folder.name and not name.startswith(folder.name + "_"):
                continue  # e.g. UnitTestTimeStamps_TRAIN.ts: a lone file of aeon's own tests, no TEST file
            test = folder / f"{name}_TEST.ts"
            if test.is_file() and _is_classification(train) and _is_classification(test):
                found[name] = folder
    return found


def shipped_names() -> list[str]:
    """The classification data sets aeon ships inside its package, loadable by name offline, sorted."""
    return sorted(_shipped())


def _load_aeon(p: Path, what: str) -> tuple[object, np.ndarray, dict]:
    """aeon's `load_from_ts_file`, with anything it raises on a bad file as a UserError."""
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError as e:
        raise UserError(f"{what}: reading {p} needs aeon (pip install aeon): {first_line(e)}") from None
    try:
        # return_type="auto": a 3D array [cases, channels, timesteps] for equal lengths, a list of
        # [channels, timesteps_i] arrays for unequal ones
        x, y, meta = load_from_ts_file(str(p), return_meta_data=True)
    # aeon raises OSError, ValueError, IndexError, UnicodeDecodeError ... for a bad file: all mean the file.
    # Exception, not BaseException: Ctrl-C must still stop the run
    except Exception as e:
        # aeon's messages may quote its open file object (`<_io.TextIOWrapper name='...'>`): the path is
        # named already, so drop it, and keep what went wrong within the clip
        reason = _cut(re.sub(r"<_io\.\w+ [^>]*>\.?\s*", "", first_line(e)) or type(e).__name__)
        if "but have read 0" in reason:  # aeon reads an empty line as a case with no channels
            reason += " (a blank line among the cases?)"
        raise UserError(_one_line(f"{what}: cannot read {p} as a .ts file: {reason}")) from None
    return x, y, meta


def read_ts(path: str | Path, what: str = "data.path") -> Cases:
    """The labelled cases of a `.ts` file of the UEA/UCR archive, read with aeon.

    Every bad file is a one-line UserError naming `what` and the file: another suffix, a missing or
    empty file, a directory, undecodable bytes, whatever aeon's parser refuses, no class labels, no
    cases, a case with no values, a missing label, and missing (`?`, NaN), infinite or beyond-float32 values.
    """
    p = Path(path)
    where = _one_line(str(p))
    if p.suffix.lower() != ".ts":
        raise UserError(f"{what}: {where} is not a .ts file (the UEA/UCR archive's format)")
    try:
        is_dir, is_file = p.is_dir(), p.is_file()
        size = p.stat().st_size if is_file else 0
    except (OSError, ValueError) as e:  # a path the OS refuses: too long, a NUL byte
        raise UserError(_one_line(f"{what}: cannot read {where}: {first_line(e)}")) from None
    if is_dir:
        raise UserError(f"{what}: {where} is a directory, not a .ts file")
    if not is_file:
        raise UserError(f"{what}: no such file: {where}")
    if size == 0:
        raise UserError(f"{what}: {where} is empty")
    x, y, meta = _load_aeon(p, what)
    if meta.get("targetlabel") or not meta.get("classlabel"):
        raise UserError(
            f"{what}: {where} has no class labels (@classLabel false or @targetLabel true: a regression "
            "problem); a classifier needs one class label per case"
        )
    cases = [np.asarray(case, dtype=np.float64) for case in x]  # [channels, timesteps_i] each
    if not cases:
        raise UserError(f"{what}: {where} has no cases after @data")
    labels = np.asarray(y).astype(str)
    if labels.shape != (len(cases),):
        raise UserError(f"{what}: {where} has {len(cases)} cases but {labels.size} class labels")
    out = [_checked(case, i, labels[i], where, what) for i, case in enumerate(cases)]
    # aeon replaces "nan" by "NaN" in the whole line, the label too ("banana" reads "baNaNa"); the line
    # was lower-cased first, so every "NaN" left in a label was a "nan" of the file
    labels = np.char.replace(labels, "NaN", "nan")
    spelled = _check_labels(p, len(out), labels, where, what)
    return Cases(
        x=out,
        y=labels,
        channel_names=[f"dim_{c}" for c in range(out[0].shape[1])],
        source=str(p),
        spelled=spelled,
    )


def _spellings(p: Path) -> tuple[list[str], list[str]]:
    """The labels @classLabel declares and each case's label, as the file spells them (aeon lower-cases them).

    Split as aeon's `_load_data` splits them: each line after `@data` is a case whose label is its last
    `:` field (`):` with @timeStamps true). Called once aeon has read the file, so it is well formed.
    """
    with open(p, encoding="utf-8") as f:  # as aeon opens it (universal newlines)
        tags = _header(f)
        timestamps = [t.lower() for t in tags.get("timestamps", [])[:1]] == ["true"]
        cases = [line.strip() for line in f]
    declared = [t.strip() for t in tags.get("classlabel", [])[1:]]
    return declared, [re.sub(r"\s", "", c).split("):")[-1] if timestamps else c.split(":")[-1] for c in cases]


def _check_labels(p: Path, n: int, labels: np.ndarray, where: str, what: str) -> dict[str, str]:
    """Refuse labels equal but for case and labels @classLabel does not declare; returns each label's
    spelling in the file, keyed by aeon's lower-cased label (`Cases.spelled`)."""
    declared, raw = _spellings(p)
    if len(raw) != n:  # aeon read the file otherwise than expected: do not guess at spellings
        return {}
    spellings: dict[str, list[str]] = {}
    for name in [*declared, *raw]:
        same = spellings.setdefault(name.lower(), [])
        if name not in same:
            same.append(name)
    clash = next((names for names in spellings.values() if len(names) > 1), None)
    if clash is not None:
        shown = " and ".join(repr(v) for v in clash[:3])
        raise UserError(
            _one_line(
                f"{what}: {where} has class labels {_cut(shown)} that differ only in case; aeon reads "
                "labels lower-cased, so they would silently be one class: spell each class one way"
            )
        )
    known = set(declared)
    undeclared = [i for i, name in enumerate(raw) if name not in known]
    if undeclared:
        i = undeclared[0]
        more = f" (and {len(undeclared) - 1} more cases)" if len(undeclared) > 1 else ""
        raise UserError(
            _one_line(
                f"{what}: case {i} (0-based) of {where} has the label {_cut(repr(raw[i]))}{more}, which the "
                f"header's @classLabel does not declare (it declares {_cut(' '.join(declared))}); add it "
                "there, or correct the label"
            )
        )
    return {str(label): raw[i] for i, label in enumerate(labels)}


def _checked(case: np.ndarray, i: int, label: str, where: str, what: str) -> np.ndarray:
    """One case as float32 [timesteps, channels], or the UserError that says why it cannot be."""
    at = f"{what}: case {i} (0-based) of {where}"
    if case.ndim != 2:
        raise UserError(f"{at} was read by aeon with shape {case.shape}, not [channels, steps]")
    if case.shape[0] < 1:
        raise UserError(f"{at} has no values before its class label (a line without a colon?)")
    if case.shape[1] < 1:
        raise UserError(f"{at} is shorter than 1 step; each case needs at least one")
    if label == "" or label == "NaN":
        # aeon turns a `?` or `nan` label into "NaN", as it does the values: a missing class label
        raise UserError(f"{at} has no class label; each case needs one after its last ':'")
    if np.isnan(case).any():
        raise UserError(
            f"{at} has missing values ('?' or NaN); the archive's missing values are not supported: "
            "impute them, or use the data set's _nmv version"
        )
    with np.errstate(over="ignore"):  # the overflow to inf is what is checked next
        as32 = np.ascontiguousarray(case.T, dtype=np.float32)
    if not np.isfinite(as32).all():
        raise UserError(f"{at} has a value that is infinite or beyond float32 range (|x| > {_F32_MAX:.4g})")
    return as32


def load_named(name: str, split: str) -> Cases:
    """The `split` ("train" or "test") of a data set aeon ships, read offline from aeon's own copy.

    The shipped file is read with `read_ts`, through the same checks as a file of one's own. Not with
    `aeon.datasets.load_classification`: for a name it lacks, that looks in the user's data home and then
    downloads from Zenodo, and this must be offline and the same data on every machine.
    """
    if split not in SPLITS:
        raise UserError(f"load_named: split must be 'train' or 'test', not {split!r}")
    shipped = _shipped()
    if name not in shipped:
        names = shipped_names()
        if not names:
            raise UserError(f"data.name={name}: aeon is not installed, so no data set can be read by name")
        close = [n for n in names if n.lower() == str(name).lower()]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            _one_line(
                f"data.name={name}: not a data set aeon ships{hint}; available without download: "
                f"{', '.join(names)} (or give data.path and data.test_path, .ts files)"
            )
        )
    cases = read_ts(shipped[name] / f"{name}_{split.upper()}.ts", what="data.name")
    cases.source = f"aeon:{name}"
    return cases


def check_pair(train: Cases, test: Cases) -> None:
    """Refuse a test file that does not fit its training file, and a training file with one class."""
    classes = sorted(set(train.y.tolist()))
    if len(classes) < 2:
        raise UserError(
            f"the training file {train.source} has {len(classes)} class {classes}; a classifier needs >= 2"
        )
    if len(test.channel_names) != len(train.channel_names):
        raise UserError(
            f"the test file {test.source} has {len(test.channel_names)} channels but the training file "
            f"{train.source} has {len(train.channel_names)}; both must have the same channels"
        )
    for label in sorted(set(test.y.tolist()) & set(classes)):
        a, b = train.spelled.get(label), test.spelled.get(label)
        if a is not None and b is not None and a != b:  # aeon lower-cased both into one class
            raise UserError(
                _one_line(
                    f"the training file {train.source} spells a class {_cut(repr(a))} and the test file "
                    f"{test.source} spells it {_cut(repr(b))}: labels equal but for case would silently be "
                    "one class; spell each class one way in both files"
                )
            )
    unseen = sorted(set(test.y.tolist()) - set(classes))
    if unseen:
        shown = _cut(str(unseen))
        raise UserError(
            _one_line(
                f"the test file {test.source} has labels {shown} that the training file {train.source} "
                f"lacks (its labels: {_cut(str(classes))}); a classifier cannot predict a class it never saw"
            )
        )
