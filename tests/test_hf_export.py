"""python -m minilm.hf.export: tiny train_gpt.py / train_bert.py checkpoints (bpe, char, wordpiece) become
folders that transformers loads with minilm's logits (max|Δ| <= 1e-5) and minilm's token ids, and every
input the command refuses gives `error: ...`, exit status 2 and no traceback.

Token ids are compared as the two libraries give them for model input: GPT-2's tokenizer adds nothing,
and is compared with ``encode(text, special="allow")``, which turns "<|endoftext|>" into its id as
transformers does; BERT's adds [CLS] ... [SEP] (and a second segment), compared with ``encode_plus``.
The BERT texts hold no "[MASK]"-like strings: transformers matches those in the text, minilm's encode
spells them out.
"""

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_bert
import train_gpt
from common.errors import run_command
from data.assets import fetch
from minilm import GPT, BertConfig, BertForPreTraining, GPTConfig
from minilm.hf import export
from minilm.training.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from test_train_gpt import TINY_FLAGS, write_text
from tokenizer import (BPETokenizer, CharTokenizer, TokenizerFileError, WordPieceTokenizer, load_tokenizer,
                       transformers_format_problem, write_transformers_tokenizer)
from tokenizer.gpt2_files import read_gpt2_files, write_gpt2_files

import transformers

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5
GPT_TEXTS = ["to be or not to be", "Whether 'tis nobler  in the mind\n\tto suffer", "naïve café, 東京 🙂!",
             "the question<|endoftext|>that is", "  leading spaces and trailing   "]
BERT_TEXTS = ["To be, or NOT to be: that is the Question!", "Whether 'tis nobler in the mind... 1,234",
              "Ça va? naïve café 東京", "unknownwords zzzz"]
BERT_FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--block_size", "32", "--max_seq_len", "32",
              "--batch_size", "8", "--max_iters", "4", "--warmup_iters", "1", "--eval_interval", "4",
              "--eval_iters", "2", "--log_interval", "2", "--device", "cpu", "--progress", "false",
              "--tokenizer_vocab_size", "200"]

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- tiny runs and their exports ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_export")


def train(script, workdir: Path, argv: list[str]) -> None:
    """script.main(argv), quietly, caching its tokenizer and token files in workdir, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        patch.setenv("MINILM_CACHE", str(workdir / "cache"))
        script.main(argv)


def train_gpt_run(workdir: Path, name: str, *flags) -> Path:
    text = write_text(workdir / "gpt.txt")
    train(train_gpt, workdir, ["--data", str(text), "--out_dir", str(workdir / name), *TINY_FLAGS, *flags])
    return workdir / name


def run_export(*args) -> tuple[int, str]:
    """Run the command in this process: (exit status, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = run_command(export.main, [str(a) for a in args])
    return status, printed.getvalue()


@pytest.fixture(scope="module")
def gpt_bpe(workdir):
    """(checkpoint folder, OUT) of a GPT trained with --tokenizer bpe, exported from OUT_DIR/best."""
    run = train_gpt_run(workdir, "gpt-bpe", "--tokenizer", "bpe", "--tokenizer_vocab_size", "280")
    status, _ = run_export(run / "best", workdir / "gpt-bpe-hf")
    assert status == 0
    return run / "best", workdir / "gpt-bpe-hf"


@pytest.fixture(scope="module")
def gpt_char(workdir):
    """(checkpoint folder, OUT, what the command printed) of a char-level GPT, exported from its OUT_DIR."""
    run = train_gpt_run(workdir, "gpt-char")
    status, printed = run_export(run, workdir / "gpt-char-hf")
    assert status == 0
    return run / "best", workdir / "gpt-char-hf", printed


@pytest.fixture(scope="module")
def bert(workdir):
    """(checkpoint folder, OUT) of a BERT trained with the default (wordpiece) tokenizer."""
    lines = write_text(workdir / "lines.txt", n_lines=240).read_text().splitlines()
    documents = workdir / "documents.txt"  # 24 documents of 10 lines, blank lines between them
    documents.write_text("\n\n".join("\n".join(lines[i:i + 10]) for i in range(0, len(lines), 10)) + "\n")
    train(train_bert, workdir, ["--data", str(documents), "--out_dir", str(workdir / "bert"), *BERT_FLAGS])
    status, _ = run_export(workdir / "bert" / "best", workdir / "bert-hf")
    assert status == 0
    return workdir / "bert" / "best", workdir / "bert-hf"


def minilm_model(checkpoint: Path):
    state_dict, config, _ = load_checkpoint(checkpoint, with_train_state=False)
    model = GPT(GPTConfig.from_dict(config["model"])) if config["model_class"] == "GPT" \
        else BertForPreTraining(BertConfig.from_dict(config["model"]))
    load_model_weights(model, state_dict)
    return model.eval()


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


# ---- GPT, byte-level BPE ------------------------------------------------------------------------------

@torch.no_grad()
def test_transformers_computes_minilm_logits_from_a_gpt_export(gpt_bpe):
    checkpoint, out = gpt_bpe
    ids = torch.tensor([load_tokenizer(checkpoint / "tokenizer").encode("to be or not that is the question")[:16]])
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out, attn_implementation="eager").eval()
    assert max_diff(theirs(ids).logits, minilm_model(checkpoint)(ids)[0]) <= TOL


