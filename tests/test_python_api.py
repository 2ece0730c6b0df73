"""The "From Python" snippet of docs/tools.md (linked from the README), run exactly as written."""

from __future__ import annotations

import torch

from .conftest import ROOT


def readme_snippet() -> str:
    readme = (ROOT / "docs" / "tools.md").read_text()
    section = readme.split("## From Python", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_python_snippet_trains_tests_and_predicts(capsys) -> None:
    code = readme_snippet()
    assert "SyntheticDataModule" in code and "trainer.fit" in code
    scope: dict = {}
    exec(compile(code, "docs/tools.md", "exec"), scope)
    dm, probabilities, model = scope["dm"], scope["probabilities"], scope["model"]
    assert dm.n_classes == 2 and dm.n_features == 13 and dm.class_names == ["0", "1"]
    assert probabilities.shape == (8, 2)
    assert torch.allclose(probabilities.sum(1), torch.ones(8), atol=1e-5)
    assert "test/acc" in model.epoch_metrics["test"]
    assert scope["trainer"].current_epoch == 3
