"""Every sub-command is wired: its --help prints and exits 0 (catches clashing options)."""

from __future__ import annotations

import pytest

from blurbkit.cli.main import COMMAND_MODULES, build_parser, main


def test_every_listed_command_is_registered():
    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)
    assert registered == set(COMMAND_MODULES)


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_help_of_each_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: blurbkit" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
