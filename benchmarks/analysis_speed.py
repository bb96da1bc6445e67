"""Cost of the analysis tools against direct references, measured side by side in one run.

1. Whole-network top eigenvalue: this project's operator and Lanczos vs PyHessian's own power
   iteration, same model and batch: the number of products each needs for the same tolerance, the
   values they agree on, and the time of one Hessian-vector product alone, ours (written with
   torch.autograd.grad) against PyHessian's on the same vectors, alternated.
2. Last layer: the exact closed form vs PyHessian restricted to the last layer on the same data.
3. Landscape: grid points per second divided by plain eval-mode forward passes per second over
   the same tensors, and against a per-point reference that loads a perturbed state dict.

    python benchmarks/analysis_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch
import torch.nn.functional as F

from analysis.measures.hessian import HessianOperator, top_eigenvalues
from analysis.measures.landscape import evaluate_grid, grid, loss_and_accuracy, random_directions
from pof.curvature.lastlayer import features_and_probs, last_layer_hessian
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.networks import build_model


def trained_cnn(d, epochs=3):
    torch.manual_seed(0)
    model = build_model("cnn-small", d.input_shape, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    b = Batches(d.x_train, d.y_train, d.mean, d.std, 128, seed=0)
    for e in range(epochs):
        for x, y in b.epoch(e):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def count_pyhessian_products():
    """Wrap PyHessian's product function to count calls (its eigenvalues() does not report them)."""
    mod = sys.modules["pyhessian.hessian"]
    original = mod.hessian_vector_product
    counter = {"n": 0}

    def counted(*a, **k):
        counter["n"] += 1
        return original(*a, **k)

    mod.hessian_vector_product = counted
    return counter


def bench_top_eigenvalue(model, x, y, repeats, tol=1e-4):
    from pyhessian import hessian

    counter = count_pyhessian_products()
    rows = {"pyhessian": [], "ours": []}
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        counter["n"] = 0
        t0 = time.perf_counter()
        h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        vals, _ = h.eigenvalues(maxIter=1000, tol=tol, top_n=1)
        rows["pyhessian"].append((time.perf_counter() - t0, counter["n"], vals[0]))
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        op = HessianOperator(model, [(x, y)])
        res = top_eigenvalues(op, 1, tol=tol)
        rows["ours"].append((time.perf_counter() - t0, op.n_hvp, res.eigenvalues[0]))
        op.close()
    (tp, np_, vp), (to, no, vo) = min(rows["pyhessian"]), min(rows["ours"])
    print("\n## 1. Whole-network top eigenvalue, cnn-small on 1000 digits (same batch, tol 1e-4)\n")
    print("| | time s | Hessian-vector products | ms per product | top eigenvalue |")
    print("|---|---|---|---|---|")
    print(f"| PyHessian power iteration | {tp:.2f} | {np_} | {tp / np_ * 1e3:.1f} | {vp:.6f} |")
    print(f"| this project (Lanczos) | {to:.2f} | {no} | {to / no * 1e3:.1f} | {vo:.6f} |")
    print(
        f"\nper-product time, setup included: {(to / no) / (tp / np_) - 1:+.1%}; "
        f"total time ratio {to / tp:.2f}; relative difference of the values "
        f"{abs(vo - vp) / abs(vp):.2e}"
    )
    bench_one_product(model, x, y)


def bench_one_product(model, x, y, n=24):
    """One product, nothing else: PyHessian's (pyhessian.utils.hessian_vector_product on the graph
    its constructor built) and ours (HessianOperator.hvp) on the same n random vectors, the two
    alternated vector by vector (in both orders) so that a busy machine slows both alike; medians
    and minima. The products agree to rounding."""
    import statistics

    from pyhessian import hessian
    from pyhessian.utils import hessian_vector_product

    model.zero_grad(set_to_none=True)
    h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    model.zero_grad(set_to_none=True)
    op = HessianOperator(model, [(x, y)])
    gen = torch.Generator().manual_seed(0)
    times = {"pyhessian": [], "ours": []}
    diff = 0.0
    for i in range(n):
        v = [torch.randn(p.shape, generator=gen) for p in op.params]
        out = {}
        for name in ("pyhessian", "ours")[:: 1 if i % 2 else -1]:
            t0 = time.perf_counter()
            if name == "ours":
                out[name] = op.hvp(v)
            else:
                out[name] = hessian_vector_product(h.gradsH, h.params, v)
            times[name].append(time.perf_counter() - t0)
        for a, b in zip(out["pyhessian"], out["ours"], strict=True):
            diff = max(diff, float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)))
    op.close()
    model.zero_grad(set_to_none=True)
    med = {k: statistics.median(t) * 1e3 for k, t in times.items()}
    low = {k: min(t) * 1e3 for k, t in times.items()}
    print(
        f"\none product alone ({n} vectors, alternated): PyHessian median {med['pyhessian']:.0f} "
        f"ms (min {low['pyhessian']:.0f}), ours median {med['ours']:.0f} ms "
        f"(min {low['ours']:.0f}); "
        f"ratio of medians {med['ours'] / med['pyhessian']:.3f}, of minima "
        f"{low['ours'] / low['pyhessian']:.3f}; largest relative difference {diff:.1e}"
    )


