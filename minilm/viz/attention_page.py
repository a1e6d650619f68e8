"""The attention explorer: one HTML file that shows what every head of a GPT, Llama or BERT attends to.

    python -m minilm.viz attention --ckpt DIR --text "..." [--text-b "..."] -o attention.html

`attention_page_data` encodes the text as the model reads it, runs `attention_maps` once and returns
everything the page shows as a plain dict (tokens, segments, the n_layer x n_head x T x T weights);
`render_page` writes that dict as JSON into the template `attention_page.html`, whose own JavaScript
draws the lines and heatmaps in the browser. The file needs no network: open it from disk.
docs/attention.md, "See it: the attention explorer", shows a page and says how to read it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from common.errors import CheckpointError, ConfigError

from ..model import GPT

TEMPLATE = Path(__file__).with_name("attention_page.html")
DATA_MARKER = "/*ATTENTION_DATA*/"  # the template's placeholder for the JSON
# In the template's <head>: it marks a page as this command's, which it may write again (common/output_guard.py)
GENERATOR_TAG = '<meta name="generator" content="python -m minilm.viz attention">'
DECIMALS = 4  # 1e-4 is far finer than a colour or an opacity can show, and keeps the file small


@dataclass
class EncodedText:
    input_ids: list[int]
    token_type_ids: list[int] | None  # BERT's segments, 0 for A and 1 for B; None for a GPT
    n_tokens_uncut: int  # how long the input was before it was cut to the model's block_size


# ---------------------------------------------------------------------------------------- the input

def encode_for_model(backbone, tokenizer, text: str, text_b: str | None) -> EncodedText:
    """The ids the model reads: a GPT the text's tokens, a BERT [CLS] A [SEP] (B [SEP]); cut to block_size."""
    if not text.strip():
        raise ConfigError("--text is empty; give the text whose attention the page should show")
    block_size = backbone.config.block_size
    if isinstance(backbone, GPT):
        return _encode_gpt(tokenizer, text, text_b, block_size)
    return _encode_bert(tokenizer, text, text_b, block_size)


def _encode_gpt(tokenizer, text: str, text_b: str | None, block_size: int) -> EncodedText:
    if text_b is not None:
        raise ConfigError("--text-b is for a BERT's sentence pair; a GPT reads one text, so put all of it in --text")
    ids = _encoded(lambda: tokenizer.encode(text))
    return EncodedText(ids[:block_size], None, len(ids))


def _encode_bert(tokenizer, text: str, text_b: str | None, block_size: int) -> EncodedText:
    # The input finetune.py gives a BERT (as minilm/finetune/encode.py's encode_text builds it): encode_plus,
    # which cuts the longer segment first when the pair does not fit.
    if text_b is not None and not text_b.strip():
        raise ConfigError("--text-b is empty; leave it out for a single text, or give the second sentence")
    if not hasattr(tokenizer, "encode_plus"):
        raise CheckpointError(f"a BERT needs a WordPiece tokenizer with [CLS] and [SEP]; this checkpoint's "
                              f"tokenizer is a {type(tokenizer).__name__}")
    uncut = _encoded(lambda: tokenizer.encode_plus(text, text_b))
    cut = tokenizer.encode_plus(text, text_b, max_length=block_size, truncation=True)
    return EncodedText(cut["input_ids"], cut["token_type_ids"], len(uncut["input_ids"]))


def _encoded(encode):
    try:
        return encode()
    except ValueError as err:  # e.g. a character a character-level vocabulary lacks
        raise ConfigError(f"the model's tokenizer cannot encode the text: {err}") from None


def token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """A readable string per id: WordPiece's vocabulary piece ("##ing"), else the text the id decodes to
    alone (BPE: " cat" with its space; a byte that is only part of a character shows as "\ufffd")."""
    vocab = getattr(tokenizer, "vocab", None)
    if isinstance(vocab, list):
        return [vocab[i] for i in ids]
    return [tokenizer.decode([i]) for i in ids]


def truncation_note(encoded: EncodedText, block_size: int) -> str | None:
    n_shown = len(encoded.input_ids)
    if encoded.n_tokens_uncut <= n_shown:
        return None
    how = "the longer segment cut first" if encoded.token_type_ids is not None else "the first ones kept"
    return (f"the input is {encoded.n_tokens_uncut} tokens, longer than the model's context of {block_size}: "
            f"the page shows {n_shown} of them ({how})")


# ------------------------------------------------------------------------------------- the numbers

