"""What every benchmark script shares: the machine, versions and load it ran under, timing medians, and its own
block of ``benchmarks/RESULTS.md``.

Each script owns one block of RESULTS.md, delimited by ``<!-- BEGIN <name> -->`` / ``<!-- END <name> -->``
comments; writing a block rewrites (or with ``--results_mode append`` extends) that block only, so the scripts
can be rerun in any order without touching each other's tables. Raw numbers go to
``benchmarks/results/<date>-<machine><suffix>.json``.

    report = start_report("x_throughput.py", args, argv, json_suffix="-x")
    ...  # measure: report["rows"] = [...]
    finish_report(report, args, markdown_fn, block="x_throughput", header="## X throughput\\n...")
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import time
from importlib import metadata
from typing import Callable

import rlland  # noqa: F401  (sets rlland's XLA flags before JAX starts its backend)

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "RESULTS.md")
T0 = time.perf_counter()


def log(msg: str) -> None:
    """Print ``msg`` with the seconds since start and the 1-minute load average (a busy CPU shows up here)."""
    print(f"[{time.perf_counter() - T0:7.1f}s load {os.getloadavg()[0]:4.1f}] {msg}", flush=True)


def add_report_args(p: argparse.ArgumentParser, repeats: int = 3) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: repeats, where results go, a note."""
    p.add_argument("--repeats", type=int, default=repeats, help="timed calls of each compiled kernel (>= 3)")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--results_mode", choices=["rewrite", "append"], default="rewrite")
    p.add_argument("--json", default=None, help="raw-numbers path (default benchmarks/results/<date>-<machine>.json)")
    p.add_argument("--note", default="", help="free text written under the run's heading in RESULTS.md")
    p.add_argument("--no_write", action="store_true", help="print only; write neither RESULTS.md nor the JSON")
    return p


def check_repeats(p: argparse.ArgumentParser, a) -> None:
    if a.repeats < 3:
        p.error("--repeats must be >= 3 (the median of at least 3 runs)")


