#!/usr/bin/env bash
# Issue 14's GPU measurements in one go (about 8 minutes on one H200), for a session that has a
# GPU: the tensor-preprocessing equality tests on CUDA, the head epoch against a bare loop
# (and a CUDA-graphed one), the scale run at 16,384 images with GPU and with PIL decoding,
# the peers at a GPU size, and the whole 83,484-image run if time is left. Each step has its
# own time limit, so one slow step cannot take the others' time; a summary table ends it.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#   OUT=/some/folder bash benchmarks/gpu_check.sh    # keep the JSON and logs there
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
DATA="$(mktemp -d)"
trap 'rm -rf "$DATA"' EXIT
status() { echo "[$(date +%H:%M:%S)] $*"; }

status "machine: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null), $(nproc) cores"
python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"

status "1/6 equality of the tensor path on CUDA (tests)"
timeout 120 python -m pytest -q -p no:cacheprovider tests/test_tensor_preprocessing.py \
  tests/test_loaders.py tests/test_feature_cache_decode.py 2>&1 | tail -5 | tee "$OUT/tests.log"
timeout 120 python -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_device.py \
  tests/test_evaluation.py tests/test_export.py 2>&1 | tail -5 | tee -a "$OUT/tests.log"

status "2/6 head epoch: Trainer vs bare loop vs CUDA graph, 16,384 rows, batch 32 and 128"
for batch in 32 128; do
  timeout 90 python benchmarks/bench_head_epoch.py --device cuda --rows 16384 --batch-size "$batch" \
    2>&1 | grep -v Warning | tee "$OUT/head_epoch_$batch.log"
done

status "3/6 scale, 16,384 images, GPU decoding (decode='auto')"
timeout 150 python benchmarks/bench_scale.py --images 16384 --device cuda --data "$DATA/16k" \
  --json "$OUT/scale_16384.json" 2>&1 | grep -v Warning | tee "$OUT/scale_16384.log"

status "4/6 peers, 2,048 images, 3 epochs"
timeout 150 python benchmarks/bench_peers.py --images 2048 --epochs 3 --device cuda \
  2>&1 | grep -v -i warn | tee "$OUT/peers.log"

status "5/6 scale, 83,484 images (the Kermany training split), GPU decoding"
rm -rf "$DATA/16k"
timeout 200 python benchmarks/bench_scale.py --images 83484 --device cuda --data "$DATA/84k" \
  --json "$OUT/scale_83484.json" 2>&1 | grep -v Warning | tee "$OUT/scale_83484.log"
rm -rf "$DATA/84k"

status "6/6 scale, 16,384 images, PIL decoding in 8 workers (the before)"
timeout 120 python benchmarks/bench_scale.py --images 16384 --device cuda --decode pil \
  --data "$DATA/16k" --json "$OUT/scale_16384_pil.json" 2>&1 | grep -v Warning \
  | tee "$OUT/scale_16384_pil.log"

status "summary"
python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'run':22s} {'cache img/s':>12s} {'bf16 peak':>10s} {'head epoch ms':>14s} {'total s':>9s}  goal")
for name, goal in (("scale_16384", "cache >= 8,000 img/s"), ("scale_16384_pil", "(before)"),
                   ("scale_83484", "total < 30 s")):
    path = out / f"{name}.json"
    if not path.exists():
        print(f"{name:22s} {'did not finish':>12s}")
        continue
    r = json.loads(path.read_text())
    fraction = "n/a" if r["bf16_fraction"] is None else f"{r['bf16_fraction']:.1%}"
    print(f"{name:22s} {r['cache_img_s']:12.0f} {fraction:>10s} {r['head_epoch_s'] * 1000:14.1f} "
          f"{r['total']:9.1f}  {goal}")
EOF
status "done; logs in $OUT"
