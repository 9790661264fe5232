"""`trace2eval report` and `trace2eval status` in-process: exit codes, output, errors."""

from __future__ import annotations

from pathlib import Path


def test_report_command_writes_both_files(cli, session_copy):
    (session_copy.dir / "report.html").unlink()
    code, out, err = cli("report", session_copy.dir, "--ui-url", "http://127.0.0.1:5000")
    assert code == 0, err
    md, html = out.strip().splitlines()[-2:]
    assert Path(html) == session_copy.dir / "report.html" and Path(md) == session_copy.dir / "report.md"
    assert "127.0.0.1:5000/#/experiments/" in Path(html).read_text()
    assert "pictures: failures, scorer_pass_rates, latency" in err


def test_report_command_offline_and_without_comparison(cli, session_copy):
    code, out, err = cli("report", session_copy.dir, "--offline", "--no-compare", "--quiet")
    assert code == 0 and err == ""
    assert out.strip().splitlines()[-1].endswith("report.html")


def test_report_command_errors(cli, tmp_path, session_copy):
    code, out, err = cli("report", tmp_path)
    assert code == 1 and err.startswith(f"Error: {tmp_path.resolve()} is not a trace2eval session")
    code, out, err = cli("report", session_copy.dir, "--ui-url", "ftp://host")
    assert (
        code == 1 and "Error: --ui-url 'ftp://host' is not an http(s) address — pass e.g. http://127.0.0.1:5000" in err
    )
    code, out, err = cli("report", session_copy.dir, "--log-to-mlflow", "--offline")
    assert code == 1 and "cannot be combined" in err
    code, out, err = cli("report", session_copy.dir, "--previous", tmp_path / "missing")
    assert code == 1 and "is not a trace2eval session" in err


def test_report_command_can_relog_to_mlflow(cli, session_copy):
    from mlflow import MlflowClient

    code, out, err = cli("report", session_copy.dir, "--log-to-mlflow")
    assert code == 0, err
    runs = MlflowClient(session_copy.config().tracking_uri).search_runs(
        [session_copy.config().experiment_id], filter_string=f"tags.`trace2eval.session_id` = '{session_copy.id}'"
    )
    assert len(runs) == 1  # the copy's run from the original session, updated, not a second one


def test_status_points_at_the_report_and_mlflow(cli, demo_session):
    code, out, err = cli("status", demo_session.dir)
    assert code == 0
    assert f"Report: {demo_session.dir / 'report.html'}" in out.replace("\n", "")
    assert "MLflow generation run:" in out and "MLflow evaluation dataset: trace2eval-experiment-" in out
