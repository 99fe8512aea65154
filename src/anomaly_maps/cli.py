"""The ``anomaly-maps`` command line.

Each subcommand is a thin shell over library functions; errors on bad input print
one clear line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from ._fileio import atomic_path, full_suffix
from .errors import AnomalyMapsError
from .io import load_volume, save_volume

__all__ = ["main"]


def _add_volume_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volume-index",
        type=int,
        default=None,
        metavar="I",
        help="volume to use from a 4D series (default: the first, with a warning)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--batch-size``, ``--seed``: how every scoring command runs."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--batch-size", type=int, default=32, help="slices per model call")
    parser.add_argument("--seed", type=int, default=0, help="seeds every random draw")


def _stem(path: Path) -> str:
    return path.name[: -len(full_suffix(path))] if full_suffix(path) else path.name


def cmd_info(args: argparse.Namespace) -> int:
    """Print the geometry and intensity summary of each scan."""
    from .preprocessing import foreground_mask

    for path in args.inputs:
        vol = load_volume(path, volume_index=args.volume_index)
        header = vol.header
        codes = (int(header["qform_code"]), int(header["sform_code"])) if header else (0, 0)
        data = vol.data
        print(f"{vol.path}")
        print(f"  shape        {vol.shape}  dtype {data.dtype}")
        print(f"  voxel size   {' x '.join(f'{z:.3g}' for z in vol.zooms)} mm")
        print(f"  orientation  {''.join(vol.axcodes)}  qform/sform codes {codes[0]}/{codes[1]}")
        print(f"  origin       {np.round(vol.affine[:3, 3], 2).tolist()} mm")
        print(f"  intensity    min {data.min():.4g}  max {data.max():.4g}  mean {data.mean():.4g}")
        print(f"  foreground   {foreground_mask(data).mean():.1%} of voxels")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    """Write what a model sees of a scan, on the scan's own grid, and its foreground."""
    from .preprocessing import PreprocessingSpec, slices_to_volume, to_slices

    spec = PreprocessingSpec(axis=args.axis, size=args.size, normalization=args.normalization)
    out = Path(args.out)
    for path in args.inputs:
        vol = load_volume(path, volume_index=args.volume_index)
        stack = to_slices(vol, spec)
        model_view = slices_to_volume(stack.images, stack.geometry)
        mask = slices_to_volume(stack.mask.astype(np.float32), stack.geometry) >= 0.5
        stem = _stem(Path(path))
        written = [
            save_volume(
                vol.with_data(model_view),
                out / f"{stem}_model_view.nii.gz",
                overwrite=args.overwrite,
            ),
            save_volume(
                vol.with_data(mask.astype(np.uint8)),
                out / f"{stem}_foreground.nii.gz",
                overwrite=args.overwrite,
            ),
        ]
        print(
            f"{path}: {stack.images.shape[0]} {spec.axis} slices of {spec.size}x{spec.size}, "
            f"foreground {stack.mask.mean():.1%}"
        )
        for w in written:
            print(f"  wrote {w}")
    return 0


def _expand_data(patterns: Sequence[str]) -> list[str]:
    """Paths and globs -> sorted, de-duplicated files; a pattern matching nothing is an error."""
    paths: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise AnomalyMapsError(f"--data {pattern!r} matches no file")
        paths += matches
    return list(dict.fromkeys(paths))


