"""The Vision Transformer and the pooling mixer: patches ≡ a strided convolution, token counts,
grid positions and their interpolation, PoolFormer's pooling at the borders, gradients, the
config and the model directory."""

import math

import pytest
import torch
import torch.nn.functional as F

from aiayn.config import LayerConfig, VisionConfig, load_config
from aiayn.errors import ConfigError
from aiayn.models import presets
from aiayn.models.serialization import load_pretrained, save_pretrained
from aiayn.models.vision import VisionTransformer
from aiayn.nn.block import Block
from aiayn.nn.grid_positions import (
    LearnedGridPositions,
    SinusoidalGridPositions,
    resample_grid,
    sinusoid_grid_table,
)
from aiayn.nn.patch_embedding import PatchEmbedding
from aiayn.nn.pooling_mixer import PoolingMixer


def small(**overrides) -> VisionConfig:
    fields = dict(image_size=8, patch_size=2, channels=1, n_layers=2, d_model=16, n_heads=2,
                  d_ff=32, num_labels=5)  # fmt: skip
    return presets.vit_tiny(**{**fields, **overrides})


def test_patch_embedding_is_a_strided_convolution():
    torch.manual_seed(0)
    embed = PatchEmbedding(patch_size=4, channels=3, d_model=8, cls_token=False)
    conv = torch.nn.Conv2d(3, 8, kernel_size=4, stride=4)
    with torch.no_grad():
        conv.weight.copy_(embed.proj.weight.view(8, 3, 4, 4))
        conv.bias.copy_(embed.proj.bias)
    images = torch.randn(2, 3, 12, 8)
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, h·w, D), row-major like timm
    torch.testing.assert_close(embed(images), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("pooling", "prefix"), [("cls", 1), ("mean", 0)])
