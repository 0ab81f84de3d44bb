#!/usr/bin/env python3
"""Tests for compare.py with canned output and fake commands (no cargo, no torch).

    python3 benches/peers/test_compare.py
"""

import contextlib
import io
import os
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

FAKE = textwrap.dedent(
    """
    import sys, time
    mode = sys.argv[1]
    if mode == "kiln-train":
        print("some log line")
        print("bench=mlp-small backend=cpu steps_per_s=1500.0")
        print("bench=mlp-large backend=cpu async=1 steps_per_s=40")
    elif mode == "kiln-models":
        print("bench=cnn backend=cpu steps_per_s=300")
        print("bench=cnn backend=cpu peak_plan_bytes=3050908 rss_bytes=7708672 launches=53")
        print("bench=transformer backend=cpu steps_per_s=40")
    elif mode == "torch-models":
        print("bench=cnn backend=torch steps_per_s=200")
        print("bench=transformer backend=torch steps_per_s=50")
    elif mode == "kiln-matmul":
        for n, g in ((256, 90), (1024, 120.5), (2048, 100)):
            print(f"bench=matmul backend=cpu n={n} gflops={g}")
    elif mode == "torch-mlp":
        print("bench=mlp-small backend=torch steps_per_s=600")
        print("bench=mlp-large backend=torch steps_per_s=30")
    elif mode == "torch-matmul":
        for n, g in ((256, 100), (1024, 140), (2048, 130)):
            print(f"bench=matmul backend=torch n={n} gflops={g}")
    elif mode == "numpy-matmul":
        print("bench=matmul backend=numpy n=1024 gflops=143")
        print("bench=matmul backend=numpy n=2048 gflops=148")
    elif mode == "kiln-llm":
        print("bench=smollm2-135m backend=cpu batch=4 seq=128 steps_per_s=0.25 tokens_per_s=128")
    elif mode == "torch-llm":
        print("bench=smollm2-135m backend=torch batch=4 seq=128 steps_per_s=0.2 tokens_per_s=102.4")
    elif mode == "sleep":
        time.sleep(float(sys.argv[2]))
    elif mode == "fail":
        print("error: no bench target named `train_step`", file=sys.stderr)
        sys.exit(101)
    elif mode == "silent":
        pass
    """
)


def by_figure(rows):
    return {(compare.figure_name(r.figure), r.peer): r for r in rows}


class ParseTest(unittest.TestCase):
    def test_lines(self):
        s = compare.parse_line("bench=matmul backend=cpu n=1024 gflops=150.2")
        self.assertEqual((s.bench, s.ident, s.backend, s.metric, s.value), ("matmul", (("n", "1024"),), "cpu", "gflops", 150.2))
        s = compare.parse_line("  bench=mlp-small backend=torch steps_per_s=1234.5\n")
        self.assertEqual((s.bench, s.ident, s.metric, s.value), ("mlp-small", (), "steps_per_s", 1234.5))
        # extra annotations do not split the figure
        s = compare.parse_line("bench=mlp-small backend=cpu threads=2 async=1 steps_per_s=7")
        self.assertEqual((s.ident, s.value, s.notes), ((), 7.0, (("threads", "2"), ("async", "1"))))
        # unknown metric name: last numeric field
        s = compare.parse_line("bench=foo backend=cpu n=3 widgets=2.5")
        self.assertEqual((s.ident, s.metric, s.value), ((("n", "3"),), "widgets", 2.5))

    def test_non_lines(self):
        for line in ["", "Running benches/matmul.rs", "bench=x", "bench=x backend=cpu", "bench=x backend=cpu note",
                     "benchmark=1 backend=cpu v=1", "bench=x backend=cpu v=abc"]:
            self.assertIsNone(compare.parse_line(line), line)

    def test_parse_output(self):
        out = "warming up\nbench=matmul backend=cpu n=256 gflops=1\ngarbage\nbench=matmul backend=cpu n=512 gflops=2\n"
        self.assertEqual([s.value for s in compare.parse_output(out)], [1.0, 2.0])


