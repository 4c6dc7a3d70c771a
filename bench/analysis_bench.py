"""scikit-learn side of bench/tsne.sh and bench/pca.sh (same data, same run)."""
import subprocess, sys, time
import numpy as np

BIN = "build/bench/analysis_bench"


def run(args):
    out = subprocess.run([BIN] + [str(a) for a in args], check=True, capture_output=True, text=True).stdout
    return {l.split()[0]: float(l.split()[1]) for l in out.split("\n") if l.strip()}


def tsne(n, d, tmp):
    from sklearn.manifold import TSNE
    rng = np.random.default_rng(0)
    c = 20
    centres = rng.normal(0, 4, (c, d)).astype(np.float32)
    X = (centres[np.arange(n) % c] + rng.normal(0, 1, (n, d))).astype(np.float32)
    X.tofile(f"{tmp}/x.f32")
    ours = run(["tsne", f"{tmp}/x.f32", n, d, f"{tmp}/y_pt.f32"])
    t0 = time.time()
    ts = TSNE(n_components=2, perplexity=30.0, n_iter=1000, init="pca", learning_rate="auto",
              method="barnes_hut", angle=0.5, random_state=0, n_jobs=-1)
    Y = ts.fit_transform(X).astype(np.float32)
    t_sk = time.time() - t0
    Y.tofile(f"{tmp}/y_sk.f32")
    kl_pt = run(["kl", f"{tmp}/x.f32", n, d, f"{tmp}/y_pt.f32", 30])["kl_exactZ"]
    kl_sk = run(["kl", f"{tmp}/x.f32", n, d, f"{tmp}/y_sk.f32", 30])["kl_exactZ"]
    print(f"t-SNE {n} x {d}, perplexity 30, 1000 iterations, Barnes-Hut theta 0.5")
    print(f"  ptune   {ours['seconds']:8.2f} s   KL own {ours['kl_own']:.4f}   KL (exact Z, same P) {kl_pt:.4f}")
    print(f"  sklearn {t_sk:8.2f} s   KL own {ts.kl_divergence_:.4f}   KL (exact Z, same P) {kl_sk:.4f}")
    print(f"  speed-up {t_sk / ours['seconds']:.2f}x, KL difference {100 * (kl_pt - kl_sk) / kl_sk:+.2f}%")


def pca(n, d, tmp, k):
    from sklearn.decomposition import PCA
    rng = np.random.default_rng(0)
    r = 200
    U = rng.standard_normal((n, r), dtype=np.float32)
    s = (np.float32(10.0) * np.float32(0.97) ** np.arange(r, dtype=np.float32)).astype(np.float32)
    V = rng.standard_normal((r, d), dtype=np.float32) / np.float32(np.sqrt(d))
    X = (U * s) @ V
    X += rng.standard_normal((n, d), dtype=np.float32) * np.float32(0.3)
    X += np.float32(1.0)
    X.tofile(f"{tmp}/x.f32")
    ours = run(["pca", f"{tmp}/x.f32", n, d, k])
    t0 = time.time()
    p = PCA(n_components=k, svd_solver="randomized", random_state=0).fit(X)
    t_sk = time.time() - t0
    ev = float(p.explained_variance_ratio_.sum())
    print(f"PCA top {k} of {n} x {d} float32")
    print(f"  ptune   {ours['seconds']:8.2f} s   explained variance ratio {ours['explained_ratio']:.6f}")
    print(f"  sklearn {t_sk:8.2f} s   explained variance ratio {ev:.6f}")
    print(f"  speed-up {t_sk / ours['seconds']:.2f}x, explained variance difference "
          f"{100 * (ours['explained_ratio'] - ev) / ev:+.4f}%")


if __name__ == "__main__":
    mode, n, d, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if mode == "tsne":
        tsne(n, d, tmp)
    else:
        pca(n, d, tmp, int(sys.argv[5]))
