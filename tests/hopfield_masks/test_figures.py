"""Figures: an Agg canvas of their own, PNG written atomically, matplotlib only loaded when a figure is made."""
import subprocess
import sys

from hopfield_masks.figures import new_figure, save_png


def test_a_figure_is_saved_as_a_png_and_no_temp_file_is_left(tmp_path):
    figure = new_figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    path = save_png(figure, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_importing_the_module_loads_no_matplotlib():
    code = "import sys, hopfield_masks.figures; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
