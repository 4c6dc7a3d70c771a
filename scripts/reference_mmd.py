#!/usr/bin/env python3
"""reference_mmd.py: reference values of the kernel two-sample statistic for
tests/test_analysis.c (TEST mmd_vs_numpy_fixture), computed with numpy alone,
independently of ptune.

    /usr/bin/python3 scripts/reference_mmd.py [tests/fixtures/mmd_reference.safetensors]

For each case, two fixed samples X [m, d] and Y [n, d] (numpy default_rng,
seeded, stored as float32 since ptune's activations are float32) and, in
float64 from those float32 values:
  bandwidth  the median of the Euclidean distances over all pairs i < j of the
             pooled sample X u Y (np.median: mean of the two middle values when
             the pair count is even; case "same_even" has an even count);
  mmd2       the UNBIASED MMD^2 (Gretton et al. 2012, eq. 3) with the RBF
             kernel exp(-|x - y|^2 / (2 bandwidth^2)), diagonal terms left out;
  mmd2_fixed the same at the case's fixed bandwidth "<case>.sigma_fixed";
  mmd2_biased the biased (V-statistic) estimate, diagonals kept: stored so the
             test can show which of the two ptune computes.
Writes a safetensors file (header written here; no safetensors package):
tensors "<case>.x", "<case>.y" (F32) and "<case>.bandwidth", "<case>.mmd2",
"<case>.sigma_fixed", "<case>.mmd2_fixed", "<case>.mmd2_biased" (F64, shape
[1]); metadata "cases" (comma list)."""
import json
import struct
import sys

import numpy as np

def cases():
    r = np.random.default_rng(20211)
    yield "shift", 1.5, r.normal(0.0, 1.0, (40, 5)), r.normal(0.5, 1.0, (30, 5))
    r = np.random.default_rng(20212)
    yield "same_even", 1.0, r.normal(0.0, 1.0, (24, 3)), r.normal(0.0, 1.0, (20, 3))  # 44 points: 946 pairs (even)
    r = np.random.default_rng(20213)
    yield "wide", 30.0, 3.0 * r.normal(0.0, 1.0, (12, 64)), 3.0 * r.normal(0.0, 1.3, (15, 64))


def mmd2(X, Y, sigma, unbiased=True):
    """MMD^2 from the full kernel matrix of the pooled sample."""
    Z = np.concatenate([X, Y])
    D2 = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    K = np.exp(-D2 / (2.0 * sigma * sigma))
    m, n = len(X), len(Y)
    Kxx, Kyy, Kxy = K[:m, :m], K[m:, m:], K[:m, m:]
    if not unbiased:
        return Kxx.mean() + Kyy.mean() - 2.0 * Kxy.mean()
    return ((Kxx.sum() - np.trace(Kxx)) / (m * (m - 1)) + (Kyy.sum() - np.trace(Kyy)) / (n * (n - 1))
            - 2.0 * Kxy.sum() / (m * n))


def median_distance(X, Y):
    Z = np.concatenate([X, Y])
    D = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    i, j = np.triu_indices(len(Z), 1)
    return float(np.median(D[i, j]))


def save(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, a in tensors:
        b = a.tobytes()
        header[name] = {"dtype": {np.float32: "F32", np.float64: "F64"}[a.dtype.type], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/mmd_reference.safetensors"
    tensors, names = [], []
    for name, fixed, X, Y in cases():
        X, Y = X.astype(np.float32), Y.astype(np.float32)
        Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
        sigma = median_distance(Xd, Yd)
        vals = {"bandwidth": sigma, "mmd2": mmd2(Xd, Yd, sigma), "sigma_fixed": fixed, "mmd2_fixed": mmd2(Xd, Yd, fixed),
                "mmd2_biased": mmd2(Xd, Yd, sigma, unbiased=False)}
        tensors += [(name + ".x", X), (name + ".y", Y)]
        tensors += [(f"{name}.{k}", np.array([v], dtype=np.float64)) for k, v in vals.items()]
        names.append(name)
        print(f"{name}: m {len(X)} n {len(Y)} d {X.shape[1]} " + " ".join(f"{k} {v:.17g}" for k, v in vals.items()))
    save(out, tensors, {"cases": ",".join(names)})
    print("wrote", out)


if __name__ == "__main__":
    main()
