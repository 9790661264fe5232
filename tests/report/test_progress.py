"""Progress you can see: counts and rates relayed from the evaluation, quiet when asked."""

from __future__ import annotations

import json
import textwrap

import pytest

from trace2eval import ui
from trace2eval.validate.run import run_eval_script

FAKE_EVAL = textwrap.dedent("""
    import json, sys, time
    out = sys.argv[sys.argv.index("--results-json") + 1]
    for n in range(0, 5):
        sys.stderr.write(f"\\rEvaluating:  {n * 20}%|##   | {n}/4 [Elapsed: 00:00, Remaining: ?]")
        sys.stderr.flush()
        time.sleep(0.05)
    sys.stderr.write("\\n")
    print("Run ID: fake")
    json.dump({"run_id": "fake", "metrics": {}}, open(out, "w"))
""")


@pytest.fixture(autouse=True)
def restore_quiet():
    before = ui.is_quiet()
    yield
    ui.set_quiet(before)


def test_validation_progress_is_relayed_from_the_child(tmp_path):
    (tmp_path / "run_eval.py").write_text(FAKE_EVAL)
    seen = []
    result = run_eval_script(
        tmp_path, tmp_path / "results.json", 60, on_progress=lambda n, total: seen.append((n, total))
    )
    assert result.exit_code == 0 and result.results == {"run_id": "fake", "metrics": {}}
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert "Evaluating:" in result.stderr_tail and "Run ID: fake" in result.stdout_tail


def test_a_hung_evaluation_is_killed_at_the_timeout(tmp_path):
    (tmp_path / "run_eval.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    result = run_eval_script(tmp_path, tmp_path / "results.json", 2)
    assert result.timed_out and result.exit_code is None and result.seconds < 30
    assert "started" in result.stdout_tail


def test_activity_in_logs_and_under_quiet(capsys):
    ui.set_quiet(False)
    with ui.activity("Validating", unit="rows") as progress:  # stderr is not a terminal here: plain lines
        progress.update(3, 10)
    err = capsys.readouterr().err
    assert "Validating …" in err and "Validating: 3 rows done in" in err
    ui.set_quiet(True)
    with ui.activity("Validating") as progress:
        progress.update(5, 10)
    assert capsys.readouterr().err == ""


def test_run_is_quiet_end_to_end(cli, demo_store, tmp_path):
    code, out, err = cli(
        "task",
        "initializer",
        "--session",
        tmp_path / "s" / "one",
        "-e",
        demo_store["experiment_id"],
        "--tracking-uri",
        demo_store["uri"],
        "--quiet",
    )
    assert code == 0 and err == ""
    assert json.loads((tmp_path / "s" / "one" / "eval_tasks.json").read_text())["tasks"][0]["status"] == "completed"
