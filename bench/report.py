"""Turns the benchmark's raw outputs into the README's tables.

Usage: report.py <results-dir>
Reads wrk-<route>-<connections>.txt, wal-<route>-<connections>.txt,
cpu-<route>-<connections>.txt,
timelines.log, argon2-*.txt, argon2-*.jsonl, jwt-*.json* and machine.txt
from the folder, prints
markdown.
"""

import json
import pathlib
import re
import statistics
import sys

results = pathlib.Path(sys.argv[1])


def micros(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1, "ms": 1_000, "s": 1_000_000}[unit]


def show(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def wrk(path):
    text = path.read_text()
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", text, re.M))
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    return rps, micros(percentiles["50"]), micros(percentiles["99"]), micros(latency.group(3)), errors, requests


def wal_per_request(route, connections, requests):
    """PostgreSQL WAL flushes per request during the run, as text."""
    path = results / f"wal-{route}-{connections}.txt"
    if not path.exists() or requests == 0:
        return "n/a"
    return f"{int(path.read_text()) / requests:.3f}"


def cpu_per_request(route, connections, requests):
    """CPU time per request of the host, PostgreSQL and Redis, as cells."""
    path = results / f"cpu-{route}-{connections}.txt"
    if not path.exists() or requests == 0:
        return ["n/a"] * 3
    ticks = [int(value) for value in path.read_text().split()]
    before, after, per_second = ticks[0:3], ticks[3:6], ticks[6]
    return [show((a - b) * 1_000_000 / per_second / requests) for a, b in zip(after, before)]


print(results.joinpath("machine.txt").read_text().strip())
print()
print("| Route | Connections | Requests/s | p50 | p99 | max | Errors | WAL flushes/request | CPU/request: host | PostgreSQL | Redis |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
total_errors = 0
for route in ["notfound", "health", "topics", "refresh", "login"]:
    for connections in [1, 8, 32]:
        path = results / f"wrk-{route}-{connections}.txt"
        if not path.exists():
            continue
        rps, p50, p99, peak, errors, requests = wrk(path)
        # The 404 route answers 404 by design: not an error.
        if route != "notfound":
            total_errors += errors
        label = {
            "notfound": "`GET /no/such/route` (404)",
            "health": "`GET /health`",
            "topics": "`GET /questions/topics`",
            "refresh": "`POST /auth/refresh`",
            "login": "`POST /auth/login`",
        }[route]
        shown = "n/a" if route == "notfound" else errors
        wal = wal_per_request(route, connections, requests)
        cpu = " | ".join(cpu_per_request(route, connections, requests))
        print(f"| {label} | {connections} | {rps:,.0f} | {show(p50)} | {show(p99)} | {show(peak)} | {shown} | {wal} | {cpu} |")
print()

timelines = [
    json.loads(line.split("timeline ", 1)[1])
    for line in results.joinpath("timelines.log").read_text().splitlines()
    if line.startswith("timeline ")
]


def median(values):
    return statistics.median(values) if values else 0.0


reads = [t for t in timelines if t["request"] == "GET /questions/topics" and t["status"] == 200]
segments = {name: [] for name in [
    "instantiation", "guest start, request read", "configuration (variables)",
    "token verification", "session check (Redis)", "query (PostgreSQL)", "serialisation, response",
]}
for t in reads:
    calls = t["calls"]
    variables = [c for c in calls if c[0] == "variables.get"]
    redis = [c for c in calls if c[0].startswith("redis.")]
    pg = [c for c in calls if c[0].startswith("pg.")]
    if not (variables and redis and pg):
        continue
    segments["instantiation"].append(t["instantiated_us"])
    segments["guest start, request read"].append(variables[0][1] - t["instantiated_us"])
    segments["configuration (variables)"].append(variables[-1][2] - variables[0][1])
    segments["token verification"].append(min(redis[0][1], pg[0][1]) - variables[-1][2])
    segments["session check (Redis)"].append(redis[-1][2] - redis[0][1])
    segments["query (PostgreSQL)"].append(pg[-1][2] - pg[0][1])
    segments["serialisation, response"].append(t["responded_us"] - max(redis[-1][2], pg[-1][2]))
print(f"Breakdown of one protected read (`GET /questions/topics`), median of {len(reads)} sequential requests:")
print()
print("| Step | Time |")
print("|---|---:|")
for name, values in segments.items():
    print(f"| {name} | {show(median(values))} |")
print(f"| **total, request to response headers** | **{show(median([t['responded_us'] for t in reads]))}** |")
print()

logins = [t for t in timelines if t["request"] == "POST /auth/login" and t["status"] == 200]
argon2_wasm = []
for t in logins:
    calls = t["calls"]
    gaps = [later[1] - earlier[2] for earlier, later in zip(calls, calls[1:])]
    if gaps:
        argon2_wasm.append(max(gaps) / 1000)
native = float(results.joinpath("argon2-native.txt").read_text().strip())
reference = float(results.joinpath("argon2-reference.txt").read_text().strip())
wasm = median(argon2_wasm)


def fixture(name):
    """The fixture's timings; the first calls warm the host up."""
    runs = [json.loads(line) for line in results.joinpath(name).read_text().splitlines() if line.strip()][2:]
    if not all(c["verified"] and c["alternative_verified"] for c in runs):
        sys.exit(f"{name}: a verification in the fixture failed")
    return (
        median([c["first_ms"] for c in runs]),
        median([c["second_ms"] for c in runs]),
        median([c["alternative_ms"] for c in runs]),
    )


fresh, grown, alternative = fixture("argon2-component.jsonl")
scalar_fresh, scalar_grown, _ = fixture("argon2-scalar.jsonl")
login_p50 = wrk(results / "wrk-login-1.txt")[1] / 1000 if (results / "wrk-login-1.txt").exists() else 0.0
print("Argon2id (m=19456 KiB, t=2, p=1), median; ratio to the reference C implementation:")
print()
print("| Where | Time | Ratio |")
print("|---|---:|---:|")
print(f"| reference C implementation (argon2-cffi, libargon2), verification | {reference:.1f} ms | 1.00 |")
print(f"| `spin-auth-core` natively (`cargo run --release --example argon2`), verification | {native:.1f} ms | {native / reference:.2f} |")
print(f"| in a component (Wasm SIMD, as built), fresh instance (fixture, hash) | {fresh:.1f} ms | {fresh / reference:.2f} |")
print(f"| in a component (Wasm SIMD, as built), memory already grown (fixture, verification after the hash) | {grown:.1f} ms | {grown / reference:.2f} |")
print(f"| the same component built without Wasm SIMD, fresh instance | {scalar_fresh:.1f} ms | {scalar_fresh / reference:.2f} |")
print(f"| the same component built without Wasm SIMD, memory already grown | {scalar_grown:.1f} ms | {scalar_grown / reference:.2f} |")
print(f"| the same verification in the same instance by argon2-rust, whose Wasm SIMD is written by hand (32×32→64-bit `extmul`) | {alternative:.1f} ms | {alternative / reference:.2f} |")
print(f"| in the `auth` component's login (longest gap in the login timeline) | {wasm:.1f} ms | {wasm / reference:.2f} |")
print(f"| **a whole login, p50 at one connection (table above)** | **{login_p50:.1f} ms** | **{login_p50 / reference:.2f}** |")
print()
jwt_native = json.loads(results.joinpath("jwt-native.json").read_text())
jwt_component = [json.loads(line) for line in results.joinpath("jwt-component.jsonl").read_text().splitlines() if line.strip()][1:]
print("Access token signing and verification (`AccessKeys::mint` / `verify`, claims and JSON included), median of 200 per run:")
print()
print("| Algorithm | Operation | Native | In a component | Ratio |")
print("|---|---|---:|---:|---:|")
for algorithm in ("HS256", "EdDSA"):
    for operation, key in (("sign", "sign_us"), ("verify", "verify_us")):
        native_us = jwt_native[algorithm][key]
        wasm_us = median([run[algorithm][key] for run in jwt_component])
        print(f"| {algorithm} | {operation} | {native_us:.1f} µs | {wasm_us:.1f} µs | {wasm_us / native_us:.2f} |")
print()
print("Peak linear memory of one instance, and how often a request grew it:")
print()
print("| Request | Peak memory | Growths per request |")
print("|---|---:|---:|")
for request, label in [("POST /auth/login", "login"), ("GET /questions/topics", "protected read")]:
    mine = [t for t in timelines if t["request"] == request]
    peaks = [t["peak_memory_bytes"] for t in mine]
    growths = sum(t.get("memory_growths", 0) for t in mine) / len(mine)
    print(f"| {label} | {median(peaks) / (1 << 20):.1f} MiB | {growths:.2f} |")
print()
print(f"Errors across all load runs: {total_errors}")
