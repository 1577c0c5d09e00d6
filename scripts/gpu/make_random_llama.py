"""A randomly initialised Llama-2-7B-shaped fp16 model and a word-level tokenizer, built offline (no Hub).

Shapes are Llama-2-7B's (32 layers, hidden 4096, 32 heads, MLP 11008, vocab 32000, 4096 positions), so
the server does the same work per token as for the real model; the text it produces is meaningless.
Tokens read ``w123``; words outside the vocabulary are ``<unk>``, one token each.

    python scripts/gpu/make_random_llama.py OUT_DIR
"""

from __future__ import annotations

import sys
import time

import torch  # type: ignore[import-not-found]  # on the GPU machine only
from tokenizers import Tokenizer, models, pre_tokenizers  # type: ignore[import-not-found]
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # type: ignore[import-not-found]

VOCAB = 32000


def main(out: str) -> None:
    started = time.perf_counter()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, VOCAB)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"saved {params / 1e9:.2f} B parameters to {out} in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
