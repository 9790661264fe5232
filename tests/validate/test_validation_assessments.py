"""Validation keeps one verdict per scorer on a production trace, however often it runs."""

from __future__ import annotations

from collections import Counter

import pytest

from trace2eval.validate.run import SOURCE_RUN_KEY, settle_validation_assessments


@pytest.mark.slow
def test_five_validations_leave_one_assessment_per_scorer(store):
    import mlflow
    from mlflow.entities import AssessmentSource, Feedback
    from mlflow.genai.scorers import scorer

    ids = [store.add({"q": f"question {i}"}, f"answer {i}") for i in range(3)]
    person = mlflow.log_feedback(
        trace_id=ids[0], name="helpful", value=True, source=AssessmentSource(source_type="HUMAN", source_id="ann")
    )

    @scorer
    def has_answer(outputs):
        return Feedback(value=bool(outputs), rationale="an answer")

    @scorer
    def short(outputs):
        return len(str(outputs)) < 100

    runs = []
    for _ in range(5):
        rows = [{"inputs": {"q": "x"}, "outputs": "y", "trace": mlflow.get_trace(i)} for i in ids]
        with mlflow.start_run(run_name="trace2eval-eval"):
            result = mlflow.genai.evaluate(data=rows, scorers=[has_answer, short])
        runs.append(result.run_id)
        summary = settle_validation_assessments(store.uri, store.experiment_id, result.run_id)
        assert summary["traces"] == 3
    assert summary["deleted"] == 6  # the previous validation's two verdicts on each of three traces

    # A person's own evaluation run (not a validation) keeps its verdicts.
    with mlflow.start_run(run_name="mine"):
        mine = mlflow.genai.evaluate(
            data=[{"inputs": {"q": "x"}, "outputs": "y", "trace": mlflow.get_trace(ids[1])}], scorers=[short]
        ).run_id

    for trace_id in ids:
        assessments = mlflow.get_trace(trace_id).info.assessments
        by_run = Counter(((a.metadata or {}).get(SOURCE_RUN_KEY), a.name) for a in assessments)
        from_validation = {k: n for k, n in by_run.items() if k[0] in runs}
        assert from_validation == {(runs[-1], "has_answer"): 1, (runs[-1], "short"): 1}
        if trace_id == ids[0]:
            assert person.assessment_id in {a.assessment_id for a in assessments}
        if trace_id == ids[1]:
            assert by_run[(mine, "short")] == 1
