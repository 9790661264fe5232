"""Per-trace features: the one implementation shared by the analyzer and the generated scorers.

trace2eval computes these features while it reads an experiment, decides thresholds from their
distribution, and copies this very file beside the generated `scorers.py`, whose code scorers call
`trace_features()` on any trace at evaluation time. So a scorer measures exactly what the analysis
measured. This module therefore depends on the standard library only and reads traces by duck
typing (an `mlflow.entities.Trace`, or the minimal trace MLflow builds for a dataset row).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from typing import Any, Callable, TypedDict

# How frameworks lay out spans and messages. In the generated suite layouts.py is copied in just
# before this file, and this import is dropped.
from .layouts import (  # noqa: F401  (ERROR_TEXT: part of this module's names)
    ERROR_TEXT,
    Message,
    answer_from_outputs,
    carried_messages,
    llm_reply,
    read_messages,
    request_from_messages,
    result_failed,
    tool_identity,
    unwrap_request,
)

PREVIEW_CHARS = 600
MAX_TOOL_CALLS_KEPT = 60
MAX_USER_TURNS_KEPT = 12
# The agent's instructions are kept whole for a judge that reads the trace against them (the
# development agents' system prompts are 5.7-7.7k characters); a longer prompt is cut here.
MAX_INSTRUCTIONS_CHARS = 12_000

TOOL_SPAN_TYPES = {"TOOL", "RETRIEVER"}
LLM_SPAN_TYPES = {"CHAT_MODEL", "LLM"}
AGENT_SPAN_TYPES = {"AGENT"}

# Verbs that name state-changing actions in tool names (domain-agnostic English).
WRITE_VERBS = (
    "add",
    "apply",
    "approve",
    "assign",
    "book",
    "buy",
    "cancel",
    "change",
    "charge",
    "close",
    "create",
    "delete",
    "deposit",
    "edit",
    "exchange",
    "execute",
    "grant",
    "insert",
    "issue",
    "modify",
    "move",
    "open",
    "order",
    "pay",
    "place",
    "post",
    "purchase",
    "refund",
    "register",
    "reject",
    "remove",
    "rename",
    "reserve",
    "reset",
    "return",
    "revoke",
    "schedule",
    "send",
    "set",
    "submit",
    "transfer",
    "update",
    "upgrade",
    "downgrade",
    "upsert",
    "withdraw",
    "write",
)
HANDOFF_WORDS = ("human", "escalat", "handoff", "hand_off", "operator", "live_agent", "supervisor_review")
GIVE_UP_PATTERNS = re.compile(
    r"\b(i(?:'m| am)? (?:sorry|unable|not able)|i (?:can(?:no|')t|cannot|could ?n[o']t)"
    r"|unfortunately|not possible|unable to (?:help|assist|process|complete|find|proceed)"
    r"|(?:transfer|connect|escalat)\w* (?:you )?(?:to|with) (?:a |an )?(?:human|agent|representative|specialist|supervisor)"
    r"|please (?:contact|call|reach out)|try again later|something went wrong|an error occurred)",
    re.IGNORECASE,
)
AFFIRMATION = re.compile(
    r"\b(yes|yeah|yep|yup|sure|ok(?:ay)?|confirm(?:ed)?|correct|go ahead|proceed|please do|do it"
    r"|sounds good|that'?s right|absolutely|definitely|approved?|agreed?"
    r"|that works|works for me|that(?:'|’)?s fine|fine by me|let(?:'|’)?s do (?:it|that))\b",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------------
# Reading spans by duck typing


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def span_type(span: Any) -> str:
    return str(_value(getattr(span, "span_type", None) or "UNKNOWN")).upper()


def span_status(span: Any) -> str:
    status = getattr(span, "status", None)
    code = getattr(status, "status_code", status)
    return str(_value(code) or "UNSET").upper()


def span_duration_ms(span: Any) -> float:
    start, end = getattr(span, "start_time_ns", None), getattr(span, "end_time_ns", None)
    if start is None or end is None:
        return 0.0
    return max(0.0, (end - start) / 1e6)


def span_exceptions(span: Any) -> list[tuple[str, str]]:
    found = []
    for event in getattr(span, "events", None) or []:
        if getattr(event, "name", "") == "exception":
            attrs = getattr(event, "attributes", {}) or {}
            found.append((str(attrs.get("exception.type", "Exception")), str(attrs.get("exception.message", ""))))
    return found


def _attribute(span: Any, key: str) -> Any:
    getter = getattr(span, "get_attribute", None)
    if getter is not None:  # MLflow spans decode one attribute instead of all of them
        return getter(key)
    return (getattr(span, "attributes", None) or {}).get(key)


def trace_spans(trace: Any) -> list[Any]:
    data = getattr(trace, "data", None)
    return [_SpanRecord.of(span) for span in getattr(data, "spans", None) or []]


class _SpanRecord:
    """A span read from its serialized form, `Span.to_dict()`.

    Spans a tracking store returns keep that form until a property is touched; building the
    full MLflow span then costs about as much as reading it. Features need a few fields and a
    few attributes, decoded here on demand and with the same rules as `Span.get_attribute`.
    """

    __slots__ = ("name", "span_id", "parent_id", "start_time_ns", "end_time_ns", "status", "events", "_raw", "_decoded")

    @classmethod
    def of(cls, span: Any) -> Any:
        to_dict = getattr(span, "to_dict", None)
        if to_dict is None:
            return span
        try:
            data = to_dict()
            return cls(data) if isinstance(data, dict) and "context" not in data else span  # "context": MLflow 2 layout
        except Exception:  # an unfamiliar layout: read the object itself
            return span

    def __init__(self, data: dict[str, Any]):
        self.name = data.get("name")
        self.span_id = data.get("span_id")
        self.parent_id = data.get("parent_span_id") or None
        start, end = data.get("start_time_unix_nano"), data.get("end_time_unix_nano")
        self.start_time_ns = int(start) if start is not None else None
        self.end_time_ns = int(end) if end else None
        status = data.get("status") or {}
        code = str(status.get("code") or "UNSET").removeprefix(
            "STATUS_CODE_"
        )  # OTel name, or the bare one older layouts keep
        self.status = _Status(code, status.get("message") or "")
        self.events = [_Event(e.get("name", ""), e.get("attributes") or {}) for e in data.get("events") or []]
        self._raw = data.get("attributes") or {}
        self._decoded: dict[str, Any] = {}

    def get_attribute(self, key: str) -> Any:
        if key not in self._decoded:
            value = self._raw.get(key) or None
            if isinstance(value, str):  # MLflow stores attribute values as JSON text
                try:
                    value = json.loads(value)
                except ValueError:
                    pass  # text set directly on the span
            self._decoded[key] = value
        return self._decoded[key]

    @property
    def attributes(self) -> dict[str, Any]:
        return {key: self.get_attribute(key) for key in self._raw}

    @property
    def span_type(self) -> Any:
        return self.get_attribute("mlflow.spanType")

    @property
    def inputs(self) -> Any:
        return self.get_attribute("mlflow.spanInputs")

    @property
    def outputs(self) -> Any:
        return self.get_attribute("mlflow.spanOutputs")


class _Status:
    __slots__ = ("status_code", "description")

    def __init__(self, status_code: str, description: str):
        self.status_code, self.description = status_code, description


class _Event:
    __slots__ = ("name", "attributes")

    def __init__(self, name: str, attributes: dict[str, Any]):
        self.name, self.attributes = name, attributes


def root_span(spans: list[Any]) -> Any | None:
    for span in spans:
        if getattr(span, "parent_id", None) is None:
            return span
    return spans[0] if spans else None


# ---------------------------------------------------------------------------------------------
# Text helpers


def to_text(value: Any, limit: int | None = None, scrub: Callable[[str], str] | None = None) -> str:
    """Readable text of any payload: strings stay, structures become compact JSON.

    `scrub` (a redactor) runs on the whole text before it is cut, so a secret straddling the cut
    is still recognized and no half of it survives. Text short enough to stay whole is left to the
    caller's one pass over the finished record (cheaper: most texts are short and secret-free).
    """
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
        except (TypeError, ValueError):
            text = str(value)
    if limit is not None and len(text) > limit:
        if scrub is not None:
            text = scrub(text)
        if len(text) > limit:
            text = text[:limit] + f"…[+{len(text) - limit} chars]"
    return text


def _message_text(message: Any) -> str:
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, list):  # content blocks
            return " ".join(str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content).strip()
        return "" if content is None else str(content)
    return "" if message is None else str(message)


def request_text(inputs: Any) -> str:
    """The user's request: the last user message, a query-like field, or the whole input."""
    if isinstance(inputs, str):
        return inputs
    inputs = unwrap_request(inputs)
    if isinstance(inputs, dict):
        said = request_from_messages(inputs)  # the last user turn, by position, in any message shape
        if said is not None:
            return said
        for key in ("query", "question", "prompt", "input", "request", "text", "message", "q"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
        if len(inputs) == 1:
            only = next(iter(inputs.values()))
            if isinstance(only, str):
                return only
    return to_text(inputs)


def request_shape(inputs: Any) -> str:
    """A short name for how requests are shaped, e.g. `messages`, `query`, `string`, `dict:a,b`."""
    if inputs is None:
        return "none"
    if isinstance(inputs, str):
        return "string"
    inputs = unwrap_request(inputs)
    if isinstance(inputs, dict):
        if isinstance(inputs.get("messages"), list):
            return "messages"
        keys = sorted(str(k) for k in inputs)
        return keys[0] if len(keys) == 1 else "dict:" + ",".join(keys[:6])
    return type(inputs).__name__


def answer_text(outputs: Any) -> str:
    """The agent's final answer from common output shapes (response, content, choices, messages)."""
    if outputs is None:
        return ""
    framed = answer_from_outputs(outputs)  # Responses items, LangGraph state, a reply asking for tools
    if framed is not None:
        return framed
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, dict):
        for key in ("response", "answer", "output", "content", "text", "result", "output_text"):
            value = outputs.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, (dict, list)) and value:
                return answer_text(value)
            if key in outputs and value is None:
                return ""
        choices = outputs.get("choices")
        if isinstance(choices, list) and choices:
            first = choices[0] if isinstance(choices[0], dict) else {}
            return _message_text(first.get("message") or first)
        messages = outputs.get("messages")
        if isinstance(messages, list) and messages:
            return _message_text(messages[-1])
    if isinstance(outputs, list) and outputs:
        return answer_text(outputs[-1])
    return to_text(outputs)


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_HEX_RUN = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b")
# A token mixing letters and digits (order_8f3k2, tr-1a2b3c, req_123): an id, not a word.
_ID_TOKEN = re.compile(r"\b(?=(?:[a-z_\-]*\d){3})(?=[\d_\-]*[a-z])[a-z0-9][a-z0-9_\-]{5,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Double quotes, or single quotes that are not apostrophes (can't, user's).
_QUOTED = re.compile(r"\"([^\"]*)\"|(?<!\w)'([^']*)'(?!\w)")
QUOTED_KEPT_CHARS = 40  # a quoted value longer than this is data (a user's text, a payload), not the message


def _short_quote(m: re.Match[str]) -> str:
    inner = m.group(1) if m.group(1) is not None else m.group(2)
    quote = m.group(0)[0]
    return m.group(0) if len(inner) <= QUOTED_KEPT_CHARS else f"{quote}<s>{quote}"


def normalize_message(text: str, scrub: Callable[[str], str] | None = None) -> str:
    """Error messages with ids and numbers replaced, so the same error groups together.

    Words and short quoted values stay, so the result still reads as the error it was:
    `{"error": "order 123 not found"}` becomes `{"error": "order <n> not found"}`. `scrub` (a
    redactor) runs first, on the original text: lower-casing would hide `AKIA…` from it.
    """
    if scrub is not None:
        text = scrub(text)
    text = _UUID.sub("<id>", text.lower())
    text = _HEX_RUN.sub("<id>", text)
    text = _ID_TOKEN.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    text = _QUOTED.sub(_short_quote, text)
    return re.sub(r"\s+", " ", text).strip()[:160]


def args_key(args: Any) -> str:
    return hashlib.sha1(to_text(args).encode("utf-8", "replace")).hexdigest()[:12]


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-zA-Z]+", spaced.lower()) if w]


