"""Benchmark runner: `python -m bench.run --scale smoke|default|growth [--only B1,B3] [--json FILE]`.

Every framework figure is reported beside a raw aiokafka/asyncpg baseline measured in the
same run, and as a ratio to it: on a shared machine absolute numbers are noise, ratios hold.
JSON goes to stdout (or --json FILE), a table to stderr. Needs the stack: `make bench`
starts it (deploy/local/stack.sh); the addresses follow KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL or LOCAL_KAFKA_PORT / LOCAL_PG_PORT, as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.platform.logging import configure_logging

SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"B1": 200, "B2": 20, "B3": 200, "B4": 50, "B4_idle": 2, "B5": [100, 200], "B5_B4": [20, 40], "repeats": 1},
    # B3 at 10k rows ran 0.3 s, within the machine's bursts: raw moved 11k-39k rows/s in one
    # run. 50k rows and 5 rounds (B3_repeats) take about a minute. B2's p99 over 200 pings was
    # the 2nd-worst ping, so one 50-75 ms stall of the machine decided it; 1,000 pings (~2 min).
    "default": {"B1": 5_000, "B2": 1_000, "B3": 50_000, "B3_repeats": 5, "B4": 1_000, "B4_idle": 60,
                "B5": [1_000, 10_000], "B5_B4": [1_000, 10_000], "repeats": 3},
    # B4 at 100k would take ~30-40 min at the measured rate: `--b5-b4 1000,10000,100000` when wanted.
    "growth": {"B1": 5_000, "B2": 200, "B3": 10_000, "B4": 1_000, "B4_idle": 60, "B5": [1_000, 10_000, 100_000],
               "B5_B4": [1_000, 10_000], "repeats": 3},
}
DEFAULT_ONLY = {"smoke": "B1,B2,B3,B4,BURST,IDLE,PIPELINE", "default": "B1,B2,B3,B4,BURST,IDLE,PIPELINE",
                "growth": "B5"}
# The Rakor burst (repetitions per sink), idle (seconds measured, warm-up) and the pipeline (cycles at
# saturation, cycles at half load, rounds): bench/burst.py, bench/idle.py, bench/pipeline.py.
SERVICE_SCALES = {"smoke": {"BURST": 2, "IDLE": (5, 3), "PIPELINE": (20, 10, 1)},
                  "default": {"BURST": 10, "IDLE": (60, 10), "PIPELINE": (300, 150, 3)},
                  "growth": {"BURST": 10, "IDLE": (60, 10), "PIPELINE": (300, 150, 3)}}
# `make bench-growth` (--only GROWTH): B1 and B4 at these sizes, the pipeline at its own (cycles; ~10-60
# cycles/s here, so 100k cycles would take hours on this machine); override with --growth-sizes and
# --growth-pipeline.
GROWTH_SIZES = [10_000, 100_000]
GROWTH_PIPELINE = [1_000, 10_000]
GROWTH_LIMIT = 1.2
TARGETS = {"B1": ">= 0.9x raw events/s", "B2": "p99 <= 1.2x raw p99", "B3": ">= 0.9x raw rows/s",
           "B4": ">= 0.7x raw events/s; service CPU per e-mail <= 1.5x raw; <= 0.5 PostgreSQL statements per e-mail; "
                 "idle <= 1 statement/s and <= 0.1 s CPU/min",
           "B5": "us/event at the largest N within 1.2x of the previous N; peak RSS flat",
           "BURST": "p99 < 250 ms from submission to the last of its 4 e-mails accepted",
           "IDLE": "<= 1 PostgreSQL statement/s and <= 0.1 s CPU/min per service",
           "PIPELINE": "throughput at saturation and p99 at half of it (submit -> last submitted notice accepted), "
                       "each beside the raw two-hop baseline",
           "GROWTH": "per-event cost at the largest N within 1.2x of the smallest, for B1, B4 and the pipeline; "
                     "memory flat"}
BATCH = 500
SINGLE_MAX_N = 1000


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "python": platform.python_version(),
            "platform": platform.platform(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


async def server_versions() -> dict[str, str]:
    import asyncpg

    from .harness import BOOTSTRAP, DSN
    conn = await asyncpg.connect(DSN)
    try:
        pg = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {"postgresql": pg, "kafka_bootstrap": BOOTSTRAP}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def round_ratios(mine: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """Ratios of runs made side by side (same round): steadier than a ratio of medians under load."""
    pairs = [ratio(a, b) for a, b in zip(mine["runs"], raw["runs"], strict=True)]
    return {"round_ratios": pairs, "median_round_ratio": sorted(pairs)[len(pairs) // 2]}


def aggregate(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The median run by `key` (on a shared machine the median of interleaved runs is the stable figure)."""
    ordered = sorted(runs, key=lambda r: r[key])
    median = dict(ordered[len(ordered) // 2])
    median["runs"] = [r[key] for r in runs]
    median["verified"] = all(r["verified"] for r in runs)
    median["peak_rss_mb"] = max(r.get("peak_rss_mb", 0) for r in runs) or None
    return median


async def interleaved(variants: dict[str, Callable[[], Awaitable[dict[str, Any]]]], repeats: int,
                      key: str) -> dict[str, Any]:
    """Run the variants in rotating order `repeats` times, so load bursts hit each of them alike."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(await variants[name]())
    return {name: aggregate(rs, key) for name, rs in runs.items()}


async def run_b1(n: int, variants: list[str], repeats: int = 1) -> dict[str, Any]:
    from . import scenarios as s
    makers: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        # The one-record-per-transaction path is ~10x slower: a smaller N keeps the run short
        # (events/s is a rate; B5 checks that rates do not depend on N).
        "raw": lambda: s.b1_raw(n),
        # The raw loop with the framework's statement shape (the batch's outbox rows in one statement):
        # reported beside the target's ratio, which is to "raw".
        "raw_batched": lambda: s.b1_raw(n, batched_outbox=True),
        "single": lambda: s.b1_framework(min(n, SINGLE_MAX_N), 1),
        "batch": lambda: s.b1_framework(n, BATCH),
    }
    out: dict[str, Any] = {"n": n, "batch_size": BATCH, "repeats": repeats}
    out |= await interleaved({v: makers[v] for v in variants}, repeats, "events_per_s")
    for variant in variants:
        if variant != "raw" and "raw" in out:
            out[variant]["ratio_to_raw"] = ratio(out[variant]["events_per_s"], out["raw"]["events_per_s"])
            out[variant] |= round_ratios(out[variant], out["raw"])
    if "batch" in out and "raw_batched" in out:
        out["batch"]["ratio_to_raw_batched"] = ratio(out["batch"]["events_per_s"], out["raw_batched"]["events_per_s"])
        strict = round_ratios(out["batch"], out["raw_batched"])
        out["batch"]["round_ratios_to_raw_batched"] = strict["round_ratios"]
        out["batch"]["median_round_ratio_to_raw_batched"] = strict["median_round_ratio"]
    return out


async def run_b2(pings: int, repeats: int = 1) -> dict[str, Any]:
    from . import scenarios as s
    out: dict[str, Any] = {"repeats": repeats}
    out |= await interleaved({"raw": lambda: s.b2_raw(pings), "single": lambda: s.b2_framework(pings, 1),
                              "batch": lambda: s.b2_framework(pings, BATCH)}, repeats, "p99_ms")
    for variant in ("single", "batch"):
        out[variant]["p99_ratio_to_raw"] = ratio(out[variant]["p99_ms"], out["raw"]["p99_ms"])
        out[variant]["p50_ratio_to_raw"] = ratio(out[variant]["p50_ms"], out["raw"]["p50_ms"])
        out[variant] |= round_ratios(out[variant], out["raw"])  # of p99
    return out


async def run_b3(n: int, repeats: int = 1) -> dict[str, Any]:
    from . import scenarios as s
    out: dict[str, Any] = {"repeats": repeats}
    out |= await interleaved({"raw": lambda: s.b3_raw(n), "relay": lambda: s.b3_relay(n)}, repeats, "rows_per_s")
    out["relay"]["ratio_to_raw"] = ratio(out["relay"]["rows_per_s"], out["raw"]["rows_per_s"])
    out["relay"] |= round_ratios(out["relay"], out["raw"])
    return out


def run_b5(sizes: list[int], log_level: str, repeats: int = 1) -> dict[str, Any]:
    """B1 at growing N, each run in a fresh process so peak RSS belongs to that run alone.

    Rounds are interleaved (every variant and size once per round) and each size reports its
    median run: single runs on this machine move by up to ~1.8x, which a growth ratio cannot absorb."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(repeats):
        for variant in ("raw", "batch"):
            for n in sizes:
                proc = subprocess.run(
                    [sys.executable, "-m", "bench.run", "--b1-only", variant, "--n", str(n), "--log-level", log_level],
                    capture_output=True, text=True)
                if proc.returncode:
                    raise RuntimeError(f"B5 {variant} N={n} failed:\n{proc.stderr[-3000:]}")
                runs.setdefault((variant, n), []).append(
                    json.loads(proc.stdout)[variant] | {"load_avg_after": [round(x, 2) for x in os.getloadavg()]})
    out: dict[str, Any] = {"sizes": sizes, "repeats": repeats}
    for variant in ("raw", "batch"):
        rows = []
        for n in sizes:
            these = runs[(variant, n)]
            row = dict(sorted(these, key=lambda r: r["us_per_event"])[len(these) // 2])
            row["us_per_event_runs"] = [r["us_per_event"] for r in these]
            row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in these)
            row["peak_rss_consume_mb"] = max((r.get("peak_rss_consume_mb") or 0) for r in these) or None
            row["verified"] = all(r["verified"] for r in these)
            rows.append(row)
        for prev, cur in itertools.pairwise(rows):
            cur["us_per_event_vs_previous"] = ratio(cur["us_per_event"], prev["us_per_event"])
        out[variant] = rows
    return out


def run_b5_b4(sizes: list[int], log_level: str) -> list[dict[str, Any]]:
    """B4 at saturation for growing N, each in a fresh process; per-event cost = service CPU per event."""
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "bench.run", "--b4-only", "--n", str(n), "--log-level", log_level],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"B5 (B4) N={n} failed:\n{proc.stderr[-3000:]}")
        sat = json.loads(proc.stdout)["saturation"]
        rows.append({"n": n, "events_per_s": sat["events_per_s"], "cpu_ms_per_event": sat["cpu_ms_per_event"],
                     "us_per_event": round(1e6 / sat["events_per_s"]), "peak_rss_mb": sat["peak_rss_mb"],
                     "rss_mb_before": sat["rss_mb_before"], "verified": json.loads(proc.stdout)["verified"],
                     "load_avg_after": [round(x, 2) for x in os.getloadavg()]})
    for prev, cur in itertools.pairwise(rows):
        cur["us_per_event_vs_previous"] = ratio(cur["us_per_event"], prev["us_per_event"])
        cur["service_cpu_vs_previous"] = ratio(cur["cpu_ms_per_event"]["service"], prev["cpu_ms_per_event"]["service"])
    return rows


def run_pipeline_growth(sizes: list[int]) -> list[dict[str, Any]]:
    """The pipeline's service side at each size, fresh services per size (their RSS is that size's alone)."""
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "bench.pipeline", "growth-point", str(n)],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"GROWTH (pipeline) N={n} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def growth_summary(b1: dict[str, Any], b4: list[dict[str, Any]], pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-event cost at the largest size over the smallest, and the memory figures beside it."""
    def cost_ratio(rows: list[dict[str, Any]], key: str) -> float:
        return ratio(rows[-1][key], rows[0][key])

    out: dict[str, Any] = {
        "B1_batch_us_per_event_ratio": cost_ratio(b1["batch"], "us_per_event"),
        "B1_raw_us_per_event_ratio": cost_ratio(b1["raw"], "us_per_event"),
        "B1_consume_rss_growth_mb": {r["n"]: r.get("consume_rss_growth_mb") for r in b1["batch"]},
        "B4_us_per_event_ratio": cost_ratio(b4, "us_per_event"),
        "B4_service_cpu_per_event_ratio": ratio(b4[-1]["cpu_ms_per_event"]["service"],
                                                b4[0]["cpu_ms_per_event"]["service"]),
        "B4_peak_rss_mb": {r["n"]: r["peak_rss_mb"] for r in b4},
        "PIPELINE_us_per_cycle_ratio": cost_ratio(pipeline, "us_per_cycle"),
        "PIPELINE_cpu_per_cycle_ratio": ratio(pipeline[-1]["cpu_ms_per_cycle"]["processes"],
                                              pipeline[0]["cpu_ms_per_cycle"]["processes"]),
        "PIPELINE_rss_mb": {r["cycles"]: {k: v for k, v in r["rss_mb"].items()} for r in pipeline},
    }
    out["within_limit"] = all(out[k] <= GROWTH_LIMIT for k in (
        "B1_batch_us_per_event_ratio", "B4_us_per_event_ratio", "PIPELINE_us_per_cycle_ratio"))
    return out


