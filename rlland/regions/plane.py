"""2-D pictures of linear regions: the plane through three states, and 2-D state spaces.

Plane through three states (Cohan et al. 2022, ``visualize_hd.py`` / ``regions_counting_2d.py get_sample_plane``;
reference B.3): with anchors a, b, c, circumcentre O and circumradius r, the plane is ``x(u, v) = O + u e1 + v e2``
for ``(u, v) in [-1, 1]^2``. The square is centred on the circumcircle and circumscribes it with a ``margin``
(1.25 in the reference) on every side; two frames (:data:`FRAMES`) orient it:

* ``"study"`` (default, the reference's): ``e1 = margin (a - O)`` (towards the first anchor, which sits at
  ``(1 / margin, 0)``) and ``e2 = margin * r * w / ||w||``, ``w`` the part of ``a - b`` orthogonal to ``e1``;
* ``"rlland"`` (rlland's earlier frame): ``e1 = margin * r * (b - a) / ||b - a||`` and ``e2`` along the part of
  ``c - a`` orthogonal to ``b - a``. Same centre and size, rotated: the square covers other corners of the plane,
  so it meets other regions (issue 17: 81 regions vs the study frame's 75 for the same anchors).

Collinear anchors have no circumcircle (NaN frame).

Regions on the square, two ways:

* exact polygons (:func:`rlland.regions.polygon_regions`, the reference's method): every region meeting the
  square as a convex polygon; :func:`plot_plane_regions` draws these by default, so the picture shows every
  region (the title gives the exact count);
* a grid (:func:`plane_partition`, jit-able): the activation pattern at every point of an ``R x R`` grid,
  ``num_regions`` = distinct patterns, a LOWER BOUND that misses regions containing no grid point (issue 17: a
  200 x 200 grid showed ~62 % of a trained actor's regions; on the 1-D car's state plane, a PPO 16-16 policy
  after 614k steps, 266 of 375 = 71 %, and 173 of 191 on a plane through three of its states), and
  ``num_regions_gridlines``, exact for the union of the 2R grid lines (exact 1-D counting on every line), a
  tighter lower bound (186 of 191 there). Both converge to the exact count as R grows. ``method="grid"`` draws
  the grid instead of the polygons.

The reference builds its plane in unnormalised space but feeds raw states to the net (B.3 "Surprise"); here the
anchors are taken as network inputs - normalise them first if the policy normalises observations.

2-D state spaces (``visualize_2d.py``, e.g. the 1-D car :mod:`rlland.envs.car`): the regions of the state plane
itself (exact polygons over a box of raw states, the normaliser folded into the first layer; or the grid), with the
trajectory drawn on top. Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch), so they work headless.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlland.regions.layers import validate_layers, validate_point
from rlland.regions.patterns import activation_pattern, pack_patterns, unique_rows
from rlland.regions.polygons import PlaneRegions, polygon_regions
from rlland.validation import require_choice, static_int
from rlland.regions.counting import segment_breakpoints

__all__ = [
    "FRAMES",
    "PlaneFrame",
    "PlanePartition",
    "plane_frame",
    "plane_partition",
    "plane_polygons",
    "grid_region_ids",
    "plot_plane_regions",
    "plot_state_plane_trajectory",
    "state_plane_box",
    "state_plane_polygons",
    "save_figure",
]

FRAMES = ("study", "rlland")  # orientation of the square (module docstring); "study" is the reference's


class PlaneFrame(NamedTuple):
    """``x(u, v) = origin + u e1 + v e2``; ``anchors_uv`` are the three states' (u, v); ``radius`` = r."""

    origin: jax.Array
    e1: jax.Array
    e2: jax.Array
    anchors_uv: jax.Array
    radius: jax.Array


class PlanePartition(NamedTuple):
    """Grid partition of the square ``[-1, 1]^2`` of a :class:`PlaneFrame`.

    ``region_ids[i, j]`` is the region at ``(u[j], v[i])`` (row = v, column = u, ready for ``imshow`` with
    ``origin="lower"``). ``num_regions``: distinct patterns on the grid (lower bound).
    ``num_regions_gridlines``: distinct regions met by the 2R grid lines, exact for them (-1 if skipped);
    ``gridline_counts``: pieces on each horizontal line (first R, by v) then vertical line (by u);
    ``overflow``: some grid line exceeded ``max_pieces`` (then the grid-line numbers are lower bounds).
    """

    region_ids: jax.Array
    num_regions: jax.Array
    num_regions_gridlines: jax.Array
    gridline_counts: jax.Array
    overflow: jax.Array
    u: jax.Array
    v: jax.Array
    frame: PlaneFrame