def is_write_tool(name: str) -> bool:
    words = _name_words(name)
    return bool(words) and words[0] in WRITE_VERBS and not is_handoff_tool(name)


def max_identical_calls(tools: list[dict[str, Any]]) -> int:
    """How often the same tool was called with the same arguments, counted between state changes: a
    lookup repeated after a successful write (reading an order back after changing it) checks the new
    state, it is not a loop. A write repeated with the same arguments still counts (a double booking,
    or a failed write retried unchanged), and a failed write changes nothing."""
    best, seen = 0, {}
    for t in tools:
        call = (t["name"], t.get("key", ""))
        if is_write_tool(t["name"]) and t.get("ok", True):
            seen = {call: seen.get(call, 0)}  # what was read before this write may have changed
        if not t.get("key"):
            continue  # a digest from before arguments were keyed: compare nothing, a write still resets
        seen[call] = seen.get(call, 0) + 1
        best = max(best, seen[call])
    return best


def max_same_tool_streak(names: list[str]) -> int:
    """The longest run of calls to one tool in a row, whatever their arguments (paging, polling)."""
    streak = best = 0
    for i, name in enumerate(names):
        streak = streak + 1 if i and name == names[i - 1] else 1
        best = max(best, streak)
    return best


def is_handoff_tool(name: str) -> bool:
    lowered = name.lower()
    return any(w in lowered for w in HANDOFF_WORDS)


def output_looks_failed(output: Any) -> bool:
    return result_failed(output)


def looks_truncated(answer: str) -> bool:
    stripped = answer.rstrip()
    if not stripped:
        return False
    return stripped.endswith(("...", "…", ",", ":", ";", "(", "-")) or (
        len(stripped) > 80
        and stripped[-1].isalpha()
        and "\n" not in stripped[-40:]
        and " " in stripped[-40:]
        and not stripped.endswith(("!", "?", "."))
        and stripped.count(".") == 0
    )


