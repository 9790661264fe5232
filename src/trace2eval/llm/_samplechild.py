"""Child process of `samplerun`: import a candidate scorers.py and call code scorers on sample rows.

Run as `python -I _samplechild.py JOB.json RESULT.json`, by path and in isolated mode, with a
minimal environment (no credentials). It needs only MLflow; the rows' traces arrive serialized in
the job file, so the child never talks to a tracking store.
"""

import inspect
import json
import os
import signal
import sys
import traceback


class CallTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CallTimeout()


def describe(value):
    """(ok, shown value, problem) for a scorer's return value, as mlflow.genai.evaluate sees it."""
    from mlflow.entities import Feedback

    if value is None:
        return False, None, "returned None: MLflow logs nothing for the row"
    if isinstance(value, Feedback):
        if value.error is not None:
            return False, None, f"Feedback carries an error: {value.error}"
        if value.value is None:
            return False, None, "Feedback(value=None): no value is logged"
        return True, value.value, None
    if isinstance(value, list) and value and all(isinstance(v, Feedback) for v in value):
        return True, [v.value for v in value], None
    if isinstance(value, (bool, int, float, str)):
        return True, value, None
    return False, None, f"returned {type(value).__name__}: must be Feedback, bool, int, float or str"


def main(job_path, result_path):
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    sys.path.insert(0, job["dir"])
    result = {"scorers": {}, "judges": None, "import_error": None}
    try:
        import scorers  # noqa: F401 (the candidate file in job["dir"])
        from mlflow.entities import Trace

        code_scorers = {s.name: s for s in scorers.get_code_scorers()}
    except Exception:
        result["import_error"] = traceback.format_exc(limit=6)[-2500:]
        _write(result_path, result)
        return
    traces = [Trace.from_json(r["trace"]) if r.get("trace") else None for r in job["rows"]]
    signal.signal(signal.SIGALRM, _on_alarm)
    for name in job["names"]:
        entry = {"rows": len(job["rows"]), "values": 0, "problems": [], "value_counts": {}}
        result["scorers"][name] = entry
        target = code_scorers.get(name)
        if target is None:
            entry["problems"].append({"row": None, "problem": "not returned by get_code_scorers()"})
            continue
        for i, (row, trace) in enumerate(zip(job["rows"], traces)):
            signal.alarm(int(job.get("call_timeout_s", 10)))
            try:
                # As Scorer.run does, pass only the parameters the function takes; called in this
                # thread (not MLflow's timeout thread) so the alarm can interrupt a runaway loop.
                args = {
                    "inputs": row["inputs"],
                    "outputs": row["outputs"],
                    "expectations": row.get("expectations") or {},
                    "trace": trace,
                }
                wanted = inspect.signature(target.__call__).parameters
                value = target(**{k: v for k, v in args.items() if k in wanted})
                ok, shown, problem = describe(value)
            except CallTimeout:
                ok, shown, problem = False, None, f"did not return within {job.get('call_timeout_s', 10)} s"
            except Exception as exc:
                tb = traceback.extract_tb(exc.__traceback__)
                where = next(
                    (f"line {f.lineno} in {f.name}" for f in reversed(tb) if f.filename.endswith("scorers.py")), ""
                )
                ok, shown, problem = False, None, f"{type(exc).__name__}: {str(exc)[:300]} {where}".strip()
            finally:
                signal.alarm(0)
            if problem and problem.startswith("did not return within"):
                entry["problems"].append({"row": i, "source_trace": row.get("source_trace"), "problem": problem})
                break  # a scorer that hangs once would hang on the other rows too
            if ok:
                entry["values"] += 1
                key = json.dumps(shown, default=str)[:40]
                entry["value_counts"][key] = entry["value_counts"].get(key, 0) + 1
            else:
                entry["problems"].append({"row": i, "source_trace": row.get("source_trace"), "problem": problem})
    try:
        judges = scorers.get_judge_scorers(job.get("judge_model_probe") or "databricks:/judge-probe")
        result["judges"] = {"count": len(judges), "names": [j.name for j in judges], "error": None}
    except Exception as exc:
        result["judges"] = {"count": 0, "names": [], "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    _write(result_path, result)


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, default=str)
    os.replace(tmp, path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
