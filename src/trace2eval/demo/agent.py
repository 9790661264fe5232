"""A small sample agent, traced with real MLflow tracing, for `trace2eval demo`.

A supervisor answers business questions by routing them to two specialist sub-agents exposed as
tools, `customer_sales` and `supply_chain`; each sub-agent runs its own LLM call and SQL tool.
Like the agent in the original write-up, it sometimes calls both specialists when one would do,
some requests fail (a warehouse query times out), and latencies vary. The "LLM" is simulated
and seeded, so the demo is deterministic and needs no network; span timings are recorded as if
the calls took their simulated durations, so the demo runs in seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MS = 1_000_000  # ns per ms
# What the supervisor's routing call is told (its system prompt): the demo suite's instructions judge
# reads every trace against it.
SUPERVISOR_INSTRUCTIONS = (
    "You are the supervisor of a data assistant for sales and supply-chain teams. Route each question "
    "to the specialist it needs: customer_sales for the sales pipeline (opportunities, stages, segments, "
    "regions), supply_chain for inventory, shipments and suppliers. Call both only when the question "
    "needs both. Answer only from what the specialists return. For a question outside sales and the "
    "supply chain, say that you can only help with those."
)

SALES_QUESTIONS = [
    "How's my pipeline just in the {region} and by segment?",
    "What is the total pipeline amount for {segment} accounts in {region}?",
    "Which opportunities in {region} are most likely to close this quarter?",
    "Show me the sales pipeline by stage for {region}.",
    "How many open deals do we have with {segment} customers?",
]
SUPPLY_QUESTIONS = [
    "What's the current inventory level for {product} in the {warehouse} warehouse?",
    "Are there any delayed shipments of {product} this week?",
    "Which suppliers are behind on deliveries for {product}?",
    "How many units of {product} are in transit to {warehouse}?",
]
MIXED_QUESTIONS = [
    "Do we have enough {product} inventory to cover the {region} pipeline?",
    "Compare {segment} demand in {region} with our {product} stock levels.",
]
SYSTEM_QUESTIONS = [
    "What data sources can you answer questions about?",
    "Which regions does the sales data cover?",
]
OUT_OF_SCOPE = [
    "Can you write me a poem about our CEO?",
    "What's the weather in Paris tomorrow?",
]
FILL = {
    "region": ["Americas", "EMEA", "APAC", "LATAM"],
    "segment": ["ENT", "MM", "SMB"],
    "product": ["widgets", "sensors", "controllers", "cables"],
    "warehouse": ["Reno", "Rotterdam", "Singapore"],
}


@dataclass(frozen=True)
class Request:
    question: str
    kind: str  # sales | supply | mixed | system | out_of_scope
    session: str


def sample_requests(n: int, seed: int = 7) -> list[Request]:
    rng = random.Random(seed)
    pools = [
        ("sales", SALES_QUESTIONS, 0.42),
        ("supply", SUPPLY_QUESTIONS, 0.33),
        ("mixed", MIXED_QUESTIONS, 0.1),
        ("system", SYSTEM_QUESTIONS, 0.1),
        ("out_of_scope", OUT_OF_SCOPE, 0.05),
    ]
    out = []
    for i in range(n):
        kind, templates, _ = rng.choices(pools, weights=[p[2] for p in pools])[0]
        text = rng.choice(templates).format(**{k: rng.choice(v) for k, v in FILL.items()})
        out.append(Request(text, kind, session=f"s{i // 3}"))
    return out


def _table(rng: random.Random, label: str) -> str:
    rows = [f"| {i} | {name} | {rng.randint(5_000, 30_000):,} |" for i, name in enumerate(["ENT", "MM", "SMB"])]
    return f"|    | {label} | amount |\n|---:|:---|---:|\n" + "\n".join(rows)


class SampleAgent:
    """The supervisor. `answer()` writes one MLflow trace per request."""

    def __init__(self, mlflow_module, seed: int = 7):
        self.mlflow = mlflow_module
        self.rng = random.Random(seed)

    def answer(self, request: Request, start_ns: int) -> str:
        from mlflow.entities import SpanStatusCode, SpanType

        mlflow, rng = self.mlflow, self.rng
        root = mlflow.start_span_no_context(
            name="supervisor",
            span_type=SpanType.AGENT,
            inputs={"query": request.question},
            start_time_ns=start_ns,
            attributes={"agent.version": "1.4.2"},
        )
        t = start_ns
        route = self._route(request)
        t = self._llm(
            root,
            "route_question",
            {
                "messages": [
                    {"role": "system", "content": SUPERVISOR_INSTRUCTIONS},
                    {"role": "user", "content": request.question},
                ]
            },
            {"content": f"route: {', '.join(route) or 'none'}"},
            t,
            rng.randint(700, 1400),
        )
        answers, failure = [], None
        for specialist in route:
            t, text, failure = self._specialist(root, specialist, request, t)
            if failure:
                break
            answers.append(text)
        status, outputs = SpanStatusCode.OK, None
        if failure == "timeout":
            root.add_event(
                _exception_event("TimeoutError", "Warehouse query exceeded 30000 ms (warehouse=wh-7f3a2c91)", t)
            )
            status = SpanStatusCode.ERROR
        elif failure == "empty":
            outputs = {"response": "I'm sorry, I couldn't retrieve that data right now. Please try again later."}
        elif request.kind == "system":
            outputs = {
                "response": "I can answer questions about the sales pipeline (opportunities, stages, "
                "segments, regions) and the supply chain (inventory, shipments, suppliers)."
            }
        elif request.kind == "out_of_scope":
            outputs = {"response": "I can only help with sales pipeline and supply chain questions."}
        else:
            t = self._llm(
                root,
                "compose_answer",
                {"messages": [{"role": "user", "content": request.question}]},
                {"content": "composed"},
                t,
                rng.randint(900, 2500),
            )
            outputs = {"response": "\n\n".join(answers)}
        root.end(outputs=outputs, status=status, end_time_ns=t + rng.randint(5, 40) * MS)
        return root.trace_id

    # -- internals -------------------------------------------------------------------------
    def _route(self, request: Request) -> list[str]:
        if request.kind in ("system", "out_of_scope"):
            return []
        if request.kind == "mixed":
            return ["customer_sales", "supply_chain"]
        one = "customer_sales" if request.kind == "sales" else "supply_chain"
        # The inefficiency from the write-up: sometimes both specialists are called.
        if self.rng.random() < 0.22:
            return ["customer_sales", "supply_chain"]
        return [one]

    def _llm(self, parent, name, inputs, outputs, t, ms):
        from mlflow.entities import SpanType

        span = self.mlflow.start_span_no_context(
            name=name,
            span_type=SpanType.CHAT_MODEL,
            parent_span=parent,
            inputs=inputs,
            start_time_ns=t,
            attributes={
                "mlflow.chat.tokenUsage": {
                    "input_tokens": ms // 3,
                    "output_tokens": ms // 20,
                    "total_tokens": ms // 3 + ms // 20,
                }
            },
        )
        span.end(outputs=outputs, end_time_ns=t + ms * MS)
        return t + ms * MS

    def _specialist(self, parent, name, request, t):
        from mlflow.entities import SpanStatusCode, SpanType

        rng = self.rng
        tool = self.mlflow.start_span_no_context(
            name=name,
            span_type=SpanType.TOOL,
            parent_span=parent,
            inputs={"question": request.question},
            start_time_ns=t,
        )
        t = self._llm(
            tool,
            f"{name}_genie",
            {"messages": [{"role": "user", "content": request.question}]},
            {"content": "SELECT ..."},
            t,
            rng.randint(800, 2000),
        )
        slow = rng.random() < 0.08
        query_ms = rng.randint(9_000, 16_000) if slow else rng.randint(400, 3_000)
        sql = self.mlflow.start_span_no_context(
            name="sql_query",
            span_type=SpanType.TOOL,
            parent_span=tool,
            inputs={"warehouse": name, "sql": f"SELECT * FROM {name}_facts LIMIT 100"},
            start_time_ns=t,
        )
        failure = None
        roll = rng.random()
        if name == "supply_chain" and roll < 0.12:
            failure = "timeout"
        elif roll > 0.95:
            failure = "empty"
        if failure == "timeout":
            sql.add_event(
                _exception_event("TimeoutError", "Warehouse query exceeded 30000 ms (warehouse=wh-7f3a2c91)", t)
            )
            sql.end(outputs=None, status=SpanStatusCode.ERROR, end_time_ns=t + 30_000 * MS)
            tool.end(outputs=None, status=SpanStatusCode.ERROR, end_time_ns=t + 30_010 * MS)
            return t + 30_010 * MS, "", failure
        if failure == "empty":
            sql.end(
                outputs={"error": "relation returned no rows"}, status=SpanStatusCode.OK, end_time_ns=t + query_ms * MS
            )
            tool.end(outputs={"error": "no data"}, end_time_ns=t + (query_ms + 20) * MS)
            return t + (query_ms + 20) * MS, "", failure
        label = "company_size_segment__c" if name == "customer_sales" else "product_line"
        table = _table(rng, label)
        sql.end(outputs={"rows": 3}, end_time_ns=t + query_ms * MS)
        text = (
            "Sales Pipeline" if name == "customer_sales" else "Supply chain status"
        ) + f" for your question:\n\n{table}"
        tool.end(outputs={"answer": text}, end_time_ns=t + (query_ms + 30) * MS)
        return t + (query_ms + 30) * MS, text, None


def _exception_event(exc_type: str, message: str, t: int):
    from mlflow.entities import SpanEvent

    return SpanEvent(
        name="exception",
        timestamp=t,
        attributes={
            "exception.type": exc_type,
            "exception.message": message,
            "exception.stacktrace": f"{exc_type}: {message}",
        },
    )