def bench_last_layer(model, x, y, repeats):
    from pyhessian import hessian

    rows = {"pyhessian": [], "exact": []}
    for _ in range(repeats):
        for p in model.features.parameters():
            p.requires_grad_(False)
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        h = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        vals, _ = h.eigenvalues(maxIter=1000, tol=1e-6, top_n=1)
        probes = h.trace(maxIter=200, tol=1e-12)  # 200 probes: this tolerance is never reached
        tr = sum(probes) / len(probes)
        rows["pyhessian"].append((time.perf_counter() - t0, vals[0], tr))
        for p in model.features.parameters():
            p.requires_grad_(True)
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        Ft, P = features_and_probs(model, [(x, y)])
        res = last_layer_hessian(Ft, P, top_k=1)
        rows["exact"].append((time.perf_counter() - t0, res.top_eigenvalues[0], res.trace))
        t0 = time.perf_counter()
        Ft, P = features_and_probs(model, [(x, y)])
        free = last_layer_hessian(Ft, P, top_k=1, dense=False)
        rows.setdefault("free", []).append(
            (time.perf_counter() - t0, free.top_eigenvalues[0], free.trace)
        )
    (tp, vp, trp), (te, ve, tre) = min(rows["pyhessian"]), min(rows["exact"])
    tf, vf, trf = min(rows["free"])
    print(
        "\n## 2. Last layer: exact closed form vs PyHessian restricted to the last layer (1000 "
        "digits)\n"
    )
    print("| | time s | top eigenvalue | trace |")
    print("|---|---|---|---|")
    print(
        f"| PyHessian (power iteration tol 1e-6, Hutchinson 200 probes) | {tp:.3f} | {vp:.6f} | "
        f"{trp:.5f} |"
    )
    print(f"| exact closed form ({res.method}) | {te:.3f} | {ve:.6f} | {tre:.5f} |")
    print(f"| exact closed form (matrix-free Lanczos) | {tf:.3f} | {vf:.6f} | {trf:.5f} |")
    print(
        f"\nspeed-up {tp / te:.1f}x (dense, the whole spectrum), {tp / tf:.1f}x (matrix-free, top "
        "eigenvalue); "
        f"top eigenvalue agrees to {abs(vp - ve) / ve:.1e} relative; "
        f"PyHessian's trace estimate is {abs(trp - tre) / tre:.1%} off the exact trace"
    )


def bench_landscape(name, model, x, y, steps, repeats):
    dirs = random_directions(model, 2, seed=0)
    axes = [grid(-1, 1, steps)] * 2
    n_points = steps * steps
    best = {"forward": 1e9, "grid": 1e9, "state_dict": 1e9}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n_points):
            loss_and_accuracy(model, x, y)
        best["forward"] = min(best["forward"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        evaluate_grid(model, dirs, axes, x, y, "bench")
        best["grid"] = min(best["grid"], time.perf_counter() - t0)
        # reference: a fresh copy of the model with a perturbed state dict loaded at every point
        t0 = time.perf_counter()
        base = copy.deepcopy(model.state_dict())
        for a in axes[0]:
            for b in axes[1]:
                sd = {
                    k: (v + a * dirs.vectors[0][k] + b * dirs.vectors[1][k])
                    if k in dirs.vectors[0]
                    else v
                    for k, v in base.items()
                }
                m = copy.deepcopy(model)
                m.load_state_dict(sd)
                loss_and_accuracy(m.eval(), x, y)
        best["state_dict"] = min(best["state_dict"], time.perf_counter() - t0)
    print(
        f"| {name} | {len(x)} | {n_points} | {n_points / best['grid']:.2f} | "
        f"{n_points / best['forward']:.2f} | "
        f"{best['forward'] / best['grid']:.3f} | {n_points / best['state_dict']:.2f} | "
        f"{best['state_dict'] / best['grid']:.2f} |"
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu")
    d = load_dataset("digits")
    model = trained_cnn(d)
    x, y = next(iter(Batches(d.x_train, d.y_train, d.mean, d.std, 1000, seed=0)))
    bench_top_eigenvalue(model, x, y, args.repeats)
    bench_last_layer(model, x, y, args.repeats)
    print("\n## 3. Landscape throughput (2-D grid, eval mode)\n")
    print(
        "| model | eval images | points | points/s | forward passes/s | ratio (target >= 0.8) "
        "| state-dict reference points/s | speed-up over it |"
    )
    print("|---|---|---|---|---|---|---|---|")
    xt, yt = next(iter(Batches(d.x_test, d.y_test, d.mean, d.std, 450, shuffle=False)))
    bench_landscape("cnn-small / digits", model, xt, yt, 11, args.repeats)
    g = torch.Generator().manual_seed(0)
    xc, yc = torch.randn(500, 3, 32, 32, generator=g), torch.randint(0, 10, (500,), generator=g)
    bench_landscape(
        "resnet20 / CIFAR-sized",
        build_model("resnet20", (3, 32, 32), 10).eval(),
        xc,
        yc,
        5,
        args.repeats,
    )


if __name__ == "__main__":
    main()
