"""Random affine and elastic distortions of training batches, on the training device.

One sampling grid and one `grid_sample` per batch. Each image gets its own random rotation, scale,
shear and shift (a 2×3 matrix, as `affine_grid` reads it) and, with elastic_alpha > 0, an elastic
distortion (Simard et al. 2003: a uniform random displacement field smoothed by a Gaussian of width
σ, scaled by α pixels) added to its sampling grid. Bilinear sampling with zero padding takes convex
combinations of pixels and zeros, so images in [0, 1] stay in [0, 1].

Cost (the 512-512 model's epoch must cost at most 1.5× without augmentation; bench/augment_cost.py):

- The affine grid is one matrix product, (N, 6) matrices times a fixed (6, H·W·2) basis: 0.07 ms
  for 128 images here, against 1.0 ms for the batched (H·W, 3) × (3, 2) products that
  `affine_grid` amounts to.
- Simard's field is S·U·Sᵀ per image and axis, with U uniform in [-1, 1] (H×W numbers) and S the
  zero-padded Gaussian smoothing matrix. Its covariance is (SSᵀ ⊗ SSᵀ)/3, and SSᵀ = VΛVᵀ has only
  a few eigenvalues that matter (σ = 4 on 28 pixels: 7 hold all but 10⁻⁴ of its trace). So the
  field is drawn as A·G·Aᵀ with A = V_r·Λ_r^½ (H × r) and G uniform in [-1, 1] (r × r numbers): the
  same covariance, border effects included, up to that 10⁻⁴ (tested), from 98 random numbers per
  image instead of 1,568. The two products with A are two plain matrix products over the whole
  batch, and the affine grid rides on the second (two more columns of A, two more rows of its
  other factor), so grid and field come out of one product: 0.34 ms for 128 images here, against
  3.6 ms for the field alone drawn and smoothed at full resolution.

The distortions draw from their own generator (seeded from the training seed, saved in
checkpoints), so that turning augmentation on changes nothing else's random stream and a
resumed run stays bit-identical.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.training.config import Augment

AUGMENT_STREAM = 0xA06  # separates the augmentation generator's seed from the shuffling one's


def augment_seed(seed: int) -> int:
    """The augmentation generator's seed, derived from the training seed."""
    return int(np.random.SeedSequence((seed, AUGMENT_STREAM)).generate_state(1, np.uint64)[0] & (2**63 - 1))


def resolve_image_shape(num_features: int, image_shape: tuple[int, ...] | None) -> tuple[int, int]:
    """The (height, width) to reshape flat features to: the data's, or a square one inferred.

    Augmentation rotates and shears in normalised coordinates, so it needs square images.
    """
    if image_shape is None:
        side = math.isqrt(num_features)
        if side * side != num_features:
            raise ConfigError(f"training.augment needs square images, but the data have {num_features} features "
                              "(not a square number)")
        return side, side
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 2 or shape[0] * shape[1] != num_features:
        raise ConfigError(f"training.augment needs images of height × width = {num_features} features, "
                          f"got image shape {shape}")
    if shape[0] != shape[1]:
        raise ConfigError(f"training.augment needs square images, got {shape[0]} × {shape[1]}")
    return shape  # type: ignore[return-value]


def gaussian_matrix(sigma: float, size: int, device: torch.device) -> torch.Tensor:
    """(size, size) matrix K with K @ v = v convolved with a normalised Gaussian (radius 3σ, zero padding).

    Smoothing a field as K_h @ F @ K_wᵀ (two batched matrix products) costs far less on a CPU than
    two single-channel convolutions with a kernel as wide as the image.
    """
    t = torch.arange(size, dtype=torch.float32, device=device)
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    norm = torch.exp(-0.5 * (taps / sigma) ** 2).sum()
    offset = t.view(-1, 1) - t.view(1, -1)
    weights = torch.exp(-0.5 * (offset / sigma) ** 2) / norm
    return torch.where(offset.abs() <= radius, weights, torch.zeros_like(weights))


def smoothing_factor(sigma: float, size: int, device: torch.device, tolerance: float = 1e-4) -> torch.Tensor:
    """(size, r) matrix A with A·Aᵀ ≈ S·Sᵀ (S: `gaussian_matrix`), keeping the fewest eigenvalues
    that hold all but `tolerance` of the trace: A·G·Aᵀ (G iid) then has the covariance of S·G·Sᵀ."""
    smooth = gaussian_matrix(sigma, size, torch.device("cpu")).double()
    eigenvalues, vectors = torch.linalg.eigh(smooth @ smooth.t())  # ascending
    eigenvalues, vectors = eigenvalues.flip(0).clamp(min=0), vectors.flip(1)
    held = eigenvalues.cumsum(0) / eigenvalues.sum()
    rank = min(int((held < 1 - tolerance).sum()) + 1, size)
    return (vectors[:, :rank] * eigenvalues[:rank].sqrt()).to(device, torch.float32)


