"""Greedy generations for a few held-out prompts, to read beside the numbers."""

from __future__ import annotations

import torch

from .. import _io
from ..data import format_prompt


@torch.no_grad()
def write_samples(model, tokenizer, records, max_new_tokens: int, device, path) -> None:
    model.eval()
    rows = []
    for rec in records:
        ids = tokenizer(format_prompt(rec), return_tensors="pt").to(device)
        gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        text = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        rows.append({"instruction": rec["instruction"], "input": rec["input"], "reference": rec["output"],
                     "generated": text})
    _io.atomic_write_text(path, "".join(_io.dumps(r) + "\n" for r in rows))
