"""Return landscapes (Rahn et al., NeurIPS 2023): post-update return distributions and their statistics.

Reference: ``landscapes-and-subspaces.md`` part A. For now this package holds the PURD statistics
(:mod:`rlland.landscape.stats`); PURD sampling, interpolation and CVaR rejection will join it.
"""
from rlland.landscape.stats import cvar, ltp, ltp_relative, mean, mode, quantiles, std, summarize

__all__ = ["mean", "std", "quantiles", "mode", "ltp", "ltp_relative", "cvar", "summarize"]
