"""Combine the ``results.csv`` files of ``scripts/results.sh`` into docs/results.md tables.

Usage: ``python scripts/results_table.py WORKDIR`` prints Markdown: for the template's
test split (``WORKDIR/eval_NAME``), Colin27 (``WORKDIR/colin27_eval/NAME``) and the ITK
subject (``WORKDIR/itk_eval/NAME``, the bundled models), one
table of every model and scorer over all test cases, then pixel AP by anomaly type and
by size.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

#: evaluation name -> model, in table order
RUNS = {
    "vae_bundled": "VAE (bundled)",
    "vae": "VAE (converged)",
    "vae_smoothed": "VAE (converged)",
    "vae_grad": "VAE (converged)",
    "vae_tv": "VAE (converged)",
    "vae_elbo": "VAE (converged)",
    "dae": "DAE (converged)",
    "cevae_bundled": "ceVAE (bundled)",
    "vqvae": "VQ-VAE + prior",
    "vqvae_restoration": "VQ-VAE + prior",
    "restoration64": "restoration 64x64 (bundled)",
    "restoration": "restoration 128x128 (bundled)",
    "restoration_ensemble": "the two joined (bundled, demo)",
}
#: data set -> (title, folder of WORKDIR/<folder>NAME)
DATA = {
    "template": ("the template's test split (30 volumes, 15 anomalous)", "eval_"),
    "colin27": ("Colin27, the real held-out subject (20 volumes, 10 anomalous)", "colin27_eval/"),
    "itk": (
        "the ITK T1 head, a second real subject at 2x2x3 mm (20 volumes, 10 anomalous; "
        "bundled models)",
        "itk_eval/",
    ),
}
GRAD = "SmoothGrad n = 4, sigma 2"
#: (name, scorer) -> the settings that differ from the scorer's defaults or matter
SETTINGS = {
    ("vae_bundled", "rec"): "sigma 2",
    ("vae", "sample_std"): "8 samples",
    ("vae_smoothed", "rec"): "sigma 2",
    ("vae_grad", "rec_grad"): GRAD,
    ("vae_grad", "kl_grad"): GRAD,
    ("vae_grad", "elbo_grad"): GRAD,
    ("vae_tv", "vae_tv_restoration"): "10 steps, lr 0.1, TV 1.8",
    **{
        ("vae_elbo", s): "L = 15" for s in ("elbo", "kl", "rec_nll", "iwae", "iwae_kl", "iwae_rec")
    },
    ("cevae_bundled", "cevae_combined"): "l2 x SmoothGrad n = 2, sigma 3",
    ("vqvae", "latent_nll"): "lambda_s 7",
    ("vqvae_restoration", "latent_restoration"): "lambda_p 5, S 15, k 3",
    ("restoration", "disyre"): "5 steps",
    ("restoration_ensemble", "fpi"): "3 views, through 2",
}


def _number(text: str) -> str:
    value = float(text)
    return "–" if math.isnan(value) else f"{value:.3f}"


def _rows(work: Path, folder: str) -> list[tuple[str, str, dict[str, str]]]:
    """(model, settings, csv row) of every evaluation found under ``work/folder``."""
    rows = []
    for name, model in RUNS.items():
        path = work / f"{folder}{name}" / "results.csv"
        if path.exists():
            with path.open() as f:
                rows += [(model, SETTINGS.get((name, r["scorer"]), ""), r)
                         for r in csv.DictReader(f)]  # fmt: skip
    return rows


def _table(rows: list[tuple[str, str, dict[str, str]]]) -> None:
    head = ["model", "scorer", "settings", "pixel AUROC", "pixel AP", "best Dice",
            "Dice @ val thr.", "sample AUROC", "sample AP"]  # fmt: skip
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for model, params, r in rows:
        if r["group"] != "all":
            continue
        metrics = ("pixel_auroc", "pixel_ap", "best_dice", "val_dice", "sample_auroc",
                   "sample_ap")  # fmt: skip
        cells = [model, f"`{r['scorer']}`", params, *(_number(r[k]) for k in metrics)]
        print("| " + " | ".join(cells) + " |")
    for prefix, title in (("anomaly=", "anomaly type"), ("size=", "anomaly size")):
        groups = sorted({r["group"] for _, _, r in rows if r["group"].startswith(prefix)})
        print(f"\nPixel AP by {title} (each group: its anomalous test cases plus all healthy"
              " ones):\n")  # fmt: skip
        names = [g[len(prefix) :] for g in groups]
        print("| model | scorer | " + " | ".join(names) + " |\n|" + "---|" * (2 + len(names)))
        for model, params, r in rows:
            if r["group"] != "all" or math.isnan(float(r["pixel_ap"])):
                continue
            ap = {g: x["pixel_ap"] for m, p, x in rows
                  if (m, p, x["scorer"]) == (model, params, r["scorer"])
                  for g in groups if x["group"] == g}  # fmt: skip
            label = r["scorer"] + (f" ({params})" if params else "")
            print(f"| {model} | `{label}` | "
                  + " | ".join(_number(ap.get(g, "nan")) for g in groups) + " |")  # fmt: skip


def main(work: Path) -> None:
    for title, folder in DATA.values():
        print(f"\n### {title[0].upper() + title[1:]}\n")
        _table(_rows(work, folder))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
