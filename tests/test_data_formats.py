"""Data formats and templates: the reply boundary, chat records, the whole-file default, the cache.

Tokenizers are built here from ``tokenizers`` parts, so every id is known: a byte-level one that
adds a prefix space (as SentencePiece's ``▁`` and RoBERTa-style BPE do), with and without a merge
across the prompt/reply boundary, and the byte tokenizer of the tiny models with a small chat
template.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_lora.data import IGNORE_INDEX, format_prompt, load_records, render_chat, tokenize_example, \
    tokenize_records
from adaptive_lora.data.cache import cached_tokenize, data_key, tokenizer_fingerprint
from adaptive_lora.errors import UserError
from adaptive_lora.training.config import InputConfig, TrainConfig
from tiny_models import byte_tokenizer, save_tiny_model

REC = {"instruction": "Say hi.", "input": "", "output": "hi"}

# A chat template of the ChatML kind: the end-of-turn marker is the EOS token, so it is one token.
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi there."}, {"role": "user", "content": "Bye."},
        {"role": "assistant", "content": "Bye!"}]


# ---------------------------------------------------------------------------------------------
# The prompt/reply boundary
# ---------------------------------------------------------------------------------------------


def prefix_space_tokenizer(merges=(), use_regex=True):
    """Byte-level BPE that adds a prefix space to the start of every text it tokenises.

    Ids: <s> 0, </s> 1, <unk> 2, then the 256 byte symbols in sorted order, then one id per merge.
    ``Ġ`` is the byte symbol of a space, ``Ċ`` that of a newline. ``add_special_tokens`` puts <s> first.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=use_regex)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    return tok, vocab


class SlowView:
    """The same tokenizer seen as a Python one: no offsets, so the boundary comes from prefixes."""

    is_fast = False

    def __init__(self, tok):
        self._tok = tok

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __call__(self, text, **kw):
        assert "return_offsets_mapping" not in kw
        return self._tok(text, **kw)


# (case, merges, use_regex, reply tokens scored, last prompt token)
BOUNDARY = [
    ("prefix space", (), True, ["h", "i", "</s>"], "Ċ"),
    # "\n" + "h" merge into one token that straddles the boundary: it holds a reply character, so it is scored.
    ("merge across the boundary", (("Ċ", "h"),), False, ["Ċh", "i", "</s>"], ":"),
]


@pytest.mark.parametrize("case, merges, use_regex, scored, last_prompt", BOUNDARY, ids=[c[0] for c in BOUNDARY])
@pytest.mark.parametrize("view", ["fast", "slow"])
def test_reply_boundary_is_exact(case, merges, use_regex, scored, last_prompt, view):
    tok, vocab = prefix_space_tokenizer(merges, use_regex)
    ex = tokenize_example(REC, tok if view == "fast" else SlowView(tok), max_length=4096)
    ids, labels = ex["input_ids"], ex["labels"]
    n_reply = len(scored)
    assert ids[0] == vocab["<s>"] and ids[1] == vocab["Ġ"]  # BOS, and the prefix space of the whole text
    assert ids[-n_reply:] == [vocab[t] for t in scored]
    assert labels[-n_reply:] == ids[-n_reply:]
    assert labels[:-n_reply] == [IGNORE_INDEX] * (len(ids) - n_reply)
    assert ids[-n_reply - 1] == vocab[last_prompt]
    # The whole example is the text as the model reads it at inference, plus EOS.
    assert ids[:-1] == tok(format_prompt(REC) + REC["output"])["input_ids"]


_MERGING = None


def _merging_tokenizer():
    """Merges across every likely boundary: newline + letter, letter + letter, space + letter."""
    global _MERGING
    if _MERGING is None:
        merges = (("Ċ", "h"), ("h", "i"), ("Ġ", "h"), ("Ċh", "i"), (":", "Ċ"), ("i", "Ġ"))
        _MERGING = prefix_space_tokenizer(merges, use_regex=False)[0]
    return _MERGING


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instruction=st.text(alphabet="hi :\n", min_size=1, max_size=12).filter(str.strip),
       output=st.text(alphabet="hi :\n", max_size=12))
