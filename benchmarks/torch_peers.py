"""PyTorch versions of nnkd's training step: the peers of benchmarks/bench_train.py.

Three steps, each float32 with the shapes, batch size and dropout rates of an nnkd
TrainConfig (``soft``: the distillation step, on soft targets at ``cfg.temperature``):

- ``peer_step``: nnkd's step written in PyTorch, extras included: batches gathered from a
  shuffled order, nnkd's jitter (the same grouped slices as ``nnkd.batches.jitter``; for
  distillation the transfer-set jitter, soft targets looked up by shift and sample as nnkd
  does), max-norm of the hidden units after the update.
- ``plain_step``: what a PyTorch user would write: ``nn.Sequential`` of Linear/ReLU/Dropout,
  ``F.cross_entropy``, ``SGD(momentum=0.9)``, ``zero_grad(); backward(); step()``, batches
  sliced from a tensor; no jitter, no max-norm.
- ``compiled_step``: ``peer_step`` with its model, loss, backward, optimizer step and
  max-norm under ``torch.compile(mode="reduce-overhead")``.  Gathering, jitter and the
  target lookup stay eager (the jitter's block sizes, drawn on the host, change every step).
  Compilation and warm-up happen inside it, before it returns.

Each returns ``step``, a function running one training step; ``sync(device)`` waits for
the device.  Importing this module needs torch.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from nnkd.network import parse_arch

N_DATA = 8192
SIDE = 28  # images are 28 x 28 (784 inputs)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def model(cfg, device):
    """``nn.Sequential`` of the config's network: Dropout (where the config has a rate) before
    each Linear, ReLU after every Linear but the last."""
    sizes = parse_arch(cfg.arch)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        rate = cfg.dropout_input if i == 0 else cfg.dropout_hidden
        if rate:
            layers.append(torch.nn.Dropout(rate))
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(device).train()


def loss_function(cfg, soft):
    """``loss(z, y, targets)``: hard cross-entropy, or for distillation
    ``soft_weight * T^2 * CE(targets, softmax(z / T)) + hard_weight * CE(y, softmax(z))``."""
    T = cfg.temperature

    def distill(z, y, targets):
        loss = cfg.soft_weight * T * T * -(targets * F.log_softmax(z / T, dim=1)).sum(1).mean()
        if cfg.hard_weight:  # nnkd skips the hard term when its weight is 0
            loss = loss + cfg.hard_weight * F.cross_entropy(z, y)
        return loss

    def hard(z, y, targets):
        return F.cross_entropy(z, y)

    return distill if soft else hard


def random_data(device, n, n_soft_rows):
    """X ``(n, 784)`` in [0, 1], labels, and ``n_soft_rows`` rows of soft targets
    (probabilities at T = 20 of random logits)."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, SIDE * SIDE, generator=g).to(device)
    Y = torch.randint(0, 10, (n,), generator=g).to(device)
    P = torch.softmax(torch.randn(n_soft_rows, 10, generator=g) * 5 / 20, dim=1).to(device)
    return X, Y, P


def plain_step(cfg, soft, batch, device, lr):
    n = max(N_DATA, 2 * batch)
    X, Y, P = random_data(device, n, n)
    net = model(cfg, device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    loss_fn = loss_function(cfg, soft)
    pos = [0]

    def step():
        a = pos[0] % (n - batch)
        pos[0] += batch
        loss = loss_fn(net(X[a:a + batch]), Y[a:a + batch], P[a:a + batch] if soft else None)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _peer_batches(cfg, soft, batch, device):
    """``next_batch()`` -> ``(x, y, targets)`` as nnkd's Step makes them: gathered from a
    shuffled order, jittered by grouped slices, soft targets by (shift, sample)."""
    shift = cfg.transfer_jitter if soft else cfg.jitter
    n_shifts = (2 * shift + 1) ** 2
    moves = [(k // (2 * shift + 1) - shift, k % (2 * shift + 1) - shift) for k in range(n_shifts)]
    n = max(N_DATA, 2 * batch)
    X, Y, P = random_data(device, n, (n_shifts if soft and shift else 1) * n)
    rng = np.random.default_rng(1)
    order = torch.from_numpy(np.concatenate([rng.permutation(n) for _ in range(8)])).to(device)
    xj = torch.empty(batch, SIDE, SIDE, device=device)
    pos = [0]

    def next_batch():
        a = pos[0] % (order.shape[0] - batch)
        pos[0] += batch
        idx = order[a:a + batch]
        x = X[idx]
        targets = P[idx] if soft and not shift else None
        if shift:
            counts = rng.multinomial(batch, np.full(n_shifts, 1.0 / n_shifts))
            xi = x.view(batch, SIDE, SIDE)
            xj.zero_()
            start = 0
            for (dy, dx), c in zip(moves, counts):
                if c:
                    xj[start:start + c, max(dy, 0):SIDE + min(dy, 0), max(dx, 0):SIDE + min(dx, 0)] = \
                        xi[start:start + c, max(-dy, 0):SIDE + min(-dy, 0), max(-dx, 0):SIDE + min(-dx, 0)]
                    start += c
            x = xj.view(batch, SIDE * SIDE)
            if soft:
                k = torch.from_numpy(np.repeat(np.arange(n_shifts), counts)).to(device)
                targets = P[k * n + idx]
        return x, Y[idx], targets

    return next_batch


def _peer_train_step(cfg, soft, device, lr, momentum):
    """``train_step(x, y, targets)``: forward, loss, backward, SGD with momentum, max-norm."""
    net = model(cfg, device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    loss_fn = loss_function(cfg, soft)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    constrained = {"all": linears, "hidden": linears[:-1]}.get(cfg.max_norm_layers, []) \
        if cfg.max_norm else []
    bound = float(np.sqrt(cfg.max_norm)) if cfg.max_norm_squared else float(cfg.max_norm)

    def train_step(x, y, targets):
        opt.zero_grad(set_to_none=False)  # first: under torch.compile it is not traced (a break)
        loss = loss_fn(net(x), y, targets)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for lin in constrained:  # Linear.weight is (out, in): a unit's incoming weights are a row
                lin.weight.copy_(torch.renorm(lin.weight, 2, 0, bound))

    return train_step


def peer_step(cfg, soft, batch, device, lr, momentum):
    next_batch = _peer_batches(cfg, soft, batch, device)
    train_step = _peer_train_step(cfg, soft, device, lr, momentum)

    def step():
        train_step(*next_batch())

    return step


def compiled_step(cfg, soft, batch, device, lr, momentum, warmup=10):
    """``(step, seconds)``: the compiled peer step and the seconds spent compiling and warming
    it up.  Raises whatever torch.compile or the first steps raise."""
    t0 = time.perf_counter()
    # Every cell compiles the same code objects with other closures: start from an empty
    # cache, or the recompile limit would send later cells back to eager mode.
    (getattr(torch.compiler, "reset", None) or torch._dynamo.reset)()
    next_batch = _peer_batches(cfg, soft, batch, device)
    train_step = torch.compile(_peer_train_step(cfg, soft, device, lr, momentum),
                               mode="reduce-overhead", dynamic=False)
    mark_step = getattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)

    def step():
        mark_step()
        train_step(*next_batch())

    for _ in range(warmup):  # tracing, recompiling once the optimizer has state, graph capture
        step()
    sync(device)
    return step, time.perf_counter() - t0
