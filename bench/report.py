"""Turns a bench run's measurements into the printed lines and the markdown report."""

from __future__ import annotations

import statistics
from typing import Any

STAGES = ("to_flush", "flush_to_reply", "reply_to_send")
TARGETS = {
    "overhead_p50_ms": 50.0,
    "overhead_p99_ms": 250.0,
    "p50_vs_batcher": 10.0,
    "ingest_per_second": 300.0,
    "llm_calls_per_message": 0.3,
    "events_per_message": 8.0,
    "largest_run": 2000,
    "kib_per_conversation": 150.0,
}


def overhead_line(row: dict[str, Any]) -> str:
    lull, redis = row["lull"], row["redis"]
    stages = row.get("lull_stages_ms", {})
    steps = ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
    seam = row.get("seam_call_ms", {})
    return (
        f"  lull steps (median ms): {steps}; seam call p50 {seam.get('p50', 0):.0f} ms "
        f"p99 {seam.get('p99', 0):.0f} ms\n"
        f"  lull p50 {lull['p50_ms']:.0f} ms p99 {lull['p99_ms']:.0f} ms "
        f"({lull['unanswered_messages']} unanswered) | redis batcher p50 {redis['p50_ms']:.0f} "
        f"ms p99 {redis['p99_ms']:.0f} ms | {row['messages']} messages, {row['wall_s']:.0f} s"
        f" | {row.get('messages_per_signal', 1.0):.2f} messages per signal"
    )


def throughput_line(row: dict[str, Any]) -> str:
    return (
        f"ingest ({row.get('shape', 'one message per burst')}): {row['per_second']:.0f} "
        f"messages/s with {row['workers']} worker(s); "
        f"10 s windows {[round(w) for w in row['windows_per_second']]}; answered "
        f"{row.get('answered_per_second', 0):.0f}/s during the load, "
        f"{row.get('messages_per_signal', 1.0):.2f} messages per signal, "
        f"{row['unanswered_after_drain']} unanswered after a {row.get('drain_s', 0):.0f} s drain, "
        f"all answered {_all_answered(row)}"
    )


def _all_answered(row: dict[str, Any]) -> str:
    """When the run's backlog was answered, after the load; reports before 2026-12-05
    did not wait for it."""
    if "all_answered_s" not in row:
        return "(not measured)"
    if row["all_answered_s"] is None:
        return "not within the wait"
    return f"after {row['all_answered_s']:.0f} s"


def footprint_line(row: dict[str, Any]) -> str:
    return (
        f"footprint: {row['conversations']} open conversations, worker RSS "
        f"{row['rss_kib'] / 1024:.0f} MiB, {row['per_conversation_kib']:.1f} KiB each "
        f"with the warm-up, {row['marginal_kib']:.1f} KiB each once warm"
    )


def _median(rows: list[dict], path: tuple[str, ...]) -> float:
    values = []
    for row in rows:
        value: Any = row
        for part in path:
            value = value[part]
        values.append(value)
    return statistics.median(values)


