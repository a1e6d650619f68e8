"""The shape trace (minilm/trace/): one forward pass, each named step in the order the code runs, with its
shape and the line of minilm/model/ that produced it; and the model left exactly as it was."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.errors import run_command
from finetune_fixtures import VOCAB, save_base, save_gpt_base, tiny_bert
from minilm import GPT, Bert, BertConfig, BertForPreTraining, GPTConfig, Llama, LlamaConfig, save_pretrained
from minilm.trace.__main__ import main
from minilm.trace.recorder import ShapeTrace
from tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")

# The line that makes each kind of step contains this text (the torch function's spelling in the code).
OP_TEXT = {"add": "+", "transpose": "transpose", "div": "/", "softmax": "softmax", "matmul": "@",
           "reshape": "reshape", "tanh": "tanh", "cross_entropy": "cross_entropy", "mul": "*", "cos": "cos",
           "sin": "sin", "rsqrt": "rsqrt", "cat": "cat", "repeat_interleave": "repeat_interleave", "silu": "silu"}
BLOCK_ORDER = ["q (q_proj)", "q by head", "k (k_proj)", "v (v_proj)", "scores q·kᵀ/√head_dim", "probs (softmax)",
               "probs @ v", "heads side by side", "attention out (out_proj)", "x + attention", "MLP in (fc_in)",
               "GELU", "MLP out (fc_out)", "x + MLP", "block output"]


def tiny_gpt(attn_impl: str = "manual") -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16, attn_impl=attn_impl)).eval()


def tiny_llama() -> Llama:
    torch.manual_seed(0)
    return Llama(LlamaConfig(vocab_size=20, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                             n_inner=24)).eval()


def tiny_pretraining_bert() -> BertForPreTraining:
    torch.manual_seed(0)
    return BertForPreTraining(BertConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16,
                                         n_inner=24)).eval()


IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])  # (B, T) = (1, 8)
LABELS = torch.tensor([[-100, -100, -100, 7, -100, -100, -100, -100]])  # one masked position


def trace(model, **forward_kwargs) -> ShapeTrace:
    with torch.no_grad(), ShapeTrace(model) as recorded:
        model(IDS, **forward_kwargs)
    return recorded


@pytest.fixture(scope="module")
def gpt_trace():
    return trace(tiny_gpt(), targets=IDS)


@pytest.fixture(scope="module")
def llama_trace():
    return trace(tiny_llama(), targets=IDS)


@pytest.fixture(scope="module")
def bert_trace():
    return trace(tiny_pretraining_bert(), mlm_labels=LABELS)


def names(recorded: ShapeTrace, layer=None) -> list[str]:
    return [step.name for step in recorded.steps if layer is None or step.layer == layer]


def expected_shape(dims: str, config) -> tuple[int, ...]:
    B, T = IDS.shape
    n_kv_head = getattr(config, "kv_heads", config.n_head)
    sizes = {"B": B, "T": T, "T_k": T, "N": 1, "C": config.n_embd, "n_head": config.n_head,
             "head_dim": config.head_dim, "mlp_width": config.mlp_width, "vocab_size": config.vocab_size,
             "n_kv_head": n_kv_head, "C_kv": n_kv_head * config.head_dim, "head_dim/2": config.head_dim // 2}
    return tuple(int(d) if d.isdigit() else sizes[d] for d in dims.split(", ")) if dims else ()


# ------------------------------------------------------------------------------------- the recording

def test_gpt_steps_come_in_the_order_the_code_runs(gpt_trace):
    order = names(gpt_trace)
    assert order[:3] == ["token embedding", "position embedding", "token + position"]
    assert order[-3:] == ["final LayerNorm (ln_f)", "logits (lm_head)", "loss (next token)"]
    assert [s.layer for s in gpt_trace.steps if s.layer is not None] == sorted(s.layer for s in gpt_trace.steps
                                                                              if s.layer is not None)
    in_block = names(gpt_trace, layer=1)
    assert in_block[0] == "ln_attn (LayerNorm)"  # pre-LN: normalise, then attend
    assert [name for name in in_block if name in BLOCK_ORDER] == BLOCK_ORDER


def test_bert_post_ln_normalises_after_each_residual_sum(bert_trace):
    in_block = names(bert_trace, layer=0)
    assert in_block.index("x + attention") + 1 == in_block.index("ln_attn (LayerNorm)")
    assert in_block.index("x + MLP") + 1 == in_block.index("ln_mlp (LayerNorm)")
    assert names(bert_trace)[-1] == "loss (masked LM)"


def test_recorded_shapes_are_right_for_a_tiny_gpt(gpt_trace):
    config = tiny_gpt().config
    for step in gpt_trace.steps:
        assert step.shape == expected_shape(step.dims, config), step.name
    shapes = {step.name: step.shape for step in gpt_trace.steps}
    assert shapes["q (q_proj)"] == (1, 8, 16)  # (B, T, C): the Linear's output
    assert shapes["q by head"] == (1, 2, 8, 8)  # (B, n_head, T, head_dim)
    assert shapes["scores q·kᵀ/√head_dim"] == (1, 2, 8, 8)  # (B, n_head, T, T_k)


def test_recorded_shapes_are_right_for_a_tiny_bert(bert_trace):
    config = tiny_pretraining_bert().config
    for step in bert_trace.steps:
        assert step.shape == expected_shape(step.dims, config), step.name
    shapes = {step.name: step.shape for step in bert_trace.steps}
    assert shapes["MLP in (fc_in)"] == (1, 8, 24)  # (B, T, n_inner)
    assert shapes["MLM logits (decoder)"] == (1, 30)  # (N masked positions, vocab_size)


LLAMA_BLOCK_ORDER = ["1 / rms(x) (rsqrt)", "ln_attn (RMSNorm)", "q (q_proj)", "q by head", "k (k_proj)", "k by head",
                     "v (v_proj)", "v by head", "rotate_half(q)", "q turned (RoPE)", "rotate_half(k)",
                     "k turned (RoPE)", "k shared by its query heads", "v shared by its query heads",
                     "scores q·kᵀ/√head_dim", "probs (softmax)", "probs @ v", "heads side by side",
                     "attention out (out_proj)", "x + attention", "1 / rms(x) (rsqrt)", "ln_mlp (RMSNorm)",
                     "gate (gate_proj)", "silu(gate)", "up (up_proj)", "silu(gate) * up", "MLP out (down_proj)",
                     "x + MLP", "block output"]


def test_llama_steps_name_the_rotary_angles_rmsnorm_gqa_and_swiglu_in_the_order_the_code_runs(llama_trace):
    order = names(llama_trace)
    assert order[:4] == ["token embedding", "rotary angles position·θ_i", "rotary cos", "rotary sin"]
    assert order[-4:] == ["1 / rms(x) (rsqrt)", "final RMSNorm (ln_f)", "logits (lm_head)", "loss (next token)"]
    assert names(llama_trace, layer=0) == LLAMA_BLOCK_ORDER and names(llama_trace, layer=1) == LLAMA_BLOCK_ORDER


def test_recorded_shapes_are_right_for_a_tiny_llama(llama_trace):
    config = tiny_llama().config
    for step in llama_trace.steps:
        assert step.shape == expected_shape(step.dims, config), step.name
    shapes = {step.name: step.shape for step in llama_trace.steps}
    assert shapes["k (k_proj)"] == (1, 8, 8)  # (B, T, n_kv_head · head_dim): half of q's 16
    assert shapes["k turned (RoPE)"] == (1, 2, 8, 4)  # (B, n_kv_head, T, head_dim)
    assert shapes["k shared by its query heads"] == (1, 4, 8, 4)  # (B, n_head, T, head_dim)


def test_the_llama_trace_records_what_rope_and_the_head_sharing_compute(llama_trace):
    from minilm.model.rope import apply_rotary
    block0 = {step.name: step.value for step in llama_trace.steps if step.layer == 0}
    rotary = {step.name: step.value for step in llama_trace.steps if step.name.startswith("rotary")}
    torch.testing.assert_close(block0["k turned (RoPE)"],
                               apply_rotary(block0["k by head"], rotary["rotary cos"], rotary["rotary sin"]))
    torch.testing.assert_close(block0["k shared by its query heads"],
                               block0["k turned (RoPE)"].repeat_interleave(2, dim=1))


@pytest.mark.parametrize("model", [tiny_gpt(), tiny_bert(), tiny_llama()], ids=["gpt", "bert", "llama"])
def test_recorded_probs_equal_attention_maps(model):
    recorded = trace(model)
    probs = [step.value for step in recorded.steps if step.name == "probs (softmax)"]
    maps = model.attention_maps(IDS)
    assert len(probs) == len(maps) == model.config.n_layer
    for recorded_probs, attention_map in zip(probs, maps):
        torch.testing.assert_close(recorded_probs, attention_map, rtol=0, atol=1e-6)


@pytest.mark.parametrize("which", ["gpt", "bert", "llama"])
def test_each_where_names_a_model_line_that_makes_the_step(which, gpt_trace, bert_trace, llama_trace):
    for step in {"gpt": gpt_trace, "bert": bert_trace, "llama": llama_trace}[which].steps:
        path, line = step.where.split(":")
        assert path.startswith("minilm/model/"), step
        text = (REPO / path).read_text().splitlines()[int(line) - 1]
        attribute = step.made_by.split(".")[-1]
        wanted = OP_TEXT.get(step.made_by) or ("block" if attribute.isdigit() else attribute)
        assert wanted in text, f"{step.name}: {step.where} is {text.strip()!r}, which does not mention {wanted!r}"


def test_after_the_trace_the_model_has_no_hooks_and_the_same_outputs():
    model = tiny_gpt(attn_impl="sdpa")
    with torch.no_grad():
        before, _ = model(IDS)
    recorded = trace(model)
    assert "sdpa" in " ".join(recorded.notes)  # the trace ran the written-out attention, and says so
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(block.attn.attn_impl == "sdpa" for block in model.blocks)
    assert not torch.overrides._is_torch_function_mode_enabled()
    with torch.no_grad():
        after, _ = model(IDS)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


# ------------------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("trace")
    save_gpt_base(root / "gpt")
    chars = CharTokenizer.train("the film was good.\n")
    torch.manual_seed(0)
    save_base(root / "llama", Llama(LlamaConfig(vocab_size=chars.vocab_size, block_size=32, n_layer=2, n_head=4,
                                                n_kv_head=2, n_embd=16)), chars)
    save_pretrained(tiny_bert(), root / "hf_bert")
    (root / "hf_bert" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (root / "empty").mkdir()
    return root


def run(argv, capsys) -> tuple[int, str, str]:
    status = run_command(main, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("argv", [["gpt", "--config", "small"], ["bert", "--config", "small"],
                                  ["llama", "--config", "small"]], ids=["gpt", "bert", "llama"])
def test_the_command_prints_a_table_for_a_fresh_preset(argv, capsys):
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert "probs (softmax)" in out and "minilm/model/attention.py:" in out and "loss (" in out
    assert "... blocks 1-" in out or "... block 1:" in out  # --layers 1: the rest shown by their outputs


@pytest.mark.parametrize("folder", ["gpt", "hf_bert"], ids=["minilm checkpoint", "hugging face folder"])
def test_the_command_prints_a_table_for_a_folder(folder, folders, capsys):
    status, out, _ = run([folders / folder, "--layers", "2"], capsys)
    assert status == 0
    assert "block 1\n" in out and out.count("probs (softmax)") == 2


def test_the_command_traces_a_llama_checkpoint_naming_rope_and_its_key_value_heads(folders, capsys):
    status, out, _ = run([folders / "llama", "--text", "the film"], capsys)
    assert status == 0
    assert out.startswith("Llama (pre-norm RMSNorm, causal, RoPE, SwiGLU): 2 blocks, 4 heads sharing 2 key/value heads")
    assert "n_kv_head=2" in out and "q turned (RoPE)" in out and "minilm/model/rope.py:" in out
    assert "silu(gate) * up" in out and "minilm/model/llama.py:" in out


@pytest.mark.slow
def test_the_command_traces_smollm2_from_its_gguf(capsys):
    status, out, _ = run(["smollm2", "--text", "What is 12 + 7?", "--layers", "0"], capsys)
    assert status == 0
    assert "30 blocks, 9 heads sharing 3 key/value heads, n_embd 576" in out
    assert "'1' '2'" in out  # SmolLM2's tokenizer: one digit a token
    assert "block 29 output" in out and ", 49152)" in out  # the logits: (B, T, vocab_size)


def test_a_text_longer_than_block_size_is_cut_and_the_trace_says_so(folders, capsys):
    status, out, _ = run([folders / "gpt", "--text", "the film was good. " * 5], capsys)  # 95 characters
    assert status == 0
    assert "longer than block_size 64: cut to its first 64" in out and "(1, 64, 32)" in out


def test_json_holds_every_step_of_every_block(folders, capsys):
    status, out, _ = run([folders / "gpt", "--json", "--layers", "0"], capsys)
    record = json.loads(out)
    assert status == 0
    assert {step["layer"] for step in record["steps"]} == {None, 0, 1}
    assert record["dims"]["T"] == len(record["tokens"])


@pytest.mark.parametrize("argv, message", [
    (["qwen3"], "qwen3: no such model or folder"),
    (["{root}/empty"], "not a model folder"),
    (["gpt", "--config", "huge"], "--config huge: not a GPTConfig preset"),
    (["{root}/gpt", "--config", "small"], "--config picks the preset of a fresh gpt, llama, bert"),
    (["gpt", "--text", ""], "--text is empty"),
    (["{root}/gpt", "--text", "Zebra"], "--text: character 'Z'"),
    (["gpt", "--layers", "5"], "--layers 5: this model has 4 blocks"),
    (["gpt", "--layers", "-1"], "--layers must be 0 or more"),
], ids=["unknown model", "folder without config", "unknown preset", "config with a folder", "empty text",
        "text outside the vocabulary", "layers above n_layer", "negative layers"])
def test_a_bad_input_is_one_error_line_with_status_2(argv, message, folders, capsys):
    status, out, err = run([arg.replace("{root}", str(folders)) for arg in argv], capsys)
    assert status == 2 and err.startswith("error: ") and message in err, err


def test_the_command_as_a_process_answers_a_bad_input_without_a_traceback():
    done = subprocess.run([sys.executable, "-m", "minilm.trace", "gpt", "--layers", "99"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def without_statistics(line: str) -> str:
    """A table row with its mean, std and max|x| left out (float sums differ in their last digits between
    CPUs); the step, shape, dims, dtype and the line of code stay."""
    return " ".join(re.sub(r"(\S+\s+){3}(?=minilm/\S+\.py:\d+$)", "", line).split())


def test_the_example_in_docs_trace_md_is_what_the_command_prints(capsys):
    page = (REPO / "docs" / "trace.md").read_text()
    command = re.search(r"`python -m minilm\.trace (gpt [^`]*)`:\n\n```\n(.*?)\n```", page, re.S)
    argv = shlex.split(command.group(1))
    assert run_command(main, argv) == 0
    printed = capsys.readouterr().out.rstrip("\n").splitlines()
    shown = command.group(2).splitlines()
    assert [without_statistics(line) for line in printed] == [without_statistics(line) for line in shown], (
        "docs/trace.md's example is out of date: run the command above it and paste its output")
