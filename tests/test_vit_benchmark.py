"""The ViT benchmark's contenders are the same model: equal parameter counts and, with timm's
weights loaded into ours, equal logits; each rate function returns its figures."""

import pytest
import torch

from aiayn.models.convert import from_timm_vit
from benchmarks.vit import VIT_SIZES, build, vit_infer_rate, vit_train_rate


def test_contenders_are_the_same_model():
    dims = VIT_SIZES["smoke"]
    try:
        peer = build("timm", dims).eval()
    except ImportError:
        pytest.skip("timm is not installed")
    ours = build("aiayn", dims)
    assert ours.num_parameters() == sum(p.numel() for p in peer.parameters())
    images = torch.randn(2, 3, dims.image_size, dims.image_size)
    with torch.no_grad():
        torch.testing.assert_close(from_timm_vit(peer)(images), peer(images), atol=1e-5, rtol=1e-4)


def test_rates_report_images_per_second():
    train = vit_train_rate("aiayn", "smoke", "fp32", "cpu", warmup=0, reps=1)
    infer = vit_infer_rate("aiayn", "smoke", "fp32", "cpu", warmup=0, reps=1)
    assert train["images_per_s"] > 0 and train["params"] > 0 and train["flops_per_s"] > 0
    assert infer["images_per_s"] > 0 and infer["flops_per_s"] > 0
