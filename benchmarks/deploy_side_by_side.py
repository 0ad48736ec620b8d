"""Backtest -> artifact -> ``twinfeed live --artifact``, side by side (issue 14).

For each capture (the bundled synthetic one and the real USD-M and spot recordings in
../shared/data/real), runs the example MarketMaker in ``twinfeed backtest``'s way (the
shipped instruments, the live brain's default risk limits), writes the artifact, then deploys
that artifact with a paper-trading session replaying the same capture at ``--speed`` and prints
orders, refusals (by reason) and fills of both. Not a timing benchmark: it counts what happened.

    .venv/bin/python benchmarks/deploy_side_by_side.py [--speed 20] [--only usdm] [--json OUT]

What to expect: the same symbol on both sides and no precision or symbol refusals live
(``-1111``, ``-4014``, ``-4023``, ``-1121``, ``-1013``). Fills still differ: the live side's
decisions run on wall-clock batches of what the ring delivered, at a replay speed, with real
order-entry round trips; the backtest's on a fixed event-time grid (the trade-parity issue).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from twinfeed.live.brain.risk import RiskConfig
from twinfeed.live.brain.session import LiveSettings, run_session
from twinfeed.live.venue import BUNDLED_CAPTURE
from twinfeed.research.backtest import Backtest
from twinfeed.strategies.market_maker import MarketMaker

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
CAPTURES = {
    "bundled": BUNDLED_CAPTURE,
    "usdm": REAL / "binance-usdm" / "btcusdt_20240808.gz",
    "spot": REAL / "binance-spot" / "btcusdt_20240808.gz",
}
PRECISION_OR_SYMBOL = ("-1111", "-4014", "-4023", "-1121", "-1013")


def side_by_side(name: str, capture: Path, speed: float, work: Path) -> dict[str, Any]:
    result = Backtest(MarketMaker, capture, risk=RiskConfig()).run()
    artifact = result.write_artifact(work / name / "artifact.json")
    orders = result.orders
    rejected = orders.filter(orders["state"] == "rejected")
    backtest_refusals: dict[str, int] = {}
    for reason in rejected["reason"].to_list():
        backtest_refusals[reason.split(" (")[0][:60]] = backtest_refusals.get(reason, 0) + 1
    settings = LiveSettings(
        capture=str(capture),
        speed=speed,
        db=str(work / name / "trade.duckdb"),
        artifact=str(artifact),
        settle_s=1.0,
    )
    session = run_session(settings, work_dir=work / name / "session")
    summary = session.summary
    live_refusals = dict(summary.refusals)
    return {
        "capture": str(capture),
        "symbols": result.symbols,
        "speed": speed,
        "backtest": {
            "orders": int(result.metrics["orders"]),
            "refused": int(result.metrics["orders_rejected"]),
            "refusals": backtest_refusals,
            # Post-only quotes that would cross: the engine expires them; live they are -5022.
            "post_only_expired": int(result.metrics["orders_expired"]),
            "fills": int(result.metrics["fills"]),
        },
        "live": {
            "orders": summary.orders,
            "refused": summary.risk_rejections + summary.venue_rejections,
            "refusals": live_refusals,
            "fills": summary.fills,
            "status": summary.status,
        },
        "precision_or_symbol_refusals": sum(
            count
            for reason, count in live_refusals.items()
            if any(code in reason for code in PRECISION_OR_SYMBOL)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--only", choices=sorted(CAPTURES), action="append")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="twinfeed-deploy-") as tmp:
        for name in args.only or list(CAPTURES):
            capture = CAPTURES[name]
            if not capture.exists():
                print(f"{name}: {capture} not found, skipped")
                continue
            row = side_by_side(name, capture, args.speed, Path(tmp))
            rows.append({"name": name, **row})
            back, live = row["backtest"], row["live"]
            print(
                f"{name:8} {','.join(row['symbols'])} @ {args.speed:g}x | backtest: "
                f"{back['orders']} orders, {back['refused']} refused, "
                f"{back['post_only_expired']} post-only expired, {back['fills']} fills | "
                f"live: {live['orders']} orders, {live['refused']} refused, {live['fills']} "
                f"fills | precision/symbol refusals live: {row['precision_or_symbol_refusals']}"
            )
            for side in ("backtest", "live"):
                for reason, count in sorted(row[side]["refusals"].items(), key=lambda x: -x[1]):
                    print(f"    {side} refused {count} x {reason}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