# ---------------------------------------------------------------------------------------------
# The features


class ToolCall(TypedDict):
    """One tool (or retriever) call as the features record it."""

    name: str
    args: str  # the arguments as bounded text
    key: str  # the arguments' fingerprint, to spot identical calls
    ok: bool
    error: str | None  # normalized (and redacted, when a scrub is given)
    ms: float
    nested: bool  # the call ran spans of its own: a sub-agent


class TraceFeatures(TypedDict):
    """What `trace_features` returns: the contract between the analyzer, the checks in checks.py
    (and the declarative checks), and the generated scorers, which all read these keys."""

    status: str
    duration_ms: float
    n_spans: int
    root_name: str
    span_types: dict[str, int]
    request: str
    request_shape: str
    answer: str
    answer_chars: int
    has_answer: bool
    answer_truncated: bool
    gives_up: bool
    tools: list[ToolCall]
    n_tool_calls: int
    n_distinct_tools: int
    n_tool_errors: int
    n_unrecovered_tool_errors: int
    max_identical_calls: int
    max_same_tool_streak: int
    n_write_calls: int
    n_unconfirmed_writes: int
    max_write_repeats: int
    n_ungrounded_writes: int
    ungrounded_writes: list[str]
    handoff: bool
    n_agent_spans: int
    llm_calls: int
    llm_errors: int
    exceptions: list[tuple[str, str]]
    n_exceptions: int
    tokens_in: int
    tokens_out: int
    n_user_turns: int
    user_turns: list[str]
    # conversation signals (see `conversation_signals`)
    n_user_pushback: int
    n_user_repeats: int
    need_open: bool
    n_unbacked_claims: int
    unbacked_claims: list[str]
    # What the agent's instructions ask: True/False once a system (or developer) prompt was read,
    # None when the trace records none (then nothing is known of its policy).
    policy_asks_confirmation: bool | None
    policy_rules: dict[str, list[Any]]  # see `policy_rules`
    n_policy_breaches: int
    policy_breaches: list[str]
    # The first system (or developer) prompt the trace's model calls carried, "" when none did.
    instructions: str


