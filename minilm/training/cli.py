"""A command line generated from config dataclasses: `--config NAME` picks a preset, `--field value`
overrides any field of any of the dataclasses.

    configs = parse_args(PRESETS, {"model": GPTConfig, "train": TrainConfig}, argv)
    configs["model"].n_layer, configs["train"].lr

PRESETS maps a preset name to {group: {field: value}}. Every flag is a field name, so the flags are
exactly the config fields, and `--help` lists them with their defaults for the chosen preset.
"""

import argparse
import dataclasses
import difflib
import sys
import types
import typing

from common.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)  # `--batch 8` is a typo, not --batch_size

    def error(self, message):
        # A ConfigError, which the command's run_command prints as `error: <message>` with exit status 2
        # (argparse would print the whole usage first, and exit from inside the library).
        raise ConfigError(message)


def parse_args(presets: dict[str, dict[str, dict]], groups: dict[str, type], argv=None,
               default_preset: str | None = None, description: str = "", extra_flags: dict | None = None,
               preset_flag: str = "config", derived_defaults=None, prog: str | None = None):
    """Returns {group name: dataclass instance} plus, under "extra", the values of extra_flags, under
    "preset" the preset's name and under "given" the names of the flags given on the command line.

    extra_flags: {name: (type, default, help)} for script options that are not config fields.
    preset_flag: the flag that picks a preset (finetune.py calls its presets recipes: --recipe).
    derived_defaults(values, preset, given) -> {field: default}: defaults that depend on other flags (the
    learning rate per fine-tuning method); worked out before --help is printed, so --help shows what runs.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    first = _Parser(add_help=False, prog=prog)
    if presets:
        first.add_argument(f"--{preset_flag}", dest="preset", default=default_preset, choices=list(presets))
    known, _ = first.parse_known_args(argv)
    known.preset = getattr(known, "preset", None)
    preset = presets.get(known.preset, {}) if known.preset else {}
    defaults = {group: _defaults(cls, preset.get(group, {})) for group, cls in groups.items()}
    if derived_defaults is not None:
        draft, _ = _build_parser(groups, defaults, presets, default_preset, preset_flag, extra_flags,
                                 description, prog, add_help=False).parse_known_args(argv)
        for name, value in derived_defaults(vars(draft), known.preset, given_flags(argv)).items():
            group = next(g for g, cls in groups.items() if name in {f.name for f in dataclasses.fields(cls)})
            defaults[group][name] = value
    parser = _build_parser(groups, defaults, presets, default_preset, preset_flag, extra_flags, description, prog)

    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(_unknown_flag_message(unknown, [preset_flag if a.dest == "preset" else a.dest
                                                     for a in parser._actions]))
    values = vars(args)
    result = {}
    for group, cls in groups.items():
        chosen = {f.name: values[f.name] for f in dataclasses.fields(cls)}
        try:
            result[group] = cls(**chosen)
        except ValueError as err:  # the config's own validation, e.g. n_embd not divisible by n_head
            raise ConfigError(f"invalid {group} config: {err}") from None
    result["extra"] = {name: values[name] for name in (extra_flags or {})}
    result["preset"] = known.preset
    result["given"] = given_flags(argv)
    return result


def _build_parser(groups, defaults, presets, default_preset, preset_flag, extra_flags, description, prog,
                  add_help: bool = True) -> argparse.ArgumentParser:
    parser = _Parser(description=description, prog=prog, add_help=add_help)
    if presets:
        name = "preset" if preset_flag == "config" else preset_flag
        parser.add_argument(f"--{preset_flag}", dest="preset", default=default_preset, choices=list(presets),
                            help=f"named {name} (default {default_preset})")
    owner = {}  # flag name -> group
    for group, cls in groups.items():
        arg_group = parser.add_argument_group(f"{group} ({cls.__name__})")
        for field in dataclasses.fields(cls):
            if field.name in owner:
                raise ValueError(f"field {field.name!r} is in both {owner[field.name]} and {group}")
            owner[field.name] = group
            _add_field(arg_group, field, defaults[group][field.name])
    for name, (kind, default, help_text) in (extra_flags or {}).items():
        parser.add_argument(f"--{name}", type=_converter(kind, name), default=default,
                            help=f"{help_text} (default {default})", **_bool_nargs(kind))
    return parser


def given_flags(argv=None) -> set[str]:
    """The names of the flags given on the command line (`--lr 1e-3` and `--lr=1e-3` both give "lr")."""
    argv = sys.argv[1:] if argv is None else argv
    return {arg[2:].split("=")[0] for arg in argv if arg.startswith("--")}


def _defaults(cls, preset_values: dict) -> dict:
    """The dataclass defaults, with a preset's values on top (unknown preset fields are a bug)."""
    names = {f.name for f in dataclasses.fields(cls)}
    bad = set(preset_values) - names
    if bad:
        raise ValueError(f"preset sets unknown {cls.__name__} fields {sorted(bad)}")
    defaults = {f.name: _default_of(f) for f in dataclasses.fields(cls)}
    return {**defaults, **preset_values}


