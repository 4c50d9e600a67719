"""timm's VisionTransformer and ours compute the same logits once given the same weights
(`from_timm_vit`), on a small random timm config; variants we do not compute are refused."""

import pytest
import torch

from aiayn.errors import ConfigError
from aiayn.models.convert import from_timm_vit
from benchmarks.timm_import import import_timm


def timm_vit(**kwargs):
    try:
        vit = import_timm().models.vision_transformer.VisionTransformer
    except ImportError:
        pytest.skip("timm is not installed (pip install -e '.[dev]')")
    fields = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=4,
                  mlp_ratio=2.0, num_classes=7)  # fmt: skip
    torch.manual_seed(0)
    return vit(**{**fields, **kwargs}).eval()


def test_logits_equal_timm_with_its_weights_loaded():
    peer = timm_vit()
    with torch.no_grad():  # timm starts positions and [CLS] tiny; make them matter
        peer.pos_embed.normal_(std=0.5)
        peer.cls_token.normal_(std=0.5)
    ours = from_timm_vit(peer)
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), peer(images), atol=1e-5, rtol=1e-4)
    assert ours.num_parameters() == sum(p.numel() for p in peer.parameters())
    assert ours.config.num_tokens == 17 and ours.config.layer.layer_norm_eps == 1e-6


def test_a_variant_we_do_not_compute_is_refused():
    with pytest.raises(ConfigError, match="global_pool"):
        from_timm_vit(timm_vit(global_pool="avg"))
    with pytest.raises(ConfigError, match="layer scale"):
        from_timm_vit(timm_vit(init_values=1e-5))
