"""`malmoi serve` under load: micro-batching off vs on for two classifiers, memory over many
requests, and GPT streaming.

    .venv/bin/python benchmarks/serve_load.py            # 20 s per cell, clients 1,8,32; trains runs if needed
    .venv/bin/python benchmarks/serve_load.py --seconds 3 --clients 1,8 --rss-requests 1000 --train-budget 20s
    .venv/bin/python benchmarks/serve_load.py --ngram runs/reviews --bert runs/bert --gpt runs/gpt  # your own runs

Runs: ``--ngram``, ``--bert`` and ``--gpt`` name trained runs; each one not given is trained first
into benchmarks/out/serve_runs/ with ``malmoi.train`` for ``--train-budget`` (an n-gram and a
bert-mini classifier on the first 20,000 rows of ../shared/data/nsmc/train.tsv, a gpt-mini
language model on the first 20,000 lines of ../shared/data/nsmc/unlabeled.txt, each written to a
temporary file), or reused from there when its malmoi.json says status "done" and the same budget
(any other run there is replaced).

Each setting, batching off (``--max-batch 1``) and on (``--max-batch 32 --max-wait-ms 5``), gets
one real server process, ``python -m malmoi serve ngram=RUN bert=RUN gpt=RUN --port FREE`` on
127.0.0.1 (same worker, same torch threads; only the batching flags differ), used once /health
says 200 and a first request to each model, timed apart, has loaded what loads lazily (the
n-gram run's morpheme analyzer). Against it, for each classifier and each ``--clients`` count,
that many concurrent clients (asyncio, one httpx connection each) send ``POST /v1/classify`` with
one NSMC review each (cycled from reviews after the training rows) for ``--warmup`` seconds, not
counted, then for ``--seconds``: requests/s (answered within the window), p50/p95/p99 latency of
the requests sent in the window, errors (non-200 or an exception, warm-up included), the server's
RSS (VmRSS of /proc/PID/status) before and after the cell, and the mean classify batch size from
the server's /metrics (``malmoi_batch_size`` sum/count over the cell, warm-up included).

With batching on, also: a memory phase (``--rss-warmup`` requests, RSS, then ``--rss-requests``
more to bert at 32 clients, RSS again: growth in %), and the GPT run: ``POST /v1/generate`` with
``stream`` (max_new_tokens 64, temperature 1.0, a seed per request) at 1 and 8 clients for
``--seconds``: time to the first streamed piece (p50/p95, client side) and pieces/s overall;
then ``POST /v1/completions`` at 1 client: ``usage.completion_tokens`` per second of request time.

Printed: a table per classifier and the targets as PASS/FAIL lines: (a) bert at 32 clients
serves at least 2x the requests/s with batching on; (b) at 1 client the batched p99 is at most
the unbatched p99 + max-wait-ms, per classifier; (c) no errors anywhere; (d) RSS grows < 10% over
the memory phase. Written: benchmarks/out/serve_load.json and a plot (``--plot``, default
benchmarks/out/serve_load.png): requests/s and p99 latency against clients. The clients run in
this process on the same machine as the server, so on a small machine they take CPU from it:
compare settings within one run, not numbers across machines. The data is read at run time;
nothing of it is copied into the repository.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NSMC = ROOT.parent / "shared" / "data" / "nsmc"
OUT = ROOT / "benchmarks" / "out"
RUNS = OUT / "serve_runs"
CLASSIFIERS = ("ngram", "bert")
GPT_CLIENTS = (1, 8)
GPT_NEW_TOKENS = 64
MEMORY_CLIENTS = 32


# ------------------------------------------------------------------------------------- runs and data


def trained(name: str, given: Path | None, args) -> Path:
    """The run to serve as ``name``: the one given, a finished one in serve_runs/, or a new one."""
    if given is not None:
        return given
    from malmoi.training.args import parse_duration

    out = RUNS / name
    meta = out / "malmoi.json"
    if meta.is_file():
        meta = json.loads(meta.read_text(encoding="utf-8"))
        budget = meta.get("args", {}).get("time_budget")
        if meta.get("status") == "done" and budget == parse_duration(args.train_budget):
            print(f"{name}: reusing {out.relative_to(ROOT)} (trained for {budget:g} s)", flush=True)
            return out
        why = "unfinished" if meta.get("status") != "done" else f"a {budget:g} s run"
        print(f"{name}: {out.relative_to(ROOT)} is {why}; training it again", flush=True)
    if out.exists():
        shutil.rmtree(out)
    import malmoi

    print(f"{name}: training for {args.train_budget} into {out.relative_to(ROOT)}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if name == "gpt":
            data = Path(tmp) / "unlabeled.txt"
            lines = [t for line in (NSMC / "unlabeled.txt").read_text(encoding="utf-8").splitlines()
                     if (t := line.strip())][: args.train_rows]
            data.write_text("\n".join(lines) + "\n", encoding="utf-8")
            result = malmoi.train(task="lm", data=data, out=out, preset="gpt-mini", time_budget=args.train_budget,
                                  seed=args.seed, progress=False)
        else:
            data = Path(tmp) / "train.tsv"
            rows = (NSMC / "train.tsv").read_text(encoding="utf-8").splitlines()[: args.train_rows + 1]
            data.write_text("\n".join(rows) + "\n", encoding="utf-8")
            result = malmoi.train(task="classify", data=data, text="document", label="label", out=out,
                                  preset="ngram" if name == "ngram" else "bert-mini", time_budget=args.train_budget,
                                  seed=args.seed, progress=False)
    print(f"{name}: trained in {time.perf_counter() - started:.0f} s ({result.stopped_by}), {result.metrics}",
          flush=True)
    return result.run


def request_texts(args) -> tuple[list[str], list[str]]:
    """Reviews to classify (after the training rows) and prompts (the first words of unlabeled lines
    after the training lines)."""
    from malmoi.data.readers import read_texts

    reviews = read_texts(NSMC / "train.tsv", "document")[args.train_rows : args.train_rows + args.texts]
    lines = read_texts(NSMC / "unlabeled.txt")[args.train_rows : args.train_rows + 400]
    prompts = [" ".join(line.split()[:2]) for line in lines if len(line.split()) >= 3][:200]
    return reviews, prompts


# ------------------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    setting: str
    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None
    url: str = ""

    def start(self, timeout: float) -> None:
        import httpx

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "malmoi", "serve", *self.argv, "--port", str(port)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w", encoding="utf-8") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", "MALMOI_API_KEY": ""})
        print(f"batching {self.setting}: {' '.join(command[1:])} (pid {self.process.pid})", flush=True)
        started, deadline = time.perf_counter(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    print(f"  healthy after {time.perf_counter() - started:.1f} s, RSS {self.rss_mb():.0f} MiB",
                          flush=True)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not healthy within {timeout:g} s:\n{self.tail()}")

    def first_requests(self, review: str, prompt: str, timeout: float) -> dict[str, float]:
        """Milliseconds of each model's first request after /health said 200 (what a model loads
        lazily, e.g. the n-gram run's morpheme analyzer, loads then), kept out of the cells."""
        import httpx

        took = {}
        for model in (*CLASSIFIERS, "gpt"):
            body = ({"model": model, "texts": [review]} if model != "gpt" else
                    {"model": model, "prompt": prompt, "max_new_tokens": 8, "seed": 0})
            started = time.perf_counter()
            r = httpx.post(f"{self.url}/v1/{'generate' if model == 'gpt' else 'classify'}", json=body,
                           timeout=timeout)
            if r.status_code != 200:
                raise RuntimeError(f"the first {model} request got {r.status_code}: {r.text[:300]}")
            took[model] = round((time.perf_counter() - started) * 1000, 1)
        print(f"  first requests: {', '.join(f'{k} {v:.0f} ms' for k, v in took.items())}, "
              f"RSS {self.rss_mb():.0f} MiB", flush=True)
        return took

    def stop(self) -> int | None:
        """SIGINT, then wait (killed if it does not stop)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc/PID/status")

    def batch_totals(self, model: str) -> tuple[float, float]:
        """``malmoi_batch_size`` (sum, count) of ``model`` from /metrics."""
        import httpx

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = {"sum": 0.0, "count": 0.0}
        for line in text.splitlines():
            for kind in found:
                if line.startswith(f'malmoi_batch_size_{kind}{{model="{model}"}}'):
                    found[kind] = float(line.split()[-1])
        return found["sum"], found["count"]


# ------------------------------------------------------------------------------------- load


@dataclass
class Record:
    start: float
    finish: float
    ok: bool
    info: dict = field(default_factory=dict)


def client(url: str, timeout: float):
    import httpx

    return httpx.AsyncClient(base_url=url, timeout=timeout,
                             limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


async def timed(request) -> Record:
    import httpx

    started = time.perf_counter()
    try:
        ok, info = await request()
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:  # a dropped connection, a timeout, bad JSON
        ok, info = False, {"error": f"{type(e).__name__}: {e}"}
    return Record(started, time.perf_counter(), ok, info)


async def for_seconds(url: str, clients: int, warmup: float, seconds: float, make, timeout: float):
    """``clients`` loops of ``make(k)()`` requests until warm-up + ``seconds`` are over; (records, window)."""
    counter = itertools.count()
    begin = time.perf_counter() + warmup
    end = begin + seconds
    records: list[Record] = []

    async def loop() -> None:
        async with client(url, timeout) as c:
            while time.perf_counter() < end:
                records.append(await timed(make(c, next(counter))))

    await asyncio.gather(*(loop() for _ in range(clients)))
    return records, (begin, end)


async def for_count(url: str, clients: int, total: int, make, timeout: float) -> list[Record]:
    """``total`` requests shared by ``clients`` loops."""
    counter = itertools.count()
    records: list[Record] = []

    async def loop() -> None:
        async with client(url, timeout) as c:
            while (k := next(counter)) < total:
                records.append(await timed(make(c, k)))

    await asyncio.gather(*(loop() for _ in range(clients)))
    return records


def classify_request(model: str, reviews: list[str]):
    def make(c, k: int):
        async def request():
            r = await c.post("/v1/classify", json={"model": model, "texts": [reviews[k % len(reviews)]]})
            if r.status_code != 200:
                return False, {"error": f"{r.status_code}: {r.text[:200]}"}
            return len(r.json()["predictions"]) == 1, {}
        return request
    return make


def stream_request(prompts: list[str]):
    def make(c, k: int):
        async def request():
            body = {"model": "gpt", "prompt": prompts[k % len(prompts)], "max_new_tokens": GPT_NEW_TOKENS,
                    "stream": True, "temperature": 1.0, "seed": k}
            started, pieces, finish, event = time.perf_counter(), [], None, None
            async with c.stream("POST", "/v1/generate", json=body) as r:
                if r.status_code != 200:
                    await r.aread()
                    return False, {"error": f"{r.status_code}: {r.text[:200]}"}
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:])
                        if event == "error" or "error" in data:
                            return False, {"error": json.dumps(data, ensure_ascii=False)[:200]}
                        if "finish_reason" in data:
                            finish = data["finish_reason"]
                        else:
                            pieces.append(time.perf_counter())
                    elif not line:
                        event = None
            info = {"pieces": pieces, "first": pieces[0] - started if pieces else None, "finish": finish}
            return finish is not None, info if finish else {**info, "error": "the stream ended without a finish"}
        return request
    return make


def completion_request(prompts: list[str]):
    def make(c, k: int):
        async def request():
            r = await c.post("/v1/completions", json={"model": "gpt", "prompt": prompts[k % len(prompts)],
                                                      "max_tokens": GPT_NEW_TOKENS, "temperature": 1.0, "seed": k})
            if r.status_code != 200:
                return False, {"error": f"{r.status_code}: {r.text[:200]}"}
            return True, {"tokens": r.json()["usage"]["completion_tokens"]}
        return request
    return make


def percentiles_ms(values: list[float], qs=(50, 95, 99)) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {f"p{q}_ms": None for q in qs}
    return {f"p{q}_ms": round(float(np.percentile(values, q)) * 1000, 2) for q in qs}


def errors_of(records: list[Record]) -> dict:
    failed = [r for r in records if not r.ok]
    return {"errors": len(failed), "error_examples": sorted({r.info.get("error", "?") for r in failed})[:5]}


def classify_cell(server: Server, model: str, clients: int, reviews: list[str], args) -> dict:
    rss_before = server.rss_mb()
    sum0, count0 = server.batch_totals(model)
    records, (begin, end) = asyncio.run(for_seconds(server.url, clients, args.warmup, args.seconds,
                                                    classify_request(model, reviews), args.request_timeout))
    sum1, count1 = server.batch_totals(model)
    answered = [r for r in records if r.ok and begin <= r.finish <= end]
    sent = [r.finish - r.start for r in records if r.ok and r.start >= begin]
    cell = {"model": model, "batching": server.setting, "clients": clients, "requests": len(records),
            "rps": round(len(answered) / args.seconds, 2), **percentiles_ms(sent), **errors_of(records),
            "mean_batch": round((sum1 - sum0) / (count1 - count0), 2) if count1 > count0 else None,
            "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(server.rss_mb(), 1)}
    print(f"  {model:<6} {clients:>3} clients: {cell['rps']:>8.1f} req/s  p50 {cell['p50_ms']} p95 {cell['p95_ms']} "
          f"p99 {cell['p99_ms']} ms  batch {cell['mean_batch']}  errors {cell['errors']}  "
          f"RSS {cell['rss_before_mb']:.0f}→{cell['rss_after_mb']:.0f} MiB", flush=True)
    return cell


def memory_phase(server: Server, reviews: list[str], args) -> dict:
    make = classify_request("bert", reviews)
    started = time.perf_counter()
    warm = asyncio.run(for_count(server.url, MEMORY_CLIENTS, args.rss_warmup, make, args.request_timeout))
    after_warmup = server.rss_mb()
    rest = asyncio.run(for_count(server.url, MEMORY_CLIENTS, args.rss_requests, make, args.request_timeout))
    after = server.rss_mb()
    result = {"model": "bert", "clients": MEMORY_CLIENTS, "warmup_requests": args.rss_warmup,
              "requests": args.rss_requests, "rss_after_warmup_mb": round(after_warmup, 1),
              "rss_after_mb": round(after, 1), "growth_pct": round((after / after_warmup - 1) * 100, 2),
              "seconds": round(time.perf_counter() - started, 1), **errors_of(warm + rest)}
    print(f"  memory: bert, {MEMORY_CLIENTS} clients, {args.rss_warmup} + {args.rss_requests} requests: RSS "
          f"{after_warmup:.0f} → {after:.0f} MiB ({result['growth_pct']:+.2f}%), errors {result['errors']}",
          flush=True)
    return result


def gpt_phase(server: Server, prompts: list[str], args) -> dict:
    out = {"max_new_tokens": GPT_NEW_TOKENS, "stream": []}
    for clients in GPT_CLIENTS:
        records, (begin, end) = asyncio.run(for_seconds(server.url, clients, args.warmup, args.seconds,
                                                        stream_request(prompts), args.request_timeout))
        answered = [r for r in records if r.ok and r.info["first"] is not None]
        sent = [r for r in answered if r.start >= begin]
        # in a window shorter than one round of streams no request is sent in it: the warm-up's count then
        firsts = [r.info["first"] for r in sent or answered]
        pieces = sum(begin <= t <= end for r in records for t in r.info.get("pieces", []))
        row = {"clients": clients, "requests": len(records),
               "finished_in_window": sum(r.ok and begin <= r.finish <= end for r in records),
               **{f"first_piece_{k}": v for k, v in percentiles_ms(firsts, (50, 95)).items()},
               "first_piece_of": "requests sent in the window" if sent else "every request (none sent in the window)",
               "pieces_per_s": round(pieces / args.seconds, 2), **errors_of(records)}
        out["stream"].append(row)
        print(f"  gpt stream {clients:>2} clients: first piece p50 {row['first_piece_p50_ms']} p95 "
              f"{row['first_piece_p95_ms']} ms, {row['pieces_per_s']:.1f} pieces/s, errors {row['errors']}",
              flush=True)
    records, (begin, _) = asyncio.run(for_seconds(server.url, 1, args.warmup, args.seconds,
                                                  completion_request(prompts), args.request_timeout))
    counted = [r for r in records if r.ok and r.start >= begin]
    tokens, busy = sum(r.info["tokens"] for r in counted), sum(r.finish - r.start for r in counted)
    out["completions"] = {"clients": 1, "requests": len(counted), "completion_tokens": tokens,
                          "tokens_per_s": round(tokens / busy, 2) if busy else None,
                          **percentiles_ms([r.finish - r.start for r in counted], (50, 95)), **errors_of(records)}
    c = out["completions"]
    print(f"  gpt completions 1 client: {c['tokens_per_s']} tokens/s ({tokens} tokens in {len(counted)} requests), "
          f"errors {c['errors']}", flush=True)
    return out


# ------------------------------------------------------------------------------------- report


def checks(cells: list[dict], memory: dict | None, gpt: dict | None, args) -> list[dict]:
    def cell(model, batching, clients):
        return next((c for c in cells if (c["model"], c["batching"], c["clients"]) == (model, batching, clients)),
                    None)

    found = []
    off, on = cell("bert", "off", 32), cell("bert", "on", 32)
    if off and on and off["rps"]:
        ratio = on["rps"] / off["rps"]
        found.append({"check": "a", "ok": ratio >= 2, "line": f"(a) bert at 32 clients: on/off throughput "
                      f"{ratio:.2f}x (target >= 2x): {on['rps']:.1f} vs {off['rps']:.1f} req/s"})
    else:
        found.append({"check": "a", "ok": None, "line": "(a) bert at 32 clients: not run (--clients has no 32)"})
    for model in CLASSIFIERS:
        off, on = cell(model, "off", 1), cell(model, "on", 1)
        if off and on and off["p99_ms"] is not None and on["p99_ms"] is not None:
            limit = off["p99_ms"] + args.max_wait_ms
            found.append({"check": "b", "ok": on["p99_ms"] <= limit, "line": f"(b) {model} at 1 client: batched "
                          f"p99 {on['p99_ms']:.2f} ms <= unbatched p99 {off['p99_ms']:.2f} + {args.max_wait_ms:g} ms"})
        else:
            found.append({"check": "b", "ok": None, "line": f"(b) {model} at 1 client: "
                          f"{'not run' if not (off and on) else 'no request answered in the window'}"})
    errors = sum(c["errors"] for c in cells) + (memory or {}).get("errors", 0)
    if gpt:
        errors += sum(r["errors"] for r in gpt["stream"]) + gpt["completions"]["errors"]
    found.append({"check": "c", "ok": errors == 0, "line": f"(c) errors everywhere: {errors} (target 0)"})
    if memory:
        found.append({"check": "d", "ok": memory["growth_pct"] < 10, "line": f"(d) RSS growth over "
                      f"{memory['requests']:,} bert requests: {memory['growth_pct']:+.2f}% (target < 10%)"})
    return found


def fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def print_tables(cells: list[dict]) -> None:
    for model in CLASSIFIERS:
        rows = {c["clients"]: {} for c in cells if c["model"] == model}
        for c in cells:
            if c["model"] == model:
                rows[c["clients"]][c["batching"]] = c
        print(f"\n{model}: requests/s and latency (ms), batching off (--max-batch 1) vs on")
        print(f"{'clients':>7} {'off rps':>8} {'on rps':>8} {'on/off':>6}  {'p50 off':>8} {'p95 off':>8} "
              f"{'p99 off':>8}  {'p50 on':>8} {'p95 on':>8} {'p99 on':>8}  {'batch on':>8} {'errors':>6}")
        for clients, r in sorted(rows.items()):
            off, on = r.get("off", {}), r.get("on", {})
            ratio = on.get("rps", 0) / off["rps"] if off.get("rps") else None
            print(f"{clients:>7} {fmt(off.get('rps')):>8} {fmt(on.get('rps')):>8} {fmt(ratio, '.2f'):>6}  "
                  f"{fmt(off.get('p50_ms')):>8} {fmt(off.get('p95_ms')):>8} {fmt(off.get('p99_ms')):>8}  "
                  f"{fmt(on.get('p50_ms')):>8} {fmt(on.get('p95_ms')):>8} {fmt(on.get('p99_ms')):>8}  "
                  f"{fmt(on.get('mean_batch')):>8} {off.get('errors', 0) + on.get('errors', 0):>6}")


def plot(cells: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True)
    colors = dict(zip(CLASSIFIERS, ("tab:blue", "tab:orange")))
    clients = sorted({c["clients"] for c in cells})
    for model in CLASSIFIERS:
        for batching, style in (("off", "--"), ("on", "-")):
            mine = sorted((c for c in cells if c["model"] == model and c["batching"] == batching),
                          key=lambda c: c["clients"])
            if not mine:
                continue
            label = f"{model}, batching {batching}"
            x = [c["clients"] for c in mine]
            axes[0].plot(x, [c["rps"] for c in mine], style, marker="o", color=colors[model], label=label)
            axes[1].plot(x, [c["p99_ms"] for c in mine], style, marker="o", color=colors[model], label=label)
    for ax, name in zip(axes, ("requests/s", "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[1].set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    axes[1].yaxis.set_major_formatter(plain)
    axes[1].yaxis.set_minor_formatter(plain)
    axes[1].tick_params(axis="y", which="minor", labelsize=7)
    axes[0].legend()
    fig.suptitle(f"malmoi serve, one review per request: batching off (--max-batch 1) vs on (--max-batch "
                 f"{args.max_batch} --max-wait-ms {args.max_wait_ms:g})\n{args.seconds:g} s per point, "
                 f"{os.cpu_count()} CPUs shared by server and clients")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ngram", type=Path, help="n-gram classifier run (default: train one)")
    parser.add_argument("--bert", type=Path, help="bert classifier run (default: train one)")
    parser.add_argument("--gpt", type=Path, help="GPT (lm) run (default: train one)")
    parser.add_argument("--train-budget", default="60s", help="training time of each run trained here")
    parser.add_argument("--train-rows", type=int, default=20000, help="NSMC rows (and unlabeled lines) to train on")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrent client counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each cell's window")
    parser.add_argument("--rss-requests", type=int, default=10000, help="requests of the memory phase")
    parser.add_argument("--rss-warmup", type=int, default=500, help="requests before the memory phase's first RSS")
    parser.add_argument("--max-batch", type=int, default=32, help="--max-batch of the batching-on server")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="--max-wait-ms of the batching-on server")
    parser.add_argument("--threads", type=int, default=None, help="--threads of both servers (default: theirs)")
    parser.add_argument("--texts", type=int, default=2000, help="distinct reviews the clients cycle through")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="client timeout per request (s)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds for /health to say 200")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plot", type=Path, default=OUT / "serve_load.png")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    # Ctrl-C or a kill ends the benchmark through the servers' finally (started in the background,
    # Python would inherit an ignored SIGINT, and so would the servers until uvicorn takes it over)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))

    runs = {name: trained(name, getattr(args, name), args) for name in ("ngram", "bert", "gpt")}
    reviews, prompts = request_texts(args)
    print(f"{len(reviews):,} reviews, {len(prompts)} prompts; serving "
          f"{', '.join(f'{k}={v}' for k, v in runs.items())}", flush=True)
    specs = [f"{name}={run}" for name, run in runs.items()]
    threads = ["--threads", str(args.threads)] if args.threads else []
    settings = {"off": ["--max-batch", "1"],
                "on": ["--max-batch", str(args.max_batch), "--max-wait-ms", f"{args.max_wait_ms:g}"]}
    cells, memory, gpt, servers = [], None, None, {}
    started = time.perf_counter()
    for setting, flags in settings.items():
        server = Server(setting, [*specs, *flags, *threads], OUT / f"serve_load_{setting}.log")
        servers[setting] = {"argv": server.argv}
        try:
            server.start(args.startup_timeout)
            servers[setting]["rss_ready_mb"] = round(server.rss_mb(), 1)
            servers[setting]["first_request_ms"] = server.first_requests(reviews[0], prompts[0], args.request_timeout)
            servers[setting]["rss_primed_mb"] = round(server.rss_mb(), 1)
            for model in CLASSIFIERS:
                for clients in counts:
                    cells.append(classify_cell(server, model, clients, reviews, args))
            if setting == "on":
                memory = memory_phase(server, reviews, args)
                gpt = gpt_phase(server, prompts, args)
            servers[setting]["rss_end_mb"] = round(server.rss_mb(), 1)
        finally:
            code = server.stop()
            servers[setting]["exit_code"] = code
            print(f"  server stopped (exit {code})", flush=True)

    print_tables(cells)
    if gpt:
        print(f"\ngpt (batching on, max_new_tokens {GPT_NEW_TOKENS}, temperature 1.0):")
        print(f"{'clients':>7} {'first p50':>10} {'first p95':>10} {'pieces/s':>9} {'errors':>6}")
        for r in gpt["stream"]:
            note = "" if r["first_piece_of"].startswith("requests") else f"  (first piece: {r['first_piece_of']})"
            print(f"{r['clients']:>7} {fmt(r['first_piece_p50_ms']):>10} {fmt(r['first_piece_p95_ms']):>10} "
                  f"{r['pieces_per_s']:>9.1f} {r['errors']:>6}{note}")
        c = gpt["completions"]
        print(f"/v1/completions, 1 client: {c['tokens_per_s']} completion tokens/s ({c['requests']} requests)")
    found = checks(cells, memory, gpt, args)
    print("\ntargets:")
    for check in found:
        print(f"  {'SKIP' if check['ok'] is None else 'PASS' if check['ok'] else 'FAIL'}  {check['line']}")
    print(f"({args.seconds:g} s per cell after {args.warmup:g} s of warm-up, {os.cpu_count()} CPUs shared by the "
          f"server and the clients; {time.perf_counter() - started:.0f} s in all)")

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "serve_load.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
                                "runs": {k: str(v) for k, v in runs.items()}, "servers": servers, "cells": cells,
                                "memory": memory, "gpt": gpt, "checks": found},
                               ensure_ascii=False, indent=2), encoding="utf-8")
    plot(cells, args, args.plot)
    print(f"\nwrote {path} and {args.plot}")


if __name__ == "__main__":
    main()