def _default_of(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return REQUIRED


def _add_field(group, field: dataclasses.Field, default) -> None:
    """--name for a field; a field with metadata nargs is positional (e.g. the texts of predict), a field
    without a default is a required flag."""
    kind = field.type
    choices = field.metadata.get("choices")
    help_text = field.metadata.get("help", "")
    if "nargs" in field.metadata:
        base, _ = _unwrap_optional(typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind)
        group.add_argument(field.name, nargs=field.metadata["nargs"], type=_converter(base, field.name, choices),
                           help=help_text, metavar=field.name)
        return
    if typing.get_origin(kind) is list:  # a flag given once per value: --ckpt a --ckpt b -> ["a", "b"]
        item = typing.get_args(kind)[0]
        required = default is REQUIRED  # otherwise the values given are added to the default list
        group.add_argument(f"--{field.name}", action="append", type=_converter(item, field.name, choices),
                           required=required, default=None if required else list(default),
                           help=f"{help_text} ({'required' if required else f'default {default}'}; repeat the "
                                "flag for several)", metavar=_metavar(item, choices))
        return
    if default is REQUIRED:
        group.add_argument(f"--{field.name}", type=_converter(kind, field.name, choices), required=True,
                           help=f"{help_text} (required)".strip(), metavar=_metavar(kind, choices))
        return
    said = "default" in help_text  # the help already says what happens without the flag, e.g. "(default lr / 10)"
    group.add_argument(f"--{field.name}", type=_converter(kind, field.name, choices), default=default,
                       help=help_text if said else f"{help_text} (default {default})".strip(),
                       metavar=_metavar(kind, choices), **_bool_nargs(kind))


REQUIRED = object()  # the default of a field that has none: its flag must be given


def _bool_nargs(kind) -> dict:
    # `--compile` alone means true; `--compile false` also works.
    return dict(nargs="?", const=True) if kind is bool else {}


def _metavar(kind, choices):
    if choices:
        return "{" + ",".join(map(str, choices)) + "}"
    base, _ = _unwrap_optional(kind)
    return getattr(base, "__name__", str(base)).upper()


def _unwrap_optional(kind):
    """`int | None` -> (int, True); `int` -> (int, False)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        members = [k for k in typing.get_args(kind) if k is not type(None)]
        return members[0], True
    return kind, False


def _converter(kind, name: str, choices=None):
    base, optional = _unwrap_optional(kind)

    def convert(text: str):
        if optional and text.lower() == "none":
            return None
        try:
            value = _parse_bool(text) if base is bool else base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} expects {base.__name__}, got {text!r}") from None
        if choices and value not in choices:
            raise argparse.ArgumentTypeError(f"--{name} must be one of {', '.join(map(str, choices))}; "
                                             f"got {text!r}")
        return value

    convert.__name__ = base.__name__
    return convert


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _unknown_flag_message(unknown: list[str], valid: list[str]) -> str:
    flag = next((u for u in unknown if u.startswith("--")), unknown[0])
    name = flag.lstrip("-").split("=")[0]
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join('--' + c for c in close)}?" if close else ""
    return (f"unknown flag {flag}.{hint} Valid flags: "
            f"{', '.join('--' + v for v in sorted(v for v in valid if v != 'help'))}")