def _overrides(pairs: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs; values are JSON where they parse (numbers, lists, true)."""
    result: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AnomalyMapsError(f"--set {pair!r}: expected KEY=VALUE, e.g. latent_dim=256")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


def _model_config(args: argparse.Namespace):
    """The model config from --model, --preset, --size and --set."""
    from .checkpoint import read_header
    from .models import PriorConfig, VQVAEConfig, config_from_dict, model_presets

    overrides = _overrides(args.set)
    presets = model_presets(args.model)
    if args.preset is not None and args.preset not in presets:
        raise AnomalyMapsError(
            f"unknown preset {args.preset!r} for model {args.model!r}: "
            f"expected one of {sorted(presets)}"
        )
    base = presets[args.preset].to_dict() if args.preset else {}
    if args.model == "prior":
        if args.vqvae is None:
            raise AnomalyMapsError("--model prior needs --vqvae CHECKPOINT (a trained VQ-VAE)")
        vq = VQVAEConfig.from_dict(read_header(args.vqvae)["models"]["vqvae"])
        base = {k: v for k, v in base.items() if k not in ("num_codes", "grid_size")}
        return PriorConfig.for_vqvae(vq, **{**base, **overrides})
    if args.size is not None:
        overrides.setdefault("size", args.size)
    return config_from_dict(args.model, {**base, **overrides})


def _tqdm_progress(batches, epoch: int, split: str):
    from tqdm import tqdm

    return tqdm(batches, desc=f"epoch {epoch + 1} {split}", leave=split == "val", unit="batch")


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model on healthy volumes; writes the checkpoint after every epoch."""
    from .preprocessing import PreprocessingSpec
    from .training import TrainConfig, _dist_from_env, metrics_path, train

    model_config = _model_config(args)
    preprocessing = PreprocessingSpec(
        axis=args.axis,
        size=getattr(model_config, "size", args.size or 64),
        normalization=args.normalization,
    )
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        seed=args.seed,
        augment=not args.no_augment,
        amp=not args.no_amp,
    )
    main_rank = _dist_from_env().main
    if not main_rank:  # one copy of every warning, from rank 0
        logging.getLogger("anomaly_maps").setLevel(logging.ERROR)
    result = train(
        _expand_data(args.data),
        args.out,
        model_config=model_config,
        preprocessing=preprocessing,
        config=config,
        vqvae_checkpoint=args.vqvae,
        device=args.device,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=_tqdm_progress if main_rank else None,
        command=" ".join(["anomaly-maps", *sys.argv[1:]]),
    )
    if main_rank:
        last = result.history[-1] if result.history else {}
        losses = ", ".join(f"{k} {v:.5g}" for k, v in last.items() if k.endswith("loss"))
        print(f"trained {model_config.kind} in {result.seconds:.1f} s: {losses}")
        print(f"  wrote {result.checkpoint} and {metrics_path(result.checkpoint)}")
    return 0


def _scorer_params(names: Sequence[str], pairs: Sequence[str]) -> list[tuple[str, dict]]:
    """``--param k=v`` (one scorer) or ``--param scorer:k=v``, parsed by each ParamSpec."""
    from .scoring import get_scorer

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


