"""The base of instruction tuning (finetune.py --task chat): a decoder whose tokenizer has a chat template.

A chat model was tuned on conversations written in one format, and its template is that format; SFT writes
its examples in the same one (minilm/finetune/sft.py), so the tuned model answers in the format `python -m
minilm.chat` and the service render. A base without a template (a train_gpt.py run) gets one by name:

    --chat_template chatml   <|im_start|>role\\ncontent<|im_end|>\\n per message (SmolLM2's and Qwen's format)

ChatML's two markers must already be single tokens of the tokenizer: minilm does not add tokens to a trained
vocabulary (their embedding rows would start untrained and change the vocabulary size the base's sha256
pins), so a tokenizer without them is refused with the reason.

The base is read by the caller (finetune.py passes minilm/chat/load.py's load_decoder: this room may not import
minilm/chat/ or minilm/gguf/). Its pointer names it as it was named (an alias, or the resolved path of a .gguf
file or folder) with the sha256 of its weights' file, so a base that changed after fine-tuning is caught.
"""

import hashlib
from pathlib import Path

from common.errors import CheckpointError, ConfigError, MissingFileError

from ..training.checkpoint import resolve_checkpoint

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CHAT_TEMPLATES = {"chatml": (CHATML, ("<|im_start|>", "<|im_end|>"))}  # name -> (template, tokens it needs)


def with_chat_template(tokenizer, template: str | None, spec: str):
    """The tokenizer, given the named template (or checked to carry its own). spec: --base, for messages."""
    if template is None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"--base {spec}: its tokenizer has no chat template, so there is no format to write "
                              "the conversations in; name one with --chat_template chatml, or fine-tune a chat "
                              "model (e.g. --base smollm2)")
        return tokenizer
    if template not in CHAT_TEMPLATES:
        raise ConfigError(f"--chat_template {template}: unknown; choose from {', '.join(CHAT_TEMPLATES)}")
    text, needed = CHAT_TEMPLATES[template]
    specials = getattr(tokenizer, "special_tokens", None)
    missing = [token for token in needed if token not in (specials or {})]
    if specials is None or missing:
        raise ConfigError(f"--chat_template {template} needs {' and '.join(needed)} as single tokens, and the "
                          f"{tokenizer.kind} tokenizer of --base {spec} lacks {', '.join(missing or needed)}; minilm "
                          "does not add tokens to a trained vocabulary (their embeddings would start untrained): "
                          "fine-tune a base whose tokenizer has them, e.g. a chat model such as --base smollm2")
    tokenizer.chat_template = text
    return tokenizer


def model_sha256(path) -> str:
    """The sha256 of a model's weights: a .gguf file's bytes, or a folder's model.safetensors (or .bin)."""
    path = Path(path)
    if path.is_dir():
        folder = resolve_checkpoint(path)
        path = next((folder / name for name in ("model.safetensors", "pytorch_model.bin")
                     if (folder / name).exists()), None)
        if path is None:
            raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_pointer(spec: str, path: Path, alias: bool) -> dict:
    """How a fine-tuned checkpoint finds its base again: {"alias"} or {"path"}, and "sha256"."""
    where = {"alias": spec} if alias else {"path": str(Path(path).resolve())}
    return {**where, "sha256": model_sha256(path)}


def find_decoder_base(pointer: dict, resolve_alias, load_decoder):
    """(model, tokenizer) of the base a chat checkpoint points to, checked to be the one it was tuned from.
    resolve_alias(name) -> path; load_decoder(path) -> an object with .model and .tokenizer."""
    alias = pointer.get("alias")
    if alias is not None and resolve_alias is None:
        raise TypeError(f"this checkpoint's base is the alias {alias!r}: pass resolve_alias to load_finetuned")
    path = Path(resolve_alias(alias)) if alias is not None else Path(pointer["path"])
    if not path.exists():
        raise MissingFileError(f"this checkpoint holds only its trained tensors, and its base model is not at {path} "
                               "any more (it was fine-tuned from there): put the base back there, or fine-tune "
                               "again with --merge, which saves every tensor")
    if model_sha256(path) != pointer["sha256"]:
        raise CheckpointError(f"the base model {alias or path} has changed since fine-tuning (its weights' sha256 "
                              "differs); fine-tune again on this base, or restore the original one")
    decoder = load_decoder(path)
    return decoder.model, decoder.tokenizer


def chat_hint(out_dir, merged: bool, method: str) -> str:
    """Where to talk to the result: python -m minilm.chat reads a whole model (merged/, or a full fine-tune)."""
    ask = f'python finetune.py predict --ckpt {out_dir} "a question"'
    if method in ("adapter", "prefix"):  # extra modules a plain Llama has no place for, merged or not
        return f"ask it: {ask} (its {method} modules do not fold into the weights, so minilm.chat cannot read it)"
    if merged or method == "full":  # a full fine-tune's best/ holds every tensor
        return f"chat with it: python -m minilm.chat --model {out_dir}   (or {ask})"
    return f"ask it: {ask}; to chat with python -m minilm.chat, run again with --merge (writes {out_dir}/merged)"
