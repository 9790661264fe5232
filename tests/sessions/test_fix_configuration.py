"""Problems no repair of the suite can fix are reported, not 'repaired' by dropping scorers."""

from types import SimpleNamespace

import pytest

from trace2eval.errors import ValidationFailed
from trace2eval.sessions.tasks.fix import refuse_to_repair_configuration
from trace2eval.traces.source import is_evaluation_trace


def test_a_judge_that_cannot_run_stops_the_fix_with_what_to_check():
    problems = [
        {
            "kind": "judge_unavailable",
            "scorer": "safety",
            "detail": "databricks:/no-such-endpoint: 404 ENDPOINT_NOT_FOUND",
        }
    ]
    with pytest.raises(ValidationFailed, match="the judges cannot run: databricks:/no-such-endpoint") as failure:
        refuse_to_repair_configuration(problems)
    assert "credentials" in failure.value.fix
    refuse_to_repair_configuration([{"kind": "scorer_error", "scorer": "x"}])  # repairable: no error


def test_stand_in_and_candidate_traces_are_not_production_traffic():
    assert is_evaluation_trace(SimpleNamespace(info=SimpleNamespace(tags={"trace2eval.stand_in_for": "tr-1"})))
    assert is_evaluation_trace(SimpleNamespace(info=SimpleNamespace(tags={"trace2eval.candidate": "m:f"})))
    assert is_evaluation_trace(SimpleNamespace(info=SimpleNamespace(tags={"mlflow.eval.requestId": "r"})))
    assert not is_evaluation_trace(SimpleNamespace(info=SimpleNamespace(tags={"mlflow.user": "a"})))