def test_transformers_reads_the_exported_bpe_files_as_minilm_encodes(gpt_bpe):
    checkpoint, out = gpt_bpe
    ours = load_tokenizer(checkpoint / "tokenizer")
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    assert type(theirs).__name__ == "GPT2Tokenizer"
    assert [theirs(text)["input_ids"] for text in GPT_TEXTS] == [ours.encode(t, special="allow") for t in GPT_TEXTS]


def test_the_exported_gpt_knows_end_of_text_and_adds_no_id(gpt_bpe):
    checkpoint, out = gpt_bpe
    end_of_text = load_tokenizer(checkpoint / "tokenizer").special_ids["<|endoftext|>"]
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    config = transformers.AutoConfig.from_pretrained(out)
    assert theirs.eos_token_id == theirs.bos_token_id == config.eos_token_id == config.bos_token_id == end_of_text
    assert len(theirs) == config.vocab_size


def test_written_gpt2_files_read_back_as_the_same_bpe(gpt_bpe, tmp_path):
    ours = load_tokenizer(gpt_bpe[0] / "tokenizer")
    write_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt", ours.byte_ids, ours.merges, ours.special_tokens)
    assert read_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt", tuple(ours.special_tokens)) == \
        (ours.byte_ids, ours.merges, ours.special_tokens)


def test_two_ids_with_one_string_cannot_be_written_as_gpt2_files(tmp_path):
    a, b, c = b"abc"  # 256 = "ab", 257 = "ab"+"c", 258 = "bc", 259 = "a"+"bc": 257 and 259 are both "abc"
    merges = [(a, b, 256), (256, c, 257), (b, c, 258), (a, 258, 259)]
    with pytest.raises(TokenizerFileError, match="ids 257 and 259 are both the token 'abc'"):
        write_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt", list(range(256)), merges, {})


def test_a_bpe_with_another_pattern_gets_no_transformers_files():
    other_pattern = BPETokenizer(list(range(256)), [], pattern=r"\S+|\s+")
    assert "pattern is not GPT-2's" in transformers_format_problem(other_pattern)


def test_a_wordpiece_with_another_word_limit_gets_no_transformers_files():
    short_words = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"], max_word_chars=50)
    assert "BertTokenizer always allows 100" in transformers_format_problem(short_words)


# ---- the real GPT-2 vocabulary ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_gpt2(tmp_path_factory):
    """(minilm's GPT-2 tokenizer from the tiktoken ranks, the folder its transformers files were written to)."""
    ours = BPETokenizer.from_tiktoken(fetch("gpt2-ranks"))
    folder = tmp_path_factory.mktemp("gpt2_files")
    write_transformers_tokenizer(ours, folder, model_max_length=1024)
    return ours, folder


def test_the_real_gpt2_vocabulary_is_written_as_gpt2_own_files(real_gpt2):
    ours, folder = real_gpt2
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert (len(vocab), len(merges), merges[0], merges[1]) == (50257, 50001, "#version: 0.2", "Ġ t")
    assert (vocab["Ġthe"], vocab["<|endoftext|>"]) == (262, 50256)
    assert read_gpt2_files(folder / "vocab.json", folder / "merges.txt") == \
        (ours.byte_ids, ours.merges, ours.special_tokens)