def test_scored_tokens_are_exactly_those_holding_reply_characters(instruction, output):
    """Whatever merges happen at the boundary: every masked token lies wholly in the prompt, and
    the first scored token holds a reply character (so every reply character is scored)."""
    tok = _merging_tokenizer()
    record = {"instruction": instruction, "input": "", "output": output}
    ex = tokenize_example(record, tok, max_length=4096)
    ids, labels = ex["input_ids"], ex["labels"]
    b = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert all(label != IGNORE_INDEX for label in labels[b:])
    prompt = " " + format_prompt(record)  # the tokenizer's prefix space comes first
    masked = tok.decode(ids[1:b])  # without BOS
    assert prompt.startswith(masked)
    if output:
        assert len(tok.decode(ids[1 : b + 1])) > len(prompt)  # the first scored token reaches into the reply
        assert tok.decode(ids[1:-1]) == prompt + output
    else:
        assert b == len(ids) - 1  # EOS alone


def test_separate_tokenisation_would_add_a_stray_space():
    """What the boundary rule fixes: the reply tokenised alone starts with a space it does not have."""
    tok, vocab = prefix_space_tokenizer()
    assert tok("hi", add_special_tokens=False)["input_ids"] == [vocab["Ġ"], vocab["h"], vocab["i"]]
    ex = tokenize_example(REC, tok, max_length=4096)
    assert [t for t in ex["labels"] if t != IGNORE_INDEX] == [vocab["h"], vocab["i"], vocab["</s>"]]


def test_empty_reply_scores_eos_only():
    tok, vocab = prefix_space_tokenizer()
    ex = tokenize_example(dict(REC, output=""), tok, max_length=4096)
    assert [t for t in ex["labels"] if t != IGNORE_INDEX] == [vocab["</s>"]]


# ---------------------------------------------------------------------------------------------
# Chat records
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_tok():
    tok = byte_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _scored_runs(tok, ex) -> list[str]:
    """The scored stretches of an example, decoded (special tokens kept)."""
    runs, current = [], []
    for tid, label in zip(ex["input_ids"], ex["labels"]):
        if label != IGNORE_INDEX:
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    runs += [current] if current else []
    return [tok.decode(r) for r in runs]


def test_chat_scores_assistant_turns_only(chat_tok):
    text, spans = render_chat(chat_tok, CHAT)
    assert text == ("<|system|>\nBe brief.</s>\n<|user|>\nHello?</s>\n<|assistant|>\nHi there.</s>\n"
                    "<|user|>\nBye.</s>\n<|assistant|>\nBye!</s>\n")
    assert [text[s:e] for s, e in spans] == ["Hi there.</s>\n", "Bye!</s>\n"]
    ex = tokenize_example({"messages": CHAT}, chat_tok, max_length=4096)
    assert ex["input_ids"] == chat_tok(text, add_special_tokens=False)["input_ids"]  # no EOS appended
    assert _scored_runs(chat_tok, ex) == ["Hi there.</s>\n", "Bye!</s>\n"]
    everything = tokenize_example({"messages": CHAT}, chat_tok, max_length=4096, train_on="all")
    assert everything["labels"][1:] == everything["input_ids"][1:]


def test_sharegpt_reads_as_messages(tmp_path, chat_tok):
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    share = {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in CHAT]}
    path = tmp_path / "share.jsonl"
    path.write_text(json.dumps(share) + "\n" + json.dumps({"conversations": [{"from": "robot", "value": "x"}]}) + "\n")
    with pytest.raises(UserError, match=r"record 1 \(line 2\): conversations\[0\]\.from must be one of"):
        load_records(str(path))
    loaded = load_records(str(path), skip_bad=True)
    assert (loaded.format, loaded.n_skipped, loaded.records) == ("sharegpt", 1, [{"messages": CHAT}])
    assert tokenize_records(loaded.records, chat_tok, 4096).examples == [
        tokenize_example({"messages": CHAT}, chat_tok, 4096)]