@pytest.mark.parametrize(("size", "patch"), [(8, 2), (12, 4), (16, 4)])
def test_tokens_are_the_patch_grid_plus_cls(size, patch, pooling, prefix):
    model = VisionTransformer(small(image_size=size, patch_size=patch, pooling=pooling)).eval()
    hidden, _ = model.encode(torch.randn(3, 1, size, size))
    assert hidden.shape == (3, (size // patch) * (size // patch) + prefix, 16)
    assert model.config.num_tokens == hidden.shape[1]
    assert model(torch.randn(3, 1, size, size)).shape == (3, 5)


def test_learned_positions_are_exact_at_the_trained_size_and_resampled_elsewhere():
    torch.manual_seed(0)
    pos = LearnedGridPositions(d_model=6, side=4, prefix=1)
    assert torch.equal(pos.table(4), pos.weight[0])  # not merely close: the same numbers
    bigger = pos.table(6)
    assert bigger.shape == (1 + 36, 6)
    assert torch.equal(bigger[0], pos.weight[0, 0])  # [CLS]'s position is not a grid cell
    # a table linear in the row index stays linear (bicubic reproduces linear ramps inside)
    ramp = torch.arange(4.0).repeat_interleave(4)[:, None].expand(16, 2).contiguous()
    resampled = resample_grid(ramp, 8).reshape(8, 8, 2)[:, :, 0]
    assert torch.allclose(resampled[:, 3], resampled[:, 4])  # constant along a row
    assert (resampled[1:, 3] > resampled[:-1, 3]).all()  # increasing down the columns


def test_sinusoidal_positions_are_exact_at_the_trained_size_and_sampled_on_its_scale():
    pos = SinusoidalGridPositions(d_model=8, side=4, prefix=1)
    table = pos.table(4)
    assert torch.equal(table[1:], sinusoid_grid_table(4, 8)) and not table[0].any()
    # cell (r, c) of the 8×8 grid sits at coordinates (r/2, c/2) of the 4×4 one
    finer = pos.table(8)[1:].reshape(8, 8, 8)
    coarse = sinusoid_grid_table(4, 8).reshape(4, 4, 8)
    torch.testing.assert_close(finer[2, 6], coarse[1, 3])
    # the row half depends on the row only, the column half on the column only
    grid = sinusoid_grid_table(3, 8).reshape(3, 3, 8)
    assert torch.equal(grid[1, 0, :4], grid[1, 2, :4]) and torch.equal(
        grid[0, 1, 4:], grid[2, 1, 4:]
    )
    pe0 = math.sin(1.0), math.cos(1.0)  # row 1, feature pair 0: sin(1 / 10000^0)
    assert grid[1, 0, 0].item() == pytest.approx(pe0[0]) and grid[1, 0, 1].item() == pytest.approx(
        pe0[1]
    )


def test_a_larger_image_runs_through_interpolated_positions():
    for positional in ("learned", "sinusoidal"):
        model = VisionTransformer(small(positional=positional)).eval()
        assert model(torch.randn(2, 1, 12, 12)).shape == (2, 5)


def hand_pooled(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """AvgPool over the cells inside the grid, minus the cell: loops, no F.avg_pool2d."""
    g = x.shape[0]
    out = torch.zeros_like(x)
    for r in range(g):
        for c in range(g):
            near = [(i, j) for i in range(r - k // 2, r + k // 2 + 1)
                    for j in range(c - k // 2, c + k // 2 + 1)]  # fmt: skip
            cells = [x[i, j] for i, j in near if 0 <= i < g and 0 <= j < g]
            out[r, c] = sum(cells) / len(cells) - x[r, c]
    return out


def test_pooling_mixer_is_average_minus_identity_counting_only_real_cells():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3)  # (B, 4×4 grid, D)
    out, weights = PoolingMixer(3)(x)
    assert weights is None
    grid = x.reshape(2, 4, 4, 3)
    expected = torch.stack([hand_pooled(grid[b]) for b in range(2)]).reshape(2, 16, 3)
    torch.testing.assert_close(out, expected)
    # the corner averages its 4 real cells (not 9 with zero padding)
    corner = grid[0, :2, :2].mean(dim=(0, 1)) - grid[0, 0, 0]
    torch.testing.assert_close(out[0, 0], corner)
    assert PoolingMixer(3)(torch.ones(1, 9, 2))[0].abs().max() == 0  # constant in, zero out


def test_the_same_block_takes_the_pooling_mixer():
    layer = LayerConfig(d_model=8, n_heads=2, d_ff=16, norm_first=True)
    block = Block(layer, mixer=PoolingMixer(3))
    assert isinstance(block.self_attn, PoolingMixer)
    assert not any("w_q" in name for name in block.state_dict())
    assert block(torch.randn(2, 9, 8))[0].shape == (2, 9, 8)
    model = VisionTransformer(small(mixer="pooling", pooling="mean"))
    assert all(isinstance(b.self_attn, PoolingMixer) for b in model.encoder.layers)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"pooling": "mean"}, {"positional": "sinusoidal"},
     {"mixer": "pooling", "pooling": "mean"}],
)  # fmt: skip
def test_every_parameter_receives_a_gradient(overrides):
    torch.manual_seed(0)
    model = VisionTransformer(small(**overrides))
    F.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_config_checks_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="patch_size"):
        small(patch_size=3)
    with pytest.raises(ConfigError, match="pooling 'mean'"):
        small(mixer="pooling", pooling="cls")
    with pytest.raises(ConfigError, match="pool_size"):
        small(pool_size=2)
    cfg = small(positional="sinusoidal", mixer="pooling", pooling="mean")
    cfg.save(tmp_path / "config.json")
    loaded = load_config(tmp_path / "config.json")
    assert isinstance(loaded, VisionConfig) and loaded == cfg


def test_model_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    model = VisionTransformer(small()).eval()
    save_pretrained(model, tmp_path / "vit")
    loaded = load_pretrained(tmp_path / "vit")
    images = torch.randn(2, 1, 8, 8)
    assert isinstance(loaded, VisionTransformer)
    torch.testing.assert_close(loaded(images), model(images), atol=0, rtol=0)


def test_presets_match_timm_parameter_counts():
    with torch.device("meta"):
        counts = {name: VisionTransformer(make()).num_parameters()
                  for name, make in presets.VIT_PRESETS.items()}  # fmt: skip
    # timm vit_{tiny,small,base}_patch16_224
    assert counts == {"vit-tiny": 5_717_416, "vit-small": 22_050_664, "vit-base": 86_567_656}
