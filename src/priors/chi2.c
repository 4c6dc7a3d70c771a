/* chi2.c: chi-square distribution function and its inverse (see
 * include/ptune/prior.h), for the radius margin of the exclusion prior: under
 * N(mu, Sigma) in d dimensions the squared Mahalanobis radius is chi2_d.
 *
 * P(a, x) (regularized lower incomplete gamma) by its power series for
 * x < a + 1 and Q = 1 - P by Lentz's continued fraction otherwise, each to a
 * relative 1e-16 (Numerical Recipes 6.2; both converge in O(sqrt(a)) terms).
 * The quantile solves P(k/2, x/2) = p by Newton steps on the density kept
 * inside a bisection bracket; for p > 1/2 it solves Q = 1 - p instead (exact in
 * double for p >= 1/2), so the upper tail keeps its relative accuracy. */
#include "ptune/core.h"
#include "ptune/prior.h"

#include <math.h>

#define GAMMA_EPS 1e-16
#define GAMMA_ITERS 100000

/* P(a, x) and Q(a, x), a > 0, x >= 0. */
static void gamma_pq(double a, double x, double *P, double *Q) {
    if (x <= 0) {
        *P = 0, *Q = 1;
        return;
    }
    double pre = exp(-x + a * log(x) - lgamma(a));
    if (x < a + 1) {
        double ap = a, del = 1 / a, sum = del;
        for (int i = 0; i < GAMMA_ITERS && fabs(del) > fabs(sum) * GAMMA_EPS; i++) {
            ap += 1;
            del *= x / ap;
            sum += del;
        }
        *P = sum * pre;
        *Q = 1 - *P;
        return;
    }
    const double tiny = 1e-300;
    double b = x + 1 - a, c = 1 / tiny, dd = 1 / b, h = dd;
    for (int i = 1; i < GAMMA_ITERS; i++) {
        double an = -i * (i - a);
        b += 2;
        dd = an * dd + b;
        if (fabs(dd) < tiny) dd = tiny;
        c = b + an / c;
        if (fabs(c) < tiny) c = tiny;
        dd = 1 / dd;
        double del = dd * c;
        h *= del;
        if (fabs(del - 1) < GAMMA_EPS) break;
    }
    *Q = pre * h;
    *P = 1 - *Q;
}

double pt_chi2_cdf(double x, double k) {
    double P, Q;
    gamma_pq(k / 2, x / 2, &P, &Q);
    return P;
}

/* chi2_k density at x > 0. */
static double chi2_pdf(double x, double k) {
    double a = k / 2;
    return 0.5 * exp((a - 1) * log(x / 2) - x / 2 - lgamma(a));
}

double pt_chi2_quantile(double p, double k) {
    if (!(p > 0 && p < 1) || !(k > 0)) return NAN;
    int upper = p > 0.5;
    double q = 1 - p; /* exact for p in [1/2, 1) */
    double lo = 0, hi = INFINITY, x = k;
    for (int it = 0; it < 1000; it++) {
        double P, Q;
        gamma_pq(k / 2, x / 2, &P, &Q);
        double r = upper ? q - Q : P - p; /* increasing in x, zero at the quantile */
        if (r == 0) return x;
        if (r < 0) lo = x;
        else hi = x;
        double f = chi2_pdf(x, k), nx = x - r / f;
        if (!(f > 0) || !isfinite(nx) || nx <= lo || nx >= hi) /* Newton left the bracket: bisect */
            nx = isinf(hi) ? 2 * x : 0.5 * (lo + hi);
        if (fabs(nx - x) <= 1e-15 * x || hi - lo <= 4e-16 * x) return nx;
        x = nx;
    }
    return x;
}
