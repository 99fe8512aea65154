"""Interactive speed of the widgets, measured on this machine.

    python -m anomaly_maps.napari._bench [--checkpoint vae.safetensors] [--repeats 20]

Prints the median time of (1) choosing a 256^3 float32 map in the threshold widget and
one threshold update on it (the comparison into the Labels buffer, the flagged volume
and percentile, and napari redrawing the Labels slice in a real viewer, Xvfb is fine)
(2) one slice preview of the sample brain per single-pass scorer on the CPU (the
scan is cut into model slices once, as the widget caches it; that one-off cost is
printed too), and (3) one refresh of the threshold dock's findings table on that map.
Targets (issues 7, 14, 17): choosing a map < 0.5 s, a slider step while dragging
< 30 ms, preview < 0.3 s, findings refresh < 200 ms.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

__all__ = ["bench_findings", "bench_preview", "bench_threshold", "main"]

_SINGLE_PASS = ("rec", "latent_nll")


def _median_ms(
    fn: Callable[[], object], repeats: int, untimed: Callable[[], object] = lambda: None
) -> float:
    """Median milliseconds of ``fn()``, each call followed by ``untimed()``."""
    fn()  # warm-up
    untimed()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        untimed()
    return 1000 * float(np.median(times))


def _ball_map(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``size``^3 float32 map: gamma noise in a ball filling most of the field of view."""
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3, dtype=np.float32) / size - 0.5
    brain = (grid**2).sum(0) < 0.16
    return np.where(brain, rng.gamma(2.0, 1.0, brain.shape), 0).astype(np.float32), brain


def _threshold_dock(size: int, n_maps: int = 2):
    """A viewer with ``n_maps`` ball maps and the threshold dock: (viewer, dock, maps,
    seconds to build the dock)."""
    import napari

    from ._threshold_widget import ThresholdWidget

    viewer = napari.Viewer(show=True)
    maps = []
    for seed in range(n_maps):
        values, brain = _ball_map(size, seed)
        maps.append(viewer.add_image(values, name=f"map {seed}", metadata={"anomaly_map": {
            "scorer": "rec", "params": {}, "checkpoint": None, "foreground": brain}}))  # fmt: skip
    start = time.perf_counter()
    widget = ThresholdWidget(viewer)
    return viewer, widget, maps, time.perf_counter() - start


def bench_findings(size: int = 256, repeats: int = 10) -> dict[str, float]:
    """Milliseconds per findings-table refresh (label, measure, fill) on a ``size``^3
    map at the dock's 99th and 99.9th percentile thresholds (noise: many specks)."""
    viewer, widget, _, _ = _threshold_dock(size, n_maps=1)
    out = {}
    for percentile in (99.0, 99.9):
        widget.set_percentile(percentile)
        key = f"findings_refresh_p{percentile:g}_ms".replace(".", "_")
        out[key] = _median_ms(widget.findings.refresh_now, repeats)
    viewer.close()
    return out


