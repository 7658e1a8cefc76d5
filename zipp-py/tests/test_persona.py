"""Personas: construction, read-only views, edits that return new validated personas, and
JSON / dict / file / JSONL round trips."""

import copy
import json
import pickle

import pytest

import zipp_persona as zipp


def test_example_file_loads_and_matches_its_json(personas, persona_dicts):
    assert [p.id for p in personas] == [d["id"] for d in persona_dicts]
    for p, d in zip(personas, persona_dicts):
        # Every field survives the Rust round trip exactly (to_dict leaves out empty parts).
        assert p.to_dict() == d
        assert p.schema_version == d["schema_version"] == 1
        assert p.summary == d.get("summary", "")
        assert p.demographics == d.get("demographics", {})
        assert p.interests == d.get("interests", [])
        assert p.traits == d.get("traits", [])
        assert p.examples == d.get("examples", [])
        assert p.preferences == {
            "liked": d.get("preferences", {}).get("liked", []),
            "disliked": d.get("preferences", {}).get("disliked", []),
        }
        assert p.memory == [
            {"id": post.get("id"), "caption": post["caption"], "elements": post.get("elements", {})}
            for post in d["memory"]
        ]
        assert p.categories() == sorted({c for post in d["memory"] for c in post.get("elements", {})})
        assert p.summary.strip() in p.persona_text()


def test_json_and_dict_round_trips(personas):
    for p in personas:
        assert zipp.Persona.from_json(p.to_json()) == p
        assert zipp.Persona.from_json(p.to_json(pretty=True)) == p
        assert "\n" in p.to_json(pretty=True) and "\n" not in p.to_json()
        assert zipp.Persona.from_dict(p.to_dict()) == p
        assert pickle.loads(pickle.dumps(p)) == p
        assert hash(zipp.Persona.from_dict(p.to_dict())) == hash(p)
    assert len({p for p in personas} | {zipp.Persona.from_json(p.to_json()) for p in personas}) == len(personas)


def test_constructor_takes_the_json_fields():
    p = zipp.Persona(
        "ana",
        summary="Street photographer in Lisbon.",
        demographics={"country": "Portugal"},
        interests=["trams"],
        preferences={"liked": ["warm dusk light"], "disliked": ["flash"]},
        memory=[{"id": "p1", "caption": "Tram 28 at dusk", "elements": {"lighting": ["dusk glow"]}}],
        examples=["a yellow tram climbing a hill at dusk"],
    )
    assert p.id == "ana" and p.demographics == {"country": "Portugal"}
    assert p.memory == [{"id": "p1", "caption": "Tram 28 at dusk", "elements": {"lighting": ["dusk glow"]}}]
    assert zipp.Persona("bo").to_dict() == {"schema_version": 1, "id": "bo"}
    assert repr(p).startswith("Persona(id='ana', posts=1, summary='Street photographer in Lisbon.')")


def test_personas_are_immutable(personas):
    p = personas[0]
    with pytest.raises(AttributeError):
        p.summary = "changed"  # type: ignore[misc]
    views = p.memory
    views[0]["caption"] = "changed"
    p.interests.append("changed")
    assert p.memory[0]["caption"] != "changed" and "changed" not in p.interests


def test_replace_returns_a_new_validated_persona(personas):
    p = personas[0]
    before = p.to_dict()
    q = p.replace(summary="Someone else.", interests=["kites"])
    assert (q.summary, q.interests, q.id) == ("Someone else.", ["kites"], p.id)
    assert p.to_dict() == before  # the original is untouched
    assert q != p
    assert p.replace() == p
    # None removes a field (back to its default).
    assert p.replace(summary=None).summary == ""
    with pytest.raises(zipp.SchemaError) as e:
        p.replace(sumary="typo")
    assert "sumary" in str(e.value)
    with pytest.raises(zipp.SchemaError) as e:
        p.replace(memory=[{"caption": "ok"}, {"caption": "  "}])
    assert e.value.location.field == "memory[1].caption"
    # The JSON text behind a dict is internal: no line/column that would point into it.
    assert (e.value.location.line, e.value.location.column) == (None, None)
    with pytest.raises(zipp.SchemaError) as e:
        p.replace(id=None)
    assert "id" in str(e.value)


