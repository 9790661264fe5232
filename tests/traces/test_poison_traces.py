"""Poison traces: one trace that breaks a reader is skipped, counted and reported; the run goes on."""

from __future__ import annotations

import json
import math

import pytest
from poisonfactory import KINDS, add_poison_traces
from tracefactory import add_support_traces

from trace2eval.sessions.files import dumps_json, write_json, write_text
from trace2eval.traces.reader import plan_shards, read_digests, scan_index
from trace2eval.traces.source import (
    SkippedTraces,
    TraceQuery,
    UnreadableTrace,
    digest_or_skip,
    fetch_row_trace,
    iter_trace_pages,
    open_client,
)

# Kinds MLflow cannot load, or whose content breaks feature extraction: skipped, with the reason.
SKIPPED = {
    "corrupt_json": "JSONDecodeError",
    "deep_inputs": "RecursionError",
    "huge_int_args": "OverflowError",
    "nan_tokens": "ValueError",
}
# Kinds that read fine: analyzed, and made safe for every later stage.
READABLE = set(KINDS) - set(SKIPPED)


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """12 good traces and one of each poison kind (written once: ~10 s)."""
    from tracefactory import TraceStore

    store = TraceStore(tmp_path_factory.mktemp("poison") / "mlflow.db")
    good = add_support_traces(store, 0, 12)
    return store, good, add_poison_traces(store)


@pytest.mark.slow
def test_every_poison_kind_is_skipped_with_its_reason_or_read_safely(poisoned):
    store, good, poison = poisoned
    client = open_client(store.uri, store.experiment_id)
    query = TraceQuery(store.experiment_id)
    index = scan_index(client, query)
    assert index.count == len(good) + len(KINDS)
    skipped = SkippedTraces()
    digests = list(read_digests(store.uri, query, plan_shards(index, None), workers=1, skipped=skipped))

    by_id = {e["trace_id"]: e for e in skipped.examples}
    assert skipped.count == len(SKIPPED) and set(by_id) == {poison[k] for k in SKIPPED}
    for kind, error in SKIPPED.items():
        assert by_id[poison[kind]]["reason"].startswith(error), (kind, by_id[poison[kind]])
    assert by_id[poison["corrupt_json"]]["stage"] == "read" and by_id[poison["nan_tokens"]]["stage"] == "digest"
    assert skipped.by_stage == {"read": 1, "digest": 3}

    analyzed = {d["trace_id"] for d in digests}
    assert analyzed == set(good) | {poison[k] for k in READABLE}
    for digest in digests:  # strict JSON, valid UTF-8: nothing downstream meets the raw value
        json.dumps(digest, ensure_ascii=False, allow_nan=False).encode("utf-8")
    surrogate = next(d for d in digests if d["trace_id"] == poison["lone_surrogate"])
    assert "\ufffd" in json.dumps(surrogate, ensure_ascii=False)


@pytest.mark.slow
def test_a_corrupt_row_does_not_take_its_page_down(poisoned):
    store, good, poison = poisoned
    client = open_client(store.uri, store.experiment_id)
    pages = list(iter_trace_pages(client, TraceQuery(store.experiment_id), page_size=100))
    items = [t for page in pages for t in page]
    unreadable = [t for t in items if isinstance(t, UnreadableTrace)]
    assert [t.trace_id for t in unreadable] == [poison["corrupt_json"]]
    assert unreadable[0].timestamp_ms > 0 and "JSONDecodeError" in unreadable[0].reason
    assert len(items) == len(good) + len(KINDS)  # every other trace of the page came back whole


@pytest.mark.slow
def test_dataset_rows_from_readable_poison_are_strict_json(poisoned):
    from trace2eval.generate.dataset import Case, build_rows

    store, _, poison = poisoned
    client = open_client(store.uri, store.experiment_id)
    rows, skipped = build_rows(
        [Case(poison[k]) for k in sorted(READABLE)] + [Case(poison["corrupt_json"])],
        lambda tid: fetch_row_trace(client, tid),
        None,
    )
    assert skipped == [{"trace_id": poison["corrupt_json"], "reason": "trace not found"}]
    sources = {r["metadata"]["source_trace"]: r for r in rows}
    assert set(sources) <= {poison[k] for k in READABLE} and poison["deep_outputs_900"] in sources
    text = dumps_json(rows)
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)
    nan_row = sources.get(poison["nan_outputs"])
    assert nan_row is None or nan_row["outputs"]["score"] is None


