#!/usr/bin/env python3
"""Run Kiln's CPU benchmarks and its peers (PyTorch, NumPy) interleaved, and compare.

Stdlib only; runs with the system python3. From the repository root:

    python3 benches/peers/compare.py                   # 3 rounds, text report
    python3 benches/peers/compare.py --rounds 5 --markdown > /tmp/table.md
    python3 benches/peers/compare.py --only mlp --quick --no-build   # smoke test

Every benchmark prints lines `bench=NAME backend=B [n=N ...] METRIC=VALUE`.
Each round runs Kiln then the peer for each group (A B A B ...), so slow drifts
in machine load hit both sides alike. Figures are medians pooled over rounds;
ratios are kiln/peer. Definitions and targets: BENCHMARKS.md.
"""

import argparse
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

# ---------------------------------------------------------------------------
# Configuration: commands (run from the repository root) and targets.

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

KILN_BACKEND = "cpu"  # the `backend=` value Kiln's CPU lines carry
KILN_BUILD_CMDS = [
    "cargo bench --no-run",
    "cargo build --release --example cold_start",
]
KILN_TRAIN_CMD = "cargo bench -q --bench train_step -- --backend cpu --model mlp-small --model mlp-large"
# The CNN and transformer have no target in BENCHMARKS.md: they show as `info` rows with kiln/torch.
KILN_MODELS_CMD = "cargo bench -q --bench train_step -- --backend cpu --model cnn --model transformer"
KILN_MATMUL_CMD = "cargo bench -q --bench matmul"
# One SmolLM2-135M training step (batch 4 x 128 tokens, AdamW) against transformers' LlamaForCausalLM.
KILN_LLM_CMD = "cargo bench -q --bench llm_step -- --backend cpu --config smollm2-135m"
KILN_COLD_CMD = "target/release/examples/cold_start --backend cpu"

DEFAULT_PYTHON = "/opt/peers/bin/python"  # has torch (and numpy); --python
TORCH_SCRIPT = "benches/peers/torch_bench.py"
NUMPY_PYTHON = "python3"  # --numpy-python
NUMPY_SCRIPT = "benches/peers/matmul_numpy.py"  # optional; skipped if absent

DEFAULT_ROUNDS = 3
DEFAULT_COLD_RUNS = 5  # spawn-to-exit timings per side per round
DEFAULT_TIMEOUT = 1800  # seconds per command

# Keys that identify a figure besides `bench` (e.g. matmul n); other non-metric
# keys (threads=, async=, ...) are kept as notes and do not split figures.
ID_KEYS = ("n", "m", "k", "size", "seq", "model", "batch", "variant")
# Keys that carry the measured value, in order of preference.
METRIC_KEYS = ("steps_per_s", "gflops", "seconds", "ms", "us", "tokens_per_s", "samples_per_s", "images_per_s")
LOWER_IS_BETTER = ("seconds", "ms", "us")


class Target:
    """kind 'ratio': median(kiln)/median(peer) >= value. kind 'max': median(kiln) <= value."""

    def __init__(self, bench, ident, metric, kind, value, peer=None, label=""):
        self.bench, self.ident, self.metric = bench, ident, metric
        self.kind, self.value, self.peer, self.label = kind, value, peer, label

    @property
    def figure(self):
        return (self.bench, self.ident)


# From BENCHMARKS.md, "Targets for Kiln", CPU backend. (The "mlp-small >= Burn flex"
# target needs the Burn peer, which this runner does not run.)
TARGETS = [
    Target("mlp-small", (), "steps_per_s", "ratio", 2.0, peer="torch", label=">= 2x torch"),
    Target("mlp-large", (), "steps_per_s", "ratio", 1.2, peer="torch", label=">= 1.2x torch"),
    Target("matmul", (("n", "1024"),), "gflops", "ratio", 0.8, peer="numpy", label=">= 0.8x numpy"),
    Target("matmul", (("n", "2048"),), "gflops", "ratio", 0.8, peer="numpy", label=">= 0.8x numpy"),
    Target("cold-start", (), "seconds", "max", 0.05, peer="torch", label="<= 0.05 s"),
    Target("smollm2-135m", (("batch", "4"), ("seq", "128")), "steps_per_s", "ratio", 1.0, peer="torch",
           label=">= 1.0x torch"),
]

