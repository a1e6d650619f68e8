"""A decoder and its tokenizer, from whichever form it comes in; a chat model is one whose tokenizer has a
chat template.

    a .gguf file               the model and the tokenizer both from the file (minilm/gguf/, tokenizer/gguf_vocab.py)
    a minilm checkpoint        config.json + model.safetensors + tokenizer/ (train_gpt.py, a merged finetune.py
                               --task lm or chat, or the folder a chat model was saved to); a finetune.py out_dir
                               means its merged/ model (else its best/, which names what to do)
    a Hugging Face folder      config.json + safetensors (GPT-2 or Llama), and a minilm tokenizer/ beside them

load_decoder serves every command that continues text (sample.py, python -m minilm.chat); load_chat_model
adds the chat's one requirement: the model was tuned on conversations in one format, and the template is
that format. Both live here, in the lowest room allowed to read all three forms (minilm/gguf, minilm/hf,
minilm/training and tokenizer/; tests/test_layering.py).
"""

from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointError, MissingFileError, UserError
from tokenizer import load_tokenizer
from tokenizer.gguf_vocab import tokenizer_from_gguf

from ..gguf.load import is_gguf, load_gguf
from ..hf import from_pretrained, read_config
from ..model import GPT
from ..training.checkpoint import CONFIG, load_checkpoint, resolve_checkpoint, saved_model
from ..training.saved_config import check_saved_config

END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>")  # ChatML's, GPT-2's and Llama 3's end tokens
DECODER_CLASSES = ("GPT", "Llama")  # the model_class of a checkpoint train_gpt.py writes


@dataclass
class Decoder:
    model: GPT  # a GPT or a Llama: what generate() needs
    tokenizer: object
    end_ids: tuple[int, ...]  # the tokens that end a text (or the assistant's turn); () when it has none
    source: str

    @property
    def context_length(self) -> int:
        return self.model.config.block_size


ChatModel = Decoder  # a Decoder whose tokenizer carries a chat template (load_chat_model checks it)


def load_decoder(path) -> Decoder:
    """The decoder at path (a .gguf file or a folder) with its tokenizer, in eval mode, no grad."""
    path = Path(path)
    if not path.exists() and not path.with_name(path.name + ".old").exists():  # .old: an interrupted save
        raise MissingFileError(f"no checkpoint at {path}: it does not exist; give a .gguf file, a train_gpt.py "
                               "checkpoint folder or a Hugging Face GPT-2 / Llama folder (or the alias smollm2)")
    if path.is_file():
        if not is_gguf(path):
            raise CheckpointError(f"{path} is neither a GGUF file nor a folder")
        model, tokenizer = load_gguf(path), tokenizer_from_gguf(path)
    elif (path / CONFIG).is_file() and "model_type" in read_config(path):
        model, tokenizer = _load_hf_folder(path)
    elif not (path / CONFIG).is_file() and _run_model(path) is not None:  # a finetune.py or train_gpt.py out_dir
        model, tokenizer = _load_checkpoint(_run_model(path))
    else:
        model, tokenizer = _load_checkpoint(path)
    if tokenizer.vocab_size > model.config.vocab_size:  # ids the model has no row for
        raise CheckpointError(f"{path}: the tokenizer has {tokenizer.vocab_size} ids but the model "
                              f"{model.config.vocab_size}; the tokenizer is not the one the model was trained with")
    model.requires_grad_(False)
    return Decoder(model.eval(), tokenizer, end_ids(tokenizer), str(path))


def load_chat_model(path) -> ChatModel:
    """The model at path with its tokenizer, ready to chat: load_decoder's, with a chat template."""
    chat = load_decoder(path)
    if not getattr(chat.tokenizer, "chat_template", None):
        raise UserError(f"{path}: its tokenizer has no chat template, so minilm cannot write a conversation in the "
                        "format the model knows; chat with a chat model (e.g. smollm2), or use sample.py for "
                        "plain text")
    return chat


def end_ids(tokenizer) -> tuple[int, ...]:
    """The ids that end a text or a turn: the tokenizer's eos and any end-of-turn special token it has."""
    roles, specials = getattr(tokenizer, "roles", {}), getattr(tokenizer, "special_tokens", {})
    ids = [roles["eos_token"]] if "eos_token" in roles else []
    ids += [specials[name] for name in END_OF_TURN if name in specials]
    return tuple(dict.fromkeys(ids))  # in order, once each


def _load_hf_folder(folder: Path):
    """A Hugging Face folder (config.json with model_type) and the minilm tokenizer/ beside its files."""
    model = from_pretrained(folder)
    if not isinstance(model, GPT):
        raise CheckpointError(f"{folder} holds a {type(model).__name__}, which does not generate text; give a "
                              "decoder (a GPT-2 or Llama folder)")
    return model, _tokenizer_of(folder)


def _run_model(out_dir: Path) -> Path | None:
    """The model a run's out_dir holds: finetune.py's merged/ (every tensor), else its best/."""
    return next((out_dir / name for name in ("merged", "best") if (out_dir / name / CONFIG).is_file()), None)


def _finetuned_problem(folder: Path, config: dict) -> str | None:
    """Why a finetune.py checkpoint is no plain decoder, and what to do; None when it is one."""
    ask = f'python finetune.py predict --ckpt {folder} "a question"'
    method = config.get("peft", {}).get("method")
    if config.get("base") is not None and method != "full":  # the trained tensors and a pointer to the base
        merged = folder.parent / "merged"
        whole = f"pass {merged}" if (merged / CONFIG).is_file() else \
            "run the fine-tune again with --merge, which writes the whole model to OUT_DIR/merged, and pass that"
        return (f"{folder} is a finetune.py checkpoint that holds only the tensors fine-tuning trained (and a "
                f"pointer to its base), not a whole model; {whole}, or ask it with {ask}")
    if config.get("peft_applied"):  # merged, but adapters or a prefix do not fold into the weights
        return (f"{folder} was fine-tuned with --method {method}, whose extra modules a plain decoder has no place "
                f"for; ask it with {ask}, or fine-tune with --method lora or full to chat with it here")
    return None


def _load_checkpoint(folder: Path):
    """A minilm checkpoint of a decoder (config.json's model_class GPT or Llama), checked as --resume checks it."""
    folder = resolve_checkpoint(folder)  # or folder.old, after an interrupted save
    state_dict, config, _ = load_checkpoint(folder, with_train_state=False)
    name = config.get("model_class")
    if name not in DECODER_CLASSES:  # another kind of folder: say which one to pass
        what = "it names no model_class" if name is None else f"its model_class is {name!r}"
        raise CheckpointError(f"{folder / CONFIG} is not a train_gpt.py checkpoint ({what}), so it holds no "
                              "decoder; pass the best/ or ckpt/ folder of a train_gpt.py run, a .gguf file or a "
                              "Hugging Face GPT-2 / Llama folder")
    if (problem := _finetuned_problem(folder, config)) is not None:
        raise CheckpointError(problem)
    check_saved_config(folder, config)  # its settings, as --resume checks them
    return saved_model(folder, config, state_dict), _tokenizer_of(folder)


def _tokenizer_of(folder: Path):
    if not (folder / "tokenizer").is_dir():
        raise CheckpointError(f"{folder} has no tokenizer/ folder; minilm reads the model's tokenizer from there "
                              "(train_gpt.py saves it; beside a Hugging Face folder, save one with "
                              "tokenizer.save(FOLDER / 'tokenizer'))")
    return load_tokenizer(folder / "tokenizer")
