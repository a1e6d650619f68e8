"""python -m minilm.viz attention: the page holds attention_maps' numbers, renders in a real browser, and
refuses bad input with `error: ...` (exit 2, no traceback). Tiny models, built here, keep it fast."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from common.errors import run_command
from gguf_fixtures import write_llama_gguf
from minilm import GPT, Bert, BertConfig, GPTConfig, Llama, LlamaConfig, save_pretrained
from minilm.finetune.checkpoints import open_model
from minilm.gguf import load_gguf
from minilm.viz.__main__ import main
from tests.finetune_fixtures import VOCAB, save_base, tiny_wordpiece
from tokenizer import BPETokenizer, CharTokenizer
from tokenizer.byte_level import BYTE_TO_UNICODE

GPT_TEXT = "the cat sat on the mat."
BERT_TEXT, BERT_TEXT_B = "the film was good", "john lives in paris"
DATA_ELEMENT = re.compile(r'<script type="application/json" id="attention-data">(.*?)</script>', re.S)
SELFTEST_ELEMENT = re.compile(r'<pre id="selftest"[^>]*>(.*?)</pre>', re.S)
PAGE_ERRORS_ELEMENT = re.compile(r'<pre id="page-errors"[^>]*>(.*?)</pre>', re.S)


# ---- tiny models: init_std 0.3 so that heads and layers differ visibly (0.02 gives near-uniform maps) ---

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    chars = CharTokenizer.train(GPT_TEXT + " it was very tired\n")
    gpt = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16, init_std=0.3))
    bert = Bert(BertConfig(vocab_size=len(VOCAB), block_size=32, n_layer=2, n_head=2, n_embd=16, n_inner=32,
                           init_std=0.3))
    bpe = BPETokenizer.train("the cat sat on the mat, the cat sat on the hat </script> " * 4, vocab_size=270)
    hf_gpt2 = GPT(GPTConfig(vocab_size=bpe.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16, init_std=0.3))
    save_pretrained(hf_gpt2, root / "hf-gpt2")
    bpe.save(root / "hf-gpt2")  # vocab.json + merges.txt, as a Hugging Face GPT-2 folder has them
    llama = Llama(LlamaConfig(vocab_size=chars.vocab_size, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                              init_std=0.3))
    return {"gpt": save_base(root / "gpt", gpt, chars), "bert": save_base(root / "bert", bert, tiny_wordpiece()),
            "hf-gpt2": root / "hf-gpt2", "llama": save_base(root / "llama", llama, chars),
            "gguf": write_byte_level_gguf(root / "tiny.gguf")}


def write_byte_level_gguf(path):
    """A tiny Llama in GGUF (llama.cpp's one file) with a byte-level BPE in its metadata, as SmolLM2's is. The
    q and k rows are stored in minilm's order, not llama.cpp's: the page is compared with what load_gguf gives."""
    tokens = [*BYTE_TO_UNICODE.values(), "th", "the"]
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokens), block_size=32, n_layer=2, n_head=4, n_kv_head=1, n_embd=16,
                         init_std=0.3, tie_word_embeddings=True)
    return write_llama_gguf(path, config, tokens, [1] * len(tokens), ["t h", "th e"])


def write_page(out, ckpt, *flags) -> dict:
    """Run the command in-process; the data embedded in the page it wrote."""
    assert run_command(main, ["attention", "--ckpt", str(ckpt), "-o", str(out), *flags]) == 0
    return page_data(out.read_text(encoding="utf-8"))


def page_data(html: str) -> dict:
    return json.loads(DATA_ELEMENT.search(html).group(1))


@pytest.fixture(scope="module")
def pages(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    return {
        "gpt": (out / "gpt.html", write_page(out / "gpt.html", folders["gpt"], "--text", GPT_TEXT)),
        "bert": (out / "bert.html", write_page(out / "bert.html", folders["bert"], "--text", BERT_TEXT,
                                               "--text-b", BERT_TEXT_B)),
        "hf-gpt2": (out / "hf.html", write_page(out / "hf.html", folders["hf-gpt2"], "--text", "the cat sat")),
        "llama": (out / "llama.html", write_page(out / "llama.html", folders["llama"], "--text", GPT_TEXT)),
        "gguf": (out / "gguf.html", write_page(out / "gguf.html", folders["gguf"], "--text", "the theme")),
    }


# ---- the numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gpt", "bert", "hf-gpt2", "llama", "gguf"])
def test_embedded_weights_equal_attention_maps(kind, folders, pages):
    _, data = pages[kind]
    backbone = load_gguf(folders[kind]) if kind == "gguf" else open_model(str(folders[kind]))[0]
    ids = torch.tensor([data["token_ids"]])
    if data["segments"] is None:
        maps = backbone.attention_maps(ids)
    else:
        maps = backbone.attention_maps(ids, attention_mask=None, token_type_ids=torch.tensor([data["segments"]]))
    embedded = torch.tensor(data["attention"], dtype=torch.float64)  # (n_layer, n_head, T, T)
    expected = torch.stack([m[0] for m in maps]).double()
    assert embedded.shape == expected.shape
    assert torch.allclose(embedded, expected, atol=0.5e-4 + 1e-7, rtol=0)  # 4 decimals


def test_gpt_page_holds_zeros_above_the_diagonal(pages):
    _, data = pages["gpt"]
    weights = torch.tensor(data["attention"])
    above = torch.ones(weights.shape[-2:], dtype=torch.bool).triu(diagonal=1)
    assert data["causal"] and (weights[..., above] == 0).all() and (weights[..., ~above] > 0).all()


@pytest.mark.parametrize("kind", ["llama", "gguf"])
def test_a_llama_page_is_causal_and_each_row_sums_to_one(kind, pages):
    _, data = pages[kind]
    weights = torch.tensor(data["attention"], dtype=torch.float64)  # (n_layer, n_head, T, T)
    above = torch.ones(weights.shape[-2:], dtype=torch.bool).triu(diagonal=1)
    assert data["causal"] and (weights[..., above] == 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=torch.float64),
                          atol=weights.size(-1) * 0.5e-4)  # each weight rounded to 4 decimals


def test_bert_pair_page_marks_specials_and_segments(pages):
    _, data = pages["bert"]
    assert data["tokens"] == ["[CLS]", "the", "film", "was", "good", "[SEP]", "john", "lives", "in", "paris", "[SEP]"]
    assert data["segments"] == [0] * 6 + [1] * 5
    assert [i for i, special in enumerate(data["special"]) if special] == [0, 5, 10]
    assert not data["causal"]


@pytest.mark.parametrize("kind, n_kv_head, group", [("llama", 2, 2), ("gguf", 1, 4)])
def test_a_llama_page_says_which_query_heads_share_keys(kind, n_kv_head, group, pages):
    _, data = pages[kind]
    assert data["model"]["class"] == "Llama" and data["model"]["n_head"] == 4
    assert (f"the 4 query heads share {n_kv_head} key/value heads, so heads 0-{group - 1} look with the same keys"
            in " ".join(data["notes"]))


def test_a_gguf_file_is_read_with_its_own_tokenizer(pages):
    _, data = pages["gguf"]
    assert data["tokens"] == ["the", " ", "the", "m", "e"]  # the file's two merges make "the", nothing else


@pytest.mark.slow
def test_smollm2_by_its_alias(tmp_path):
    data = write_page(tmp_path / "smollm2.html", "smollm2", "--text", "The capital of France is Paris.")
    assert data["model"] == {"kind": "gpt", "class": "Llama", "source": "smollm2", "n_layer": 30, "n_head": 9,
                             "block_size": 8192}
    assert "".join(data["tokens"]) == "The capital of France is Paris."
    assert "the 9 query heads share 3 key/value heads" in data["notes"][0]


def test_bpe_tokens_are_shown_as_the_text_of_each_id(pages):
    _, data = pages["hf-gpt2"]
    assert "".join(data["tokens"]) == "the cat sat" and len(data["tokens"]) == len(data["token_ids"])


def test_a_closing_script_tag_in_the_text_cannot_end_the_data_early(folders, tmp_path):
    data = write_page(tmp_path / "page.html", folders["hf-gpt2"], "--text", "the </script> hat")
    assert "".join(data["tokens"]) == "the </script> hat"


def test_text_longer_than_the_context_is_cut_and_said_so(folders, tmp_path, capsys):
    data = write_page(tmp_path / "page.html", folders["gpt"], "--text", GPT_TEXT * 2)  # 46 chars, block_size 16
    assert len(data["tokens"]) == 16 and data["truncated"]
    assert "longer than the model's context of 16" in capsys.readouterr().err
    assert "longer than the model's context of 16" in data["notes"][0]


def test_layer_and_head_flags_pick_the_first_view(folders, tmp_path):
    data = write_page(tmp_path / "page.html", folders["bert"], "--text", BERT_TEXT, "--layer", "1", "--head", "all")
    assert data["first_view"] == {"layer": 1, "head": None}


# ---- bad input: error: <message>, exit 2, no traceback ---------------------------------------------

BAD_INPUTS = {  # name -> (flags after --ckpt's folder, a piece of the message)
    "empty text": (["--text", "  "], "--text is empty"),
    "empty text-b": (["--text", BERT_TEXT, "--text-b", ""], "--text-b is empty"),
    "layer out of range": (["--text", BERT_TEXT, "--layer", "2"], "--layer 2: this model has 2 layers"),
    "negative layer": (["--text", BERT_TEXT, "--layer", "-1"], "--layer -1"),
    "head out of range": (["--text", BERT_TEXT, "--head", "5"], "--head 5: this model has 2 heads"),
    "head not a number": (["--text", BERT_TEXT, "--head", "first"], "not a head number"),
    "unknown flag": (["--text", BERT_TEXT, "--colour", "red"], "unrecognized arguments: --colour"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_bad_flags_are_refused(case, folders, tmp_path, capsys):
    flags, message = BAD_INPUTS[case]
    assert run_command(main, ["attention", "--ckpt", str(folders["bert"]), "-o", str(tmp_path / "p.html"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not (tmp_path / "p.html").exists()


def test_text_b_for_a_gpt_is_refused(folders, tmp_path, capsys):
    argv = ["attention", "--ckpt", str(folders["gpt"]), "--text", "the cat", "--text-b", "sat", "-o", str(tmp_path / "p.html")]
    assert run_command(main, argv) == 2
    assert "--text-b is for a BERT's sentence pair; a GPT reads one text" in capsys.readouterr().err


def test_text_the_tokenizer_cannot_encode_is_refused(folders, tmp_path, capsys):
    argv = ["attention", "--ckpt", str(folders["gpt"]), "--text", "the zebra", "-o", str(tmp_path / "p.html")]
    assert run_command(main, argv) == 2  # z is not in the character vocabulary
    assert "cannot encode the text" in capsys.readouterr().err


def test_a_folder_in_the_way_of_the_page_is_refused(folders, tmp_path, capsys):
    argv = ["attention", "--ckpt", str(folders["gpt"]), "--text", "the cat", "-o", str(tmp_path)]
    assert run_command(main, argv) == 2
    assert f"-o {tmp_path} is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("config_json, message", [(None, "not a model folder (no config.json)"),
                                                   ("{not json", "config.json")],
                         ids=["no checkpoint", "unreadable checkpoint"])
def test_a_bad_checkpoint_is_refused_as_a_process(config_json, message, tmp_path):
    (tmp_path / "ckpt").mkdir()
    if config_json is not None:
        (tmp_path / "ckpt" / "config.json").write_text(config_json)
    result = subprocess.run([sys.executable, "-m", "minilm.viz", "attention", "--ckpt", str(tmp_path / "ckpt"), "--text",
                             "hi", "-o", str(tmp_path / "p.html")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr and "Traceback" not in result.stderr


# ---- in a real browser -----------------------------------------------------------------------------

def render_in_chromium(page, profile) -> dict:
    """What the page's own #selftest probe found, after headless Chromium ran its JavaScript.

    The simplest robust way: no DevTools protocol, no websocket. `--dump-dom` prints the DOM once the page
    has loaded, and the page's script, when the URL ends in #selftest, has by then switched layer and head
    through its own selectors (dispatching `change` as a click would), compared what was drawn before
    and after, counted the token elements, hovered a token, measured the view, and written all of it, with
    every error window.onerror and console.error saw, as JSON into <pre id="selftest">.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed, and the page must be checked in a real browser: "
                    "apt-get install -y chromium")
    result = subprocess.run([chromium, "--headless=new", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
                             f"--user-data-dir={profile}", "--window-size=1200,800", "--dump-dom",
                             page.resolve().as_uri() + "#selftest"], capture_output=True, text=True, timeout=120)
    found, errors = SELFTEST_ELEMENT.search(result.stdout), PAGE_ERRORS_ELEMENT.search(result.stdout)
    assert found and found.group(1), (f"the page's self-test wrote nothing; the page's errors: "
                                      f"{errors and errors.group(1)}; chromium said:\n{result.stderr[-2000:]}")
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def rendered(pages, tmp_path_factory):
    return {kind: render_in_chromium(pages[kind][0], tmp_path_factory.mktemp("chromium-profile"))
            for kind in ("gpt", "bert")}


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_browser_shows_one_token_element_per_token(kind, rendered, pages):
    assert rendered[kind]["token_elements"] == rendered[kind]["n_tokens"] == len(pages[kind][1]["tokens"])


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_browser_switching_the_layer_changes_what_is_drawn(kind, rendered):
    assert rendered[kind]["layer_switch_changes_drawing"] is True


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_browser_switching_the_head_changes_what_is_drawn(kind, rendered):
    assert rendered[kind]["head_switch_changes_drawing"] is True


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_browser_reports_no_javascript_errors(kind, rendered):
    assert rendered[kind]["errors"] == []


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_browser_page_is_not_blank(kind, rendered):
    result = rendered[kind]
    width, height = result["view_size"]
    assert result["drawn_lines"] > 0 and result["drawn_cells"] > 0 and width > 200 and height > 100


def test_browser_all_heads_draws_one_card_per_head(rendered):
    assert rendered["bert"]["head_cards"] == 2  # the tiny BERT's n_head


def test_browser_hovering_a_token_highlights_its_lines(rendered):
    assert rendered["bert"]["lines_highlighted_on_hover"] > 0


def test_browser_gpt_heatmap_leaves_the_upper_triangle_empty(rendered):
    n = rendered["gpt"]["n_tokens"]
    assert rendered["gpt"]["drawn_cells"] == n * (n + 1) // 2 and "Causal" in rendered["gpt"]["caption"]
