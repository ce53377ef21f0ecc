"""Top singular values of each target module's weight gradient without forming the gradient.

The gradient probe wants, for every target module, the top ``r_max`` singular values of the
weight gradient accumulated over the probe batches,

    G = sum_b dL_b/dW = sum over tokens t of  delta_t x_t^T        (out x in),

where x_t is the module's input and delta_t the loss gradient at its output. Forming G costs a
full fp32 matrix per target (all of them at once: the gradients accumulate over the batches) and
an SVD of each; on an 8B model that alone exceeds 80 GB. A randomized range finder (Halko,
Martinsson & Tropp 2011, algorithms 4.1 and 4.3) needs only products of G with thin matrices,
and backpropagation gives those directly through a temporary low-rank adapter on each module,

    y = W x + B (A x),        A: k x in,  B: out x k,

whose two factors receive  dL/dB = G A^T  and  dL/dA = B^T G.  With one of the two factors
zero the adapter adds exactly 0, so the forward pass, the loss and every delta_t are the base
model's own: the factor gradients are exact products with the base model's G.

* Pass 1 (range): A = Omega^T with Omega a fixed Gaussian in x k, B = 0 trainable:
  dL/dB = G Omega = Y. Orthonormalise, Q = qr(Y) (out x k).
* Power iteration (``power_iters`` times, 2 passes each): B = Q fixed, A = 0 trainable gives
  Q^T G; P = qr((Q^T G)^T) (in x k); then A = P^T fixed, B = 0 trainable gives G P; Q = qr(G P).
  Each iteration sharpens Q towards the top singular subspace when the spectrum decays slowly.
* Last pass (projection): B = Q fixed, A = 0 trainable: dL/dA = Q^T G (k x in). Its singular
  values, from an SVD of a k x in matrix, are the estimates of G's top k.

``k = r_max + max(OVERSAMPLE, r_max)`` (capped at min(in, out)); only the top ``r_max`` are kept. Properties
the tests rely on: Q has orthonormal columns, so sigma_j(Q^T G) <= sigma_j(G) for every j (an
estimate never exceeds the exact value); and when k >= rank(G) (few tokens: rank(G) <= tokens)
or k = min(in, out), range(Q) contains range(G) and the estimates are exact up to rounding.

Memory: the factors and the sketches are (in + out) x k per module; no out x in matrix exists
at any time, and the base weights never require gradients. Every pass must see the same batches
(G is a sum over them) with dropout off (the caller's model.eval()). The adapters are forward
hooks, removed after each pass: the model is left exactly as it was.

Several processes: each runs its own share of the batches, so it gets the products with its
partial sum G_p; the caller's ``reduce`` sums them over processes (G = sum_p G_p, and the
products are linear in G) before each QR, so every process holds the same Q and the same
singular values. Omega is drawn on the CPU from a fixed seed, identical in every process.
"""

from __future__ import annotations

from typing import Callable

import torch

# Extra sketch columns beyond r_max: at least 8 (Halko's bound falls fast with them), and as many
# as r_max itself because gradient spectra decay slowly: on SmolLM2 with r_max 32, r_max + 8
# columns and one power iteration left sigma_32 up to 12 % low and 78 of 210 modules with another
# rank at the budget of uniform r=16 (benchmarks/RESULTS.md). The columns cost (in + out) numbers
# each and almost no time: a pass's cost is the model's forward and backward, not the sketch.
OVERSAMPLE = 8


def sketch_size(r_max: int, in_features: int, out_features: int) -> int:
    return min(r_max + max(OVERSAMPLE, r_max), in_features, out_features)


