"""lstm_cls.data.uea: the UEA/UCR archive's .ts files read with aeon, every bad file a one-line UserError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_cls import UserError
from lstm_cls.data import uea

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADER = """@problemName tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength {equal}
@classLabel true a b
@data
"""
EQUAL = HEADER.format(equal="true") + "1,2,3:4,5,6:a\n7,8,9:10,11,12:b\n0.5,-1.5,2e3:0,0,0:a\n"
UNEQUAL = HEADER.format(equal="false") + "1,2,3:4,5,6:a\n7,8:9,10:b\n"


def ts(tmp_path: Path, text: str | bytes, name: str = "x.ts") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def refused(path: Path | str, what: str = "data.path") -> str:
    """read_ts's UserError message, checked to be one line naming the setting and the file."""
    with pytest.raises(UserError) as e:
        uea.read_ts(path, what)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{what}: ")
    assert Path(path).name in message
    return message


def shipped_file(name: str, split: str) -> Path:
    data_dir = uea._aeon_data_dir()
    assert data_dir is not None
    return data_dir / name / f"{name}_{split.upper()}.ts"


def first_value_in_file(path: Path) -> float:
    """The first value of the first case, read from the file's text without aeon."""
    lines = path.read_text().splitlines()
    data_line = lines[[ln.strip().lower() for ln in lines].index("@data") + 1]
    return float(data_line.split(":")[0].split(",")[0])


# ---- the data sets aeon ships ----


def test_shipped_names_are_the_bundled_classification_sets_sorted():
    names = uea.shipped_names()
    assert names == sorted(names)
    assert {"BasicMotions", "JapaneseVowels", "GunPoint", "ArrowHead"} <= set(names)
    assert "JapaneseVowels_eq" in names  # the padded variant beside the original, as aeon names it
    # regression problems (@targetLabel true) and aeon's lone timestamp test file are not classification sets
    assert not {"Covid3Month", "CardanoSentiment", "UnitTestTimeStamps"} & set(names)
    for name, folder in uea._shipped().items():
        assert (folder / f"{name}_TRAIN.ts").is_file() and (folder / f"{name}_TEST.ts").is_file()


def test_an_equal_length_variant_by_name():
    cases = uea.load_named("JapaneseVowels_eq", "test")  # in aeon's JapaneseVowels folder
    assert len(cases.x) == 370 and {a.shape for a in cases.x} == {(25, 12)}
    assert cases.source == "aeon:JapaneseVowels_eq"