def trace_features(
    trace: Any,
    inputs: Any = None,
    outputs: Any = None,
    scrub: Callable[[str], str] | None = None,
    turn: bool = False,
) -> TraceFeatures:
    """Small, JSON-able facts about one trace.

    `inputs`/`outputs` are used when given (a dataset row), otherwise the root span's.
    `scrub` is a redactor for text that is kept: it sees each text whole, before it is cut to a
    preview or lower-cased. trace2eval passes its own (`trace2eval.traces.redact`) when it writes
    features to a session; this file stays standard-library only because it is copied beside the
    generated scorers, which compute features in memory at evaluation time and need none.

    `turn`: the trace is one turn of a conversation traced once per turn. Its writes that used a
    value this trace cannot ground are kept (`pending_writes`), with a fixed-size mark of what its
    tools returned (`result_marks`), so that `merge_turns` judges them against the earlier turns.
    """
    spans = sorted(trace_spans(trace), key=lambda s: getattr(s, "start_time_ns", 0) or 0)
    root = root_span(spans)
    info = getattr(trace, "info", None)
    if inputs is None and root is not None:
        inputs = getattr(root, "inputs", None)
    if outputs is None and root is not None:
        outputs = getattr(root, "outputs", None)

    state = str(_value(getattr(info, "state", None) or (span_status(root) if root else "UNSET"))).upper()
    duration = getattr(info, "execution_duration", None)
    if duration is None:
        duration = span_duration_ms(root) if root is not None else 0.0

    answer = answer_text(outputs)
    tools: list[ToolCall] = []
    exceptions: list[tuple[str, str]] = []
    llm_calls = llm_errors = agent_spans = 0
    user_turns: list[str] = []
    timeline: list[tuple[str, str]] = []  # ("user", text) / ("assistant", text) / ("write", tool)
    evidence = _Evidence()  # what the user said and tools returned so far, to ground arguments
    ungrounded: list[str] = []
    n_ungrounded = 0
    marks = _Marks()  # what this turn's tools returned, for the turns after it (`turn`)
    pending: list[dict[str, Any]] = []  # writes whose grounding only the earlier turns can tell
    by_id = {getattr(s, "span_id", None): s for s in spans}
    parents = {getattr(s, "parent_id", None) for s in spans}
    span_types: dict[str, int] = {}
    history = _History()
    read: dict[Any, list[Message]] = {}  # messages by span id, read once
    instructions_seen: set[str] = set()  # each call repeats the system prompt: add it to the evidence once
    policy: list[str] = []  # the system (or developer) prompts read, once each
    calls_made: list[tuple[str, dict[str, int]]] = []  # (tool, its list arguments' sizes): for `policy_breaches`
    confirms = False
    evidence.add(request_text(inputs))
    # A request that carries the conversation so far (a chat agent traced once per turn): its earlier
    # turns' tool calls live in other traces. Read alone, what the agent said then is all this trace
    # knows of them; read as a `turn`, the earlier turns' own tool results judge it (`merge_turns`),
    # and the agent's words ground nothing, as in a conversation traced once.
    carried = carried_messages(inputs)
    current = max((i for i, m in enumerate(carried) if m.is_user_turn), default=-1)
    continues = any(m.role == "assistant" for m in carried[:current])
    if continues:
        for m in carried[:current]:
            if m.role != "assistant" or not turn:
                evidence.add(m.text)
            for result in m.results:
                evidence.add(to_text(result["content"]))
    # Without the earlier turns' tool results (most chat histories keep only what was said), a value a
    # write uses may come from a lookup this trace cannot see: its grounding cannot be judged here.
    grounding_visible = not continues or any(m.results for m in carried[:current])
    usage_spans: list[tuple[Any, dict[str, Any]]] = []
    has_tool_spans = any(span_type(s) in TOOL_SPAN_TYPES for s in spans)  # then they, not the messages, are the record

    def ungrounded_values(name: str, args: Any, keep: bool) -> list[Any]:
        """The write's values neither the user nor a tool gave so far; when this trace cannot tell
        (the earlier turns' tool results are elsewhere), none, and the write is kept for the merge."""
        missing = [v for v in _argument_values(args) if not evidence.has(v)]
        if grounding_visible:
            return missing
        if turn and keep and missing and len(pending) < 5:
            pending.append({"call": _call_text(name, missing, scrub), "values": [_Marks.tokens(v) for v in missing]})
        return []

    def record_write(name: str, args: Any) -> None:
        nonlocal n_ungrounded
        timeline.append(("write", name))
        missing = ungrounded_values(name, args, keep=True)
        if missing:
            n_ungrounded += 1
            if len(ungrounded) < 5:
                ungrounded.append(_call_text(name, missing, scrub))

    for span in spans:
        kind = span_type(span)
        span_types[kind] = span_types.get(kind, 0) + 1
        failed = span_status(span) == "ERROR"
        for exc in span_exceptions(span):
            exceptions.append((exc[0], normalize_message(exc[1], scrub)))
        if kind in LLM_SPAN_TYPES:
            outer = _outermost_llm(span, by_id)
            if outer is span:  # an LLM span wrapping another is one call, not two
                llm_calls += 1
                llm_errors += failed
            usage = _attribute(span, "mlflow.chat.tokenUsage")
            if isinstance(usage, dict):
                usage_spans.append((span, usage))
            # The wrapper and the wrapped span carry the same messages: read the outer one,
            # unless it has none (DSPy's Predict wraps the LM call that holds the prompt).
            if outer is not span and _messages_of(outer, read):
                continue
            # The agent's instructions and its tools' definitions list the values it may choose from (a
            # cancellation reason, a cabin class): a write using one of them made nothing up. A turn marks
            # them too: a conversation may send its instructions with the first turn only.
            prompts, definitions = _instructions(span, _messages_of(span, read))
            for text in prompts + definitions:
                if text not in instructions_seen:
                    instructions_seen.add(text)
                    evidence.add(text)
                    if turn:
                        marks.add(text)
                    policy += [text] if text in prompts else []
                    confirms = confirms or asks_for_confirmation([text])
            for message, where in history.read(_messages_of(span, read)):
                if where == "seen":  # an earlier call of this trace already carried it
                    continue
                for result in message.results:
                    call = history.calls.get(result["id"])
                    if where == "new" and call is not None:
                        name = str(call["name"])
                        missing = []
                        if is_write_tool(name):
                            # counted from the messages only when there are no TOOL spans (below)
                            missing = ungrounded_values(name, call["args"], keep=not has_tool_spans)
                            history.message_writes.add(len(timeline))
                            timeline.append(("write", name))
                        history.found.append((call, result, missing))
                    returned = to_text(result["content"])
                    evidence.add(returned)
                    if turn:
                        marks.add(returned)
                if message.is_user_turn:
                    evidence.add(message.text)
                    user_turns.append(message.text)
                    timeline.append(("user", message.text))
                elif message.role == "assistant" and message.text:
                    timeline.append(("assistant", message.text))
                    if where == "history" and not turn:  # said in an earlier trace, whose tool results this one lacks
                        evidence.add(message.text)
            reply = llm_reply(getattr(span, "outputs", None))
            if reply is not None:
                history.said(reply)
                if reply.text:
                    timeline.append(("assistant", reply.text))
        elif kind in TOOL_SPAN_TYPES:
            span_args = getattr(span, "inputs", None)
            name, span_args = tool_identity(
                str(getattr(span, "name", "tool")), span_args, lambda k: _attribute(span, k)
            )
            out = getattr(span, "outputs", None)
            ok = not failed and not output_looks_failed(out)
            error = None
            if not ok:
                excs = span_exceptions(span)
                error = normalize_message(excs[0][1] if excs else to_text(out, 200, scrub) or "error status", scrub)
            tools.append(
                {
                    "name": name,
                    "args": to_text(span_args, 160, scrub),
                    "key": args_key(span_args),
                    "ok": ok,
                    "error": error,
                    "ms": round(span_duration_ms(span), 1),
                    # A tool that runs its own spans (LLM calls, tools) is a sub-agent.
                    "nested": getattr(span, "span_id", None) in parents,
                }
            )
            calls_made.append((name, _list_sizes(span_args)))
            if is_write_tool(name):
                record_write(name, span_args)
            returned = to_text(out)
            evidence.add(returned)
            if turn:
                marks.add(returned)
        elif kind in AGENT_SPAN_TYPES and span is not root and not _same_call_as_parent(span, by_id):
            agent_spans += 1

    if not has_tool_spans:
        # No TOOL spans (a bare SDK loop): the tool calls are the ones whose results the
        # messages carry, each counted in the trace of the model call that first saw its result.
        for call, result, missing in history.found:
            name = str(call["name"])
            calls_made.append((name, _list_sizes(call["args"])))
            tools.append(
                {
                    "name": name,
                    "args": to_text(call["args"], 160, scrub),
                    "key": args_key(call["args"]),
                    "ok": not result["failed"],
                    "error": normalize_message(to_text(result["content"], 200, scrub), scrub)
                    if result["failed"]
                    else None,
                    "ms": 0.0,
                    "nested": False,
                }
            )
            if missing:
                n_ungrounded += 1
                if len(ungrounded) < 5:
                    ungrounded.append(_call_text(name, missing, scrub))
    else:  # the TOOL spans are the record; writes seen in the messages are counted there
        timeline = [e for i, e in enumerate(timeline) if i not in history.message_writes]

    tokens_in = tokens_out = 0
    covered = {a for span, _ in usage_spans for a in _ancestor_ids(span, by_id)}
    for span, usage in usage_spans:
        if getattr(span, "span_id", None) not in covered:  # a wrapper's usage repeats the wrapped call's
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out += int(usage.get("output_tokens") or 0)
    usage = getattr(info, "token_usage", None) if info is not None else None
    if isinstance(usage, dict):
        # MLflow's trace total can leave out a span's usage (seen with LangGraph) and the span sum
        # misses usage recorded only on the trace (DSPy): the larger one is the complete one.
        total_in, total_out = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        if total_in + total_out > tokens_in + tokens_out:
            tokens_in, tokens_out = total_in, total_out

    if not user_turns:  # no chat messages, or only a framework's prompts: the request's conversation
        said = [m for m in carried if m.is_user_turn or (m.role == "assistant" and m.text)]
        if any(m.is_user_turn for m in said):
            user_turns += [m.text for m in said if m.is_user_turn]
            timeline[:0] = [("user" if m.is_user_turn else "assistant", m.text) for m in said]
        elif first := request_text(inputs):
            user_turns.append(first)
            timeline.insert(0, ("user", first))
    said_last = next((text for kind, text in reversed(timeline) if kind == "assistant"), None)
    if answer.strip() and (said_last or "").strip() != answer.strip():
        # The answer the trace returned is the agent's last word even where no model span says it (a model
        # call not traced, a reply the agent rewrote): claims in it count.
        timeline.append(("assistant", answer))
    repeats = max_identical_calls(tools)

    unconfirmed = _unconfirmed_writes(timeline)
    writes = [t["name"] for t in tools if is_write_tool(t["name"])]
    last_ok = max((i for i, t in enumerate(tools) if t["ok"]), default=-1)
    unrecovered = [t for i, t in enumerate(tools) if not t["ok"] and i > last_ok]
    features: TraceFeatures = {
        "status": state,
        "duration_ms": round(float(duration or 0.0), 1),
        "n_spans": len(spans),
        "root_name": str(getattr(root, "name", "") or ""),
        "span_types": span_types,
        "request": to_text(request_text(inputs), PREVIEW_CHARS, scrub),
        "request_shape": request_shape(inputs),
        "answer": to_text(answer, PREVIEW_CHARS, scrub),
        "answer_chars": len(answer),
        "has_answer": bool(answer.strip()),
        "answer_truncated": looks_truncated(answer),
        "gives_up": bool(GIVE_UP_PATTERNS.search(answer[-800:])) if answer else False,
        "tools": tools[:MAX_TOOL_CALLS_KEPT],
        "n_tool_calls": len(tools),
        "n_distinct_tools": len({t["name"] for t in tools}),
        "n_tool_errors": sum(not t["ok"] for t in tools),
        # failures after which no tool call succeeded: the agent did not recover
        "n_unrecovered_tool_errors": len(unrecovered),
        "max_identical_calls": repeats,
        "max_same_tool_streak": max_same_tool_streak([t["name"] for t in tools]),
        "n_write_calls": len(writes),
        "n_unconfirmed_writes": unconfirmed,
        "max_write_repeats": max((writes.count(w) for w in set(writes)), default=0),
        "n_ungrounded_writes": n_ungrounded,
        "ungrounded_writes": ungrounded,
        "handoff": any(is_handoff_tool(t["name"]) for t in tools),
        "n_agent_spans": agent_spans,
        "llm_calls": llm_calls,
        "llm_errors": llm_errors,
        "exceptions": exceptions[:5],
        "n_exceptions": len(exceptions),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "n_user_turns": len(user_turns),
        "user_turns": [to_text(u, 200, scrub) for u in user_turns[:MAX_USER_TURNS_KEPT]],
    }
    features.update(conversation_signals(user_turns, timeline, tools, continues))  # type: ignore[typeddict-item]
    # Tool definitions alone are no policy: without a prompt, what the agent was told stays unknown.
    features["policy_asks_confirmation"] = True if confirms else (False if policy else None)
    rules = policy_rules(policy)
    breaches = policy_breaches(rules, calls_made)
    features.update(policy_rules=rules, n_policy_breaches=len(breaches), policy_breaches=breaches[:3])
    features["instructions"] = to_text(policy[0], MAX_INSTRUCTIONS_CHARS, scrub) if policy else ""
    if turn:
        features["result_marks"] = marks.encoded()  # type: ignore[typeddict-unknown-key]
        features["pending_writes"] = pending  # type: ignore[typeddict-unknown-key]
        features["continues"] = continues  # type: ignore[typeddict-unknown-key]
        # the first turn's instructions may rule a later turn's calls: the merge checks them all
        features["policy_calls"] = calls_made[:MAX_TOOL_CALLS_KEPT]  # type: ignore[typeddict-unknown-key]
    return features