def test_transformers_reads_the_real_gpt2_files_as_minilm_encodes(real_gpt2):
    ours, folder = real_gpt2
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert [theirs(text)["input_ids"] for text in GPT_TEXTS] == [ours.encode(t, special="allow") for t in GPT_TEXTS]


# ---- GPT, characters -----------------------------------------------------------------------------------

def test_a_char_export_says_it_writes_no_transformers_tokenizer(gpt_char):
    _, out, printed = gpt_char
    assert "no transformers tokenizer files for the char tokenizer" in printed
    assert not any((out / name).exists() for name in ("vocab.json", "vocab.txt", "tokenizer_config.json"))


def test_a_char_export_copies_minilm_tokenizer_into_minilm_tokenizer(gpt_char):
    checkpoint, out, _ = gpt_char
    copied, original = load_tokenizer(out / "minilm_tokenizer"), load_tokenizer(checkpoint / "tokenizer")
    assert copied.encode("to be or not") == original.encode("to be or not")


def test_a_run_out_dir_is_exported_from_its_best_checkpoint(gpt_char):
    checkpoint, _, printed = gpt_char
    assert printed.startswith(f"exporting {checkpoint} ")


@torch.no_grad()
def test_transformers_computes_minilm_logits_from_a_char_gpt_export(gpt_char):
    checkpoint, out, _ = gpt_char
    ids = torch.tensor([load_tokenizer(checkpoint / "tokenizer").encode("to be or not to be")[:16]])
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out, attn_implementation="eager").eval()
    assert max_diff(theirs(ids).logits, minilm_model(checkpoint)(ids)[0]) <= TOL


# ---- BERT, WordPiece -----------------------------------------------------------------------------------

