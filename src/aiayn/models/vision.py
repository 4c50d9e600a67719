"""A Vision Transformer (ViT, Dosovitskiy et al. 2021) and PoolFormer on the shared blocks.

    images (B, C, H, W) → patches · E (+ [CLS]) + grid positions → dropout
                        → N × Block (pre-LN; self-attention, or pooling as the token mixer)
                        → LayerNorm → hidden (B, T, D)
    hidden → [CLS] vector, or the mean of the patch vectors → dropout → Linear → classes

The same `Stack` and `Block` as the text families (`aiayn.nn`): an image is a sequence of
patch tokens (`PatchEmbedding`), its positions live on a 2-D grid (`grid_positions`). No mask:
every patch is real, so attention runs SDPA's unmasked kernels (flash on GPUs). ViT's choices
are config switches (`VisionConfig`), and PoolFormer is the same model with `mixer="pooling"`
(its blocks' token mixer is `PoolingMixer`, nothing else changes).
"""

from __future__ import annotations

from torch import Tensor, nn

from aiayn.config import VisionConfig
from aiayn.nn.dropout import Dropout
from aiayn.nn.grid_positions import build_grid_positional
from aiayn.nn.heads import CLS
from aiayn.nn.patch_embedding import PatchEmbedding
from aiayn.nn.pooling_mixer import PoolingMixer
from aiayn.nn.stack import Stack


class VisionTransformer(nn.Module):
    """ViT (or PoolFormer with `config.mixer == "pooling"`): images -> class logits."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        embed = PatchEmbedding(config.patch_size, config.channels, d, config.pooling == "cls")
        positional = build_grid_positional(config.positional, d, config.grid, embed.prefix)
        mixer = (lambda: PoolingMixer(config.pool_size)) if config.mixer == "pooling" else None
        self.encoder = Stack(config.layer, config.n_layers, embed, positional, name="encoder",
                             mixer=mixer)  # fmt: skip
        self.classifier_dropout = Dropout(config.layer.dropout)
        self.classifier = nn.Linear(d, config.num_labels)
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's ViT initialisation: truncated N(0, 0.02²) for every linear map (the patch
        projection's too) and the positions, zero biases, LayerNorms at identity, [CLS]
        N(0, 1e-6²)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.encoder.embed.cls is not None:
            # = N(0, 1e-6²) (the bounds ±2 are never reached); normal_ on the meta device
            # (model-info) would import torch's compiler, tens of seconds
            nn.init.trunc_normal_(self.encoder.embed.cls, std=1e-6)

    @property
    def prefix(self) -> int:
        """Tokens before the patches: 1 with [CLS], else 0."""
        return self.encoder.embed.prefix

    def encode(
        self, images: Tensor, need_weights: bool = False, keep_last: slice | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Final vectors of every token (or of the tokens `keep_last` selects) and (with
        `need_weights`, attention only) each layer's attention weights.

        Shape: images (B, C, H, W), H = W a multiple of the patch size (another size than the
        config's interpolates the positions) -> hidden (B, T, D) (with keep_last:
        (B, len(keep_last), D)), [(B, H, T, T)] per layer, with T = prefix + (H/p)².
        """
        hidden, weights, _ = self.encoder(images, need_weights=need_weights, keep_last=keep_last)
        return hidden, weights

    def pool(self, hidden: Tensor) -> Tensor:
        """One vector per image: [CLS]'s, or the mean of the patch tokens'.

        Shape: hidden (B, T, D) -> (B, D).
        """
        if self.config.pooling == "cls":
            return hidden[:, 0]
        return hidden[:, self.prefix :].mean(dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits of each image.

        Shape: images (B, C, H, W) -> logits (B, num_labels).
        """
        # a [CLS] head reads one token: only it need leave the last layer
        keep = CLS if self.config.pooling == "cls" else None
        hidden, _ = self.encode(images, keep_last=keep)  # (B, T, D), or (B, 1, D) with [CLS]
        return self.classifier(self.classifier_dropout(self.pool(hidden)))  # (B, K)

    def classify(self, images: Tensor) -> Tensor:
        """The same as calling the model (the name the classifier of texts answers to).

        Shape: images (B, C, H, W) -> logits (B, num_labels).
        """
        return self(images)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


__all__ = ["VisionTransformer"]
