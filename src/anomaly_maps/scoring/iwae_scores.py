"""Importance-weighted (IWAE) slice scores of a VAE (seed 004, eqs. 8-10).

``iwae``, ``iwae_kl`` and ``iwae_rec`` replace the ELBO's mean over ``L`` posterior
samples ``z_l ~ q(z|x)`` by ``-log 1/L sum_l w_l`` of importance weights, computed from
the log-density terms of :func:`.sample_scores.log_weights` (see the table there);
higher = more anomalous. ``-iwae`` is the importance-weighted lower bound on
``log p(x)`` of Burda et al., at least the ELBO in expectation, tightening as ``L``
grows. Each scorer's naive reference (one slice, one sample at a time) is registered
next to it.

References
----------
.. [1] Lu & Xu, "Anomaly Detection for Skin Disease Images Using Variational
   Autoencoder", seed 004, section 2.2 (eqs. 8-10, L = 15).
.. [2] Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

from .sample_scores import neg_log_mean_exp, register_sampled_score

__all__ = ["iwae_kl_score", "iwae_rec_score", "iwae_score"]


iwae_score = register_sampled_score(
    "iwae",
    description="Negative importance-weighted (IWAE) bound on log p(x) with L samples",
    equation="eq. 8",
    score=lambda w: neg_log_mean_exp(w.log_likelihood + w.log_prior - w.log_posterior),
    summary="""``-log 1/L sum_l p(x|z_l) p(z_l) / q(z_l|x)``, ``s_iwae`` of seed 004 (eq. 8).

    The negative IWAE bound (Burda et al.): ``-iwae <= log p(x)``, and ``-iwae`` is at
    least the ELBO in expectation, tightening as ``L`` grows (so ``iwae`` <= ``elbo`` on
    average). With ``L = 1`` it is the single-sample negative ELBO with a Monte-Carlo KL.
""",
)

iwae_kl_score = register_sampled_score(
    "iwae_kl",
    description="Importance-weighted KL score -log mean p(z)/q(z|x) over L samples",
    equation="eq. 9",
    score=lambda w: neg_log_mean_exp(w.log_prior - w.log_posterior),
    summary="""``-log 1/L sum_l p(z_l) / q(z_l|x)`` per slice, ``s_iwae^kl`` (seed 004, eq. 9).
""",
)

iwae_rec_score = register_sampled_score(
    "iwae_rec",
    description="Importance-weighted reconstruction score -log mean p(x|z) over L samples",
    equation="eq. 10",
    score=lambda w: neg_log_mean_exp(w.log_likelihood),
    summary="""``-log 1/L sum_l p(x|z_l)`` per slice, ``s_iwae^reconst`` (seed 004, eq. 10).
""",
)
