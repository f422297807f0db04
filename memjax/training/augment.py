"""Data augmentation for FER2013, inside the jitted training step.

One bilinear affine resampling per image does everything: random crop with zero padding (an
integer shift of up to ``max_shift`` pixels, which equals cropping 48x48 out of the zero-padded
56x56 image), horizontal flip, and small rotations and scalings (faces in FER2013 vary in pose
and size). Then an optional random erasing of one rectangle (Zhong et al., AAAI 2020).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation parameters.

    Attributes:
        max_shift: largest translation, pixels (the padding of the random crop).
        flip: flip horizontally with probability 1/2.
        max_rotation_deg: rotations uniform in +-this many degrees.
        max_scale: zoom factors uniform in [1 - max_scale, 1 + max_scale].
        erase_probability: probability of erasing one random rectangle (0 disables).
    """

    max_shift: int = 4
    flip: bool = True
    max_rotation_deg: float = 10.0
    max_scale: float = 0.1
    erase_probability: float = 0.5


def augment_batch(key: jax.Array, images: jax.Array, config: AugmentConfig) -> jax.Array:
    """Augment gray levels (N, H, W) -> float32 gray levels (N, H, W), still within 0..255."""
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda k, x: _augment_one(k, x, config))(keys, images.astype(jnp.float32))


def _augment_one(key, image, config: AugmentConfig):
    h, w = image.shape
    k_shift, k_flip, k_rot, k_scale, k_erase = jax.random.split(key, 5)
    shift = jax.random.randint(k_shift, (2,), -config.max_shift, config.max_shift + 1)
    angle = jnp.deg2rad(config.max_rotation_deg) * jax.random.uniform(k_rot, (), minval=-1.0)
    scale = 1.0 + config.max_scale * jax.random.uniform(k_scale, (), minval=-1.0)
    flip = jnp.where(config.flip & jax.random.bernoulli(k_flip), -1.0, 1.0)

    rows, cols = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    y, x = rows - cy - shift[0], (cols - cx - shift[1]) * flip
    cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale
    source_y = cos * y - sin * x + cy
    source_x = sin * y + cos * x + cx
    out = map_coordinates(image, [source_y, source_x], order=1, mode="constant", cval=0.0)
    if config.erase_probability > 0:
        out = _random_erase(k_erase, out, config.erase_probability)
    return out


def _random_erase(key, image, probability: float):
    """Blank one rectangle covering 2-20% of the image, aspect ratio 0.3-3.3, to mid gray."""
    h, w = image.shape
    k_apply, k_area, k_ratio, k_y, k_x = jax.random.split(key, 5)
    area = h * w * jax.random.uniform(k_area, (), minval=0.02, maxval=0.2)
    ratio = jnp.exp(jax.random.uniform(k_ratio, (), minval=jnp.log(0.3), maxval=jnp.log(3.3)))
    eh = jnp.clip(jnp.sqrt(area * ratio), 1, h)
    ew = jnp.clip(jnp.sqrt(area / ratio), 1, w)
    y0 = jax.random.uniform(k_y, ()) * (h - eh)
    x0 = jax.random.uniform(k_x, ()) * (w - ew)
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    inside = (rows >= y0) & (rows < y0 + eh) & (cols >= x0) & (cols < x0 + ew)
    apply = jax.random.bernoulli(k_apply, probability)
    return jnp.where(apply & inside, 127.5, image)
