"""numpy side of bench/prior_fit.sh: same matrix, numpy.cov + numpy.linalg.cholesky,
then compares with the ptune fit written by prior_fit.c."""
import json, struct, sys, time
import numpy as np

n, d, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
X = np.empty((n, d), dtype=np.float32)
M = np.uint64
for r0 in range(0, n, 4096):
    r1 = min(n, r0 + 4096)
    with np.errstate(over="ignore"):
        z = np.arange(r0 * d, r1 * d, dtype=M) + M(0x9E3779B97F4A7C15)
        z = (z ^ (z >> M(30))) * M(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> M(27))) * M(0x94D049BB133111EB)
        z = z ^ (z >> M(31))
    X[r0:r1] = ((z >> M(40)).astype(np.float64) / 16777216.0 - 0.5).reshape(r1 - r0, d)
t1 = time.perf_counter()
C = np.cov(X, rowvar=False)
mu = X.mean(axis=0, dtype=np.float64)
L = np.linalg.cholesky(C)
t2 = time.perf_counter()
print(f"numpy {np.__version__}: generate {t1 - t0:.2f} s, cov + mean + cholesky {t2 - t1:.2f} s; trace {np.trace(C):.9g}")
with open(path, "rb") as f:
    hl = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(hl))
    base = 8 + hl
    def get(name):
        e = h[name]
        f.seek(base + e["data_offsets"][0])
        return np.frombuffer(f.read(e["data_offsets"][1] - e["data_offsets"][0]), dtype=np.float64).reshape(e["shape"])
    pc, pm, pl = get("cov"), get("mean"), get("chol")
print(f"ptune vs numpy: max |cov diff| {np.abs(pc - C).max():.3g} (max |cov| {np.abs(C).max():.3g}), "
      f"max |mean diff| {np.abs(pm - mu).max():.3g}, max |chol diff| {np.abs(pl - L).max():.3g}")