@torch.no_grad()
def test_transformers_computes_minilm_mlm_and_nsp_logits_from_a_bert_export(bert):
    checkpoint, out = bert
    pair = load_tokenizer(checkpoint / "tokenizer").encode_plus("to be or not to be", "that is the question")
    inputs = {name: torch.tensor([values]) for name, values in pair.items()}
    theirs = transformers.BertForPreTraining.from_pretrained(out, attn_implementation="eager").eval()(**inputs)
    ours = minilm_model(checkpoint)(inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"])
    assert max_diff(theirs.prediction_logits, ours.mlm_logits) <= TOL
    assert max_diff(theirs.seq_relationship_logits, ours.nsp_logits) <= TOL


def test_transformers_reads_the_exported_vocab_txt_as_minilm_encodes(bert):
    checkpoint, out = bert
    ours = load_tokenizer(checkpoint / "tokenizer")
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    assert type(theirs).__name__ == "BertTokenizer"
    assert [theirs(t)["input_ids"] for t in BERT_TEXTS] == [ours.encode_plus(t)["input_ids"] for t in BERT_TEXTS]
    assert theirs(BERT_TEXTS[0], BERT_TEXTS[1]) == ours.encode_plus(BERT_TEXTS[0], BERT_TEXTS[1])


def test_the_exported_bert_tokenizer_knows_the_special_tokens(bert):
    checkpoint, out = bert
    ours = load_tokenizer(checkpoint / "tokenizer")
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    assert {token: theirs.convert_tokens_to_ids(token) for token in theirs.all_special_tokens} == ours.special_ids


# ---- --overwrite and fine-tuned checkpoints ----------------------------------------------------------

def test_overwrite_writes_into_a_folder_and_leaves_its_other_files(gpt_char, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    status, printed = run_export(gpt_char[0], tmp_path, "--overwrite")
    assert status == 0 and (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "model.safetensors").exists()
    assert "left as they were (not written by this export): notes.txt" in printed


def test_a_merged_lm_fine_tune_is_exported_as_a_gpt(gpt_char, tmp_path):
    merged = shutil.copytree(gpt_char[0], tmp_path / "merged")
    config = json.loads((merged / "config.json").read_text())
    config.update(task="lm", base=None, merged=True, peft_applied=False, peft={"method": "lora"})
    (merged / "config.json").write_text(json.dumps(config))
    assert run_export(merged, tmp_path / "out")[0] == 0
    assert transformers.AutoConfig.from_pretrained(tmp_path / "out").model_type == "gpt2"


# ---- refusals, through the real command line ----------------------------------------------------------

def tiny_checkpoint(folder: Path, bias=True, **config_changes) -> Path:
    """A one-layer GPT checkpoint with a char tokenizer, written as train_gpt.py writes one."""
    model_config = GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=2, n_embd=8, bias=bias)
    config = {"model_class": "GPT", "model": model_config.to_dict(), **config_changes}
    return save_checkpoint(folder, GPT(model_config), config,
                           write_extra=lambda tmp: CharTokenizer.train("abc").save(tmp / "tokenizer"))


def refusal_cases(tmp: Path) -> dict[str, list]:
    """Each refusal: the command line that must be refused."""
    (tmp / "full").mkdir()
    (tmp / "full" / "notes.txt").write_text("not ours")
    finetuned = tiny_checkpoint(tmp / "finetune-run" / "best", task="lm", base={"path": "out/gpt", "sha256": "0"})
    quantized = tiny_checkpoint(tmp / "int8", quantization={"method": "int8-symmetric-per-row", "compute": "int8"})
    return {
        "int8": [quantized, tmp / "e"],
        "missing": [tmp / "no-such-run", tmp / "a"],
        "finetuned": [finetuned, tmp / "b"],
        "no_bias": [tiny_checkpoint(tmp / "no-bias", bias=False), tmp / "c"],
        "not_empty": [tiny_checkpoint(tmp / "good"), tmp / "full"],
        "unknown_class": [tiny_checkpoint(tmp / "mamba", model_class="Mamba"), tmp / "d"],
    }


@pytest.fixture(scope="module", autouse=True)
def refused(tmp_path_factory):
    """(folder, name -> running command) for every refusal case. autouse starts them before the first
    test, so their start-up (over a second of importing torch each) runs beside this process's trainings."""
    tmp = tmp_path_factory.mktemp("refusals")
    processes = {name: subprocess.Popen([sys.executable, "-m", "minilm.hf.export", *map(str, args)], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, args in refusal_cases(tmp).items()}
    yield tmp, processes
    for process in processes.values():
        if process.returncode is None:  # no test read it (deselected): wait for it to end
            process.communicate(timeout=120)


def assert_refused(refused, name: str, *phrases: str) -> None:
    process = refused[1][name]
    stderr = process.communicate(timeout=120)[1]
    status = process.returncode
    assert status == 2 and stderr.startswith("error: ") and "Traceback" not in stderr, stderr
    for phrase in phrases:
        assert phrase in stderr, stderr


def test_a_missing_checkpoint_is_refused(refused):
    assert_refused(refused, "missing", "no-such-run: no such folder")


def test_a_fine_tuned_checkpoint_is_refused_naming_merge_and_the_merged_folder(refused):
    assert_refused(refused, "finetuned", "--merge", str(refused[0] / "finetune-run" / "merged"))


def test_a_model_without_biases_is_refused(refused):
    assert_refused(refused, "no_bias", "bias=False", "--bias true")


def test_an_int8_checkpoint_is_refused_naming_the_float32_one(refused):
    assert_refused(refused, "int8", "quantized to int8", "float32 checkpoint")
    assert not (refused[0] / "e").exists()


def test_an_out_folder_with_files_is_refused_without_overwrite(refused):
    assert_refused(refused, "not_empty", "holds files that python -m minilm.hf.export did not write", "--overwrite")
    assert [p.name for p in (refused[0] / "full").iterdir()] == ["notes.txt"]


def test_an_unknown_model_class_is_refused(refused):
    assert_refused(refused, "unknown_class", "model_class 'Mamba'")


def test_exporting_into_the_checkpoint_itself_is_refused_even_with_force(gpt_char, capsys):
    checkpoint = gpt_char[0]
    assert run_export(checkpoint, checkpoint, "--force")[0] == 2  # --overwrite's old name, still understood
    assert f"OUT {checkpoint} is CKPT" in capsys.readouterr().err
    assert json.loads((checkpoint / "config.json").read_text())["model_class"] == "GPT"  # minilm's, untouched
