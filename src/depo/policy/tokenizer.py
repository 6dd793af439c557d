"""Character-level tokenizer for the tiny policy.

Why characters: arithmetic and spelling answers are produced digit by digit / letter by
letter, so one token per character lets a 2-layer model learn the rules (carries, reversal)
instead of memorising multi-digit tokens; the compact prompts stay short (~10-20 tokens).
The vocabulary is fixed (printable ASCII plus four special tokens), so it does not depend on
which prompts were sampled and any held-out prompt encodes without unknown tokens.

Format: `prompt <sep> answer <eos>`. The post-processor appends `<sep>` to every encoded
prompt, so `tokenizer(prompt)` gives exactly what the policy conditions on.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, EOS, SEP, UNK = "<pad>", "<eos>", "<sep>", "<unk>"
SPECIALS = (PAD, EOS, SEP, UNK)
CHARS = [chr(c) for c in range(32, 127)]


def build_char_tokenizer():
    """A PreTrainedTokenizerFast with one token per printable ASCII character."""
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *CHARS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single=f"$A {SEP}", special_tokens=[(SEP, vocab[SEP])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS, sep_token=SEP,
                                   unk_token=UNK, padding_side="left", clean_up_tokenization_spaces=False)
