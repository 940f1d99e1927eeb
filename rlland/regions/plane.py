"""2-D pictures of linear regions: the plane through three states, and 2-D state spaces.

Plane through three states (Cohan et al. 2022, ``visualize_hd.py``; reference B.3): with anchors a, b, c,
circumcentre O and circumradius r, the plane is ``x(u, v) = O + u e1 + v e2`` for ``(u, v) in [-1, 1]^2``,
where ``e1 = margin * r * (b - a) / ||b - a||`` and ``e2 = margin * r * w / ||w||``, ``w`` being the part of
``c - a`` orthogonal to ``b - a``. The square is centred on the circumcircle and circumscribes it with a
``margin`` (1.25 in the reference) on every side. Collinear anchors have no circumcircle (NaN frame).

Partition: the activation pattern of all hidden neurons is evaluated at every point of an ``R x R`` grid
and patterns are mapped to region ids (distinct patterns, exact). Activation regions of a ReLU MLP are
convex polytopes, so one pattern is one connected region. QUIRK (deliberate difference): the reference
splits polygons exactly; here the count of distinct patterns on the grid, ``num_regions``, is a LOWER BOUND
on the number of regions meeting the square - a region whose intersection with the square contains no grid
point is missed - and it converges to the exact count as R grows (any region of positive area eventually
holds a grid point). ``num_regions_gridlines`` is exact for the union of the 2R grid lines (exact 1-D
counting on every line, then distinct patterns over all pieces): a tighter lower bound, also converging.
The reference builds its plane in unnormalised space but feeds raw states to the net (B.3 "Surprise");
here the anchors are taken as network inputs - normalise them first if the policy normalises observations.

2-D state spaces (``visualize_2d.py``): the same grid colouring directly in the state plane, with the
trajectory drawn on top. Figures are built with matplotlib's object API on the Agg canvas (no pyplot,
no global backend switch), so they work headless.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlland.regions.layers import validate_layers, validate_point
from rlland.regions.patterns import activation_pattern, pack_patterns, unique_rows
from rlland.validation import static_int
from rlland.regions.counting import segment_breakpoints

__all__ = [
    "PlaneFrame",
    "PlanePartition",
    "plane_frame",
    "plane_partition",
    "grid_region_ids",
    "plot_plane_regions",
    "plot_state_plane_trajectory",
    "save_figure",
]


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


def plane_frame(anchors, margin=1.25) -> PlaneFrame:
    """Square frame around the circumcircle of three points ``anchors`` ``(3, d)`` (reference B.3)."""
    anchors = jnp.asarray(anchors)
    if anchors.ndim != 2 or anchors.shape[0] != 3 or anchors.shape[1] < 2:
        raise ValueError(f"anchors must have shape (3, d) with d >= 2, got {anchors.shape}")
    return _plane_frame(anchors, jnp.asarray(margin, jnp.float32))


@jax.jit
def _plane_frame(anchors, margin) -> PlaneFrame:
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


@functools.partial(jax.jit, static_argnames=("resolution", "gridlines", "max_pieces"))
def _plane_partition(layers, anchors, margin, resolution: int, gridlines: bool, max_pieces: int):
    frame = _plane_frame(anchors, margin)
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
    layers, anchors, *, resolution: int = 200, margin=1.25, gridlines: bool = True, max_pieces: int = 256
) -> PlanePartition:
    """Partition the plane through three states into activation regions on an ``R x R`` grid.

    Args:
      layers: hidden ``(W, b)`` layers.
      anchors: ``(3, d)`` three (network-input) states spanning the plane; frame as in the module docstring.
      resolution: R, grid points per side (static).
      margin: square half-side over the circumradius (reference: 1.25).
      gridlines: also count exactly along the 2R grid lines (``num_regions_gridlines``).
      max_pieces: 1-D buffer per grid line.
    Returns:
      :class:`PlanePartition`; ``num_regions`` is a lower bound on the regions meeting the square that
      converges as R grows.
    """
    layers = validate_layers(layers)
    anchors = jnp.asarray(anchors)
    in_dim = layers[0][0].shape[0]
    if anchors.shape != (3, in_dim):
        raise ValueError(
            f"anchors must have shape (3, {in_dim}) (three states of the first layer's in-dim), got {anchors.shape}"
        )
    resolution = static_int("resolution", resolution, minimum=2)
    return _plane_partition(
        layers, anchors, jnp.asarray(margin, jnp.float32), resolution, bool(gridlines), int(max_pieces)
    )


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


def plot_plane_regions(
    layers,
    anchors,
    *,
    resolution: int = 200,
    margin=1.25,
    seed: int = 0,
    partition: PlanePartition | None = None,
    ax=None,
    title: str | None = None,
    figsize=(5.0, 5.0),
):
    """Figure of the activation regions on the plane through three states (reference B.3).

    Each region gets a random colour (distinct hues, ``seed``); the three anchors are drawn in black.
    Axes are the plane coordinates (u, v) in ``[-1, 1]^2`` (the reference draws (v, -u): cosmetic).
    Pass a precomputed ``partition`` to skip the computation; ``ax`` to draw into existing axes.
    Returns the matplotlib ``Figure``.
    """
    if partition is None:
        partition = plane_partition(layers, anchors, resolution=resolution, margin=margin, gridlines=False)
    ids = np.asarray(partition.region_ids)
    num = int(partition.num_regions)
    colours = _distinct_colours(num, seed)
    fig, ax = _new_axes(ax, figsize)
    ax.imshow(colours[ids], origin="lower", extent=(-1, 1, -1, 1), interpolation="nearest")
    uv = np.asarray(partition.frame.anchors_uv)
    ax.scatter(uv[:, 0], uv[:, 1], c="black", s=25, zorder=3)
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    if title is None:
        title = f">= {num} regions ({ids.shape[0]}x{ids.shape[1]} grid)"
    ax.set_title(title)
    return fig


def plot_state_plane_trajectory(
    layers,
    trajectory,
    *,
    bounds=None,
    resolution: int = 200,
    mean=None,
    std=None,
    seed: int = 0,
    ax=None,
    title: str | None = None,
    figsize=(6.0, 5.0),
):
    """Regions of a 2-D state space with a trajectory on top (reference B.3 ``visualize_2d.py``).

    Args:
      layers: hidden ``(W, b)`` layers with input dimension 2.
      trajectory: ``(T, 2)`` raw states.
      bounds: ``((x_min, x_max), (y_min, y_max))`` in raw state coordinates; default: the trajectory's
        bounding box padded by 10% (at least 1e-3).
      mean, std: observation normaliser; the grid is coloured by the pattern of ``(s - mean) / std``.
    The title reports the distinct regions on the grid (lower bound) and the exact number of transitions
    along the trajectory (:func:`rlland.regions.trajectory_metrics`). Returns the ``Figure``.
    """
    from rlland.regions.trajectory import trajectory_metrics

    layers = validate_layers(layers)
    traj = np.asarray(trajectory, dtype=np.float64)
    in_dim = layers[0][0].shape[0]
    if in_dim != 2 or traj.ndim != 2 or traj.shape[1] != 2:
        raise ValueError(
            f"plot_state_plane_trajectory needs a 2-D state space: first layer in-dim {in_dim}, "
            f"trajectory shape {traj.shape} (expected (T, 2))"
        )
    if bounds is None:
        lo, hi = traj.min(0), traj.max(0)
        pad = np.maximum(0.1 * (hi - lo), 1e-3)
        bounds = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
    (x0, x1), (y0, y1) = bounds
    xs = np.linspace(x0, x1, int(resolution))
    ys = np.linspace(y0, y1, int(resolution))
    pts = np.stack(np.meshgrid(xs, ys), -1).astype(np.float32)  # [y, x, 2]
    if mean is not None:
        validate_point(jnp.asarray(mean), layers, "mean")
        pts = pts - np.asarray(mean, np.float32)
    if std is not None:
        validate_point(jnp.asarray(std), layers, "std")
        pts = pts / np.asarray(std, np.float32)
    num, ids = grid_region_ids(layers, jnp.asarray(pts))
    ids = np.asarray(ids)
    colours = _distinct_colours(int(num), seed)
    fig, ax = _new_axes(ax, figsize)
    ax.imshow(colours[ids], origin="lower", extent=(x0, x1, y0, y1), aspect="auto", interpolation="nearest")
    ax.plot(traj[:, 0], traj[:, 1], "-", color="black", lw=1.0)
    ax.scatter(traj[:1, 0], traj[:1, 1], c="tab:blue", s=30, zorder=3, label="start")
    ax.scatter(traj[-1:, 0], traj[-1:, 1], c="black", s=30, zorder=3, label="end")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("state[0]")
    ax.set_ylabel("state[1]")
    ax.legend(loc="upper right", fontsize="small")
    if title is None:
        if traj.shape[0] >= 2:
            m = trajectory_metrics(layers, traj.astype(np.float32), mean=mean, std=std, piece_patterns=False)
            title = f">= {int(num)} regions on grid, {int(m.num_transitions)} transitions"
            if bool(m.overflow):
                title += " (lower bound: overflow)"
        else:
            title = f">= {int(num)} regions on grid"
    ax.set_title(title)
    return fig


def save_figure(fig, path, dpi: int = 150) -> None:
    """`rlland.plotting.save` at this module's resolution and a tight bounding box."""
    from rlland import plotting

    plotting.save(fig, path, dpi=dpi, bbox_inches="tight")
