"""Greedy generations for a few held-out prompts, to read beside the numbers."""

from __future__ import annotations

import torch

from .. import _io
from ..data import chat_prompt, format_prompt, is_chat


@torch.no_grad()
def write_samples(model, tokenizer, records, max_new_tokens: int, device, path) -> None:
    model.eval()
    rows = []
    for rec in records:
        if is_chat(rec):  # the conversation up to its last reply; the template writes any BOS itself
            prompt, reference = chat_prompt(tokenizer, rec["messages"])
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        else:
            reference = rec["output"]
            ids = tokenizer(format_prompt(rec), return_tensors="pt").to(device)
        gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        text = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        asked = {"prompt": prompt} if is_chat(rec) else {"instruction": rec["instruction"], "input": rec["input"]}
        rows.append({**asked, "reference": reference, "generated": text})
    _io.atomic_write_text(path, "".join(_io.dumps(r) + "\n" for r in rows))