def session_features(session: Any) -> dict[str, Any]:
    """A conversation's features, as a session-level scorer reads them: the turns' traces (what
    MLflow hands such a scorer) in time order, merged (`merge_turns`)."""
    turns = sorted(session or [], key=lambda t: (t.info.request_time or 0, t.info.trace_id))
    return merge_turns([trace_features(t, turn=True) for t in turns])


def merge_turns(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One conversation's per-turn features (one trace per user turn, in time order) as one trace's.

    A conversation split into per-turn traces is judged as a whole, like the same conversation
    traced once: calls and errors add up, an error counts as unrecovered only when no later call of
    the conversation succeeded, the request is the opening one and the answer the last. Identical
    calls are counted across turns too, between state changes (`max_identical_calls`; a successful
    write from a digest without argument keys still changes state). The
    user-turn signals come from the last turn when its request carries the conversation so far,
    else they add up. Keys other than the features (ids, labels) are the last turn's.
    """
    if len(turns) <= 1:
        return dict(turns[0]) if turns else {}
    first, last = turns[0], turns[-1]
    merged = dict(last)
    # The conversation's answer is the last one given: a closing turn may end in a call (a hand-off)
    answered = next((f for f in reversed(turns) if f.get("has_answer")), last)
    for key in ("answer", "answer_chars", "has_answer", "answer_truncated", "gives_up"):
        if key in answered:
            merged[key] = answered[key]
    tools = [t for f in turns for t in f.get("tools", [])]

    def total(key: str) -> int:
        return sum(int(f.get(key) or 0) for f in turns)

    names = [t["name"] for t in tools]
    max_identical = max(int(f.get("max_identical_calls") or 0) for f in turns)
    last_ok = max((i for i, t in enumerate(tools) if t["ok"]), default=-1)
    writes = [n for n in names if is_write_tool(n)]
    across = _ungrounded_across_turns(turns)
    span_types: dict[str, int] = {}
    for f in turns:
        for k, v in (f.get("span_types") or {}).items():
            span_types[k] = span_types.get(k, 0) + int(v)
    for key in ("result_marks", "pending_writes", "continues", "policy_calls"):  # a turn's, spent on the merge
        merged.pop(key, None)
    merged.update(
        status="ERROR" if any(str(f.get("status")) == "ERROR" for f in turns) else last.get("status", "OK"),
        duration_ms=round(sum(float(f.get("duration_ms") or 0) for f in turns), 1),
        n_spans=total("n_spans"),
        root_name=first.get("root_name", ""),
        span_types=span_types,
        request=first.get("request", ""),
        request_shape=first.get("request_shape", ""),
        tools=tools[:MAX_TOOL_CALLS_KEPT],
        n_tool_calls=total("n_tool_calls"),
        n_distinct_tools=max(len(set(names)), max(int(f.get("n_distinct_tools") or 0) for f in turns)),
        n_tool_errors=total("n_tool_errors"),
        n_unrecovered_tool_errors=sum(not t["ok"] for t in tools[last_ok + 1 :]),
        max_identical_calls=max(max_identical_calls(tools), max_identical),
        max_same_tool_streak=max(
            max_same_tool_streak(names), max(int(f.get("max_same_tool_streak") or 0) for f in turns)
        ),
        n_write_calls=total("n_write_calls"),
        n_unconfirmed_writes=total("n_unconfirmed_writes"),
        max_write_repeats=max((writes.count(w) for w in set(writes)), default=0),
        n_ungrounded_writes=total("n_ungrounded_writes") + len(across),
        ungrounded_writes=([w for f in turns for w in f.get("ungrounded_writes", [])] + across)[:5],
        handoff=any(f.get("handoff") for f in turns),
        n_agent_spans=total("n_agent_spans"),
        llm_calls=total("llm_calls"),
        llm_errors=total("llm_errors"),
        exceptions=[e for f in turns for e in f.get("exceptions", [])][:5],
        n_exceptions=total("n_exceptions"),
        tokens_in=total("tokens_in"),
        tokens_out=total("tokens_out"),
        n_unbacked_claims=total("n_unbacked_claims"),
        unbacked_claims=[c for f in turns for c in f.get("unbacked_claims", [])][:3],
        # the instructions may come with the first turn only: what any turn read holds for all
        policy_asks_confirmation=_any_known([f.get("policy_asks_confirmation") for f in turns]),
        instructions=next((str(f["instructions"]) for f in turns if f.get("instructions")), ""),
    )
    rules: dict[str, list[Any]] = {"forbidden": [], "limits": []}
    for f in turns:
        for kind, found in (f.get("policy_rules") or {}).items():
            rules.setdefault(kind, []).extend(r for r in found if r not in rules[kind])
    calls = [(str(c[0]), dict(c[1])) for f in turns for c in f.get("policy_calls") or []]
    # Turns read as turns (`turn=True`) keep their calls: the conversation's calls meet every turn's rules.
    breaches = policy_breaches(rules, calls) if calls else [b for f in turns for b in f.get("policy_breaches") or []]
    merged.update(policy_rules=rules, n_policy_breaches=len(breaches), policy_breaches=breaches[:3])
    if int(last.get("n_user_turns") or 0) < len(turns):  # each request holds only its own turn
        requests = [str(f.get("request") or "") for f in turns]
        signals = conversation_signals(requests, [], [])
        merged.update(
            n_user_turns=total("n_user_turns"),
            user_turns=[to_text(r, 200) for r in requests[:MAX_USER_TURNS_KEPT]],
            n_user_pushback=signals["n_user_pushback"],
            n_user_repeats=signals["n_user_repeats"],
            need_open=signals["need_open"],
        )
    return merged


def _any_known(values: list[bool | None]) -> bool | None:
    """True when any is True, False when some are known and none True, None when none is known."""
    known = [v for v in values if v is not None]
    return any(known) if known else None


def _ungrounded_across_turns(turns: list[dict[str, Any]]) -> list[str]:
    """The writes a turn could not ground on its own (`pending_writes`) whose values no earlier
    turn's tools returned either: ungrounded in the conversation, as one trace of it would read.

    When the first turn at hand continues an earlier one (a sample, or a dataset, that cut the
    conversation), the turns that could have grounded a write are missing: nothing is judged."""
    if turns and turns[0].get("continues"):
        return []
    returned = 0  # the earlier turns' result marks, OR-ed
    found = []
    for f in turns:
        for write in f.get("pending_writes") or []:
            if any(tokens and not _Marks.holds(returned, tokens) for tokens in write.get("values", [])):
                found.append(str(write.get("call", "")))
        returned |= _Marks.decode(f.get("result_marks"))
    return found


def _call_text(name: str, values: list[Any], scrub: Callable[[str], str] | None) -> str:
    return f"{name}({', '.join(to_text(v, 40, scrub) for v in values[:3])})"


class _Marks:
    """What a turn's tools returned, as a Bloom filter (8,192 bits, 3 probes) of its words and of
    each pair of adjacent words.

    A later turn of the conversation asks whether a value it used was returned earlier: the value's
    words and word pairs are looked up, so "2024-05-15" needs those words in that order, near enough
    to `_Evidence.has`'s substring test. Fixed size whatever the tool output (1,368 characters), and
    no returned text is kept, only hashes. A false "returned" (under 1% up to ~800 distinct entries,
    a 9 KB result; ~10% at 2,000: `benchmarks/marks.py`) makes a write look grounded, never the
    reverse: the check can miss, not raise a false alarm. CRC-32 hashes: stable across processes.
    """

    BITS = 8192
    WORD = re.compile(r"[a-z0-9]+(?:[.@+][a-z0-9]+)*")

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    @classmethod
    def tokens(cls, value: Any, limit: int | None = 12) -> list[str]:
        """The value's distinct words and adjacent word pairs, hashed (read as `_Evidence.has` reads:
        lower case, `_` and `-` as spaces). Words under 3 characters count only as numbers of 2+
        digits (an amount, a quantity); alone, a shorter word says nothing about where a value came from."""
        words = cls.WORD.findall(re.sub(r"[_\-]+", " ", str(value)[:400_000].lower()))
        entries = [w for w in words if len(w) >= 3 or (len(w) == 2 and w.isdigit())]
        entries += [f"{a} {b}" for a, b in zip(words, words[1:])]
        hashed = []
        for e in dict.fromkeys(entries):
            raw = e.encode()
            hashed.append(f"{zlib.crc32(raw):08x}{zlib.crc32(raw, 0x9E3779B9):08x}")
        return hashed[:limit]

    @classmethod
    def _positions(cls, token: str) -> tuple[int, int, int]:
        h1, h2 = int(token[:8], 16), int(token[8:], 16) | 1  # double hashing: three probes from two hashes
        return h1 % cls.BITS, (h1 + h2) % cls.BITS, (h1 + 2 * h2) % cls.BITS

    def add(self, text: str) -> None:
        bits = self.bits
        for token in self.tokens(text, limit=None):
            for p in self._positions(token):
                bits[p >> 3] |= 1 << (p & 7)

    def encoded(self) -> str:
        return base64.b64encode(bytes(self.bits)).decode() if any(self.bits) else ""

    @classmethod
    def decode(cls, text: Any) -> int:
        """The marks as an int (bit p of byte p // 8 at position p), 0 when absent or not ours."""
        try:
            raw = base64.b64decode(str(text), validate=True) if text else b""
        except ValueError:
            return 0
        return int.from_bytes(raw, "little") if len(raw) == cls.BITS // 8 else 0

    @classmethod
    def holds(cls, bits: int, tokens: list[str]) -> bool:
        return all(bits >> p & 1 for t in tokens for p in cls._positions(t))


class _History:
    """The messages the LLM spans of one trace carried, read by position.

    Chat histories repeat: each call's messages usually extend the previous call's. A message is
    `seen` when an earlier call of this trace carried it at the same position, `history` when the
    first call got it from before this trace (earlier turns), and `new` otherwise. Positions, not
    texts: a user who says "Yes please." twice said it twice.
    """

    def __init__(self):
        self.prev: list[tuple[Any, ...]] | None = None
        self.calls: dict[Any, dict[str, Any]] = {}  # tool calls by id, to pair results with
        self.found: list[tuple[dict[str, Any], dict[str, Any], list[Any]]] = []  # (call, result, ungrounded)
        self.message_writes: set[int] = set()  # timeline positions of writes read from messages

    @staticmethod
    def _key(m: Message) -> tuple[Any, ...]:
        return (m.role, m.text, tuple(str(c.get("id")) for c in m.calls), tuple(str(r["id"]) for r in m.results))

    def read(self, messages: list[Message]) -> list[tuple[Message, str]]:
        keys = [self._key(m) for m in messages]
        for m in messages:
            self._register(m)
        prev, self.prev = self.prev, keys
        if prev is None:
            # The first call: what follows the model's last reply is new to this trace (the turn's
            # tool results); the rest came from earlier traces of the conversation.
            last_reply = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
            return [(m, "new" if i > last_reply else "history") for i, m in enumerate(messages)]
        if len(keys) > len(prev) and keys[: len(prev)] == prev:
            return [(m, "seen" if i < len(prev) else "new") for i, m in enumerate(messages)]
        return [(m, "new") for m in messages]

    def said(self, reply: Message) -> None:
        self._register(reply)

    def _register(self, m: Message) -> None:
        for call in m.calls:
            if call.get("name"):
                self.calls.setdefault(call.get("id"), call)


# ---------------------------------------------------------------------------------------------
# The agent's instructions, read literally: only what a sentence says outright, never what it implies.
# Most of a policy ("basic economy flights cannot be modified") needs the reservation's state to apply;
# these readings need nothing but the sentence and the call.

# An instruction, read literally, that the agent get the user's go-ahead before it acts ("obtain explicit
# user confirmation (yes) to proceed", "ask the customer to approve before making changes"). The agent
# confirming facts ("confirm the price", "confirm all the details are right") asks no go-ahead.
GO_AHEAD = re.compile(
    r"\b(?:confirmation|approval|consent|permission|go-?ahead)\b"
    r"|\b(?:user|customer|client|they|them)\b[^.]{0,40}?\b(?:confirm|approve|agree)s?\b",
    re.IGNORECASE,
)
BEFORE_ACTING = re.compile(r"\b(?:before|prior to|until|unless|without|first)\b|\bexplicit(?:ly)?\b", re.IGNORECASE)


def asks_for_confirmation(texts: list[str]) -> bool:
    """Whether any sentence of the agent's instructions asks for the user's go-ahead before acting."""
    return any(GO_AHEAD.search(s) and BEFORE_ACTING.search(s) for text in texts for s in _sentences(text))


# A tool the instructions forbid outright: "Never call delete_account.", "Do not use the `issue_refund`
# tool." The tool's name must end the sentence: "do not call cancel_order for flown trips" is a condition.
FORBIDDEN_CALL = re.compile(
    r"\b(?:do not|don(?:'|’)t|never|must not|mustn(?:'|’)t|should not|shouldn(?:'|’)t|may not|(?:are|is) not "
    r"(?:allowed|permitted) to)\s+(?:ever\s+)?(?:call|use|invoke|run|trigger|execute)\s+(?:the\s+)?`?"
    r"([A-Za-z][A-Za-z0-9_.-]*)`?(?:\s+(?:tool|function|api|endpoint))?(?:\s+at all)?\s*(?:[.!;]|$)",
    re.IGNORECASE,
)
# A count the instructions cap: "Each reservation can have at most five passengers."
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
LIMIT = re.compile(
    r"\b(?:at most|no more than|a maximum of|maximum of)\s+(\d+|" + "|".join(NUMBERS) + r")\s+"
    r"([a-z]+s|[a-z]+ [a-z]+s|[a-z]+ [a-z]+|[a-z]+)\b",  # a plural noun, or two words ("one credit card")
    re.IGNORECASE,
)
MAX_RULES = 20


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?;:])\s+|\n+", text) if s.strip()]


