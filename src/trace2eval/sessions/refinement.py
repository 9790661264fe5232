"""What a task asks of the LLM step that the runner runs after its deterministic step.

A task's `run(session)` returns its summary. Under the key `REFINE` it may put a `Refinement`
(the runner takes it out before recording the summary): whether the LLM step is wanted, why, and
the failure the deterministic step ended with, which the LLM session may try to repair. Without
one, every task the LLM layer knows is refined when an LLM is configured.

After the LLM step ran, the task module's optional `after_llm(session, summary, refinement)`
turns the summary (the LLM entries merged in) into the final one, e.g. recounting what the LLM
added. A `failure` stands, and the task fails with it, unless `after_llm` accepts the repair.
"""

from __future__ import annotations

from dataclasses import dataclass

from trace2eval.errors import Trace2EvalError

REFINE = "refine"


@dataclass(frozen=True)
class Refinement:
    wanted: bool = True
    why: str | None = None  # recorded in the task's summary as `llm_why` when the LLM step runs
    failure: Trace2EvalError | None = None

    @classmethod
    def not_wanted(cls) -> Refinement:
        return cls(wanted=False)
