"""``teledispatch completion bash|zsh``: a completion script written from the parser itself.

Generated rather than kept by hand so a new verb or flag completes without anyone
remembering to edit a script. Verbs complete at the first word, then that verb's flags (and
sub-verbs, e.g. ``db upgrade``); other words complete as file names (``--csv``, ``--job``).
zsh runs the bash function through ``bashcompinit``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

PROG = "teledispatch"


def _words(parser: argparse.ArgumentParser) -> list[str]:
    """A parser's flags and sub-command names."""
    words: list[str] = []
    for action in parser._actions:
        words += [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._SubParsersAction) or (
            not action.option_strings and action.choices
        ):
            words += list(action.choices or ())
    return words


def _verbs(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {name: _words(p) for name, p in action.choices.items()}
    return {}


def bash_script(parser: argparse.ArgumentParser) -> str:
    verbs = _verbs(parser)
    cases = "\n".join(f'        {verb}) words="{" ".join(w)}" ;;' for verb, w in verbs.items())
    top = " ".join([*verbs, *[w for w in _words(parser) if w.startswith("--")]])
    return f"""# {PROG} completion for bash: eval "$({PROG} completion bash)"
_{PROG}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" words
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=( $(compgen -W "{top}" -- "$cur") )
        return
    fi
    case "${{COMP_WORDS[1]}}" in
{cases}
        *) words="" ;;
    esac
    if [[ "$cur" == -* || -n "$words" && "$COMP_CWORD" -eq 2 && "$cur" != */* ]]; then
        COMPREPLY=( $(compgen -W "$words" -- "$cur") )
    fi
    if [ "${{#COMPREPLY[@]}}" -eq 0 ]; then
        COMPREPLY=( $(compgen -f -- "$cur") )
    fi
}}
complete -o filenames -F _{PROG} {PROG}
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return (
        f'# {PROG} completion for zsh: eval "$({PROG} completion zsh)"\n'
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )


def register(sub: Any, build_parser: Callable[[], argparse.ArgumentParser]) -> None:
    """Add ``completion`` to ``sub``; ``build_parser`` gives the whole CLI's parser."""
    c = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    c.add_argument("shell", choices=("bash", "zsh"))

    def cmd(args: argparse.Namespace) -> int:
        make = bash_script if args.shell == "bash" else zsh_script
        print(make(build_parser()), end="")
        return 0

    c.set_defaults(func=cmd)
