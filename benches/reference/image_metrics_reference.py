"""numpy reference values for zipp-eval's image metrics (zipp-eval/src/image_metrics.rs):
CLIPScore (both conventions), personalization CLIPScore, CMMD and IPF raking, computed
independently with numpy on fixed random inputs that go into the fixture with the outputs.
Run in any venv with numpy (e.g. the throwaway one of llama_cpp_reference.py):

    /tmp/llref/v/bin/python benches/reference/image_metrics_reference.py \
        > zipp-eval/tests/fixtures/image_metrics_numpy.json
"""

import json

import numpy as np

rng = np.random.default_rng(20261130)


def clip_score(img, txt):
    c = float(img @ txt / (np.linalg.norm(img) * np.linalg.norm(txt)))
    return 2.5 * max(c, 0.0), 100.0 * max(c, 0.0), c


def cmmd(x, y, sigma=10.0, scale=1000.0):
    # google-research/cmmd's formulation: normalised rows, RBF with gamma = 1 / (2 sigma^2),
    # biased MMD (diagonals included), computed through squared norms and dot products.
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    g = 1.0 / (2 * sigma**2)
    xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
    dx, dy = np.diag(xx), np.diag(yy)
    kxx = np.exp(-g * (dx[:, None] + dx[None, :] - 2 * xx)).mean()
    kyy = np.exp(-g * (dy[:, None] + dy[None, :] - 2 * yy)).mean()
    kxy = np.exp(-g * (dx[:, None] + dy[None, :] - 2 * xy)).mean()
    return float(scale * (kxx + kyy - 2 * kxy))


def rake(counts, targets, tol=1e-5, max_sweeps=500):
    w = counts.astype(np.float64).copy()
    total = w.sum()
    axes = range(w.ndim)

    def err(w):
        worst = 0.0
        for d in axes:
            other = tuple(a for a in axes if a != d)
            m = w.sum(axis=other)
            t = np.asarray(targets[d]) * total
            pos = t > 0
            worst = max(worst, float(np.abs(m[pos] / t[pos] - 1).max()))
        return worst

    sweeps = 0
    while err(w) >= tol and sweeps < max_sweeps:
        for d in axes:
            other = tuple(a for a in axes if a != d)
            m = w.sum(axis=other)
            f = np.where(m > 0, np.asarray(targets[d]) * total / np.where(m > 0, m, 1), 0.0)
            shape = [1] * w.ndim
            shape[d] = -1
            w = w * f.reshape(shape)
        sweeps += 1
    return w, sweeps, err(w)


def main():
    dim = 16
    img, txt = rng.normal(size=dim), rng.normal(size=dim)
    txt_close = img + 0.3 * rng.normal(size=dim)
    refs = rng.normal(size=(4, dim))
    x = rng.normal(size=(12, dim))
    y_near = x[:9] + 0.05 * rng.normal(size=(9, dim))
    y_far = rng.normal(loc=0.8, size=(10, dim))
    counts = rng.integers(0, 30, size=(3, 2, 4)).astype(np.float64)
    counts[1, 0, 2] = 0.0  # a zero cell stays zero
    targets = [[0.2, 0.5, 0.3], [0.45, 0.55], [0.1, 0.2, 0.3, 0.4]]
    values = rng.uniform(0.2, 0.9, size=counts.shape)
    w, sweeps, err = rake(counts, targets)
    raw = float((values * counts).sum() / counts.sum())
    ipf = float((values * w).sum() / w.sum())
    out = {
        "inputs": {
            "img": img.tolist(), "txt": txt.tolist(), "txt_close": txt_close.tolist(), "refs": refs.tolist(),
            "x": x.tolist(), "y_near": y_near.tolist(), "y_far": y_far.tolist(),
            "counts": counts.ravel().tolist(), "dims": list(counts.shape), "targets": targets,
            "values": values.ravel().tolist(),
        },
        "clip_score": [clip_score(img, txt), clip_score(img, txt_close)],
        "personalization": float(np.mean([img @ r / (np.linalg.norm(img) * np.linalg.norm(r)) for r in refs])),
        "cmmd": {"xx": cmmd(x, x), "x_near": cmmd(x, y_near), "x_far": cmmd(x, y_far)},
        "rake": {"weights": w.ravel().tolist(), "sweeps": sweeps, "max_relative_error": err,
                 "raw": raw, "ipf": ipf, "delta_pct": 100 * (ipf - raw) / raw},
    }
    json.dump(out, __import__("sys").stdout)
    print()


if __name__ == "__main__":
    main()
