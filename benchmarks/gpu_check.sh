#!/usr/bin/env bash
# GPU check, no network: SmolLM2-135M from the embedded GGUF (converted once into the cache),
# a few optimizer steps in bf16 with gradient checkpointing, then the same on a 4-bit base when
# bitsandbytes is importable; prints tokens/s and peak GPU memory of each, in well under 5 min.
#
#   bash benchmarks/gpu_check.sh [output folder, default benchmarks/out/gpu_check]
#
# Not yet run on a GPU by this project: the first run on a CUDA machine is its test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-benchmarks/out/gpu_check}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check needs a GPU')"
$PY -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| bf16:', torch.cuda.is_bf16_supported())"

COMMON=(--set data=default --set eval_size=16 --set max_train=128 --set max_length=256 --set batch_size=8
        --set grad_accum=1 --set max_steps=12 --set forgetting=false --set progress=false --set r=16
        --set precision=bf16 --set dtype=bf16 --set gradient_checkpointing=true)

run() {  # name, extra --set pairs...
  local name=$1; shift
  rm -rf "$OUT/$name"
  timeout 240 $PY -m adaptive_lora.cli.main train --out "$OUT/$name" "${COMMON[@]}" "$@"
  $PY - "$OUT/$name/summary.json" "$name" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: status {s['status']}, {s['optimizer_steps']} steps, {s['tokens_per_s']:.0f} tokens/s, "
      f"peak {s['peak_memory_mb']:.0f} MiB, eval loss {s['base_eval_loss']:.4f} -> {s['eval_loss']}")
PYEOF
}

run bf16_checkpointing
if $PY -c "import bitsandbytes" 2>/dev/null; then
  run qlora_4bit --set 'quantization={bits: 4, type: nf4, double_quant: true, compute_dtype: bf16}'
else
  echo "qlora_4bit: skipped (bitsandbytes is not importable: pip install 'adaptive-lora[qlora]')"
fi