@pytest.mark.parametrize("split", ["train", "test"])
def test_basic_motions_by_name(split):
    from aeon.datasets import load_basic_motions

    cases = uea.load_named("BasicMotions", split)
    assert len(cases.x) == len(cases.y) == 40
    assert cases.channel_names == [f"dim_{c}" for c in range(6)]
    assert all(a.shape == (100, 6) and a.dtype == np.float32 for a in cases.x)
    # aeon lower-cases the labels of the file (Standing, Running, Walking, Badminton)
    assert sorted(set(cases.y)) == ["badminton", "running", "standing", "walking"]
    assert cases.source == "aeon:BasicMotions"
    x, y = load_basic_motions(split=split)  # aeon's own loader: [cases, channels, steps]
    np.testing.assert_array_equal(np.stack(cases.x), x.transpose(0, 2, 1).astype(np.float32))
    np.testing.assert_array_equal(cases.y, y.astype(str))
    path = shipped_file("BasicMotions", split)
    from_file = uea.read_ts(path)
    assert from_file.source == str(path)
    for a, b in zip(cases.x, from_file.x, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(cases.y, from_file.y)
    # and the first value of the file's text, channel 0 of step 0 of case 0
    assert cases.x[0][0, 0] == np.float32(first_value_in_file(path))


def test_japanese_vowels_by_name_has_unequal_lengths():
    from aeon.datasets import load_japanese_vowels

    train, test = uea.load_named("JapaneseVowels", "train"), uea.load_named("JapaneseVowels", "test")
    assert (len(train.x), len(test.x)) == (270, 370)
    assert (len(train.y), len(test.y)) == (270, 370)
    lengths = [a.shape[0] for a in train.x + test.x]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(a.shape[1] == 12 and a.dtype == np.float32 for a in train.x + test.x)
    assert train.channel_names == test.channel_names == [f"dim_{c}" for c in range(12)]
    assert sorted(set(train.y)) == sorted(set(test.y)) == [str(k) for k in range(1, 10)]
    uea.check_pair(train, test)
    x, y = load_japanese_vowels(split="test")  # a list of [channels, steps_i]
    for i in (0, 1, 369):
        np.testing.assert_array_equal(test.x[i], x[i].T.astype(np.float32))
    np.testing.assert_array_equal(test.y, y.astype(str))
    path = shipped_file("JapaneseVowels", "test")
    from_file = uea.read_ts(path)
    for a, b in zip(test.x, from_file.x, strict=True):
        np.testing.assert_array_equal(a, b)
    assert test.x[0][0, 0] == np.float32(first_value_in_file(path))


def test_unknown_name_says_which_names_are_available():
    with pytest.raises(UserError) as e:
        uea.load_named("NoSuchSet", "train")
    message = str(e.value)
    assert "\n" not in message and message.startswith("data.name=NoSuchSet: not a data set aeon ships")
    assert all(name in message for name in uea.shipped_names())
    with pytest.raises(UserError, match="did you mean BasicMotions"):
        uea.load_named("basicmotions", "train")
    with pytest.raises(UserError, match="split must be 'train' or 'test'"):
        uea.load_named("BasicMotions", "validation")


# ---- small files of our own ----


def test_equal_lengths(tmp_path):
    path = ts(tmp_path, EQUAL)
    cases = uea.read_ts(path)
    assert cases.source == str(path)
    assert cases.channel_names == ["dim_0", "dim_1"]
    assert [a.shape for a in cases.x] == [(3, 2)] * 3
    assert all(a.dtype == np.float32 for a in cases.x)
    np.testing.assert_array_equal(cases.x[0], [[1, 4], [2, 5], [3, 6]])  # [timesteps, channels]
    np.testing.assert_array_equal(cases.x[2], np.array([[0.5, 0], [-1.5, 0], [2000, 0]], np.float32))
    assert cases.y.tolist() == ["a", "b", "a"]


def test_unequal_lengths(tmp_path):
    cases = uea.read_ts(ts(tmp_path, UNEQUAL))
    assert [a.shape for a in cases.x] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(cases.x[1], [[7, 9], [8, 10]])
    assert cases.y.tolist() == ["a", "b"]


def test_suffix_in_any_case_and_labels_as_written(tmp_path):
    # aeon rewrites "nan" to "NaN" in the whole line: a label "banana" must not come back "baNaNa"
    text = EQUAL.replace(":a\n", ":banana\n").replace("@classLabel true a b", "@classLabel true banana b")
    cases = uea.read_ts(ts(tmp_path, text, "X_TRAIN.TS"))
    assert cases.y.tolist() == ["banana", "b", "banana"]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("x.csv", EQUAL, "is not a .ts file"),
        ("x.ts", b"", "is empty"),
        ("x.ts", b"\xff\xfe@data\n1:a\n", "can't decode byte 0xff"),
        # aeon's parser: a case with 1 channel after one with 2, a tag without its value
        ("x.ts", EQUAL + "1,2,3:a\n", "cannot read"),
        ("x.ts", "@problemName\n@data\n1,2:a\n", "list index out of range"),
        ("x.ts", EQUAL + "\n1,2,3:4,5,6:a\n", "a blank line among the cases?"),
        ("x.ts", EQUAL.replace("4,5,6", "4,5"), "different number of observations"),
        ("x.ts", EQUAL.replace("1,2,3", "1,x,3"), "could not convert string to float"),
        ("x.ts", HEADER.format(equal="true"), "has no cases after @data"),
        (
            "x.ts",
            HEADER.replace("@classLabel true a b", "@classLabel false") + "1,2:3,4\n",
            "no class labels",
        ),
        (
            "x.ts",
            HEADER.replace("@classLabel true a b", "@targetLabel true") + "1,2:3,4:0.5\n",
            "no class labels",
        ),
    ],
)
def test_bad_files_are_user_errors(tmp_path, name, content, words):
    assert words in refused(ts(tmp_path, content, name), "data.test_path")


def test_missing_file_and_directory(tmp_path):
    assert "no such file" in refused(tmp_path / "absent.ts")
    (tmp_path / "folder.ts").mkdir()
    assert "is a directory" in refused(tmp_path / "folder.ts")


@pytest.mark.parametrize("missing", ["?", "NaN", "nan"])
def test_missing_values_name_the_first_case(tmp_path, missing):
    text = EQUAL.replace("7,8,9", f"7,{missing},9").replace("0.5,-1.5", f"{missing},-1.5")
    message = refused(ts(tmp_path, text))
    assert "case 1 (0-based)" in message
    assert "missing values" in message and "not supported" in message


@pytest.mark.parametrize("value", ["inf", "-infinity", "1e39", "-5e38", "1e400"])
def test_values_beyond_float32_are_refused(tmp_path, value):
    message = refused(ts(tmp_path, EQUAL.replace("10,11,12", f"10,{value},12")))
    assert "case 1 (0-based)" in message and "infinite or beyond float32 range" in message


