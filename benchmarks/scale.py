"""Streaming scale: score a 10-million-row Parquet file with bounded memory.

Generates a wide mixed table (numeric columns driven by a few latent factors, a few categorical
columns tied to them, some missing values, 0.1 % planted anomalies) in chunks with pyarrow's
``ParquetWriter``, trains an :class:`genaug.AnomalyDetector` on a bounded random sample
(``genaug.subsample.sample_parquet``, the ``max_train_rows`` path), then scores the whole file with
:func:`genaug.scoring.score_file` (the path of the batch job) and, for comparison, with
scikit-learn's ``IsolationForest`` fitted on the same sample and fed the file batch by batch.
The 1-million-row file is scored too, to show that peak memory does not grow with file size.

Every scoring phase runs in its own child process, which reports its peak resident memory
(``VmHWM`` of ``/proc/self/status``), so phases cannot inflate each other's peak, and its CPU
seconds (all threads) beside the wall-clock time: on a shared machine the wall-clock rate
depends on the other load (the load average is printed before and after), the CPU cost per row
much less.

    python benchmarks/scale.py                                  # 10M + 1M rows, 20 columns
    python benchmarks/scale.py --rows 1000000 --phases genaug,iforest
    python benchmarks/scale.py --workdir /data/genaug-scale --threads 2

Files are generated once under ``--workdir`` (default: ``$TMPDIR/genaug-scale``) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_RATE = 200_000
TARGET_RSS_GB = 1.5
N_CATEGORICAL = 4
LEVELS = [["a", "b", "c"], ["north", "south", "east", "west", "centre"],
          ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"], ["yes", "no"]]
PHASES = ("genaug", "iforest", "small")


# ----------------------------------------------------------------------------- data
def _chunk(rng: np.random.Generator, n: int, cols: int, start: int) -> dict[str, np.ndarray]:
    """``n`` rows: numerics = latent factors x loadings + noise, categoricals tied to them."""
    n_cat = min(N_CATEGORICAL, max(cols - 1, 0))
    n_num = cols - n_cat
    load = np.random.default_rng(12345).normal(0, 1, (3, n_num))  # same loadings in every chunk
    f = rng.normal(0, 1, (n, 3))
    num = f @ load + rng.normal(0, 0.3, (n, n_num))
    anomalous = rng.random(n) < 0.001
    num[anomalous] += rng.normal(0, 4, (int(anomalous.sum()), n_num))
    out: dict[str, np.ndarray] = {}
    for j in range(n_num):
        x = num[:, j]
        if j == 1:
            x = np.where(rng.random(n) < 0.02, np.nan, x)  # one column with missing values
        if j == 2:
            x = np.round(np.exp(x / 2) * 100)  # a skewed, integer-valued amount
        out[f"num{j:02d}"] = x
    for j in range(n_cat):
        lv = np.asarray(LEVELS[j % len(LEVELS)], dtype=object)
        z = f[:, j % 3] + rng.normal(0, 0.5, n)
        idx = np.clip(((z + 2) / 4 * len(lv)).astype(int), 0, len(lv) - 1)
        flip = rng.random(n) < 0.05
        idx[flip] = rng.integers(0, len(lv), int(flip.sum()))
        out[f"cat{j}"] = lv[idx]
    out["row_id"] = np.arange(start, start + n, dtype=np.int64)
    return out


def generate(path: Path, rows: int, cols: int, seed: int = 0, chunk: int = 250_000) -> Path:
    """Write ``rows`` x ``cols`` (+ a ``row_id`` key) to ``path`` chunk by chunk; reuse it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        try:
            if pq.ParquetFile(path).metadata.num_rows == rows:
                return path
        except Exception:  # a half-written file from an interrupted run: write it again
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, chunk):
            data = _chunk(rng, min(chunk, rows - start), cols, start)
            table = pa.table(data)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=chunk)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- child phases