def _singular(word: str) -> str:
    word = word.lower()
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def policy_rules(prompts: list[str]) -> dict[str, list[Any]]:
    """The rules of the agent's instructions that a call can be checked against as written:
    {"forbidden": [tool names forbidden outright], "limits": [[noun, n], ...] ("at most n <noun>s")}.
    A limit applies to a state-changing call's list argument whose name holds the noun's words."""
    forbidden: list[str] = []
    limits: list[list[Any]] = []
    for text in prompts:
        for sentence in _sentences(text):
            for m in FORBIDDEN_CALL.finditer(sentence):
                name = m.group(1).strip(".").lower()
                if name not in forbidden and len(forbidden) < MAX_RULES:
                    forbidden.append(name)
            for m in LIMIT.finditer(sentence):
                n = int(m.group(1)) if m.group(1).isdigit() else NUMBERS[m.group(1).lower()]
                rule = [" ".join(_singular(w) for w in m.group(2).split()), n]
                if rule not in limits and len(limits) < MAX_RULES:
                    limits.append(rule)
    return {"forbidden": forbidden, "limits": limits}


def _list_sizes(args: Any) -> dict[str, int]:
    """The sizes of a call's list arguments, by key (top level, and one level into objects)."""
    sizes: dict[str, int] = {}
    if isinstance(args, dict):
        for key, value in args.items():
            if isinstance(value, list):
                sizes[str(key)] = len(value)
            elif isinstance(value, dict):
                sizes.update({str(k): len(v) for k, v in value.items() if isinstance(v, list)})
    return sizes