def bench_threshold(size: int = 256, repeats: int = 20) -> dict[str, float]:
    """Milliseconds per threshold update on a ``size``^3 map, without and with napari
    (the release includes the findings table's refresh)."""
    from qtpy.QtWidgets import QApplication

    from ._layers import MaskOverlay

    viewer, widget, maps, setup = _threshold_dock(size)
    choices = iter(maps * (repeats + 2))

    def choose_map() -> None:  # the other map: a new index, mask layer and first threshold
        chosen = next(choices)
        if widget.map.value == chosen:
            chosen = next(choices)
        widget.map.value = chosen
        QApplication.processEvents()

    choose = _median_ms(choose_map, max(3, repeats // 4)) / 1000
    overlay: MaskOverlay = widget.overlay
    thresholds = iter(np.linspace(*overlay.index.range, 10 * (repeats + 1)))
    percentiles = iter(np.linspace(50, 100, 10 * (repeats + 1)))

    def numpy_only() -> None:
        t = next(thresholds)
        overlay.index.apply(t, overlay.buffer)
        overlay.index.flagged_ml(t), overlay.index.percentile(t)

    def widget_update() -> None:
        widget.value.setValue(next(thresholds))  # what the slider does
        QApplication.processEvents()  # let napari redraw the Labels slice now

    def percentile_update() -> None:
        widget.percentile.setValue(next(percentiles))
        QApplication.processEvents()

    def release() -> None:
        widget.value.sliderReleased.emit()
        QApplication.processEvents()

    out = {
        "threshold_setup_s": setup,
        "threshold_choose_map_s": choose,
        "threshold_numpy_full_volume_ms": _median_ms(numpy_only, repeats),
        "threshold_set_full_volume_ms": _median_ms(widget_update, repeats),
    }
    widget.value.setSliderDown(True)
    out["threshold_drag_ms"] = _median_ms(widget_update, repeats)
    out["threshold_drag_our_code_ms"] = _median_ms(  # the same step without the redraw
        lambda: widget.value.setValue(next(thresholds)), repeats, QApplication.processEvents
    )
    widget.value.setSliderDown(False)
    widget.percentile.setSliderDown(True)
    out["threshold_drag_percentile_ms"] = _median_ms(percentile_update, repeats)
    widget.percentile.setSliderDown(False)
    out["threshold_release_ms"] = _median_ms(release, repeats)
    layer = overlay.layer
    planes = iter(range(10 * (repeats + 1)))

    def napari_only() -> None:  # napari's own floor: a bare Labels slice refresh + redraw
        layer.data[size // 2] = next(planes) % 2
        layer.refresh(thumbnail=False, extent=False, highlight=False)
        QApplication.processEvents()

    out["napari_labels_redraw_ms"] = _median_ms(napari_only, repeats)
    grid = np.indices((size,) * 3) - size // 2
    widget.truth.value = viewer.add_labels(((grid**2).sum(0) < (size // 10) ** 2).astype(np.uint8))
    widget.value.setSliderDown(True)
    out["threshold_drag_with_labels_ms"] = _median_ms(widget_update, repeats)
    viewer.close()
    return out


def bench_preview(checkpoint: str | None, repeats: int = 10) -> dict[str, float]:
    """Seconds per slice preview of the sample brain on the CPU, per single-pass scorer."""
    from ..checkpoint import Checkpoint, load_checkpoint
    from ..io import load_volume
    from ..models import build_model, model_presets
    from ..preprocessing import PreprocessingSpec, to_slices
    from ..samples import sample_path
    from ..scoring import get_scorer
    from ._slicing import ModelSlicing, score_model_slice

    volume = load_volume(sample_path("brain"))
    if checkpoint:
        kinds = {"": load_checkpoint(checkpoint)}
    else:  # untrained models at the papers' presets: the time does not depend on weights
        vae = model_presets("vae")["zimmerer2019"]
        vq = model_presets("vqvae")["marimont2021"]
        prior = model_presets("prior")["marimont2021"]
        kinds = {
            f"vae{vae.size} ": Checkpoint(None, {"vae": build_model(vae).eval()},
                                          PreprocessingSpec(size=vae.size)),
            f"vqvae+prior{vq.size} ": Checkpoint(None, {
                "vqvae": build_model(vq).eval(), "prior": build_model(prior).eval()},
                PreprocessingSpec(size=vq.size)),
        }  # fmt: skip
    out = {}
    for label, ckpt in kinds.items():
        start = time.perf_counter()
        stack = to_slices(volume, ckpt.preprocessing)
        out[f"{label}slicing_once_s"] = time.perf_counter() - start
        middle = ModelSlicing.from_geometry(stack.geometry).n_slices // 2
        for name in _SINGLE_PASS:
            if not get_scorer(name).fits(ckpt.kinds):
                continue
            ms = _median_ms(lambda n=name, c=ckpt, s=stack, i=middle: score_model_slice(
                s, c, [(n, {})], i, device="cpu"), repeats)  # fmt: skip
            out[f"{label}preview_{name}_s"] = ms / 1000
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="time previews with this model (default: "
                        "untrained VAE and VQ-VAE+prior at 128x128)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    results = {**bench_threshold(repeats=args.repeats),
               **bench_findings(repeats=max(3, args.repeats // 2)),
               **bench_preview(args.checkpoint, repeats=max(3, args.repeats // 2))}  # fmt: skip
    for key, value in results.items():
        unit = "ms" if key.endswith("_ms") else "s"
        print(f"{key:32s} {value:8.3f} {unit}")


if __name__ == "__main__":
    main()