def plane_frame(anchors, margin=1.25, frame: str = "study") -> PlaneFrame:
    """Square frame around the circumcircle of three points ``anchors`` ``(3, d)`` (reference B.3), oriented as
    ``frame`` (:data:`FRAMES`, module docstring)."""
    anchors = jnp.asarray(anchors)
    if anchors.ndim != 2 or anchors.shape[0] != 3 or anchors.shape[1] < 2:
        raise ValueError(f"anchors must have shape (3, d) with d >= 2, got {anchors.shape}")
    require_choice("frame", frame, FRAMES)
    return _plane_frame(anchors, jnp.asarray(margin, jnp.float32), frame)


@functools.partial(jax.jit, static_argnames=("frame",))
def _plane_frame(anchors, margin, frame: str = "study") -> PlaneFrame:
    anchors = anchors.astype(jnp.result_type(jnp.float32, anchors))
    a, b, c = anchors
    p, q = b - a, c - a
    pp, pq, qq = p @ p, p @ q, q @ q
    det = pp * qq - pq * pq
    # (O - a) = alpha p + beta q with (O - a).p = |p|^2 / 2 and (O - a).q = |q|^2 / 2.
    alpha = 0.5 * qq * (pp - pq) / det
    beta = 0.5 * pp * (qq - pq) / det
    origin = a + alpha * p + beta * q
    radius = jnp.linalg.norm(origin - a)
    half = margin * radius
    if frame == "study":  # get_sample_plane: e1 = 1.25 (a - O); e2 along the part of a - b orthogonal to e1
        e1 = margin * (a - origin)
        w = (a - b) - ((a - b) @ e1) / (e1 @ e1) * e1
        w_c = (a - c) - ((a - c) @ e1) / (e1 @ e1) * e1  # b opposite a on the circle: a - b is along e1
        w = jnp.where(jnp.linalg.norm(w) > 1e-6 * jnp.linalg.norm(a - b), w, w_c)
    else:  # rlland's earlier frame: e1 along b - a; e2 along the part of c - a orthogonal to it
        e1 = half * p / jnp.linalg.norm(p)
        w = q - (q @ p) / pp * p
    e2 = half * w / jnp.linalg.norm(w)
    rel = anchors - origin
    uv = jnp.stack([rel @ e1 / (e1 @ e1), rel @ e2 / (e2 @ e2)], axis=-1)
    return PlaneFrame(origin, e1, e2, uv, radius)


@jax.jit
def grid_region_ids(layers, points) -> tuple[jax.Array, jax.Array]:
    """Region ids of a batch of input points ``(..., d)``: ``(num_distinct_patterns, ids (...))``."""
    flat = points.reshape(-1, points.shape[-1])
    pats = jax.vmap(lambda x: activation_pattern(layers, x))(flat)
    num, ids = unique_rows(pack_patterns(pats))
    return num, ids.reshape(points.shape[:-1])