@pytest.mark.parametrize("items, data_format, needle", [
    ([{"prompt": "x", "completion": "y"}], "auto", "unknown record format (the first record's fields: 'prompt', "
                                                   "'completion'): give Alpaca records {instruction, input, output}"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "auto", "no non-blank assistant turn"),
    ([{"messages": [{"role": "bot", "content": "hi"}]}], "auto", "messages[0].role must be one of system, user"),
    ([{"messages": CHAT[2:]}], "messages", "record 0: the conversation opens with an assistant turn: start it with"),
    ([REC], "messages", "field 'messages' must be a non-empty list"),
    ([{"messages": CHAT}], "alpaca", "field 'instruction' is missing"),
    ([REC], "chat", "data_format must be one of auto, alpaca, messages, sharegpt"),
])
def test_format_errors_are_one_line(tmp_path, items, data_format, needle):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(items))
    with pytest.raises(UserError) as err:
        load_records(str(path), data_format=data_format)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_chat_needs_a_prefix_stable_template():
    tok = byte_tokenizer()
    with pytest.raises(UserError, match="has no chat template"):
        tokenize_example({"messages": CHAT}, tok, 4096)
    tok.chat_template = CHAT_TEMPLATE
    with pytest.raises(UserError, match="opens with an assistant turn"):  # nothing renders before it
        tokenize_example({"messages": CHAT[2:]}, tok, 4096)
    # Marks the last message: turn 2 renders differently once turns 3 and 4 follow.
    tok.chat_template = "{% for m in messages %}{% if loop.last %}LAST {% endif %}{{ m['content'] }}\n{% endfor %}"
    with pytest.raises(UserError, match="not render conversations prefix-stably"):
        tokenize_example({"messages": CHAT}, tok, 4096)


# ---------------------------------------------------------------------------------------------
# The whole-file default, the counts, and the cache
# ---------------------------------------------------------------------------------------------


def test_max_train_default_is_every_record():
    assert TrainConfig().input.max_train is None


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp("chat") / "llama", "llama")
    tok = byte_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return folder