class Augmenter:
    """Distorts flat (N, H·W) batches of images in [0, 1]; deterministic for a seed."""

    def __init__(self, config: Augment, image_shape: tuple[int, int], device: torch.device | str, seed: int) -> None:
        self.config = config
        self.height, self.width = image_shape
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(augment_seed(seed))
        # Pixel centres in normalised coordinates (align_corners=False), as affine_grid places them.
        self.xs = (torch.arange(self.width, dtype=torch.float32, device=self.device) * 2 + 1) / self.width - 1
        self.ys = (torch.arange(self.height, dtype=torch.float32, device=self.device) * 2 + 1) / self.height - 1
        # The affine grid's basis: grid[n, h, w, c] = Σ_k theta[n, c, k] · (x_w, y_h, 1)[k].
        base = torch.stack([self.xs.expand(self.height, -1), self.ys[:, None].expand(-1, self.width),
                            torch.ones(self.height, self.width, device=self.device)], -1).reshape(-1, 3)
        self.affine_basis = torch.zeros(2, 3, self.height * self.width, 2, device=self.device)
        for c in range(2):
            self.affine_basis[c, :, :, c] = base.t()
        self.affine_basis = self.affine_basis.view(6, -1)
        self.elastic = config.elastic_alpha > 0
        if self.elastic:
            # Square images (resolve_image_shape): one factor serves both axes. α pixels are α·2/size
            # in normalised coordinates; that scale rides on the left factor. Its two extra columns
            # (y_h and 1) carry the affine part through the same product.
            factor = smoothing_factor(config.elastic_sigma, self.height, self.device)
            self.rank = factor.shape[1]
            self.right_t = factor.t().contiguous()  # (r, W)
            self.left = torch.cat([factor * (config.elastic_alpha * 2 / self.width), self.ys[:, None],
                                   torch.ones(self.height, 1, device=self.device)], 1)  # (H, r + 2)

    def _uniform(self, *shape: int) -> torch.Tensor:
        """Uniform in [-1, 1), from the augmentation generator."""
        return torch.rand(*shape, generator=self.generator, device=self.device).mul_(2).sub_(1)

    def theta(self, n: int) -> torch.Tensor:
        """Per-image 2×3 matrices mapping output coordinates to input coordinates."""
        c = self.config
        u = self._uniform(n, 5)
        angle = u[:, 0] * math.radians(c.rotate)
        scale = 1 + u[:, 1] * c.scale
        shear = torch.tan(u[:, 2] * math.radians(c.shear))
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.empty(n, 2, 3, device=self.device)
        # rotation·scale, then a horizontal shear: [[cos, -sin], [sin, cos]] @ [[1, shear], [0, 1]]
        theta[:, 0, 0], theta[:, 0, 1] = cos, cos * shear - sin
        theta[:, 1, 0], theta[:, 1, 1] = sin, sin * shear + cos
        # shifts in pixels; with align_corners=False a pixel is 2/size in normalised coordinates
        theta[:, 0, 2] = u[:, 3] * (c.shift * 2 / self.width)
        theta[:, 1, 2] = u[:, 4] * (c.shift * 2 / self.height)
        return theta

    def affine_grid(self, theta: torch.Tensor) -> torch.Tensor:
        """`F.affine_grid(theta, (N, 1, H, W), align_corners=False)` as one matrix product."""
        return torch.mm(theta.reshape(len(theta), 6), self.affine_basis).view(len(theta), self.height, self.width, 2)

    def elastic_grid(self, theta: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The affine grid plus Simard's field drawn from `noise` (r·N·2, r), uniform in [-1, 1].

        Laid out (h, n, c, w) so that both products are single matrix products over the batch; the
        result is a (N, H, W, 2) view of it, which grid_sample reads as it is.
        """
        n, r, width = len(theta), self.rank, self.width
        rows = torch.empty(r + 2, n * 2 * width, device=self.device)
        torch.mm(noise, self.right_t, out=rows[:r].view(r * n * 2, width))  # Σ_j G[i, n, c, j]·A[w, j]
        rows[r].view(n, 2, width).copy_(theta[:, :, 1:2].expand(n, 2, width))  # times y_h
        torch.addcmul(theta[:, :, 2:3], theta[:, :, 0:1], self.xs, out=rows[r + 1].view(n, 2, width))  # times 1
        grid = torch.mm(self.left, rows)  # Σ_i A[h, i]·(…), and the affine part
        return grid.view(self.height, n, 2, width).permute(1, 0, 3, 2)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        images = x.view(n, 1, self.height, self.width) if x.is_contiguous() else x.reshape(n, 1, self.height, self.width)
        theta = self.theta(n)
        if self.elastic:
            grid = self.elastic_grid(theta, self._uniform(self.rank * n * 2, self.rank))
        else:
            grid = self.affine_grid(theta)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(n, self.height * self.width)


def augment_images(config: Augment, images: np.ndarray, *, seed: int) -> np.ndarray:
    """uint8 images (N, H, W) distorted as training would distort them, as floats in 0-255 (for pictures)."""
    n = len(images)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32).reshape(n, -1) / 255)
    shape = resolve_image_shape(x.shape[1], tuple(images.shape[1:]))
    return Augmenter(config, shape, "cpu", seed)(x).numpy().reshape(images.shape) * 255