def policy_breaches(rules: dict[str, list[Any]], calls: list[tuple[str, dict[str, int]]]) -> list[str]:
    """The calls (tool name, list-argument sizes) that break a rule of `policy_rules`, as evidence."""
    forbidden = set(rules.get("forbidden") or ())
    found = []
    for name, sizes in calls:
        if name.lower() in forbidden:
            found.append(f"{name}: a tool the instructions forbid")
        for noun, n in (rules.get("limits") or ()) if is_write_tool(name) else ():
            for key, size in sizes.items():
                if size > n and set(noun.split()) <= {_singular(w) for w in _name_words(key)}:
                    found.append(f"{name}: {size} {key}, the instructions allow at most {n}")
    return found


def _instructions(span: Any, messages: list[Message]) -> tuple[list[str], list[str]]:
    """What an LLM call was told before the conversation: its prompts (system or developer messages,
    an Anthropic-style `system` parameter) and the definitions of the tools it was offered."""
    inputs = getattr(span, "inputs", None)
    prompts = [m.text for m in messages if m.role in ("system", "developer") and m.text]
    if isinstance(inputs, dict) and inputs.get("system"):
        prompts.append(to_text(inputs["system"]))
    tools = _attribute(span, "mlflow.chat.tools") or (inputs.get("tools") if isinstance(inputs, dict) else None)
    return prompts, [to_text(tools)] if tools else []


def _messages_of(span: Any, read: dict[Any, list[Message]]) -> list[Message]:
    key = getattr(span, "span_id", None) or id(span)
    if key not in read:
        read[key] = read_messages(getattr(span, "inputs", None))
    return read[key]


def _ancestor_ids(span: Any, by_id: dict[Any, Any]) -> list[Any]:
    found = []
    parent = by_id.get(getattr(span, "parent_id", None))
    while parent is not None and len(found) < 100:
        found.append(getattr(parent, "span_id", None))
        parent = by_id.get(getattr(parent, "parent_id", None))
    return found


def _outermost_llm(span: Any, by_id: dict[Any, Any]) -> Any:
    """The outermost LLM span around this one (itself when none wraps it)."""
    outer = span
    for span_id in _ancestor_ids(span, by_id):
        if span_type(by_id[span_id]) in LLM_SPAN_TYPES:
            outer = by_id[span_id]
    return outer


def _same_call_as_parent(span: Any, by_id: dict[Any, Any]) -> bool:
    """An AGENT span run by its parent agent with the same inputs (ResponsesAgent's
    `predict` -> `predict_stream`) is the same agent, not a sub-agent."""
    parent = by_id.get(getattr(span, "parent_id", None))
    return (
        parent is not None
        and span_type(parent) in AGENT_SPAN_TYPES
        and getattr(span, "inputs", None) == getattr(parent, "inputs", None)
    )


