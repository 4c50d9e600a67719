"""The special tokens every aiayn vocabulary starts with, at fixed ids.

Fixing the ids (rather than looking them up per tokenizer) lets models, losses and batching code
agree without a tokenizer at hand: padding is id 0, so a zero-filled id buffer is all padding and
`nn.Embedding(..., padding_idx=0)` / `CrossEntropyLoss(ignore_index=0)` need no configuration.
"""

PAD = "<pad>"  # fills batches to a common length; never attended to, never scored
BOS = "<s>"  # begins the decoder input (the "shifted right" output of §3.1)
EOS = "</s>"  # ends every sequence; the decoder stops when it emits it
UNK = "<unk>"  # kept for compatibility; byte-level vocabularies never produce it

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)  # in id order: SPECIAL_TOKENS[i] has id i


class LMSpecialIds:
    """The special ids of every language-model tokenizer (character-level, byte-level BPE)."""

    pad_id: int = PAD_ID  # `<pad>`: left padding of prompts in a batch
    # The end-of-text token `</s>` frames every document of the training stream, so it is also
    # the start token of unconditional generation (GPT-2's convention; translation's decoder
    # starts from `<s>` = 1 instead).
    eot_id: int = EOS_ID
    bos_id: int = EOS_ID
    unk_id: int = UNK_ID  # what a character unseen in training becomes (BPE never needs it)
