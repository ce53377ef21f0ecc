"""Chat records rendered with the tokenizer's own chat template, and where each assistant turn is.

The loss goes to assistant turns only, so we need each assistant turn's exact place in the
rendered text. Few templates mark it (``{% generation %}``, which ``return_assistant_tokens_mask``
needs), so we find it by rendering prefixes of the conversation:

    before_k = template(messages[:k], add_generation_prompt=True)   # up to the assistant header
    after_k  = template(messages[:k + 1])                            # through the end of turn k

For a template that renders a conversation the same way whatever follows it (*prefix-stable*),
``before_k`` is a prefix of ``after_k`` and ``after_k`` a prefix of the whole conversation, and
turn k's scored text is ``after_k[len(before_k):]``: the reply and the template's end-of-turn
marker (e.g. ``<|im_end|>``), which teaches the model to stop. The header the template writes for
the assistant is prompt, not reply. A template that is not prefix-stable (one that rewrites earlier
turns depending on later ones) is refused with a one-line error rather than guessed at.
"""

from __future__ import annotations

from ..errors import UserError

FIRST_TURN = "the conversation opens with an assistant turn: start it with a system or user turn"


def chat_template_of(tokenizer) -> str:
    """The tokenizer's chat template, or a one-line error saying what to use instead."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise UserError("the data holds chat records (messages/conversations) but the model's tokenizer has no chat "
                        "template: use a chat model (e.g. an -Instruct one) or give Alpaca records")
    return template if isinstance(template, str) else repr(template)


def _render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as exc:  # jinja2 raises its own errors (and templates call raise_exception)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"the model's chat template refuses a conversation ({first}): fix the record's roles "
                        "or order, or use another model") from None


def render_chat(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation as the template renders it, and the character span of each assistant turn."""
    chat_template_of(tokenizer)
    full = _render(tokenizer, messages)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if k == 0:  # nothing renders before it (transformers refuses an empty conversation)
            raise UserError(FIRST_TURN)
        before = _render(tokenizer, messages[:k], generation_prompt=True)
        after = _render(tokenizer, messages[: k + 1])
        if not (after.startswith(before) and full.startswith(after)):
            raise UserError(f"the model's chat template does not render conversations prefix-stably (assistant turn "
                            f"{k} renders differently once later turns follow), so its reply tokens cannot be "
                            "found exactly: use another model's template or Alpaca records")
        spans.append((len(before), len(after)))
    return full, spans


def chat_prompt(tokenizer, messages: list[dict]) -> tuple[str, str]:
    """(the conversation up to its last assistant turn, ready for generation; that turn's reply)."""
    last = max(k for k, m in enumerate(messages) if m["role"] == "assistant")
    return _render(tokenizer, messages[:last], generation_prompt=True), messages[last]["content"]
