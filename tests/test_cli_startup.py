"""The `enlarge` command starts light: its help and `enlarge models` never import torch, and every command's
own parser still builds when that command is named. (Start-up time itself is measured by
benchmarks/cli_startup.py, not here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from enlarge.cli.main import COMMANDS, build_parser, main

HEAVY = ("torch", "fastapi")


def modules_loaded(code: str) -> set[str]:
    """The heavy modules in sys.modules after running `code` in a fresh interpreter using this tree."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_parser_without_a_command_imports_no_torch() -> None:
    assert modules_loaded("import enlarge.cli.main as m\nm.build_parser()") == set()


def test_models_command_imports_no_torch() -> None:
    code = "import contextlib, io\nfrom enlarge.cli.main import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
    assert modules_loaded(code + "    main(['models'])") == set()


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    listing = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    for name, command in COMMANDS.items():
        assert f" {name} " in listing and " ".join(command.help.split()) in listing


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_builds_its_own_parser(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`enlarge NAME --help` imports NAME's module and shows its options (usage names the command)."""
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: enlarge {name}")


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["enlarge-everything"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
