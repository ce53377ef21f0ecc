"""General English text the runs never train on, for the forgetting metric.

Source: the documentation topics that ship with Python itself (``pydoc_data.topics``, the text
of the Python Language Reference; Python Software Foundation License). It is real prose written
for people, not for this project's tuning, and it is on every Python installation, so the
metric works offline. We take the first prose paragraph (no code, no grammar rules, at least
300 characters, ending in a full stop) of each topic in sorted order.

The text differs slightly between Python versions, so the summary records the version and a
hash of the passages: compare forgetting figures only between runs with the same hash.
"""

from __future__ import annotations

import hashlib
import sys

from .tokenize import IGNORE_INDEX

SOURCE = "Python documentation topics (pydoc_data.topics), Python Software Foundation License"


def general_passages(n: int) -> list[str]:
    """Up to ``n`` prose paragraphs, deterministic for a given Python version."""
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            text = " ".join(para.split())
            if (len(text) >= 300 and not para.startswith((" ", "\n")) and text.endswith(".")
                    and "::=" not in text and "***" not in text and ">>>" not in text):
                out.append(text)
                break
        if len(out) == n:
            break
    return out


def general_examples(tokenizer, n: int, max_length: int) -> tuple[list[dict], dict]:
    """Tokenised passages scored on every token, and a description of the set for the summary."""
    passages = general_passages(n)
    examples = []
    for text in passages:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        labels = list(ids)
        labels[0] = IGNORE_INDEX  # nothing predicts the first token
        examples.append({"input_ids": ids, "labels": labels})
    digest = hashlib.sha256("\n".join(passages).encode()).hexdigest()[:12]
    info = {"source": SOURCE, "python": sys.version.split()[0], "passages": len(passages), "sha256_12": digest}
    return examples, info