def shell(cmd: list[str], cwd: str = ROOT) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _first_field(path: str, prefix: str) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info() -> dict:
    mem = _first_field("/proc/meminfo", "MemTotal")
    devices = jax.devices()
    gpu = [d.device_kind for d in devices if d.platform == "gpu"]
    nvsmi = shell(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    return {
        "cpu": _first_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(int(mem.split()[0]) / 2**20, 1) if mem else None,
        "gpu": gpu or None,
        "nvidia_smi": nvsmi or None,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in devices],
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_slug(m: dict) -> str:
    name = m["gpu"][0] if m["gpu"] else m["cpu"]
    name = re.sub(r"\((R|TM)\)|CPU|Processor|@.*$", "", name, flags=re.I)
    name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "machine"
    return f"{name}-{m['cores_usable']}c" if not m["gpu"] else f"{name}-x{len(m['gpu'])}"


def installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def versions(extra: tuple[str, ...] = ()) -> dict:
    out = {k: metadata.version(k) for k in ("jax", "jaxlib", "brax", "flax", "optax", *extra) if installed(k)}
    pkg = os.path.dirname(os.path.abspath(rlland.__file__))  # the rlland actually imported (editable or not)
    sha = shell(["git", "rev-parse", "HEAD"], cwd=pkg)
    dirty = shell(["git", "status", "--porcelain", "--", "."], cwd=pkg)
    out["rlland"] = metadata.version("rlland") if installed("rlland") else rlland.__version__
    out["rlland_git"] = (sha[:12] + ("+uncommitted-changes-in-rlland/" if dirty else "")) if sha else "unknown"
    out["rlland_dirty_files"] = dirty.splitlines() if dirty else []
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    return out


def uptime() -> str:
    return shell(["uptime"]) or "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fmt(x, nd: int = 1, dash: str = "—") -> str:
    """A table cell: thousands separators from 1000 up, ``nd`` decimals below, a dash for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return dash
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def timed(fn: Callable[[], object], repeats: int) -> dict:
    """Call ``fn`` (which must block until its result is ready) ``repeats`` times; the median and every time."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "times_s": times}


def block(x):
    """``jax.block_until_ready`` that also returns its argument (for ``timed(lambda: block(f(x)), ...)``)."""
    return jax.block_until_ready(x)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def start_report(script: str, a, argv, json_suffix: str = "") -> dict:
    """The report header shared by the benchmark scripts: command, machine, versions, load; warns on a busy CPU."""
    cmd = f"python benchmarks/{script} " + shlex.join(sys.argv[1:] if argv is None else argv)
    m = machine_info()
    now = dt.datetime.now(dt.timezone.utc)
    report = dict(date=now.strftime("%Y-%m-%d"), started_utc=now.isoformat(timespec="seconds"),
                  machine=m, machine_slug=machine_slug(m), versions=versions(), command=cmd.strip(),
                  args=vars(a).copy(), note=a.note, uptime_start=uptime())
    json_path = a.json or os.path.join(ROOT, "benchmarks", "results",
                                       f"{report['date']}-{report['machine_slug']}{json_suffix}.json")
    report["json_path"] = os.path.relpath(json_path, ROOT)
    log(f"machine: {m['cpu']}, {m['cores_usable']} cores, {m['ram_gib']} GiB, backend {m['jax_backend']}, "
        f"gpu {m['gpu']}; {report['uptime_start']}")
    log(f"versions: {report['versions']}")
    if m["jax_backend"] == "cpu" and os.getloadavg()[0] > 0.5 * m["cores_usable"]:
        log(f"WARNING: load average {os.getloadavg()[0]:.1f} on {m['cores_usable']} cores: timings will be noisy")
    return report


def run_header(report: dict, title: str | None = None) -> list[str]:
    """The lines every RESULTS.md section starts with: date and machine, note, machine, load, versions, command."""
    m, v = report["machine"], report["versions"]
    hw = (f"{m['cpu']}, {m['cores_usable']} usable cores ({m['cores']} online), {m['ram_gib']} GiB RAM, "
          f"GPU: {', '.join(m['gpu']) if m['gpu'] else 'none (CPU backend)'}; JAX backend `{m['jax_backend']}`")
    vs = ", ".join(f"{k} {v[k]}" for k in v if k not in ("rlland_git", "rlland_dirty_files", "xla_flags"))
    lines = [f"### {title or report['date']} — {report['machine_slug']}", ""]
    if report.get("note"):
        lines += [report["note"], ""]
    lines += [f"- **Machine**: {hw}.",
              f"- **Load** (`uptime`): at start `{report['uptime_start']}`; at end `{report.get('uptime_end', '?')}`.",
              f"- **Versions**: {vs} @ `{v['rlland_git']}`.",
              f"- **Command**: `{report['command']}`",
              f"- Raw numbers: `{report['json_path']}`.", ""]
    return lines


def write_block(path: str, name: str, header: str, section: str, mode: str = "rewrite") -> None:
    """Put ``section`` into RESULTS.md's block ``name`` (created at the end if missing); other blocks are kept.

    ``rewrite`` replaces the block's body by ``header`` + ``section``; ``append`` adds ``section`` to it."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = open(path).read() if os.path.exists(path) else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        old, tail = rest.split(end, 1)
        body = old.strip() + "\n\n" + section.rstrip() if mode == "append" else header.rstrip() + "\n\n" + section
    else:
        head, tail = (text.rstrip() + "\n\n") if text.strip() else "", "\n"
        body = header.rstrip() + "\n\n" + section
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + begin + "\n" + body.strip() + "\n" + end + tail)
    os.replace(tmp, path)


def finish_report(report: dict, a, markdown_fn: Callable[[dict], str], block: str, header: str) -> None:
    """Close the report (end load and time), print its markdown, write the JSON and RESULTS.md block ``block``."""
    report["uptime_end"] = uptime()
    report["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    section = markdown_fn(report)
    print("\n" + section, flush=True)
    if a.no_write:
        return
    json_path = os.path.join(ROOT, report["json_path"])
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(jsonable(report), f, indent=1)
    write_block(a.results, block, header, section, a.results_mode)
    log(f"wrote block {block!r} of {os.path.relpath(a.results, ROOT)} and {report['json_path']}")


def run_peer_command(cmd: list[str], label: str, setup_hint: str, timeout: float) -> dict:
    """Run a peer script (``cmd[0]`` is its venv's python) and return the JSON object of its last JSON line,
    plus ``command`` (repo-relative) and ``subprocess_wall_s``."""
    if not os.path.exists(cmd[0]):
        raise FileNotFoundError(f"{cmd[0]} not found: run `{setup_hint}` first")
    rel = [os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in cmd]
    log(f"{label}: {shlex.join(rel)}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    result = None
    for line in reversed(proc.stdout.splitlines()):
        try:
            result = json.loads(line)
            break
        except json.JSONDecodeError:
            continue
    if proc.returncode != 0 or result is None:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        raise RuntimeError(f"{label} failed (rc {proc.returncode}); stderr tail:\n{tail}")
    result["command"] = shlex.join(rel)
    result["subprocess_wall_s"] = wall
    return result
