"""``anomaly-maps train``: a model trained on healthy volumes (``torchrun`` for DDP)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from ..errors import AnomalyMapsError
from ._options import expand_paths, integer, out_checkpoint, real
from ._progress import command_line
from .preprocess import AXES

#: The registered model kinds (``anomaly_maps.models``; not imported here, so that
#: ``--help`` does not wait for torch; a test keeps the two equal).
MODELS = ("vae", "cevae", "dae", "vqvae", "prior", "restoration")
LR_SCHEDULES = ("constant", "cosine")  # = anomaly_maps.training.LR_SCHEDULES (a test checks)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on healthy NIfTI volumes (torchrun -m anomaly_maps.cli for DDP)",
    )
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--preset", default=None, help="paper preset, e.g. zimmerer2019")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH_OR_GLOB",
                   help="healthy training volumes (quote globs: 'train/*.nii.gz')")  # fmt: skip
    p.add_argument("--out", type=out_checkpoint, required=True, metavar="CHECKPOINT",
                   help="run.safetensors")  # fmt: skip
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model hyper-parameters, e.g. latent_dim=256 beta=0.5")  # fmt: skip
    p.add_argument("--vqvae", default=None, metavar="CHECKPOINT",
                   help="trained VQ-VAE whose codes a prior learns")  # fmt: skip
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights, e.g. a bundled "
                   "model on a site's own healthy scans; its hyper-parameters and "
                   "preprocessing are kept (no --preset, --size, --channels, "
                   "--normalization; --set only of what shapes the training alone, "
                   "e.g. a restoration model's corruptions)")  # fmt: skip
    p.add_argument("--axis", nargs="+", choices=AXES, default=None,
                   help="slicing axis (default axial, or --init's); more than one: the "
                   "model also trains on slices along the others (multi-view, for "
                   "scoring with views=orthogonal)")  # fmt: skip
    p.add_argument("--size", type=integer(4), default=None,
                   help="in-plane size (default: preset's)")  # fmt: skip
    p.add_argument("--channels", type=integer(1), default=None,
                   help="input channels: 3 for RGB images (default: preset's, 1)")  # fmt: skip
    p.add_argument("--normalization", choices=("percentile", "zscore", "nyul"), default=None,
                   help="intensities: foreground percentiles to [0, 1] (the default), "
                   "z-score, or Nyúl histogram standardisation learnt from the training "
                   "scans")  # fmt: skip
    p.add_argument("--epochs", type=integer(1), default=20)
    p.add_argument("--batch-size", type=integer(1), default=64, help="slices per step")
    p.add_argument("--lr", type=real(0, low_open=True), default=2e-4, help="learning rate")
    p.add_argument("--val-fraction", type=real(0, 1, high_open=True), default=0.1,
                   help="fraction of the volumes held out for validation, in [0, 1)")  # fmt: skip
    p.add_argument("--min-foreground", type=real(0, 1, high_open=True), default=0.05,
                   help="skip slices with a smaller foreground fraction (default 0.05); "
                   "the model never sees the slices it skips")  # fmt: skip
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="cosine: decay to 1 %% of --lr over --epochs")  # fmt: skip
    p.add_argument("--patience", type=integer(0), default=0,
                   help="stop after this many epochs without a lower validation loss "
                   "(0: never); the best epoch is kept as OUT.best.safetensors")  # fmt: skip
    p.add_argument("--seed", type=integer(0), default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-augment", action="store_true", help="train on unaugmented slices")
    p.add_argument("--augment", nargs="*", default=[], metavar="KEY=VALUE",
                   help="augmentation strengths (anomaly_maps.augment.AugmentSpec), e.g. "
                   "prob=0.8 elastic_px=3 sharpen=0.5")  # fmt: skip
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    p.add_argument("--skull-stripped", action=argparse.BooleanOptionalAction, default=True,
                   help="the volumes are skull-stripped brains (default: yes, like the "
                   "template and MOOD's brain data); recorded for --brain-mask auto")  # fmt: skip
    p.add_argument("--modality", type=str.upper, default="MR",
                   help="DICOM Modality of the training scans (default MR); DICOM series "
                   "of another modality are refused when scoring")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue OUT up to --epochs")
    p.add_argument("--overwrite", action="store_true", help="start afresh over OUT")
    p.set_defaults(run=run)


def _overrides(pairs: Sequence[str], option: str = "--set") -> dict[str, object]:
    """``key=value`` pairs; values are JSON where they parse (numbers, lists, true)."""
    result: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AnomalyMapsError(f"{option} {pair!r}: expected KEY=VALUE, e.g. latent_dim=256")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


def _model_config(args: argparse.Namespace):
    """The model config from --model, --preset, --size and --set."""
    from ..checkpoint import read_header
    from ..models import PriorConfig, VQVAEConfig, config_from_dict, model_presets

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
    if args.channels is not None:
        overrides.setdefault("in_channels", args.channels)
    return config_from_dict(args.model, {**base, **overrides})


def _recipe(args: argparse.Namespace, paths: Sequence[str]):
    """The model config and preprocessing: from --init's checkpoint, else the options."""
    from ..images2d import is_image2d
    from ..preprocessing import PreprocessingSpec

    if args.init is not None:
        return _init_recipe(args)
    model_config = _model_config(args)
    preprocessing = PreprocessingSpec(
        axis=(args.axis or ["axial"])[0],
        size=getattr(model_config, "size", args.size or 64),
        normalization=args.normalization or "percentile",
        images=bool(paths) and all(is_image2d(p) for p in paths),
    )
    return model_config, preprocessing


