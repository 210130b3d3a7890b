"""Benchmark big accounts: backfill at the rate-limit bound, flat memory, many clients at once.

Each figure is printed beside its baseline, measured in the same run (never a timed assert):

- backfill of N BTs, simulator at 0.3 s latency and 100 requests/s, vs the rate-limit bound
  (pages / limit) and bare-SDK sequential paging (timed over its first pages, extrapolated);
- the same with no latency and a given limit (--limit), vs its bound;
- peak memory (VmHWM) of a full sync at N (and --memory-sizes; in each of --memory-modes), each
  in its own process, vs a process that only json-parses the same archive into memory (what any
  non-streaming tool holds); below 1M, the per-BT slope extrapolated to 1M;
- 100 clients × 1k BTs with `sync --all --jobs J` (all 100 at once by default; worker processes as
  the CLI chooses them, or --processes P) vs the biggest client synced alone, and the same run
  with `--processes 1` (threads in one process only).

The simulator runs in its own process so it does not share the GIL with the client.

Usage: python bench/bench_backfill.py [--size 100000] [--memory-sizes 200000]
       [--memory-modes transaction,daily,payout]
       [--clients 100 --client-size 1000 --jobs 100 [--processes P]]
       [--skip backfill,memory,clients]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import figures

ACCOUNT = "acct_1BenchAccount01"
KEY = "sk_test_benchKey000000001"
LATENCY = 0.3
LIMIT = 100.0
HERE = Path(__file__).resolve().parent


# -- the simulator, in its own process ------------------------------------------------------------


def _serve(
    accounts: list[tuple[str, str, int]],
    seed: int,
    latency: float,
    rate_limit: float | None,
    ready: Any,
) -> None:
    from beancount_stripe.simulator import SimAccount, Simulator, World, generate_history

    sims = []
    for i, (acct, key, size) in enumerate(accounts):
        history = generate_history(
            account_id=acct,
            seed=seed + i,
            size=size,
            start=datetime.date(2019, 1, 1),
            end=datetime.date(2026, 10, 31),
            currencies=("usd", "eur", "jpy", "bhd"),
        )
        sims.append(SimAccount(id=acct, name=f"Bench {i}", key=key, history=history))
    sim = Simulator(World(sims), latency=latency, rate_limit=rate_limit).start()
    ready.put(sim.url)
    time.sleep(24 * 3600)


class SimProcess:
    """A simulator serving ``accounts`` [(acct, key, size)] from a child process."""

    def __init__(
        self,
        accounts: list[tuple[str, str, int]],
        *,
        latency: float = 0.0,
        rate_limit: float | None = None,
        seed: int = 1,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready = ctx.Queue()
        self.proc = ctx.Process(
            target=_serve,
            args=(accounts, seed, latency, rate_limit, self.ready),
            daemon=True,
        )

    def __enter__(self) -> str:
        self.proc.start()
        return str(self.ready.get(timeout=1800))

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(10)


# -- the measured work, each in its own process (clean ru_maxrss) ---------------------------------


def _client(
    base: Path, url: str, cid: str = "bench", acct: str = ACCOUNT, mode: str = "transaction"
) -> Any:
    from beancount_stripe.config import BookingConfig, ClientConfig, KeySource, make_accounts

    return ClientConfig(
        id=cid,
        name="Bench",
        stripe_account=acct,
        key=KeySource("env", "BENCH_STRIPE_KEY"),
        ledger=base / "ledger.beancount",
        output=base / "stripe.beancount",
        archive_dir=base / "archive",
        timezone="Europe/Berlin",
        accounts=make_accounts("Bench"),
        api_base=url,
        booking=BookingConfig(mode=mode),
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this program: VmHWM (Linux), else ru_maxrss.

    ru_maxrss survives fork + exec, so a child of a big parent would report the parent's peak.
    """
    try:
        for text in Path("/proc/self/status").read_text().splitlines():
            if text.startswith("VmHWM:"):
                return int(text.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(what: str, url: str, folder: str, limit: float, mode: str = "transaction") -> None:
    """Run one measured step and print {"seconds", "maxrss_mb", ...} as JSON."""
    from beancount_stripe import sync

    os.environ["BENCH_STRIPE_KEY"] = KEY
    client = _client(Path(folder), url, mode=mode)
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if what == "fetch":  # the backfill itself: sync.fetch, without the payout-contents step
        gw = sync.gateway_for(client, rate_limit=limit)
        lower = int(sync.verify_account(gw, client).get("created") or sync.STRIPE_EPOCH)
        result = sync.fetch(client, gw, lower=lower, now=int(time.time()), keep=False)
        out["transactions"] = result.count
        out["requests"] = gw.request_count
    elif what == "sync":
        report = sync.sync_client(client, rate_limit=limit)
        out["transactions"] = report.booked_count  # summary modes: entries, each holding many
        out["tied"] = not report.untied
        out["requests"] = report.requests
    elif what == "parse":  # the baseline: the whole archive held in memory, as parsed JSON
        out["transactions"] = len(sync.read_archive(client))
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time()  # the whole process: imports, every thread
    out["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def run_child(
    what: str, url: str, folder: Path, limit: float, mode: str = "transaction"
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", what, "--url", url, "--dir", str(folder)]
    cmd += ["--limit", str(limit), "--mode", mode]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def sdk_pages(url: str, pages: int) -> float:
    """Seconds per page of bare-SDK sequential paging (auto_paging_iter), over ``pages`` pages."""
    import stripe

    c = stripe.StripeClient(KEY, base_addresses={"api": url})
    listing = c.v1.balance_transactions.list(params={"limit": 100, "expand": ["data.source"]})
    t0 = time.perf_counter()
    for n, _bt in enumerate(listing.auto_paging_iter(), 1):
        if n >= pages * 100:
            break
    return (time.perf_counter() - t0) / pages


def line(label: str, value: str, baseline: str = "") -> None:
    print(f"  {label:<52} {value:>14}   {baseline}")


# -- the sections ---------------------------------------------------------------------------


def bench_backfill(size: int, limit: float, sdk_sample: int) -> None:
    pages = math.ceil(size / 100)
    for latency, rate in ((LATENCY, LIMIT), (0.0, limit)):
        bound = pages / rate
        print(f"backfill of {size:,} BTs, simulator latency {latency:g} s, limit {rate:g}/s")
        with SimProcess([(ACCOUNT, KEY, size)], latency=latency, rate_limit=rate) as url:
            per_page = sdk_pages(url, sdk_sample)
            with tempfile.TemporaryDirectory() as tmp:
                got = run_child("fetch", url, Path(tmp), rate)
        t = got["seconds"]
        assert got["transactions"] == size, got
        line("rate-limit bound (pages / limit)", f"{bound:.1f} s", f"{pages:,} pages")
        line(
            "bare SDK sequential paging (extrapolated)",
            f"{per_page * pages:.1f} s",
            f"{per_page * 1000:.0f} ms/page over {sdk_sample} pages",
        )
        line(
            "beancount-stripe backfill (sync.fetch)",
            f"{t:.1f} s",
            f"{t / bound:.2f}x the bound; {got['requests']:,} requests; "
            f"client CPU {got['cpu_seconds']:.1f} s",
        )
        figures.record(
            "backfill_latency" if latency else "backfill_nolatency",
            t,
            "s",
            bound=bound,
            baseline=per_page * pages,
            size=size,
            requests=got["requests"],
        )


def bench_memory(sizes: list[int], modes: list[str]) -> None:
    print("peak memory (VmHWM: peak resident memory of the process), full sync, no rate limit")
    rows = []
    for size in sizes:
        with SimProcess([(ACCOUNT, KEY, size)]) as url:
            base: dict[str, Any] | None = None
            for mode in modes:
                with tempfile.TemporaryDirectory() as tmp:
                    got = run_child("sync", url, Path(tmp), 0, mode)
                    assert got["tied"], got
                    if mode == "transaction":
                        assert got["transactions"] == size, got
                        rows.append((size, got["maxrss_mb"]))
                    if base is None:  # the same archive, parsed into memory
                        base = run_child("parse", url, Path(tmp), 0)
                label = f"full sync, {size:,} BTs" + ("" if mode == "transaction" else f", {mode}")
                # The two rows: ≤ 250 MB at 100k (the smallest size here) and ≤ 300 MB at
                # 1M (the largest; a run of 1M alone fills that row, not the other).
                keys = (["memory_small"] if size == sizes[0] and size < 1_000_000 else []) + (
                    ["memory_large"]
                    if size == sizes[-1] and (len(sizes) > 1 or size >= 1_000_000)
                    else []
                )
                for key in keys if mode == "transaction" else []:
                    figures.record(
                        key, got["maxrss_mb"], "MB", baseline=base["maxrss_mb"], size=size
                    )
                line(
                    label,
                    f"{got['maxrss_mb']:.0f} MB",
                    f"baseline: archive parsed into memory {base['maxrss_mb']:.0f} MB; "
                    f"sync took {got['seconds']:.1f} s; {got['transactions']:,} entries",
                )
    if len(rows) >= 2 and rows[-1][0] < 1_000_000:
        (s0, m0), (s1, m1) = rows[0], rows[-1]
        slope = (m1 - m0) / (s1 - s0)
        line(
            "extrapolated to 1,000,000 BTs",
            f"{m1 + slope * (1_000_000 - s1):.0f} MB",
            f"({slope * 1000:.3f} MB per 1k BTs)",
        )


def bench_clients(n: int, size: int, jobs: int, processes: int | None = None) -> None:
    print(f"{n} clients x {size:,} BTs, latency {LATENCY:g} s, simulator limit 25/s per account")
    accounts = [
        (f"acct_1BenchClient{i:04d}", f"sk_test_benchClient{i:04d}xx", size) for i in range(n)
    ]
    sim = SimProcess(accounts, latency=LATENCY, rate_limit=25.0)
    with sim as url, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = dict(os.environ)
        lines = ["clients:"]
        for i, (acct, key, _size) in enumerate(accounts):
            env[f"BENCH_KEY_{i}"] = key
            lines += [
                f"  - id: c{i:04d}",
                f"    name: Client {i}",
                f"    stripe_account: {acct}",
                f"    key: env:BENCH_KEY_{i}",
                f"    ledger: c{i:04d}/ledger.beancount",
                f"    api_base: {url}",
            ]
        config = base / "clients.yaml"
        config.write_text("\n".join(lines) + "\n")
        exe = Path(sys.executable).parent / "beancount-stripe"

        def start(*args: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [str(exe), "-c", str(config), "sync", "-q", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        def timed_sync(*groups: list[str]) -> float:
            """Seconds until every group (one CLI process each) has synced."""
            t0 = time.perf_counter()
            running = [start(*args) for args in groups]
            for proc, args in zip(running, groups, strict=True):
                _out, err = proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"sync {args} failed:\n{err[-3000:]}")
            return time.perf_counter() - t0

        def fresh() -> None:  # every measured run syncs its clients from nothing
            for i in range(n):
                shutil.rmtree(base / f"c{i:04d}", ignore_errors=True)

        alone = timed_sync(["c0000"])
        fresh()
        chosen = ["--processes", str(processes)] if processes else []
        together = timed_sync(["--all", "--jobs", str(jobs), *chosen])
        fresh()
        threads = timed_sync(["--all", "--jobs", str(jobs), "--processes", "1"])
        sequential = alone * n
    how = f"--processes {processes}" if processes else "worker processes: the default"
    line("biggest client alone (CLI, process start included)", f"{alone:.1f} s")
    line(
        f"all {n} with --jobs {jobs} ({how})",
        f"{together:.1f} s",
        f"{together / alone:.2f}x the biggest alone; one by one would take ~{sequential:.0f} s",
    )
    line(
        f"all {n} with --jobs {jobs} --processes 1 (threads only)",
        f"{threads:.1f} s",
        f"{threads / alone:.2f}x the biggest alone",
    )
    figures.record(
        "clients",
        together,
        "s",
        baseline=alone,
        note=f"{n} clients × {size:,} BTs, --jobs {jobs}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--limit", type=float, default=100.0, help="limit of the no-latency run")
    parser.add_argument("--sdk-sample", type=int, default=40, help="pages of bare-SDK paging")
    parser.add_argument("--memory-sizes", default="200000", help="more sizes, comma-separated")
    parser.add_argument(
        "--memory-modes",
        default="transaction",
        help="booking modes of the memory runs, comma-separated: transaction,daily,payout",
    )
    parser.add_argument("--mode", default="transaction", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--client-size", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument(
        "--processes", type=int, default=None, help="the CLI's --processes (default: its choice)"
    )
    parser.add_argument("--skip", default="", help="backfill,memory,clients")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.dir, args.limit, args.mode)
        return
    skip = set(filter(None, args.skip.split(",")))
    print(f"beancount-stripe big-account benchmark (cpus: {os.cpu_count()})")
    if "backfill" not in skip:
        bench_backfill(args.size, args.limit, args.sdk_sample)
    if "memory" not in skip:
        more = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
        modes = [m.strip() for m in args.memory_modes.split(",") if m.strip()]
        bench_memory(sorted({args.size, *more}), modes)
    if "clients" not in skip:
        bench_clients(args.clients, args.client_size, args.jobs, args.processes)


if __name__ == "__main__":
    main()
