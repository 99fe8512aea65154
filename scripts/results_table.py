"""Combine the ``results.csv`` files of ``scripts/results.sh`` into docs/results.md tables.

Usage: ``python scripts/results_table.py WORKDIR`` prints Markdown: one table of every
model and scorer over all test cases, then pixel AP by anomaly type and by size.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

#: evaluation folder -> model, in table order
RUNS = {
    "eval_dae": "DAE",
    "eval_vae_fast": "VAE",
    "eval_vae_smoothed": "VAE",
    "eval_vae_grad": "VAE",
    "eval_vae_tv": "VAE",
    "eval_cevae": "ceVAE",
    "eval_vqvae": "VQ-VAE + prior",
}
#: (folder, scorer) -> the settings that differ from the scorer's defaults or matter
SETTINGS = {
    ("eval_vae_fast", "sample_std"): "8 samples",
    ("eval_vae_fast", "elbo"): "L = 5",
    ("eval_vae_fast", "iwae"): "L = 15",
    ("eval_vae_smoothed", "rec"): "sigma 2",
    ("eval_vae_grad", "rec_grad"): "SmoothGrad n = 4, sigma 2",
    ("eval_vae_grad", "kl_grad"): "SmoothGrad n = 4, sigma 2",
    ("eval_vae_grad", "elbo_grad"): "SmoothGrad n = 4, sigma 2",
    ("eval_vae_tv", "vae_tv_restoration"): "10 steps, lr 0.1, TV 1.8",
    ("eval_cevae", "cevae_combined"): "l2 x SmoothGrad n = 2, sigma 3",
    ("eval_vqvae", "latent_restoration"): "lambda_p 5, S 15, k 3",
    ("eval_vqvae", "latent_nll"): "lambda_s 7",
}


def _number(text: str) -> str:
    value = float(text)
    return "–" if math.isnan(value) else f"{value:.3f}"


def _rows(work: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(model, settings, csv row) of every evaluation found in ``work``."""
    rows = []
    for folder, model in RUNS.items():
        path = work / folder / "results.csv"
        if path.exists():
            with path.open() as f:
                rows += [(model, SETTINGS.get((folder, r["scorer"]), ""), r)
                         for r in csv.DictReader(f)]  # fmt: skip
    return rows


def main(work: Path) -> None:
    rows = _rows(work)
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


if __name__ == "__main__":
    main(Path(sys.argv[1]))
