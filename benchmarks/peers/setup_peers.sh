#!/usr/bin/env bash
# Create the peer virtualenvs used by benchmarks/train_throughput.py and benchmarks/qd_throughput.py.
#
#   benchmarks/_peers/rejax     rejax 0.1.3 + gymnax 0.0.9 + brax/jax/flax (rejax-requirements.txt)
#   benchmarks/_peers/brax_ppo  brax 0.14.2 + jax/jaxlib 0.7.2           (brax-ppo-requirements.txt)
#   benchmarks/_peers/qdax      qdax 0.5.0 + brax/jax/flax               (qdax-requirements.txt)
#   benchmarks/_peers/torch     torch 2.13.0+cpu + scipy (SciPy eigsh over a PyTorch HVP, for
#                               benchmarks/curvature_throughput.py; torch-requirements.txt)
#
# Idempotent: an existing venv whose smoke check passes (imports + exact pinned
# versions) is left alone; a broken or mismatched one is deleted and rebuilt.
#
# Usage: bash benchmarks/peers/setup_peers.sh [rejax|brax_ppo|qdax|torch ...] [--force] [--refreeze]
#   --force     rebuild even if the venv looks fine
#   --refreeze  install from the top-level pins below (letting pip resolve the rest)
#               and rewrite the *-requirements.txt files with `pip freeze`
# Env: PYTHON (default python3, must be 3.11), PEERS_DIR (default benchmarks/_peers).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
PEERS_DIR="${PEERS_DIR:-$ROOT/benchmarks/_peers}"

# Top-level pins (the newest set found to work; see README.md). The full, exact
# set of every installed package is in the *-requirements.txt files.
REJAX_TOP=(rejax==0.1.3 gymnax==0.0.9 jax==0.10.2 jaxlib==0.10.2 flax==0.12.8 brax==0.14.2)
BRAX_TOP=(brax==0.14.2 jax==0.7.2 jaxlib==0.7.2)
# QDax 0.5.0 only sets lower bounds (jax>=0.4.28, brax>=0.10.4, flax>=0.8.5, ...); it runs on the same
# jax/brax/flax as rlland, so the MAP-Elites comparison uses one XLA version on both sides.
QDAX_TOP=(qdax==0.5.0 jax==0.10.2 jaxlib==0.10.2 flax==0.12.8 brax==0.14.2)
# The CPU build of torch (no CUDA wheels): from PyTorch's CPU index when it is reachable, else from wherever pip
# finds a "+cpu" wheel; scipy for eigsh (the study's solver).
TORCH_TOP=(torch==2.13.0+cpu scipy numpy)
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

FORCE=0; REFREEZE=0; WHICH=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --refreeze) REFREEZE=1; FORCE=1 ;;
    rejax|brax_ppo|qdax|torch) WHICH+=("$arg") ;;
    *) echo "unknown argument: $arg (expected rejax, brax_ppo, qdax, torch, --force, --refreeze)" >&2; exit 2 ;;
  esac
done
[ ${#WHICH[@]} -eq 0 ] && WHICH=(rejax brax_ppo qdax torch)

"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "need Python 3.11 as \$PYTHON (got $("$PYTHON" --version 2>&1))" >&2; exit 1; }

smoke_rejax() {
  "$1/bin/python" - <<'EOF'
from importlib.metadata import version
import jax, rejax, gymnax, brax, flax  # noqa: F401
from rejax.compat.brax2gymnax import create_brax  # noqa: F401
from rejax import SAC, TD3  # noqa: F401
want = {"rejax": "0.1.3", "gymnax": "0.0.9", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8", "brax": "0.14.2"}
got = {k: version(k) for k in want}
assert got == want, got
EOF
}

smoke_brax_ppo() {
  "$1/bin/python" - <<'EOF'
from importlib.metadata import version
import jax  # noqa: F401
from brax import envs  # noqa: F401
from brax.training.agents.ppo import networks, train  # noqa: F401
want = {"brax": "0.14.2", "jax": "0.7.2", "jaxlib": "0.7.2"}
got = {k: version(k) for k in want}
assert got == want, got
EOF
}

smoke_qdax() {
  "$1/bin/python" - <<'EOF'
from importlib.metadata import version
import jax  # noqa: F401
import qdax.tasks.brax.v2 as environments
from qdax.core.map_elites import MAPElites  # noqa: F401
from qdax.core.emitters.standard_emitters import MixingEmitter  # noqa: F401
from qdax.tasks.brax.v2.env_creators import create_brax_scoring_fn  # noqa: F401
env = environments.create("hopper_uni", episode_length=10, backend="spring")
assert env.descriptor_length == 1, env.descriptor_length  # the foot link was found
want = {"qdax": "0.5.0", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8", "brax": "0.14.2"}
got = {k: version(k) for k in want}
assert got == want, got
EOF
}

smoke_torch() {
  "$1/bin/python" - <<'EOF'
from importlib.metadata import version
import scipy.sparse.linalg  # noqa: F401
import torch
x = torch.randn(3, requires_grad=True)
(g,) = torch.autograd.grad((x ** 3).sum(), x, create_graph=True)
(h,) = torch.autograd.grad(g, x, grad_outputs=torch.ones(3))  # an HVP works
assert torch.allclose(h, 6 * x), h
assert version("torch") == "2.13.0+cpu", version("torch")
EOF
}

# Extra pip arguments per venv: torch's CPU index, only if this machine can reach it (pip would otherwise retry it
# for every package).
pip_extra() {
  if [ "$1" = torch ] && "$PYTHON" -c "import urllib.request as u; u.urlopen('$TORCH_CPU_INDEX/', timeout=10)" \
      >/dev/null 2>&1; then
    echo "--extra-index-url $TORCH_CPU_INDEX"
  fi
}

build() {  # build NAME REQFILE TOP...
  local name="$1" req="$2"; shift 2
  local venv="$PEERS_DIR/$name"
  if [ "$FORCE" = 0 ] && [ -x "$venv/bin/python" ] && "smoke_$name" "$venv" >/dev/null 2>&1; then
    echo "[$name] $venv is present and working: skipped"
    return 0
  fi
  echo "[$name] building $venv"
  rm -rf "$venv"
  mkdir -p "$PEERS_DIR"
  "$PYTHON" -m venv "$venv"
  if [ "$REFREEZE" = 1 ] || [ ! -f "$req" ]; then
    # shellcheck disable=SC2046
    "$venv/bin/python" -m pip install -q $(pip_extra "$name") "$@"
    "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^pip==' | grep -v '^setuptools==' > "$req"
    echo "[$name] wrote $(wc -l < "$req") pins to $req"
  else
    # shellcheck disable=SC2046
    "$venv/bin/python" -m pip install -q $(pip_extra "$name") -r "$req"
  fi
  "$venv/bin/python" -m pip check
  "smoke_$name" "$venv"
  echo "[$name] ok"
}

for name in "${WHICH[@]}"; do
  case "$name" in
    rejax) build rejax "$HERE/rejax-requirements.txt" "${REJAX_TOP[@]}" ;;
    brax_ppo) build brax_ppo "$HERE/brax-ppo-requirements.txt" "${BRAX_TOP[@]}" ;;
    qdax) build qdax "$HERE/qdax-requirements.txt" "${QDAX_TOP[@]}" ;;
    torch) build torch "$HERE/torch-requirements.txt" "${TORCH_TOP[@]}" ;;
  esac
done
