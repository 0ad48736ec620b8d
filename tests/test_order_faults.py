"""Order-side fault drill with real processes on loopback: the order venue drops and comes back.

twinfeed-venue replays the bundled capture, the paper venue runs in the test process, the
ingest writes the ring, and a brain subprocess (LiveTrader with its fault parts, the example market maker)
trades. Once it has fills and working orders the paper venue is suspended for ~1.5 s (its
listening socket closed, open connections reset; orders keep matching the replay) while the
replay goes on, then resumed on the same port. Asserted: nothing the brain sent while the link
was down reached the venue, the brain reconciled (a ``venue_reconciled`` row; fills, position and
open orders agree with the venue) and traded again after the restore. The restore -> trading
resumed figure is printed (``docs/faults.md``), not asserted tightly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from paper_stack import paper_stack, wait_for

pytestmark = pytest.mark.slow

SECRET = "c" * 8 + "0rd3rf4u1t5" + "7" * 45
API_KEY = "linkkey" + "b" * 25

_BRAIN = """
import json, logging, os, sys
from twinfeed import FeatureConfig
from twinfeed.live.brain import LiveConfig, LiveTrader, RiskConfig, RiskManager, TradeDB
from twinfeed.live.brain.entry import PortEntry
from twinfeed.venues.binance.adapter import BinanceVenue
from twinfeed.live.brain.faults import FaultConfig
from twinfeed.live.feed import Feed
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.research.backtest import load_strategy

logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
ring, url, db, seconds = sys.argv[1:]
config = FeatureConfig.default()
feed = Feed.open(ring, expected_fingerprint=config.fingerprint, start="latest")
entry = PortEntry(
    BinanceVenue(
        OrderGateway(
            url,
            os.environ["TWINFEED_API_KEY"],
            os.environ["TWINFEED_API_SECRET"],
            stream_url=os.environ["TWINFEED_STREAM_URL"],
        )
    )
)
strategy = load_strategy("twinfeed.strategies.market_maker:MarketMaker")({})
trader = LiveTrader(
    LiveConfig(drain_timeout_s=3.0), strategy, entry, feed, TradeDB(db), RiskManager(RiskConfig()),
    faults=FaultConfig(),
)
summary = trader.run(duration_s=float(seconds))
print("SUMMARY " + json.dumps(summary.to_dict()), flush=True)
print("VENUE " + json.dumps(trader.order_link.episodes), flush=True)
entry.close()
"""


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("order_faults")
    script = tmp / "brain.py"
    script.write_text(_BRAIN)
    db = tmp / "trade.duckdb"
    seen: dict[str, Any] = {"db": db}
    with paper_stack(tmp, "ofaults", API_KEY, SECRET) as stack:
        paper, venue = stack.paper, stack.venue
        out_path = tmp / "brain.out"
        with open(out_path, "wb") as out:
            brain = subprocess.Popen(
                [sys.executable, str(script), stack.ring, paper.url, str(db), "14"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=stack.env,
            )
        try:
            wait_for(
                "fills and working orders at the venue",
                lambda: len(venue.user_trades("BTCUSDT")) >= 2 and venue.open_orders("BTCUSDT"),
                20,
            )
            seen["open_at_drop"] = len(venue.open_orders("BTCUSDT"))
            seen["trades_at_drop"] = len(venue.user_trades("BTCUSDT", limit=1000))
            seen["journal_at_drop"] = len(paper.journal)
            seen["suspend_wall_ns"] = time.time_ns()
            # The user-data websocket drops with the link: the events of the outage are
            # lost, fills made meanwhile reach the brain only through reconciliation. (Under
            # the venue's lock: no trade slips between the count and the suspend.)
            with paper._lock:  # noqa: SLF001
                paper.suspend()
                seen["trades_at_drop"] = len(paper._trades)  # noqa: SLF001
                seen["journal_at_drop"] = len(paper.journal)
            time.sleep(1.5)  # the replay goes on; resting orders may fill
            seen["journal_while_down"] = len(paper.journal) - seen["journal_at_drop"]
            venue_trades_now = list(paper._trades)  # noqa: SLF001
            seen["trade_ids_while_down"] = [
                int(t["id"]) for t in venue_trades_now[seen["trades_at_drop"] :]
            ]
            paper.resume()
            seen["resume_wall_ns"] = time.time_ns()
            brain.wait(timeout=40)
        finally:
            if brain.poll() is None:
                brain.kill()
                brain.wait()
        text = out_path.read_text(errors="replace")
        seen["output"] = text
        seen["exit_code"] = brain.returncode
        seen["venue_trades"] = venue.user_trades("BTCUSDT", limit=1000)
        seen["venue_position"] = float(venue.positions("BTCUSDT")[0]["positionAmt"])
        seen["venue_open"] = venue.open_orders("BTCUSDT")
        seen["journal"] = list(paper.journal)
    lines = seen["output"].splitlines()
    seen["summary"] = next((json.loads(x[8:]) for x in lines if x.startswith("SUMMARY ")), {})
    seen["episodes"] = next((json.loads(x[6:]) for x in lines if x.startswith("VENUE ")), [])
    return seen


def _db(outage: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(outage["db"]), read_only=True)


def test_outage_detected_reconciled_and_resumed(outage: dict[str, Any]) -> None:
    assert outage["exit_code"] == 0, outage["output"][-3000:]
    episodes = outage["episodes"]
    assert len(episodes) == 1, episodes
    episode = episodes[0]
    assert outage["suspend_wall_ns"] <= episode["down_wall_ns"] < outage["resume_wall_ns"]
    assert episode["up_wall_ns"] > outage["resume_wall_ns"]
    assert episode["trading_resumed"] is True
    assert outage["journal_while_down"] == 0  # unreachable means unreachable
    detect = (episode["down_wall_ns"] - outage["suspend_wall_ns"]) / 1e9
    to_up = (episode["up_wall_ns"] - outage["resume_wall_ns"]) / 1e9
    con = _db(outage)
    first_order = con.execute(
        "SELECT min(submit_wall_ns) FROM orders WHERE submit_wall_ns > ? AND state IN "
        "('acked', 'partially_filled', 'filled', 'cancelled')",
        [episode["up_wall_ns"]],
    ).fetchall()[0][0]
    assert first_order is not None, "no order accepted after the restore"
    to_order = (first_order - outage["resume_wall_ns"]) / 1e9
    reconcile = episode["reconcile"]
    print(
        f"\nsuspend -> detected {detect:.3f} s; restore -> reconciled, trading {to_up:.3f} s; "
        f"restore -> first accepted order {to_order:.3f} s; down {episode['seconds_down']:.3f} s;"
        f" venue trades while down {outage['trade_ids_while_down']}; reconcile {reconcile}"
    )
    assert 0 <= to_up < 10.0  # generous: the figure is reported, not asserted
    checks = [
        row[0] for row in con.execute('SELECT "check" FROM risk_events ORDER BY wall_ns').fetchall()
    ]
    assert checks.count("venue_disconnected") == 1
    assert checks.count("venue_reconciled") == 1
    assert checks.count("venue_resumed") == 1
    assert "venue_reconcile_mismatch" not in checks
    detail = json.loads(
        con.execute(
            "SELECT detail FROM risk_events WHERE \"check\" = 'venue_reconciled'"
        ).fetchall()[0][0]
    )
    assert detail["position_mismatch"] == {}
    assert detail["open_orders"] == detail["venue_open_orders"]
    assert detail["db_only_trades"] == [] and detail["foreign_trades"] == []
    # The stream lost the outage's events: its fills were booked from userTrades.
    assert set(outage["trade_ids_while_down"]) <= set(detail["fills_added"])


def test_nothing_reached_the_venue_while_down(outage: dict[str, Any]) -> None:
    episode = outage["episodes"][0]
    con = _db(outage)
    window = con.execute(
        "SELECT client_id, state, reason FROM orders WHERE submit_wall_ns > ? AND "
        "submit_wall_ns < ?",
        [episode["down_wall_ns"], episode["up_wall_ns"]],
    ).fetchall()
    at_venue = {
        entry.payload["client_id"] for entry in outage["journal"] if entry.action == "submit"
    }
    reached = [row for row in window if row[0] in at_venue]
    assert reached == []
    for client_id, state, reason in window:
        assert state == "rejected", (client_id, state, reason)
        assert reason.startswith(("risk: opening risk blocked", "venue: -1 not sent")), reason


def test_trade_db_agrees_with_the_venue(outage: dict[str, Any]) -> None:
    con = _db(outage)
    db_ids = sorted(row[0] for row in con.execute("SELECT trade_id FROM fills").fetchall())
    venue_ids = sorted(int(trade["id"]) for trade in outage["venue_trades"])
    assert len(venue_ids) < 1000  # one page: every venue trade is compared
    assert db_ids == venue_ids  # nothing lost, nothing doubled
    signed = con.execute(
        "SELECT coalesce(sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END), 0) FROM fills"
    ).fetchall()[0][0]
    assert signed == pytest.approx(outage["venue_position"], abs=1e-9)
    assert outage["summary"]["reconciled"] is True, outage["output"][-3000:]
    open_in_db = con.execute(
        "SELECT count(*) FROM orders WHERE state IN ('new', 'acked', 'partially_filled')"
    ).fetchall()[0][0]
    assert open_in_db == 0 and outage["venue_open"] == []
    assert SECRET not in outage["output"]
    assert Path(outage["db"]).read_bytes().find(SECRET.encode()) < 0


class _Gateway:
    """An OrderGateway stand-in whose new_order fails with a given VenueError."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0
        self.queries = 0

    def new_order(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        raise self.error

    def order(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        """The query that settles a lost answer: as unreachable as the order was."""
        self.queries += 1
        raise self.error


class _DB:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def risk_event(self, _ts: int, _cid: str, check: str, reason: str, _detail: Any) -> None:
        self.events.append((check, reason))


def _link(error: Exception, **options: Any) -> tuple[Any, Any, _Gateway, _DB]:
    from types import SimpleNamespace

    from twinfeed.live.brain.entry import PortEntry
    from twinfeed.live.brain.oms import OrderManager
    from twinfeed.live.brain.order_faults import OrderLink
    from twinfeed.live.brain.risk import RiskManager
    from twinfeed.venues.binance.adapter import BinanceVenue

    gateway, db = _Gateway(error), _DB()
    entry = PortEntry(BinanceVenue(gateway, stream=False))
    trader = SimpleNamespace(
        gateway=entry, risk=RiskManager(), oms=OrderManager(), db=db, ctx=SimpleNamespace(now=0)
    )
    return OrderLink(trader, **options), entry, gateway, db


def test_rate_limit_backs_off_without_resubmitting() -> None:
    from twinfeed.orders import Order
    from twinfeed.venues.binance.errors import venue_error
    from twinfeed.venues.errors import NOT_SENT, VenueError

    link, entry, gateway, db = _link(
        venue_error(-1003, "Too many requests.", 429), rate_limit_backoff_s=0.2
    )
    with pytest.raises(VenueError) as refused:
        entry.send_order(Order("a1", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert refused.value.rate_limited and gateway.calls == 1
    assert [check for check, _ in db.events] == ["venue_rate_limited"]
    assert link.state == "rate_limited" and link.up  # not a disconnect
    with pytest.raises(VenueError) as held:  # held locally: the venue sees nothing
        entry.send_order(Order("a2", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert held.value.code == NOT_SENT and gateway.calls == 1
    time.sleep(0.25)
    link.step()
    assert entry.hold is None and link.state == "up"
    with pytest.raises(VenueError):  # sent again (a new order, not a resubmission)
        entry.send_order(Order("a3", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert gateway.calls == 2
    assert link._rate_backoff == pytest.approx(0.4)  # noqa: SLF001 - doubled on a repeat


def test_lost_order_request_is_pending_and_link_down() -> None:
    from twinfeed.orders import Order
    from twinfeed.venues.binance.errors import venue_error
    from twinfeed.venues.errors import NOT_SENT, VenueError

    link, entry, gateway, db = _link(venue_error(0, "no answer: connection reset"))
    report = entry.send_order(Order("b1", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert report.state == "new"  # outcome unknown: reconciliation settles it
    assert gateway.queries == 1  # asked once by its client id, not sent again
    assert not link.up and link.blocking and link.trader.risk.opening_blocked
    assert [check for check, _ in db.events] == ["venue_disconnected"]
    with pytest.raises(VenueError) as held:
        entry.send_order(Order("b2", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert held.value.code == NOT_SENT and gateway.calls == 1


def test_plain_rejection_is_not_a_fault() -> None:
    from twinfeed.orders import Order
    from twinfeed.venues.binance.errors import venue_error
    from twinfeed.venues.errors import VenueError

    link, entry, gateway, db = _link(venue_error(-1111, "Precision is over the maximum."))
    with pytest.raises(VenueError):
        entry.send_order(Order("c1", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert link.state == "up" and entry.hold is None and db.events == []


def test_rate_limit_holds_at_least_the_venues_retry_after() -> None:
    from twinfeed.orders import Order
    from twinfeed.venues.binance.errors import venue_error
    from twinfeed.venues.errors import VenueError

    limited = venue_error(-1003, "Too many requests.", 429, {"Retry-After": "5"})
    link, entry, gateway, db = _link(limited, rate_limit_backoff_s=0.2)
    with pytest.raises(VenueError):
        entry.send_order(Order("d1", 0, "buy", 0.01, 100.0), "BTCUSDT")
    assert link._rate_backoff == pytest.approx(5.0)  # noqa: SLF001 - not the local 0.2 s
    time.sleep(0.25)
    link.step()
    assert entry.hold is not None and link.state == "rate_limited"
