"""`python -m minilm.hf.export CKPT OUT`: a train_gpt.py or train_bert.py checkpoint, or a GGUF file, as a
Hugging Face folder.

    python -m minilm.hf.export out/gpt-small out/gpt-small-hf     # a run's out_dir means its best/
    python -m minilm.hf.export out/bert-small/ckpt out/bert-hf     # or name the checkpoint folder
    python -m minilm.hf.export SmolLM2.gguf out/smollm2-hf         # a Llama GGUF: weights dequantized to float32
    python -m minilm.hf.export smollm2 out/smollm2-hf              # the same, by its alias (fetched on first use)

What OUT holds (docs/hf_weights.md, "Export what you trained"):
    config.json, model.safetensors   save_pretrained, as the transformers class of the model's family:
                                     GPT -> GPT2LMHeadModel; Llama -> LlamaForCausalLM (from a checkpoint of
                                     train_gpt.py --architecture llama, or a GGUF file: minilm.gguf.load_gguf);
                                     BertForPreTraining -> BertForPreTraining, or
                                     AlbertForPreTraining with share_layers; BertForMaskedLM -> RobertaForMaskedLM
                                     with positions_after_padding (else its family's); Electra -> its
                                     discriminator, as ElectraForPreTraining (the generator is left out)
    vocab.json, merges.txt           a bpe tokenizer, for GPT2Tokenizer        } and tokenizer_config.json
    vocab.txt                        a wordpiece tokenizer, for BertTokenizer  } (tokenizer/hf_files.py)
    tokenizer.json                   a chat model's BPE (a GGUF's: roles and chat template in tokenizer_config.json),
                                     for PreTrainedTokenizerFast, so AutoTokenizer and apply_chat_template work
    minilm_tokenizer/                char and sentencepiece, which transformers has no format for: minilm's
                                     own tokenizer files, copied as they are

OUT must be new or empty; --overwrite writes into a folder that holds files, another checkpoint included,
replacing only the files named above (common/output_guard.py; --force is its old name). OUT may never be
CKPT, hold it or lie inside it. An int8 checkpoint (python -m minilm.compress quantize) is refused: Hugging
Face GPT-2 and BERT hold float weights, so export the float32 checkpoint it was made from.
A command, not a library module: it reads minilm's checkpoints (minilm/training/) and tokenizers, which
minilm/hf/ itself never imports, so tests/test_layering.py counts it with the other commands. It may not read
data/ (other rooms import minilm/hf/), so the alias of CKPT is resolved in __main__.py, which passes
data/assets.py's model_path to main.
"""

import argparse
import json
from pathlib import Path

from common.atomic import write_bytes_atomic, write_text_atomic
from common.errors import CheckpointError
from common.output_guard import guard_output
from minilm.compress.quantize import is_quantized
from minilm.hf import config_to_hf, read_config, save_pretrained
from minilm.gguf import load_gguf
from minilm.model import Electra, Llama
from minilm.training.checkpoint import CONFIG, load_checkpoint, resolve_checkpoint, saved_model
from tokenizer import (load_tokenizer, tokenizer_from_gguf, transformers_class, transformers_format_problem,
                       write_transformers_tokenizer)
from tokenizer.hf_files import GPT2_END_OF_TEXT

# what train_gpt.py (--architecture gpt or llama) and train_bert.py save
EXPORTABLE = ("GPT", "Llama", "BertForPreTraining", "BertForMaskedLM", "Electra")
MODEL_FILES = ["config.json", "model.safetensors"]
TOKENIZER_COPY = "minilm_tokenizer"
COMMAND = "python -m minilm.hf.export"


