"""Each data setting is declared and checked once: the split arithmetic the settings check uses is the
data module's own, and a windowing key given with data.case (which reads each case whole) is refused
instead of dropped."""

import pytest

from lstm_cls import UserError, config
from lstm_cls.data import splits, windows

from .conftest import compose_cfg

CASE = ("run_dir=.", "data=csv", "data.path=x.csv", "data.target=y", "data.case=trial")


def test_the_settings_check_and_the_windows_cut_with_one_rule():
    assert windows.split_bounds is splits.split_bounds and config.split_bounds is splits.split_bounds
    assert windows.kept_steps is splits.kept_steps and config.kept_steps is splits.kept_steps
    for n in (7, 600, 1001):
        cut = splits.split_bounds(0, n, 0.125, 0.175)
        assert cut["train"][0] == 0 and cut["test"][1] == n
        assert cut["train"][1] == cut["val"][0] and cut["val"][1] == cut["test"][0]
    assert splits.fraction_keeping(8, 420) == 0.02 and splits.fraction_keeping(4, 120) == 0.034


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.window=8"], "data.case: a case is a whole sequence: data.window=8 does not apply"),
        (["data.horizon=2"], "data.case: a case is a whole sequence: data.horizon=2 does not apply"),
        (
            ["data.window=8", "data.stride=4"],
            "data.case: a case is a whole sequence: data.window=8 and data.stride=4 do not apply",
        ),
    ],
)
def test_a_window_with_whole_cases_is_refused_not_dropped(overrides, message):
    with pytest.raises(UserError) as e:
        config.check(compose_cfg(*CASE, *overrides))
    assert str(e.value).startswith(message)


def test_whole_cases_with_the_default_windowing_pass_on_to_the_file_check():
    # data/_windows.yaml's own values are what every table source is composed with: not a user's choice
    with pytest.raises(UserError, match="x.csv"):
        config.check(compose_cfg(*CASE))
