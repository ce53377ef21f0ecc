"""Tokenised data on disk, shared by every run of a sweep and every process of a run.

The key hashes everything the tokens depend on, by content rather than by name: the records
themselves (so the file's content, the format it was read in, skipped records and the split are
all in it: a changed file or ``data_seed`` is a different key), the tokenizer (its whole
serialised state, special tokens and chat template, not its path), ``max_length``, ``train_on``,
and the tokenisation code itself (:data:`TOKENIZE_VERSION` and the source of the modules that
tokenise). Nothing else can change a tokenised example, so a hit is exact.

A file is written to a temporary name and renamed into place, so a reader sees a whole file or
none. Processes that miss at the same time wait while the first one tokenises: the claim of
``keylock.compute_once``, which works on shared file systems and survives a holder that died
(the processes of one distributed launch each tokenise for themselves: same result, more work).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .. import keylock
from .tokenize import TOKENIZE_VERSION, TokenizedSet


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything about ``tokenizer`` that can change ids: not where it was loaded from."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = backend.to_str()  # vocabulary, merges, normaliser, pre-tokenizer, post-processor
    else:  # a Python tokenizer: its vocabulary and, for SentencePiece, the model itself
        sp = getattr(tokenizer, "sp_model", None)
        proto = sp.serialized_model_proto() if hasattr(sp, "serialized_model_proto") else b""
        state = json.dumps(sorted(tokenizer.get_vocab().items())) + hashlib.sha256(proto).hexdigest()
    extra = {"class": type(tokenizer).__name__, "special": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
             "chat_template": getattr(tokenizer, "chat_template", None),
             "add_bos": getattr(tokenizer, "add_bos_token", None), "add_eos": getattr(tokenizer, "add_eos_token", None)}
    h = hashlib.sha256(state.encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """The source of the modules that turn records into tokens: a change to the rule, even one that
    forgot to bump :data:`TOKENIZE_VERSION`, never serves examples the new code would not make."""
    folder = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("tokenize.py", "chat.py", "template.py"):
        try:
            h.update((folder / name).read_bytes())
        except OSError:  # an install without source files (zipped): the version number alone
            h.update(name.encode())
    return h.hexdigest()


def data_key(records: list[dict], tokenizer_hash: str, max_length: int, train_on: str) -> str:
    """``tokens-<hash>`` of the records and every setting that changes their tokens."""
    h = hashlib.sha256(json.dumps({"version": TOKENIZE_VERSION, "code": _code_hash(), "tokenizer": tokenizer_hash,
                                   "max_length": max_length, "train_on": train_on}, sort_keys=True).encode())
    for record in records:
        h.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return f"tokens-{h.hexdigest()[:24]}"


def cached_tokenize(folder, key: str, compute) -> tuple[TokenizedSet, bool]:
    """``(the set, whether it came from the cache)``: ``folder/<key>.pt`` if there, else ``compute()``
    written there. ``folder`` None computes without a cache."""
    if folder is None:
        return compute(), False
    folder = Path(folder).expanduser()
    path = folder / f"{key}.pt"
    existed = path.is_file()
    found = _read(path) if existed else None  # a hit, the common case: one read, no claim
    if found is not None:
        return found, True
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if existed:
            path.unlink(missing_ok=True)  # a file from another version, or damaged on disk: made again
        result, computed = keylock.compute_once(path, compute, read=_read, write=_write_if_possible)
    except OSError:  # an unusable cache folder costs time, never the run
        return compute(), False
    if result is None:  # unreadable although just checked (replaced meanwhile): not worth failing for
        return compute(), False
    return result, not computed


def _read(path: Path) -> TokenizedSet | None:
    """The cached set, or None when absent or unreadable (then it is simply computed again)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        lengths = blob["lengths"].tolist()
        ids = blob["input_ids"].split(lengths)
        labels = blob["labels"].split(lengths)
        examples = [{"input_ids": i.tolist(), "labels": lab.tolist()} for i, lab in zip(ids, labels)]
        return TokenizedSet(examples=examples, n_dropped=int(blob["n_dropped"]), n_truncated=int(blob["n_truncated"]))
    except Exception:  # a file from another version, or damaged on disk: not worth failing a run for
        return None


def _write_if_possible(path: Path, result: TokenizedSet) -> None:
    try:
        _write(path, result)
    except OSError:
        pass  # a full disk: the next run tokenises again


def _write(path: Path, result: TokenizedSet) -> None:
    # Flat tensors, not JSON: 50k examples of 256 tokens load in a fraction of a second.
    flat = [t for ex in result.examples for t in ex["input_ids"]]
    blob = {"lengths": torch.tensor([len(ex["input_ids"]) for ex in result.examples], dtype=torch.long),
            "input_ids": torch.tensor(flat, dtype=torch.long),
            "labels": torch.tensor([t for ex in result.examples for t in ex["labels"]], dtype=torch.long),
            "n_dropped": result.n_dropped, "n_truncated": result.n_truncated}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