def sketched_spectra(modules: dict, dims: dict, run_pass: Callable[[], None], reduce: Callable[[list], None],
                     r_max: int, power_iters: int = 0, seed: int = 0) -> dict[str, list[float]]:
    """``{name: top r_max singular values of G}`` estimated from 2 + 2 ``power_iters`` passes.

    ``modules``: {name: the module}; ``dims``: {name: (in_features, out_features)};
    ``run_pass()`` runs forward and backward over this process's probe batches (the same every
    time); ``reduce(tensors)`` sums each tensor over processes in place (nothing with one).
    """
    device = next(iter(modules.values())).weight.device
    omega = {}
    for i, (name, (n_in, n_out)) in enumerate(sorted(dims.items())):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)  # fixed per module, the same in every process
        omega[name] = torch.randn(n_in, sketch_size(r_max, n_in, n_out), generator=g).to(device)
    q = _orthonormal(_right_products(modules, dims, omega, run_pass, reduce))
    for _ in range(power_iters):
        p = _orthonormal({n: z.T for n, z in _left_products(modules, dims, q, run_pass, reduce).items()})
        q = _orthonormal(_right_products(modules, dims, p, run_pass, reduce))
    z = _left_products(modules, dims, q, run_pass, reduce)
    return {n: torch.linalg.svdvals(z[n].double())[:r_max].tolist() for n in sorted(z)}


def _orthonormal(mats: dict) -> dict:
    return {n: torch.linalg.qr(m.float())[0] for n, m in mats.items()}


def _right_products(modules, dims, right: dict, run_pass, reduce) -> dict:
    """{name: G @ right[name]} (out x k): A = right^T fixed, B = 0 learns dL/dB = G A^T."""
    factors = {}
    for name, r in right.items():
        n_out = dims[name][1]
        factors[name] = (r.T.contiguous(), torch.zeros(n_out, r.shape[1], device=r.device, requires_grad=True))
    return _gradients_of(modules, factors, run_pass, reduce, trainable=1)


def _left_products(modules, dims, left: dict, run_pass, reduce) -> dict:
    """{name: left[name]^T @ G} (k x in): B = left fixed, A = 0 learns dL/dA = B^T G."""
    factors = {}
    for name, l in left.items():
        n_in = dims[name][0]
        factors[name] = (torch.zeros(l.shape[1], n_in, device=l.device, requires_grad=True), l.contiguous())
    return _gradients_of(modules, factors, run_pass, reduce, trainable=0)


def _gradients_of(modules, factors: dict, run_pass, reduce, trainable: int) -> dict:
    """Attach y += B (A x) with ``factors[name] = (A, B)``, run one pass, return the summed
    gradients of the trainable factor (index ``trainable``) and remove the hooks."""
    # prepend: the adapter's output joins W x before any hook already on the module acts on the
    # output, as a change of W would (a hook scaling the output scales dL/dW too).
    handles = [modules[name].register_forward_hook(_adapter_hook(a, b), prepend=True)
               for name, (a, b) in factors.items()]
    try:
        run_pass()
    finally:
        for h in handles:
            h.remove()
    grads = {}
    for name, ab in factors.items():
        t = ab[trainable]
        grads[name] = t.grad if t.grad is not None else torch.zeros_like(t)  # a module the loss never reached
    reduce(list(grads.values()))
    return grads


def _adapter_hook(a: torch.Tensor, b: torch.Tensor):
    """Forward hook adding (x A^T) B^T to the module's output; one factor is zero, so it adds 0.

    The product runs in x's dtype (the autocast dtype inside autocast, like W x): the factors
    are cast, not x, so the x autograd keeps for dL/dA is the tensor the module keeps anyway
    (casting x to fp32 would save an fp32 copy of every module's input). The factors' gradients
    still accumulate in fp32."""

    def hook(module, inputs, output):
        x = inputs[0]
        return output + ((x @ a.to(x.dtype).T) @ b.to(x.dtype).T).to(output.dtype)

    return hook


def all_reduce_sum(world: int) -> Callable[[list], None]:
    """``reduce`` for :func:`sketched_spectra`: sum tensors over ``world`` processes in place,
    in one collective (a flat buffer), or nothing with one process."""

    def reduce(tensors: list) -> None:
        if world == 1 or not tensors:
            return
        import torch.distributed as dist

        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        dist.all_reduce(flat)
        i = 0
        for t in tensors:
            t.copy_(flat[i:i + t.numel()].view_as(t))
            i += t.numel()

    return reduce
