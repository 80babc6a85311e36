"""The :class:`Dataset` that :func:`nnkd.data.load` returns, and its report lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NPZ_PREFIX = "npz:"  # a dataset name "npz:PATH" is the user's file or folder PATH


@dataclass(eq=False)
class Dataset:
    """A verified dataset.

    ``train_features`` uint8 ``(60000, 784)``, ``train_labels`` uint8 ``(60000,)``,
    ``test_features`` uint8 ``(10000, 784)``, ``test_labels`` uint8 ``(10000,)`` (for
    MNIST and Fashion-MNIST).  A user's ``npz:`` dataset has ``(N, n_features)``
    features, uint8 pixels or float32, and int64 labels 0..n_classes-1.  ``source`` says
    where the files came from on this load, ``stored_at`` where they are kept (the
    cache folder of a named dataset; the ``.npz`` file or folder itself for ``npz:``), ``checksum`` is a short hex digest
    identifying the exact data (for checkpoint metadata).  ``n_classes`` is the number
    of network outputs (10 for MNIST), ``image_shape`` the shape each row unflattens to,
    e.g. ``(28, 28)``, or None when the features are not an image.
    """

    name: str
    train_features: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_features: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    source: str
    stored_at: Path
    checksum: str
    n_classes: int
    image_shape: tuple[int, ...] | None

    @property
    def n_features(self) -> int:
        """Inputs per example: 784 for MNIST."""
        return int(self.train_features.shape[1])


def describe(ds: Dataset) -> list[str]:
    """Report lines for ``python main.py data``: name, source, cache, sizes, class counts."""
    def counts(labels):
        return " ".join(str(c) for c in np.bincount(labels, minlength=ds.n_classes))

    def size(x):
        if ds.image_shape is None:
            return f"{len(x)} examples x {x.shape[1]} features, {x.dtype}"
        shape = f" ({'x'.join(map(str, ds.image_shape))})" if user else ""
        return f"{len(x)} images x {x.shape[1]} pixels{shape}, {x.dtype}"

    user = ds.name.startswith(NPZ_PREFIX)
    classes = f"0..{ds.n_classes - 1}"
    return [
        f"dataset   {ds.name} (checksum {ds.checksum})",
        f"source    {ds.source}",
        f"{'file' if user else 'cache':<9} {ds.stored_at}",
        f"train     {size(ds.train_features)}",
        f"test      {size(ds.test_features)}",
        f"train per class {classes}: {counts(ds.train_labels)}",
        f"test  per class {classes}: {counts(ds.test_labels)}",
    ]