def test_nan_token_usage_in_trace_info_skips_the_trace_not_the_run():
    # MLflow's sqlite store drops non-finite usage; a server or Databricks hands it over as JSON.
    from mlflow.entities import Trace, TraceData, TraceInfo, TraceLocation, TraceState

    info = TraceInfo(
        trace_id="tr-nan",
        trace_location=TraceLocation.from_experiment_id("1"),
        request_time=1_000,
        state=TraceState.OK,
        execution_duration=5,
        trace_metadata={"mlflow.trace.tokenUsage": '{"input_tokens": NaN, "output_tokens": Infinity}'},
    )
    record = digest_or_skip(Trace(info=info, data=TraceData(spans=[])))
    assert record["trace_id"] == "tr-nan" and record["stage"] == "digest" and "NaN" in record["unreadable"]


def test_state_files_are_strict_json_and_valid_utf8(tmp_path):
    deep: object = "bottom"
    for _ in range(3000):
        deep = [deep]
    value = {
        "nan": math.nan,
        "inf": -math.inf,
        "text": "a\ud800b",
        "nul": "a\x00b",
        "deep": deep,
        "pair": "\ud83d\ude00",
        "big": 10**5000,
    }
    write_json(tmp_path / "state.json", value)
    raw = (tmp_path / "state.json").read_bytes()
    back = json.loads(raw.decode("utf-8"))
    assert back["nan"] is None and back["inf"] is None and back["text"] == "a\ufffdb" and back["nul"] == "a\x00b"
    assert back["pair"] == "\U0001f600" and back["big"].startswith("[integer of")
    depth, node = 0, back["deep"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert depth < 200 and "cut" in node
    write_text(tmp_path / "report.md", "lone \udfff surrogate")
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == "lone \ufffd surrogate"


@pytest.mark.slow
def test_full_run_skips_poison_traces_and_validates(poisoned, cli, tmp_path):
    store, good, poison = poisoned
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "sessions")
    assert code == 0, err[-3000:]
    session = out.strip().splitlines()[-1]
    analysis = json.loads(open(f"{session}/state/analysis.json", encoding="utf-8").read())
    skipped = analysis["skipped_traces"]
    assert skipped["count"] == len(SKIPPED)
    assert {e["trace_id"] for e in skipped["traces"]} == {poison[k] for k in SKIPPED}
    assert all(e["reason"] for e in skipped["traces"])
    assert analysis["trace_summary"]["total_analyzed"] == len(good) + len(READABLE)
    assert set(good) <= set(analysis["case_index"])
    assert f"{len(SKIPPED)} trace(s) could not be read and were skipped" in err
    validation = json.loads(open(f"{session}/state/validation_results.json").read())
    assert validation["validation_status"] == "passed"
    report = open(f"{session}/report.md", encoding="utf-8").read()
    assert "traces skipped" in report and poison["corrupt_json"] in open(f"{session}/state/analysis.json").read()
    rows = json.loads(open(f"{session}/evaluation/eval_dataset.json", encoding="utf-8").read())["rows"]
    assert {r["metadata"]["source_trace"] for r in rows} & {
        poison[k] for k in READABLE
    }  # poison rows were evaluated too


def test_a_store_that_fails_every_read_is_an_error_not_poison(store):
    # A server that answers searches but no trace read (an outage mid-page) must fail the run: skipping
    # would move a nightly watermark past traces nothing is wrong with.
    import sqlite3

    from trace2eval.errors import SourceError

    for i in range(4):
        store.add(f"request {i}", "answer")
    db = sqlite3.connect(store.path)
    db.execute("UPDATE spans SET content = '{'")
    db.commit()
    db.close()
    client = open_client(store.uri, store.experiment_id)
    with pytest.raises(SourceError, match="no trace of a page of 4 could be read"):
        list(iter_trace_pages(client, TraceQuery(store.experiment_id)))