def test_a_case_with_no_values_or_no_label(tmp_path):
    # a line without ':' is all label to aeon: a case with no channel
    no_values = HEADER.format(equal="true") + "a\nb\n"
    assert "case 0 (0-based)" in (message := refused(ts(tmp_path, no_values, "v.ts")))
    assert "has no values" in message
    for label in ("", "?"):
        text = EQUAL.replace("7,8,9:10,11,12:b", f"7,8,9:10,11,12:{label}")
        message = refused(ts(tmp_path, text, "l.ts"))
        assert "case 1 (0-based)" in message and "has no class label" in message


def test_a_case_shorter_than_one_step(tmp_path, monkeypatch):
    # aeon's parser refuses an empty channel itself; the check guards against any loader that does not
    import aeon.datasets

    def zero_steps(path, return_meta_data=False, **kwargs):
        meta = {"classlabel": True, "targetlabel": False}
        return [np.zeros((2, 3)), np.zeros((2, 0))], np.array(["a", "b"]), meta

    monkeypatch.setattr(aeon.datasets, "load_from_ts_file", zero_steps)
    message = refused(ts(tmp_path, UNEQUAL))
    assert "case 1 (0-based)" in message and "shorter than 1 step" in message


# ---- a test file against its training file ----


def cases_of(tmp_path: Path, name: str, text: str) -> uea.Cases:
    return uea.read_ts(ts(tmp_path, text, name))


def test_check_pair_accepts_a_matching_test_file(tmp_path):
    train = cases_of(tmp_path, "tr.ts", EQUAL)
    uea.check_pair(train, cases_of(tmp_path, "te.ts", UNEQUAL))
    uea.check_pair(train, cases_of(tmp_path, "te1.ts", HEADER.format(equal="true") + "1:2:b\n"))


def test_check_pair_refuses_other_channels(tmp_path):
    train = cases_of(tmp_path, "tr.ts", EQUAL)
    test = cases_of(tmp_path, "te.ts", HEADER.format(equal="true") + "1,2:a\n3,4:b\n")
    with pytest.raises(UserError, match=r"te\.ts has 1 channels but the training file .*tr\.ts has 2"):
        uea.check_pair(train, test)


def test_check_pair_refuses_a_label_the_training_file_lacks(tmp_path):
    train = cases_of(tmp_path, "tr.ts", EQUAL)
    declared = EQUAL.replace("@classLabel true a b", "@classLabel true c d")  # declared: only unseen by train
    test = cases_of(tmp_path, "te.ts", declared.replace(":b\n", ":c\n").replace(":a\n", ":d\n"))
    with pytest.raises(UserError) as e:
        uea.check_pair(train, test)
    message = str(e.value)
    assert "has labels ['c', 'd'] that the training file" in message and "lacks" in message
    assert "its labels: ['a', 'b']" in message


def test_check_pair_refuses_a_training_file_with_one_class(tmp_path):
    train = cases_of(tmp_path, "tr.ts", EQUAL.replace(":b\n", ":a\n"))
    with pytest.raises(UserError, match=r"tr\.ts has 1 class \['a'\]; a classifier needs >= 2"):
        uea.check_pair(train, cases_of(tmp_path, "te.ts", EQUAL.replace(":b\n", ":a\n")))


# ---- fuzzing: whatever a file holds, Cases or a UserError ----


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read_or_refuse(path: Path) -> None:
    try:
        cases = uea.read_ts(path)
    except UserError as e:
        assert "\n" not in str(e) and str(e).startswith("data.path: ")
        return
    assert len(cases.x) == len(cases.y) >= 1
    for a in cases.x:
        assert a.dtype == np.float32 and a.ndim == 2 and a.shape[0] >= 1
        assert a.shape[1] == len(cases.channel_names) >= 1 and np.isfinite(a).all()


# bytes that look like a .ts file often enough to get past the header
TS_BYTES = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet="@data\nclsLbtrufe ,:.?-0123456789nNiINF#\t\r()é\x00", max_size=300).map(str.encode),
    st.text(max_size=120).map(lambda t: (HEADER.format(equal="true") + t).encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(raw=TS_BYTES)
def test_any_bytes_give_cases_or_a_user_error(folder, raw):
    path = folder / "x.ts"
    path.write_bytes(raw)
    read_or_refuse(path)


MUTATION_CHARS = st.sampled_from(list(",:.?-@ \t\neE0123456789abnNtrue")) | st.characters()


@FUZZ
@given(base=st.sampled_from([EQUAL, UNEQUAL]), data=st.data())
def test_mutated_files_give_cases_or_a_user_error(folder, base, data):
    lines = base.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        kind = data.draw(st.sampled_from(["delete", "duplicate", "replace"]), label="kind")
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        else:
            j = data.draw(st.integers(0, len(lines[i])), label="at")
            lines[i] = lines[i][:j] + data.draw(MUTATION_CHARS, label="char") + lines[i][j + 1 :]
    path = folder / "m.ts"
    path.write_text("".join(lines), encoding="utf-8", errors="surrogatepass")
    read_or_refuse(path)
