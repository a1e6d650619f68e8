"""What a worker computes: one forward pass for a batch of requests, or one generation, token by token.

    classify    SequenceClassifier logits -> softmax                   (B, num_labels)
    tag         TokenTagger logits at each word's position -> argmax    (B, T, num_labels)
    fill-mask   Bert hidden states at each [MASK] -> MLM head -> top-k  (N masks, vocab)
    embed       Bert hidden states -> mean over the real tokens          (B, C)
    generate    GPT.generate_tokens: one token per step, through the KV cache

A batch joins the texts of several requests: each request is encoded on its own (a bad one fails alone),
the good ones are padded into one (B, T) batch, and the outputs are split back per request.
"""

import time

import torch
import torch.nn.functional as F

from ..finetune.heads import hidden_states, mean_pool
from ..finetune.tagging_metrics import bio_entities, is_bio_tagset
from .encode import masked_inputs, pad_batch, prompt_inputs, text_inputs, word_inputs
from .limits import RequestError
from .models import ServedModel


# ------------------------------------------------------------------------------------ text -> inputs

def encode_request(served: ServedModel, endpoint: str, request, truncate: bool) -> list:
    """The Encoded inputs of one request: one per text (classify, embed) or one in all (tag, fill-mask)."""
    if endpoint == "classify":
        return [text_inputs(served, *(text if isinstance(text, list) else (text, None)), truncate, f"texts[{i}]")
                for i, text in enumerate(request.texts)]
    if endpoint == "embed":
        return [text_inputs(served, text, None, truncate, f"texts[{i}]") for i, text in enumerate(request.texts)]
    if endpoint == "tag":
        return [word_inputs(served, request.text, truncate)[0]]
    return [masked_inputs(served, request.text, truncate)]


# ------------------------------------------------------------------------------------ forward passes

@torch.inference_mode()
def forward(served: ServedModel, endpoint: str, batch: list) -> list:
    """One output per Encoded input of the batch (see the table above)."""
    input_ids, token_type_ids, attention_mask = pad_batch(batch, getattr(served.tokenizer, "pad_id", 0))
    if endpoint in ("classify", "tag"):
        logits, _ = served.model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if endpoint == "classify":
            return list(logits.softmax(dim=-1))  # B x (num_labels,)
        return [logits[row, item.positions].argmax(dim=-1) for row, item in enumerate(batch)]  # B x (words,)
    hidden, _ = hidden_states(served.core, input_ids, attention_mask, token_type_ids)  # (B, T, C)
    if endpoint == "embed":
        return list(mean_pool(hidden, attention_mask))  # B x (C,)
    mlm_logits = served.model.mlm_head(hidden[[row for row, item in enumerate(batch) for _ in item.positions],
                                              [p for item in batch for p in item.positions]])  # (N, vocab)
    probs, n = mlm_logits.softmax(dim=-1), 0
    outputs = []
    for item in batch:
        outputs.append(probs[n:n + len(item.positions)])  # (masks of this text, vocab)
        n += len(item.positions)
    return outputs


# ------------------------------------------------------------------------------------ outputs -> JSON

def respond(served: ServedModel, endpoint: str, request, encoded: list, outputs: list) -> dict:
    if endpoint == "classify":
        results = []
        for probs in outputs:
            best = int(probs.argmax())
            results.append({"label": served.labels[best], "score": float(probs[best]),
                            "probabilities": dict(zip(served.labels, probs.tolist()))})
        return {"model": served.name, "results": results}
    if endpoint == "embed":
        vectors = [F.normalize(v, dim=0) if request.normalize else v for v in outputs]
        return {"model": served.name, "dimensions": vectors[0].numel(), "embeddings": [v.tolist() for v in vectors]}
    if endpoint == "tag":
        return _tag_response(served, request, encoded[0], outputs[0])
    masks = []
    for probs in outputs[0]:  # one [MASK] at a time: its top_k fillers
        scores, ids = probs.topk(min(request.top_k, probs.numel()))
        masks.append([{"token": served.tokenizer.vocab[i], "score": float(s)} for s, i in zip(scores, ids.tolist())])
    return {"model": served.name, "masks": masks}


def _tag_response(served: ServedModel, request, encoded, tag_ids) -> dict:
    words = request.text.split()[:len(encoded.positions)]
    tags = [served.labels[i] for i in tag_ids.tolist()]
    entities = []
    if is_bio_tagset(served.labels):
        for kind, start, end in sorted(bio_entities(tags), key=lambda entity: entity[1]):
            entities.append({"type": kind, "start": start, "end": end, "text": " ".join(words[start:end + 1])})
    return {"model": served.name, "words": [{"word": w, "tag": t} for w, t in zip(words, tags)],
            "entities": entities, "truncated": encoded.truncated}


def run_encoder_jobs(served: ServedModel, endpoint: str, jobs: list, truncate_default: bool) -> None:
    """Encode each job's request, run one forward pass over all of them, and answer each job."""
    good, inputs = [], []
    for job in jobs:
        try:
            encoded = encode_request(served, endpoint, job.request, _truncate(job.request, truncate_default))
        except RequestError as err:
            job.fail(err)
            continue
        good.append((job, encoded))
        inputs += encoded
    if not good:
        return
    outputs = forward(served, endpoint, inputs)
    start = 0
    for job, encoded in good:
        job.finish(respond(served, endpoint, job.request, encoded, outputs[start:start + len(encoded)]))
        start += len(encoded)


def _truncate(request, default: bool) -> bool:
    return default if request.truncate is None else request.truncate


# ------------------------------------------------------------------------------------ generation

def run_generation(served: ServedModel, job, truncate_default: bool, count_token) -> None:
    """Sample request.max_new_tokens tokens; a stream gets each piece of text as soon as it decodes.
    Stops early, with finish_reason "timeout", "cancelled" or "shutdown", when the deadline passes, the client
    leaves or the server must stop."""
    request = job.request
    try:
        ids = prompt_inputs(served, request.prompt, _truncate(request, truncate_default))
    except RequestError as err:
        job.fail(err)
        return
    generator = torch.Generator()
    if request.seed is None:
        generator.seed()
    else:
        generator.manual_seed(request.seed)
    new_ids, sent, finish = [], "", "length"
    tokens = served.model.generate_tokens(torch.tensor([ids]), request.max_new_tokens, request.temperature,
                                          request.top_k, request.top_p, generator=generator)  # each (1, 1)
    for next_id in tokens:
        new_ids.append(int(next_id))
        count_token()
        if job.on_event is not None:
            sent = _stream_new_text(job, served.tokenizer.decode(new_ids), sent)
        if job.cancelled:
            finish = "cancelled"
            break
        if job.shutting_down:  # the server's --shutdown_timeout is nearly over: answer with what there is
            finish = "shutdown"
            break
        if time.monotonic() > job.deadline:
            finish = "timeout"
            break
    job.finish({"model": served.name, "text": served.tokenizer.decode(new_ids), "tokens": len(new_ids),
                "finish_reason": finish})


def _stream_new_text(job, text: str, sent: str) -> str:
    """Emit what text adds to what was sent. A byte-level BPE token can end inside a multi-byte
    character, which decodes to U+FFFD until the next token completes it: hold such text back (and any
    that does not extend what was sent; the "done" event carries the whole text in any case)."""
    if text.endswith("\ufffd") or not text.startswith(sent) or text == sent:
        return sent
    job.emit("token", {"text": text[len(sent):]})
    return text
