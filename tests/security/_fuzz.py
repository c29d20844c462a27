"""Seeds and mutators for the bounded fuzz tests (tests/security/test_fuzz_inputs.py, benchmarks/fuzz_bench.py).

Each mutator starts from a valid input and breaks it the ways a file gets broken or forged: cut short,
bytes flipped, a grammar token swapped for another, a value replaced by a value of another type or by
something huge, deep or hostile (markup, control characters, YAML anchors).
"""

from __future__ import annotations

import io
import math
import zipfile
from typing import Any

from hypothesis import strategies as st

from protos import agent_pb2

__all__ = ["SEEDS", "TOKENS", "mutate_text", "mutate_bytes", "mutate_json", "mutate_zip_member", "json_values", "jobs"]

_OFA_YAML = """\
Conv-input:224x224x3-output:112x112x16:
  count: 500
  mean: 0.994418
  std: 0.01726798413249215
expanded_conv-input:112x112x16-output:56x56x24-expand:64-kernel:3-stride:2-idskip:0-se:0-hs:0:
  count: 100
  mean: 0.52
  std: 0.01
  median: 0.51
  p10: 0.5
  p90: 0.55
Logits-input:1x1x1280-output:1000:
  count: 50
  mean: 0.2
  std: 0.001
"""

_NSGANETV2_YAML = """\
first_conv-input:100x100x3-output:50x50x16:
  mean: 0.31
  var: 0.0001
MBConv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0-se:0:
  mean: 0.4878215789794922
  var: 3.5368975659366697e-07
final_expand_layer-input:3x3x160-output:3x3x960:
  mean: 0.02
  var: 0.0
feature_mix_layer-input:1x1x960-output:1x1x1280:
  mean: 0.05
  var: 0.0
classifier-input:1280-output:1000:
  mean: 0.1
  var: 0.0
"""

_CSV = """\
block_key,median_ms,mean_ms,std_ms,p10_ms,p90_ms,n,source,extra
Conv-input:224x224x3-output:112x112x16,0.99,1.0,0.02,0.97,1.03,500,measured,{}
expanded_conv-input:112x112x16-output:56x56x24-expand:64-kernel:3-stride:2-idskip:0-se:0-hs:0,0.51,0.52,0.01,0.5,0.55,100,measured,"{""note"": ""x""}"
Logits-input:1x1x1280-output:1000,0.2,0.2,0.001,0.19,0.21,50,measured,{}
"""

SEEDS: dict[str, str] = {"ofa-yaml": _OFA_YAML, "nsganetv2-yaml": _NSGANETV2_YAML, "csv": _CSV}

_HOSTILE = [
    "[/x]", "[link=file:///etc/passwd]x[/link]", "\x1b]0;pwn\x07", "\x1b[2J", "\u202e", "\x00", "nan", "inf", "-1e309",
    "1e308", "&a [*a, *a, *a]", "*a", "!!python/object/apply:os.system ['true']", "=HYPERLINK(\"x\")", "@SUM(1)",
    "'", '"', "\\", "{", "}", "[", "]", ":", "- ", "\t", "\r", "x" * 5000, "9" * 400,
]
_GRAMMAR = ["-input:", "-output:", "-expand:", "-kernel:", "-stride:", "-idskip:", "-se:", "-hs:", "x", ":", "\n", "  "]
TOKENS: dict[str, list[str]] = {
    "ofa-yaml": [*_GRAMMAR, "count:", "mean:", "std:", "median:", "p10:", "p90:", *_HOSTILE],
    "nsganetv2-yaml": [*_GRAMMAR, "mean:", "var:", "MBConv", "first_conv", "classifier", *_HOSTILE],
    "csv": [",", '"', "\n", "block_key", "median_ms", "n", "source", "extra", *_HOSTILE],
}


def mutate_text(seed: str, data: st.DataObject, tokens: list[str]) -> str:
    """``seed`` with one to four edits: a cut, a deletion, or a token inserted or swapped in."""
    text = seed
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        kind = data.draw(st.sampled_from(["cut", "delete", "insert", "replace", "unicode"]))
        i = data.draw(st.integers(0, len(text)))
        if kind == "cut":
            text = text[:i]
        elif kind == "delete":
            text = text[:i] + text[i + data.draw(st.integers(1, 20)):]
        elif kind == "unicode":
            text = text[:i] + data.draw(st.text(max_size=8)) + text[i:]
        else:
            token = data.draw(st.sampled_from(tokens))
            j = i + (data.draw(st.integers(0, 12)) if kind == "replace" else 0)
            text = text[:i] + token + text[j:]
    return text


