use super::*;

const GOOD: &str = r#"{"schema_version": 1, "id": "ana", "summary": "Lisbon street photographer",
  "demographics": {"country": "Portugal"}, "interests": ["trams"],
  "memory": [{"id": "p1", "caption": "Tram at dusk", "elements": {"lighting": ["dusk glow", "neon"]}},
             {"caption": "Azulejo wall", "elements": {"background": ["blue tiles"]}}]}"#;

fn schema_field(err: Error) -> (String, String) {
    match err {
        Error::Schema { location, message } => (location.field.unwrap_or_default(), message),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn round_trips_through_json() {
    let p = Persona::from_json_str(GOOD).unwrap();
    assert_eq!(p.memory.len(), 2);
    assert_eq!(p.memory[0].count("lighting"), 2);
    let again = Persona::from_json_str(&p.to_json_string(true).unwrap()).unwrap();
    assert_eq!(p, again);
}

#[test]
fn missing_version_reads_as_current() {
    let p = Persona::from_json_str(r#"{"id": "x"}"#).unwrap();
    assert_eq!(p.schema_version, SCHEMA_VERSION);
}

#[test]
fn malformed_json_is_a_located_parse_error() {
    let err = Persona::from_json_str("{\"id\": \"x\",\n \"summary\": }").unwrap_err();
    match err {
        Error::Parse { location, .. } => {
            assert_eq!(location.line, Some(2));
            assert!(location.column.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(Persona::from_json_str("{\"id\": \"x\""), Err(Error::Parse { .. })));
    assert!(matches!(Persona::from_json_str("{\"id\": \"x\"} {}"), Err(Error::Parse { .. })));
}

#[test]
fn unknown_schema_version_is_rejected() {
    let (field, msg) = schema_field(Persona::from_json_str(r#"{"schema_version": 7, "id": "x"}"#).unwrap_err());
    assert_eq!(field, "schema_version");
    assert!(msg.contains('7'), "{msg}");
}

#[test]
fn missing_and_empty_ids_are_rejected() {
    let (_, msg) = schema_field(Persona::from_json_str(r#"{"summary": "s"}"#).unwrap_err());
    assert!(msg.contains("missing field `id`"), "{msg}");
    let (field, _) = schema_field(Persona::from_json_str(r#"{"id": "  "}"#).unwrap_err());
    assert_eq!(field, "id");
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let (_, msg) = schema_field(Persona::from_json_str(r#"{"id": "x", "sumary": "typo"}"#).unwrap_err());
    assert!(msg.contains("sumary"), "{msg}");
    let (field, msg) =
        schema_field(Persona::from_json_str(r#"{"id": "x", "memory": [{"caption": "c", "tags": []}]}"#).unwrap_err());
    assert!(field.starts_with("memory[0]"), "{field}");
    assert!(msg.contains("tags"), "{msg}");
}

#[test]
fn wrong_types_are_schema_errors_with_path() {
    let (field, _) = schema_field(Persona::from_json_str(r#"{"id": "x", "demographics": {"age": 34}}"#).unwrap_err());
    assert_eq!(field, "demographics.age");
}

#[test]
fn empty_captions_and_elements_are_rejected() {
    let (field, _) = schema_field(
        Persona::from_json_str(r#"{"id": "x", "memory": [{"caption": "a"}, {"caption": " "}]}"#).unwrap_err(),
    );
    assert_eq!(field, "memory[1].caption");
    let (field, _) = schema_field(
        Persona::from_json_str(r#"{"id": "x", "memory": [{"caption": "a", "elements": {"mood": ["calm", ""]}}]}"#)
            .unwrap_err(),
    );
    assert_eq!(field, "memory[0].elements.mood[1]");
}

#[test]
fn duplicate_post_ids_are_rejected() {
    let (field, msg) = schema_field(
        Persona::from_json_str(r#"{"id": "x", "memory": [{"id": "a", "caption": "1"}, {"id": "a", "caption": "2"}]}"#)
            .unwrap_err(),
    );
    assert_eq!(field, "memory[1].id");
    assert!(msg.contains("duplicate"));
}

#[test]
fn jsonl_round_trip_and_located_errors() {
    let dir = std::env::temp_dir().join(format!("zipp-persona-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.jsonl");
    let a = Persona::from_json_str(GOOD).unwrap();
    let mut b = a.clone();
    b.id = "bo".into();
    let mut buf = Vec::new();
    write_jsonl(&mut buf, [&a, &b]).unwrap();
    std::fs::write(&path, &buf).unwrap();
    assert_eq!(read_jsonl(&path).unwrap(), vec![a.clone(), b.clone()]);

    // Duplicate id on line 3 (line 2 is blank and skipped).
    let text = format!("{}\n\n{}\n", a.to_json_string(false).unwrap(), a.to_json_string(false).unwrap());
    std::fs::write(&path, text).unwrap();
    let err = read_jsonl(&path).unwrap_err();
    let loc = err.location().unwrap().clone();
    assert_eq!(loc.line, Some(3));
    assert_eq!(loc.file.as_deref(), Some(path.as_path()));
    assert!(err.to_string().contains("duplicate persona id"), "{err}");

    // An empty caption deep in line 2 is reported at line 2 with its field.
    let text = format!("{}\n{}\n", a.to_json_string(false).unwrap(), r#"{"id": "c", "memory": [{"caption": ""}]}"#);
    std::fs::write(&path, text).unwrap();
    let err = read_jsonl(&path).unwrap_err();
    let loc = err.location().unwrap();
    assert_eq!((loc.line, loc.field.as_deref()), (Some(2), Some("memory[0].caption")));

    // Invalid UTF-8 is a parse error, not a panic.
    std::fs::write(&path, b"{\"id\": \"\xff\"}\n").unwrap();
    assert!(matches!(read_jsonl(&path), Err(Error::Parse { .. })));

    // Writing refuses duplicates instead of producing an unreadable file.
    assert!(write_jsonl(Vec::new(), [&a, &a]).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_is_an_io_error() {
    assert!(matches!(Persona::from_json_file("/nonexistent/zipp.json"), Err(Error::Io { .. })));
}

#[test]
fn persona_text_renders_summary_demographics_interests() {
    let p = Persona::from_json_str(GOOD).unwrap();
    assert_eq!(p.persona_text(), "Lisbon street photographer; country: Portugal; interests: trams");
    assert_eq!(p.categories(), vec!["background", "lighting"]);
}

#[test]
fn duplicate_map_keys_are_rejected_not_dropped() {
    let (field, msg) = schema_field(
        Persona::from_json_str(
            r#"{"id": "a", "memory": [{"caption": "x", "elements": {"lighting": ["dusk"], "lighting": ["neon"]}}]}"#,
        )
        .unwrap_err(),
    );
    assert!(field.starts_with("memory[0].elements"), "{field}");
    assert!(msg.contains("duplicate key `lighting`"), "{msg}");
    let (_, msg) =
        schema_field(Persona::from_json_str(r#"{"id": "a", "demographics": {"age": "30", "age": "40"}}"#).unwrap_err());
    assert!(msg.contains("duplicate key `age`"), "{msg}");
}

#[test]
fn a_newer_version_is_reported_as_such_even_with_new_fields() {
    let (field, msg) =
        schema_field(Persona::from_json_str(r#"{"schema_version": 2, "id": "x", "avatar": "new in v2"}"#).unwrap_err());
    assert_eq!(field, "schema_version");
    assert!(msg.contains("unsupported schema version 2"), "{msg}");
}
