"""Image classification data held in memory, resized per batch to the resolution a step trains at.

Two sources: scikit-learn's ``load_digits`` (1,797 real 8×8 handwritten digits, 10 classes, repeated to
three channels) and an ImageFolder-style directory (``ROOT/<class name>/<image file>``, read with PIL).
Images are stored once at a base size and bilinearly resized for each batch, which is how a supernet
trains and evaluates at many resolutions from one copy of the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DIGITS",
    "IMAGE_SUFFIXES",
    "ImageDataset",
    "iter_batches",
    "load_dataset",
    "load_digits_dataset",
    "load_image_folder",
    "resize_batch",
    "split_dataset",
]

logger = logging.getLogger(__name__)

DIGITS = "digits"  # name of the built-in dataset
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageDataset:
    """Normalized images and their labels.

    Attributes:
        images: float32 tensor [n, 3, H, W], normalized per channel.
        labels: int64 tensor [n].
        class_names: one name per class index.
        source: where the data came from (``"digits"`` or a directory path).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape [n, 3, H, W], got {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape [{self.images.shape[0]}], got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def subset(self, index: np.ndarray | Sequence[int]) -> ImageDataset:
        """The rows at ``index`` as a new dataset."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return ImageDataset(self.images[idx], self.labels[idx], self.class_names, self.source)


def load_digits_dataset() -> ImageDataset:
    """scikit-learn's 8×8 digits as a 3-channel, normalized 8×8 image set (10 classes, 1,797 images)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32) / 16.0  # values 0..16
    mean, std = float(pixels.mean()), float(pixels.std())
    images = ((pixels - mean) / std).unsqueeze(1).repeat(1, 3, 1, 1).contiguous()
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return ImageDataset(images, labels, tuple(str(i) for i in range(10)), DIGITS)


def load_image_folder(root: str | Path, image_size: int = 64) -> ImageDataset:
    """Read ``root/<class>/<image>`` files, resized to ``image_size`` squares, normalized as ImageNet.

    Args:
        root: the directory; each sub-directory is one class (sorted by name).
        image_size: side the images are stored at (batches are resized from it).

    Raises:
        FileNotFoundError: ``root`` is not a directory.
        ValueError: no class directories or no images were found.
    """
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class sub-directories; expected ROOT/<class>/<image>")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                arrays.append(np.asarray(rgb, dtype=np.uint8))
            labels.append(label)
    if not arrays:
        raise ValueError(f"no images with suffixes {', '.join(IMAGE_SUFFIXES)} under {root}")
    pixels = torch.as_tensor(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    images = ((pixels - mean) / std).contiguous()
    logger.debug("read %d images in %d classes from %s", len(labels), len(classes), root)
    return ImageDataset(images, torch.as_tensor(labels, dtype=torch.int64), tuple(classes), str(root))


def load_dataset(spec: str, image_size: int = 64) -> ImageDataset:
    """``"digits"`` for the built-in set, otherwise an ImageFolder directory path."""
    if spec == DIGITS:
        return load_digits_dataset()
    return load_image_folder(spec, image_size)


def split_dataset(
    data: ImageDataset, holdout_fraction: float = 0.2, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """Split into (train, held-out), stratified by class and seeded.

    Raises:
        ValueError: ``holdout_fraction`` is not in (0, 1).
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    train_idx: list[np.ndarray] = []
    hold_idx: list[np.ndarray] = []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_hold = round(len(idx) * holdout_fraction)
        hold_idx.append(idx[:n_hold])
        train_idx.append(idx[n_hold:])
    train = np.sort(np.concatenate(train_idx))
    hold = np.sort(np.concatenate(hold_idx))
    return data.subset(train), data.subset(hold)


def resize_batch(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize of a batch to ``resolution``×``resolution`` (a no-op at the stored size)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)


def _shift(images: torch.Tensor, rng: np.random.Generator, max_shift: int) -> torch.Tensor:
    # Random translation by up to max_shift pixels per image, zero (mean) filled.
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


def iter_batches(
    data: ImageDataset,
    batch_size: int,
    resolution: int,
    rng: np.random.Generator | None = None,
    augment: bool = False,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches at ``resolution``.

    Args:
        data: the dataset.
        batch_size: images per batch.
        resolution: output side.
        rng: shuffles (and augments) when given; otherwise batches come in order.
        augment: random translation by up to 1/8 of the side (needs ``rng``).
        drop_last: skip a final short batch.
    """
    n = len(data)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        index = torch.as_tensor(idx)
        x = resize_batch(data.images[index], resolution)
        if augment and rng is not None and resolution >= 8:
            x = _shift(x, rng, max(1, resolution // 8))
        yield x, data.labels[index]