# ---------------------------------------------------------------------------
# Parsing


class Sample:
    __slots__ = ("bench", "ident", "backend", "metric", "value", "notes")

    def __init__(self, bench, ident, backend, metric, value, notes=()):
        self.bench, self.ident, self.backend = bench, tuple(ident), backend
        self.metric, self.value, self.notes = metric, float(value), tuple(notes)

    @property
    def figure(self):
        return (self.bench, self.ident)

    def __repr__(self):
        return f"Sample({self.bench}, {self.ident}, {self.backend}, {self.metric}={self.value})"


def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_line(line):
    """Parse one `bench=... key=value ...` line into a Sample, or None if it is not one."""
    tokens = line.strip().split()
    if not tokens or not tokens[0].startswith("bench="):
        return None
    fields = []
    for tok in tokens:
        if "=" not in tok:
            return None
        k, v = tok.split("=", 1)
        if not k or not v:
            return None
        fields.append((k, v))
    d = dict(fields)
    bench, backend = d.get("bench"), d.get("backend")
    if backend is None:
        return None
    metric = next((k for k in METRIC_KEYS if k in d and _is_number(d[k])), None)
    if metric is None:  # fall back to the last numeric field that is not an identity key
        cands = [k for k, v in fields if k not in ("bench", "backend") + ID_KEYS and _is_number(v)]
        if not cands:
            return None
        metric = cands[-1]
    ident = tuple((k, v) for k, v in fields if k in ID_KEYS)
    notes = tuple((k, v) for k, v in fields if k not in ("bench", "backend", metric) + ID_KEYS)
    return Sample(bench, ident, backend, metric, d[metric], notes)


def parse_output(text):
    return [s for s in (parse_line(l) for l in text.splitlines()) if s is not None]


def figure_name(figure):
    bench, ident = figure
    return " ".join([bench] + [f"{k}={v}" for k, v in ident])


# ---------------------------------------------------------------------------
# Results and comparison


class Results:
    def __init__(self):
        self.samples = []  # (round, Sample)
        self.errors = []  # (job name, message)

    def add(self, rnd, samples):
        self.samples.extend((rnd, s) for s in samples)

    def values(self, figure, backend_prefix, metric=None):
        """Values of a figure's `metric` (any, if None) from backends equal to, or starting with
        `<prefix>-`, the prefix. Extra lines of a figure (`launches=`, `rss_bytes=`) carry other
        metrics and must not mix into its steps/s."""
        return [
            s.value
            for _, s in self.samples
            if s.figure == figure
            and (metric is None or s.metric == metric)
            and (s.backend == backend_prefix or s.backend.startswith(backend_prefix + "-"))
        ]

    def figures(self):
        seen = {}
        for _, s in self.samples:
            seen.setdefault(s.figure, s.metric)
        return seen  # figure -> metric, in order of first appearance

    def backends(self, figure):
        return list(dict.fromkeys(s.backend for _, s in self.samples if s.figure == figure))


def median(xs):
    return statistics.median(xs) if xs else None


class Row:
    def __init__(self, figure, metric, peer, kiln_vals, peer_vals, target=None):
        self.figure, self.metric, self.peer = figure, metric, peer
        self.kiln_vals, self.peer_vals, self.target = kiln_vals, peer_vals, target
        self.kiln = median(kiln_vals)
        self.peer_med = median(peer_vals)
        self.ratio = self.kiln / self.peer_med if self.kiln is not None and self.peer_med else None

    @property
    def status(self):
        t = self.target
        if t is None:
            return "info"
        if t.kind == "max":
            if self.kiln is None:
                return "MISSING"
            return "PASS" if self.kiln <= t.value else "FAIL"
        if self.ratio is None:
            return "MISSING"
        return "PASS" if self.ratio >= t.value else "FAIL"


