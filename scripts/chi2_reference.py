#!/usr/bin/env python3
"""chi2_reference.py: reference chi-square quantiles for tests/test_priors.c
(TEST chi2_quantile_reference), computed independently of ptune.

    /usr/bin/python3 scripts/chi2_reference.py

prints C initializers {k, p, x} with x = scipy.stats.chi2.ppf(p, k), each
cross-checked against mpmath (50 digits: x solves P(k/2, x/2) = p for the
regularized lower incomplete gamma P); the script stops if they disagree by
more than 1e-12 relative. The table in the test was pasted from this output."""
import sys

import mpmath
from scipy.stats import chi2

mpmath.mp.dps = 50
KS = [1, 2, 3, 8, 64, 128, 512, 2048, 4096, 8192]
PS = [1e-6, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1 - 1e-6]


def mp_ppf(p, k):
    a = mpmath.mpf(k) / 2
    f = lambda x: mpmath.gammainc(a, 0, x / 2, regularized=True) - p
    return mpmath.findroot(f, mpmath.mpf(float(chi2.ppf(float(p), k))), tol=mpmath.mpf(10) ** -40)


for k in KS:
    for p in PS:
        x = chi2.ppf(p, k)
        ref = mp_ppf(mpmath.mpf(p), k)
        rel = abs(mpmath.mpf(x) - ref) / ref
        if rel > 1e-12:
            sys.exit(f"scipy and mpmath disagree at k={k} p={p}: {x!r} vs {ref} (rel {float(rel):.2e})")
        print(f"    {{{k}, {p!r}, {mpmath.nstr(ref, 17)}}},")
