"""Every subcommand's --help shows each option's default and ends with examples; --version."""

import argparse
import re
from importlib import metadata

import pytest

from tfx_pipeline import cli


def _subcommands():
    parser = cli._parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return sorted(choices.items())


def _in_required_group(parser, action) -> bool:
    return any(group.required and action in group._group_actions for group in parser._mutually_exclusive_groups)


@pytest.mark.parametrize("name, parser", _subcommands())
def test_each_option_shows_its_default_and_the_help_ends_with_examples(name, parser):
    text = " ".join(parser.format_help().split())  # argparse wraps lines: compare on single spaces
    for action in parser._actions:
        if (not action.option_strings or action.required or isinstance(action, argparse._HelpAction)
                or _in_required_group(parser, action)):
            continue
        # the option's own help text as printed (the formatter's additions, %(default)s expanded)
        shown = parser._get_formatter()._expand_help(action)
        assert "default" in shown, (name, action.option_strings, shown)
        if action.default not in (None, False, ""):
            assert re.search(rf"default:? {re.escape(str(action.default))}\b", shown), (name, action.dest, shown)
            assert " ".join(shown.split()) in text
    examples = text.split("examples: ", 1)[1] if "examples: " in text else ""
    assert f"recdistill {name} " in examples, name


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"recdistill {metadata.version('recdistill')}"
