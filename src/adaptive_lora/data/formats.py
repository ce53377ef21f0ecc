"""The record formats a data file may hold, how each is recognised, validated and normalised.

- ``alpaca``: ``{"instruction", "input", "output"}`` (Stanford Alpaca); kept as it is.
- ``messages``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
  (the OpenAI / Hugging Face chat format).
- ``sharegpt``: ``{"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}``;
  normalised to ``messages`` on load (human -> user, gpt -> assistant), so the rest of the data
  stage knows two kinds of record only: Alpaca records and chat records.

``auto`` (the default ``data_format``) decides once per file, from its first object: a
``messages`` key, a ``conversations`` key, or Alpaca fields. Records that do not fit the file's
format are bad records, reported (or skipped) like any other.
"""

from __future__ import annotations

from ..errors import UserError
from .chat import FIRST_TURN

FORMATS = ("auto", "alpaca", "messages", "sharegpt")
FIELDS = ("instruction", "input", "output")
REQUIRED_TEXT = ("instruction", "output")  # "input" may be empty; an empty instruction or answer teaches nothing
ROLES = ("system", "user", "assistant")
# ShareGPT speaker names -> chat roles. "user" and "assistant" appear in some ShareGPT exports too.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}

ACCEPTED = ("Alpaca records {instruction, input, output}, chat records {messages: [{role, content}, ...]} or "
            "ShareGPT records {conversations: [{from, value}, ...]}")


def detect_format(items, name: str) -> str:
    """The format of a file from its first object (Alpaca when it holds no object at all)."""
    first = next((item for item in items if isinstance(item, dict)), None)
    if first is None:
        return "alpaca"  # every record is then reported as "expected an object ..."
    if "messages" in first:
        return "messages"
    if "conversations" in first:
        return "sharegpt"
    if any(field in first for field in FIELDS):
        return "alpaca"
    keys = ", ".join(repr(k) for k in list(first)[:6]) or "none"
    raise UserError(f"{name}: unknown record format (the first record's fields: {keys}): give {ACCEPTED}, "
                    f"or set data_format")


def normalise(item, fmt: str) -> tuple[dict | None, str | None]:
    """``(record, None)`` for a valid item of format ``fmt``, else ``(None, why)``."""
    if fmt == "alpaca":
        problem = _alpaca_problem(item)
        return (None, problem) if problem else ({field: item[field] for field in FIELDS}, None)
    key, role_key, text_key, roles = (("messages", "role", "content", {r: r for r in ROLES}) if fmt == "messages"
                                      else ("conversations", "from", "value", SHAREGPT_ROLES))
    if not isinstance(item, dict):
        return None, f"expected an object with a list field '{key}', got {json_type(item)}"
    turns = item.get(key)
    if not isinstance(turns, list) or not turns:
        return None, f"field '{key}' must be a non-empty list of turns, got {json_type(turns)}"
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return None, f"{key}[{i}] must be an object {{{role_key}, {text_key}}}, got {json_type(turn)}"
        if turn.get(role_key) not in roles:
            return None, f"{key}[{i}].{role_key} must be one of {', '.join(roles)}, got {turn.get(role_key)!r}"
        if not isinstance(turn.get(text_key), str):
            return None, f"{key}[{i}].{text_key} must be a string, got {json_type(turn.get(text_key))}"
        messages.append({"role": roles[turn[role_key]], "content": turn[text_key]})
    if messages[0]["role"] == "assistant":
        return None, FIRST_TURN  # the template has nothing to render before it (see chat.py)
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        return None, f"'{key}' has no non-blank assistant turn: nothing to train on"
    return {"messages": messages}, None


def is_chat(record: dict) -> bool:
    """A normalised chat record (``messages``), rather than an Alpaca one."""
    return "messages" in record


def _alpaca_problem(item) -> str | None:
    """Why ``item`` is not a valid Alpaca record, or None when it is."""
    if not isinstance(item, dict):
        return f"expected an object with fields {', '.join(map(repr, FIELDS))}, got {json_type(item)}"
    for field in FIELDS:
        if field not in item:
            return f"field '{field}' is missing"
        if not isinstance(item[field], str):
            return f"field '{field}' must be a string, got {json_type(item[field])}"
    for field in REQUIRED_TEXT:
        if not item[field].strip():
            return f"field '{field}' is empty: every record needs a non-blank '{field}'"
    return None


def json_type(value) -> str:
    """The JSON name of a Python value's type, as users see it in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
