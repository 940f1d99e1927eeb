#!/usr/bin/env bash
# Every benchmark at accelerator-sized settings, one after the other, in about 10 minutes on one GPU.
#
#   bash benchmarks/gpu.sh                  # all of them; each writes its block of benchmarks/RESULTS.md
#   bash benchmarks/gpu.sh --no_write       # print only
#   ONLY="purd regions" bash benchmarks/gpu.sh
#
# Needs rlland's venv with a CUDA jaxlib at the pinned jax version (the CPU wheel runs everything on the CPU):
#   .venv/bin/pip install -U "jax[cuda12]==$(.venv/bin/python -c 'import jax; print(jax.__version__)')"
# Peers are not run here (their venvs would need the same swap; see benchmarks/README.md). Nothing in CI runs
# this script. Each benchmark gets a time limit (seconds) so one slow piece cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ONLY=${ONLY:-"train qd purd curvature regions diagnostics"}
NOTE="benchmarks/gpu.sh at accelerator-sized settings"
backend=$("$PY" -c 'import jax; print(jax.default_backend())' 2>/dev/null)
if [ "$backend" != "gpu" ]; then
  echo "benchmarks/gpu.sh: JAX's backend is '${backend:-unavailable}', not gpu; install a CUDA jaxlib (see the header)" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

status=0
bench() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$PY" "$@" --note "$NOTE" "${EXTRA[@]}" || { echo "== $name FAILED (rc $?)"; status=1; }
}
EXTRA=("$@")

bench train 150 benchmarks/train_throughput.py --seeds 1,256 --offpolicy_steps 4000 --warmup 1000 \
  --ppo_steps 65536 --separate extrapolate --no_bare
bench qd 60 benchmarks/qd_throughput.py --seeds 1,16 --batch_size 2048 --generations 10
bench purd 90 benchmarks/purd_throughput.py --samples 2048 --chunks 256,1024,2048 --episode_length 1000
bench curvature 90 benchmarks/curvature_throughput.py
bench regions 60 benchmarks/regions_throughput.py
bench diagnostics 90 benchmarks/diagnostics_overhead.py
exit $status