def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase_genaug(data: Path, model: Path, out: Path, threads: int, batch_rows: int) -> dict:
    from genaug import AnomalyDetector
    from genaug.scoring import score_file

    det = AnomalyDetector.load(model, device="cpu")
    # torch's intra-op threads for the VAEs; score_file adds its reader, forest and writer
    # threads (spawn() sets OMP_WAIT_POLICY=PASSIVE so idle OpenMP threads sleep, not spin)
    det.n_threads = threads
    warm = np.zeros((8, det.dims_["n_features"]), np.float32)
    det.forest_.score(warm, n_threads=1)  # numba compiles (or loads its cache) once per process
    t0, c0 = time.perf_counter(), time.process_time()
    res = score_file(data, det, out, key_column="row_id", batch_rows=batch_rows)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.unlink()
    return {"rows": res.n_rows, "seconds": seconds, "cpu": cpu, "flagged": res.n_flagged,
            "score_psi": res.drift.score_psi if res.drift else None}


def _phase_iforest(data: Path, model: Path, out: Path, threads: int, batch_rows: int) -> dict:
    import pyarrow.parquet as pq
    from sklearn.ensemble import IsolationForest

    from genaug.subsample import sample_parquet

    meta = json.loads((model / "iforest.json").read_text())
    sample = sample_parquet(data, meta["train_rows"], random_state=0,
                            columns=meta["numeric"] + meta["categorical"])
    levels = {c: sorted(sample[c].dropna().unique()) for c in meta["categorical"]}

    def encode(df):
        import pandas as pd

        parts = [df[meta["numeric"]].to_numpy(dtype=np.float32)]
        parts += [pd.Categorical(df[c], categories=levels[c]).codes[:, None].astype(np.float32)
                  for c in meta["categorical"]]
        x = np.hstack(parts)
        return np.where(np.isnan(x), np.float32(-1e6), x)  # sklearn rejects NaN: a sentinel

    iso = IsolationForest(n_estimators=100, random_state=0, n_jobs=threads)
    iso.fit(encode(sample))
    del sample
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for batch in pq.ParquetFile(data, pre_buffer=False).iter_batches(batch_size=batch_rows):
        scores = -iso.score_samples(encode(batch.to_pandas()))
        n += len(scores)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rows": n, "seconds": seconds, "cpu": cpu, "flagged": None, "score_psi": None}