@torch.no_grad()
def attention_of(backbone, encoded: EncodedText) -> list[torch.Tensor]:
    """attention_maps for one input: n_layer tensors (1, n_head, T, T)."""
    device = next(backbone.parameters()).device
    input_ids = torch.tensor([encoded.input_ids], device=device)
    if encoded.token_type_ids is None:
        return backbone.attention_maps(input_ids)
    token_type_ids = torch.tensor([encoded.token_type_ids], device=device)
    return backbone.attention_maps(input_ids, attention_mask=None, token_type_ids=token_type_ids)


def rounded_weights(maps: list[torch.Tensor]) -> list:
    """[layer][head][query][key] as nested lists of floats with DECIMALS decimals."""
    if not all(torch.isfinite(layer_map).all() for layer_map in maps):
        raise CheckpointError("the model's attention weights are not finite (NaN or inf): its weights are broken")
    # float64 before rounding, so 0.1234 is written as 0.1234 and not as the float32 0.12340000271797180
    return [layer_map[0].double().round(decimals=DECIMALS).tolist() for layer_map in maps]


def check_first_view(layer: int, head: int | None, n_layer: int, n_head: int) -> None:
    if not 0 <= layer < n_layer:
        raise ConfigError(f"--layer {layer}: this model has {n_layer} layers, numbered 0 to {n_layer - 1}")
    if head is not None and not 0 <= head < n_head:
        raise ConfigError(f"--head {head}: this model has {n_head} heads per layer, numbered 0 to {n_head - 1} "
                          "(or all)")


def attention_page_data(backbone, tokenizer, text: str, text_b: str | None = None, source: str = "",
                        layer: int = 0, head: int | None = 0) -> dict:
    """Everything the page shows, as JSON-ready values. layer, head: what it shows first (head None:
    all heads of the layer). source: where the model came from, for the page's title line."""
    config = backbone.config
    check_first_view(layer, head, config.n_layer, config.n_head)
    encoded = encode_for_model(backbone, tokenizer, text, text_b)
    special = set(getattr(tokenizer, "special_ids", {}).values())
    notes = [note for note in [truncation_note(encoded, config.block_size), _prefix_note(backbone),
                               _shared_heads_note(config)] if note]
    return {
        "model": {"kind": "gpt" if isinstance(backbone, GPT) else "bert", "class": type(backbone).__name__,
                  "source": source, "n_layer": config.n_layer, "n_head": config.n_head,
                  "block_size": config.block_size},
        "causal": isinstance(backbone, GPT),
        "tokens": token_pieces(tokenizer, encoded.input_ids),
        "token_ids": encoded.input_ids,
        "segments": encoded.token_type_ids,
        "special": [token_id in special for token_id in encoded.input_ids],
        "truncated": encoded.n_tokens_uncut > len(encoded.input_ids),
        "notes": notes,
        "first_view": {"layer": layer, "head": head},
        "attention": rounded_weights(attention_of(backbone, encoded)),
    }


def _prefix_note(backbone) -> str | None:
    # A prefix-tuned model gets its prefix keys in forward's pre-hook, which attention_maps does not run.
    if not hasattr(backbone, "prefix_encoder"):
        return None
    return "this model is prefix-tuned; the maps leave its prefix out (attention among the text's tokens only)"


def _shared_heads_note(config) -> str | None:
    # Grouped-query attention (a Llama with n_kv_head < n_head): heads of one group attend with the same keys.
    n_kv_head = getattr(config, "n_kv_head", None)
    if n_kv_head is None or n_kv_head == config.n_head:
        return None
    group = config.n_head // n_kv_head
    return (f"grouped-query attention: the {config.n_head} query heads share {n_kv_head} key/value heads, so heads "
            f"0-{group - 1} look with the same keys (head h reads key/value head h // {group}), each with its own "
            "queries")


# ------------------------------------------------------------------------------------------ the page

def render_page(data: dict) -> str:
    """The template with data in its <script type="application/json"> element: one self-contained file."""
    template = TEMPLATE.read_text(encoding="utf-8")
    if template.count(DATA_MARKER) != 1 or GENERATOR_TAG not in template:
        raise RuntimeError(f"{TEMPLATE} must hold {DATA_MARKER} exactly once, and {GENERATOR_TAG}")
    return template.replace(DATA_MARKER, data_as_script_json(data))


def data_as_script_json(data: dict) -> str:
    """JSON that is safe inside <script>: a token such as "</script>" must not end the element early, so
    every "<" is written as its JSON escape \\u003c (only strings can hold one)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")
