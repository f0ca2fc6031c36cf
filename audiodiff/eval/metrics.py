"""Distribution and label metrics over clip embeddings.

* Frechet distance (Heusel et al. 2017, eq. 6; as FAD in Kilgour et al. 2019): the squared
  2-Wasserstein distance between Gaussians fitted to two embedding sets,
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. Small sets (fewer clips than dimensions) give
  singular covariances and a positive bias that shrinks with n: compare FDs only at equal set sizes.
* Label accuracy of a nearest-neighbour classifier over labelled real clips. Embeddings are centred
  on the reference mean and L2-normalised (cosine similarity); each class is scored by the mean
  similarity of the query to its ``k`` most similar reference clips of that class (per-class
  k-NN, k=3), which ranks all classes and so gives top-1 and top-5. Leave-one-out excludes a
  reference clip from its own neighbours (the real-clip ceiling).
* Sounding fraction: the share of a clip's frames that are not silent, by librosa's definition
  of silence in ``effects.split`` (frame RMS more than ``top_db`` below the loudest frame's). A
  generator that fills every clip with sound scores near 1 where real short effects do not.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import scipy.linalg


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) embeddings -> mean (D,) and unbiased covariance (D, D), in float64."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an (N >= 2, D) array of embeddings, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                                eps: float = 1e-6) -> float:
    """Squared 2-Wasserstein distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched shapes: {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are expected with few clips
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            # Singular product: regularise both covariances slightly (as pytorch-fid does).
            offset = np.eye(len(mu1)) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)  # imaginary parts are round-off for PSD inputs
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between two embedding sets (N, D) and (M, D)."""
    return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))


def _normalise(x: np.ndarray, center: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64) - center
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def class_scores(queries: np.ndarray, refs: np.ndarray, ref_labels: Sequence[int], n_classes: int,
                 k: int = 3, leave_one_out: bool = False, exclude: Sequence[int] | None = None) -> np.ndarray:
    """(Q, n_classes) scores: mean cosine similarity to the ``k`` nearest reference clips of each
    class. ``leave_one_out``: queries are the references themselves; each skips its own row.
    ``exclude``: query i skips reference ``exclude[i]`` (a query made from that reference, e.g. its
    resynthesis, must not be matched with its own original)."""
    labels = np.asarray(ref_labels)
    if len(labels) != len(refs):
        raise ValueError(f"{len(refs)} reference embeddings but {len(labels)} labels")
    center = np.asarray(refs, np.float64).mean(axis=0)
    q, r = _normalise(queries, center), _normalise(refs, center)
    sims = q @ r.T
    if leave_one_out:
        if len(q) != len(r):
            raise ValueError("leave_one_out needs the queries to be the references")
        exclude = np.arange(len(q))
    if exclude is not None:
        exclude = np.asarray(exclude)
        if exclude.shape != (len(q),) or not ((exclude >= 0) & (exclude < len(r))).all():
            raise ValueError(f"exclude needs one reference index in [0, {len(r)}) per query ({len(q)})")
        sims[np.arange(len(q)), exclude] = -np.inf
    scores = np.full((len(q), n_classes), -np.inf)
    for c in range(n_classes):
        cols = sims[:, labels == c]
        if cols.shape[1] == 0:
            continue
        kk = min(k, cols.shape[1])
        top = -np.sort(-cols, axis=1)[:, :kk]
        top = np.where(np.isfinite(top), top, np.nan)
        with np.errstate(all="ignore"):
            mean = np.nanmean(top, axis=1)
        scores[:, c] = np.where(np.isnan(mean), -np.inf, mean)
    return scores


def top_k_accuracy(scores: np.ndarray, labels: Sequence[int], k: int) -> float:
    """Fraction of rows whose true label is among the ``k`` highest scores."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((order == labels[:, None]).any(axis=1).mean())


def true_class_ranks(scores: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """1-based rank of each row's true label among its scores, ties broken as in
    :func:`top_k_accuracy` (so ``rank <= k`` is exactly that row's top-k hit)."""
    labels = np.asarray(labels)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.argmax(order == labels[:, None], axis=1) + 1


def label_accuracy(queries: np.ndarray, labels: Sequence[int], refs: np.ndarray, ref_labels: Sequence[int],
                   n_classes: int, k_neighbours: int = 3, leave_one_out: bool = False,
                   exclude: Sequence[int] | None = None) -> dict[str, float]:
    """Top-1 and top-5 accuracy of the per-class k-NN classifier (``exclude``: see :func:`class_scores`)."""
    scores = class_scores(queries, refs, ref_labels, n_classes, k_neighbours, leave_one_out, exclude)
    return {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, 5)}


def sounding_frames(wav: np.ndarray, num_samples: int | None = None, top_db: float = 40.0,
                    frame_length: int = 2048, hop_length: int = 512, amin: float = 1e-5) -> np.ndarray:
    """Per frame of mono ``wav`` (zero-padded or cut to ``num_samples``): is its RMS within
    ``top_db`` dB of the loudest frame's? Frames centred, zero-padded at the ends, frame i at
    sample i * hop_length (librosa's framing). Digital silence (no frame above ``amin``): all False."""
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if num_samples is not None:
        wav = np.pad(wav[:num_samples], (0, max(0, num_samples - len(wav))))
    if len(wav) == 0:
        raise ValueError("sounding_frames needs at least one sample")
    padded = np.pad(wav, frame_length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    rms = np.maximum(np.sqrt(np.mean(frames ** 2, axis=1)), amin)
    if rms.max() <= amin:
        return np.zeros(len(rms), dtype=bool)
    return 20.0 * np.log10(rms / rms.max()) > -top_db


def sounding_fraction(wav: np.ndarray, num_samples: int | None = None, top_db: float = 40.0,
                      frame_length: int = 2048, hop_length: int = 512, amin: float = 1e-5) -> float:
    """The share of :func:`sounding_frames`; 0 for digital silence."""
    return float(np.mean(sounding_frames(wav, num_samples, top_db, frame_length, hop_length, amin)))