@functools.partial(jax.jit, static_argnames=("resolution", "gridlines", "max_pieces", "frame"))
def _plane_partition(layers, anchors, margin, resolution: int, gridlines: bool, max_pieces: int, frame: str):
    frame = _plane_frame(anchors, margin, frame)
    g = jnp.linspace(-1.0, 1.0, resolution, dtype=frame.origin.dtype)
    pts = frame.origin + g[None, :, None] * frame.e1 + g[:, None, None] * frame.e2  # [v, u, d]
    num, ids = grid_region_ids(layers, pts)
    if gridlines:
        one = jnp.ones_like(g)
        starts = jnp.concatenate([jnp.stack([-one, g], -1), jnp.stack([g, -one], -1)])  # (2R, 2) in (u, v)
        ends = jnp.concatenate([jnp.stack([one, g], -1), jnp.stack([g, one], -1)])
        to_x = lambda uv: frame.origin + uv[..., :1] * frame.e1 + uv[..., 1:] * frame.e2  # noqa: E731
        res = jax.vmap(lambda s, e: segment_breakpoints(layers, s, e, max_pieces=max_pieces))(to_x(starts), to_x(ends))
        n = res.patterns.shape[-1]
        num_lines, _ = unique_rows(pack_patterns(res.patterns).reshape(-1, -(-n // 32)), res.piece_valid.reshape(-1))
        counts, overflow = res.count, jnp.any(res.overflow)
    else:
        num_lines = jnp.asarray(-1, jnp.int32)
        counts = jnp.zeros((0,), jnp.int32)
        overflow = jnp.zeros((), bool)
    return PlanePartition(ids, num, num_lines, counts, overflow, g, g, frame)


def plane_partition(
    layers, anchors, *, resolution: int = 200, margin=1.25, gridlines: bool = True, max_pieces: int = 256,
    frame: str = "study",
) -> PlanePartition:
    """Partition the plane through three states into activation regions on an ``R x R`` grid.

    Args:
      layers: hidden ``(W, b)`` layers.
      anchors: ``(3, d)`` three (network-input) states spanning the plane; frame as in the module docstring.
      resolution: R, grid points per side (static).
      margin: square half-side over the circumradius (reference: 1.25).
      gridlines: also count exactly along the 2R grid lines (``num_regions_gridlines``).
      max_pieces: 1-D buffer per grid line.
      frame: orientation of the square, :data:`FRAMES` (default the reference's).
    Returns:
      :class:`PlanePartition`; ``num_regions`` is a lower bound on the regions meeting the square that
      converges as R grows (the exact count: :func:`plane_polygons`).
    """
    layers = validate_layers(layers)
    anchors = jnp.asarray(anchors)
    in_dim = layers[0][0].shape[0]
    if anchors.shape != (3, in_dim):
        raise ValueError(
            f"anchors must have shape (3, {in_dim}) (three states of the first layer's in-dim), got {anchors.shape}"
        )
    resolution = static_int("resolution", resolution, minimum=2)
    require_choice("frame", frame, FRAMES)
    return _plane_partition(
        layers, anchors, jnp.asarray(margin, jnp.float32), resolution, bool(gridlines), int(max_pieces), frame
    )


def plane_polygons(layers, frame: PlaneFrame) -> PlaneRegions:
    """Exact regions meeting the square ``[-1, 1]^2`` of ``frame`` as convex polygons in (u, v)
    (:func:`rlland.regions.polygon_regions`); ``frame`` from :func:`plane_frame` or a partition's ``.frame``."""
    return polygon_regions(layers, frame.origin, frame.e1, frame.e2)


def _distinct_colours(num: int, seed: int) -> np.ndarray:
    """``num`` random colours with distinct hues (a shuffled even hue grid, random saturation/value)."""
    from matplotlib.colors import hsv_to_rgb

    rng = np.random.default_rng(seed)
    num = max(int(num), 1)
    hue = (rng.permutation(num) / num + rng.random()) % 1.0
    hsv = np.stack([hue, rng.uniform(0.35, 0.85, num), rng.uniform(0.65, 0.97, num)], -1)
    return hsv_to_rgb(hsv)


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _draw_polygons(ax, regions: PlaneRegions, seed: int) -> None:
    """Fill every polygon of ``regions`` with its region's colour (distinct hues), thin white edges."""
    from matplotlib.collections import PolyCollection

    colours = _distinct_colours(regions.num_regions, seed)
    ax.add_collection(PolyCollection(regions.polygons, facecolors=colours[regions.region_ids], edgecolors="white",
                                     linewidths=0.2))
    (u0, u1), (v0, v1) = regions.box
    ax.set_xlim(u0, u1)
    ax.set_ylim(v0, v1)


def plot_plane_regions(
    layers,
    anchors,
    *,
    method: str = "exact",
    resolution: int = 200,
    margin=1.25,
    frame: str = "study",
    seed: int = 0,
    partition: PlanePartition | None = None,
    polygons: PlaneRegions | None = None,
    ax=None,
    title: str | None = None,
    figsize=(5.0, 5.0),
):
    """Figure of the activation regions on the plane through three states (reference B.3).

    ``method="exact"`` (default) draws every region meeting the square as its exact polygon
    (:func:`plane_polygons`; pass ``polygons`` to reuse them), so the picture shows all regions; ``"grid"`` draws
    the ``resolution x resolution`` grid of :func:`plane_partition` (a lower bound, module docstring). Each region
    gets a random colour (distinct hues, ``seed``); the three anchors are drawn in black. Axes are the plane
    coordinates (u, v) in ``[-1, 1]^2`` (the reference draws (v, -u): cosmetic). ``anchors`` and ``frame`` define
    the plane unless a precomputed ``partition`` (whose frame is used) is passed; ``ax`` draws into existing axes.
    The default title states what is drawn and the number of regions. Returns the matplotlib ``Figure``.
    """
    require_choice("method", method, ("exact", "grid"))
    if method == "exact":
        if partition is not None:
            plane = partition.frame
        elif anchors is not None:
            plane = plane_frame(anchors, margin, frame)
        else:
            plane = None
        if polygons is None:
            if plane is None:
                raise ValueError("plot_plane_regions needs anchors, a partition or polygons")
            polygons = plane_polygons(layers, plane)
        fig, ax = _new_axes(ax, figsize)
        _draw_polygons(ax, polygons, seed)
        default_title = f"{polygons.num_regions} regions (exact polygons)"
        uv = None if plane is None else np.asarray(plane.anchors_uv)
    else:
        if partition is None:
            partition = plane_partition(layers, anchors, resolution=resolution, margin=margin, gridlines=False,
                                        frame=frame)
        fig, ax = _new_axes(ax, figsize)
        ids = np.asarray(partition.region_ids)
        num = int(partition.num_regions)
        ax.imshow(_distinct_colours(num, seed)[ids], origin="lower", extent=(-1, 1, -1, 1), interpolation="nearest")
        default_title = f">= {num} regions ({ids.shape[0]}x{ids.shape[1]} grid, a lower bound)"
        uv = np.asarray(partition.frame.anchors_uv)
    if uv is not None:
        ax.scatter(uv[:, 0], uv[:, 1], c="black", s=25, zorder=3)
    ax.set_aspect("equal")
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    ax.set_title(default_title if title is None else title)
    return fig


def state_plane_box(trajectory, bounds=None) -> tuple:
    """``((x0, x1), (y0, y1))``: ``bounds`` if given, else the trajectory's ``(T, 2)`` bounding box padded by 10 %
    (at least 1e-3)."""
    if bounds is not None:
        (x0, x1), (y0, y1) = bounds
        return (float(x0), float(x1)), (float(y0), float(y1))
    traj = np.asarray(trajectory, np.float64)
    lo, hi = traj.min(0), traj.max(0)
    pad = np.maximum(0.1 * (hi - lo), 1e-3)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def state_plane_polygons(layers, bounds, *, mean=None, std=None) -> PlaneRegions:
    """Exact regions of a 2-D state space over the box ``bounds`` of RAW states, for ``layers`` that see
    ``(s - mean) / std`` (the normaliser is folded into the first layer; identity by default)."""
    layers = validate_layers(layers)
    if layers[0][0].shape[0] != 2:
        raise ValueError(f"state-plane regions need a 2-D state space, the first layer's in-dim is "
                         f"{layers[0][0].shape[0]}")
    if mean is not None or std is not None:  # fold in float64 (rlland.normalization.fold_input_normalizer)
        layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        mean = np.zeros(2) if mean is None else np.asarray(mean, np.float64)
        std = np.ones(2) if std is None else np.asarray(std, np.float64)
        (w0, b0), rest = layers[0], layers[1:]
        layers = [(w0 / std[:, None], b0 - (mean / std) @ w0)] + rest
    return polygon_regions(layers, np.zeros(2), np.array([1.0, 0.0]), np.array([0.0, 1.0]), box=bounds)


def plot_state_plane_trajectory(
    layers,
    trajectory,
    *,
    bounds=None,
    method: str = "exact",
    resolution: int = 200,
    mean=None,
    std=None,
    seed: int = 0,
    polygons: PlaneRegions | None = None,
    ax=None,
    title: str | None = None,
    labels=("state[0]", "state[1]"),
    target=None,
    figsize=(6.0, 5.0),
):
    """Regions of a 2-D state space with a trajectory on top (reference B.3 ``visualize_2d.py``).

    Args:
      layers: hidden ``(W, b)`` layers with input dimension 2.
      trajectory: ``(T, 2)`` raw states.
      bounds: ``((x_min, x_max), (y_min, y_max))`` in raw state coordinates; default: the trajectory's
        bounding box padded by 10% (:func:`state_plane_box`).
      method: ``"exact"`` (default): every region in the box as its exact polygon (:func:`state_plane_polygons`;
        pass ``polygons`` to reuse them); ``"grid"``: the pattern at every point of a ``resolution`` grid.
      mean, std: observation normaliser; the network sees ``(s - mean) / std``.
      labels: axis labels; target: a raw state drawn as a red star (the car's goal (100, 0)), or None.
    The title reports the regions drawn (exact count, or the grid's lower bound) and the exact number of
    transitions along the trajectory (:func:`rlland.regions.trajectory_metrics`). Returns the ``Figure``.
    """
    from rlland.regions.trajectory import trajectory_metrics

    require_choice("method", method, ("exact", "grid"))
    layers = validate_layers(layers)
    traj = np.asarray(trajectory, dtype=np.float64)
    in_dim = layers[0][0].shape[0]
    if in_dim != 2 or traj.ndim != 2 or traj.shape[1] != 2:
        raise ValueError(
            f"plot_state_plane_trajectory needs a 2-D state space: first layer in-dim {in_dim}, "
            f"trajectory shape {traj.shape} (expected (T, 2))"
        )
    for name, x in (("mean", mean), ("std", std)):
        if x is not None:
            validate_point(jnp.asarray(x), layers, name)
    (x0, x1), (y0, y1) = state_plane_box(traj, bounds)
    fig, ax = _new_axes(ax, figsize)
    if method == "exact":
        if polygons is None:
            polygons = state_plane_polygons(layers, ((x0, x1), (y0, y1)), mean=mean, std=std)
        _draw_polygons(ax, polygons, seed)
        ax.set_aspect("auto")
        shown = f"{polygons.num_regions} regions in the box (exact polygons)"
    else:
        xs = np.linspace(x0, x1, int(resolution))
        ys = np.linspace(y0, y1, int(resolution))
        pts = np.stack(np.meshgrid(xs, ys), -1).astype(np.float32)  # [y, x, 2]
        if mean is not None:
            pts = pts - np.asarray(mean, np.float32)
        if std is not None:
            pts = pts / np.asarray(std, np.float32)
        num, ids = grid_region_ids(layers, jnp.asarray(pts))
        ax.imshow(_distinct_colours(int(num), seed)[np.asarray(ids)], origin="lower", extent=(x0, x1, y0, y1),
                  aspect="auto", interpolation="nearest")
        shown = f">= {int(num)} regions on a {resolution}x{resolution} grid"
    ax.plot(traj[:, 0], traj[:, 1], "-", color="black", lw=1.0)
    ax.scatter(traj[:1, 0], traj[:1, 1], c="tab:blue", s=30, zorder=3, label="start")
    ax.scatter(traj[-1:, 0], traj[-1:, 1], c="black", s=30, zorder=3, label="end")
    if target is not None:
        ax.scatter([target[0]], [target[1]], c="red", marker="*", s=90, zorder=3, label="target")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(loc="upper right", fontsize="small")
    if title is None:
        title = shown
        if traj.shape[0] >= 2:
            m = trajectory_metrics(layers, traj.astype(np.float32), mean=mean, std=std, piece_patterns=False)
            title += f", {int(m.num_transitions)} transitions"
            if bool(m.overflow):
                title += " (lower bound: overflow)"
    ax.set_title(title)
    return fig


def save_figure(fig, path, dpi: int = 150) -> None:
    """`rlland.plotting.save` at this module's resolution and a tight bounding box."""
    from rlland import plotting

    plotting.save(fig, path, dpi=dpi, bbox_inches="tight")
