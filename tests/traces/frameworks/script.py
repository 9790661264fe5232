"""The scripted support conversation every framework plays, and the tools it calls.

What the script does is the truth the layout tests and the benchmark compare the features with:
lookups, a confirmed write, an unconfirmed write, a failing tool, a write that returns an error,
a user saying the same go-ahead twice, and a question that needs no tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    tool: str
    args: dict[str, Any]


@dataclass
class Turn:
    user: str
    steps: list[Step] = field(default_factory=list)
    answer: str = ""


TURNS = [
    Turn(
        "Where is my order A1001?",
        [Step("get_order", {"order_id": "A1001"})],
        "Order A1001 shipped yesterday; it cost 42.5. Would you like me to cancel it?",
    ),
    Turn(
        "Yes please.", [Step("cancel_order", {"order_id": "A1001"})], "Done, A1001 is cancelled. Shall I refund 42.5?"
    ),
    # The same go-ahead again: a second confirmed write.
    Turn(
        "Yes please.",
        [Step("issue_refund", {"order_id": "A1001", "amount": 42.5})],
        "The refund of 42.5 is on its way.",
    ),
    # A write nobody confirmed, and the tool returns an error in its result.
    Turn(
        "My new address is 5 Main Street, apartment 12, for order A1001.",
        [Step("update_address", {"order_id": "A1001", "address": "5 Main Street, apartment 12"})],
        "Sorry, I could not change the address right now.",
    ),
    # A tool that raises.
    Turn(
        "Is the blue mug in stock?",
        [Step("check_inventory", {"sku": "MUG-BLUE"})],
        "Sorry, I cannot check the stock at the moment.",
    ),
    Turn("What are your opening hours?", [], "We are open from 9 to 5, Monday to Friday."),
]

WRITES = {"cancel_order", "issue_refund", "update_address"}
FAILING = {"update_address", "check_inventory"}


def get_order(order_id: str) -> str:
    """Look up an order by its id."""
    return json.dumps({"order_id": order_id, "status": "shipped", "amount": 42.5})


def cancel_order(order_id: str) -> str:
    """Cancel an order."""
    return json.dumps({"order_id": order_id, "status": "cancelled"})


def issue_refund(order_id: str, amount: float) -> str:
    """Refund an amount for an order."""
    return json.dumps({"order_id": order_id, "refunded": amount})


def update_address(order_id: str, address: str) -> str:
    """Change the shipping address of an order."""
    return json.dumps({"error": "address service unavailable"})


def check_inventory(sku: str) -> str:
    """Check whether a product is in stock."""
    raise RuntimeError(f"inventory backend timed out for {sku}")


TOOLS = [get_order, cancel_order, issue_refund, update_address, check_inventory]
TOOL_BY_NAME = {t.__name__: t for t in TOOLS}


def call_tool(name: str, args: dict[str, Any]) -> str:
    """Run a tool as a plain agent loop does: an exception becomes an error result."""
    try:
        return TOOL_BY_NAME[name](**args)
    except Exception as exc:
        return json.dumps({"error": str(exc)})


def tool_schemas() -> list[dict[str, Any]]:
    """OpenAI function schemas of the tools."""
    import inspect

    schemas = []
    for fn in TOOLS:
        params = {
            p: {"type": "number" if a.annotation in (float, "float") else "string"}
            for p, a in inspect.signature(fn).parameters.items()
        }
        schemas.append(
            {
                "type": "function",
                "function": {
                    "name": fn.__name__,
                    "description": fn.__doc__,
                    "parameters": {"type": "object", "properties": params, "required": list(params)},
                },
            }
        )
    return schemas
