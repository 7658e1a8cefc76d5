"""PyTorch Geometric reference for zipp's GATv2 graph encoder (zipp-graph).

Benchmarks and fixture regeneration only; never run in CI. The Rust tests read
the committed fixture `zipp-graph/tests/fixtures/gatv2_pyg.safetensors`.

Throwaway venv (CPU use only; the PyPI torch wheel pulls in the CUDA libraries,
about 5.4 GB in all):

    python3 -m venv /tmp/pygref/v
    /tmp/pygref/v/bin/pip install --upgrade pip
    /tmp/pygref/v/bin/pip install torch==2.15.0 torch_geometric==2.8.1 numpy safetensors

(versions used: torch 2.15.0, torch_geometric 2.8.1, numpy 2.4.6,
safetensors 0.8.0; no pyg-lib / torch-scatter / torch-sparse, so PyG uses its
pure-torch scatter paths.)

Subcommands:

    # parity fixture for one GATv2Conv layer (float64, forward + backward)
    python benches/reference/gatv2_pyg.py fixture \
        --out zipp-graph/tests/fixtures/gatv2_pyg.safetensors

    # synthetic graph directory in zipp's "PyG layout" (for testing `epoch`)
    python benches/reference/gatv2_pyg.py synth --out /tmp/zipp_graph_synth

    # full-batch training of the two-layer bipartite encoder, one JSON line out
    python benches/reference/gatv2_pyg.py epoch --graph /tmp/zipp_graph_synth \
        --epochs 100 --threads 2

    # evaluation only of given weights (zipp's `--checkpoint` or this script's
    # `--save-weights`), with zipp's exact held-out protocol
    python benches/reference/gatv2_pyg.py epoch --graph DIR --epochs 0 \
        --load-weights zipp.safetensors --eval-protocol zipp --seed 0

`benches/reference/pyg_round_trip.sh` drives `epoch` both ways (PyG weights into
zipp, zipp weights into PyG) and checks that both report the same metrics.

GATv2Conv semantics this script relies on (and asserts in `fixture`), for a
bipartite layer with `add_self_loops=False, share_weights=False`:

    x_l = lin_l(x_src), x_r = lin_r(x_dst)             # both Linear layers have a bias
    e_ij[h] = sum_c att[h,c] * LeakyReLU_0.2(x_r[i,h,c] + x_l[j,h,c])   # edge j -> i
    alpha_ij[h] = softmax of e over the in-edges of i (per head)
    out[i,h,:] = sum_j alpha_ij[h] * x_l[j,h,:]
    out = concat over heads (or mean over heads when concat=False) + bias

A destination with no in-edges gets exactly `bias` (lin_l.bias is not added:
it reaches the output only through the alpha-weighted sum of messages), and
lin_r.bias only shifts the attention logits.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric
from safetensors.torch import load_file, save_file
from torch_geometric.nn import GATv2Conv

NEGATIVE_SLOPE = 0.2


# ---------------------------------------------------------------------------
# fixture
# ---------------------------------------------------------------------------

# Case definitions. Edges are (src -> dst) and deliberately NOT sorted by dst.
#
# `concat.`: dst 3 has no in-edges (its output must be the bias only), dst 1
# has exactly one in-edge (1 -> 1), and (2 -> 0) appears twice (a multi-edge).
CONCAT_CASE = dict(
    n_src=7, n_dst=5, in_src=4, in_dst=6, heads=2, out=3, concat=True,
    edge_src=[0, 2, 5, 2, 6, 1, 4, 3, 2, 0, 6, 5, 1, 4],
    edge_dst=[0, 0, 2, 4, 2, 1, 4, 0, 0, 2, 4, 4, 2, 2],
    x_scale=3.0,  # clearly non-uniform attention, logits stay moderate
)
# `mean.`: dst 2 has no in-edges, (5 -> 0) appears three times and (3 -> 1)
# twice.
# This is the LARGE-LOGIT case: x_src and x_dst are scaled by 30, so the
# attention logits reach well past 88.7 (float32 exp overflow); an unstable
# (non max-subtracted) softmax in float32 would produce inf/NaN here. The
# script asserts max |e| > 100 for this case.
MEAN_CASE = dict(
    n_src=6, n_dst=4, in_src=5, in_dst=3, heads=3, out=2, concat=False,
    edge_src=[3, 0, 5, 1, 2, 4, 5, 5, 3, 3],
    edge_dst=[1, 3, 0, 0, 3, 1, 0, 0, 3, 1],
    x_scale=30.0,
)
PARAM_SCALE = 0.5  # std of the random normal parameters (non-uniform attention)


def hand_gatv2(x_src, x_dst, edge_src, edge_dst, p, heads, out_ch, concat):
    """Plain float64 GATv2 forward written from the formula, one dst at a time.

    `p` maps lin_l.weight, lin_l.bias, lin_r.weight, lin_r.bias, att [H,C] and
    bias to tensors. Returns (out, alpha [E,H], logits [E,H]); differentiable.
    """
    H, C = heads, out_ch
    x_l = (x_src @ p["lin_l.weight"].T + p["lin_l.bias"]).view(-1, H, C)
    x_r = (x_dst @ p["lin_r.weight"].T + p["lin_r.bias"]).view(-1, H, C)
    E = edge_src.numel()
    # logits e[j, h] for every edge (in input order)
    z = F.leaky_relu(x_r[edge_dst] + x_l[edge_src], NEGATIVE_SLOPE)  # [E,H,C]
    logits = (z * p["att"].unsqueeze(0)).sum(-1)  # [E,H]
    alpha = torch.zeros(E, H, dtype=x_src.dtype)
    rows = []
    for i in range(x_dst.shape[0]):
        sel = (edge_dst == i).nonzero().flatten()
        if sel.numel() == 0:
            rows.append(torch.zeros(H, C, dtype=x_src.dtype))
            continue
        e = logits[sel]  # [k,H]
        ex = torch.exp(e - e.max(0).values)  # stable softmax per head
        a = ex / ex.sum(0)
        alpha = alpha.index_put((sel,), a)
        rows.append((a.unsqueeze(-1) * x_l[edge_src[sel]]).sum(0))  # [H,C]
    out = torch.stack(rows)  # [n_dst,H,C]
    out = out.reshape(-1, H * C) if concat else out.mean(1)
    return out + p["bias"], alpha, logits


def run_case(case, prefix):
    """Runs one PyG GATv2Conv case, self-checks it, returns name -> tensor."""
    dt = torch.float64
    H, C, concat = case["heads"], case["out"], case["concat"]
    conv = GATv2Conv(
        (case["in_src"], case["in_dst"]), C, heads=H, concat=concat,
        negative_slope=NEGATIVE_SLOPE, dropout=0.0, add_self_loops=False,
        bias=True, share_weights=False,
    ).to(dt)
    conv.eval()
    # Random normal init for every parameter (names: lin_l.weight, lin_l.bias,
    # lin_r.weight, lin_r.bias, att [1,H,C], bias).
    with torch.no_grad():
        for _, prm in sorted(conv.named_parameters(), key=lambda kv: kv[0]):
            prm.copy_(torch.randn(prm.shape, dtype=dt) * PARAM_SCALE)
    names = sorted(n for n, _ in conv.named_parameters())
    assert names == ["att", "bias", "lin_l.bias", "lin_l.weight",
                     "lin_r.bias", "lin_r.weight"], names

    x_src = (torch.randn(case["n_src"], case["in_src"], dtype=dt)
             * case["x_scale"]).requires_grad_()
    x_dst = (torch.randn(case["n_dst"], case["in_dst"], dtype=dt)
             * case["x_scale"]).requires_grad_()
    edge_src = torch.tensor(case["edge_src"], dtype=torch.long)
    edge_dst = torch.tensor(case["edge_dst"], dtype=torch.long)
    edge_index = torch.stack([edge_src, edge_dst])  # row 0 = source, row 1 = target

    # Bipartite input is the tuple (x_src, x_dst): lin_l runs on x_src, lin_r
    # on x_dst, and the number of destinations is x_dst.size(0) (GATv2Conv's
    # forward has no `size` argument).
    out, (ei_ret, alpha) = conv((x_src, x_dst), edge_index,
                                return_attention_weights=True)
    # With add_self_loops=False PyG hands back the same edge_index, so alpha
    # rows are in input edge order (no permutation needed).
    assert torch.equal(ei_ret, edge_index), "PyG reordered the edges"
    g = torch.randn(out.shape, dtype=dt)
    (out * g).sum().backward()

    params = {n: prm.detach().clone() for n, prm in conv.named_parameters()}
    params["att"] = params["att"].reshape(H, C)
    grads = {n: prm.grad.detach().clone() for n, prm in conv.named_parameters()}
    grads["att"] = grads["att"].reshape(H, C)

    # --- self-check against the hand-written formula (forward and backward)
    leaf = {n: t.clone().requires_grad_() for n, t in params.items()}
    hx_src = x_src.detach().clone().requires_grad_()
    hx_dst = x_dst.detach().clone().requires_grad_()
    h_out, h_alpha, h_logits = hand_gatv2(hx_src, hx_dst, edge_src, edge_dst,
                                          leaf, H, C, concat)
    (h_out * g).sum().backward()
    tol = dict(rtol=1e-10, atol=1e-10)
    assert torch.allclose(out.detach(), h_out.detach(), **tol), "out mismatch"
    assert torch.allclose(alpha.detach(), h_alpha.detach(), **tol), "alpha mismatch"
    assert torch.allclose(x_src.grad, hx_src.grad, **tol), "grad x_src mismatch"
    assert torch.allclose(x_dst.grad, hx_dst.grad, **tol), "grad x_dst mismatch"
    for n in params:
        assert torch.allclose(grads[n], leaf[n].grad, **tol), f"grad {n} mismatch"
    # isolated destinations get exactly the bias
    for i in range(case["n_dst"]):
        if not (edge_dst == i).any():
            assert torch.equal(out[i].detach(), params["bias"]), "isolated dst"
    max_logit = h_logits.detach().abs().max().item()
    if case["x_scale"] >= 10.0:
        assert max_logit > 100.0, f"large-logit case only reached {max_logit}"
    print(f"{prefix}: E={edge_src.numel()} max|e|={max_logit:.2f} "
          f"out{tuple(out.shape)} self-check ok", file=sys.stderr)

    t = {
        "x_src": x_src.detach(),
        "x_dst": x_dst.detach(),
        "edge_src": edge_src,
        "edge_dst": edge_dst,
        "out": out.detach(),
        "alpha": alpha.detach(),  # [E,H]
        "grad_out": g,
        "grad.x_src": x_src.grad.detach(),
        "grad.x_dst": x_dst.grad.detach(),
    }
    for n in ["lin_l.weight", "lin_l.bias", "lin_r.weight", "lin_r.bias",
              "att", "bias"]:
        t[n] = params[n]
        t["grad." + n] = grads[n]
    return {prefix + k: v.contiguous() for k, v in t.items()}


def cmd_fixture(args):
    torch.manual_seed(args.seed)
    tensors = {}
    meta = {
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "command": " ".join(["python"] + sys.argv),
        "seed": str(args.seed),
        "param_scale": str(PARAM_SCALE),
        "negative_slope": str(NEGATIVE_SLOPE),
    }
    for prefix, case in [("concat.", CONCAT_CASE), ("mean.", MEAN_CASE)]:
        tensors.update(run_case(case, prefix))
        for k in ["heads", "out", "n_src", "n_dst", "in_src", "in_dst"]:
            meta[prefix + k] = str(case[k])
        meta[prefix + "concat"] = "true" if case["concat"] else "false"
        meta[prefix + "x_scale"] = str(case["x_scale"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out} ({len(tensors)} tensors, "
          f"{os.path.getsize(args.out)} bytes)", file=sys.stderr)


# ---------------------------------------------------------------------------
# graph directory ("PyG layout") reader and synthetic writer
# ---------------------------------------------------------------------------

def load_graph(d):
    """Reads a zipp graph directory; arrays are memory-mapped where possible."""
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    assert meta["format"] == "zipp-graph" and meta["version"] == 1, meta
    U, S, E, dim = (meta["num_users"], meta["num_communities"],
                    meta["num_edges"], meta["feature_dim"])

    def npy(name, dtype, shape):
        a = np.load(os.path.join(d, name), mmap_mode="r")
        assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
        assert a.shape == shape, f"{name}: shape {a.shape}, expected {shape}"
        return a

    g = dict(meta=meta, U=U, S=S, E=E, d=dim)
    g["rowptr"] = npy("user_rowptr.npy", np.int64, (U + 1,))
    g["col"] = npy("user_col.npy", np.int64, (E,))
    g["weight"] = npy("edge_weight.npy", np.float32, (E,))
    g["split"] = npy("edge_split.npy", np.uint8, (E,))
    g["community_x"] = npy("community_x.npy", np.float32, (S, dim))
    d2 = meta.get("content_dim")
    g["user_content"] = None
    if d2 is not None and os.path.exists(os.path.join(d, "user_content.npy")):
        g["user_content"] = npy("user_content.npy", np.float32, (U, d2))
    assert g["rowptr"][0] == 0 and g["rowptr"][-1] == E
    return g


def cmd_synth(args):
    """Writes a random clustered graph directory (for testing `epoch`)."""
    rng = np.random.default_rng(args.seed)
    U, S, E, dim, k = args.users, args.communities, args.edges, args.dim, 32
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    c_cluster = rng.integers(0, k, S)
    cx = centres[c_cluster] + 1.5 * rng.standard_normal((S, dim)).astype(np.float32)
    cx /= np.linalg.norm(cx, axis=1, keepdims=True)
    u_cluster = rng.integers(0, k, U)
    # edges per user ~ proportional to a random activity; a few users get none
    act = rng.gamma(2.0, 1.0, U)
    act[rng.choice(U, max(1, U // 100), replace=False)] = 0.0
    deg = np.minimum(np.round(act / act.sum() * E).astype(np.int64), S // 2)
    deg[np.argmax(act)] += E - deg.sum()  # hit E exactly
    deg = np.minimum(deg, S)  # (only matters for tiny graphs)
    by_cluster = [np.flatnonzero(c_cluster == c) for c in range(k)]
    cols = []
    for u in range(U):
        n = int(deg[u])
        # 70% of a user's communities from its own cluster, the rest anywhere
        own = by_cluster[u_cluster[u]]
        n_own = min(len(own), int(0.7 * n))
        picked = set(rng.choice(own, n_own, replace=False).tolist())
        while len(picked) < n:
            picked.add(int(rng.integers(0, S)))
        cols.append(np.sort(np.fromiter(picked, np.int64, len(picked))))
    rowptr = np.zeros(U + 1, np.int64)
    rowptr[1:] = np.cumsum([len(c) for c in cols])
    col = np.concatenate(cols).astype(np.int64)
    E = int(col.size)
    weight = rng.uniform(0.5, 3.0, E).astype(np.float32)
    split = rng.choice(np.array([0, 1, 2], np.uint8), E, p=[0.8, 0.1, 0.1])
    d2 = args.content_dim
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "user_rowptr.npy"), rowptr)
    np.save(os.path.join(args.out, "user_col.npy"), col)
    np.save(os.path.join(args.out, "edge_weight.npy"), weight)
    np.save(os.path.join(args.out, "edge_split.npy"), split)
    np.save(os.path.join(args.out, "community_x.npy"), cx.astype(np.float32))
    if d2:
        proj = rng.standard_normal((dim, d2)).astype(np.float32) / np.sqrt(dim)
        uc = centres[u_cluster] @ proj + 0.5 * rng.standard_normal((U, d2))
        np.save(os.path.join(args.out, "user_content.npy"), uc.astype(np.float32))
    meta = {"format": "zipp-graph", "version": 1, "num_users": U,
            "num_communities": S, "num_edges": E, "feature_dim": dim,
            "content_dim": d2 if d2 else None}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f)
    print(json.dumps(meta), file=sys.stderr)


# ---------------------------------------------------------------------------
# encoder and training epoch benchmark
# ---------------------------------------------------------------------------

HIDDEN = 64
HEADS = 2


class Encoder(torch.nn.Module):
    """Two-layer bipartite GATv2 encoder (users <-> communities).

    state_dict keys: l1_c2u.*, l1_u2c.*, l2_c2u.*, l2_u2c.* (GATv2Conv:
    lin_l.weight, lin_l.bias, lin_r.weight, lin_r.bias, att, bias) and
    align.weight, align.bias when user content exists.
    """

    def __init__(self, d, content_dim):
        super().__init__()

        def conv(i, concat):
            # default GATv2Conv init (glorot weights and att, zero biases)
            return GATv2Conv(i, HIDDEN, heads=HEADS, concat=concat,
                             add_self_loops=False, share_weights=False,
                             negative_slope=NEGATIVE_SLOPE, dropout=0.0,
                             bias=True)

        self.l1_c2u = conv(d, True)  # communities -> users, d -> 2x64
        self.l1_u2c = conv(d, True)  # users -> communities
        self.l2_c2u = conv(HEADS * HIDDEN, False)  # 128 -> 64 (head mean)
        self.l2_u2c = conv(HEADS * HIDDEN, False)
        self.align = (torch.nn.Linear(HIDDEN, content_dim)
                      if content_dim else None)

    def forward(self, x_s, x_u, ei_c2u, ei_u2c):
        h_u = F.elu(self.l1_c2u((x_s, x_u), ei_c2u))
        h_s = F.elu(self.l1_u2c((x_u, x_s), ei_u2c))
        z_u = self.l2_c2u((h_s, h_u), ei_c2u)
        z_s = self.l2_u2c((h_u, h_s), ei_u2c)
        return z_u, z_s


def user_mean_features(x_s, users, comms, weight, U):
    """x_u = edge-weighted mean of community features (zero without edges)."""
    acc = torch.zeros(U, x_s.shape[1], dtype=x_s.dtype)
    acc.index_add_(0, users, x_s[comms] * weight.unsqueeze(1))
    wsum = torch.zeros(U, dtype=x_s.dtype).index_add_(0, users, weight)
    has = wsum > 0
    acc[has] /= wsum[has].unsqueeze(1)
    return acc


def evaluate(z_u, z_s, users, comms, split, S, gen):
    """Test AUC (one random negative per test edge) and Hit@10."""
    test = split == 2
    tu, ts = users[test], comms[test]
    n = tu.numel()
    if n == 0:
        return float("nan"), float("nan")
    pos = (z_u[tu] * z_s[ts]).sum(1)
    neg_c = torch.randint(0, S, (n,), generator=gen)
    neg = (z_u[tu] * z_s[neg_c]).sum(1)
    auc = ((pos > neg).double() + 0.5 * (pos == neg).double()).mean().item()

    # Hit@10: rank s+ among all communities for u with u's train and
    # validation communities removed (other test positives stay in). rank =
    # number of remaining communities scoring strictly higher; hit if rank < 10.
    known = split != 2
    ku, ks = users[known], comms[known]
    test_users = torch.unique(tu)
    hits = 0
    chunk = 1024
    for a in range(0, test_users.numel(), chunk):
        cu = test_users[a:a + chunk]
        row_of = torch.full((z_u.shape[0],), -1, dtype=torch.long)
        row_of[cu] = torch.arange(cu.numel())
        scores = z_u[cu] @ z_s.T  # [chunk, S]
        r = row_of[ku]
        m = r >= 0
        scores[r[m], ks[m]] = float("-inf")
        te = row_of[tu] >= 0
        rr, cc = row_of[tu[te]], ts[te]
        sp = scores[rr, cc]
        rank = (scores[rr] > sp.unsqueeze(1)).sum(1)
        hits += int((rank < 10).sum())
    return auc, hits / n


# zipp's held-out protocol (zipp-graph/src/metrics.rs), reproduced exactly so
# that the same weights give the same numbers on both sides.
_SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SPLITMIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_M2 = np.uint64(0x94D049BB133111EB)
_EDGE_MIX = np.uint64(0xD1B54A32D192ED03)


def zipp_negatives(edge_ids, seed, S):
    """The AUC negative of each held-out edge, as zipp draws it: the first
    SplitMix64 output of the stream seeded with `seed ^ (edge id * 0xD1B5...)`
    (wrapping u64 arithmetic), modulo the number of communities."""
    with np.errstate(over="ignore"):
        e = np.asarray(edge_ids, dtype=np.uint64)
        z = (np.uint64(seed) ^ (e * _EDGE_MIX)) + _SPLITMIX_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _SPLITMIX_M1
        z = (z ^ (z >> np.uint64(27))) * _SPLITMIX_M2
        z = z ^ (z >> np.uint64(31))
    return torch.from_numpy((z % np.uint64(S)).astype(np.int64))


def evaluate_zipp(z_u, z_s, users, comms, split, S, seed):
    """Test AUC and Hit@10 exactly as zipp_graph::metrics::link_metrics
    computes them for Part::Test: AUC against one negative per held-out edge
    from `zipp_negatives` (ties 1/2); Hit@10 ranks s+ among all communities
    with u's train and validation communities removed, other communities
    scoring exactly as s+ counting half a place, a hit when fewer than 10
    places are above it. Edge ids are positions in the export's edge order
    (zipp's by-user CSR), which is what zipp seeds with."""
    test = split == 2
    edge_ids = torch.nonzero(test).flatten()
    tu, ts = users[test], comms[test]
    n = tu.numel()
    if n == 0:
        return float("nan"), float("nan"), 0
    pos = (z_u[tu] * z_s[ts]).sum(1)
    neg_c = zipp_negatives(edge_ids.numpy(), seed, S)
    neg = (z_u[tu] * z_s[neg_c]).sum(1)
    auc = ((pos > neg).double() + 0.5 * (pos == neg).double()).sum().item() / n

    known = split != 2
    ku, ks = users[known], comms[known]
    test_users = torch.unique(tu)
    hits = 0
    chunk = 1024
    for a in range(0, test_users.numel(), chunk):
        cu = test_users[a:a + chunk]
        row_of = torch.full((z_u.shape[0],), -1, dtype=torch.long)
        row_of[cu] = torch.arange(cu.numel())
        scores = z_u[cu] @ z_s.T  # [chunk, S]
        r = row_of[ku]
        m = r >= 0
        scores[r[m], ks[m]] = float("-inf")
        te = row_of[tu] >= 0
        rr, cc = row_of[tu[te]], ts[te]
        sp = scores[rr, cc]
        row = scores[rr]
        above = ((row > sp.unsqueeze(1)).sum(1).double()
                 + 0.5 * ((row == sp.unsqueeze(1)).sum(1) - 1).double())
        hits += int((above < 10.0).sum())
    return auc, hits / n, n


def load_weights(path):
    """A state_dict from safetensors written by zipp (`Encoder::save`, `att`
    as [H, C]) or by `--save-weights` (`att` as PyG's [1, H, C])."""
    sd = load_file(path)
    return {k: (v.unsqueeze(0) if k.endswith(".att") and v.dim() == 2 else v)
            .float() for k, v in sd.items()}


def cmd_epoch(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = load_graph(args.graph)
    U, S = g["U"], g["S"]
    rowptr = torch.from_numpy(np.array(g["rowptr"]))
    comms = torch.from_numpy(np.array(g["col"]))
    users = torch.repeat_interleave(torch.arange(U), rowptr[1:] - rowptr[:-1])
    # columns must be strictly increasing within a row: (user, community)
    # pairs are unique, which Hit@10's masking below relies on
    same_row = users[1:] == users[:-1]
    assert bool((comms[1:][same_row] > comms[:-1][same_row]).all()), \
        "user_col not strictly sorted within rows"
    assert comms.numel() == 0 or (int(comms.min()) >= 0 and int(comms.max()) < S)
    weight = torch.from_numpy(np.array(g["weight"]))
    split = torch.from_numpy(np.array(g["split"]))
    x_s = torch.from_numpy(np.array(g["community_x"]))
    content = (torch.from_numpy(np.array(g["user_content"]))
               if g["user_content"] is not None else None)

    train = split == 0
    tr_u, tr_s, tr_w = users[train], comms[train], weight[train]
    # message passing uses train edges only; row 0 = source, row 1 = target
    ei_c2u = torch.stack([tr_s, tr_u])
    ei_u2c = torch.stack([tr_u, tr_s])
    x_u = user_mean_features(x_s, tr_u, tr_s, tr_w, U)
    e_train = tr_u.numel()

    if args.load_weights:
        # the sizes of the align head (if any) come from the weights; the
        # rest must fit the constants (load_state_dict is strict)
        sd = load_weights(args.load_weights)
        align_dim = sd["align.weight"].shape[0] if "align.weight" in sd else None
        model = Encoder(g["d"], align_dim)
        model.load_state_dict(sd, strict=True)
    else:
        model = Encoder(g["d"], content.shape[1] if content is not None else None)
    use_nce = content is not None and args.lam > 0 and model.align is not None
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr,
                            weight_decay=args.weight_decay)
    if use_nce:
        nce_users = torch.unique(tr_u)  # users with >= 1 train edge
        c_norm = F.normalize(content[nce_users], dim=1)
        nce_target = torch.arange(nce_users.numel())
    labels = torch.cat([torch.ones(e_train), torch.zeros(e_train)])

    times, loss_v = [], float("nan")
    model.train()
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        z_u, z_s = model(x_s, x_u, ei_c2u, ei_u2c)
        neg_s = torch.randint(0, S, (e_train,))  # fresh negatives each epoch
        pos = (z_u[tr_u] * z_s[tr_s]).sum(1)
        neg = (z_u[tr_u] * z_s[neg_s]).sum(1)
        loss = F.binary_cross_entropy_with_logits(torch.cat([pos, neg]), labels)
        if use_nce:
            p = F.normalize(model.align(z_u[nce_users]), dim=1)
            logits = p @ c_norm.T / 0.07
            loss = loss + args.lam * F.cross_entropy(logits, nce_target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        loss_v = loss.item()

    model.eval()
    with torch.no_grad():
        z_u, z_s = model(x_s, x_u, ei_c2u, ei_u2c)
        if args.eval_protocol == "zipp":
            auc, hit10, n_test = evaluate_zipp(z_u, z_s, users, comms, split,
                                               S, args.seed)
        else:
            gen = torch.Generator().manual_seed(args.seed + 1)
            auc, hit10 = evaluate(z_u, z_s, users, comms, split, S, gen)
            n_test = int((split == 2).sum())

    if args.save_embeddings:
        os.makedirs(args.save_embeddings, exist_ok=True)
        np.save(os.path.join(args.save_embeddings, "z_u.npy"), z_u.float().numpy())
        np.save(os.path.join(args.save_embeddings, "z_s.npy"), z_s.float().numpy())

    if args.save_weights:
        sd = {k: v.detach().float().contiguous()
              for k, v in model.state_dict().items()}
        save_file(sd, args.save_weights)

    print(json.dumps({
        "impl": "pyg",
        "torch": torch.__version__,
        "pyg": torch_geometric.__version__,
        "threads": args.threads,
        "epochs": args.epochs,
        "epoch_s_median": statistics.median(times) if times else None,
        "epoch_s_min": min(times) if times else None,
        "epoch_s_max": max(times) if times else None,
        "first_epoch_s": times[0] if times else None,
        "test_auc": auc,
        "hit10": hit10,
        "test_edges": n_test,
        "eval_protocol": args.eval_protocol,
        "loaded_weights": args.load_weights,
        "final_loss": loss_v,
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fixture", help="write the GATv2Conv parity fixture")
    f.add_argument("--out", default="zipp-graph/tests/fixtures/gatv2_pyg.safetensors")
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=cmd_fixture)

    s = sub.add_parser("synth", help="write a synthetic graph directory")
    s.add_argument("--out", required=True)
    s.add_argument("--users", type=int, default=900)
    s.add_argument("--communities", type=int, default=1600)
    s.add_argument("--edges", type=int, default=90000)
    s.add_argument("--dim", type=int, default=384)
    s.add_argument("--content-dim", type=int, default=384,
                   help="0 = no user_content.npy")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth)

    e = sub.add_parser("epoch", help="train the encoder, print one JSON line")
    e.add_argument("--graph", required=True)
    e.add_argument("--epochs", type=int, default=100)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--lr", type=float, default=0.005)
    e.add_argument("--weight-decay", type=float, default=0.01)
    e.add_argument("--lambda", dest="lam", type=float, default=0.5,
                   help="InfoNCE weight (0 disables it)")
    e.add_argument("--save-weights", default=None,
                   help="write the state_dict (float32) as safetensors")
    e.add_argument("--load-weights", default=None,
                   help="start from these weights (zipp or PyG safetensors); "
                   "with --epochs 0 they are only evaluated")
    e.add_argument("--save-embeddings", default=None, metavar="DIR",
                   help="write the evaluated embeddings as DIR/z_u.npy and "
                   "DIR/z_s.npy (float32; what mine-personas --embeddings "
                   "writes)")
    e.add_argument("--eval-protocol", choices=["random", "zipp"],
                   default="random",
                   help="test metrics: 'random' = torch negatives from "
                   "seed+1, Hit@10 rank = strictly higher scores (the "
                   "historical default); 'zipp' = zipp's SplitMix negatives "
                   "seeded by --seed and edge id, ties half a place, i.e. "
                   "the numbers mine-personas prints for the same weights")
    e.set_defaults(func=cmd_epoch)

    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
