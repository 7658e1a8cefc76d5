"""Statistics for evaluation tables (SPEC §4 and §9), computed by zipp-core.

>>> from zipp_persona import stats
>>> stats.binomial_test(3, 10)          # exact two-sided, as scipy.stats.binomtest
0.34375
>>> lo, hi = stats.wilson_interval(61, 100, 0.95)

Each function follows the scipy definition named in its docstring. Bad input — an empty
sequence where a value is needed, NaN or ±inf, ``k > n``, a negative count, a probability or
confidence out of range, sequences of different lengths — raises
:class:`zipp_persona.InvalidInputError` (a ``ValueError``) naming the function and the problem.
"""

from ._zipp import average_ranks, binomial_test, cohens_d, mean, spearman, wilson_interval

__all__ = ["average_ranks", "binomial_test", "cohens_d", "mean", "spearman", "wilson_interval"]
