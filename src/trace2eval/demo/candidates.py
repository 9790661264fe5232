"""Two candidate versions of the sample agent, for the end of `trace2eval demo`.

Each is a plain function of the recorded request (`query`), traced with MLflow as the agent's own
code would be, deterministic and offline:
- `one_specialist`: the fix for the inefficiency the analysis finds: it routes each question to
  the one specialist it needs (both only for questions that mix sales and supply), and its warehouse
  queries no longer time out.
- `no_tools`: a regression: it answers from the model alone, without consulting a specialist.
"""

from __future__ import annotations

import mlflow
from mlflow.entities import SpanType

from trace2eval.demo.agent import SUPERVISOR_INSTRUCTIONS

SUPPLY_WORDS = ("inventory", "shipment", "supplier", "units of", "in transit", "stock")
SALES_WORDS = ("pipeline", "opportunit", "deals", "demand", "accounts")
SYSTEM_WORDS = ("data sources", "regions does")


def _route(question: str) -> list[str]:
    text = question.lower()
    if any(w in text for w in SYSTEM_WORDS):
        return []
    sales, supply = any(w in text for w in SALES_WORDS), any(w in text for w in SUPPLY_WORDS)
    return (["customer_sales"] if sales else []) + (["supply_chain"] if supply else [])


def _specialist(name: str, question: str) -> str:
    with mlflow.start_span(name=name, span_type=SpanType.TOOL) as tool:
        tool.set_inputs({"question": question})
        with mlflow.start_span(name=f"{name}_genie", span_type=SpanType.CHAT_MODEL) as llm:
            llm.set_inputs({"messages": [{"role": "user", "content": question}]})
            llm.set_outputs({"content": "SELECT ..."})
        with mlflow.start_span(name="sql_query", span_type=SpanType.TOOL) as sql:
            sql.set_inputs({"warehouse": name, "sql": f"SELECT * FROM {name}_facts LIMIT 100"})
            sql.set_outputs({"rows": 3})
        label = "Sales Pipeline" if name == "customer_sales" else "Supply chain status"
        text = f"{label} for your question:\n\n|    | amount |\n|---:|---:|\n| 0 | 12,000 |"
        tool.set_outputs({"answer": text})
    return text


def _answer(query: str, use_tools: bool) -> dict:
    route = _route(query)
    with mlflow.start_span(name="route_question", span_type=SpanType.CHAT_MODEL) as llm:
        llm.set_inputs(
            {"messages": [{"role": "system", "content": SUPERVISOR_INSTRUCTIONS}, {"role": "user", "content": query}]}
        )
        llm.set_outputs({"content": f"route: {', '.join(route) or 'none'}"})
    if not route:
        text = query.lower()
        if any(w in text for w in SYSTEM_WORDS):
            return {
                "response": "I can answer questions about the sales pipeline (opportunities, stages, "
                "segments, regions) and the supply chain (inventory, shipments, suppliers)."
            }
        return {"response": "I can only help with sales pipeline and supply chain questions."}
    if not use_tools:
        return {"response": "Based on what I know, things look on track for your question."}
    return {"response": "\n\n".join(_specialist(name, query) for name in route)}


def one_specialist(query: str) -> dict:
    """The fixed version: one specialist per question (two only when the question needs both)."""
    return _answer(query, use_tools=True)


def no_tools(query: str) -> dict:
    """The regressed version: answers without consulting its specialists."""
    return _answer(query, use_tools=False)
