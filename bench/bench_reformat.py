"""Reformat throughput on the demo corpus: prints conversations/s (a figure, not a test).

    python bench/bench_reformat.py [--n 10000] [--n-proc 2]
"""
import argparse, resource, tempfile, time
from pathlib import Path
from mirastral.demo import write_demo_corpus
from mirastral.data import reformat
from mirastral.schema import available_cores

p = argparse.ArgumentParser()
p.add_argument('--n', type=int, default=10_000, help='demo sessions to generate')
p.add_argument('--n-proc', type=int, default=None, help='worker processes (default: the cores this job may use)')
a = p.parse_args()
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    write_demo_corpus(Path(d)/'raw', n=a.n)
    gen = time.perf_counter() - t0
    cpu = lambda: sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
                      for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    c0 = cpu()
    rep = reformat(Path(d)/'raw', Path(d)/'out', n_proc=a.n_proc, progress=False)
    cpu_s = cpu() - c0
t = rep['totals']
print(f"demo corpus: {a.n} sessions generated in {gen:.1f} s")
print(f"reformat: {t['read']} records ({t['tokens']:,} tokens) in {rep['seconds']:.1f} s on "
      f"{a.n_proc or available_cores()} process(es) = {rep['conversations_per_s']:,.0f} conversations/s; "
      f"kept {t['kept']}, rejected {t['rejected']}, duplicates {t['duplicates']}")
print(f"CPU time: {cpu_s:.1f} s = {t['read'] / cpu_s:,.0f} conversations per CPU-second "
      "(wall-clock figures depend on what else the machine runs; this one much less)")
