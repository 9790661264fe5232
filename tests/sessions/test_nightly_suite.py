"""Nightly runs: the watermark, the living suite, and files a person edited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tracefactory import add_support_traces

from trace2eval.errors import ValidationFailed
from trace2eval.sessions import ownership, suite
from trace2eval.sessions.watermark import Watermark, window_for

HOUR = 3_600_000


# -- never overwrite an edited file -------------------------------------------------------------


def test_edited_file_is_kept_and_the_new_version_written_beside_it(tmp_path):
    rel = "evaluation/scorers.py"
    assert ownership.write_generated(tmp_path, rel, "v1\n", "scorers") == (tmp_path / rel, False)
    assert ownership.write_generated(tmp_path, rel, "v2\n", "scorers").kept_edit is False  # untouched: replaced
    assert (tmp_path / rel).read_text() == "v2\n"

    (tmp_path / rel).write_text("v2\n# my fix\n")
    outcome = ownership.write_generated(tmp_path, rel, "v3\n", "scorers")
    assert outcome == (tmp_path / "evaluation/scorers.py.new", True)
    assert (tmp_path / rel).read_text() == "v2\n# my fix\n"
    assert (tmp_path / "evaluation/scorers.py.new").read_text() == "v3\n"
    (conflict,) = ownership.conflicts(tmp_path)
    assert conflict["file"] == rel and conflict["new_version"] == rel + ".new"
    first_seen = conflict["since"]

    ownership.write_generated(tmp_path, rel, "v4\n", "scorers")  # still edited: the .new is refreshed
    assert (tmp_path / rel).read_text() == "v2\n# my fix\n"
    assert (tmp_path / "evaluation/scorers.py.new").read_text() == "v4\n"
    assert ownership.conflicts(tmp_path)[0]["since"] == first_seen

    (tmp_path / "evaluation/scorers.py.new").rename(tmp_path / rel)  # the person takes the generated version
    assert ownership.write_generated(tmp_path, rel, "v5\n", "scorers").kept_edit is False
    assert (tmp_path / rel).read_text() == "v5\n" and ownership.conflicts(tmp_path) == []


def test_merged_data_is_written_over_an_edit(tmp_path):
    rel = "evaluation/eval_dataset.json"
    ownership.write_generated(tmp_path, rel, '{"rows": [1]}', "dataset")
    (tmp_path / rel).write_text('{"rows": [1, "edited"]}')
    ownership.write_generated(tmp_path, rel, '{"rows": [1, "edited", 2]}', "dataset", merged=True)
    assert (tmp_path / rel).read_text() == '{"rows": [1, "edited", 2]}' and not ownership.conflicts(tmp_path)


# -- watermark ---------------------------------------------------------------------------------


def test_window_rereads_the_overlap_and_skips_what_it_processed():
    first = window_for(None, overlap_minutes=60, initial_since_ms=None)
    assert first.since_ms is None
    for i, ts in enumerate([10 * HOUR, 11 * HOUR, 12 * HOUR]):
        assert first.accepts(f"t{i}", ts)
    mark = first.advanced("run-1")
    assert mark.timestamp_ms == 12 * HOUR and set(mark.recent) == {"t2"} and mark.runs == 1

    second = window_for(Watermark.model_validate(mark.model_dump()), overlap_minutes=60, initial_since_ms=None)
    assert second.since_ms == 11 * HOUR
    assert not second.accepts("t2", 12 * HOUR)  # read again in the overlap, already in the suite
    assert second.accepts("late", 12 * HOUR - 1000)  # arrived after the last run with an older timestamp
    assert second.accepts("t3", 13 * HOUR)
    after = second.advanced("run-2")
    # The next run reads timestamps > 12 h only, so ids at or below that need not be remembered.
    assert after.timestamp_ms == 13 * HOUR and set(after.recent) == {"t3"}
    assert after.runs == 2 and after.traces_total == 5 and second.skipped == 1


def test_first_run_reads_from_since_and_later_runs_never_further_back():
    assert window_for(None, 60, initial_since_ms=5 * HOUR).since_ms == 5 * HOUR
    old = Watermark(timestamp_ms=2 * HOUR, overlap_ms=HOUR)
    assert window_for(old, 60, initial_since_ms=5 * HOUR).since_ms == 5 * HOUR


def test_eviction_drops_old_samples_first_and_never_rows_a_person_invested_in():
    rows = [
        {"metadata": {"case_type": "failure", "added_in": "1", "source_trace": "t0"}},
        {
            "metadata": {"case_type": "sample", "added_in": "1", "source_trace": "t1"},
            "expectations": {"expected_facts": ["x"]},
        },
        {"metadata": {"case_type": "sample", "added_in": "1", "source_trace": "t2"}},
        {"metadata": {"case_type": "sample", "added_in": "2", "source_trace": "t3"}},
        {"metadata": {"case_type": "edge", "added_in": "1", "pinned": True, "source_trace": "t4"}},
        {"inputs": {"q": "written by a person"}, "metadata": {}},
        {"metadata": {"case_type": "llm_edge_case", "source": "llm", "source_trace": "t6"}},
    ]
    kept, dropped = suite.evict(rows, cap=5)
    assert dropped == [rows[2], rows[3]]
    assert kept == [rows[0], rows[1], rows[4], rows[5], rows[6]]


# -- whole nightly runs --------------------------------------------------------------------------


def nightly_session(store, suite_dir: Path, out: Path, session_id: str):
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    config = SessionConfig.from_inputs(store.experiment_id, store.uri)
    config = config.model_copy(update={"suite_dir": str(suite_dir)})
    return runner.create_session(config, out, session_id=session_id)


@pytest.mark.slow
def test_nightly_runs_grow_the_suite_and_keep_what_a_person_edited(store, tmp_path):
    from trace2eval.sessions import runner

    suite_dir, out = tmp_path / "suite", tmp_path / "sessions"
    first_ids = add_support_traces(store, 0, 8)
    first = nightly_session(store, suite_dir, out, "101")
    assert runner.run_all(first)
    data = json.loads((suite_dir / "evaluation/eval_dataset.json").read_text())
    sources = {r["metadata"]["source_trace"] for r in data["rows"]}
    assert sources and sources <= set(first_ids)
    mark = json.loads((suite_dir / "state/watermark.json").read_text())
    assert mark["runs"] == 1 and mark["traces_total"] == 8

    # A person reviews the suite: labels one row, adds a note to scorers.py.
    data["rows"][0]["expectations"] = {"expected_facts": ["ships tomorrow"]}
    (suite_dir / "evaluation/eval_dataset.json").write_text(json.dumps(data, indent=2))
    scorers = suite_dir / "evaluation/scorers.py"
    scorers.write_text(scorers.read_text() + "\n# reviewed: keep the threshold as it is\n")
    edited = scorers.read_text()

    new_ids = add_support_traces(store, 100, 5)
    second = nightly_session(store, suite_dir, out, "102")
    assert runner.run_all(second)
    init = second.plan().task("initializer").summary
    assert init["new_traces"] == 5 and init["traces"] == 5  # only the new traces were analyzed
    data2 = json.loads((suite_dir / "evaluation/eval_dataset.json").read_text())
    assert data2["rows"][0] == data["rows"][0]  # the person's label is still there
    added = [r for r in data2["rows"] if r["metadata"].get("added_in") == "102"]
    assert added and {r["metadata"]["source_trace"] for r in added} <= set(new_ids)
    assert len({r["metadata"]["source_trace"] for r in data2["rows"]}) == len(data2["rows"])  # no duplicates
    assert scorers.read_text() == edited
    assert (suite_dir / "evaluation/scorers.py.new").exists()
    (conflict,) = json.loads((suite_dir / "state/generated_files.json").read_text())["conflicts"]
    assert conflict["file"] == "evaluation/scorers.py"
    assert "evaluation/scorers.py.new" in (suite_dir / "SUITE.md").read_text()
    assert second.validation().passed  # the person's scorers.py was what ran
    mark2 = json.loads((suite_dir / "state/watermark.json").read_text())
    assert mark2["runs"] == 2 and mark2["timestamp_ms"] > mark["timestamp_ms"] and mark2["traces_total"] == 13

    # Nothing new: generation is skipped, the suite is validated as it is.
    third = nightly_session(store, suite_dir, out, "103")
    assert runner.run_all(third)
    assert [t.status for t in third.plan().tasks] == [
        "completed",
        "skipped",
        "skipped",
        "skipped",
        "completed",
        "skipped",
    ]
    assert json.loads((suite_dir / "evaluation/eval_dataset.json").read_text()) == data2
    assert len(json.loads((suite_dir / "state/runs.json").read_text())) == 3


@pytest.mark.slow
def test_a_failed_night_publishes_nothing_and_keeps_the_watermark(store, tmp_path):
    from trace2eval.sessions import runner

    suite_dir, out = tmp_path / "suite", tmp_path / "sessions"
    add_support_traces(store, 0, 6)
    assert runner.run_all(nightly_session(store, suite_dir, out, "201"))
    before = {p.name: p.read_bytes() for p in (suite_dir / "state").iterdir()}
    dataset_before = (suite_dir / "evaluation/eval_dataset.json").read_bytes()
    scorers = suite_dir / "evaluation/scorers.py"
    scorers.write_text(
        scorers.read_text().replace(
            "def get_code_scorers():", "def get_code_scorers():\n    raise RuntimeError('half-finished edit')", 1
        )
    )

    add_support_traces(store, 50, 4)
    broken = nightly_session(store, suite_dir, out, "202")
    with pytest.raises(ValidationFailed, match="evaluation/scorers.py was edited by a person"):
        runner.run_all(broken)
    assert broken.validation().passed is False
    assert broken.plan().task("fix").status == "failed"
    assert {
        p.name: p.read_bytes() for p in (suite_dir / "state").iterdir()
    } == before  # watermark and history untouched
    assert (suite_dir / "evaluation/eval_dataset.json").read_bytes() == dataset_before
    assert "half-finished edit" in scorers.read_text()


# -- a validate timeout never costs curated rows ---------------------------------------------------

TOPICS = [
    "refund for a broken kettle",
    "cancel my gym membership",
    "upgrade the phone plan",
    "lost luggage at the airport",
    "change the delivery address",
    "invoice shows a double charge",
    "reset the router password",
    "book a table for four",
    "renew the car insurance",
    "warranty on the washing machine",
    "pause the newspaper subscription",
    "transfer points to my spouse",
    "missing parcel from last week",
    "switch the electricity tariff",
    "extend the hotel stay",
]


def add_varied_traces(store, topics: list[str]) -> list[str]:
    """Requests different enough that the dataset keeps one row per trace (no near-duplicates)."""
    return [
        store.add(
            f"Please help: {topic}.",
            f"Handled: {topic}.",
            tools=[
                {"name": "lookup_account", "args": {"topic": topic}},
                {"name": "update_account", "args": {"topic": topic}, "error": i % 4 == 0},
            ],
        )
        for i, topic in enumerate(topics)
    ]


@pytest.mark.slow
def test_a_timeout_sheds_only_automatic_rows_and_the_suite_keeps_every_curated_one(store, tmp_path):
    from trace2eval.sessions import runner
    from trace2eval.sessions.files import read_json, write_json
    from trace2eval.state.dataset import is_curated

    suite_dir, out = tmp_path / "suite", tmp_path / "sessions"
    add_varied_traces(store, TOPICS[:10])
    assert runner.run_all(nightly_session(store, suite_dir, out, "301"))

    # A person curates the suite: pins a row, labels another, keeps an LLM-proposed one (at the end
    # of the list, where cutting the dataset in half would lose them).
    dataset_file = suite_dir / "evaluation/eval_dataset.json"
    data = json.loads(dataset_file.read_text())
    assert len(data["rows"]) >= 8 and not any(is_curated(r) for r in data["rows"])
    data["rows"][-1]["metadata"]["pinned"] = True
    data["rows"][-2]["expectations"] = {"expected_facts": ["handled"]}
    data["rows"][-3]["metadata"]["source"] = "llm"
    dataset_file.write_text(json.dumps(data, indent=2))
    curated = [r for r in data["rows"] if is_curated(r)]
    assert len(curated) == 3

    add_varied_traces(store, TOPICS[10:])
    session = nightly_session(store, suite_dir, out, "302")
    config = session.config()
    write_json(session.config_file, {**config.model_dump(mode="json"), "validate_timeout_s": 1})
    for task in ("initializer", "dataset", "scorers", "script", "validate"):
        runner.run_task(session, task)
    validation = session.validation().model_dump()
    assert validation["validation_status"] == "failed" and validation["details"]["timed_out"]
    assert "timeout" in {p["kind"] for p in validation["problems"]}
    before = read_json(session.dataset_json)["rows"]

    # The machine was only slow for a while: the fix reads the normal timeout again.
    write_json(session.config_file, config.model_dump(mode="json"))
    runner.run_task(session, "fix")
    assert session.validation().passed

    published = json.loads(dataset_file.read_text())
    rows = published["rows"]
    assert all(row in rows for row in curated)  # every curated row, exactly as the person left it
    assert len(rows) == max(5, len(before) // 2) and len(rows) < len(before)
    shed = [r for r in before if r not in rows]
    assert shed and not any(is_curated(r) for r in shed)
    shed_ids = {r["metadata"]["source_trace"] for r in shed}
    assert {s["trace_id"] for s in published["skipped"] if "timed out" in s["reason"]} == shed_ids
    page = (suite_dir / "SUITE.md").read_text()
    assert "## Notes from this run" in page and f"{len(shed)} automatically drawn dataset row(s) were shed" in page
    fix_log = read_json(session.state_dir / "fix_log.json")
    assert any(c.startswith(f"shed {len(shed)} of {len(before)} dataset rows") for c in fix_log[0]["changes"])


def test_nothing_to_shed_when_every_row_is_curated(tmp_path):
    from trace2eval.sessions.tasks.fix import shed_rows

    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner
    from trace2eval.state.dataset import write_dataset

    config = SessionConfig.from_inputs("1", f"sqlite:///{tmp_path / 'mlflow.db'}")
    session = runner.create_session(config, tmp_path / "sessions", session_id="s")
    rows = [
        {
            "inputs": {"q": i},
            "outputs": {},
            "expectations": {"expected_facts": [str(i)]},
            "metadata": {"source_trace": f"t{i}", "case_type": "sample"},
        }
        for i in range(12)
    ]
    write_dataset(session, rows)
    assert shed_rows(session, 1) is None
    assert json.loads(session.dataset_json.read_text())["rows"] == rows


# -- the watermark never moves into the future -----------------------------------------------------


def test_a_future_timestamp_is_clamped_to_now_and_remembered():
    now = 1_800_000_000_000
    window = window_for(None, overlap_minutes=60, initial_since_ms=None)
    assert window.accepts("real", now - HOUR) and window.accepts("from-2096", 3_980_000_000_000)
    mark = window.advanced("run-1", at_ms=now)
    assert mark.timestamp_ms == now and mark.future == {"from-2096": 3_980_000_000_000}
    assert "1 trace(s) are dated in the future (e.g. from-2096 at 2096" in window.clamp_note()

    second = window_for(Watermark.model_validate(mark.model_dump()), 60, None, at_ms=now + HOUR)
    assert second.since_ms == now - HOUR
    assert not second.accepts("from-2096", 3_980_000_000_000)  # not "new" again every night
    assert second.accepts("later", now + HOUR)
    assert second.advanced("run-2", at_ms=now + HOUR).timestamp_ms == now + HOUR and second.clamp_note() is None


def test_a_watermark_already_in_the_future_is_rewound():
    now = 1_800_000_000_000
    broken = Watermark(
        timestamp_ms=3_980_000_000_000,
        overlap_ms=HOUR,
        recent={"from-2096": 3_980_000_000_000},
        updated_at="2027-01-15T02:00:00+00:00",
    )  # = now - 6 h
    window = window_for(broken, 60, None, at_ms=now)
    assert window.since_ms == now - 7 * HOUR and window.rewound_from_ms == 3_980_000_000_000
    assert window.accepts("hidden-by-the-old-mark", now - 3 * HOUR)
    mark = window.advanced("run", at_ms=now)
    assert mark.timestamp_ms == now - 3 * HOUR and "from-2096" in mark.future
    assert "the previous watermark (2096" in window.clamp_note()


@pytest.mark.slow
def test_a_trace_dated_2096_does_not_hide_the_traces_after_it(store, tmp_path, capfd):
    from poisonfactory import add_current_traces, write_trace

    from trace2eval.sessions import runner

    suite_dir, out = tmp_path / "suite", tmp_path / "sessions"
    first_ids = add_current_traces(store, 0, 8)
    future = write_trace(
        store,
        "Where is order 96? From a client with a broken clock.",
        tool="update_address",
        start_time_ns=3_980_000_000_000 * 1_000_000,
    )
    first = nightly_session(store, suite_dir, out, "401")
    assert runner.run_all(first)
    assert "are dated in the future (e.g. " + future in capfd.readouterr().err
    mark = json.loads((suite_dir / "state/watermark.json").read_text())
    assert mark["timestamp_ms"] < 3_000_000_000_000 and future in mark["future"]
    assert "are dated in the future" in (suite_dir / "SUITE.md").read_text()
    assert first.plan().task("initializer").summary["new_traces"] == len(first_ids) + 1

    later = add_current_traces(store, 100, 5)
    second = nightly_session(store, suite_dir, out, "402")
    assert runner.run_all(second)
    init = second.plan().task("initializer").summary
    assert init["new_traces"] == len(later)  # the real traces after the first run, and not the 2096 one again
    rows = json.loads((suite_dir / "evaluation/eval_dataset.json").read_text())["rows"]
    assert {r["metadata"]["source_trace"] for r in rows if r["metadata"].get("added_in") == "402"} <= set(later)
    assert json.loads((suite_dir / "state/watermark.json").read_text())["timestamp_ms"] >= mark["timestamp_ms"]
