"""Summarize benchmark rounds and render bench/results/latest.md."""

from __future__ import annotations

import statistics
from typing import Any

from harness import Spread

# The targets that docs/benchmarks.md states.
TARGET_EXCHANGE_RATIO = 2.0
TARGET_HALF_PEAK_P99_MS = 10.0
TARGET_MIDDLEWARE_US = 100.0


def median_of(rounds: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else 0.0


def spread(rounds: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    found = Spread.of([r.get(key) for r in rounds])
    return found.as_dict() if found else None


def failed_requests(rounds: list[dict[str, Any]]) -> int:
    total = 0
    for r in rounds:
        if "errors_status" in r:
            total += r["errors_status"] + r["errors_connect"] + r["errors_read"]
            total += r["errors_write"] + r["errors_timeout"]
        else:
            total += r["requests"] - r["ok"] + r["transport_errors"] + r["timeouts"]
    return total


def load_summary(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rounds:
        return None
    return {
        "ok_per_s": spread(rounds, "ok_per_s"),
        "latency_p50_ms": spread(rounds, "latency_p50_ms"),
        "latency_p99_ms": spread(rounds, "latency_p99_ms"),
        "failed_requests": failed_requests(rounds),
        "server_cpu_ms_per_ok": spread(rounds, "server_cpu_ms_per_ok"),
        "ran_out_of_requests": any(r.get("ran_out_of_requests") for r in rounds)
        if rounds[0].get("mode") == "closed"
        else False,
    }


def ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None) -> Any:
    if not numerator or not denominator or not denominator["median"]:
        return None
    return numerator["median"] / denominator["median"]


def target_status(value: float | None, limit: float, *, at_least: bool) -> str:
    if value is None:
        return "not measured"
    met = value >= limit if at_least else value < limit
    return "met" if met else "not met"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        name: load_summary(results.get(name, []))
        for name in (
            "peer_wrk",
            "peer_loadgen_closed",
            "agentiam_exchange_closed",
            "peer_loadgen_open",
            "agentiam_exchange_open",
            "bare_http_closed",
        )
    }
    summary["ceiling"] = ceiling(results, summary)
    middleware = results.get("middleware")
    summary["middleware_overhead_us"] = (
        Spread.of(middleware["overhead_us"]).as_dict() if middleware else None
    )
    summary["middleware_proof_check_us"] = (
        Spread.of(middleware["proof_check_us"]).as_dict() if middleware else None
    )
    summary["middleware_bare_us"] = (
        Spread.of(middleware["bare_us"]).as_dict() if middleware else None
    )
    summary["middleware_wrapped_us"] = (
        Spread.of(middleware["wrapped_us"]).as_dict() if middleware else None
    )

    exchange = summary["agentiam_exchange_closed"]
    peer = summary["peer_wrk"]
    peer_generator = summary["peer_loadgen_closed"]
    exchange_open = summary["agentiam_exchange_open"]
    peer_open = summary["peer_loadgen_open"]
    summary["ratios"] = {
        "exchange_rate_vs_peer_wrk": ratio(
            exchange and exchange["ok_per_s"], peer and peer["ok_per_s"]
        ),
        "exchange_rate_vs_peer_same_generator": ratio(
            exchange and exchange["ok_per_s"],
            peer_generator and peer_generator["ok_per_s"],
        ),
        "exchange_p99_vs_peer_p99_at_half_peak": ratio(
            exchange_open and exchange_open["latency_p99_ms"],
            peer_open and peer_open["latency_p99_ms"],
        ),
    }
    half_peak_p99 = exchange_open["latency_p99_ms"]["median"] if exchange_open else None
    overhead = summary["middleware_overhead_us"]
    summary["targets"] = {
        "exchange_at_least_2x_peer": target_status(
            summary["ratios"]["exchange_rate_vs_peer_wrk"],
            TARGET_EXCHANGE_RATIO,
            at_least=True,
        ),
        "exchange_p99_under_10ms_at_half_peak": target_status(
            half_peak_p99, TARGET_HALF_PEAK_P99_MS, at_least=False
        ),
        "middleware_overhead_under_100us": target_status(
            overhead["median"] if overhead else None,
            TARGET_MIDDLEWARE_US,
            at_least=False,
        ),
    }
    return summary


def ceiling(results: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    """Compute the exchange rate that the HTTP stack and two signatures allow.

    The cost is the bare app's server CPU time per request plus one ES256 verify
    and one ES256 sign, all on one core, and the rate is compared with the
    peer's rate with wrk.  Returns ``None`` when a figure is missing.
    """
    bare = summary.get("bare_http_closed")
    crypto = results.get("crypto")
    peer = summary.get("peer_wrk")
    if not bare or not crypto or not bare["server_cpu_ms_per_ok"]:
        return None

    http_us = bare["server_cpu_ms_per_ok"]["median"] * 1000
    floor_us = http_us + crypto["es256_verify_us"] + crypto["es256_sign_us"]
    rate = 1e6 / floor_us
    peer_rate = peer["ok_per_s"]["median"] if peer else None
    return {
        "http_cpu_us": http_us,
        "es256_verify_us": crypto["es256_verify_us"],
        "es256_sign_us": crypto["es256_sign_us"],
        "floor_cpu_us": floor_us,
        "rate_per_s": rate,
        "ratio_vs_peer_wrk": rate / peer_rate if peer_rate else None,
    }


def fmt_spread(value: dict[str, Any] | None, unit: str, digits: int = 0) -> str:
    if not value:
        return "not measured"
    return (
        f"{value['median']:,.{digits}f} {unit} "
        f"(min {value['min']:,.{digits}f}, "
        f"max {value['max']:,.{digits}f}, {value['runs']} runs)"
    )


def fmt_ratio(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"


def load_rows(summary: dict[str, Any]) -> list[str]:
    labels = {
        "peer_wrk": "peer client credentials, wrk, closed loop",
        "peer_loadgen_closed": "peer client credentials, load_exchange.py, closed loop",
        "agentiam_exchange_closed": "agentiam token exchange, closed loop",
        "peer_loadgen_open": "peer client credentials, open loop at half of peak",
        "agentiam_exchange_open": "agentiam token exchange, open loop at half of peak",
        "bare_http_closed": "bare Starlette app, same requests, closed loop",
    }
    rows = [
        "| measurement | successful req/s | p50 latency | p99 latency "
        "| failed requests |",
        "|---|---|---|---|---|",
    ]
    for name, label in labels.items():
        item = summary[name]
        if item is None:
            rows.append(f"| {label} | not measured | | | |")
            continue
        rows.append(
            f"| {label} | {fmt_spread(item['ok_per_s'], 'req/s')} | "
            f"{fmt_spread(item['latency_p50_ms'], 'ms', 2)} | "
            f"{fmt_spread(item['latency_p99_ms'], 'ms', 2)} | "
            f"{item['failed_requests']} |"
        )
    return rows


def agentiam_token_lines(results: dict[str, Any]) -> list[str]:
    token = results.get("agentiam_token")
    if not token:
        return []
    return [
        "One exchanged agentiam token was verified the same way: header "
        f"`{token['header']}`, claims {token['claims']}.",
        "",
    ]


def header_lines(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    settings = results["settings"]
    dirty = " with uncommitted changes" if machine["tree_dirty"] else ""
    return [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`, and docs/benchmarks.md explains each figure.",
        "Each figure is the median over the runs, with the minimum and maximum.",
        "",
        f"- date: {results['started_at']} (took {results['elapsed_s']:.0f} s)",
        f"- invocation: `{results['invocation']}`",
        f"- settings: {settings['runs']} runs, {settings['duration_s']:g} s per load "
        f"run, {settings['connections']} connections",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory']} memory, Linux {machine['kernel']}",
        f"- software: Python {machine['python']}, Node.js {machine['node']}, "
        f"oidc-provider {machine['oidc_provider']}, {machine['wrk']}",
        "- load average (1, 5, 15 min) before the run: "
        f"{machine['load_average_before']}, after: {machine['load_average_after']}",
        f"- commit: {machine['commit']}{dirty}",
        "",
    ]


def token_endpoint_lines(results: dict[str, Any]) -> list[str]:
    rates = results["half_rates"]
    agentiam_rate = (
        f"agentiam {rates['agentiam']:,.0f} req/s."
        if rates["agentiam"]
        else "agentiam not measured."
    )
    summary = results["summary"]
    cpu = [
        f"- {label}: {fmt_spread(summary[name].get('server_cpu_ms_per_ok'), 'ms', 2)}"
        for name, label in (
            ("agentiam_exchange_closed", "closed loop"),
            ("agentiam_exchange_open", "open loop at half of peak"),
        )
        if summary[name] is not None
    ]
    lines = [
        "## Token endpoints",
        "",
        *load_rows(summary),
        "",
        f"Open-loop target rates: peer {rates['peer']:,.0f} req/s, {agentiam_rate}",
        "",
    ]
    if cpu:
        lines += [
            "agentiam server CPU time (user and system, all threads) per "
            "successful exchange:",
            "",
            *cpu,
            "",
        ]
    return lines


def middleware_lines(results: dict[str, Any]) -> list[str]:
    summary = results["summary"]
    lines = ["## Enforcement middleware, cached DPoP-bound token", ""]
    if not summary["middleware_overhead_us"]:
        return [*lines, f"Not measured: {results.get('middleware_missing')}.", ""]
    return [
        *lines,
        f"- overhead: {fmt_spread(summary['middleware_overhead_us'], 'us', 1)}",
        "- `verify_dpop_proof` alone, for comparison: "
        f"{fmt_spread(summary['middleware_proof_check_us'], 'us', 1)}",
        f"- bare app: {fmt_spread(summary['middleware_bare_us'], 'us', 1)}",
        f"- wrapped app: {fmt_spread(summary['middleware_wrapped_us'], 'us', 1)}",
        f"- responses other than 200: {results['middleware']['non_200_responses']}",
        "",
        "The middleware has no mode for tokens without DPoP: it rejects an "
        "agentiam token sent as Bearer, so there is no unbound figure.",
        "",
    ]


def comparison_lines(results: dict[str, Any]) -> list[str]:
    ratios = results["summary"]["ratios"]
    targets = results["summary"]["targets"]
    lines = [
        "## Ratios agentiam / peer",
        "",
        "- exchange req/s / peer wrk req/s: "
        f"{fmt_ratio(ratios['exchange_rate_vs_peer_wrk'])}",
        "- exchange req/s / peer req/s with the same generator: "
        f"{fmt_ratio(ratios['exchange_rate_vs_peer_same_generator'])}",
        "- exchange p99 / peer p99, each at half of its peak: "
        f"{fmt_ratio(ratios['exchange_p99_vs_peer_p99_at_half_peak'])}",
        "",
        "## Targets",
        "",
        "- token exchange at least 2x the peer's rate: "
        f"{targets['exchange_at_least_2x_peer']}",
        "- token exchange p99 under 10 ms at half of peak: "
        f"{targets['exchange_p99_under_10ms_at_half_peak']}",
        "- middleware overhead under 100 us: "
        f"{targets['middleware_overhead_under_100us']}",
        "",
        *ceiling_lines(results["summary"].get("ceiling")),
    ]
    if results.get("agentiam_missing"):
        lines += [f"agentiam was not measured: {results['agentiam_missing']}", ""]
    return lines


def ceiling_lines(found: dict[str, Any] | None) -> list[str]:
    if not found:
        return []
    return [
        "## Ceiling of one process",
        "",
        "CPU time that an exchange cannot go below in one process on this machine, "
        "from bench/ceiling.py:",
        "",
        f"- HTTP stack alone (the bare app's server CPU per request): "
        f"{found['http_cpu_us']:.1f} us",
        f"- ES256 verify of the DPoP proof: {found['es256_verify_us']:.1f} us",
        f"- ES256 sign of the new token: {found['es256_sign_us']:.1f} us",
        f"- sum: {found['floor_cpu_us']:.1f} us, at most "
        f"{found['rate_per_s']:,.0f} exchanges/s on one core, "
        f"{fmt_ratio(found['ratio_vs_peer_wrk'])} times the peer's wrk rate",
        "",
    ]


def check_and_command_lines(results: dict[str, Any]) -> list[str]:
    peer = results["peer_token"]
    lines = [
        "## Token checks",
        "",
        "One token from the peer was verified before the runs: header "
        f"`{peer['header']}`, claims {peer['claims']}.",
        "",
        *agentiam_token_lines(results),
        "## Commands",
        "",
    ]
    for name, command in results["commands"].items():
        lines.append(f"- {name}: `{command}`")
    lines.append("")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        *header_lines(results),
        *token_endpoint_lines(results),
        *middleware_lines(results),
        *comparison_lines(results),
        *check_and_command_lines(results),
    ]
    return "\n".join(lines)