def overhead_table(results: dict[str, Any]) -> tuple[list[str], dict]:
    lines = [
        "| workers | conversations | Lull p50 | Lull p99 | batcher p50 | batcher p99 "
        "| p50 ratio (batcher/Lull) | unanswered (Lull) | Lull steps, median ms "
        "(to flush / flush→reply stored / → send call) | seam call p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[int, int], list[dict]] = {}
    for row in results["overhead"]:
        groups.setdefault((row["workers"], row["conversations"]), []).append(row)
    medians = {}
    for (workers, scale), rows in sorted(groups.items()):
        lp50 = _median(rows, ("lull", "p50_ms"))
        lp99 = _median(rows, ("lull", "p99_ms"))
        rp50 = _median(rows, ("redis", "p50_ms"))
        rp99 = _median(rows, ("redis", "p99_ms"))
        unanswered = sum(r["lull"]["unanswered_messages"] for r in rows)
        medians[(workers, scale)] = (lp50, lp99, rp50, rp99)
        steps = [_median(rows, ("lull_stages_ms", k)) for k in STAGES]
        seam = [_median(rows, ("seam_call_ms", k)) for k in ("p50", "p99")]
        lines.append(
            f"| {workers} | {scale} | {lp50:.0f} ms | {lp99:.0f} ms | {rp50:.0f} ms "
            f"| {rp99:.0f} ms | {rp50 / max(lp50, 1e-9):.1f}× | {unanswered} "
            f"| {' / '.join(f'{v:.0f}' for v in steps)} "
            f"| {seam[0]:.0f} / {seam[1]:.0f} ms |"
        )
    return lines, medians


def cpu_table(results: dict[str, Any]) -> list[str]:
    """Where the time went: CPU ms per message by process, medians over the reps."""
    groups: dict[tuple[int, int], list[dict]] = {}
    for row in results["overhead"]:
        if row.get("cpu_ms_per_message"):
            groups.setdefault((row["workers"], row["conversations"]), []).append(row)
    if not groups:
        return []
    kinds = list(next(iter(groups.values()))[0]["cpu_ms_per_message"])
    lines = [
        "",
        "CPU per message (ms, all of a run's work: ingest, workflows, activities, sends; "
        "medians), and messages per signal (messages that met in flight share one):",
        "",
        "| workers | conversations | " + " | ".join(kinds) + " | messages per signal |",
        "|---|---|" + "---|" * (len(kinds) + 1),
    ]
    for (workers, scale), rows in sorted(groups.items()):
        cells = [f"{_median(rows, ('cpu_ms_per_message', kind)):.1f}" for kind in kinds]
        per_signal = statistics.median(r.get("messages_per_signal", 1.0) for r in rows)
        lines.append(f"| {workers} | {scale} | " + " | ".join(cells) + f" | {per_signal:.2f} |")
    return lines


def linger_note(load: dict[str, Any]) -> str:
    linger = load.get("signal_linger_s")
    if linger is None:
        return ""  # reports from before the seam held signals
    if linger == 0:
        return " The seam holds no message signal."
    return f" The seam may hold a burst's later message signals {linger:g} s for the next one."


def markdown(results: dict[str, Any]) -> str:
    out = [
        f"# Lull bench, {results['when']}",
        "",
        f"Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}. "
        f"Debounce {results['load']['debounce_s']:g} s (the batcher's 5 s scaled by 0.4, "
        f"gaps too), cap {results['load']['cap']} messages, echo LLM. Medians over the reps."
        + linger_note(results["load"]),
        "",
        "## Flush overhead (ideal flush moment → send call)",
        "",
    ]
    table, medians = overhead_table(results)
    out += table
    out += cpu_table(results)
    cost_row = next((r for r in results["overhead"] if "per_message_llm_calls" in r), None)
    if cost_row is not None:
        messages = cost_row["messages"]
        lull_calls = cost_row["lull"]["batches"]
        history = cost_row["history"]
        out += [
            "",
            "## Cost and history (100 conversations, rep 1)",
            "",
            "| system | LLM calls | per message | ratio to per-message bot |",
            "|---|---|---|---|",
            f"| Lull | {lull_calls} | {lull_calls / messages:.3f} "
            f"| {lull_calls / cost_row['per_message_llm_calls']:.2f} |",
            f"| Redis batcher | {cost_row['redis_llm_calls']} "
            f"| {cost_row['redis_llm_calls'] / messages:.3f} "
            f"| {cost_row['redis_llm_calls'] / cost_row['per_message_llm_calls']:.2f} |",
            f"| per-message bot | {cost_row['per_message_llm_calls']} | 1.000 | 1.00 |",
            "",
            f"History: {history['events'] / messages:.2f} events per message, "
            f"{history['events'] / max(lull_calls, 1):.1f} per burst, "
            f"{history['runs']} runs, largest run {history['largest_run']} events.",
        ]
        if history.get("by_kind"):
            out += ["", "| events from | per message |", "|---|---|"]
            for kind, count in sorted(history["by_kind"].items(), key=lambda kv: -kv[1]):
                out.append(f"| {kind} | {count / messages:.2f} |")
    if results.get("throughput"):
        out += ["", "## Ingest throughput (seam → signal-with-start, closed loop)", ""]
        out += [
            "| workers | load | ingested/s | 10 s windows | messages per signal "
            "| answered/s during the load | unanswered after drain (drain s) "
            "| all answered |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["throughput"]:
            out.append(
                f"| {row['workers']} | {row.get('shape', 'one message per burst')} "
                f"| {row['per_second']:.0f} | "
                f"{', '.join(str(round(w)) for w in row['windows_per_second'])} "
                f"| {row.get('messages_per_signal', 1.0):.2f} "
                f"| {row.get('answered_per_second', 0):.0f} "
                f"| {row['unanswered_after_drain']} ({row.get('drain_s', 0):.0f}) "
                f"| {_all_answered(row)} |"
            )
    if results.get("footprint"):
        out += ["", "## Worker memory with open conversations", ""]
        out += [
            "| conversations | worker RSS | idle → warm worker | per conversation, "
            "warm-up included | per conversation once warm |",
            "|---|---|---|---|---|",
        ]
        for row in results["footprint"]:
            idle = f"{row['baseline_kib'] / 1024:.0f} MiB"
            if "warm_kib" in row:
                warm = f"{idle} → {row['warm_kib'] / 1024:.0f} MiB"
                warm += f" ({row['warm_up_conversations']} conversations)"
                once_warm = f"{row['marginal_kib']:.1f} KiB"
            else:
                warm, once_warm = f"{idle} → not measured", "not measured"
            out.append(
                f"| {row['conversations']} | {row['rss_kib'] / 1024:.0f} MiB | {warm} "
                f"| {row['per_conversation_kib']:.1f} KiB | {once_warm} |"
            )
    out += ["", "## Targets", ""] + targets(results, medians, cost_row)
    return "\n".join(out) + "\n"


def targets(results: dict, medians: dict, cost_row: dict | None) -> list[str]:
    lines = []

    def check(name: str, ok: bool, detail: str) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {name} ({detail})")

    at_100 = medians.get((1, 100))
    if at_100:
        lp50, lp99, rp50, _ = at_100
        ratio = rp50 / max(lp50, 1e-9)
        check("overhead p50 ≤ 50 ms at 100", lp50 <= TARGETS["overhead_p50_ms"], f"{lp50:.0f} ms")
        check("overhead p99 ≤ 250 ms at 100", lp99 <= TARGETS["overhead_p99_ms"], f"{lp99:.0f} ms")
        check(
            "≥ 10× lower p50 than the batcher", ratio >= TARGETS["p50_vs_batcher"], f"{ratio:.1f}×"
        )
    for row in results.get("throughput", []):
        if row["workers"] == 1:
            rate, shape = row["per_second"], row.get("shape", "one message per burst")
            ok = rate >= TARGETS["ingest_per_second"]
            check(f"≥ 300 messages/s ingest, one worker, {shape}", ok, f"{rate:.0f}/s")
    if cost_row is not None:
        calls = cost_row["lull"]["batches"] / cost_row["messages"]
        ok = calls <= TARGETS["llm_calls_per_message"]
        check("LLM calls per message ≤ 0.3", ok, f"{calls:.3f}")
        history = cost_row["history"]
        per_message = history["events"] / cost_row["messages"]
        ok = per_message <= TARGETS["events_per_message"]
        check("≤ 8 history events per message", ok, f"{per_message:.2f}")
        largest = history["largest_run"]
        check("no run above 2,000 events", largest <= TARGETS["largest_run"], f"largest {largest}")
    for row in results.get("footprint", []):
        # Judged per cached conversation, the wording: the warm-up is the process's.
        # Reports from before the warm-up was measured have only the figure including it.
        raw = row["per_conversation_kib"]
        if "marginal_kib" in row:
            kib, detail = row["marginal_kib"], f"{row['marginal_kib']:.1f} KiB once warm, "
            detail += f"{raw:.1f} with the warm-up"
        else:
            kib, detail = raw, f"{raw:.1f} KiB, warm-up not measured"
        check(
            f"≤ 150 KiB per cached conversation at {row['conversations']}",
            kib <= TARGETS["kib_per_conversation"],
            detail,
        )
    return lines