def table(results: dict[str, Any]) -> str:
    lines = [f"{'bench':<6} {'variant':<8} {'N':>8} {'throughput':>14} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'ratio':>7} {'RSS MB':>7}  ok"]
    for name, res in results.items():
        if name == "B5":  # us/event in the p50 column's place; RSS: whole run, then the consume phase alone
            for variant in ("raw", "batch"):
                for row in res[variant]:
                    lines.append(f"{name:<6} {variant:<8} {row['n']:>8} {row['events_per_s']:>10.0f} ev/s "
                                 f"{row['us_per_event']:>8} {'':>8} {row.get('us_per_event_vs_previous', ''):>7} "
                                 f"{row['peak_rss_mb']:>7}  {row['verified']}  consume: RSS "
                                 f"{row.get('rss_before_consume_mb')} -> peak {row.get('peak_rss_consume_mb')} MB")
            for row in res.get("b4", []):
                lines.append(f"{name:<6} {'B4':<8} {row['n']:>8} {row['events_per_s']:>10.1f} ev/s "
                             f"{row['us_per_event']:>8} {'':>8} {row.get('us_per_event_vs_previous', ''):>7} "
                             f"{row['peak_rss_mb']:>7}  {row['verified']}  service CPU "
                             f"{row['cpu_ms_per_event']['service']} ms/event")
            continue
        if name == "B4":  # CPU ms per e-mail (process/sink/PostgreSQL) and statements per e-mail after the rate
            for variant in ("raw", "raw_pipelined", "service"):
                row = res[variant]
                cpu = row["cpu_ms_per_email"]
                ratio_ = res["vs_raw"]["events_per_s_ratio"] if variant == "service" else ""
                lines.append(f"{name:<6} {variant[:8]:<8} {row['n']:>8} {row['events_per_s']:>10.1f} ev/s "
                             f"{'':>8} {'':>8} {ratio_:>7} {'':>7}  {row['verified']}  CPU ms/e-mail "
                             f"{cpu['process']}/{cpu['sink']}/{cpu['postgres']}, "
                             f"{row['statements_per_email']} statements/e-mail")
            if "idle" in res:
                idle = res["idle"]
                lines.append(f"{name:<6} {'idle':<8} {idle['seconds']:>8} s {idle['cpu_s_per_minute']} s CPU/min, "
                             f"{idle['statements_per_s']} statements/s  (sink: {res['sink']})")
            continue
        if name == "BURST":
            for kind, row in res.items():
                lines.append(f"{name:<6} {kind:<8} {row['submissions']:>8} {'':>14} {row['p50_ms']:>8} "
                             f"{row['p99_ms']:>8} {'':>7} {'':>7}  {row['verified']}  until deliveries written: p50 "
                             f"{row['p50_ms_until_deliveries_written']} ms ({row['repetitions']} bursts)")
            continue
        if name == "PIPELINE":
            for phase in ("saturation", "half_load"):
                for variant, row in res.get(phase, {}).items():
                    ratio_ = res.get("vs_raw", {}).get("cycles_per_s_ratio" if phase == "saturation"
                                                       else "half_load_p99_ratio", "") if variant == "service" else ""
                    lines.append(f"{name[:6]:<6} {variant[:8]:<8} {row['cycles']:>8} {row['cycles_per_s']:>8.1f} cyc/s "
                                 f"{row['p50_ms']:>8} {row['p99_ms']:>8} {ratio_:>7} {'':>7}  {row['verified']}  "
                                 f"{phase}, CPU ms/cycle {row['cpu_ms_per_cycle']['processes']}, "
                                 f"return answered p50 {row['return_answered_p50_ms']} ms")
            continue
        if name == "GROWTH":
            lines.append(f"{name:<6} {json.dumps(res['summary'])}")
            continue
        if name == "IDLE":
            for service, row in res["services"].items():
                lines.append(f"{name:<6} {service[:8]:<8} {res['seconds']:>8} {row.get('statements_per_s', '?'):>9} "
                             f"st/s {row['cpu_s_per_min']:>8} CPU s/min")
            continue
        for variant, row in res.items():
            if not isinstance(row, dict):
                continue
            row = {k: ("" if v is None else v) for k, v in row.items()}
            thr = row.get("events_per_s") or row.get("rows_per_s")
            unit = " ev/s" if "events_per_s" in row else " rows/s" if "rows_per_s" in row else ""
            lines.append(
                f"{name:<6} {variant:<8} {row.get('n', row.get('pings', '')):>8} "
                f"{(f'{thr:.0f}' + unit) if thr else '':>14} {row.get('p50_ms', ''):>8} {row.get('p99_ms', ''):>8} "
                f"{row.get('ratio_to_raw', row.get('p99_ratio_to_raw', '')):>7} {row.get('peak_rss_mb', ''):>7}  "
                f"{row.get('verified', '')}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.b1_only:  # one B1 variant in this process (used by B5)
        return await run_b1(args.n, [args.b1_only])
    if args.b4_only:  # B4's service alone at N in this process (used by B5)
        from .b4 import run_b4_saturation
        return await run_b4_saturation(args.n)
    scale = SCALES[args.scale]
    only = [b.strip().upper() for b in (args.only or DEFAULT_ONLY[args.scale]).split(",") if b.strip()]
    report: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]), "scale": args.scale,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine() | await server_versions(), "targets": {b: TARGETS[b] for b in only if b in TARGETS},
        "results": {},
    }
    for name in only:
        t0 = time.perf_counter()
        if name == "B1":
            report["results"]["B1"] = await run_b1(scale["B1"], ["raw", "raw_batched", "single", "batch"],
                                                   scale["repeats"])
        elif name == "B2":
            report["results"]["B2"] = await run_b2(scale["B2"], scale["repeats"])
        elif name == "B3":
            report["results"]["B3"] = await run_b3(scale["B3"], scale.get("B3_repeats", scale["repeats"]))
        elif name == "B5":
            report["results"]["B5"] = await asyncio.to_thread(run_b5, scale["B5"], args.log_level, scale["repeats"])
            sizes = [int(x) for x in args.b5_b4.split(",")] if args.b5_b4 else scale["B5_B4"]
            report["results"]["B5"]["b4"] = await asyncio.to_thread(run_b5_b4, sizes, args.log_level)
        elif name == "B4":  # service beside raw and raw pipelined, rounds interleaved; then the idle phase
            from .b4 import run_b4
            report["results"]["B4"] = await run_b4(scale["B4"], scale["repeats"], scale["B4_idle"])
        elif name == "BURST":  # every sink available (the C smtp-sink first), the same repetitions each
            from .burst import run_burst
            from .sinks import available_kinds
            report["results"]["BURST"] = {kind: await run_burst(SERVICE_SCALES[args.scale]["BURST"], kind)
                                          for kind in available_kinds()}
        elif name == "IDLE":
            from .idle import run_idle
            report["results"]["IDLE"] = await run_idle(*SERVICE_SCALES[args.scale]["IDLE"])
        elif name == "PIPELINE":  # service beside the raw two-hop baseline, saturation then half load
            from .pipeline import run_pipeline
            report["results"]["PIPELINE"] = await run_pipeline(*SERVICE_SCALES[args.scale]["PIPELINE"])
        elif name == "GROWTH":  # B1, B4 and the pipeline at growing sizes, each point in fresh processes
            sizes = [int(x) for x in args.growth_sizes.split(",")] if args.growth_sizes else GROWTH_SIZES
            pipe = [int(x) for x in args.growth_pipeline.split(",")] if args.growth_pipeline else GROWTH_PIPELINE
            b1 = await asyncio.to_thread(run_b5, sizes, args.log_level, scale["repeats"])
            b4 = await asyncio.to_thread(run_b5_b4, sizes, args.log_level)
            pipeline = await asyncio.to_thread(run_pipeline_growth, pipe)
            report["results"]["GROWTH"] = {"sizes": sizes, "pipeline_sizes": pipe, "B1": b1, "B4": b4,
                                           "PIPELINE": pipeline, "summary": growth_summary(b1, b4, pipeline)}
        else:
            raise SystemExit(f"unknown benchmark {name!r}")
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--only", help="comma-separated subset, e.g. B1,B3")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report here instead of stdout")
    parser.add_argument("--log-level", default="INFO",
                        help="the services' level (INFO: one line per message, as in production); lines go to /dev/null")
    parser.add_argument("--b1-only", choices=["raw", "single", "batch"], help=argparse.SUPPRESS)
    parser.add_argument("--b4-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--b5-b4", metavar="N,N,...", help="B5: the B4 sizes (default by scale; 100000 takes ~30+ min)")
    parser.add_argument("--growth-sizes", metavar="N,N", help="GROWTH: B1 and B4 sizes (default 10000,100000)")
    parser.add_argument("--growth-pipeline", metavar="N,N", help="GROWTH: pipeline cycles (default 1000,10000)")
    parser.add_argument("--n", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Log as the services do (JSON, same level) but into /dev/null: the cost counts, the noise does not.
    configure_logging("bench", level=args.log_level, json=True)
    # The cost of logging counts, the lines do not (BENCH_LOG_FILE keeps them for a diagnosis).
    logging.getLogger().handlers[0].setStream(open(os.environ.get("BENCH_LOG_FILE", os.devnull), "w"))  # noqa: SIM115
    # Freeze what is loaded, as a service does once started (shared/platform/runtime.py, serve): the
    # raw and framework sides of every ratio run in this one process, so both get it.
    gc.collect()
    gc.freeze()
    report = asyncio.run(main_async(args))
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    if "results" in report:
        print(table(report["results"]), file=sys.stderr)


if __name__ == "__main__":
    main()