class CompareTest(unittest.TestCase):
    def results(self, text_by_round):
        r = compare.Results()
        for rnd, text in enumerate(text_by_round, 1):
            r.add(rnd, compare.parse_output(text))
        return r

    def test_medians_ratios_targets(self):
        rounds = [
            "bench=mlp-small backend=cpu steps_per_s=1000\nbench=mlp-small backend=torch steps_per_s=600",
            "bench=mlp-small backend=cpu steps_per_s=1400\nbench=mlp-small backend=torch steps_per_s=500",
            "bench=mlp-small backend=cpu steps_per_s=1300\nbench=mlp-small backend=torch steps_per_s=900",
            "bench=matmul backend=cpu n=1024 gflops=120\nbench=matmul backend=numpy n=1024 gflops=140\n"
            "bench=matmul backend=torch n=1024 gflops=150\n"
            "bench=matmul backend=cpu n=2048 gflops=100\nbench=matmul backend=numpy-openblas n=2048 gflops=150",
        ]
        r = self.results(rounds)
        r.add(5, [compare.Sample("cold-start", (), "cpu", "seconds", v) for v in (0.01, 0.02, 0.09)])
        rows = by_figure(compare.compare(r))
        small = rows[("mlp-small", "torch")]
        self.assertEqual((small.kiln, small.peer_med), (1300, 600))
        self.assertAlmostEqual(small.ratio, 1300 / 600)
        self.assertEqual(small.status, "PASS")
        m1024 = rows[("matmul n=1024", "numpy")]
        self.assertAlmostEqual(m1024.ratio, 120 / 140)
        self.assertEqual(m1024.status, "PASS")
        # numpy-openblas counts as the numpy peer
        m2048 = rows[("matmul n=2048", "numpy")]
        self.assertAlmostEqual(m2048.ratio, 100 / 150)
        self.assertEqual(m2048.status, "FAIL")
        self.assertNotIn(("matmul n=2048", "numpy-openblas"), rows)
        # torch matmul: informational
        self.assertEqual(rows[("matmul n=1024", "torch")].status, "info")
        # mlp-large: no data at all -> MISSING
        self.assertEqual(rows[("mlp-large", "torch")].status, "MISSING")
        # cold start: median 0.02 <= 0.05, no torch data
        cold = rows[("cold-start", "torch")]
        self.assertEqual((cold.kiln, cold.peer_med, cold.ratio, cold.status), (0.02, None, None, "PASS"))

    def test_extra_metric_lines_do_not_mix(self):
        # train_step prints a memory/launches line per model after its steps/s line
        rounds = [
            "bench=mlp-small backend=cpu steps_per_s=1000\n"
            "bench=mlp-small backend=cpu peak_plan_bytes=529308 rss_bytes=5115904 launches=24\n"
            "bench=mlp-small backend=torch steps_per_s=500",
        ]
        rows = by_figure(compare.compare(self.results(rounds)))
        small = rows[("mlp-small", "torch")]
        self.assertEqual((small.kiln_vals, small.peer_med), ([1000], 500))

    def test_fail_and_formatting(self):
        r = self.results(["bench=mlp-small backend=cpu steps_per_s=1000\nbench=mlp-small backend=torch steps_per_s=600"])
        r.add(1, [compare.Sample("cold-start", (), "cpu", "seconds", 0.2), compare.Sample("cold-start", (), "torch", "seconds", 4.0)])
        rows = compare.compare(r)
        st = {compare.figure_name(x.figure): x.status for x in rows}
        self.assertEqual(st["mlp-small"], "FAIL")  # 1.67x < 2x
        self.assertEqual(st["cold-start"], "FAIL")  # 0.2 s > 0.05 s
        text = compare.format_text(rows)
        self.assertIn("1.67x", text)
        md = compare.format_markdown(rows, "meta")
        self.assertIn("| mlp-small (steps/s) | 1,000 | torch | 600 | 1.67x | >= 2x torch | **FAIL** |", md)


