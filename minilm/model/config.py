"""Model configurations: one dataclass per model, with named presets and validation.

GPT and BERT are the same Transformer with different choices, so both configs share the fields of
`TransformerConfig` (sizes, dropout, LayerNorm epsilon, GELU flavour, attention implementation) and
add only what is theirs. `GPTConfig.preset("gpt2")` gives a named preset; keyword arguments
override any field: `GPTConfig.preset("small", n_layer=6)`.
"""

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

ATTN_IMPLS = ("manual", "sdpa")
GELU_APPROXIMATIONS = ("tanh", "none")  # torch's names: "tanh" for GPT-2, "none" (exact erf) for BERT


@dataclass
class TransformerConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # the longest sequence: how many learned position embeddings there are
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768  # the width of the residual stream, C in the shape comments
    n_inner: int | None = None  # the MLP's hidden width; None means 4 * n_embd
    dropout: float = 0.0  # on embeddings and on each sub-layer's output
    attn_dropout: float = 0.0  # on the attention probabilities
    layer_norm_eps: float = 1e-5
    gelu_approximate: str = "tanh"
    attn_impl: str = "manual"  # "manual": written out, what a reader steps through; "sdpa": fused kernel
    init_std: float = 0.02
    bias: bool = True  # False: no bias in any Linear or LayerNorm (nanoGPT's default; GPT-2 and BERT have them)

    PRESETS: ClassVar[dict[str, dict]] = {}

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            _require_positive_int(self, name)
        if self.n_inner is not None:
            _require_positive_int(self, "n_inner")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head gets "
                f"n_embd / n_head dimensions. Try n_head={_divisors_hint(self.n_embd)}."
            )
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")
        _require_choice(self, "attn_impl", ATTN_IMPLS)
        _require_choice(self, "gelu_approximate", GELU_APPROXIMATIONS)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def max_length(self) -> int:
        """The longest sequence: one learned position embedding per position."""
        return self.block_size

    @property
    def mlp_width(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def preset(cls, name: str, **overrides):
        """Build a named preset, with any field overridden by keyword."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown {cls.__name__} preset {name!r}; valid presets: {', '.join(cls.PRESETS)}")
        return cls.from_dict({**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a plain dict (e.g. a checkpoint's config.json); unknown keys are an error."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(valid)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GPTConfig(TransformerConfig):
    """GPT-2: pre-LN blocks, causal attention, tanh GELU, LayerNorm eps 1e-5."""

    PRESETS: ClassVar[dict[str, dict]] = {
        # CPU-sized, character-level: trains in a few minutes on 2 cores (vocab_size is set from the data).
        "small": dict(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        "gpt2": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
        "gpt2-medium": dict(vocab_size=50257, block_size=1024, n_layer=24, n_head=16, n_embd=1024),
    }


@dataclass
class LlamaConfig(TransformerConfig):
    """Llama (and SmolLM, Qwen2, Mistral: the same decoder): GPT-2 with four parts swapped (llama.py).

    No position embeddings: rotary angles of base rope_theta turn q and k by position. n_kv_head < n_head
    shares each key/value head among n_head / n_kv_head query heads (grouped-query attention). RMSNorm
    uses layer_norm_eps as its epsilon; nothing has a bias. block_size is the context length."""

    n_kv_head: int | None = None  # None: n_kv_head = n_head (no sharing)
    rope_theta: float = 10000.0  # the base of the rotation frequencies: theta^(-2i / head_dim)
    tie_word_embeddings: bool = False  # the LM head reuses the token embedding (SmolLM2 does; Llama 2 does not)
    bias: bool = False

    PRESETS: ClassVar[dict[str, dict]] = {
        # GPT's `small` with Llama's parts; n_inner gives the same parameter count as GPT small (docs/llama.md).
        "small": dict(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_kv_head=2, n_embd=128, n_inner=384,
                      tie_word_embeddings=True),
        # The shape of SmolLM2-135M.
        "smollm2-135m": dict(vocab_size=49152, block_size=8192, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
                             n_inner=1536, rope_theta=100000.0, tie_word_embeddings=True),
    }

    def __post_init__(self):
        super().__post_init__()
        if self.n_kv_head is not None:
            _require_positive_int(self, "n_kv_head")
            if self.n_head % self.n_kv_head != 0:
                raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head}): each "
                                 f"key/value head serves the same number of query heads. Try n_kv_head="
                                 f"{_divisors_hint(self.n_head)}.")
        if not self.rope_theta > 1:  # also refuses nan
            raise ValueError(f"rope_theta must be a number > 1, got {self.rope_theta}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim (n_embd / n_head = {self.head_dim}) must be even: rotary embeddings turn "
                             "pairs of dimensions")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head if self.n_kv_head is not None else self.n_head

    @property
    def mlp_width(self) -> int:
        """SwiGLU has three matrices where GPT-2's MLP has two: 8/3 * C keeps its parameters at 4 * C's."""
        return self.n_inner if self.n_inner is not None else 8 * self.n_embd // 3


@dataclass
class BertConfig(TransformerConfig):
    """BERT: post-LN blocks, bidirectional attention, exact (erf) GELU, LayerNorm eps 1e-12.

    DistilBERT is the same model with two parts left out: type_vocab_size=0 (no segment embeddings)
    and pooler=False (no tanh layer on [CLS]). minilm/hf/ reads and writes such a Bert as a Hugging
    Face DistilBertModel."""

    vocab_size: int = 30522
    block_size: int = 512
    type_vocab_size: int = 2  # segment A / segment B; 0: no segment embeddings (DistilBERT)
    pooler: bool = True  # the tanh layer on [CLS] that next-sentence prediction reads; DistilBERT has none
    pad_token_id: int = 0
    # BERT's successors, each one idea (docs/successors.md):
    embedding_size: int | None = None  # E: ALBERT / ELECTRA word vectors of E, projected to n_embd; None: E = n_embd
    share_layers: bool = False  # ALBERT: one Block's weights used at every layer
    positions_after_padding: bool = False  # RoBERTa: position ids count real tokens and start after pad_token_id
    dropout: float = 0.1
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    gelu_approximate: str = "none"

    PRESETS: ClassVar[dict[str, dict]] = {
        # CPU-sized: most learning per CPU second (vocab_size is set by the trained WordPiece vocabulary).
        "small": dict(vocab_size=4096, block_size=128, n_layer=2, n_head=4, n_embd=128, n_inner=512),
        "bert-base": dict(vocab_size=30522, block_size=512, n_layer=12, n_head=12, n_embd=768),
        # The shape of the real all-MiniLM-L6-v2 checkpoint.
        "minilm-l6": dict(vocab_size=30522, block_size=512, n_layer=6, n_head=12, n_embd=384, n_inner=1536),
    }

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.type_vocab_size, bool) or not isinstance(self.type_vocab_size, int) \
                or self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be 0 (no segment embeddings) or a positive integer, "
                             f"got {self.type_vocab_size!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be a valid id below vocab_size ({self.vocab_size})")
        if self.embedding_size is not None:
            _require_positive_int(self, "embedding_size")
        if self.share_layers and self.embedding_size is not None and self.embedding_size > self.n_embd:
            raise ValueError(f"embedding_size ({self.embedding_size}) is above n_embd ({self.n_embd}): ALBERT factorises "
                             "the V x H embedding into V x E + E x H to save parameters, which needs E <= H; "
                             f"try embedding_size={max(1, self.n_embd // 2)}")
        if self.max_length < 1:
            raise ValueError(f"block_size {self.block_size} leaves no position for a token: with "
                             f"positions_after_padding the first position id is pad_token_id + 1 = {self.pad_token_id + 1}")

    @property
    def word_size(self) -> int:
        """The width of the word vectors: E with factorised embeddings, else the model's width."""
        return self.embedding_size if self.embedding_size is not None else self.n_embd

    @property
    def max_length(self) -> int:
        """The longest sequence: RoBERTa's position ids start at pad_token_id + 1, which uses up as many rows."""
        return self.block_size - (self.pad_token_id + 1 if self.positions_after_padding else 0)


@dataclass
class ElectraConfig(BertConfig):
    """ELECTRA: a BERT-shaped discriminator (these fields) and a narrower masked-LM generator (generator_*)
    that shares its embeddings. The generator fills masked positions with samples; the discriminator
    labels every token original or replaced (minilm/model/electra.py)."""

    pooler: bool = False  # ELECTRA reads every token, never a pooled [CLS]
    generator_n_embd: int = 64  # the paper's best generators are 1/4 to 1/2 of the discriminator's width
    generator_n_head: int = 1
    generator_n_inner: int | None = None  # None: 4 * generator_n_embd
    generator_n_layer: int | None = None  # None: as many layers as the discriminator
    rtd_weight: float = 50.0  # λ in loss = mlm + λ · rtd: the per-token detection loss is ~50x smaller
    # The paper's "tie all weights": the generator is the discriminator's own Bert under a masked-LM head, so
    # the MLM loss trains the blocks too (generator_n_embd, _n_head, _n_inner, _n_layer are then unused).
    tie_generator: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.tie_generator:
            return  # one Bert for both: nothing of the generator's own to check
        if self.generator_n_embd > self.n_embd:
            raise ValueError(f"generator_n_embd ({self.generator_n_embd}) is wider than the discriminator's n_embd "
                             f"({self.n_embd}): a generator as strong as its discriminator makes the replacements too "
                             f"hard to spot (the paper uses 1/4 to 1/2); try generator_n_embd={max(1, self.n_embd // 4)}")
        if self.rtd_weight < 0:
            raise ValueError(f"rtd_weight must be >= 0, got {self.rtd_weight}")
        self.generator_config()  # the generator's own checks (its width divisible by its heads, ...)

    def generator_config(self) -> BertConfig:
        """The generator: the same vocabulary, positions and options, narrower, reading the shared E-wide embeddings
        (with tie_generator, the discriminator's own shape)."""
        if self.tie_generator:
            return BertConfig(**{f.name: getattr(self, f.name) for f in fields(BertConfig)} | {"pooler": False})
        shared = {f.name: getattr(self, f.name) for f in fields(BertConfig)
                  if f.name not in ("n_embd", "n_head", "n_inner", "n_layer", "embedding_size", "pooler",
                                    "share_layers")}
        E, width = self.word_size, self.generator_n_embd
        return BertConfig(**shared, n_embd=width, n_head=self.generator_n_head, n_inner=self.generator_n_inner,
                          n_layer=self.generator_n_layer or self.n_layer, pooler=False,
                          embedding_size=E if E != width else None)


def _require_positive_int(config, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _require_choice(config, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _divisors_hint(n: int) -> str:
    return "/".join(str(d) for d in range(1, min(n, 64) + 1) if n % d == 0)
