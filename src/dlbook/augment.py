"""Data augmentation for image arrays: flips, crops, scaling, rotation, colour jitter, Fancy PCA.

Images are float arrays in PyTorch's layout, one image (C, H, W) or a batch (N, C, H, W);
colour transforms expect C = 3 channels (RGB) with values in [0, 1] (Fancy PCA takes any
scale). Every function returns a new array and leaves its argument untouched.

Deterministic maps are plain functions (``hflip``, ``vflip``, ``crop``, ``rescale``, ``rotate``,
``rgb_to_hsv``/``hsv_to_rgb``). Random augmentations are small classes called as
``t(x, rng)`` with an explicit ``rng: np.random.Generator``: on a batch each image gets its own
draw (images in order), so a run is repeatable under a seed. :class:`Compose` chains them:

    augment = Compose([RandomCrop(8, padding=1), RandomRotation(15)])
    xb = augment(xb, rng)

Supervised augmentation picks crops where a first network's heat map is strong:
:func:`window_sums` totals a heat map inside every crop window, and :func:`sample_crops` draws
one crop per image with probability proportional to a weight per crop position.

Rotation and scaling interpolate with ``scipy.ndimage`` (bilinear by default, zeros outside
the image).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

from dlbook._validate import as_array, pair

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # t(x, rng) -> new x

__all__ = [
    "hflip", "vflip", "crop", "rescale", "rotate", "rgb_to_hsv", "hsv_to_rgb",
    "rgb_pca", "fancy_pca",
    "Compose", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomCrop", "RandomScale",
    "RandomRotation", "ColorJitter", "FancyPCA", "window_sums", "sample_crops",
]


# --- helpers ---------------------------------------------------------------------------------

def _image(x, name: str = "x") -> np.ndarray:
    x = as_array(x, name)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected an image (C, H, W) or a batch (N, C, H, W), "
                         f"got shape {x.shape}")
    return x


def _rgb(x, name: str = "x") -> np.ndarray:
    x = _image(x, name)
    if x.shape[-3] != 3:
        raise ValueError(f"{name}: expected 3 colour channels (RGB) on axis -3, "
                         f"got shape {x.shape}")
    return x


def _each(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to one (C, H, W) image or to each image of a batch, in order."""
    if x.ndim == 3:
        return fn(x)
    return np.stack([fn(image) for image in x])


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), "
                         f"got {type(rng).__name__}")


# --- deterministic maps ----------------------------------------------------------------------

def hflip(x: np.ndarray) -> np.ndarray:
    """Mirror left-right (reverse the W axis). Matches ``torchvision``'s ``F.hflip``."""
    return _image(x)[..., ::-1].copy()


def vflip(x: np.ndarray) -> np.ndarray:
    """Mirror top-bottom (reverse the H axis). Matches ``torchvision``'s ``F.vflip``."""
    return _image(x)[..., ::-1, :].copy()


