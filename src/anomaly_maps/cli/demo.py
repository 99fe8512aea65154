"""``anomaly-maps demo``: the bundled demo scan scored by a bundled model, in napari or
(``--headless``) written to files."""

from __future__ import annotations

import argparse

from ..errors import AnomalyMapsError
from ._options import add_overwrite, add_run_options, out_folder
from ._progress import bar_progress
from ._scorers import add_list_scorers, scorer_params

#: The bundled models (anomaly_maps.samples; not imported here, to keep --help light).
BUNDLED = ("vae", "cevae", "restoration", "restoration64", "restoration_ensemble", "vqvae")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="open napari on the bundled demo scan with a bundled model's anomaly map "
        "(--headless --out DIR: write map, mask, score and a PNG instead)",
    )
    p.add_argument("--headless", action="store_true", help="no window: write files to --out")
    p.add_argument("--out", type=out_folder, metavar="DIR", help="output folder of --headless")
    p.add_argument("--model", choices=BUNDLED,
                   default="restoration_ensemble",
                   help="bundled model (default: the best by measurement, "
                   "anomaly_maps.demo.DEMO_MODEL)")  # fmt: skip
    p.add_argument("--scorer", default="fpi", metavar="NAME",
                   help="a map scorer; see --list-scorers (default: DEMO_SCORER)")  # fmt: skip
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="scorer parameter (default: as calibrated in the model)")  # fmt: skip
    add_list_scorers(p)
    add_run_options(p)
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The demo scan scored by a bundled model: in napari, or (--headless) written to --out."""
    params = scorer_params([args.scorer], args.param)[0][1] if args.param else None
    if args.headless != (args.out is not None):
        raise AnomalyMapsError("--headless needs --out DIR, and --out is only for --headless")
    options = {"model": args.model, "scorer": args.scorer, "params": params, "device": args.device}
    if not args.headless:
        import napari

        from ..napari._demo import open_demo

        open_demo(**options)
        napari.run()
        return 0
    from tqdm import tqdm

    from ..demo import run_demo

    with tqdm(desc="demo", unit="slice") as bar:
        result = run_demo(
            args.out, **options, batch_size=args.batch_size, seed=args.seed,
            overwrite=args.overwrite, progress=bar_progress(bar),
        )  # fmt: skip
    print(
        f"{args.model} + {result.scorer} {result.params}: volume score "
        f"{result.volume_score:.4g}; mask at {result.threshold:.4g} ({result.threshold_source}): "
        f"Dice {result.dice:.3f} against the demo label"
    )
    for path in result.files.values():
        print(f"  wrote {path}")
    return 0
