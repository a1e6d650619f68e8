"""What GPT and Bert share around their stack of blocks: the length check, the attention maps, and
a parameter count. Each model supplies `embed(input_ids, ..., kv_cache=None)` -> (B, T, C) and
`blocks`, its list of Blocks."""

import torch
import torch.nn as nn


class TransformerModel(nn.Module):
    def check_length(self, n_tokens: int) -> None:
        """A sequence may be at most max_length (block_size) long: there is one position embedding per position."""
        limit, block_size = self.config.max_length, self.config.block_size
        if n_tokens > limit:
            room = f"block_size {block_size}" if limit == block_size else \
                f"the {limit} positions of block_size {block_size} after the padding id"
            raise ValueError(f"sequence of {n_tokens} tokens is longer than {room}; "
                             "truncate it (GPT.generate crops its context for you)")

    @torch.no_grad()
    def attention_maps(self, input_ids, attention_mask=None, **embed_inputs) -> list[torch.Tensor]:
        """The attention probabilities of every layer, for looking at: n_layer x (B, n_head, T, T).

        embed_inputs go to embed (BERT's token_type_ids, GPT's position_ids); attention_mask is the
        padding mask (B, T). Each block's probabilities are those its forward computes on the same x.
        """
        x = self.embed(input_ids, **embed_inputs)  # (B, T, C)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_probs(x, attention_mask))
            x = block(x, attention_mask)
        return maps

    def layer_caches(self, kv_cache) -> list:
        """Each block's part of kv_cache (a KVCache), or None for every block when there is no cache."""
        return kv_cache.layers if kv_cache is not None else [None] * len(self.blocks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied matrix is counted once
