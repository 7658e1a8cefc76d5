"""Every zipp_core::Error kind arrives as its own exception class, raised by real bad
input (no kind is faked), with kind, message, location / path and the right second base."""

import errno
import gzip
import json
import os
import pickle
import shutil
import struct

import pytest

import zipp_persona as zipp
from zipp_persona import _errors

KINDS = {
    "io": (zipp.IoError, OSError),
    "parse": (zipp.ParseError, ValueError),
    "schema": (zipp.SchemaError, ValueError),
    "invalid_input": (zipp.InvalidInputError, ValueError),
    "model_not_found": (zipp.ModelNotFoundError, FileNotFoundError),
    "model_invalid": (zipp.ModelInvalidError, ValueError),
    "tokenizer": (zipp.TokenizerError, ValueError),
    "compute": (zipp.ComputeError, RuntimeError),
    "internal": (zipp.InternalError, RuntimeError),
    "remote": (zipp.RemoteError, RuntimeError),
    "cancelled": (zipp.CancelledError, RuntimeError),
}


def test_one_class_per_kind_with_a_builtin_second_base():
    for kind, (cls, builtin) in KINDS.items():
        assert cls.kind == kind
        assert issubclass(cls, zipp.ZippError) and issubclass(cls, builtin)
    assert len({cls for cls, _ in KINDS.values()}) == len(KINDS)
    assert sorted(KINDS) == sorted(name for name, _, _ in zipp._zipp._error_kinds()), "a core kind is untested"


def check(exc, kind):
    """The attributes every zipp exception carries, and that it survives pickling
    (multiprocessing sends worker exceptions back pickled)."""
    assert exc.kind == kind and type(exc) is KINDS[kind][0]
    assert exc.message and exc.message in str(exc)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert (str(back), back.message, back.location, back.path, back.hint) == (
        str(exc), exc.message, exc.location, exc.path, exc.hint)


def test_parse_error_is_located():
    with pytest.raises(zipp.ParseError) as e:
        zipp.Persona.from_json('{"id": "ana",\n "summary": ')
    check(e.value, "parse")
    assert e.value.location == zipp.Location(file=None, line=2, column=12, field="summary")
    assert "malformed JSON" in str(e.value)
    with pytest.raises(zipp.ParseError):
        zipp.Persona.from_json('{"id": "ana"} trailing')


