"""Vision Transformer throughput: aiayn's `VisionTransformer` against timm's `VisionTransformer`
of the same shape.

Both contenders are ViT blocks (pre-LN, erf-GELU, [CLS], learned positions, LayerNorm ε 1e-6,
no dropout) with random weights, at 224×224 in 16×16 patches (197 tokens):
  aiayn  `VisionTransformer` from the vit-* presets
  timm   `timm.models.vision_transformer.VisionTransformer` (fused qkv, F.sdpa attention)

Training: one step — forward, cross-entropy over 1,000 classes (fp32 logits), backward, fused
AdamW — on the same batch, fp32 or bf16 autocast. Inference: images/s of eval-mode forward
on batches of `batch` images, fp32 and bf16 autocast. MFU counts matmul FLOPs
(`aiayn.models.info.estimate_vision_flops`).

    python -m benchmarks.run --parts vit --vit-size tiny base   # what docs/vision.md reports
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aiayn.models import presets
from aiayn.models.info import estimate_vision_flops
from aiayn.models.vision import VisionTransformer
from benchmarks.measure import PeakMemory, autocast_for, median_seconds


@dataclass(frozen=True)
class VitDims:
    """Model and workload sizes of one ViT benchmark row."""

    preset: str
    image_size: int = 224
    patch_size: int = 16
    batch: int = 32
    num_labels: int = 1000

    def config(self):
        return presets.get(self.preset, image_size=self.image_size, patch_size=self.patch_size,
                           num_labels=self.num_labels)  # fmt: skip


VIT_SIZES = {
    "tiny": VitDims("vit-tiny"),  # ViT-Ti/16 (DeiT-Ti), 5.7M parameters
    "base": VitDims("vit-base"),  # ViT-B/16, 86.6M parameters
    # Seconds-long smoke run for CI: 32×32 images in 8×8 patches, 16 classes.
    "smoke": VitDims("vit-tiny", image_size=32, patch_size=8, batch=2, num_labels=16),
}


def build(contender: str, dims: VitDims) -> nn.Module:
    torch.manual_seed(0)
    cfg = dims.config()
    if contender == "aiayn":
        return VisionTransformer(cfg)
    if contender == "timm":
        from benchmarks.timm_import import import_timm

        vit = import_timm().models.vision_transformer.VisionTransformer
        return vit(
            img_size=cfg.image_size, patch_size=cfg.patch_size, embed_dim=cfg.d_model,
            depth=cfg.n_layers, num_heads=cfg.n_heads, mlp_ratio=cfg.layer.d_ff / cfg.d_model,
            num_classes=cfg.num_labels,
        )  # fmt: skip
    raise ValueError(f"unknown contender {contender!r}")


def images_for(dims: VitDims, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(dims.batch, 3, dims.image_size, dims.image_size, generator=gen)
    labels = torch.randint(0, dims.num_labels, (dims.batch,), generator=gen)
    return images.to(device), labels.to(device)


def vit_train_rate(
    contender: str, size: str, precision: str, device: str, warmup: int, reps: int
) -> dict:
    """Training images/s, MFU numerator and peak memory of one step."""
    dims = VIT_SIZES[size]
    model = build(contender, dims).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
    images, labels = images_for(dims, device)
    autocast = autocast_for(precision, device)

    def step() -> None:
        with autocast:
            logits = model(images)  # (B, K)
        F.cross_entropy(logits.float(), labels).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with PeakMemory(device) as mem:
        seconds = median_seconds(step, warmup, reps, device)
    flops = estimate_vision_flops(dims.config()).forward  # per image
    return {
        "images_per_s": round(dims.batch / seconds, 1),
        "step_ms": round(seconds * 1e3, 2),
        "flops_per_s": 3 * flops * dims.batch / seconds,
        "peak_mem_mib": mem.mib,
        "params": sum(p.numel() for p in model.parameters()),
    }


def vit_infer_rate(
    contender: str, size: str, precision: str, device: str, warmup: int, reps: int
) -> dict:
    """Inference images/s (eval mode, no gradients), MFU numerator and peak memory."""
    dims = VIT_SIZES[size]
    model = build(contender, dims).to(device).eval()
    images, _ = images_for(dims, device)
    autocast = autocast_for(precision, device)

    @torch.inference_mode()
    def run() -> torch.Tensor:
        with autocast:
            return model(images)

    with PeakMemory(device) as mem:
        seconds = median_seconds(run, warmup, reps, device)
    flops = estimate_vision_flops(dims.config()).forward
    return {
        "images_per_s": round(dims.batch / seconds, 1),
        "run_ms": round(seconds * 1e3, 2),
        "flops_per_s": flops * dims.batch / seconds,
        "peak_mem_mib": mem.mib,
    }