def _init_recipe(args: argparse.Namespace):
    """--init's model config and preprocessing, refusing options that would change them;
    ``--set`` may change the fields that shape the training alone (``training_only``)."""
    from ..checkpoint import read_header
    from ..models import config_from_dict
    from ..preprocessing import PreprocessingSpec

    options = {"--preset": args.preset, "--size": args.size, "--channels": args.channels,
               "--normalization": args.normalization}  # fmt: skip
    given = [name for name, value in options.items() if value]
    if given:
        raise AnomalyMapsError(
            f"--init {args.init}: {', '.join(given)} would change the model it starts "
            "from; fine-tuning keeps its hyper-parameters and preprocessing"
        )
    header = read_header(args.init)
    models = header.get("models") or {}
    if args.model not in models:
        raise AnomalyMapsError(
            f"--init {args.init}: holds {'+'.join(models) or 'no model'}: expected a "
            f"{args.model} model (--model)"
        )
    base = config_from_dict(args.model, models[args.model])
    overrides = _overrides(args.set)
    network = sorted(set(overrides) - type(base).training_only)
    if network:
        allowed = ", ".join(sorted(type(base).training_only)) or "nothing"
        raise AnomalyMapsError(
            f"--init {args.init}: --set {', '.join(network)} would change the model it "
            f"starts from; fine-tuning may --set only what shapes the training ({allowed})"
        )
    preprocessing = PreprocessingSpec.from_dict(header["preprocessing"])
    if args.axis and args.axis[0] != preprocessing.axis:
        raise AnomalyMapsError(
            f"--axis {args.axis[0]}: --init {args.init} slices {preprocessing.axis}; "
            f"fine-tuning keeps it (name it first, other axes after it)"
        )
    return config_from_dict(args.model, {**base.to_dict(), **overrides}), preprocessing


def _augment_spec(args: argparse.Namespace):
    """The augmentation strengths from --augment (defaults for the rest); None without."""
    from ..augment import AugmentSpec

    if not args.augment:
        return None
    if args.no_augment:
        raise AnomalyMapsError("--augment sets strengths of an augmentation --no-augment skips")
    return AugmentSpec.from_dict(_overrides(args.augment, "--augment"))


def _tqdm_progress(batches, epoch: int, split: str):
    from tqdm import tqdm

    return tqdm(batches, desc=f"epoch {epoch + 1} {split}", leave=split == "val", unit="batch")


def run(args: argparse.Namespace) -> int:
    """Train a model on healthy volumes; writes the checkpoint after every epoch."""
    from ..training import TrainConfig, dist_from_env, metrics_path, train

    paths = expand_paths(args.data)
    model_config, preprocessing = _recipe(args, paths)
    augment_spec = _augment_spec(args)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        seed=args.seed,
        augment=not args.no_augment,
        amp=not args.no_amp,
        skull_stripped=args.skull_stripped,
        modality=args.modality,
        min_foreground=args.min_foreground,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
        extra_axes=tuple((args.axis or [])[1:]),
    )
    main_rank = dist_from_env().main
    if not main_rank:  # one copy of every warning, from rank 0
        logging.getLogger("anomaly_maps").setLevel(logging.ERROR)
    result = train(
        paths,
        args.out,
        model_config=model_config,
        preprocessing=preprocessing,
        config=config,
        augment_spec=augment_spec,
        vqvae_checkpoint=args.vqvae,
        init=args.init,
        device=args.device,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=_tqdm_progress if main_rank else None,
        command=command_line(),
    )
    if main_rank:
        last = result.history[-1] if result.history else {}
        losses = ", ".join(f"{k} {v:.5g}" for k, v in last.items() if k.endswith("loss"))
        print(f"trained {model_config.kind} in {result.seconds:.1f} s: {losses}")
        print(f"  wrote {result.checkpoint} and {metrics_path(result.checkpoint)}")
    return 0