def run_child(args: argparse.Namespace) -> None:
    """Run one phase (in this child process) and print its result as JSON."""
    fn = {"genaug": _phase_genaug, "iforest": _phase_iforest}[args.child]
    res = fn(Path(args.data), Path(args.model), Path(args.out), args.threads, args.batch_rows)
    res["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(res))


def spawn(kind: str, data: Path, model: Path, workdir: Path, threads: int,
          batch_rows: int) -> dict:
    """Run a phase in a fresh Python process; its own peak RSS comes back with the timings."""
    out = workdir / f"{data.stem}.{kind}.scores.parquet"
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(data), "--model", str(model),
           "--out", str(out), "--threads", str(threads), "--batch-rows", str(batch_rows)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"phase {kind} on {data.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][7:])


# ----------------------------------------------------------------------------- training
def train(data: Path, model: Path, max_train_rows: int) -> dict:
    """Fit the detector on a bounded random sample of ``data``; note what IsolationForest needs."""
    from genaug import AnomalyDetector
    from genaug.subsample import sample_parquet

    t0 = time.perf_counter()
    sample = sample_parquet(data, max_train_rows, random_state=0)
    t_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    det = AnomalyDetector(random_state=0, n_threads=1, exclude_columns=("row_id",))
    det.fit(sample, file=str(data))
    t_fit = time.perf_counter() - t0
    det.save(model)
    cats = [c for c in sample.columns if c.startswith("cat")]
    nums = [c for c in sample.columns if c.startswith("num")]
    (model / "iforest.json").write_text(json.dumps(
        {"train_rows": max_train_rows, "numeric": nums, "categorical": cats}))
    return {"sample_rows": len(sample), "sample_seconds": t_sample, "fit_seconds": t_fit}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of the large file")
    p.add_argument("--small-rows", type=int, default=1_000_000,
                   help="rows of the small file (phase 'small')")
    p.add_argument("--cols", type=int, default=20, help="feature columns (4 categorical)")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "genaug-scale"))
    p.add_argument("--threads", type=int, default=2, help="CPU threads of each scoring phase")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {PHASES}")
    p.add_argument("--max-train-rows", type=int, default=50_000)
    p.add_argument("--batch-rows", type=int, default=65536)
    p.add_argument("--child", choices=("genaug", "iforest"), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    phases = [s.strip() for s in args.phases.split(",") if s.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        p.error(f"unknown phases {unknown}; choose from {PHASES}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    big = work / f"scale_{args.rows}x{args.cols}.parquet"
    small = work / f"scale_{args.small_rows}x{args.cols}.parquet"
    print(f"genaug scale benchmark: {args.rows:,} rows x {args.cols} columns, "
          f"{args.threads} thread(s), batches of {args.batch_rows:,} rows, workdir {work}")
    print(f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    generate(big, args.rows, args.cols)
    if "small" in phases:
        generate(small, args.small_rows, args.cols, seed=1)
    print(f"data ready in {time.perf_counter() - t0:.1f} s "
          f"({big.stat().st_size / 1e6:,.0f} MB for the large file)")
    model = work / f"model_{args.cols}_{args.max_train_rows}"
    fit = train(big, model, args.max_train_rows)
    print(f"trained on a random sample of {fit['sample_rows']:,} rows "
          f"(sampling {fit['sample_seconds']:.1f} s, fit {fit['fit_seconds']:.1f} s)")

    results: list[tuple[str, str, dict]] = []
    for phase in phases:
        kind = "iforest" if phase == "iforest" else "genaug"
        data = small if phase == "small" else big
        res = spawn(kind, data, model, work, args.threads, args.batch_rows)
        label = "genaug score_file" if kind == "genaug" else "sklearn IsolationForest"
        results.append((label, data.name, res))
        print(f"  {label:<24} {res['rows']:>11,} rows  {res['seconds']:8.1f} s  "
              f"{res['rows'] / res['seconds']:>10,.0f} rows/s  CPU {res['cpu']:.1f} s  peak RSS "
              f"{res['peak_rss_mb']:,.0f} MB", flush=True)

    print()
    print("| method | file rows | seconds | rows/s | CPU seconds | rows per CPU second "
          "| peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, _, r in results:
        print(f"| {label} | {r['rows']:,} | {r['seconds']:.1f} | "
              f"{r['rows'] / r['seconds']:,.0f} | {r['cpu']:.1f} | {r['rows'] / r['cpu']:,.0f} "
              f"| {r['peak_rss_mb']:,.0f} |")
    print()
    by = {(lab, r["rows"]): r for lab, _, r in results}
    g_big = by.get(("genaug score_file", args.rows))
    g_small = by.get(("genaug score_file", args.small_rows))
    iso = by.get(("sklearn IsolationForest", args.rows))
    checks = []
    if g_big:
        rate = g_big["rows"] / g_big["seconds"]
        checks.append((f">= {TARGET_RATE:,} rows/s on {args.threads} cores",
                       f"{rate:,.0f} rows/s", rate >= TARGET_RATE))
        checks.append((f"peak RSS < {TARGET_RSS_GB} GB", f"{g_big['peak_rss_mb']:,.0f} MB",
                       g_big["peak_rss_mb"] < TARGET_RSS_GB * 1024))
        if iso:
            irate = iso["rows"] / iso["seconds"]
            checks.append(("rows/s >= IsolationForest's", f"{rate:,.0f} vs {irate:,.0f}",
                           rate >= irate))
        if g_small:
            checks.append((f"peak RSS of {args.small_rows:,} rows <= of {args.rows:,}",
                           f"{g_small['peak_rss_mb']:,.0f} MB vs {g_big['peak_rss_mb']:,.0f} MB",
                           g_small["peak_rss_mb"] <= g_big["peak_rss_mb"]))
            ratio = g_big["peak_rss_mb"] / g_small["peak_rss_mb"]
            checks.append((f"bounded: peak RSS {args.rows:,} / {args.small_rows:,} rows <= 1.1",
                           f"{ratio:.2f} for {args.rows / args.small_rows:g}x the rows",
                           ratio <= 1.1))
    print("| target | measured | met |")
    print("|---|---|---|")
    for name, value, ok in checks:
        print(f"| {name} | {value} | {'yes' if ok else 'NO'} |")
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