def _chat_file(path: Path, n: int) -> Path:
    words = ["red", "green", "blue", "cyan", "pink", "gold", "teal"]
    rows = [{"messages": [{"role": "user", "content": f"Say {w} {i % 3 + 1} times."},
                          {"role": "assistant", "content": " ".join([w] * (i % 3 + 1))}]}
            for i, w in enumerate(words * (n // len(words) + 1))][:n]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_chat_training_end_to_end_and_report_counts(tmp_path, chat_model, capsys):
    """A chat JSONL trains through the CLI with the model's template; with max_train left at its
    default every record after the eval split trains, and the summary and the report say so."""
    from adaptive_lora.cli.main import main as cli_main
    from adaptive_lora.reports import write_report

    data = _chat_file(tmp_path / "chat.jsonl", 30)
    sets = [f"model={chat_model}", f"data={data}", "eval_size=6", "max_length=128", "batch_size=4", "grad_accum=1",
            "epochs=1", "r=2", "progress=false", "precision=fp32", "lora_dropout=0.0", "forgetting=false",
            "generate_samples=1", "max_new_tokens=4", f"data_cache={tmp_path / 'cache'}"]
    runs = {"all": ([], "24 of 24"), "capped": (["max_train=10"], "10 of 24")}
    for name, (extra, said) in runs.items():
        args = [x for s in sets + extra for x in ("--set", s)]
        assert cli_main(["train", "--out", str(tmp_path / "results" / name), *args]) == 0
        assert f"{said} training records (6 held out)" in capsys.readouterr().out
    d = json.loads((tmp_path / "results" / "all" / "summary.json").read_text())["data"]
    assert (d["format"], d["n_records"], d["train_available"], d["train_records"], d["eval_records"]) == (
        "messages", 30, 24, 24, 6)
    assert d["max_train"] is None and d["train_examples"] == 24 and d["cache"] == "miss"
    assert d["train_scored_tokens"] > 0 and d["train_tokens"] > d["train_scored_tokens"]
    capped = json.loads((tmp_path / "results" / "capped" / "summary.json").read_text())["data"]
    assert (capped["train_records"], capped["train_available"], capped["max_train"]) == (10, 24, 10)
    sample = json.loads((tmp_path / "results" / "all" / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].endswith("<|assistant|>\n") and sample["reference"]

    md = write_report(tmp_path / "results").results_md.read_text()
    assert (f"Data `{data}` (messages): 24 records trained of 24 left after the eval split, 6 held out; "
            f"{d['train_tokens']} training tokens ({d['train_scored_tokens']} scored) per epoch.") in md
    assert "10 records trained of 24 left after the eval split, capped by max_train 10, 6 held out" in md


def _input(chat_model, data, cache, **kw) -> InputConfig:
    return InputConfig(**{"model": str(chat_model), "data": str(data), "eval_size": 4, "max_length": 128,
                          "data_cache": cache, **kw})


def test_second_prepare_hits_the_cache_with_identical_examples(tmp_path, chat_model):
    from adaptive_lora.training.prepare import prepare_data

    data = _chat_file(tmp_path / "chat.jsonl", 12)
    cache = str(tmp_path / "cache")
    first = prepare_data(_input(chat_model, data, cache))
    second = prepare_data(_input(chat_model, data, cache))
    assert (first.counts["cache"], second.counts["cache"]) == ("miss", "hit")
    assert second.train == first.train and second.eval == first.eval and second.counts["train_tokens"] > 0
    assert {k: v for k, v in second.counts.items() if k != "cache"} == {
        k: v for k, v in first.counts.items() if k != "cache"}
    assert len(list(Path(cache).glob("tokens-*.pt"))) == 2  # train and eval
    # A different max_length is a different entry; no cache at all gives the same examples.
    assert prepare_data(_input(chat_model, data, cache, max_length=64)).counts["cache"] == "miss"
    off = prepare_data(_input(chat_model, data, False))
    assert off.counts["cache"] == "off" and off.train == first.train


def test_damaged_cache_file_is_recomputed(tmp_path):
    tok, _ = prefix_space_tokenizer()
    key = data_key([REC], tokenizer_fingerprint(tok), 4096, "response")

    def compute():
        return tokenize_records([REC], tok, 4096)

    first, hit = cached_tokenize(tmp_path, key, compute)
    (tmp_path / f"{key}.pt").write_bytes(b"not a tensor file")
    again, hit_again = cached_tokenize(tmp_path, key, compute)
    assert (hit, hit_again) == (False, False) and again.examples == first.examples
    assert cached_tokenize(tmp_path, key, compute)[1] is True


def test_cache_key_changes_with_every_input(tmp_path):
    tok, _ = prefix_space_tokenizer()
    fp = tokenizer_fingerprint(tok)
    base = data_key([REC], fp, 64, "response")
    # Where a tokenizer was loaded from is not part of its identity; what it does is.
    tok.save_pretrained(tmp_path / "a")
    from transformers import AutoTokenizer

    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(tmp_path / "a")) == fp
    chat = prefix_space_tokenizer()[0]
    chat.chat_template = CHAT_TEMPLATE
    changed = {
        "record text": data_key([dict(REC, output="hi!")], fp, 64, "response"),
        "tokenizer merges": data_key([REC], tokenizer_fingerprint(prefix_space_tokenizer((("Ċ", "h"),))[0]), 64,
                                     "response"),
        "chat template": data_key([REC], tokenizer_fingerprint(chat), 64, "response"),
        "max_length": data_key([REC], fp, 65, "response"),
        "train_on": data_key([REC], fp, 64, "all"),
    }
    assert all(value != base for value in changed.values()), changed
    assert data_key([dict(REC)], fp, 64, "response") == base
    other = dict(REC, output="x")
    assert data_key([REC, other], fp, 64, "response") != data_key([other, REC], fp, 64, "response")  # the split order


def test_processes_missing_together_tokenise_once(tmp_path):
    """Sweep workers that miss together: the first tokenises under keylock's claim, the others
    wait for its file and read it (claims are files, so threads stand in for processes)."""
    import threading
    import time

    tok, _ = prefix_space_tokenizer()
    key = data_key([REC], tokenizer_fingerprint(tok), 4096, "response")
    calls, results = [], []

    def compute():
        calls.append(1)
        time.sleep(0.3)  # long enough for the others to reach the claim
        return tokenize_records([REC], tok, 4096)

    threads = [threading.Thread(target=lambda: results.append(cached_tokenize(tmp_path, key, compute)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True]
    assert all(r.examples == results[0][0].examples for r, _ in results)


def test_main_job_tokens_unchanged_on_smollm2():
    """The embedded data on the default model: tokenising prompt and reply together gives the
    same ids and labels as the old separate tokenisation for every record, so the main job's
    results do not move (SmolLM2's byte-level BPE adds no prefix space and the prompt ends in a
    newline, which its pre-tokenizer never merges with the reply)."""
    from adaptive_lora.layout.resolve import smollm2_cache_dir

    if not (smollm2_cache_dir() / "tokenizer.json").is_file():
        pytest.skip("SmolLM2 is not converted in the cache on this machine")
    from adaptive_lora.layout import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    records = load_records("default").records
    new = tokenize_records(records, tok, 256).examples
    for record, ex in zip(records, new):
        prompt = tok(format_prompt(record))["input_ids"]
        ids = (prompt + tok(record["output"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id])[:256]
        labels = ([IGNORE_INDEX] * len(prompt) + ids[len(prompt):])[:256]
        assert (ex["input_ids"], ex["labels"]) == (ids, labels)
    assert len(new) == len(records) == 382
