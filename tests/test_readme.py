"""The README stays true to the code: its command table lists every command the CLI has (and
nothing it lacks), and each "contract N" the code cites is a numbered contract in it."""

from __future__ import annotations

import re

import click
from conftest import REPO
from twinfeed.cli import main

README = (REPO / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "twinfeed") -> set[str]:
    found = set()
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found |= _commands(command, path)
        else:
            found.add(path)
    return found


def _documented() -> set[str]:
    """Commands named in the first cell of the README's command table, `a\\|b` alternatives
    expanded (`twinfeed ctl [...] status\\|pause` -> ctl status, ctl pause)."""
    section = README[README.index("## Command line") : README.index("## From backtest to live")]
    found = set()
    for cell in re.findall(r"^\| `([^`]+)`", section, flags=re.MULTILINE):
        head: list[str] = []
        for word in re.sub(r"\[[^\]]*\]", " ", cell).split():
            if word.startswith("-") or word.isupper() or "." in word or "/" in word:
                found.add(" ".join(head))  # the arguments start here
                break
            if "\\|" in word:
                found |= {" ".join([*head, alt]) for alt in word.split("\\|")}
                break
            head.append(word)
        else:
            found.add(" ".join(head))
    for extra in re.findall(r"`(twinfeed parity \w+)", section):
        found.add(extra)
    return found


def test_command_table_is_complete() -> None:
    assert _commands(main) <= _documented(), _commands(main) - _documented()
    assert _documented() <= _commands(main), _documented() - _commands(main)


def test_cited_contracts_are_numbered_in_the_readme() -> None:
    contracts = README[README.index("## Contracts") : README.index("### Record columns")]
    numbered = {int(n) for n in re.findall(r"^(\d+)\. \*\*", contracts, flags=re.MULTILINE)}
    assert numbered == set(range(1, len(numbered) + 1))
    cited = set()
    for path in [*REPO.glob("python/**/*.py"), *REPO.glob("features-rs/*/src/**/*.rs")]:
        text = path.read_text()
        assert "DESIGN.md, contract" not in text and "of DESIGN.md" not in text, path
        cited |= {int(n) for n in re.findall(r"\bcontract (\d+)\b", text)}
    assert cited and cited <= numbered, cited - numbered