def compare(results, kiln_backend=KILN_BACKEND, targets=TARGETS):
    """Rows: one per target (even if data is missing), then every other kiln-vs-peer pair seen."""
    figures = results.figures()
    rows, covered = [], set()
    for t in targets:
        metric = t.metric
        kv = results.values(t.figure, kiln_backend, metric)
        pv = results.values(t.figure, t.peer, metric) if t.peer else []
        rows.append(Row(t.figure, metric, t.peer, kv, pv, t))
        covered.add((t.figure, t.peer))
    for fig, metric in figures.items():
        kv = results.values(fig, kiln_backend, metric)
        peers = [b for b in results.backends(fig) if b != kiln_backend]
        for p in peers:
            if (fig, p) in covered or any(
                (fig, tp) in covered and p.startswith(tp + "-") for tp in [t.peer for t in targets if t.peer]
            ):
                continue
            rows.append(Row(fig, metric, p, kv, results.values(fig, p, metric)))
            covered.add((fig, p))
        if not peers and kv and (fig, None) not in covered:
            rows.append(Row(fig, metric, None, kv, []))
    return sorted(rows, key=_row_order(targets, figures))


def _row_order(targets, figures):
    """Group rows by bench (targets' order first), then by numeric identity (n), target rows first."""
    benches = list(dict.fromkeys([t.bench for t in targets] + [f[0] for f in figures]))

    def ident_key(ident):
        return tuple((k, float(v)) if _is_number(v) else (k, float("inf"), v) for k, v in ident)

    return lambda r: (benches.index(r.figure[0]), ident_key(r.figure[1]), r.target is None)


# ---------------------------------------------------------------------------
# Formatting


def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}" if abs(v) >= 0.01 else f"{v:.4f}"


def fmt_vals(vals):
    if not vals:
        return "—"
    m = fmt(median(vals))
    if len(vals) > 1 and fmt(min(vals)) != fmt(max(vals)):
        return f"{m} [{fmt(min(vals))}–{fmt(max(vals))}]"
    return m


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}x" if r >= 0.01 else f"{r:.2g}x"


UNITS = {"steps_per_s": "steps/s", "gflops": "GFLOP/s", "seconds": "s"}


def table_rows(rows):
    out = []
    for r in rows:
        unit = UNITS.get(r.metric, r.metric)
        out.append(
            [
                f"{figure_name(r.figure)} ({unit})",
                fmt_vals(r.kiln_vals),
                r.peer or "—",
                fmt_vals(r.peer_vals),
                fmt_ratio(r.ratio),
                r.target.label if r.target else "",
                r.status,
            ]
        )
    return out


HEADER = ["figure", "kiln", "peer", "peer value", "kiln/peer", "target", "result"]


def format_text(rows):
    data = [HEADER] + table_rows(rows)
    widths = [max(len(row[i]) for row in data) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in data]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows, meta):
    lines = []
    if meta:
        lines.append(meta)
        lines.append("")
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    for row in table_rows(rows):
        row[-1] = {"PASS": "**pass**", "FAIL": "**FAIL**"}.get(row[-1], row[-1])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Running


class Job:
    """A command that prints bench lines (kind 'lines') or is timed spawn-to-exit (kind 'timed')."""

    def __init__(self, name, cmd, kind="lines", bench=None, backend=None):
        self.name, self.cmd, self.kind, self.bench, self.backend = name, cmd, kind, bench, backend
        self.disabled = None  # reason, after a failure


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _tail(text, n=15):
    lines = (text or "").strip().splitlines()
    return "\n".join("    " + l for l in lines[-n:])


