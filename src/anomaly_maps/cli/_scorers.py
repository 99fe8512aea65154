"""Choosing scorers on the command line: ``--scorer``, ``--param`` and ``--list-scorers``.

The listing and the ``--param`` checks both come from the scorer registry
(:mod:`anomaly_maps.scoring`), so a new scorer shows up here without touching the CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AnomalyMapsError

if TYPE_CHECKING:
    from ..checkpoint import Checkpoint

__all__ = [
    "Scorers",
    "add_list_scorers",
    "add_scorer_options",
    "checkpoint_and_scorers",
    "describe_scorers",
    "scorer_params",
]

Scorers = list[tuple[str, dict[str, Any]]]
"""``(name, params)`` pairs, as :func:`~anomaly_maps.scoring.score_volume` takes them."""


def _cli_value(value: Any) -> str:
    """A default as it is typed on the command line (``false``, ``'l1'``, ``0.05``)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def describe_scorers() -> str:
    """Every registered scorer: description, models, paper, and each parameter's type,
    default, valid range and help; one block per scorer."""
    from ..scoring import get_scorer, list_scorers

    blocks = []
    for name in list_scorers():
        info = get_scorer(name)
        kinds = ", ".join(info.model_kinds)
        lines = [f"{name}: {info.description}", f"  models: {kinds}; paper (seed): {info.seed}"]
        width = max((len(p.name) for p in info.params), default=0)
        ranges = max((len(p.expected()) for p in info.params), default=0)
        for p in info.params:
            default = f"default {_cli_value(p.default)}"
            lines.append(
                f"  {p.name:<{width}}  {p.type.__name__:<5}  {default:<16}  "
                f"{p.expected():<{ranges}}  {p.help}".rstrip()
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class _ListScorers(argparse.Action):
    """Print :func:`describe_scorers` and exit, like ``--help`` (nothing else needed)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(describe_scorers())
        parser.exit()


def add_list_scorers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--list-scorers",
        action=_ListScorers,
        help="list the scorers, their models and parameters (type, default, range) and exit",
    )


def add_scorer_options(parser: argparse.ArgumentParser, *, required: bool, help: str) -> None:
    """``--scorer NAME`` (repeatable), ``--param [SCORER:]KEY=VALUE`` and ``--list-scorers``."""
    parser.add_argument("--scorer", action="append", required=required,
                        default=None if required else [], metavar="NAME",
                        help=f"{help} (repeat for several); see --list-scorers")  # fmt: skip
    parser.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE",
                        help="scorer parameter, e.g. n_smooth=16 or rec:sigma=2")  # fmt: skip
    add_list_scorers(parser)


def scorer_params(names: Sequence[str], pairs: Sequence[str]) -> Scorers:
    """``--param k=v`` (one scorer) or ``--param scorer:k=v``, parsed by each ParamSpec."""
    from ..scoring import get_scorer

    params: dict[str, dict[str, object]] = {name: {} for name in names}
    for pair in pairs:
        target, _, assignment = pair.rpartition(":")
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise AnomalyMapsError(f"--param {pair!r}: expected KEY=VALUE or SCORER:KEY=VALUE")
        if not target:
            if len(names) != 1:
                raise AnomalyMapsError(
                    f"--param {pair!r}: with several scorers write SCORER:{key}={text}"
                )
            target = names[0]
        if target not in params:
            raise AnomalyMapsError(f"--param {pair!r}: {target!r} is not among --scorer {names}")
        specs = {p.name: p for p in get_scorer(target).params}
        if key not in specs:
            raise AnomalyMapsError(
                f"--param {pair!r}: scorer {target!r} has no parameter {key!r}; "
                f"expected one of {sorted(specs) or 'none'}"
            )
        params[target][key] = specs[key].parse(text, target)
    return list(params.items())


def checkpoint_and_scorers(args: argparse.Namespace) -> tuple[Scorers, Checkpoint]:
    """Check ``--scorer``/``--param`` names, load ``--checkpoint``, check the scorers fit."""
    from ..checkpoint import load_checkpoint
    from ..scoring import get_scorer

    for name in args.scorer:
        get_scorer(name)  # unknown names fail before any work
    scorers = scorer_params(args.scorer, args.param)
    checkpoint = load_checkpoint(args.checkpoint, device=args.device)
    for name, _ in scorers:
        get_scorer(name).check_fits(checkpoint.kinds)
    return scorers, checkpoint