class EndToEndTest(unittest.TestCase):
    """Runs main() with every command replaced by a fake script."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.fake = os.path.join(cls.tmp.name, "fake.py")
        with open(cls.fake, "w") as f:
            f.write(FAKE)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def cmd(self, name, mode=None):
        return ["--cmd", f"{name}={sys.executable} {self.fake} {mode or name}"]

    def run_main(self, extra):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = compare.main(["--no-build", "--rounds", "2", "--cold-runs", "2"] + extra)
        return rc, out.getvalue(), err.getvalue()

    def test_all_fake(self):
        extra = []
        for n in ("kiln-train", "kiln-models", "kiln-matmul", "torch-mlp", "torch-models", "torch-matmul",
                  "numpy-matmul", "kiln-llm", "torch-llm"):
            extra += self.cmd(n)
        extra += ["--cmd", "kiln-cold=true", "--cmd", "torch-cold=sleep 0.2"]
        rc, out, err = self.run_main(extra)
        self.assertEqual(rc, 0, err)
        if os.environ.get("SHOW"):
            sys.__stderr__.write("\n" + out)
        self.assertRegex(out, r"mlp-small \(steps/s\) +1,500 +torch +600 +2\.50x +>= 2x torch +PASS")
        self.assertRegex(out, r"mlp-large \(steps/s\) +40\.0 +torch +30\.0 +1\.33x +>= 1.2x torch +PASS")
        self.assertRegex(out, r"matmul n=1024 \(GFLOP/s\) +120 +numpy +143 +0\.84x +>= 0.8x numpy +PASS")
        self.assertRegex(out, r"matmul n=2048 \(GFLOP/s\) +100 +numpy +148 +0\.68x +>= 0.8x numpy +FAIL")
        self.assertRegex(out, r"matmul n=1024 \(GFLOP/s\) +120 +torch +140 +0\.86x +info")
        self.assertRegex(out, r"matmul n=256 \(GFLOP/s\) +90\.0 +torch +100 +0\.90x +info")
        self.assertRegex(out, r"cold-start \(s\) +0\.0\d+ .*torch +0\.2\d* .*<= 0.05 s +PASS")
        # the CNN and transformer have no target: info rows with the kiln/torch ratio
        self.assertRegex(out, r"cnn \(steps/s\) +300 +torch +200 +1\.50x +info")
        self.assertRegex(out, r"transformer \(steps/s\) +40\.0 +torch +50\.0 +0\.80x +info")
        # the SmolLM2-135M step: steps/s (the preferred metric), target 1.0x torch
        self.assertRegex(out, r"smollm2-135m batch=4 seq=128 \(steps/s\) +0\.250 +torch +0\.200 +1\.25x")
        self.assertNotIn("Errors", out)

    def test_only_models(self):
        # --only models: the CNN/transformer info rows, and no MISSING rows for the groups not run
        extra = self.cmd("kiln-models") + self.cmd("torch-models")
        rc, out, err = self.run_main(extra + ["--only", "models", "--markdown"])
        self.assertEqual(rc, 0, err)
        self.assertIn("| cnn (steps/s) | 300 | torch | 200 | 1.50x |  | info |", out)
        self.assertIn("| transformer (steps/s) | 40.0 | torch | 50.0 | 0.80x |  | info |", out)
        self.assertNotIn("MISSING", out)
        self.assertNotIn("mlp-small", out)

    def test_missing_and_failing_kiln(self):
        extra = ["--cmd", "kiln-train=" + f"{sys.executable} {self.fake} fail",
                 "--cmd", "kiln-matmul=/nonexistent/cargo bench",
                 "--cmd", "kiln-cold=target/release/examples/definitely_not_built",
                 "--cmd", "numpy-matmul=", "--cmd", "kiln-models=", "--cmd", "torch-models=",
                 "--cmd", "torch-matmul=" + f"{sys.executable} {self.fake} silent"]
        extra += self.cmd("torch-mlp") + self.cmd("torch-cold", "sleep 0.01")
        rc, out, err = self.run_main(extra + ["--markdown"])
        self.assertEqual(rc, 0)
        self.assertIn("| mlp-small (steps/s) | — | torch | 600 | — | >= 2x torch | MISSING |", out)
        self.assertIn("| matmul n=1024 (GFLOP/s) | — | numpy | — | — | >= 0.8x numpy | MISSING |", out)
        self.assertIn("Errors:", out)
        self.assertIn("kiln-train: `", out)
        self.assertIn("exit status 101", out)
        self.assertIn("command not found: /nonexistent/cargo", out)
        self.assertIn("definitely_not_built", out)
        self.assertIn("no `bench=` lines", out)
        # failing jobs are not retried in round 2: one error each
        self.assertEqual(out.count("kiln-train: `"), 1)
        self.assertIn("not run again", err)


if __name__ == "__main__":
    unittest.main()
