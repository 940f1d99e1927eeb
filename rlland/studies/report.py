"""A study's report: per-seed numbers with a 95% t-interval, each paper claim beside rlland's number with a
verdict computed from the numbers, the figures, and the commands that reproduce it; written as ``report.md``
and a self-contained ``report.html`` (figures embedded as base64 PNG), both atomically.

Verdicts (`verdict`): a claim is tested on one statistic per seed, oriented so that the claim says
"statistic > null" (``direction="greater"``) or "< null" (``"less"``). With the mean and its 95% t-interval over
seeds: **agree** when the whole interval is on the claim's side of the null, **partly** when the mean is on the
claim's side but the interval reaches across it (too few seeds, or too much spread, to be sure), **disagree** when
the mean is not on the claim's side, **n/a** when nothing finite was measured.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import math
import os
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

VERDICTS = ("agree", "partly", "disagree", "n/a")


def t_interval(values, level: float = 0.95) -> tuple[float, float, int]:
    """``(mean, half-width, n)`` of the ``level`` Student-t interval of the mean of the finite ``values``
    (half-width NaN with fewer than two values, 0 when they are all equal)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, 1
    sem = float(v.std(ddof=1)) / math.sqrt(n)
    return mean, float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sem, n


def verdict(values, null: float = 0.0, direction: str = "greater") -> str:
    """The verdict rule of the module docstring."""
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    mean, half, n = t_interval(values)
    if n == 0:
        return "n/a"
    sign = 1.0 if direction == "greater" else -1.0
    d = sign * (mean - null)
    if not d > 0:
        return "disagree"
    return "agree" if np.isfinite(half) and d - half > 0 else "partly"


@dataclasses.dataclass
class Claim:
    """A paper's claim, what rlland measures to test it (one value per seed) and the paper's own number."""

    claim: str
    statistic: str  # what the per-seed values are
    values: Sequence[float]
    paper: str = ""  # the paper's number or figure, as text
    null: float = 0.0
    direction: str = "greater"
    note: str = ""

    @property
    def verdict(self) -> str:
        return verdict(self.values, self.null, self.direction)


@dataclasses.dataclass
class Report:
    title: str
    source: str  # the paper
    measures: str  # what the study measures (one paragraph)
    setting: list[tuple[str, str]]  # (item, value)
    reductions: list[str]  # how this scale differs from the paper's settings
    seeds: list[int]
    tables: dict[str, dict[str, Sequence[float]]]  # table title -> {metric: per-seed values}
    claims: list[Claim]
    figures: list[tuple[str, str]]  # (caption, path relative to the run directory)
    commands: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)


def fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "nan" if x is None or np.isnan(x) else str(x)
    a = abs(x)
    return f"{x:.3g}" if a == 0 or 1e-3 <= a < 1e5 else f"{x:.3e}"


def interval_text(values) -> str:
    mean, half, n = t_interval(values)
    if n == 0:
        return "n/a"
    return f"{fmt(mean)} ± {fmt(half)}" if np.isfinite(half) else f"{fmt(mean)} (1 seed)"


def _blocks(r: Report) -> list[tuple]:
    """The report as blocks: ("h", level, text), ("p", text), ("table", header, rows), ("list", items),
    ("code", text), ("img", caption, path). Both writers render these."""
    b: list[tuple] = [("h", 1, r.title), ("p", f"Source: {r.source}."), ("p", r.measures), ("h", 2, "Setting"),
                      ("table", ["item", "value"], [[k, v] for k, v in r.setting])]
    if r.reductions:
        b += [("p", "Reductions against the paper's settings at this scale:"), ("list", list(r.reductions))]
    b.append(("h", 2, "Measured numbers"))
    seed_cols = [f"seed {s}" for s in r.seeds]
    for title, metrics in r.tables.items():
        rows = []
        for name, values in metrics.items():
            v = np.asarray(values, dtype=float).ravel()
            rows.append([name, *[fmt(x) for x in v], interval_text(v)])
        width = max((len(row) for row in rows), default=2)
        cols = seed_cols if width - 2 == len(seed_cols) else [f"#{i}" for i in range(width - 2)]
        b += [("h", 3, title), ("table", ["metric", *cols, "mean ± 95% t-interval"], rows)]
    b += [("h", 2, "Claims"),
          ("p", "Each claim is tested on one statistic per seed; verdict from its mean and 95% t-interval: agree = "
                "the interval is on the claim's side, partly = only the mean is, disagree = the mean is not."),
          ("table", ["claim", "paper", "rlland (mean ± 95% t-interval)", "per seed", "verdict"],
           [[c.claim + (f" ({c.note})" if c.note else ""), c.paper or "-",
             f"{c.statistic} {'>' if c.direction == 'greater' else '<'} {fmt(c.null)}: {interval_text(c.values)}",
             ", ".join(fmt(float(x)) for x in np.asarray(c.values, float).ravel()), f"**{c.verdict}**"]
            for c in r.claims])]
    if r.notes:
        b += [("h", 2, "Notes"), ("list", list(r.notes))]
    b.append(("h", 2, "Figures"))
    b += [("img", cap, path) for cap, path in r.figures]
    b += [("h", 2, "Reproduce"), ("code", "\n".join(r.commands))]
    return b


def to_markdown(r: Report) -> str:
    out = []
    for blk in _blocks(r):
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2])
        elif kind == "p":
            out.append(blk[1])
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in blk[1]))
        elif kind == "table":
            header, rows = blk[1], blk[2]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "code":
            out.append("```bash\n" + blk[1] + "\n```")
        elif kind == "img":
            out.append(f"![{blk[1]}]({blk[2]})\n\n*{blk[1]}*")
    return "\n\n".join(out) + "\n"


def to_html(r: Report, run_dir: str) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + esc(r.title) + "</title><style>"
           "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
           "text-align:left;font-size:90%}img{max-width:100%}pre{background:#f4f4f4;padding:1em;overflow-x:auto}"
           "</style></head><body>"]
    for blk in _blocks(r):
        kind = blk[0]
        if kind == "h":
            out.append(f"<h{blk[1]}>{esc(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            out.append(f"<p>{esc(blk[1])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in blk[1]) + "</ul>")
        elif kind == "table":
            cell = lambda c: esc(str(c)).replace("**", "")  # noqa: E731
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in blk[1]) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in blk[2]) + "</table>")
        elif kind == "code":
            out.append(f"<pre>{esc(blk[1])}</pre>")
        elif kind == "img":
            with open(os.path.join(run_dir, blk[2]), "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            out.append(f"<figure><img alt='{esc(blk[1])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{esc(blk[1])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write(r: Report, run_dir: str) -> dict[str, str]:
    """Write ``report.md`` and ``report.html`` into ``run_dir`` (figures that do not exist are refused)."""
    missing = [p for _, p in r.figures if not os.path.exists(os.path.join(run_dir, p))]
    if missing:
        raise FileNotFoundError(f"report figures missing in {run_dir}: {missing}")
    md, page = os.path.join(run_dir, "report.md"), os.path.join(run_dir, "report.html")
    _write_atomic(md, to_markdown(r))
    _write_atomic(page, to_html(r, run_dir))
    return {"report.md": md, "report.html": page}
