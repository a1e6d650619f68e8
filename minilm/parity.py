"""Compare minilm with Hugging Face transformers on one model folder.

    python -m minilm.parity PATH [--tokens 50] [--tol 1e-5]

Loads PATH (a GPT-2, BERT, DistilBERT, RoBERTa, ALBERT or ELECTRA folder) into both libraries, as the class its
config.json names, feeds both the same inputs, and prints the largest absolute difference of every output (hidden
states, pooled output, MLM / NSP / SOP / RTD logits) next to the largest reference value, plus, for GPT-2,
whether greedy decoding picks the same tokens with and without minilm's KV cache. An output agrees
when max|Δ| <= tol * max(1, max|ref|): absolute for outputs of order 1, relative for large logits
(real GPT-2's reach ~100, where float32 rounding alone exceeds 1e-5). Exit status 0 when all agree.

A user tool, not part of the library: it needs transformers (requirements-dev.txt), which minilm
itself never imports; so it is a command beside the library rooms, not inside minilm/hf/, whose name table
and loader it uses.
"""

import argparse
import copy
import sys
import warnings
from pathlib import Path

import torch

from common.errors import CheckpointError, MissingFileError, UserError, run_command

from minilm.hf.families import FAMILIES, folder_architecture
from minilm.hf.load import from_pretrained, read_config
from minilm.model import GPT, Bert, BertForPreTraining, ElectraDiscriminator


def _import_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("python -m minilm.parity compares against Hugging Face transformers, which is not "
                        "installed: pip install -r requirements-dev.txt (or pip install transformers)")
    transformers.logging.disable_progress_bar()  # keep the report readable
    return transformers


def _max_diff(ours, reference) -> tuple[float, float]:
    """max|Δ| and max|reference|: float32 rounding grows with the size of the numbers."""
    return (ours - reference).abs().max().item(), reference.abs().max().item()


def _random_batch(vocab_size: int, length: int):
    """Two rows of random ids; the second is right-padded after half its length (mask 0)."""
    ids = torch.randint(0, vocab_size, (2, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0
    return ids, mask


@torch.no_grad()
def compare_gpt2(path, n_tokens: int) -> tuple[dict[str, tuple[float, float]], dict[str, bool]]:
    transformers = _import_transformers()
    ours = from_pretrained(path, GPT)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager").eval()
    ids, mask = _random_batch(ours.config.vocab_size, min(32, ours.config.block_size))
    real = mask.bool()
    diffs = {
        "logits": _max_diff(ours(ids)[0], theirs(ids).logits),
        "logits, padded batch (real tokens)": _max_diff(ours(ids, attention_mask=mask)[0][real],
                                                        theirs(ids, attention_mask=mask).logits[real]),
    }
    prompt = ids[:, : max(1, min(8, ours.config.block_size - n_tokens))]
    greedy = copy.deepcopy(theirs.generation_config)
    greedy.update(do_sample=False, max_new_tokens=n_tokens, eos_token_id=None, pad_token_id=0)
    expected = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=greedy)
    matches = {
        f"{n_tokens} greedy tokens, KV cache": torch.equal(ours.generate(prompt, n_tokens, temperature=0), expected),
        f"{n_tokens} greedy tokens, no cache": torch.equal(
            ours.generate(prompt, n_tokens, temperature=0, use_cache=False), expected),
    }
    return diffs, matches


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
def compare_encoder(path, hf_config: dict) -> tuple[dict[str, tuple[float, float]], dict[str, bool]]:
    """BERT and its successors: the hidden states and pooled output of the encoder, then each head's logits,
    on the class config.json names (transformers' class of that name against minilm's, families.py)."""
    transformers = _import_transformers()
    arch = folder_architecture(hf_config)
    ours = from_pretrained(path, arch.minilm_class)
    theirs = getattr(transformers, arch.name).from_pretrained(path, attn_implementation="eager").eval()
    ids, types, mask = _encoder_batch(ours.config)
    inputs = dict(input_ids=ids, attention_mask=mask, **({} if types is None else dict(token_type_ids=types)))
    real = mask.bool()
    hidden, pooled = (ours if isinstance(ours, Bert) else ours.bert)(ids, types, mask)
    base = theirs.base_model(**inputs)
    diffs = {"last hidden state (real tokens)": _max_diff(hidden[real], base.last_hidden_state[real])}
    if pooled is not None and getattr(base, "pooler_output", None) is not None:
        diffs["pooled output"] = _max_diff(pooled, base.pooler_output)
    if not isinstance(ours, Bert):
        diffs.update(_head_diffs(ours, theirs(**inputs), (ids, types, mask), real, arch.family))
    return diffs, {}


def _head_diffs(ours, reference, inputs, real, family: str) -> dict[str, tuple[float, float]]:
    """Each head's logits: replaced-token detection, or masked LM and the sentence-pair head."""
    if isinstance(ours, ElectraDiscriminator):
        return {"RTD logits (real tokens)": _max_diff(ours(*inputs)[real], reference.logits[real])}
    out = ours(*inputs)
    with_pair_head = isinstance(ours, BertForPreTraining)
    mlm = reference.prediction_logits if with_pair_head else reference.logits
    diffs = {"MLM logits (real tokens)": _max_diff(out.mlm_logits[real], mlm[real])}
    if with_pair_head and family == "albert":
        diffs["SOP logits"] = _max_diff(out.nsp_logits, reference.sop_logits)
    elif with_pair_head:
        diffs["NSP logits"] = _max_diff(out.nsp_logits, reference.seq_relationship_logits)
    return diffs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minilm.parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a Hugging Face GPT-2, BERT, DistilBERT, RoBERTa, ALBERT or ELECTRA folder: "
                                     "config.json + model.safetensors or .bin")
    parser.add_argument("--tokens", type=int, default=50, help="greedy tokens to compare (GPT-2)")
    parser.add_argument("--tol", type=float, default=1e-5, help="largest acceptable max|Δ|")
    args = parser.parse_args(argv)

    if not Path(args.path).is_dir():
        raise MissingFileError(f"{args.path} is not a folder; pass a Hugging Face model folder (GPT-2, BERT, "
                               "DistilBERT, RoBERTa, ALBERT or ELECTRA)")
    config = read_config(Path(args.path))
    model_type = config.get("model_type")
    warnings.filterwarnings("ignore", message=".*freshly initialised.*")
    if model_type not in FAMILIES:
        raise CheckpointError(f"{args.path}: model_type {model_type!r}; python -m minilm.parity compares "
                              f"{', '.join(FAMILIES)} folders")
    if model_type == "gpt2":
        diffs, matches = compare_gpt2(args.path, args.tokens)
    else:
        diffs, matches = compare_encoder(args.path, config)

    print(f"{args.path} ({model_type}), minilm vs transformers, float32 on CPU")
    agrees = {name: diff <= args.tol * max(1.0, scale) for name, (diff, scale) in diffs.items()}
    for name, (diff, scale) in diffs.items():
        verdict = "ok" if agrees[name] else "TOO LARGE"
        print(f"  max|Δ| {name:36s} {diff:.3e}   (max|ref| {scale:.3g})  {verdict}")
    for name, same in matches.items():
        print(f"  {name:43s} {'identical' if same else 'DIFFER'}")
    passed = all(agrees.values()) and all(matches.values())
    print(f"{'PASS' if passed else 'FAIL'} (max|Δ| <= {args.tol:g} * max(1, max|ref|))")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
