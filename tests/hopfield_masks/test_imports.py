"""Importing hopfield_masks leaves global state alone: no plotting library is loaded, no backend switched."""
import subprocess
import sys


def test_importing_the_package_loads_no_matplotlib():
    code = "import sys, hopfield_masks; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr
