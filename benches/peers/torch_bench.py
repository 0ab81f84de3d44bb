#!/usr/bin/env python3
"""PyTorch CPU peer for Kiln's benchmarks (definitions: BENCHMARKS.md).

Prints one line per figure on stdout, in the same form as Kiln's benches:

    bench=mlp-small backend=torch steps_per_s=1234.5
    bench=mlp-large backend=torch steps_per_s=30.2
    bench=cnn backend=torch steps_per_s=456.7
    bench=transformer backend=torch steps_per_s=78.9
    bench=matmul backend=torch n=1024 gflops=146.0

Usage:
    torch_bench.py [mlp-small|mlp-large|cnn|transformer|matmul|all ...] [--threads N] [--quick]
    torch_bench.py --cold-start      # import torch, build mlp-small, one step, exit

Diagnostics (thread count, versions) go to stderr, so stdout stays parseable.
`--quick` (or KILN_PEERS_QUICK=1) shrinks repeats/steps for a smoke test; its
numbers are not the figures BENCHMARKS.md defines.

New benchmarks go in BENCHMARKS below: a function taking the parsed args and
returning the lines it printed. `cnn` and `transformer` are the same models as
Kiln's (benches/common/mod.rs), layer for layer.
"""

import argparse
import os
import statistics
import sys
import time

# torch is imported lazily (in main / run_cold_start) so that --cold-start
# measures `import torch` as part of the process lifetime, as a user would see.
torch = None
nn = None

SEED = 1234
N_BATCHES = 8  # pre-generated batches, cycled


def _import_torch():
    global torch, nn
    import torch as _torch
    import torch.nn as _nn

    torch, nn = _torch, _nn


def emit(line):
    print(line, flush=True)
    return line


# ---------------------------------------------------------------------------
# Models and data


def make_mlp(sizes):
    """Linear layers with ReLU between them (none after the last)."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_data(batch, in_dim, classes, n_batches=N_BATCHES, seed=SEED):
    """Synthetic data from a fixed seed: inputs ~ N(0,1), labels uniform over classes."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(batch, in_dim, generator=g, dtype=torch.float32) for _ in range(n_batches)]
    ys = [torch.randint(0, classes, (batch,), generator=g, dtype=torch.int64) for _ in range(n_batches)]
    return xs, ys


class Trainer:
    """Model + CrossEntropyLoss + Adam; step() = zero_grad, forward, backward, update, loss.item().

    `model`/`xs`/`ys` default to the MLP of `sizes` on N(0,1) inputs; the CNN and transformer
    benchmarks pass their own (the model returns logits [..., classes], flattened for the loss).
    """

    def __init__(self, sizes, batch, lr=1e-3, seed=SEED, model=None, data=None):
        torch.manual_seed(seed)
        self.model = model() if model is not None else make_mlp(sizes)
        self.model.train()
        self.loss_fn = nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.xs, self.ys = data() if data is not None else make_data(batch, sizes[0], sizes[-1])
        self.i = 0

    def step(self):
        x = self.xs[self.i % len(self.xs)]
        y = self.ys[self.i % len(self.ys)]
        self.i += 1
        self.opt.zero_grad()
        logits = self.model(x)
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        self.opt.step()
        return loss.item()  # read the loss back every step, like a logging loop

    def steps_per_s(self, steps, warmup, repeats):
        for _ in range(warmup):
            self.step()
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                loss = self.step()
            dt = time.perf_counter() - t0
            rates.append(steps / dt)
        if loss != loss:  # NaN
            raise RuntimeError("loss is NaN")
        print(f"  rates={[round(r, 1) for r in rates]} last_loss={loss:.4f}", file=sys.stderr)
        return statistics.median(rates)


# (sizes, batch, steps, warmup, repeats) per BENCHMARKS.md; --quick scales these down.
MLP_SPECS = {
    "mlp-small": ([64, 128, 128, 10], 64, 200, 20, 5),
    "mlp-large": ([784, 1024, 1024, 10], 256, 30, 5, 3),
}


def bench_mlp(name, args):
    sizes, batch, steps, warmup, repeats = MLP_SPECS[name]
    if args.quick:
        steps, warmup, repeats = max(steps // 10, 3), max(warmup // 5, 1), 2
    rate = Trainer(sizes, batch).steps_per_s(steps, warmup, repeats)
    return [emit(f"bench={name} backend=torch steps_per_s={rate:.1f}")]


def bench_mlp_small(args):
    return bench_mlp("mlp-small", args)


def bench_mlp_large(args):
    return bench_mlp("mlp-large", args)


# ---------------------------------------------------------------------------
# CNN and transformer (the same models as Kiln's benches/common/mod.rs; no targets yet)

# (batch, steps, warmup, repeats), as in Kiln's train_step.rs
CNN_SPEC = (64, 100, 10, 5)
TRANSFORMER_SPEC = (16, 50, 10, 5)
TF_VOCAB, TF_DIM, TF_LAYERS, TF_HEADS, TF_CONTEXT = 65, 64, 2, 4, 32


def make_cnn():
    """LeNet-style CNN of examples/cnn_digits.rs on [1, 8, 8]: two conv-ReLU-maxpool, two Linear."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [16, 4, 4]
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [32, 2, 2]
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def cnn_data(batch):
    xs, ys = make_data(batch, 64, 10)
    return [x.reshape(batch, 1, 8, 8) for x in xs], ys


def _transformer_classes():
    """Defined lazily (nn is imported lazily). Mirrors kiln-graph's self_attention and
    transformer_block: separate q/k/v Linear layers, scores scaled by 1/sqrt(head_dim), an additive
    causal mask, softmax, output projection; pre-norm LayerNorm (eps 1e-5), GELU (erf) MLP 4x."""

    class Block(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
            self.act = nn.GELU()

        def attn(self, x, mask):
            b, t, d = x.shape
            h, hd = self.heads, d // self.heads
            q, k, v = (f(x).view(b, t, h, hd).transpose(1, 2) for f in (self.q, self.k, self.v))
            scores = (q @ k.transpose(-2, -1)) * (1.0 / hd**0.5) + mask
            ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
            return self.out(ctx)

        def forward(self, x, mask):
            x = x + self.attn(self.ln1(x), mask)
            return x + self.fc2(self.act(self.fc1(self.ln2(x))))

    class CharGPT(nn.Module):
        def __init__(self, vocab, dim, layers, heads, ctx):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(ctx, dim)
            self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
            self.ln_f = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, vocab, bias=False)
            mask = torch.triu(torch.full((ctx, ctx), -1e9), diagonal=1)
            self.register_buffer("mask", mask)
            self.register_buffer("pos", torch.arange(ctx))
            # init as Kiln's: weights N(0, 1/fan_in), embeddings N(0, 1/50), biases 0
            with torch.no_grad():
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        m.weight.normal_(0.0, m.in_features**-0.5)
                        if m.bias is not None:
                            m.bias.zero_()
                self.wte.weight.normal_(0.0, 50**-0.5)
                self.wpe.weight.normal_(0.0, 50**-0.5)

        def forward(self, tokens):
            t = tokens.shape[1]
            x = self.wte(tokens) + self.wpe(self.pos[:t])
            for blk in self.blocks:
                x = blk(x, self.mask[:t, :t])
            return self.head(self.ln_f(x))

    return CharGPT


def make_transformer():
    return _transformer_classes()(TF_VOCAB, TF_DIM, TF_LAYERS, TF_HEADS, TF_CONTEXT)


def transformer_data(batch, n_batches=N_BATCHES, seed=SEED):
    """Random token streams from a fixed seed; targets are the inputs shifted by one."""
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(0, TF_VOCAB, (batch, TF_CONTEXT + 1), generator=g) for _ in range(n_batches)]
    return [s[:, :-1].contiguous() for s in seqs], [s[:, 1:].contiguous() for s in seqs]


def bench_model(name, spec, model, data, args):
    batch, steps, warmup, repeats = spec
    if args.quick:
        steps, warmup, repeats = max(steps // 10, 3), max(warmup // 5, 1), 2
    rate = Trainer(None, batch, model=model, data=lambda: data(batch)).steps_per_s(steps, warmup, repeats)
    return [emit(f"bench={name} backend=torch steps_per_s={rate:.1f}")]


def bench_cnn(args):
    return bench_model("cnn", CNN_SPEC, make_cnn, cnn_data, args)


def bench_transformer(args):
    return bench_model("transformer", TRANSFORMER_SPEC, make_transformer, transformer_data, args)


# ---------------------------------------------------------------------------
# Matmul

MATMUL_SIZES = (256, 512, 1024, 2048)


def time_matmul(n, repeats, min_time):
    """Median GFLOP/s over `repeats`; each repeat runs enough calls to last >= min_time s."""
    g = torch.Generator().manual_seed(SEED + n)
    a = torch.randn(n, n, generator=g, dtype=torch.float32)
    b = torch.randn(n, n, generator=g, dtype=torch.float32)
    c = torch.empty(n, n, dtype=torch.float32)
    torch.mm(a, b, out=c)  # warm-up (thread pool, allocations)
    # calibrate the number of calls per repeat
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=c)
        dt = time.perf_counter() - t0
        if dt >= min_time or calls >= 1 << 16:
            break
        calls = max(calls * 2, int(calls * min_time / max(dt, 1e-9)) + 1)
    flops = 2.0 * n**3 * calls
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=c)
        rates.append(flops / (time.perf_counter() - t0) / 1e9)
    print(f"  n={n} calls/repeat={calls} gflops={[round(r, 1) for r in rates]}", file=sys.stderr)
    return statistics.median(rates)


def bench_matmul(args):
    repeats, min_time = (3, 0.05) if args.quick else (7, 0.2)
    lines = []
    for n in args.sizes or MATMUL_SIZES:
        gf = time_matmul(n, repeats, min_time)
        lines.append(emit(f"bench=matmul backend=torch n={n} gflops={gf:.1f}"))
    return lines


# ---------------------------------------------------------------------------
# SmolLM2-135M training step (transformers' LlamaForCausalLM, the reference Kiln's zoo::Llama
# matches; the same configuration and N(0, initializer_range) init, batch 4 x 128 random tokens,
# AdamW with weight decay 0.1 on matrices, betas 0.9/0.95)


def smollm2_135m_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
        rope_theta=100000.0, tie_word_embeddings=True, max_position_embeddings=8192,
        initializer_range=0.041666666666666664, attention_bias=False, mlp_bias=False,
    )


def bench_smollm2_135m(args):
    import resource

    from transformers import LlamaForCausalLM

    torch.manual_seed(SEED)
    model = LlamaForCausalLM(smollm2_135m_config()).float().train()
    params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    batch, seq = 4, 128
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, 49152, (batch, seq + 1), generator=g)
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    times = []
    for _ in range(2 if args.quick else 5):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"  smollm2-135m: {params} parameters, step times {[round(t, 3) for t in times]} s", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [
        emit(f"bench=smollm2-135m backend=torch batch={batch} seq={seq} steps_per_s={1 / med:.4f} "
             f"tokens_per_s={batch * seq / med:.1f}"),
        emit(f"bench=smollm2-135m backend=torch batch={batch} seq={seq} peak_rss_bytes={rss}"),
    ]


# name -> function(args) -> list of printed lines. `all` runs them in this order.
BENCHMARKS = {
    "mlp-small": bench_mlp_small,
    "mlp-large": bench_mlp_large,
    "cnn": bench_cnn,
    "transformer": bench_transformer,
    "matmul": bench_matmul,
    "smollm2-135m": bench_smollm2_135m,
}


# ---------------------------------------------------------------------------
# Cold start


def run_cold_start():
    """Import torch, build mlp-small, run ONE training step, exit.

    The caller times the whole process from spawn to exit. Nothing goes to stdout.
    """
    _import_torch()
    sizes, batch, _, _, _ = MLP_SPECS["mlp-small"]
    loss = Trainer(sizes, batch).step()
    if loss != loss:
        print("cold-start: loss is NaN", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "benches",
        nargs="*",
        default=["all"],
        metavar="BENCH",
        help=f"one or more of: {', '.join(BENCHMARKS)}, all (default: all)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) (default: torch's default)")
    p.add_argument("--quick", action="store_true", default=os.environ.get("KILN_PEERS_QUICK", "") not in ("", "0"),
                   help="few short repeats, for smoke tests (also KILN_PEERS_QUICK=1); not the defined figures")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="matmul sizes (default: 256 512 1024 2048)")
    p.add_argument("--cold-start", action="store_true", help="import torch, build mlp-small, one step, exit")
    args = p.parse_args(argv)
    for b in args.benches:
        if b != "all" and b not in BENCHMARKS:
            p.error(f"unknown benchmark {b!r}; choose from {', '.join(BENCHMARKS)}, all")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.cold_start:
        if args.threads:
            _import_torch()
            torch.set_num_threads(args.threads)
        return run_cold_start()

    _import_torch()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} threads={torch.get_num_threads()} "
        f"interop_threads={torch.get_num_interop_threads()}" + (" (quick mode)" if args.quick else ""),
        file=sys.stderr,
    )
    names = list(BENCHMARKS) if "all" in args.benches else list(dict.fromkeys(args.benches))
    for name in names:
        print(f"[{name}]", file=sys.stderr)
        BENCHMARKS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