def test_add_post_returns_a_new_validated_persona(personas):
    p = personas[1]
    q = p.add_post("A new caption", {"lighting": ["neon"], "mood": ["calm"]}, id="new-1")
    assert len(q.memory) == len(p.memory) + 1
    assert q.memory[-1] == {"id": "new-1", "caption": "A new caption", "elements": {"lighting": ["neon"], "mood": ["calm"]}}
    assert q.memory[:-1] == p.memory
    assert p.add_post("bare").memory[-1] == {"id": None, "caption": "bare", "elements": {}}
    n = len(p.memory)
    with pytest.raises(zipp.SchemaError) as e:
        p.add_post("   ")
    assert e.value.location.field == f"memory[{n}].caption"
    with pytest.raises(zipp.SchemaError) as e:
        q.add_post("again", id="new-1")
    assert "duplicate post id" in e.value.message and e.value.location.field == f"memory[{n + 1}].id"
    with pytest.raises(zipp.SchemaError) as e:
        p.add_post("x", {"lighting": [""]})
    assert e.value.location.field == f"memory[{n}].elements.lighting[0]"
    with pytest.raises(TypeError):
        p.add_post("x", {"lighting": "neon"})  # type: ignore[dict-item]


def test_save_and_load(tmp_path, personas):
    path = tmp_path / "one.json"
    personas[2].save(path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and json.loads(text) == personas[2].to_dict()
    assert zipp.Persona.load(path) == personas[2]
    assert zipp.Persona.load(str(path)) == personas[2]


def test_jsonl_write_read_and_stream(tmp_path, personas):
    path = tmp_path / "all.jsonl"
    zipp.write_jsonl(path, personas)
    assert zipp.read_jsonl(path) == personas
    assert list(zipp.iter_jsonl(path)) == personas
    assert path.read_text(encoding="utf-8").splitlines() == [p.to_json() for p in personas]
    zipp.write_jsonl(path, iter(personas[:2]))  # any iterable
    assert zipp.read_jsonl(path) == personas[:2]


def test_iter_jsonl_streams_up_to_a_bad_line(tmp_path, personas):
    path = tmp_path / "bad.jsonl"
    lines = [personas[0].to_json(), "", personas[1].to_json(), '{"id": "x", "memory": [{"caption": ""}]}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reader = zipp.iter_jsonl(path)
    assert iter(reader) is reader
    assert next(reader) == personas[0]
    assert next(reader) == personas[1]  # the blank line is skipped
    with pytest.raises(zipp.SchemaError) as e:
        next(reader)
    loc = e.value.location
    assert (loc.file, loc.line, loc.field) == (str(path), 4, "memory[0].caption")
    with pytest.raises(StopIteration):
        next(reader)  # a failed stream is not resumed
    with pytest.raises(zipp.SchemaError):
        zipp.read_jsonl(path)


def test_write_jsonl_rejects_duplicates_and_non_personas(tmp_path, personas):
    with pytest.raises(zipp.SchemaError) as e:
        zipp.write_jsonl(tmp_path / "dup.jsonl", [personas[0], personas[1], personas[0]])
    assert (e.value.location.line, e.value.location.field) == (3, "id")
    with pytest.raises(TypeError):
        zipp.write_jsonl(tmp_path / "x.jsonl", [personas[0].to_dict()])


def test_from_dict_rejects_what_json_cannot_hold(personas):
    with pytest.raises(TypeError):
        zipp.Persona.from_dict([("id", "x")])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zipp.Persona.from_dict({"id": "x", "interests": {"a set"}})
    d = copy.deepcopy(personas[0].to_dict())
    d["memory"][2]["elements"]["lighting"] = "not a list"
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Persona.from_dict(d)
    assert e.value.location.field == "memory[2].elements.lighting"


def test_equality_only_with_personas(personas):
    assert personas[0] != personas[0].to_dict()
    assert personas[0] != "adaeze"
    assert personas[0] == zipp.Persona.from_dict(personas[0].to_dict())
