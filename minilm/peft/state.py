"""What a PEFT run saves: only the tensors it trained (plus AdaLoRA's rank masks), a small file
that is applied on top of the unchanged base model.

    base = GPT.from_pretrained(...); apply_peft(base, cfg, head_names)
    load_peft_state_dict(base, state)        # state: what peft_state_dict returned after training
"""

import torch
import torch.nn as nn

PEFT_BUFFERS = ("rank_mask",)  # buffers that training changes and the forward reads (AdaLoRA's kept ranks)


def peft_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """{name: tensor} for every trainable parameter and PEFT buffer. The tensors share memory with
    the model (clone them to keep a snapshot); a tied matrix appears once, under its first name."""
    state = {name: param.detach() for name, param in model.named_parameters() if param.requires_grad}
    for name, buffer in model.named_buffers():
        if name.rsplit(".", 1)[-1] in PEFT_BUFFERS:
            state[name] = buffer.detach()
    return state


@torch.no_grad()
def load_peft_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a peft_state_dict into a model prepared with apply_peft and the same PeftConfig."""
    expected = peft_state_dict(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"PEFT state does not fit this model (missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}); call apply_peft with the PeftConfig and head names of the "
                         "run that saved it, before loading")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"{name}: saved shape {tuple(tensor.shape)}, model expects "
                             f"{tuple(expected[name].shape)}; was the PeftConfig (ranks, sizes) the same?")
        expected[name].copy_(tensor)
