"""The README's Python example runs as written, and its package table names every subpackage."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)  # it writes runs/api_demo
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    masks = eval(capsys.readouterr().out.strip().splitlines()[-1])  # {layer: kept neurons}
    assert masks and all(isinstance(n, int) and n > 0 for n in masks.values())


@pytest.mark.parametrize("package", sorted(
    p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "supsup_core").glob("*/__init__.py")
))
def test_the_package_table_names_every_subpackage(package):
    assert f"| `{package}/` |" in README, f"README's package table lacks {package}/"