def main(argv=None, resolve_model=Path) -> None:
    """The command; resolve_model(CKPT) -> the path it names (__main__.py: an alias too, fetched on first use)."""
    parser = argparse.ArgumentParser(prog="python -m minilm.hf.export", description="Write a train_gpt.py or "
                                     "train_bert.py checkpoint as a Hugging Face folder: model and tokenizer "
                                     "(docs/hf_weights.md, 'Export what you trained').")
    parser.add_argument("ckpt", metavar="CKPT", help="a train_gpt.py / train_bert.py checkpoint (OUT_DIR/best or "
                                                     "OUT_DIR/ckpt), the run's OUT_DIR (meaning its best/), a "
                                                     ".gguf file, or the alias smollm2")
    parser.add_argument("out", metavar="OUT", help="the Hugging Face folder to write: new or empty, unless "
                                                   "--overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder that holds files, another checkpoint included (only the files "
                             "this export writes are replaced); never into CKPT")
    parser.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)  # its old name
    args = parser.parse_args(argv)

    checkpoint = checkpoint_folder(args.ckpt, resolve_model)
    out = guard_output(args.out, "OUT", COMMAND, inputs={f"CKPT {args.ckpt}": checkpoint}, overwrite=args.overwrite)
    model, tokenizer = load_pretraining_checkpoint(checkpoint)
    others = sorted(path.name for path in out.iterdir()) if out.is_dir() else []
    print(f"exporting {checkpoint} ({type(model).__name__}, {model.num_parameters() / 1e6:.2f}M parameters) to {out}:")
    written = export_tokenizer(tokenizer, checkpoint / "tokenizer", out, model.config.max_length)
    save_pretrained(model, out)
    add_special_token_ids(out, tokenizer)
    print(f"  {', '.join(MODEL_FILES)}: the model, for transformers' {config_to_hf(model)['architectures'][0]}")
    print_files_left_alone(sorted(set(others) - set(MODEL_FILES) - {Path(name).parts[0] for name in written}))
    print(f"compare the two libraries on it: python -m minilm.parity {out}")


def checkpoint_folder(spec: str, resolve_model=Path) -> Path:
    """The checkpoint CKPT names: the folder itself, a run's out_dir (its best/), or a GGUF file (or its alias)."""
    folder = resolve_model(spec)
    if folder.is_file():
        return folder  # a GGUF file (load_gguf says so if it is not one)
    if not folder.exists():
        raise CheckpointError(f"CKPT {spec}: no such folder or file; pass a train_gpt.py / train_bert.py checkpoint "
                              "(OUT_DIR/best or OUT_DIR/ckpt), the run's OUT_DIR, a .gguf file or the alias smollm2")
    if not (folder / CONFIG).exists() and any((folder / name / CONFIG).exists() for name in ("best", "best.old")):
        folder = folder / "best"  # a run's out_dir (resolve_checkpoint finds best.old mid-swap)
    return resolve_checkpoint(folder)


def load_pretraining_checkpoint(folder: Path):
    """(model in eval mode, tokenizer) of a train_gpt.py / train_bert.py checkpoint or a GGUF file; refuses the
    others."""
    if folder.is_file():
        return load_gguf_file(folder)
    if (folder / CONFIG).is_file() and "model_type" in read_config(folder):  # e.g. the alias minilm-l6
        raise CheckpointError(f"{folder} is a Hugging Face folder already (its config.json names a model_type): "
                              "transformers loads it as it is; export a train_gpt.py / train_bert.py checkpoint or "
                              "a .gguf file")
    state_dict, config, _ = load_checkpoint(folder, with_train_state=False)
    if is_quantized(config):  # its int8 numbers would be written as float weights, off by their scales
        raise CheckpointError(f"{folder} is quantized to int8 ({config['quantization'].get('method')}, by python -m "
                              "minilm.compress quantize), and Hugging Face GPT-2 and BERT hold float weights; export "
                              "the float32 checkpoint it was quantized from")
    if "task" in config and not is_merged_lm(config):
        raise CheckpointError(finetuned_problem(folder, config))
    model_class = config.get("model_class")
    if model_class not in EXPORTABLE:
        raise CheckpointError(f"{folder / CONFIG}: model_class {model_class!r} has no Hugging Face export; "
                              "expected 'GPT', 'Llama' (train_gpt.py) or 'BertForPreTraining', 'BertForMaskedLM', "
                              "'Electra' (train_bert.py)")
    model = saved_model(folder, config, state_dict)
    if isinstance(model, Electra):  # the model to use after pretraining; the generator is thrown away
        model = model.discriminator
    # save_pretrained refuses both of these too, but only after the tokenizer files are written
    if isinstance(model, Llama) and model.config.bias:
        raise CheckpointError(f"{folder} was trained with bias=True (--bias true), but minilm writes Hugging Face "
                              "Llama folders without biases (attention_bias and mlp_bias false), as Llama has "
                              "none; train with --bias false (Llama's default) to export")
    if not isinstance(model, Llama) and not model.config.bias:
        raise CheckpointError(f"{folder} was trained with bias=False (train_gpt.py --bias false: no bias in any "
                              "Linear or LayerNorm), but Hugging Face GPT-2 and BERT have a bias in every one, "
                              "so this model has no Hugging Face form; train with --bias true (the default) to export")
    if not (folder / "tokenizer").is_dir():
        raise CheckpointError(f"{folder} has no tokenizer/ folder; train_gpt.py and train_bert.py save the "
                              "tokenizer there, and the export needs it")
    return model.eval(), load_tokenizer(folder / "tokenizer")