def test_schema_errors_name_file_line_and_field(tmp_path, personas):
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Persona.from_json('{"id": "ana", "sumary": "typo"}')
    check(e.value, "schema")
    assert "sumary" in e.value.message and e.value.location.line == 1
    path = tmp_path / "p.jsonl"
    bad = personas[0].to_dict()
    bad["memory"][3]["caption"] = ""
    path.write_text(personas[1].to_json() + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(zipp.SchemaError) as e:
        zipp.read_jsonl(path)
    check(e.value, "schema")
    assert e.value.location == zipp.Location(file=str(path), line=2, column=None, field="memory[3].caption")
    assert e.value.message == "caption must not be empty"
    assert str(e.value) == f"{path}, line 2, field `memory[3].caption`: caption must not be empty"
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Persona.from_json('{"schema_version": 7, "id": "ana", "new_field": 1}')
    assert e.value.location.field == "schema_version" and "unsupported schema version 7" in e.value.message


def test_invalid_input(models, personas):
    with pytest.raises(zipp.InvalidInputError) as e:
        zipp.Identity().personalize(personas[0], "   ")
    check(e.value, "invalid_input")
    assert e.value.location is None and e.value.path is None
    with pytest.raises(zipp.InvalidInputError):
        zipp.Vprag(models, temperature=0.0)
    with pytest.raises(zipp.InvalidInputError):
        zipp.Vprag(models, temperature=float("nan"))
    with pytest.raises(zipp.InvalidInputError):
        zipp.Brag(models, k=0)
    with pytest.raises(zipp.InvalidInputError):
        zipp.PersonaOnly(models).personalize(personas[0], "a cat", token_budget=2)


def test_io_error_is_an_oserror_with_errno_and_filename(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(zipp.IoError) as e:
        zipp.Persona.load(missing)
    check(e.value, "io")
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOENT
    assert e.value.path == e.value.filename == str(missing)
    assert str(e.value).startswith(str(missing))
    with pytest.raises(OSError):
        zipp.iter_jsonl(missing)
    with pytest.raises(zipp.IoError) as e:
        zipp.write_jsonl(tmp_path, [])  # a directory
    assert e.value.path == str(tmp_path)


def test_model_not_found_in_an_empty_folder(tmp_path):
    models = zipp.Models(tmp_path)
    assert models.root == tmp_path
    with pytest.raises(zipp.ModelNotFoundError) as e:
        models.load_all()
    check(e.value, "model_not_found")
    assert isinstance(e.value, FileNotFoundError)
    assert e.value.path.startswith(str(tmp_path))
    assert f"ZIPP_MODELS_DIR={tmp_path}" in e.value.hint
    with pytest.raises(FileNotFoundError):
        models.embed(["a cat"])
    assert models.loaded == {"clip_bpe": False, "minilm": False, "smollm2": False}
    # Identity needs no model at all.
    assert zipp.Personalizer.from_spec(models, "identity").name == "identity"


def minilm_copy(src, dst, *, weights=None, tokenizer=None):
    """A MiniLM folder in `dst` with the real files, or the given replacements."""
    os.makedirs(dst / "all-MiniLM-L6-v2")
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        shutil.copyfile(src / "all-MiniLM-L6-v2" / name, dst / "all-MiniLM-L6-v2" / name)
    if weights is not None:
        (dst / "all-MiniLM-L6-v2" / "model.safetensors").write_bytes(weights)
    if tokenizer is not None:
        (dst / "all-MiniLM-L6-v2" / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return dst


def test_model_invalid_for_truncated_weights_and_corrupt_clip_vocabulary(tmp_path, model_files):
    weights = (model_files / "all-MiniLM-L6-v2" / "model.safetensors").read_bytes()
    root = minilm_copy(model_files, tmp_path / "m", weights=weights[: len(weights) // 3])
    with pytest.raises(zipp.ModelInvalidError) as e:
        zipp.Models(root).embed(["a cat"])
    check(e.value, "model_invalid")
    assert e.value.path == str(root / "all-MiniLM-L6-v2" / "model.safetensors")
    assert "re-provision" in e.value.hint

    os.makedirs(root / "clip-bpe")
    (root / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz").write_bytes(gzip.compress(b"#version: 0.2\na b\n"))
    with pytest.raises(zipp.ModelInvalidError) as e:
        zipp.Models(root).count_tokens("a cat")
    check(e.value, "model_invalid")
    assert e.value.path.endswith("bpe_simple_vocab_16e6.txt.gz")


def test_tokenizer_error_from_a_tokenizer_without_special_tokens(tmp_path, model_files):
    # A tokenizer.json without its post-processor adds no [CLS]/[SEP], so an empty text
    # has no tokens at all: MiniLM reports that instead of averaging over nothing.
    tok = json.loads((model_files / "all-MiniLM-L6-v2" / "tokenizer.json").read_text(encoding="utf-8"))
    tok["post_processor"] = None
    models = zipp.Models(minilm_copy(model_files, tmp_path / "m", tokenizer=tok))
    assert models.embed(["a cat"]).shape == (1, 384)
    with pytest.raises(zipp.TokenizerError) as e:
        models.embed(["a cat", ""])
    check(e.value, "tokenizer")
    assert "text 1 produced no tokens" in e.value.message


def test_compute_error_from_weights_that_produce_nan(tmp_path, model_files):
    # Valid safetensors whose embedding LayerNorm scale is NaN: the forward pass runs and
    # yields NaN, which MiniLM reports as a compute failure.
    data = bytearray((model_files / "all-MiniLM-L6-v2" / "model.safetensors").read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    start, end = header["embeddings.LayerNorm.weight"]["data_offsets"]
    base = 8 + n
    data[base + start : base + end] = struct.pack("<f", float("nan")) * ((end - start) // 4)
    models = zipp.Models(minilm_copy(model_files, tmp_path / "m", weights=bytes(data)))
    with pytest.raises(zipp.ComputeError) as e:
        models.embed(["a cat"])
    check(e.value, "compute")
    assert "non-finite" in e.value.message


def test_a_kind_newer_than_the_python_classes_is_still_a_zipp_error():
    # zipp_core::Error is non-exhaustive; the native module passes unknown kinds through.
    err = _errors._from_core("future_kind", 99, "text", "text", None, None, None, None)
    assert isinstance(err, zipp.ZippError) and err.kind == "future_kind" and err.code == 99
    assert type(err).__name__ == "FutureKindError"
    again = _errors._from_core("future_kind", 99, "text", "text", None, None, None, None)
    assert type(again) is type(err), "one class per kind"


def test_every_core_kind_has_its_declared_class_with_its_code():
    # The classes are derived from zipp-core's ErrorKind: same names, same codes (= the C
    # statuses), named after the kind.
    kinds = zipp._zipp._error_kinds()
    assert [name for name, _, _ in kinds][:3] == ["io", "parse", "schema"]
    for name, code, description in kinds:
        cls = getattr(zipp, _errors._class_name(name))
        assert issubclass(cls, zipp.ZippError) and cls.kind == name and cls.code == code, name
        assert description


def test_bad_argument_types_are_type_errors(models, personas):
    with pytest.raises(TypeError):
        models.embed("a single string is not a list of texts")
    with pytest.raises(TypeError):
        zipp.Identity().personalize(personas[0].to_dict(), "a cat")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zipp.Identity().personalize(personas[0], 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zipp.Personalizer.from_spec(models, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zipp.Models(root=3)  # type: ignore[arg-type]
