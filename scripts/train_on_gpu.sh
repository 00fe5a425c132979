#!/usr/bin/env bash
# Time-boxed training on a CUDA machine that has only this repository (e.g. the lent H200).
#
#   scripts/train_on_gpu.sh CONFIG CHECKPOINT PACK OUT [MINUTES] [DEVICE]
#
# CONFIG      a training config (configs/detail.yaml)
# CHECKPOINT  the last.pt to continue from (e.g. checkpoints/detail/last.pt), or "new" to start the run
# PACK        the training images in one tar, made here by: enlarge pack CONFIG PACK  (< 40 MB, travels)
# OUT         where the run folder (last.pt, best.pt, log.jsonl) and train.log are left
# MINUTES     the training time box (default 9); the run stops cleanly with a checkpoint when it is spent
# DEVICE      cuda (default) or cpu (how the tests check this script)
#
# Runs with the machine's python3 and this repo's src/. Packages its image lacks travel as wheels in .whl/
# (`make gpu-wheels` here, then carry .whl) and are installed into a scratch folder, not into that python.
# DATA_WORKERS: processes making batches (default: all cores but 4; one core cannot keep a GPU fed).
# Bring the results back by copying OUT/RUN/last.pt and best.pt into checkpoints/RUN/ and commit them.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,18p' "$0" >&2
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
