"""Rendering parity results with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from twinfeed._time import utc_iso_ns
from twinfeed.parity.check import ParityReport
from twinfeed.parity.compare import Comparison


def print_comparison(comparison: Comparison, console: Console) -> None:
    status = "[green]EQUAL" if comparison.equal else "[red]DIFFERENT"
    gating = "" if comparison.gating else " (informational)"
    console.print(f"[bold]{comparison.label}[/]{gating}: {status}")
    console.print(
        f"  {comparison.a_name}: {comparison.count_a:,} records  sha256 {comparison.digest_a}\n"
        f"  {comparison.b_name}: {comparison.count_b:,} records  sha256 {comparison.digest_b}"
    )
    if comparison.note:
        console.print(f"  compared: {comparison.note}")
    if comparison.excluded_fields:
        console.print(f"  excluded fields: {', '.join(comparison.excluded_fields)}")
    if comparison.excluded_kinds:
        console.print(f"  excluded kinds: {', '.join(comparison.excluded_kinds)}")
    first = comparison.first
    if first is None:
        return
    console.print(f"  [red]first divergence at record {first.index}")
    for name, capture_line in (("a", first.line_a), ("b", first.line_b)):
        if capture_line is not None:
            console.print(
                f"  capture line ({name}): {capture_line.path}:{capture_line.line}: "
                f"{capture_line.text[:200]}"
            )
    # Compact (14 + 2 x 30 columns fit 80), and values fold rather than end in an ellipsis:
    # the digits that differ are often the last ones.
    table = Table(box=None, pad_edge=False, show_lines=False, header_style="bold underline")
    table.add_column("field", no_wrap=True, min_width=14)
    for name in (comparison.a_name, comparison.b_name):
        table.add_column(name, overflow="fold", min_width=30)
    differing = {name for name, _, _ in first.fields}
    record_a, record_b = first.record_a or {}, first.record_b or {}
    for name in record_a.keys() | record_b.keys() if not record_a or not record_b else record_a:
        mark = "[red]" if name in differing else ""
        values = [record.get(name) for record in (record_a, record_b)]
        if name.endswith("_ns"):
            # Human and exact: UTC ISO to the nanosecond (a byte-for-byte comparison).
            values = [utc_iso_ns(v) if isinstance(v, int) else v for v in values]
        table.add_row(f"{mark}{name}", *(f"{mark}{value}" for value in values))
    console.print(table)


def print_report(report: ParityReport, console: Console) -> None:
    console.print(f"[bold]capture[/] {report.capture}")
    console.print(f"fingerprint {report.fingerprint}")
    binding = report.binding
    console.print(
        f"binding: twinfeed {binding['version']} {binding['profile']} git {binding['git_revision']}"
    )
    console.print(f"ingest:  {report.ingest_version}")
    live = report.live
    console.print(
        f"live path: {live['records']:,} records from {live['venue_messages']:,} venue messages "
        f"in {live['seconds']} s; faults {live['faults'] or 'none'}"
    )
    for comparison in report.comparisons:
        print_comparison(comparison, console)
    verdict = "[green]PARITY OK" if report.ok else "[red]PARITY FAILED"
    console.print(f"[bold]{verdict}")
