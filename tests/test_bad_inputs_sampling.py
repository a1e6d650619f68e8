"""Numbers that break sampling: a temperature or top_p too small for float32 means greedy (one rule, in
minilm/model/sampling.py, for sample.py and the service alike), nan and inf are refused where they enter, and
weights that hold nan or inf are refused when they are loaded (common/finite.py), naming the file."""

import pytest
import torch
from safetensors.torch import load_file, save_file

import sample
from common.errors import CheckpointError, run_command
from finetune_fixtures import save_gpt_base, tiny_bert
from minilm import from_pretrained, save_pretrained
from minilm.model.sampling import GREEDY_BELOW, sample_next_token, sampling_problem
from minilm.serve.__main__ import main as serve_main
from minilm.serve.models import load_served_model
from serve_fixtures import serving

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [1e-200, 5e-324, 1e-45, GREEDY_BELOW / 2]  # 0 in float32, the smallest double, a subnormal, just below


def logits_of(dtype=torch.float32):
    return (torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 30).to(dtype)  # (B, vocab)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("temperature", TINY)
def test_a_temperature_too_small_for_float32_is_greedy(temperature, dtype):
    logits = logits_of(dtype)
    picked = sample_next_token(logits, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(-1, keepdim=True))


@pytest.mark.parametrize("top_p", TINY)
def test_a_top_p_too_small_for_float32_is_greedy_at_any_temperature(top_p):
    logits = logits_of()
    picked = sample_next_token(logits, temperature=2.0, top_p=top_p, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(-1, keepdim=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_smallest_temperature_that_samples_gives_no_nan(dtype):
    logits = logits_of(dtype)  # GREEDY_BELOW itself is sampled: divided, exponentiated, drawn from
    picked = sample_next_token(logits, temperature=GREEDY_BELOW, top_p=GREEDY_BELOW * 2, top_k=5,
                               generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(-1, keepdim=True))


@pytest.mark.parametrize("settings, named", [
    (dict(temperature=float("nan")), "temperature"), (dict(temperature=float("inf")), "temperature"),
    (dict(temperature=1.0, top_p=float("nan")), "top_p"), (dict(temperature=1.0, top_p=float("inf")), "top_p"),
    (dict(temperature=-1e-300), "temperature"),
])
def test_nan_inf_and_negative_settings_are_refused_naming_the_setting(settings, named):
    assert sampling_problem(**settings).startswith(named)
    with pytest.raises(ValueError, match=named):
        sample_next_token(logits_of(), **settings)


# ------------------------------------------------------------------------------ where the values enter

@pytest.fixture(scope="module")
def gpt_folder(tmp_path_factory):
    return save_gpt_base(tmp_path_factory.mktemp("sampling") / "gpt")


def sample_text(folder, *flags) -> str:
    return sample.main(["--ckpt", str(folder), "--device", "cpu", "--prompt", "the", "--num_samples", "1",
                        "--max_new_tokens", "12", "--seed", "3", *flags])[0]


@pytest.mark.parametrize("flags", [["--temperature", "1e-200"], ["--top_p", "1e-200"],
                                   ["--temperature", "5e-324", "--top_p", "5e-324"]])
def test_sample_py_reads_a_vanishing_setting_as_greedy(gpt_folder, flags, capsys):
    assert sample_text(gpt_folder, *flags) == sample_text(gpt_folder, "--temperature", "0")


@pytest.mark.parametrize("flag, value", [("--temperature", "inf"), ("--temperature", "nan"), ("--top_p", "nan")])
def test_sample_py_refuses_nan_and_inf_with_an_error_line(gpt_folder, flag, value, capsys):
    assert run_command(sample.main, ["--ckpt", str(gpt_folder), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and flag in err


@pytest.mark.parametrize("settings", [{"temperature": 5e-324}, {"temperature": 1e-200},
                                      {"temperature": 1.0, "top_p": 5e-324}])
def test_the_service_reads_a_vanishing_setting_as_greedy(gpt_folder, settings):
    with serving({"gpt": load_served_model("gpt", str(gpt_folder))}) as client:
        ask = lambda extra: client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 12, **extra})
        answer = ask(settings)
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"] == ask({"temperature": 0}).json()["text"]


# ------------------------------------------------------------------------------ weights with nan or inf

def poison(path, value=float("nan")) -> str:
    """Write value into one matrix of a safetensors file; returns the tensor's name."""
    tensors = load_file(path)
    name = next(n for n, t in tensors.items() if t.dim() == 2)
    tensors[name][0, 0] = value
    save_file(tensors, path)
    return name


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_minilm_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(tmp_path, value, capsys):
    folder = save_gpt_base(tmp_path / "gpt")
    name = poison(folder / "model.safetensors", value)
    assert run_command(sample.main, ["--ckpt", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nan or inf" in err and name in err and "model.safetensors" in err


@pytest.mark.parametrize("file", ["model.safetensors", "pytorch_model.bin"])
def test_a_hugging_face_folder_with_nan_weights_is_refused_at_load(tmp_path, file):
    folder = tmp_path / "hf"
    save_pretrained(tiny_bert(), folder)
    poison(folder / "model.safetensors")
    if file == "pytorch_model.bin":
        torch.save(load_file(folder / "model.safetensors"), folder / file)
        (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=rf"{file}: 1 tensor\(s\) hold nan or inf"):
        from_pretrained(folder)


def test_serve_refuses_a_model_with_nan_weights_before_opening_the_port(tmp_path, capsys):
    folder = save_gpt_base(tmp_path / "gpt")
    poison(folder / "model.safetensors")
    assert run_command(serve_main, ["--ckpt", str(folder), "--port", "0"]) == 2
    assert "nan or inf" in capsys.readouterr().err
