"""The decoding loop: one new token per step, each chosen from the logits at the last position.

    prefill   the prompt goes through the model once; every layer's keys and values go into the KV cache
    step      only the newest token goes through; it attends to the cached keys and values
    choose    sampling.py picks the next token (greedy, temperature, top-k, top-p)
    stop      after max_new_tokens, or when every row has produced an end token (eos_token_ids)

Prompts of different lengths share a batch by left padding: attention_mask marks the padding (0), and
each row's positions count from its first real token, so a padded prompt decodes as it would alone.
"""

import torch

from .attention import KVCache
from .sampling import sample_next_token


@torch.no_grad()
def generate_tokens(model, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, use_cache: bool = True, generator: torch.Generator | None = None,
                    attention_mask=None, eos_token_ids=(), kv_cache: KVCache | None = None):
    """Yield each new token (B, 1) as soon as it is chosen (a server streams them).

    model: a GPT or a Llama. input_ids (B, T); attention_mask (B, T), 0 for left padding. A row that
    produces one of eos_token_ids has finished: it yields that id again at every later step, and the
    loop ends once every row has finished. When the sequence outgrows the context window the context
    is cropped to the last block_size tokens and the cache refilled from it. kv_cache: a cache that
    already holds the first kv_cache.next_position tokens of input_ids (a chat's earlier turns): the
    prefill reads only the rest. It is updated in place; the last token yielded is never in it.
    """
    block_size = model.config.block_size
    finished = torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)  # (B,)
    cache, start = kv_cache, 0  # start: where the context the model reads begins
    for _ in range(max_new_tokens):
        if not use_cache or cache is None or input_ids.size(1) - start > block_size:
            start = max(0, input_ids.size(1) - block_size)
            cache = KVCache(model.config.n_layer) if use_cache else None
        seen = start + (cache.next_position if cache is not None else 0)
        new_ids = input_ids[:, seen:]  # the prefill: all the cache lacks; a step: only the newest token
        mask, position_ids = _padding_inputs(attention_mask, start, new_ids.size(1))
        logits, _ = model(new_ids, attention_mask=mask, position_ids=position_ids, kv_cache=cache, last_only=True)
        next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
        if eos_token_ids:
            next_id = next_id.masked_fill(finished[:, None], eos_token_ids[0])  # a finished row repeats its end
            finished |= torch.isin(next_id[:, 0], torch.tensor(eos_token_ids, device=next_id.device))
        input_ids = torch.cat([input_ids, next_id], dim=1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, torch.ones_like(next_id)], dim=1)
        yield next_id
        if finished.all():
            return


def _padding_inputs(attention_mask, start: int, n_new: int):
    """The padding mask over the context the model attends to, and the positions of the n_new tokens fed in,
    counted from each row's first real token. (None, None) without padding: the model's default positions."""
    if attention_mask is None:
        return None, None
    window = attention_mask[:, start:]  # (B, T_context): cached tokens and the new ones
    positions = (window.cumsum(dim=-1) - 1).clamp(min=0)  # 0 at each row's first real token
    return window, positions[:, -n_new:]