def _checkpoint_and_scorers(args: argparse.Namespace):
    """Check ``--scorer``/``--param`` names, load ``--checkpoint``, check the scorers fit."""
    from .checkpoint import load_checkpoint
    from .scoring import get_scorer

    for name in args.scorer:
        get_scorer(name)  # unknown names fail before any work
    scorers = _scorer_params(args.scorer, args.param)
    checkpoint = load_checkpoint(args.checkpoint, device=args.device)
    for name, _ in scorers:
        get_scorer(name).check_fits(checkpoint.kinds)
    return scorers, checkpoint


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Score healthy (and optionally labelled) validation scans; store the statistics."""
    from tqdm import tqdm

    from .checkpoint import save_checkpoint
    from .evaluation import labelled_scans
    from .scoring.calibration import calibrate_scorers, with_calibration

    scorers, checkpoint = _checkpoint_and_scorers(args)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise AnomalyMapsError(f"{out}: already exists; pass --overwrite to replace it")
    healthy = [load_volume(p) for p in _expand_data(args.inputs)]
    pairs = labelled_scans(args.labelled) if args.labelled else []
    labelled = ((load_volume(scan), load_volume(label).data) for scan, label in pairs)
    with tqdm(total=len(healthy) + len(pairs), desc="calibrate", unit="scan") as bar:
        calibrations = calibrate_scorers(
            checkpoint, scorers, healthy, labelled=labelled, device=args.device,
            batch_size=args.batch_size, seed=args.seed,
            progress=lambda done: bar.update(done - bar.n),
        )  # fmt: skip
    for calibration in calibrations:
        checkpoint = with_calibration(checkpoint, calibration)
        pixel = calibration.pixel_quantiles is not None
        median, high = (calibration.quantile(q, pixel=pixel) for q in (0.5, 0.99))
        dice = "" if calibration.dice is None else (
            f", best Dice {calibration.dice:.3f} at {calibration.dice_threshold:.4g}"
        )  # fmt: skip
        print(f"{calibration.scorer}: healthy {'map' if pixel else 'slice score'} median "
              f"{median:.4g}, 99th percentile {high:.4g}{dice}")  # fmt: skip
    save_checkpoint(
        out, checkpoint.models, preprocessing=checkpoint.preprocessing,
        training=checkpoint.training, metrics=checkpoint.metrics, overwrite=args.overwrite,
    )  # fmt: skip
    print(f"wrote {out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score volumes: a map NIfTI, a score .txt (MOOD format) and a slice CSV per scorer."""
    from tqdm import tqdm

    from .scoring import score_volume
    from .scoring.calibration import find_calibration
    from .scoring.postprocess import normalize_result

    scorers, checkpoint = _checkpoint_and_scorers(args)
    calibrations = {}
    for name, params in scorers:
        calibrations[name] = find_calibration(checkpoint, name, params)
        if args.normalize in ("model", "mood") and calibrations[name] is None:
            raise AnomalyMapsError(
                f"--normalize {args.normalize}: {args.checkpoint} holds no calibration of "
                f"{name} with these parameters; run `anomaly-maps calibrate --checkpoint "
                f"{args.checkpoint} --scorer {name} HEALTHY_SCANS --out NEW.safetensors`"
            )
    out = Path(args.out)
    inputs = _expand_data(args.inputs)
    planned = {
        path: {name: _score_outputs(out, Path(path), name) for name, _ in scorers}
        for path in inputs
    }
    if not args.overwrite:
        existing = [str(f) for per in planned.values() for fs in per.values() for f in fs
                    if f.exists()]  # fmt: skip
        if existing:
            raise AnomalyMapsError(
                f"{existing[0]}: already exists ({len(existing)} output(s)); "
                "pass --overwrite to replace them"
            )
    for path in inputs:
        vol = load_volume(path, volume_index=args.volume_index)
        with tqdm(desc=Path(path).name, unit="slice") as bar:

            def progress(done: int, total: int, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            results = score_volume(
                vol, checkpoint, scorers, batch_size=args.batch_size, seed=args.seed,
                progress=progress, volume_score=args.volume_score,
            )  # fmt: skip
        for raw in results:
            result = normalize_result(raw, args.normalize, calibrations[raw.scorer])
            map_path, txt_path, csv_path = planned[path][result.scorer]
            if result.map is not None:
                save_volume(vol.with_data(result.map), map_path, overwrite=args.overwrite)
            _write_text(txt_path, f"{result.volume_score:.8g}\n", args.overwrite)
            rows = "".join(f"{i},{s:.8g}\n" for i, s in enumerate(result.slice_scores))
            _write_text(csv_path, "slice,score\n" + rows, args.overwrite)
            print(f"{path}: {result.scorer} volume score {result.volume_score:.6g}")
    return 0


def _score_outputs(out: Path, scan: Path, scorer: str) -> tuple[Path, Path, Path]:
    """Map NIfTI, MOOD-style score file and per-slice CSV for one scan and scorer."""
    base = out / f"{_stem(scan)}_{scorer}"
    return (base.with_name(base.name + ".nii.gz"), base.with_name(base.name + ".txt"),
            base.with_name(base.name + "_slices.csv"))  # fmt: skip


def _write_text(path: Path, text: str, overwrite: bool) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


def cmd_bench(args: argparse.Namespace) -> int:
    """Print speed measurements: training throughput, or scoring time against a reference."""
    import torch

    from .bench import bench_score, bench_train
    from .device import resolve_device

    device = resolve_device(args.device)
    if args.what == "score":
        from .scoring import list_scorers

        names = args.scorers.split(",") if args.scorers else list_scorers()
        scorers = _scorer_params(names, args.param)
        print(
            f"scoring one {args.side}^3 volume on {device} (torch {torch.__version__}): "
            f"batches of {args.batch_size} slices vs. the per-slice, per-sample reference"
        )
        print(f"{'scorer':20} {'models':12} {'batched s':>10} {'reference s':>12} {'ratio':>6}")
        for row in bench_score(scorers, device=device, side=args.side, batch_size=args.batch_size):
            print(
                f"{row.scorer:20} {row.models:12} {row.batched_seconds:10.2f} "
                f"{row.reference_seconds:12.2f} {row.ratio:6.1f}"
            )
        return 0
    kinds = args.models.split(",") if args.models else None
    print(
        f"training throughput on {device} (torch {torch.__version__}, batch {args.batch_size},"
        f" {args.steps} timed steps after 2 warm-up steps, augmentation included)"
    )
    print(f"{'model':8} {'preset':14} {'input':>14} {'params':>9} {'s/step':>8} {'slices/s':>9}")
    for row in bench_train(
        device=device,
        kinds=kinds,
        batch_size=args.batch_size,
        steps=args.steps,
        amp=not args.no_amp,
    ):
        shape = "x".join(map(str, row.input_shape))
        print(
            f"{row.kind:8} {row.preset:14} {shape:>14} {row.parameters / 1e6:8.2f}M "
            f"{row.seconds_per_step:8.3f} {row.slices_per_second:9.1f}"
        )
    return 0


def cmd_make_sample_data(args: argparse.Namespace) -> int:
    """Regenerate ``sample_data/``: the template that nilearn ships and, from a benchmark
    made from it, the demo case and the bundled models (calibrated, with test metrics)."""
    try:
        import nilearn.datasets
    except ImportError:
        raise AnomalyMapsError(
            "make-sample-data needs nilearn for the MNI template: pip install nilearn"
        ) from None
    from .samples import DERIVED_NOTICE, MNI152_NOTICE, SAMPLES

    bundled = [k for k, (name, _) in SAMPLES.items() if name.endswith(".safetensors")]
    models = dict(pair.partition("=")[::2] for pair in args.model)
    unknown = [f"{k}={v}" for k, v in models.items() if k not in bundled or not v]
    if unknown:
        raise AnomalyMapsError(
            f"--model {unknown[0]!r}: expected NAME=CHECKPOINT, NAME in {bundled}"
        )
    if (args.demo_case or models) and args.benchmark is None:
        raise AnomalyMapsError(
            "--demo-case and --model need --benchmark DIR (made by make-benchmark)"
        )
    if models and not args.scorer:
        raise AnomalyMapsError("--model needs --scorer (the scorers to calibrate and evaluate)")
    scorers = _scorer_params(args.scorer, args.param) if models else []
    out = Path(args.out)
    src = Path(nilearn.datasets.__file__).parent / "data"
    src = src / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    load_volume(src)  # refuse to copy a broken file
    dst = out / SAMPLES["brain"][0]
    if dst.exists() and not args.overwrite:
        raise AnomalyMapsError(f"{dst}: already exists; pass --overwrite to replace it")
    with atomic_path(dst, overwrite=args.overwrite) as tmp:  # readers never see half a file
        shutil.copyfile(src, tmp)
    print(f"wrote {dst} (from nilearn {nilearn.__version__}: {src.name})")
    notice = MNI152_NOTICE
    if args.demo_case:
        import textwrap

        from .demo import bundle_demo_case

        scan, label, about = bundle_demo_case(
            args.benchmark, args.demo_case, out, overwrite=args.overwrite
        )
        notice += f"{DERIVED_NOTICE}\n{textwrap.fill(f'The demo case: {about}.', 88)}\n"
        print(f"wrote {scan} and {label}: {about}")
    elif any((out / name).exists() for key, (name, _) in SAMPLES.items() if key != "brain"):
        notice += DERIVED_NOTICE
    _write_text(out / "LICENSE-MNI152.txt", notice, overwrite=True)  # follows the files
    print(f"wrote {out / 'LICENSE-MNI152.txt'}")
    if models:
        from tqdm import tqdm

        from .demo import bundle_model

        command = " ".join(["anomaly-maps", *sys.argv[1:]])
        for name, path in models.items():
            with tqdm(desc=f"{name}: calibrate, evaluate", unit="volume") as bar:
                written, evaluation = bundle_model(
                    path, scorers, args.benchmark, out / SAMPLES[name][0], command=command,
                    device=args.device, batch_size=args.batch_size, seed=args.seed,
                    overwrite=args.overwrite, progress=_bar_progress(bar),
                )  # fmt: skip
            print(evaluation.to_markdown())
            print(f"wrote {written}")
    return 0


def _bar_progress(bar):
    """A ``progress(done, total)`` callback that drives a tqdm bar."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


def _shape_arg(text: str) -> int | tuple[int, int, int]:
    """``--shape 64`` (a cube) or ``--shape 160,192,160``."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or X,Y,Z (voxels)")
    return sizes[0] if len(sizes) == 1 else sizes  # type: ignore[return-value]


