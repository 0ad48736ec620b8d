"""The live settings TOML is checked at load, every section and field (issue 13, finding 4):
a wrong type, a value out of range or an unknown key is refused naming the file, line,
section and field, before any process starts; ``twinfeed live`` prints one line and exits 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from twinfeed.live.brain.session import load_settings
from twinfeed.live.brain.settings_check import SettingsError

TWINFEED = str(Path(sys.executable).parent / "twinfeed")  # the console script of this venv

BAD = [
    # (section, line, what the message must say)
    ('[risk]\nmax_position = "lots"', "[risk] max_position: expected a number, got 'lots'"),
    ('[session]\nduration_s = "ten"', "[session] duration_s: expected a number, got 'ten'"),
    (
        '[faults]\nstale_after_heartbeats = "x"',
        "[faults] stale_after_heartbeats: expected a number, got 'x'",
    ),
    ('[live]\nsymbols = "BTCUSDT"', "[live] symbols: expected a list of strings, got 'BTCUSDT'"),
    ("[live]\nsymbols = []", "[live] symbols: expected a non-empty list of symbols"),
    ("[risk]\nmax_open_orders = 2.5", "[risk] max_open_orders: expected an integer, got 2.5"),
    ("[risk]\nmax_order_qty = -1", "[risk] max_order_qty: expected a value > 0, got -1"),
    ("[risk]\nkill_switch = 1", "[risk] kill_switch: expected true or false, got 1"),
    ("[risk]\nburst = true", "[risk] burst: expected an integer, got True"),
    ("[live]\npoll_timeout_s = nan", "[live] poll_timeout_s: expected a number, got nan"),
    ('[faults]\npolicy = "panic"', "[faults] policy: expected 'flatten' or 'hold', got 'panic'"),
    ('[session]\nspeed = "fast"', "[session] speed: expected a number > 0 or \"max\", got 'fast'"),
    ("[session]\nspeed = 0", '[session] speed: expected a number > 0 or "max", got 0'),
    ('[strategy]\nspec = "nocolon"', '[strategy] spec: expected "module:Class"'),
    ("[strategy]\nparams = 3", "[strategy] params: expected a table, got 3"),
    (
        "[risk]\nmax_postion = 1.0",
        "[risk] unknown setting 'max_postion' (did you mean 'max_position'?)",
    ),
    ("[sesion]\nspeed = 2", "unknown section [sesion] (did you mean 'session'?)"),
    ("risk = 3", "[risk] must be a table, got 3"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[b[1][:40] for b in BAD])
def test_wrong_settings_are_refused_at_load_naming_file_line_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "live.toml"
    path.write_text("# live settings\n\n" + text + "\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    text_of = str(raised.value)
    assert message in text_of, text_of
    assert text_of.startswith(f"{path}:"), text_of
    if "section [" not in message and "must be a table" not in message:
        assert text_of.startswith(f"{path}:4: "), text_of  # the line of the field


def test_good_settings_load_with_their_types(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text(
        "[session]\nspeed = 3\nduration_s = 10\n[live]\nsymbols = ['BTCUSDT', 'ETHUSDT']\n"
        "[risk]\nmax_position = 1\nkill_switch = false\n[faults]\nstale_after_heartbeats = 30\n"
        '[strategy]\nspec = "twinfeed.strategies.market_maker:MarketMaker"\n'
        "params = { quote_qty = 0.002 }\n"
    )
    settings = load_settings(path)
    assert settings.speed == 3.0 and settings.duration_s == 10.0
    assert settings.live.symbols == ("BTCUSDT", "ETHUSDT")
    assert settings.risk.max_position == 1.0 and isinstance(settings.risk.max_position, float)
    assert settings.faults.stale_after_heartbeats == 30.0
    assert settings.params == {"quote_qty": 0.002}
    path.write_text('[session]\nspeed = "max"\n')
    assert load_settings(path).speed == "max"


def test_twinfeed_live_prints_one_line_and_exits_nonzero(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text('[risk]\nmax_position = "lots"\n')
    done = subprocess.run(
        [TWINFEED, "live", "--config", str(path), "--db", str(tmp_path / "trade.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "[risk] max_position: expected a number" in lines[0], lines
    assert not (tmp_path / "trade.duckdb").exists()  # refused before the session started