def run_lines(job, timeout):
    """Run a command, return (samples, error message or None)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(shlex.split(job.cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        return [], f"command not found: {e.filename or job.cmd}"
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout} s"
    dt = time.perf_counter() - t0
    samples = parse_output(p.stdout)
    if p.returncode != 0:
        return samples, f"exit status {p.returncode}\n{_tail(p.stderr or p.stdout)}"
    if not samples:
        return [], f"no `bench=` lines in its output\n{_tail(p.stdout + p.stderr)}"
    log(f"    {job.name}: {dt:.1f} s, " + ", ".join(f"{figure_name(s.figure)} {s.metric}={s.value:g}" for s in samples))
    return samples, None


def run_timed(job, timeout):
    """Time one process from spawn to exit. Returns (seconds or None, error or None)."""
    argv = shlex.split(job.cmd)
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=timeout)
        dt = time.perf_counter() - t0
    except FileNotFoundError as e:
        return None, f"command not found: {e.filename or job.cmd}"
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, f"timed out after {timeout} s"
    if p.returncode != 0:
        return None, f"exit status {p.returncode}\n{_tail(err.decode(errors='replace'))}"
    return dt, None


def fail(results, job, msg):
    job.disabled = msg.partition("\n")[0]
    results.errors.append((job.name, f"`{job.cmd}`: {msg}"))
    first, _, rest = msg.partition("\n")
    log(f"    {job.name}: FAILED ({first}); not run again" + (f"\n{rest}" if rest else ""))


def run_group(results, rnd, jobs, args):
    if jobs and jobs[0].kind == "timed":
        # cold starts: A B A B ... cold_runs times
        for _ in range(args.cold_runs):
            for job in jobs:
                if job.disabled:
                    continue
                dt, err = run_timed(job, args.timeout)
                if err:
                    fail(results, job, err)
                else:
                    results.add(rnd, [Sample(job.bench, (), job.backend, "seconds", dt)])
        for job in jobs:
            vals = [s.value for r, s in results.samples if r == rnd and s.bench == job.bench and s.backend == job.backend]
            if vals:
                log(f"    {job.name}: " + " ".join(f"{v:.3f}" for v in vals) + " s")
        return
    for job in jobs:
        if job.disabled:
            continue
        samples, err = run_lines(job, args.timeout)
        results.add(rnd, samples)
        if err:
            fail(results, job, err)


def build_kiln(results, args):
    for cmd in KILN_BUILD_CMDS:
        log(f"build: {cmd}")
        try:
            p = subprocess.run(shlex.split(cmd), cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
        except FileNotFoundError as e:
            results.errors.append(("build", f"`{cmd}`: command not found: {e.filename}"))
            log("    FAILED: command not found")
            continue
        except subprocess.TimeoutExpired:
            results.errors.append(("build", f"`{cmd}`: timed out"))
            continue
        if p.returncode != 0:
            results.errors.append(("build", f"`{cmd}`: exit status {p.returncode}\n{_tail(p.stderr)}"))
            log(f"    FAILED (exit status {p.returncode}); continuing\n{_tail(p.stderr)}")


GROUPS = ("mlp", "models", "matmul", "cold", "llm")
# The group that measures each target's bench: with `--only`, targets of groups not run are left out.
TARGET_GROUP = {"mlp-small": "mlp", "mlp-large": "mlp", "matmul": "matmul", "cold-start": "cold",
                "smollm2-135m": "llm"}
CMD_NAMES = ("kiln-train", "kiln-models", "kiln-matmul", "kiln-cold", "kiln-llm", "torch-mlp", "torch-models",
             "torch-matmul", "torch-cold", "torch-llm", "numpy-matmul")


def default_cmds(args):
    py = shlex.quote(args.python)
    extra = ""
    if args.threads:
        extra += f" --threads {args.threads}"
    if args.quick:
        extra += " --quick"
    cmds = {
        "kiln-train": KILN_TRAIN_CMD,
        "kiln-models": KILN_MODELS_CMD,
        "kiln-matmul": KILN_MATMUL_CMD,
        "kiln-cold": KILN_COLD_CMD,
        "kiln-llm": KILN_LLM_CMD,
        "torch-mlp": f"{py} {TORCH_SCRIPT} mlp-small mlp-large{extra}",
        "torch-models": f"{py} {TORCH_SCRIPT} cnn transformer{extra}",
        "torch-matmul": f"{py} {TORCH_SCRIPT} matmul{extra}",
        "torch-cold": f"{py} {TORCH_SCRIPT} --cold-start" + (f" --threads {args.threads}" if args.threads else ""),
        "torch-llm": f"{py} {TORCH_SCRIPT} smollm2-135m{extra}",
    }
    if os.path.exists(os.path.join(ROOT, NUMPY_SCRIPT)):
        cmds["numpy-matmul"] = f"{shlex.quote(args.numpy_python)} {NUMPY_SCRIPT}"
    return cmds


def make_groups(args):
    cmds = default_cmds(args)
    for spec in args.cmd:
        name, _, cmd = spec.partition("=")
        if name not in CMD_NAMES:
            sys.exit(f"--cmd: unknown name {name!r}; one of {', '.join(CMD_NAMES)}")
        if cmd.strip():
            cmds[name] = cmd
        else:
            cmds.pop(name, None)  # --cmd NAME= disables it
    groups = {
        "mlp": [Job(n, cmds[n]) for n in ("kiln-train", "torch-mlp") if n in cmds],
        "models": [Job(n, cmds[n]) for n in ("kiln-models", "torch-models") if n in cmds],
        "matmul": [Job(n, cmds[n]) for n in ("kiln-matmul", "torch-matmul", "numpy-matmul") if n in cmds],
        "llm": [Job(n, cmds[n]) for n in ("kiln-llm", "torch-llm") if n in cmds],
        "cold": [
            Job(n, cmds[n], "timed", "cold-start", b)
            for n, b in (("kiln-cold", args.kiln_backend), ("torch-cold", "torch"))
            if n in cmds
        ],
    }
    return [(g, groups[g]) for g in GROUPS if g in args.only]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"interleaved rounds (default {DEFAULT_ROUNDS})")
    p.add_argument("--cold-runs", type=int, default=DEFAULT_COLD_RUNS,
                   help=f"cold-start runs per side per round (default {DEFAULT_COLD_RUNS})")
    p.add_argument("--python", default=DEFAULT_PYTHON, help=f"python with torch (default {DEFAULT_PYTHON})")
    p.add_argument("--numpy-python", default=NUMPY_PYTHON, help=f"python for {NUMPY_SCRIPT} (default {NUMPY_PYTHON})")
    p.add_argument("--threads", type=int, default=None, help="pass --threads N to torch_bench.py")
    p.add_argument("--quick", action="store_true", help="pass --quick to torch_bench.py (smoke test only)")
    p.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="groups to run (default: all)")
    p.add_argument("--no-build", action="store_true", help="skip building the Kiln binaries")
    p.add_argument("--kiln-backend", default=KILN_BACKEND, help=f"backend= value of Kiln lines (default {KILN_BACKEND})")
    p.add_argument("--cmd", action="append", default=[], metavar="NAME=COMMAND",
                   help=f"override a command ({', '.join(CMD_NAMES)}); empty COMMAND disables it")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per command")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for benches/RESULTS.md)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    groups = make_groups(args)
    results = Results()
    if not args.no_build:
        build_kiln(results, args)
    t_start = time.time()
    for rnd in range(1, args.rounds + 1):
        log(f"round {rnd}/{args.rounds}")
        for name, jobs in groups:
            log(f"  [{name}]")
            run_group(results, rnd, jobs, args)
    targets = [t for t in TARGETS if TARGET_GROUP.get(t.bench) in args.only]
    rows = compare(results, args.kiln_backend, targets)

    if args.markdown:
        meta = (
            f"{time.strftime('%Y-%m-%d', time.localtime(t_start))}, {platform.node() or 'host'} "
            f"({platform.machine()}, {os.cpu_count()} CPUs), {args.rounds} interleaved rounds, "
            f"medians pooled over rounds [min–max]; kiln/peer ratios of medians."
            + (f" torch threads: {args.threads}." if args.threads else " torch threads: default.")
            + (" QUICK MODE (not the defined figures)." if args.quick else "")
        )
        print(format_markdown(rows, meta))
    else:
        print(format_text(rows))
    if results.errors:
        out = sys.stdout
        print("\nErrors:" if not args.markdown else "\nErrors:\n", file=out)
        for name, msg in results.errors:
            first, _, rest = msg.partition("\n")
            print(f"- {name}: {first}", file=out)
            if rest and not args.markdown:
                print(rest, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