def cmd_make_benchmark(args: argparse.Namespace) -> int:
    """Build a MOOD-style benchmark from the bundled template (no download)."""
    from tqdm import tqdm

    from .benchmark import make_benchmark, read_cases

    with tqdm(desc="make-benchmark", unit="volume") as bar:
        out = make_benchmark(
            args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
            seed=args.seed, shape=args.shape, template=args.template,
            overwrite=args.overwrite, progress=_bar_progress(bar),
        )  # fmt: skip
    cases = read_cases(out)
    anomalous = sum(c.label for c in cases if c.split == "test")
    print(
        f"wrote {out}: {args.n_train} train, {args.n_val} val, {args.n_test} test volumes "
        f"({anomalous} test cases with an anomaly); cases in {out / 'cases.csv'}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate MOOD-format predictions, or score a benchmark with a model and evaluate."""
    from tqdm import tqdm

    from .evaluation import OUTPUT_FILES, evaluate, evaluate_checkpoint

    by_model = args.checkpoint is not None or args.benchmark is not None
    if by_model == (args.pred is not None or args.labels is not None):
        raise AnomalyMapsError(
            "give either --pred and --labels (MOOD-format predictions) or --checkpoint, "
            "--scorer and --benchmark (score a benchmark, then evaluate)"
        )
    needed = ("checkpoint", "scorer", "benchmark") if by_model else ("pred", "labels")
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        raise AnomalyMapsError(f"missing {' and '.join(missing)}")
    with tqdm(desc="evaluate", unit="volume") as bar:
        if by_model:
            scorers, checkpoint = _checkpoint_and_scorers(args)
            evaluation = evaluate_checkpoint(
                checkpoint, scorers, args.benchmark, args.out, batch_size=args.batch_size,
                seed=args.seed, volume_score=args.volume_score, overwrite=args.overwrite,
                progress=_bar_progress(bar),
            )  # fmt: skip
        else:
            evaluation = evaluate(
                args.pred, args.labels, val_pred_dir=args.val_pred,
                val_label_dir=args.val_labels, manifest=args.manifest,
                progress=_bar_progress(bar),
            )  # fmt: skip
            evaluation.write(args.out, overwrite=args.overwrite)
    print(evaluation.to_markdown())
    print(f"wrote {', '.join(OUTPUT_FILES)} to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo scan scored by a bundled model: in napari, or (--headless) written to --out."""
    params = _scorer_params([args.scorer], args.param)[0][1] if args.param else None
    if args.headless != (args.out is not None):
        raise AnomalyMapsError("--headless needs --out DIR, and --out is only for --headless")
    options = {"model": args.model, "scorer": args.scorer, "params": params, "device": args.device}
    if not args.headless:
        import napari

        from .napari._demo import open_demo

        open_demo(**options)
        napari.run()
        return 0
    from tqdm import tqdm

    from .demo import run_demo

    with tqdm(desc="demo", unit="slice") as bar:
        result = run_demo(
            args.out, **options, batch_size=args.batch_size, seed=args.seed,
            overwrite=args.overwrite, progress=_bar_progress(bar),
        )  # fmt: skip
    print(
        f"{args.model} + {result.scorer} {result.params}: volume score "
        f"{result.volume_score:.4g}; mask at {result.threshold:.4g} ({result.threshold_source}): "
        f"Dice {result.dice:.3f} against the demo label"
    )
    for path in result.files.values():
        print(f"  wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .scoring.pipeline import VOLUME_SCORES
    from .scoring.postprocess import NORMALIZATIONS

    parser = argparse.ArgumentParser(
        prog="anomaly-maps",
        description="Pixel-wise anomaly maps for medical scans from generative models "
        "trained on healthy anatomy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="show the geometry and intensities of NIfTI scans")
    p.add_argument("inputs", nargs="+", metavar="SCAN", help=".nii or .nii.gz file(s)")
    _add_volume_index(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "preprocess",
        help="write what a model sees of each scan (slices mapped back to its grid) "
        "and its foreground mask",
    )
    p.add_argument("inputs", nargs="+", metavar="SCAN", help=".nii or .nii.gz file(s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--axis", choices=("axial", "coronal", "sagittal"), default="axial")
    p.add_argument("--size", type=int, default=128, help="model in-plane size (pixels)")
    p.add_argument("--normalization", choices=("percentile", "zscore"), default="percentile")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_volume_index(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser(
        "train",
        help="train a model on healthy NIfTI volumes (torchrun -m anomaly_maps.cli for DDP)",
    )
    p.add_argument("--model", required=True, choices=("vae", "cevae", "dae", "vqvae", "prior"))
    p.add_argument("--preset", default=None, help="paper preset, e.g. zimmerer2019")
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH_OR_GLOB",
        help="healthy training volumes (quote globs: 'train/*.nii.gz')",
    )
    p.add_argument("--out", required=True, metavar="CHECKPOINT", help="run.safetensors")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="model hyper-parameters, e.g. latent_dim=256 beta=0.5",
    )
    p.add_argument(
        "--vqvae",
        default=None,
        metavar="CHECKPOINT",
        help="trained VQ-VAE whose codes a prior learns",
    )
    p.add_argument("--axis", choices=("axial", "coronal", "sagittal"), default="axial")
    p.add_argument("--size", type=int, default=None, help="in-plane size (default: preset's)")
    p.add_argument("--normalization", choices=("percentile", "zscore"), default="percentile")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-augment", action="store_true", help="train on unaugmented slices")
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    p.add_argument("--resume", action="store_true", help="continue OUT up to --epochs")
    p.add_argument("--overwrite", action="store_true", help="start afresh over OUT")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="anomaly maps and scores of volumes with a trained model")
    p.add_argument("inputs", nargs="+", metavar="SCAN", help="NIfTI files or quoted globs")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="trained .safetensors")
    p.add_argument(
        "--scorer",
        action="append",
        required=True,
        metavar="NAME",
        help="scorer name (repeat for several); see --list-scorers",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[SCORER:]KEY=VALUE",
        help="scorer parameter, e.g. n_smooth=16",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    _add_run_options(p)
    p.add_argument(
        "--normalize",
        choices=list(NORMALIZATIONS),
        default="none",
        help="; ".join(f"{k}: {v}" for k, v in NORMALIZATIONS.items())
        + " (model and mood need `anomaly-maps calibrate`)",
    )
    p.add_argument(
        "--volume-score",
        choices=list(VOLUME_SCORES),
        default="slice_mean",
        help="; ".join(f"{k}: {v}" for k, v in VOLUME_SCORES.items()),
    )
    p.add_argument("--overwrite", action="store_true")
    _add_volume_index(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "calibrate",
        help="store a scorer's healthy statistics (and best-Dice threshold) in a checkpoint",
    )
    p.add_argument("inputs", nargs="+", metavar="SCAN",
                   help="healthy validation scans (NIfTI files or quoted globs)")  # fmt: skip
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="trained .safetensors")
    p.add_argument("--scorer", action="append", required=True, metavar="NAME")
    p.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE")
    p.add_argument(
        "--labelled",
        default=None,
        metavar="DIR",
        help="validation scans with anomalies in MOOD layout (DIR/toy/*.nii.gz and "
        "DIR/toy_label/pixel/*.nii.gz): also store the best-Dice threshold",
    )
    p.add_argument("--out", required=True, metavar="CKPT",
                   help="checkpoint to write (the input's models plus calibration)")  # fmt: skip
    _add_run_options(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("bench", help="measure speed on this machine")
    p.add_argument("what", choices=("train", "score"),
                   help="train: training throughput per model; score: seconds per volume "
                   "per scorer, batched vs. its per-slice, per-sample reference")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default=None, help="train: comma-separated kinds (default all)")
    p.add_argument("--scorers", default=None, help="score: comma-separated (default all)")
    p.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE")
    p.add_argument("--side", type=int, default=256, help="score: volume side in voxels")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--no-amp", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "make-sample-data",
        help="regenerate the bundled sample files (scripts/make_sample_data.sh: all steps)",
    )
    p.add_argument("--out", default="sample_data", metavar="DIR")
    p.add_argument("--benchmark", metavar="DIR",
                   help="benchmark made from the template (for --demo-case, --model)")  # fmt: skip
    p.add_argument("--demo-case", metavar="NAME",
                   help="test case with an anomaly: the demo scan and label")  # fmt: skip
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                   help="trained checkpoint to calibrate on the benchmark's val split, "
                   "evaluate on its test split and bundle as NAME (vae, cevae)")  # fmt: skip
    p.add_argument("--scorer", action="append", default=[], metavar="NAME",
                   help="scorer to calibrate and evaluate (repeat for several)")  # fmt: skip
    p.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE")
    _add_run_options(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_make_sample_data)

    p = sub.add_parser(
        "make-benchmark",
        help="build a MOOD-style benchmark (healthy train, val/test with synthetic "
        "anomalies and labels) from the bundled template, offline",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n-train", type=int, default=20)
    p.add_argument("--n-val", type=int, default=10)
    p.add_argument("--n-test", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--shape",
        type=_shape_arg,
        default=None,
        metavar="N|X,Y,Z",
        help="output grid in voxels (default: the template's own, 197,233,189 at 1 mm)",
    )
    p.add_argument(
        "--template",
        default=None,
        metavar="SCAN",
        help="a skull-stripped T1 to use instead of the bundled MNI152 template",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark")
    p.set_defaults(func=cmd_make_benchmark)

    p = sub.add_parser(
        "evaluate",
        help="pixel/sample AUROC, AP and Dice of MOOD-format predictions (--pred, --labels) "
        "or of a model on a benchmark (--checkpoint, --scorer, --benchmark)",
    )
    p.add_argument("--pred", metavar="DIR", help="predictions: one folder, or one per scorer")
    p.add_argument("--labels", metavar="DIR", help="toy_label folder (or the split above it)")
    p.add_argument("--val-pred", metavar="DIR", help="validation predictions (Dice threshold)")
    p.add_argument("--val-labels", metavar="DIR", help="validation labels")
    p.add_argument("--manifest", metavar="CSV", help="benchmark cases.csv (or its folder)")
    p.add_argument("--checkpoint", metavar="CKPT", help="trained .safetensors")
    p.add_argument("--scorer", action="append", metavar="NAME", help="repeat for several")
    p.add_argument("--param", action="append", default=[], metavar="[SCORER:]KEY=VALUE")
    p.add_argument("--benchmark", metavar="DIR", help="folder made by make-benchmark")
    p.add_argument("--volume-score", choices=list(VOLUME_SCORES), default="slice_mean")
    _add_run_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="report (and predictions)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "demo",
        help="open napari on the bundled demo scan with a bundled model's anomaly map "
        "(--headless --out DIR: write map, mask, score and a PNG instead)",
    )
    p.add_argument("--headless", action="store_true", help="no window: write files to --out")
    p.add_argument("--out", metavar="DIR", help="output folder of --headless")
    p.add_argument("--model", choices=("vae", "cevae"), default="vae", help="bundled model")
    p.add_argument("--scorer", default="rec", metavar="NAME", help="a map scorer")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="scorer parameter (default: as calibrated in the model)")  # fmt: skip
    _add_run_options(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anomaly-maps`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AnomalyMapsError as err:
        print(f"anomaly-maps {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