class _Evidence:
    """Lower-cased text the user and the tools produced so far, bounded."""

    LIMIT = 400_000

    def __init__(self):
        self.parts: list[str] = []
        self.size = 0
        self._joined: str | None = None

    def add(self, text: str) -> None:
        if text and self.size < self.LIMIT:
            text = text[: self.LIMIT - self.size].lower()
            self.parts.append(text)
            self.size += len(text)
            self._joined = None

    def has(self, value: Any) -> bool:
        if self._joined is None:
            self._joined = "\n".join(self.parts)
            self._spaced = re.sub(r"[_\-]+", " ", self._joined)
        needle = str(value).lower()
        if needle in self._joined:
            return True
        return re.sub(r"[_\-]+", " ", needle) in self._spaced


def _argument_values(args: Any) -> list[Any]:
    """Identifier-like values in a call's arguments: strings of 3+ chars and numbers >= 10.

    Short strings, booleans and small numbers are too common to say anything about grounding.
    """
    found: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, (int, float)):
            if abs(v) >= 10:
                found.append(int(v) if float(v).is_integer() else v)
        elif isinstance(v, str) and 3 <= len(v.strip()) <= 200:
            found.append(v.strip())

    walk(args)
    return found


def _unconfirmed_writes(timeline: list[tuple[str, str]]) -> int:
    """State-changing calls not preceded by a user's go-ahead since the agent last spoke.

    The check reads the conversation in order: a write counts as confirmed when the most recent
    user message before it, after the agent's last words, contains an affirmation.
    """
    count = 0
    last_user = ""
    confirmed_turn = False
    for kind, text in timeline:
        if kind == "user":
            last_user = text
            confirmed_turn = bool(AFFIRMATION.search(text))
        elif kind == "write":
            if not confirmed_turn:
                count += 1
        elif kind == "assistant" and last_user:
            # The agent spoke again: a later write needs a new go-ahead.
            confirmed_turn = False if text.strip().endswith("?") else confirmed_turn
    return count


# ---------------------------------------------------------------------------------------------
# Conversation signals: failure evidence any multi-turn conversation shows, whatever the domain.
# Read from the user's turns, the agent's words and the tool calls in order (the timeline built
# above); generic conversational English, no domain vocabulary.

# The user pushing back: correcting the agent, insisting, repeating themselves, or frustrated.
PUSHBACK = re.compile(
    r"\b(?:that(?:'|’)?s not (?:what|right|correct)|that is not (?:what|right|correct)|not what i (?:asked|wanted|said|meant)"
    r"|i (?:already|just) (?:told|said|gave|provided|explained|mentioned)|as i (?:said|mentioned)|i said\b"
    r"|you (?:still )?(?:didn(?:'|’)?t|did not|haven(?:'|’)?t|have not|misunderstood|got it wrong)|still waiting"
    r"|i (?:still )?insist|that(?:'|’)?s (?:wrong|incorrect)|this is (?:wrong|incorrect|ridiculous|unacceptable)"
    r"|frustrat\w*|ridiculous|unacceptable|disappoint\w*|annoy\w*|not helpful|doesn(?:'|’)?t help|useless)",
    re.IGNORECASE,
)
# "It still doesn't work": in troubleshooting, a fix that has not worked yet is the normal course of a good
# conversation, not push-back; said in the user's last turn, the need was left open.
STILL_BROKEN = re.compile(
    r"\bstill (?:not|no|haven|hasn|isn|don|doesn|can(?:'|’)?t|cannot|won(?:'|’)?t|unable)\w*", re.IGNORECASE
)
# The agent saying an action is done: "I've cancelled", "has been refunded", "successfully updated".
CLAIM = re.compile(
    r"\b(?:i(?:'|’)ve|i have|we(?:'|’)ve|we have|has been|have been|is now|are now)\s+(?:now\s+|successfully\s+|also\s+)?"
    r"(?:cancel+ed|booked|updated|changed|modified|processed|refunded|issued|submitted|sent|placed|exchanged|returned"
    r"|removed|added|applied|transferred|scheduled|reset|upgraded|downgraded|reserved|charged|paid|deleted)\b",
    re.IGNORECASE,
)
# A sentence that only talks about an action (a question, a condition, a refusal, a plan) claims nothing.
NOT_A_CLAIM = re.compile(
    r"\?|\b(?:if|once|when|after|will|would|can|could|cannot|can(?:'|’)t|not|no|unable|before)\b", re.I
)
CLOSING = re.compile(r"\b(?:thank|thanks|that(?:'|’)?s all|all set|bye|goodbye|perfect|great)\b", re.IGNORECASE)
REPEAT_MIN_WORDS = 6  # shorter turns ("yes please", ids) repeat legitimately
REPEAT_OVERLAP = 0.6  # share of the shorter turn's distinct words found in an earlier turn


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def conversation_signals(
    user_turns: list[str], timeline: list[tuple[str, str]], tools: list[ToolCall], continues: bool = False
) -> dict[str, Any]:
    """What the conversation itself says about whether the user's need was met.

    - `n_user_pushback`: later user turns that correct the agent, insist, or voice frustration.
    - `n_user_repeats`: later user turns restating an earlier request (most of its words again).
    - `need_open`: the user's last turn pushes back, says it still does not work, or asks a question and
      is not a closing.
    - `n_unbacked_claims`: agent messages saying an action is done ("I've cancelled it") when no
      state-changing call had succeeded before them, or the latest one before them failed. In a
      trace that `continues` a conversation (one trace per turn) an earlier turn may have made the
      call, which this trace cannot show: there only a claim after a failed call counts.
    """
    pushback = sum(bool(PUSHBACK.search(t)) for t in user_turns[1:])
    repeats = 0
    seen: list[set[str]] = []
    for turn in user_turns:
        words = _words(turn)
        if len(words) >= REPEAT_MIN_WORDS and any(
            len(words & earlier) >= REPEAT_OVERLAP * min(len(words), len(earlier)) for earlier in seen
        ):
            repeats += 1
        seen.append(words)
    need_open = _need_open(user_turns[-1] if len(user_turns) > 1 else "")
    # The k-th ("write", name) event of the timeline is the k-th state-changing tool call.
    write_ok = iter([t["ok"] for t in tools if is_write_tool(t["name"])])
    succeeded = continues
    latest_ok: bool | None = None
    claims: list[str] = []
    for kind, text in timeline:
        if kind == "write":
            latest_ok = next(write_ok, True)
            succeeded = succeeded or latest_ok
        elif kind == "assistant" and (not succeeded or latest_ok is False):
            for sentence in re.split(r"(?<=[.!?\n])\s+", text):
                if CLAIM.search(sentence) and not NOT_A_CLAIM.search(sentence):
                    claims.append(sentence.strip())
                    break
    return {
        "n_user_pushback": pushback,
        "n_user_repeats": repeats,
        "need_open": need_open,
        "n_unbacked_claims": len(claims),
        "unbacked_claims": [c[:160] for c in claims[:3]],
    }


def _need_open(last: str) -> bool:
    """The user's last turn pushes back, says it still does not work, or asks a question and is not a closing."""
    tail = last[-200:]
    return bool(last) and (
        bool(PUSHBACK.search(last) or STILL_BROKEN.search(last)) or ("?" in tail and not CLOSING.search(tail))
    )