def mutate_bytes(blob: bytes, data: st.DataObject) -> bytes:
    """``blob`` truncated, with bytes flipped, or with random bytes spliced in."""
    kind = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate":
        return blob[: data.draw(st.integers(0, max(0, len(blob) - 1)))]
    buf = bytearray(blob)
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 16))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= data.draw(st.integers(1, 255))
        return bytes(buf)
    i = data.draw(st.integers(0, len(buf)))
    return bytes(buf[:i]) + data.draw(st.binary(max_size=64)) + bytes(buf[i:])


def mutate_zip_member(archive: bytes, member: str, data: st.DataObject) -> bytes:
    """``archive`` rewritten as a valid zip with ``member``'s bytes mutated (checks past the zip layer)."""
    src = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == member:
                payload = mutate_bytes(payload, data) if data.draw(st.booleans()) else mutate_text(
                    payload.decode("utf-8", "replace"), data, _HOSTILE + ['"target"', '"aten.from_file"', "{", "[", ","]
                ).encode("utf-8", "surrogatepass")
            dst.writestr(info.filename, payload)
    return out.getvalue()


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary JSON documents, odd scalars and hostile strings included."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20), st.sampled_from(_HOSTILE),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)),
        max_leaves=max_leaves,
    )


def mutate_json(doc: Any, data: st.DataObject) -> Any:
    """``doc`` (a JSON value) with one to three values replaced, removed or nested deep."""
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        doc = _edit(doc, data, depth=0)
    return doc


def _edit(node: Any, data: st.DataObject, depth: int) -> Any:
    descend = isinstance(node, (dict, list)) and len(node) > 0 and depth < 8 and data.draw(st.integers(0, 3)) > 0
    if descend:  # into a copy: one entry removed or edited
        if isinstance(node, dict):
            slot = data.draw(st.sampled_from(sorted(node, key=str)))
            node = dict(node)
        else:
            slot = data.draw(st.integers(0, len(node) - 1))
            node = list(node)
        if data.draw(st.integers(0, 5)) == 0:
            del node[slot]
        else:
            node[slot] = _edit(node[slot], data, depth + 1)
        return node
    choice = data.draw(st.integers(0, 3))
    if choice == 0:  # a value of another kind
        return data.draw(json_values(max_leaves=6))
    if choice == 1:  # deep nesting
        n = data.draw(st.sampled_from([50, 900, 5000]))
        deep: Any = node
        for _ in range(n):
            deep = [deep]
        return deep
    if choice == 2 and isinstance(node, (int, float)) and not isinstance(node, bool):  # an extreme number
        return data.draw(st.sampled_from([0, -1, 2**63, -(2**63), 1e308, -0.0, 10**30, math.pi]))
    return data.draw(st.sampled_from(_HOSTILE))


_plans = st.fixed_dictionaries(
    {},
    optional={
        "warmup_count": st.integers(-(2**31), 2**31 - 1),
        "warmup_s": st.floats(),
        "min_reps": st.integers(-(2**31), 2**31 - 1),
        "min_s": st.floats(),
        "max_reps": st.integers(-(2**31), 2**31 - 1),
        "max_s": st.floats(),
        "target_rel_ci": st.floats(),
        "cooldown_s": st.floats(),
    },
)


@st.composite
def jobs(draw: Any) -> agent_pb2.BenchmarkJob:
    """Benchmark jobs with arbitrary fields (the model itself is not the point here)."""
    names = st.one_of(st.sampled_from(["onnxruntime", "tflite", "torch", "benchmark_model", ""]), st.text(max_size=40))
    job = agent_pb2.BenchmarkJob(
        job_id=draw(st.text(max_size=400)),
        model_blob=b"x",
        runtime=draw(names),
        format=draw(st.one_of(st.sampled_from(["", "onnx", "tflite", "pt2", "torchscript"]), st.text(max_size=40))),
        threads=draw(st.integers(-(2**31), 2**31 - 1)),
        timeout_s=draw(st.floats()),
        return_samples=draw(st.booleans()),
    )
    for key, value in draw(st.dictionaries(st.text(max_size=140), st.text(max_size=300), max_size=4)).items():
        job.options[key] = value
    for name, shape, dtype in draw(st.lists(
        st.tuples(st.text(max_size=300), st.lists(st.integers(-(2**62), 2**62), max_size=12),
                  st.one_of(st.sampled_from(["", "float32", "int64", "uint8"]), st.text(max_size=40))),
        max_size=20,
    )):
        job.inputs.add(name=name, shape=shape, dtype=dtype)
    for field, value in draw(_plans).items():
        setattr(job.plan, field, value)
    return job