def crop(x: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The window x[..., top:top + height, left:left + width] (it must lie inside the image)."""
    x = _image(x)
    h, w = x.shape[-2:]
    if not (0 <= top and 0 <= left and height >= 1 and width >= 1 and top + height <= h
            and left + width <= w):
        raise ValueError(f"top, left, height, width: window ({top}, {left}, {height}, {width}) "
                         f"does not fit an image of H, W = {h}, {w}")
    return x[..., top:top + height, left:left + width].copy()


def _fit_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Centre-crop or zero-pad the last two axes of ``x`` to (h, w)."""
    out = np.zeros(x.shape[:-2] + (h, w), dtype=x.dtype)
    xh, xw = x.shape[-2:]
    ch, cw = min(h, xh), min(w, xw)
    sy, sx = (xh - ch) // 2, (xw - cw) // 2  # where the kept window starts in x
    dy, dx = (h - ch) // 2, (w - cw) // 2  # where it lands in out
    out[..., dy:dy + ch, dx:dx + cw] = x[..., sy:sy + ch, sx:sx + cw]
    return out


def rescale(x: np.ndarray, factor: float, *, keep_size: bool = True, order: int = 1) -> np.ndarray:
    """Resize the spatial axes by ``factor`` (> 1 enlarges) with ``scipy.ndimage.zoom``.

    With ``keep_size`` the result is centre-cropped (factor > 1) or zero-padded (factor < 1)
    back to (H, W), a zoom about the image centre; otherwise it has size
    round(H * factor) x round(W * factor).
    """
    x = _image(x)
    if not factor > 0:
        raise ValueError(f"factor: expected a positive scale, got {factor!r}")
    zoom = (1.0,) * (x.ndim - 2) + (factor, factor)
    out = ndimage.zoom(x, zoom, order=order, mode="nearest", grid_mode=True)
    return _fit_to(out, *x.shape[-2:]) if keep_size else out


def rotate(x: np.ndarray, angle: float, *, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """Rotate the spatial axes by ``angle`` degrees counter-clockwise about the image centre.

    The output keeps the input size; corners that come from outside the image get ``fill``.
    Uses ``scipy.ndimage.rotate`` (spline interpolation of ``order``; 1 = bilinear). A multiple
    of 90 degrees on a square image equals ``np.rot90`` over the axes (H, W).
    """
    x = _image(x)
    return ndimage.rotate(x, angle, axes=(-1, -2), reshape=False, order=order, mode="constant",
                          cval=fill)


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] to HSV in [0, 1] (hue as a fraction of a full turn), channels on axis -3.

    V = max(R, G, B), S = (V - min) / V (0 for black), and H from which channel is largest.
    Matches ``matplotlib.colors.rgb_to_hsv`` (channels last there).
    """
    x = _rgb(x)
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    v = np.max(x, axis=-3)
    delta = v - np.min(x, axis=-3)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1.0), 0.0)
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(v == r, (g - b) / safe,
                 np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-3)


def hsv_to_rgb(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv`. Matches ``matplotlib.colors.hsv_to_rgb``."""
    x = _rgb(x)
    h, s, v = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    i = i.astype(int) % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = [np.select([i == k for k in range(6)], [c[ch] for c in choices]) for ch in range(3)]
    return np.stack(channels, axis=-3)


def rgb_pca(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes of the RGB values of every pixel of ``images`` (AlexNet's lighting PCA).

    Args:
        images: (N, 3, H, W) or (3, H, W) training images.
    Returns:
        ``(eigenvalues, eigenvectors)``: (3,) in decreasing order and (3, 3) with the
        eigenvectors p_i as columns, of the 3 x 3 covariance of the pixels' RGB vectors.
    """
    images = _rgb(images, "images")
    pixels = np.moveaxis(images, -3, -1).reshape(-1, 3)  # (pixels, 3)
    centred = pixels - pixels.mean(axis=0)
    cov = centred.T @ centred / len(pixels)  # (3, 3)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    return np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]


def fancy_pca(x: np.ndarray, eigenvalues: np.ndarray, eigenvectors: np.ndarray,
              alpha: np.ndarray) -> np.ndarray:
    """Add the lighting offset [p1, p2, p3] (alpha * lambda) to every pixel (AlexNet, 2012).

    Args:
        x: (3, H, W) image or (N, 3, H, W) batch.
        eigenvalues, eigenvectors: from :func:`rgb_pca` (3,) and (3, 3).
        alpha: (3,) coefficients for one image or (N, 3) for a batch (one row per image).
    Returns:
        ``x`` plus one constant RGB vector per image.
    """
    x = _rgb(x)
    eigenvalues = as_array(eigenvalues, "eigenvalues")
    eigenvectors = as_array(eigenvectors, "eigenvectors")
    if eigenvalues.shape != (3,) or eigenvectors.shape != (3, 3):
        raise ValueError(f"eigenvalues, eigenvectors: expected shapes (3,) and (3, 3), got "
                         f"{eigenvalues.shape} and {eigenvectors.shape}")
    alpha = as_array(alpha, "alpha")
    expected = x.shape[:-3] + (3,)
    if alpha.shape != expected:
        raise ValueError(f"alpha: expected shape {expected}, got {alpha.shape}")
    offset = (alpha * eigenvalues) @ eigenvectors.T  # (..., 3): sum_i alpha_i lambda_i p_i
    return x + offset[..., :, None, None]


# --- random augmentations --------------------------------------------------------------------

class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(x, rng) = t2(t1(x, rng), rng)``."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Run every transform on ``x``, each drawing from ``rng``."""
        for transform in self.transforms:
            x = transform(x, rng)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class _RandomFlip:
    _flip = staticmethod(hflip)

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = p

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Flip each image with probability ``p``."""
        x = _image(x)
        _check_rng(rng)
        flip = type(self)._flip
        return _each(x, lambda image: flip(image) if rng.random() < self.p else image.copy())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left-right with probability ``p`` (``torchvision``'s namesake)."""

    _flip = staticmethod(hflip)


class RandomVerticalFlip(_RandomFlip):
    """Mirror each image top-bottom with probability ``p`` (wrong for digits and faces)."""

    _flip = staticmethod(vflip)


class RandomCrop:
    """Zero-pad by ``padding`` on every side, then cut a ``size`` window at a uniform position.

    ``size`` is an int (square) or (height, width). Padding 1 and size 8 on 8 x 8 digits shifts
    each digit by up to one pixel in each direction.
    """

    def __init__(self, size, padding: int = 0) -> None:
        self.size = pair(size, "size")
        if min(self.size) < 1 or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"size, padding: expected positive sizes and padding >= 0, got "
                             f"{size!r}, {padding!r}")
        self.padding = padding

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Crop each image at its own random position."""
        x = _image(x)
        _check_rng(rng)
        p = self.padding
        h, w = x.shape[-2] + 2 * p, x.shape[-1] + 2 * p
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"size: crop {self.size} is larger than the padded image ({h}, {w})")
        widths = [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)]
        padded = np.pad(x, widths)

        def one(image):
            top, left = rng.integers(0, h - th + 1), rng.integers(0, w - tw + 1)
            return image[:, top:top + th, left:left + tw].copy()

        return _each(padded, one)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomScale:
    """Zoom each image about its centre by a factor drawn from U(low, high), keeping its size."""

    def __init__(self, scale: tuple[float, float] = (0.8, 1.2), order: int = 1) -> None:
        low, high = scale
        if not 0 < low <= high:
            raise ValueError(f"scale: expected 0 < low <= high, got {scale!r}")
        self.scale, self.order = (low, high), order

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rescale each image by its own random factor."""
        x = _image(x)
        _check_rng(rng)
        return _each(x, lambda image: rescale(image, rng.uniform(*self.scale), order=self.order))

    def __repr__(self) -> str:
        return f"RandomScale(scale={self.scale})"


class RandomRotation:
    """Rotate each image by an angle drawn from U(-degrees, degrees) (or U(low, high))."""

    def __init__(self, degrees, order: int = 1, fill: float = 0.0) -> None:
        if isinstance(degrees, (int, float)):
            if degrees < 0:
                raise ValueError(f"degrees: expected >= 0, got {degrees!r}")
            degrees = (-float(degrees), float(degrees))
        low, high = degrees
        if not low <= high:
            raise ValueError(f"degrees: expected low <= high, got {degrees!r}")
        self.degrees, self.order, self.fill = (low, high), order, fill

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rotate each image by its own random angle."""
        x = _image(x)
        _check_rng(rng)
        return _each(x, lambda image: rotate(image, rng.uniform(*self.degrees), order=self.order,
                                             fill=self.fill))

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees})"


class ColorJitter:
    """Random colour changes in HSV space, one draw per image:

        H <- H + U(-hue, hue) (mod 1),   S <- S * U(1 - saturation, 1 + saturation),
        V <- V * U(1 - value, 1 + value),

    with S and V clipped to [0, 1]. The source's advice: change S and V freely, H a little.
    Input and output are RGB in [0, 1].
    """

    def __init__(self, hue: float = 0.02, saturation: float = 0.3, value: float = 0.3) -> None:
        if not (0 <= hue <= 0.5 and 0 <= saturation <= 1 and 0 <= value <= 1):
            raise ValueError(f"hue, saturation, value: expected hue in [0, 0.5] and the others in "
                             f"[0, 1], got {hue!r}, {saturation!r}, {value!r}")
        self.hue, self.saturation, self.value = hue, saturation, value

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Jitter each image's hue, saturation and value."""
        x = _rgb(x)
        _check_rng(rng)

        def one(image):
            dh = rng.uniform(-self.hue, self.hue)
            fs = rng.uniform(1 - self.saturation, 1 + self.saturation)
            fv = rng.uniform(1 - self.value, 1 + self.value)
            h, s, v = rgb_to_hsv(image)
            hsv = np.stack([(h + dh) % 1.0, np.clip(s * fs, 0, 1), np.clip(v * fv, 0, 1)])
            return hsv_to_rgb(hsv)

        return _each(x, one)

    def __repr__(self) -> str:
        return f"ColorJitter(hue={self.hue}, saturation={self.saturation}, value={self.value})"


class FancyPCA:
    """AlexNet's lighting noise: add sum_i alpha_i lambda_i p_i to every pixel of an image.

    The eigen-pairs (lambda_i, p_i) of the RGB covariance come from the training images
    (:func:`rgb_pca`, or :meth:`fit`); alpha ~ N(0, std^2), std = 0.1, is drawn afresh for each
    image each time it is used.
    """

    def __init__(self, eigenvalues: np.ndarray | None = None,
                 eigenvectors: np.ndarray | None = None, std: float = 0.1) -> None:
        if not std >= 0:
            raise ValueError(f"std: expected >= 0, got {std!r}")
        self.eigenvalues, self.eigenvectors, self.std = eigenvalues, eigenvectors, std

    def fit(self, images: np.ndarray) -> "FancyPCA":
        """Compute the RGB eigen-pairs from the (N, 3, H, W) training images."""
        self.eigenvalues, self.eigenvectors = rgb_pca(images)
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shift each image by its own random lighting offset."""
        if self.eigenvalues is None:
            raise RuntimeError("FancyPCA: give eigenvalues/eigenvectors or call fit(images) first")
        x = _rgb(x)
        _check_rng(rng)
        alpha = rng.normal(0.0, self.std, x.shape[:-3] + (3,))
        return fancy_pca(x, self.eigenvalues, self.eigenvectors, alpha)

    def __repr__(self) -> str:
        return f"FancyPCA(std={self.std})"


# --- supervised augmentation: crops where a heat map is strong -------------------------------

def window_sums(heat: np.ndarray, size) -> np.ndarray:
    """Total of a heat map inside every ``size`` window: one number per crop position.

    out[n, t, l] = sum_{i < KH, j < KW} heat[n, t + i, l + j]

    Args:
        heat: (N, H, W) any real map per image (e.g. the positive part of a class activation
            map brought to the image's size); size: int or (KH, KW), the crop's size.
    Returns:
        (N, H - KH + 1, W - KW + 1) sums, indexed by the crop's top-left corner (t, l).
    """
    heat = as_array(heat, "heat")
    if heat.ndim != 3:
        raise ValueError(f"heat: expected a 3-D array (N, H, W), got shape {heat.shape}")
    kh, kw = pair(size, "size")
    if not (1 <= kh <= heat.shape[1] and 1 <= kw <= heat.shape[2]):
        raise ValueError(f"size: expected a window inside ({heat.shape[1]}, {heat.shape[2]}), "
                         f"got {size!r}")
    windows = np.lib.stride_tricks.sliding_window_view(heat, (kh, kw), axis=(1, 2))
    return windows.sum(axis=(3, 4))  # (N, OH, OW)


def sample_crops(x: np.ndarray, weights: np.ndarray, size, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cut one ``size`` crop from each image, its position drawn with probability ∝ ``weights``.

    P(crop n at top-left corner (t, l)) = weights[n, t, l] / sum_{t', l'} weights[n, t', l'].
    Equal weights give the plain random crop; weights that are zero except where a first
    network's heat map is strong give supervised crops, which never start where the weight is 0.

    Args:
        x: (N, C, H, W) images, N >= 1; weights: (N, H - KH + 1, W - KW + 1), finite and
            non-negative, with a positive sum for every image; size: int or (KH, KW), a window
            inside (H, W); rng: the generator to draw from.
    Returns:
        ``(crops, corners)``: crops (N, C, KH, KW) and the top-left corners (N, 2) as (t, l).
    """
    x = as_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x: expected a batch (N, C, H, W), got shape {x.shape}")
    kh, kw = pair(size, "size")
    n, _, h, w = x.shape
    if n == 0:
        raise ValueError("x: expected at least one image, got N = 0")
    if not (1 <= kh <= h and 1 <= kw <= w):
        raise ValueError(f"size: expected a window inside ({h}, {w}), got {size!r}")
    weights = as_array(weights, "weights")
    if weights.shape != (n, h - kh + 1, w - kw + 1):
        raise ValueError(f"weights: expected shape {(n, h - kh + 1, w - kw + 1)} (one per crop "
                         f"position), got {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("weights: expected finite values, got NaN or inf")
    if np.any(weights < 0) or np.any(weights.sum(axis=(1, 2)) <= 0):
        raise ValueError("weights: expected non-negative values with a positive sum per image")
    _check_rng(rng)
    cumulative = weights.reshape(n, -1).cumsum(axis=1)  # (N, OH * OW)
    u = (1.0 - rng.random((n, 1))) * cumulative[:, -1:]  # uniform in (0, total]
    k = (cumulative < u).sum(axis=1)  # first position whose cumulative weight reaches u
    top, left = np.divmod(k, w - kw + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    crops = windows[np.arange(n), :, top, left].copy()  # (N, C, OH, OW, KH, KW) -> (N, C, KH, KW)
    return crops, np.stack([top, left], axis=1)
