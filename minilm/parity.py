"""Compare minilm with Hugging Face transformers on one model folder.

    python -m minilm.parity PATH [--tokens 50] [--tol 1e-5] [--layers]
    python -m minilm.parity smollm2 --tol 1e-4      # a model alias (smollm2, minilm-l6), fetched on first use

Loads PATH (a GPT-2, Llama, BERT, DistilBERT, RoBERTa, ALBERT or ELECTRA folder, or a Llama .gguf file, which
both libraries dequantize to float32) into both libraries, as the class its config.json (or the file) names,
feeds both the same inputs, and prints the largest absolute difference of every output (logits; hidden states,
pooled output, MLM / NSP / SOP / RTD logits) next to the largest reference value, plus, for the decoders
(GPT-2, Llama), whether greedy decoding picks the same tokens as transformers' generate with and without
minilm's KV cache (Llama: on a left-padded batch too). An output agrees when
max|Δ| <= tol * max(1, max|ref|): absolute for outputs of order 1, relative for large logits (real GPT-2's
reach ~100, where float32 rounding alone exceeds 1e-5). Exit status 0 when all agree.

When an output disagrees, the first such is computed again with forward hooks on the matching layers of both
models (embedding, each block, final norm, logits; the encoders: embedding and each block), and the report
names the first layer whose output differs: max and mean |Δ| of each (parity_layers.py). --layers prints it always.

A user tool, not part of the library: it needs transformers (requirements-dev.txt), which minilm
itself never imports; so it is a command beside the library rooms, not inside minilm/hf/, whose name table
and loader it uses.
"""

import argparse
import copy
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from common.errors import CheckpointError, MissingFileError, UserError, run_command
from data.assets import model_path
from minilm.gguf import is_gguf, load_gguf
from minilm.hf.families import FAMILIES, folder_architecture
from minilm.hf.load import from_pretrained, read_config
from minilm.model import GPT, Bert, BertForPreTraining, ElectraDiscriminator, Llama
from minilm.parity_layers import first_divergence, layer_diffs


def _import_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("python -m minilm.parity compares against Hugging Face transformers, which is not "
                        "installed: pip install -r requirements-dev.txt (or pip install transformers)")
    transformers.logging.disable_progress_bar()  # keep the report readable
    return transformers


@dataclass
class Forward:
    """One output compared: how each library computes it from the same inputs, on which positions (None: all)."""
    name: str
    ours: Callable[[], torch.Tensor]
    theirs: Callable[[], torch.Tensor]
    real: torch.Tensor | None = None  # (B, T) bool: the positions that count (not padding)

    @torch.no_grad()
    def diff(self) -> tuple[float, float]:
        """max|Δ| and max|reference|: float32 rounding grows with the size of the numbers."""
        ours, reference = self.ours(), self.theirs()
        if self.real is not None:
            ours, reference = ours[self.real], reference[self.real]
        return (ours - reference).abs().max().item(), reference.abs().max().item()


@dataclass
class Comparison:
    ours: torch.nn.Module
    theirs: torch.nn.Module
    forwards: list[Forward]
    matches: dict[str, bool]  # greedy decoding: identical or not


