"""The benchmark's outputs: one printed table, the JSON document and the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

from .fleet import CE_KINDS, OURS, STOCK
from .stats import ratio

SCENARIO_LABELS = {
    "monitoring": "monitoring pass",
    "submission": "submit {submit}",
    "vmdirector": "VMDirector cycle",
}
QUANTITIES = (
    ("requests", "requests", "{:.0f}"),
    ("wall_s", "wall s", "{:.3f}"),
    ("cpu_s", "client CPU s", "{:.3f}"),
    ("process_cpu_s", "process CPU s", "{:.3f}"),
)
MEMORY = (("max_rss_mib", "peak RSS MiB (process)"), ("growth_mib", "RSS growth MiB (measuring)"))


def find(results: list[dict], n: int, kind: str, scenario: str) -> dict | None:
    return next((r for r in results if (r["n"], r["ce"], r["scenario"]) == (n, kind, scenario)), None)


def ratios(results: list[dict], sizes: list[int]) -> list[dict]:
    """stock/ours of the medians, for every scenario both CEs ran."""
    rows = []
    for n in sizes:
        for scenario in ("monitoring", "submission"):
            ours, stock = find(results, n, OURS, scenario), find(results, n, STOCK, scenario)
            if ours and stock:
                rows.append({
                    "n": n, "scenario": scenario,
                    "requests": ratio(stock["requests"]["median"], ours["requests"]["median"]),
                    "wall_s": ratio(stock["wall_s"]["median"], ours["wall_s"]["median"]),
                })
    return rows


def targets(results: list[dict], args=None) -> list[dict]:
    """The design targets, where the run has the N they speak of (issue 17's at N=5000)."""
    rows = []

    def add(name: str, goal: str, value: float | None, met: bool | None) -> None:
        status = "NOT MEASURED" if met is None else "PASS" if met else "FAIL"
        rows.append({"target": name, "goal": goal, "measured": value, "met": bool(met), "status": status})

    ours, stock = find(results, 1000, OURS, "monitoring"), find(results, 1000, STOCK, "monitoring")
    if ours and stock:
        for key, minimum, what in (("requests", 20, "cloud requests"), ("wall_s", 10, "wall time")):
            value = ratio(stock[key]["median"], ours[key]["median"])
            add(f"monitoring N=1000: {what} stock/ours", f">= {minimum}x", value,
                value is not None and value >= minimum)
    for n in sorted({r["n"] for r in results}):
        ours, stock = find(results, n, OURS, "submission"), find(results, n, STOCK, "submission")
        if ours and stock:
            value = ratio(stock["wall_s"]["median"], ours["wall_s"]["median"])
            add(f"submission N={n}: wall time stock/ours", ">= 5x", value, value is not None and value >= 5)
    director = find(results, 5000, OURS, "vmdirector")
    if director:
        value = director["cpu_s"]["median"]
        add("VMDirector cycle N=5000: client CPU s (listing + policy)", "< 2 s", value, value < 2)
    rows += _cycle_targets(results, add)
    return rows


def _cycle_targets(results: list[dict], add) -> list:
    ours, stock = find(results, 5000, OURS, "sd_steady_1"), find(results, 5000, STOCK, "sd_steady_1")
    first = find(results, 5000, OURS, "sd_first")
    if ours:
        value = ours["detail"]["monitoring"]["compute_requests"]
        add("SiteDirector cycle N=5000 1%: compute requests of all monitoring (1 project)", "<= 2", value,
            value <= 2)
        if first and first["detail"]["total"]["listing_bytes"]:
            value = 100 * ours["detail"]["monitoring"]["compute_bytes"] / first["detail"]["total"]["listing_bytes"]
            add("SiteDirector cycle N=5000 1%: monitoring bytes, % of one full listing", "<= 5 %", value,
                value <= 5)
    if ours and stock:
        value = ratio(stock["wall_s"]["median"], ours["wall_s"]["median"])
        add("SiteDirector cycle N=5000 1%: wall time stock/ours", ">= 50x", value,
            value is not None and value >= 50)
    director = find(results, 5000, OURS, "vmd_steady_1")
    if director:
        add("VMDirector steady cycle N=5000 1%: wall s", "< 0.5 s", director["wall_s"]["median"],
            director["wall_s"]["median"] < 0.5)
        add("VMDirector steady cycle N=5000 1%: client CPU s", "< 0.3 s", director["cpu_s"]["median"],
            director["cpu_s"]["median"] < 0.3)
        add("VMDirector steady cycle N=5000 1%: cloud requests (1 project)", "<= 2",
            director["requests"]["median"], director["requests"]["median"] <= 2)
        add("VMDirector steady cycle N=5000 1%: SQL statements", "<= 200", None, None)
        add("VMDirector first cycle, 779 deletions at 200 ms per DELETE: wall s", "< 15 s", None, None)
        add("CE process memory over 200 cycles", "flat", None, None)
    return []


def targets_text(rows: list[dict]) -> str:
    return "".join(
        f"target {row['target']}: {row['goal']}, measured "
        f"{'-' if row['measured'] is None else format(row['measured'], '.2f')} -> "
        f"{row.get('status') or ('PASS' if row['met'] else 'FAIL')}\n"
        for row in rows
    )


CYCLE_LABELS = {"sd_first": "SiteDirector first cycle", "vmd_first": "VMDirector first cycle"}
CYCLE_QUANTITIES = (
    ("requests", "requests", lambda e: e["detail"]["total"]["requests"], "{:.0f}"),
    ("monitoring_compute", "monitoring compute req", lambda e: e["detail"]["monitoring"]["compute_requests"],
     "{:.0f}"),
    ("bytes", "response MB", lambda e: e["detail"]["total"]["bytes"] / 1e6, "{:.3f}"),
    ("monitoring_bytes", "monitoring compute MB", lambda e: e["detail"]["monitoring"]["compute_bytes"] / 1e6,
     "{:.3f}"),
    ("wall_s", "wall s", lambda e: e["wall_s"]["median"], "{:.3f}"),
    ("cpu_s", "client CPU s", lambda e: e["cpu_s"]["median"] if e.get("cpu_s") else None, "{:.3f}"),
)


def _cycle_label(scenario: str) -> str:
    if scenario in CYCLE_LABELS:
        return CYCLE_LABELS[scenario]
    kind, _, percent = scenario.partition("_steady_")
    return f"{'SiteDirector' if kind == 'sd' else 'VMDirector'} cycle {percent}% changed"


def cycle_rows(results: list[dict], sizes: list[int], changes: list[float]) -> list[dict]:
    """Per N and cycle: each quantity for ours and stock, and stock/ours."""
    rows = []
    scenarios = ["sd_first", *(f"sd_steady_{c:g}" for c in changes), "vmd_first",
                 *(f"vmd_steady_{c:g}" for c in changes)]
    for n in sizes:
        for scenario in scenarios:
            ours, stock = find(results, n, OURS, scenario), find(results, n, STOCK, scenario)
            if not ours and not stock:
                continue
            for key, name, get, fmt in CYCLE_QUANTITIES:
                values = {kind: (get(e) if e else None) for kind, e in ((OURS, ours), (STOCK, stock))}
                quotient = ratio(values[STOCK], values[OURS]) if values[OURS] and values[STOCK] else None
                rows.append({"n": n, "cycle": scenario, "label": _cycle_label(scenario), "quantity": key,
                             "name": name, "format": fmt, "ours": values[OURS], "stock": values[STOCK],
                             "stock_over_ours": quotient})
    return rows


def cycle_table(doc: dict) -> str:
    settings = doc["settings"]
    lines = [f"Real cycles: {settings['latency_ms']:g} ms per request + {settings['per_server_ms']:g} ms per "
             f"server of a detailed listing; {settings['cycle_submit']} VMs submitted per SiteDirector cycle",
             f"{'N':>5}  {'cycle / measure':<58} {'ours':>12} {'stock':>12} {'stock/ours':>10}"]
    lines.append("-" * len(lines[-1]))
    for row in doc["cycles"]:
        cell = {k: "-" if row[k] is None else row["format"].format(row[k]) for k in (OURS, STOCK)}
        quotient = "" if row["stock_over_ours"] is None else f"{row['stock_over_ours']:.1f}x"
        lines.append(f"{row['n']:>5}  {row['label'] + ': ' + row['name']:<58} {cell[OURS]:>12} {cell[STOCK]:>12} "
                     f"{quotient:>10}")
    return "\n".join(lines) + "\n"


def _cell(entry: dict | None, key: str, fmt: str) -> str:
    if entry is None or entry.get(key) is None:
        return "-"
    s = entry[key]
    text = fmt.format(s["median"])
    if s["min"] != s["max"]:
        text += f" ({fmt.format(s['min'])}-{fmt.format(s['max'])})"
    return text


def table(doc: dict) -> str:
    """Median (min-max) over the repetitions; reps = ours/stock repetitions."""
    results, settings = doc["results"], doc["settings"]
    head = f"{'N':>5}  {'measure':<30} {'reps':>5}  {'ours':<24} {'stock':<24} {'stock/ours':>10}"
    lines = [head, "-" * len(head)]
    for n in settings["sizes"]:
        for scenario in ("monitoring", "submission", "vmdirector"):
            ours, stock = find(results, n, OURS, scenario), find(results, n, STOCK, scenario)
            if not ours and not stock:
                continue
            label = SCENARIO_LABELS[scenario].format(submit=settings["submit_count"])
            reps = f"{ours['repetitions'] if ours else '-'}/{stock['repetitions'] if stock else '-'}"
            for key, name, fmt in QUANTITIES:
                if all(e is None or e.get(key) is None for e in (ours, stock)):
                    continue
                quotient = ""
                if ours and stock and ours.get(key) and stock.get(key):
                    value = ratio(stock[key]["median"], ours[key]["median"])
                    quotient = "-" if value is None else f"{value:.1f}x"
                lines.append(f"{n:>5}  {label + ' ' + name:<30} {reps:>5}  {_cell(ours, key, fmt):<24} "
                             f"{_cell(stock, key, fmt):<24} {quotient:>10}")
        lines += _running_seen(results, n)
        memory = {m["ce"]: m for m in doc["memory"] if m["n"] == n}
        for key, name in MEMORY:
            if memory:
                values = {kind: memory[kind][key] if kind in memory else None for kind in CE_KINDS}
                quotient = ""
                if values[OURS] and values[STOCK]:
                    quotient = f"{ratio(values[STOCK], values[OURS]):.1f}x"
                lines.append(f"{n:>5}  {name:<30} {'':>5}  {_fmt_mem(values[OURS]):<24} "
                             f"{_fmt_mem(values[STOCK]):<24} {quotient:>10}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _running_seen(results: list[dict], n: int) -> list[str]:
    """getCEStatus's RunningJobs over the 4 CEs against the ACTIVE VMs there are."""
    seen, actual = {}, {}
    for kind in CE_KINDS:
        entry = find(results, n, kind, "monitoring")
        if entry is None:
            return []
        seen[kind] = sum(s["RunningJobs"] for s in entry["detail"]["ce_status"].values())
        actual[kind] = sum(s["RunningJobs"] for s in entry["detail"]["ce_truth"].values())
    same = actual[OURS] == actual[STOCK]
    label = f"RunningJobs seen (actual {actual[OURS] if same else f'{actual[OURS]}/{actual[STOCK]}'})"
    return [f"{n:>5}  {label:<30} {'':>5}  {seen[OURS]:<24} {seen[STOCK]:<24} {'':>10}"]


def _fmt_mem(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def write_json(doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def plot(doc: dict, path: Path) -> None:
    """Requests and wall time against N, both CEs, log-log, min-max as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, sizes = doc["results"], doc["settings"]["sizes"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {OURS: "-", STOCK: "--"}
    markers = {"monitoring": "o", "submission": "s", "vmdirector": "^"}
    for axis, (key, title) in zip(axes, (("requests", "cloud requests"), ("wall_s", "wall time (s)"))):
        for kind in CE_KINDS:
            for scenario in ("monitoring", "submission", "vmdirector"):
                points = [(n, find(results, n, kind, scenario)) for n in sizes]
                points = [(n, e[key]) for n, e in points if e is not None]
                if not points:
                    continue
                xs = [n for n, _ in points]
                ys = [s["median"] for _, s in points]
                err = [[s["median"] - s["min"] for _, s in points],
                       [s["max"] - s["median"] for _, s in points]]
                label = f"{kind}: {SCENARIO_LABELS[scenario].format(submit=doc['settings']['submit_count'])}"
                axis.errorbar(xs, ys, yerr=err, linestyle=styles[kind], marker=markers[scenario], capsize=3,
                              label=label)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("VMs per CE kind in the project (N)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"JenniferDIRAC CE (ours) vs DIRAC CloudCE (stock), 4 CEs, "
                 f"{doc['settings']['latency_ms']:g} ms per request")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
