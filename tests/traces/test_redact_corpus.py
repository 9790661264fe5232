"""Every secret format, planted where trace2eval cuts or lower-cases text, never reaches what it writes.

Each fake secret goes into a real trace (sqlite MLflow store) in every place a digest shortens or
normalizes: past the request/answer preview cut, past the tool-argument cut, in a failed tool's
output (normalized and lower-cased into the error), in an exception message, in a user turn, and
as a credential field. The digests, a session's files and the registered dataset's records must
hold no secret, in any case; ordinary ids and hashes must come through unchanged.
"""

from __future__ import annotations

import json

import pytest

from secret_corpus import ORDINARY, SECRETS
from tracefactory import add_support_traces
from trace2eval.traces.features import PREVIEW_CHARS

pytestmark = pytest.mark.slow  # writes ~50 traces through MLflow (~20 s)


def _filler(n: int) -> str:
    words = "please check the status of the shipment for me "
    return (words * (n // len(words) + 1))[:n]


def _add_secret_trace(store, secret) -> str:
    """One trace carrying `secret` in every kind of field, each time straddling that field's cut."""
    s = secret.text
    return store.add(
        _filler(PREVIEW_CHARS - 12) + " " + s + " thanks",
        _filler(PREVIEW_CHARS - 8) + " " + s,
        user_turns=[_filler(190) + " " + s, "my login is " + s],
        tools=[
            {"name": "lookup_account", "args": {"note": _filler(150) + " " + s, "password": "Tulip-" + "Rain-51"}},
            {"name": "update_account", "args": {"token": s}, "output": {"error": "denied for " + s}, "error": True},
            {"name": "reset_account", "args": {}, "output": "Error: " + _filler(180) + " " + s, "error": True},
        ],
        exception=("AuthError", "login failed with " + s),
        status="ERROR",
    )


def _leaks(text: str) -> list[str]:
    found = []
    for secret in SECRETS:
        found += [f"{secret.label}: {c[:12]}…" for c in {secret.core, secret.core.lower()} if c in text]
    if "Tulip-" + "Rain-51" in text or ("tulip-" + "rain-51") in text:
        found.append("password field")
    return found


@pytest.fixture(scope="module")
def secret_store(tmp_path_factory):
    from tracefactory import TraceStore

    store = TraceStore(tmp_path_factory.mktemp("secrets") / "mlflow.db")
    ids = [_add_secret_trace(store, s) for s in SECRETS]
    ordinary = store.add(
        " | ".join(ORDINARY),
        "Done: " + ORDINARY[2],
        tools=[{"name": "get_order", "args": {"trace": ORDINARY[1], "commit": ORDINARY[3]}}],
    )
    add_support_traces(store, 0, 12)
    return store, ids, ordinary


def test_no_secret_survives_in_any_digest(secret_store):
    from trace2eval.traces.digest import digest_trace

    store, ids, _ = secret_store
    for tid, secret in zip(ids, SECRETS):
        digest = json.dumps(digest_trace(store.trace(tid)), ensure_ascii=False)
        assert not _leaks(digest), (secret.label, _leaks(digest))
        assert "[redacted:" in digest.lower()


def test_ordinary_values_come_through_the_digest_unchanged(secret_store):
    from trace2eval.traces.digest import digest_trace

    store, _, ordinary = secret_store
    digest = digest_trace(store.trace(ordinary))
    text = json.dumps(digest, ensure_ascii=False)
    assert "REDACTED" not in text
    assert digest["answer"] == "Done: " + ORDINARY[2]
    for value in (
        "a3f1c9e2b4d6f8a0c2e4b6d8f0a1c3e5",
        "123e4567-e89b-12d3-a456-426614174000",
        "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "risk-adjusted-return-calculation",
    ):
        assert value in text


def test_dataset_rows_hold_no_secret(secret_store):
    from trace2eval.generate.dataset import Case, build_rows

    store, ids, _ = secret_store
    rows, _ = build_rows(
        [Case(tid, case_type="failure", reasons=["exhibits " + s.text]) for tid, s in zip(ids, SECRETS)], store.trace
    )
    assert len(rows) == len(SECRETS)
    for row, secret in zip(rows, SECRETS):
        assert not _leaks(json.dumps(row, ensure_ascii=False)), secret.label


def test_a_session_and_its_registered_dataset_hold_no_secret(secret_store, tmp_path):
    from mlflow.genai.datasets import get_dataset

    from trace2eval.config import SessionConfig
    from trace2eval.generate.dataset import Case, build_rows
    from trace2eval.report.dataset_registry import register_dataset
    from trace2eval.report.mlflow_context import tracking_uri
    from trace2eval.sessions import runner
    from trace2eval.sessions.files import read_json, write_json

    store, ids, _ = secret_store
    config = SessionConfig.from_inputs(store.experiment_id, store.uri)
    session = runner.create_session(config, tmp_path / "sessions")
    for task in ("initializer", "dataset", "scorers", "script"):
        runner.run_task(session, task)
    # The dataset task picks a sample; make sure every secret trace is a row before registering.
    dataset = read_json(session.dataset_json)
    extra, _ = build_rows([Case(tid, case_type="failure") for tid in ids], store.trace)
    write_json(session.dataset_json, {**dataset, "rows": dataset["rows"] + extra})

    files = {p: p.read_text(encoding="utf-8", errors="replace") for p in session.dir.rglob("*") if p.is_file()}
    assert files and not {str(p.relative_to(session.dir)): _leaks(t) for p, t in files.items() if _leaks(t)}

    registered = register_dataset(session)
    with tracking_uri(store.uri):
        records = get_dataset(dataset_id=registered["dataset_id"]).to_df()
    text = records.to_json(default_handler=str)
    # MLflow keys records by inputs: two secrets that redact to the same request are one record.
    assert len(records) >= len(SECRETS) - 5 and not _leaks(text)