def load_gguf_file(path: Path):
    """(Llama in eval mode, tokenizer) of a GGUF file: the weights dequantized to float32, the tokenizer and
    chat template from its metadata. Refused before anything is written when transformers cannot read the
    tokenizer as minilm does (there are no minilm tokenizer files to copy instead)."""
    model, tokenizer = load_gguf(path), tokenizer_from_gguf(path)
    problem = transformers_format_problem(tokenizer)
    if problem is not None:
        raise CheckpointError(f"{path}: its tokenizer has no transformers form ({problem}); nothing was written")
    return model, tokenizer


def is_merged_lm(config: dict) -> bool:
    """A finetune.py --task lm or chat checkpoint saved whole (--merge): nothing but the decoder's own tensors."""
    return config.get("task") in ("lm", "chat") and config.get("base") is None and not config.get("peft_applied")


def finetuned_problem(folder: Path, config: dict) -> str:
    """Why a finetune.py checkpoint cannot be exported, and what can be."""
    task, merged = config["task"], folder.parent / "merged"
    if task not in ("lm", "chat"):
        return (f"{folder} is a finetune.py --task {task} checkpoint: a backbone with a {task} head, which has no "
                "GPT2LMHeadModel or ...ForPreTraining form; export a train_gpt.py / train_bert.py checkpoint "
                "(its base, for instance) or a merged --task lm fine-tune")
    if config.get("base") is None:  # merged, but adapters or prefixes cannot fold into GPT's weights
        method = config.get("peft", {}).get("method")
        return (f"{folder} is a fine-tuned GPT with --method {method}, whose extra modules GPT-2 has no place "
                "for; fine-tune with --method lora or full, and --merge, to export")
    where = f"export {merged}" if (merged / CONFIG).exists() else \
        f"run finetune.py again with --merge, which writes the whole model to {merged}, and export that folder"
    return f"{folder} is a finetune.py checkpoint that holds only the tensors fine-tuning trained; {where}"


def export_tokenizer(tokenizer, source: Path, out: Path, model_max_length: int) -> list[str]:
    """transformers' files for the tokenizer where they give minilm's ids, else a copy of minilm's own
    (source: the checkpoint's tokenizer/ folder). Prints and returns the names written."""
    problem = transformers_format_problem(tokenizer)
    if problem is None:
        names = write_transformers_tokenizer(tokenizer, out, model_max_length)
        print(f"  {', '.join(names)}: the {tokenizer.kind} tokenizer, for transformers' "
              f"{transformers_class(tokenizer)}")
        return names
    names = copy_files(source, out / TOKENIZER_COPY)
    print(f"  no transformers tokenizer files for the {tokenizer.kind} tokenizer: {problem}")
    print(f"  {', '.join(names)}: minilm's own {tokenizer.kind} tokenizer, copied so nothing is lost "
          f"(tokenizer.load_tokenizer(\"{out / TOKENIZER_COPY}\") reads it)")
    return names


def copy_files(source: Path, target: Path) -> list[str]:
    """Copy every file under source to target, byte for byte; the names written, relative to target's parent."""
    names = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = Path(target.name) / path.relative_to(source)
        write_bytes_atomic(target.parent / relative, path.read_bytes())
        names.append(relative.as_posix())
    return names


def add_special_token_ids(out: Path, tokenizer) -> None:
    """Give a GPT-2 or Llama config.json the tokenizer's bos and eos ids: a chat model's roles (its eos ends a
    turn), else <|endoftext|> (or none) as both. transformers' defaults (GPT2Config 50256, LlamaConfig 1 and 2)
    are ids a small vocabulary does not have, or has for something else."""
    config = json.loads((out / "config.json").read_text())
    if config["model_type"] in ("gpt2", "llama"):
        end_of_text, roles = tokenizer.special_ids.get(GPT2_END_OF_TEXT), getattr(tokenizer, "roles", {})
        config.update(bos_token_id=roles.get("bos_token", end_of_text),
                      eos_token_id=roles.get("eos_token", end_of_text))
        write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")


def print_files_left_alone(names: list[str]) -> None:
    """With --overwrite, say which files of OUT were there before and are not this export's."""
    if not names:
        return
    print(f"  left as they were (not written by this export): {', '.join(names)}")
    if "tokenizer.json" in names:
        print("  note: transformers reads tokenizer.json before any other tokenizer file; delete it unless it "
              "belongs to this model")
