"""End to end: a tiny Transformer learns to reverse digit sequences, exactly, in seconds."""

import torch

from aiayn.config import ModelConfig
from aiayn.decode import greedy_decode
from aiayn.models import EncoderDecoder

PAD, BOS, EOS, FIRST_DIGIT, VOCAB = 0, 1, 2, 3, 13  # ten "digits" 3..12


def reverse_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random digit strings of length 3..8 (right-padded) and their reversals + </s>."""
    src = torch.full((n, 8), PAD)
    tgt = torch.full((n, 9), PAD)
    lengths = torch.randint(3, 9, (n,), generator=generator)
    for i, L in enumerate(lengths.tolist()):
        digits = torch.randint(FIRST_DIGIT, VOCAB, (L,), generator=generator)
        src[i, :L] = digits
        tgt[i, :L] = digits.flip(0)
        tgt[i, L] = EOS
    return src, tgt


def test_tiny_transformer_learns_to_reverse_sequences():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    cfg = ModelConfig.create(
        src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=64, n_heads=4, d_ff=128,
        n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, max_len=32,
    )  # fmt: skip
    model = EncoderDecoder(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.98), eps=1e-9)
    steps, warmup = 600, 50  # linear warm-up, then linear decay to 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, (steps - s) / (steps - warmup))
    )
    for _ in range(steps):
        src, tgt = reverse_batch(64, g)
        tgt_in = torch.cat([torch.full((64, 1), BOS), tgt[:, :-1]], dim=1)  # teacher forcing
        logits = model(src, tgt_in)  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    model.eval()
    src, tgt = reverse_batch(200, torch.Generator().manual_seed(123))  # unseen sequences
    out = greedy_decode(model, src, BOS, EOS, max_len=tgt.shape[1])
    out = torch.nn.functional.pad(out, (0, tgt.shape[1] - out.shape[1]), value=PAD)
    exact = (out == tgt).all(dim=1).float().mean().item()
    assert exact == 1.0, f"exact-match accuracy {exact:.3f} (final loss {loss.item():.4f})"
