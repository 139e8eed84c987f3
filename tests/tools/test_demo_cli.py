"""`supsup demo`: the whole pipeline on the built-in digits, shortened."""
import json

from click.testing import CliRunner

from tools.cli import main


def test_demo_recovers_every_task_after_deleting_the_masks(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--num-tasks", "2", "--epochs", "1", "--steps", "10", "--no-progress"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "exact recoveries 2/2" in result.output
    report = json.loads((out / "recovery.json").read_text())
    assert report["exact_recoveries"] == 2 and report["num_tasks"] == 2
    assert abs(report["mean_accuracy"] - report["mean_gg_accuracy"]) < 1e-9
    first = report["tasks"][0]
    assert len(first["bit_errors_per_step"]) == first["steps"] <= 10  # at most --steps; fewer once settled
    assert not list((out / "run" / "masks").glob("*.safetensors")), "the demo must delete the explicit masks"
    assert (out / "store.safetensors").is_file()
    assert (out / "recovery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_refuses_a_folder_it_did_not_write_and_changes_nothing(tmp_path):
    (tmp_path / "demo" / "run").mkdir(parents=True)
    (tmp_path / "demo" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--no-progress"])
    assert result.exit_code != 0 and "was not written by the demo" in result.output
    assert (tmp_path / "demo" / "notes.txt").read_text() == "mine"


def test_demo_rerun_replaces_its_own_earlier_output(tmp_path):
    args = ["demo", "--out", str(tmp_path / "demo"), "--num-tasks", "1", "--epochs", "1", "--steps", "3", "--no-progress"]
    for _ in range(2):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "demo" / "recovery.json").read_text())["num_tasks"] == 1


def test_demo_refuses_non_finite_epochs(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--epochs", "nan", "--no-progress"])
    assert result.exit_code == 2 and "not a finite number" in result.output
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_a_rule_without_the_backend_before_training(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--rule", "storkey", "--no-progress"])
    assert result.exit_code == 2 and "rule 'storkey' has no implicit backend" in result.output, result.output
    assert not (tmp_path / "demo").exists()