def _random_batch(vocab_size: int, length: int, left: bool = False):
    """Two rows of random ids; the second is padded (mask 0) for half its length, on the right (encoders,
    GPT-2) or on the left (Llama, as batched generation pads)."""
    ids = torch.randint(0, vocab_size, (2, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    if left:
        mask[1, : length // 2] = 0
    else:
        mask[1, length // 2:] = 0
    return ids, mask


def _greedy_matches(ours, theirs, ids, n_tokens: int, attention_mask=None, label: str = "") -> dict[str, bool]:
    """Whether minilm's greedy tokens equal transformers' generate, with and without minilm's KV cache."""
    greedy = copy.deepcopy(theirs.generation_config)
    greedy.update(do_sample=False, max_new_tokens=n_tokens, eos_token_id=None, pad_token_id=0)
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask
    expected = theirs.generate(ids, attention_mask=mask, generation_config=greedy)
    return {f"{n_tokens} greedy tokens{label}, {'KV cache' if use_cache else 'no cache'}": torch.equal(
        ours.generate(ids, n_tokens, temperature=0, use_cache=use_cache, attention_mask=attention_mask), expected)
        for use_cache in (True, False)}


@torch.no_grad()
def compare_decoder(path, family: str, n_tokens: int) -> Comparison:
    """GPT-2 or Llama: logits on a batch and on a padded batch, then greedy decoding against generate.
    GPT-2's batch is right-padded; Llama's left-padded with position ids counted from each row's first
    real token (as generate does), the same position ids given to both."""
    transformers = _import_transformers()
    minilm_class, hf_class = (Llama, "LlamaForCausalLM") if family == "llama" else (GPT, "GPT2LMHeadModel")
    if is_gguf(path):  # transformers reads the file itself (with the gguf package), into float32
        ours = load_gguf(path)
        theirs = transformers.LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    else:
        ours = from_pretrained(path, minilm_class)
        theirs = getattr(transformers, hf_class).from_pretrained(path, attn_implementation="eager").eval()
    left = family == "llama"
    ids, mask = _random_batch(ours.config.vocab_size, min(32, ours.config.block_size), left=left)
    padded = dict(attention_mask=mask, position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0)) if left else \
        dict(attention_mask=mask)
    side = "left" if left else "right"
    forwards = [
        Forward("logits", lambda: ours(ids)[0], lambda: theirs(ids).logits),
        Forward(f"logits, {side}-padded batch (real tokens)", lambda: ours(ids, **padded)[0],
                lambda: theirs(ids, **padded).logits, mask.bool()),
    ]
    prompt_length = max(1, min(8, ours.config.block_size - n_tokens))
    n_tokens = min(n_tokens, ours.config.block_size - prompt_length)  # past block_size minilm crops; HF does not
    matches = _greedy_matches(ours, theirs, ids[:, :prompt_length], n_tokens)
    if left:  # the same prompts, the second left-padded by 3: each row decodes as it would alone
        prompt_mask = torch.ones_like(ids[:, :prompt_length])
        prompt_mask[1, : min(3, prompt_length - 1)] = 0
        matches.update(_greedy_matches(ours, theirs, ids[:, :prompt_length], n_tokens, prompt_mask,
                                       label=", left-padded batch"))
    return Comparison(ours, theirs, forwards, matches)


def _encoder_batch(config):
    """The random batch with padding where the mask is 0 (RoBERTa numbers its positions from the ids), and
    a sentence pair as token types (segment B from a quarter of the way in) where the model has two types."""
    ids, mask = _random_batch(config.vocab_size, min(32, config.max_length))
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    types = torch.zeros_like(ids) if config.type_vocab_size else None  # DistilBERT has no token types
    if config.type_vocab_size > 1:
        types[:, ids.size(1) // 4:] = 1
    return ids, types, mask


@torch.no_grad()
def compare_encoder(path, hf_config: dict) -> Comparison:
    """BERT and its successors: the hidden states and pooled output of the encoder, then each head's logits,
    on the class config.json names (transformers' class of that name against minilm's, families.py)."""
    transformers = _import_transformers()
    arch = folder_architecture(hf_config)
    ours = from_pretrained(path, arch.minilm_class)
    theirs = getattr(transformers, arch.name).from_pretrained(path, attn_implementation="eager").eval()
    ids, types, mask = _encoder_batch(ours.config)
    inputs = dict(input_ids=ids, attention_mask=mask, **({} if types is None else dict(token_type_ids=types)))
    real = mask.bool()
    encoder = ours if isinstance(ours, Bert) else ours.bert
    forwards = [Forward("last hidden state (real tokens)", lambda: encoder(ids, types, mask)[0],
                        lambda: theirs.base_model(**inputs).last_hidden_state, real)]
    if encoder.pooler is not None and getattr(theirs.base_model, "pooler", None) is not None:
        forwards.append(Forward("pooled output", lambda: encoder(ids, types, mask)[1],
                                lambda: theirs.base_model(**inputs).pooler_output))
    if not isinstance(ours, Bert):
        forwards += _head_forwards(ours, theirs, (ids, types, mask), inputs, real, arch.family)
    return Comparison(ours, theirs, forwards, {})


def _head_forwards(ours, theirs, ours_inputs, inputs, real, family: str) -> list[Forward]:
    """Each head's logits: replaced-token detection, or masked LM and the sentence-pair head."""
    if isinstance(ours, ElectraDiscriminator):
        return [Forward("RTD logits (real tokens)", lambda: ours(*ours_inputs), lambda: theirs(**inputs).logits,
                        real)]
    with_pair_head = isinstance(ours, BertForPreTraining)
    mlm = "prediction_logits" if with_pair_head else "logits"
    heads = [Forward("MLM logits (real tokens)", lambda: ours(*ours_inputs).mlm_logits,
                     lambda: getattr(theirs(**inputs), mlm), real)]
    if with_pair_head:
        name, field = ("SOP logits", "sop_logits") if family == "albert" else ("NSP logits", "seq_relationship_logits")
        heads.append(Forward(name, lambda: ours(*ours_inputs).nsp_logits, lambda: getattr(theirs(**inputs), field)))
    return heads


def print_layer_report(comparison: Comparison, forward: Forward, tol: float, forward_failed: bool) -> None:
    """The output of every matching layer of both models on forward's inputs; the first that differs named."""
    rows = layer_diffs(comparison.ours, comparison.theirs, forward.ours, forward.theirs, forward.real)
    first = first_divergence(rows, tol)
    print(f"layer by layer, on the inputs of '{forward.name}' (forward hooks on both models):")
    for row in rows:
        mark = "  <- first to differ" if row is first else ""
        print(f"  {row.layer:14s} max|Δ| {row.max_diff:.3e}  mean|Δ| {row.mean_diff:.3e}   "
              f"(max|ref| {row.scale:.3g}){mark}")
    if first is not None:
        print(f"first layer that diverges: {first.layer}")
    elif forward_failed and rows:
        print(f"no hooked layer diverges: the difference arises after {rows[-1].layer}, outside the layers "
              "compared (in the model's forward itself, or a head)")


def compare_folder(path: Path, given: str, n_tokens: int) -> tuple[str, Comparison]:
    """The folder's model_type and the comparison its family gets."""
    if not path.is_dir():
        raise MissingFileError(f"{given} is not a folder; pass a Hugging Face model folder (GPT-2, Llama, BERT, "
                               "DistilBERT, RoBERTa, ALBERT or ELECTRA), a Llama .gguf file or a model alias "
                               "(smollm2, minilm-l6)")
    config = read_config(path)
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise CheckpointError(f"{given}: model_type {model_type!r}; python -m minilm.parity compares "
                              f"{', '.join(FAMILIES)} folders")
    if model_type in ("gpt2", "llama"):
        return model_type, compare_decoder(path, model_type, n_tokens)
    return model_type, compare_encoder(path, config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minilm.parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a Hugging Face GPT-2, Llama, BERT, DistilBERT, RoBERTa, ALBERT or ELECTRA "
                                     "folder (config.json + model.safetensors or .bin), a Llama .gguf file, or a "
                                     "model alias (smollm2, minilm-l6)")
    parser.add_argument("--tokens", type=int, default=50, help="greedy tokens to compare (GPT-2, Llama)")
    parser.add_argument("--tol", type=float, default=1e-5, help="largest acceptable max|Δ|")
    parser.add_argument("--layers", action="store_true", help="print the layer-by-layer report even when all agree")
    args = parser.parse_args(argv)

    path = model_path(args.path)  # an alias fetched into the asset cache on first use
    warnings.filterwarnings("ignore", message=".*freshly initialised.*")
    if path.is_file() and is_gguf(path):
        model_type, comparison = "llama, GGUF", compare_decoder(path, "llama", args.tokens)
    else:
        model_type, comparison = compare_folder(path, args.path, args.tokens)

    print(f"{args.path} ({model_type}), minilm vs transformers, float32 on CPU")
    diffs = {forward.name: forward.diff() for forward in comparison.forwards}
    agrees = {name: diff <= args.tol * max(1.0, scale) for name, (diff, scale) in diffs.items()}
    for name, (diff, scale) in diffs.items():
        verdict = "ok" if agrees[name] else "TOO LARGE"
        print(f"  max|Δ| {name:40s} {diff:.3e}   (max|ref| {scale:.3g})  {verdict}")
    for name, same in comparison.matches.items():
        print(f"  {name:47s} {'identical' if same else 'DIFFER'}")
    failing = [forward for forward in comparison.forwards if not agrees[forward.name]]
    if failing or args.layers:
        print_layer_report(comparison, (failing or comparison.forwards)[0], args.tol, forward_failed=bool(failing))
    passed = all(agrees.values()) and all(comparison.matches.values())
    print(f"{'PASS' if passed else 'FAIL'} (max|Δ| <= {args.tol:g} * max(1, max|ref|))")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
