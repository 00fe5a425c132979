#!/usr/bin/env bash
# Time-boxed training on a CUDA machine that has only this repository (e.g. the lent H200).
#
#   scripts/train_on_gpu.sh CONFIG CHECKPOINT PACK OUT [MINUTES] [DEVICE]
#
# CONFIG      a training config (configs/detail.yaml)
# CHECKPOINT  the last.pt to continue from (e.g. runs/detail-gpu/last.pt from an earlier call), or "new" to start the run
# PACK        the training images in one tar, made here by: enlarge pack CONFIG PACK  (< 40 MB, travels)
# OUT         where the run folder (last.pt, best.pt, log.jsonl) and train.log are left
# MINUTES     the training time box (default 9); the run stops cleanly with a checkpoint when it is spent
# DEVICE      cuda (default) or cpu (how the tests check this script)
#
# Runs with the machine's python3 and this repo's src/. Packages its image lacks travel as wheels in .whl/
# (`make gpu-wheels` here, then carry .whl) and are installed into a scratch folder, not into that python.
# DATA_WORKERS: processes making batches (default: all cores but 4; one core cannot keep a GPU fed).
# SPLIT_KIB: a last.pt larger than this is left in parts of this size (default 15360, under the 16 MiB a file may
# bring back).
# Bring the results back: copy OUT/RUN/{best.pt,log.jsonl,run.json} into checkpoints/RUN/ and commit them; keep
# last.pt (rejoined) only while the run goes on. What travels is capped at 64 MiB (tree + pack + wheels), so a
# detail run continues on a GPU from best.pt through a new config's init_from, not from its 20 MB last.pt.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,23p' "$0" >&2
  exit 2
fi
config=$1; checkpoint=$2; pack=$3; out=$4; minutes=${5:-9}; device=${6:-cuda}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
name=$(basename "$config" .yaml)
mkdir -p "$out"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
tar -xf "$pack" -C "$data"
site="$data/site-packages"
if ! "$python" -c "import pydantic, png" 2> /dev/null && compgen -G "$repo/.whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$repo"/.whl/*.whl
fi
cores=$(nproc)
workers=${DATA_WORKERS:-$(( cores > 4 ? cores - 4 : 0 ))}
run_dir="$out/$name"
if [ "$checkpoint" != new ]; then
  mkdir -p "$run_dir"
  cp "$checkpoint" "$run_dir/last.pt"
  best="$(dirname "$checkpoint")/best.pt"
  [ -f "$best" ] && cp "$best" "$run_dir/best.pt"
  resume=(--resume)
else
  resume=()
fi
# run_dir is a runtime field: the run lives under OUT whatever the config says.
cfg="$data/config.yaml"
sed -e '/^run_dir:/d' "$config" > "$cfg"
echo "run_dir: $run_dir" >> "$cfg"
cd "$repo"
PYTHONPATH="$repo/src:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 "$python" -m enlarge train "$cfg" \
  --name "$name" "${resume[@]}" --data-root "$data" --device "$device" --max-minutes "$minutes" \
  --data-workers "$workers" 2>&1 | tee "$out/train.log"
# Files come back from a lent machine only up to 16 MiB each: a larger last.pt (detail's is 20 MB) comes back in
# parts, rejoined here with: cat OUT/RUN/last.pt.part* > checkpoints/RUN/last.pt
split_kib=${SPLIT_KIB:-15360}
if [ -f "$run_dir/last.pt" ] && [ "$(stat -c %s "$run_dir/last.pt")" -gt $(( split_kib * 1024 )) ]; then
  split -b "${split_kib}K" -d "$run_dir/last.pt" "$run_dir/last.pt.part"
  rm "$run_dir/last.pt"
fi
