"""A chat model and its tokenizer, from whichever form it comes in.

    a .gguf file               the model and the tokenizer both from the file (minilm/gguf/, tokenizer/gguf_vocab.py)
    a minilm checkpoint        config.json + model.safetensors + tokenizer/ (train_gpt.py, finetune.py, export)
    a Hugging Face folder      config.json + safetensors, and a minilm tokenizer/ beside them

The tokenizer must carry a chat template: the model was tuned on conversations in one format, and the
template is that format.
"""

from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointError, MissingFileError, UserError
from tokenizer import load_tokenizer
from tokenizer.gguf_vocab import tokenizer_from_gguf

from ..gguf.load import is_gguf, load_gguf
from ..hf import from_pretrained, read_config
from ..model import GPT
from ..training.checkpoint import load_checkpoint, resolve_checkpoint, saved_model

END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>")  # ChatML's, GPT-2's and Llama 3's end tokens


@dataclass
class ChatModel:
    model: GPT  # a GPT or a Llama: what generate() needs
    tokenizer: object  # a BPETokenizer with a chat template
    end_ids: tuple[int, ...]  # the tokens that end the assistant's turn
    source: str

    @property
    def context_length(self) -> int:
        return self.model.config.block_size


def load_chat_model(path) -> ChatModel:
    """The model at path (a .gguf file or a folder) with its tokenizer, ready to chat (eval mode, no grad)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist; give a .gguf file, a minilm checkpoint folder or a "
                               "Hugging Face folder (or the alias smollm2)")
    if is_gguf(path):
        model, tokenizer = load_gguf(path), tokenizer_from_gguf(path)
    elif path.is_dir():
        model, tokenizer = _load_folder(path)
    else:
        raise CheckpointError(f"{path} is neither a GGUF file nor a folder")
    if not isinstance(model, GPT):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, which does not generate text; chat needs a "
                              "decoder (GPT or Llama)")
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{path}: its tokenizer has no chat template, so minilm cannot write a conversation in the "
                        "format the model knows; chat with a chat model (e.g. smollm2), or use sample.py for "
                        "plain text")
    model.requires_grad_(False)
    return ChatModel(model.eval(), tokenizer, end_ids(tokenizer), str(path))


def end_ids(tokenizer) -> tuple[int, ...]:
    """The ids that end a turn: the tokenizer's eos and any end-of-turn special token it has."""
    ids = [tokenizer.roles["eos_token"]] if "eos_token" in getattr(tokenizer, "roles", {}) else []
    ids += [tokenizer.special_tokens[name] for name in END_OF_TURN if name in tokenizer.special_tokens]
    return tuple(dict.fromkeys(ids))  # in order, once each


def _load_folder(folder: Path):
    """A Hugging Face folder (config.json with model_type) or a minilm checkpoint (model_class), and tokenizer/."""
    if (folder / "config.json").exists() and "model_type" in read_config(folder):
        model = from_pretrained(folder)
    else:
        folder = resolve_checkpoint(folder)  # or folder.old, after an interrupted save
        state_dict, config, _ = load_checkpoint(folder, with_train_state=False)
        model = saved_model(folder, config, state_dict)
    if not (folder / "tokenizer").is_dir():
        raise CheckpointError(f"{folder} has no tokenizer/ folder; chat needs the tokenizer with its chat template")
    return model, load_tokenizer(folder / "tokenizer")
