//! Parsing release documents from YAML or JSON sources, naming every error's document and field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::granit_parser::{self, Event, Marker, Parser};

use super::document::{ReleaseDocument, ReleaseSpec};
use super::validate::{
    FieldError, closest, field_path, index_path, key_path, validate_document, validate_spec,
};

/// Sources larger than this are refused before parsing (4 MiB).
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// The path of an error that concerns a whole document (or the whole source) rather than one
/// field: syntax errors, size limits, a document that is not a mapping.
pub const DOCUMENT_PATH: &str = "<document>";

/// Most values (mappings, lists, scalars, map keys) a source may hold once YAML aliases are
/// expanded: about 8000 release documents, and a few tens of MiB of memory at worst.
const MAX_VALUES: u64 = 250_000;

/// Most scalar text a YAML source may hold once aliases are expanded (16 MiB): four times the
/// largest source, so a modest use of anchors is fine but a text bomb is not.
const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;

/// Deepest YAML nesting accepted. A release document is 5 levels deep; the limit keeps the
/// recursive deserializer (and the recursive drop of a `Value`) far from the stack's end.
const MAX_YAML_DEPTH: usize = 32;

/// The errors of one document of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentError {
    /// 0-based position of the document in the source (see the module documentation).
    pub index: usize,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for DocumentError {
    /// One line per error, `document <index + 1>: <path>: <message>`, so that a caller can
    /// prefix every line with a file name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.index + 1;
        if self.errors.is_empty() {
            return write!(f, "document {number}: invalid");
        }
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "document {number}: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DocumentError {}

/// Parses and validates every release document of a YAML or JSON source.
///
/// A source is YAML (one or more documents separated by `---`) or JSON (one object, or an array
/// of objects; a source starting with `{` or `[` that is not valid JSON but is valid YAML, such
/// as a YAML flow mapping, is read as YAML). Each document becomes a `serde_json::Value`, is
/// deserialized into a [`ReleaseDocument`] with `serde_path_to_error` (so unknown fields and
/// type errors name their path), and is validated with [`validate_document`]. A written `null`
/// (YAML `image:` with nothing after it) is an error, not an absent field.
///
/// Returns the documents in source order (empty YAML documents are skipped; a source with no
/// document at all gives an empty list), or the errors of every document that has any, sorted
/// by `index`. Besides each document's own errors, two documents with the same `metadata.name`
/// are an error (reported on the later one).
///
/// `index` is the document's 0-based position in the source: for YAML, counting every document
/// of the stream, empty ones included (an empty or `null` document is skipped but keeps its
/// place, so the numbers match the `---` separators a person counts); for a JSON array, the
/// item's position. A syntax error ends the reading of the stream: documents before it are
/// still checked, documents after it are not.
///
/// Hostile input is bounded: sources over [`MAX_SOURCE_BYTES`] are refused up front; YAML is
/// first scanned event by event (no alias expanded) to find document boundaries and to count
/// what the documents would hold once aliases are expanded, so an alias bomb is refused before
/// anything is built; nesting is limited by the parser and by a `serde_saphyr::Budget`; JSON
/// values are counted before parsing, and `serde_json` limits its nesting.
pub fn parse_documents(source: &str) -> Result<Vec<ReleaseDocument>, Vec<DocumentError>> {
    parse_documents_indexed(source)
        .map(|documents| documents.into_iter().map(|(_, doc)| doc).collect())
}

/// [`parse_documents`], with each document's 0-based `index` in the source (the same index an
/// error would name), so that a caller can point at a document that is valid on its own but
/// conflicts with another source.
pub fn parse_documents_indexed(
    source: &str,
) -> Result<Vec<(usize, ReleaseDocument)>, Vec<DocumentError>> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(vec![DocumentError {
            index: 0,
            errors: vec![FieldError::new(
                DOCUMENT_PATH,
                format!(
                    "the source is {} bytes; at most {MAX_SOURCE_BYTES} bytes (4 MiB) are \
                     accepted: split it into several files",
                    source.len()
                ),
            )],
        }]);
    }
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);

    let mut errors: BTreeMap<usize, Vec<FieldError>> = BTreeMap::new();
    let mut documents: Vec<(usize, ReleaseDocument)> = Vec::new();
    for (index, raw) in read_values(source) {
        let parsed = raw.map_err(|e| vec![e]).and_then(|value| {
            read_typed::<ReleaseDocument>(&value, "", DOCUMENT_FIELDS)
                .map(|doc| (doc, null_fields(&value)))
        });
        match parsed {
            Ok((doc, nulls)) => {
                let mut problems = nulls;
                problems.extend(validate_document(&doc));
                if !problems.is_empty() {
                    errors.entry(index).or_default().extend(problems);
                }
                documents.push((index, doc));
            }
            Err(problems) => errors.entry(index).or_default().extend(problems),
        }
    }

    // One source is one set of releases: two documents with one name would overwrite each
    // other in the store, and which one wins would depend on their order.
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    for (index, doc) in &documents {
        match first_with_name.get(doc.metadata.name.as_str()) {
            Some(first) => errors.entry(*index).or_default().push(FieldError::new(
                "metadata.name",
                format!(
                    "{:?} is also the name of document {} in this source; each release needs \
                     its own name",
                    doc.metadata.name,
                    first + 1
                ),
            )),
            None => {
                first_with_name.insert(&doc.metadata.name, *index);
            }
        }
    }

    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(errors
            .into_iter()
            .map(|(index, errors)| DocumentError { index, errors })
            .collect())
    }
}

/// Deserializes and validates a spec as stored (for example a DynamoDB map converted to JSON);
/// error paths start with `spec.`. Unlike [`parse_documents`], a `null` is read as an absent
/// optional field, as a machine-written record may hold one.
pub fn parse_spec_value(value: &Value) -> Result<ReleaseSpec, Vec<FieldError>> {
    let spec: ReleaseSpec = read_typed(value, "spec", SPEC_FIELDS)?;
    let errors = validate_spec(&spec);
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// Deserializes and validates a list of notification destinations held as a
/// `serde_json::Value` (the controller's `notifications` defaults), with the document's
/// rules; paths start with `root`.
pub fn parse_destinations(
    value: &Value,
    root: &str,
) -> Result<Vec<crate::model::notifications::NotificationDestination>, Vec<FieldError>> {
    if !value.is_array() {
        return Err(vec![FieldError::new(
            root,
            format!(
                "must be a list of destinations (- sns: ARN, - eventBridge: {{bus: NAME}}, - webhook: {{url: URL}}), not {}",
                describe(value)
            ),
        )]);
    }
    // A plain key as the root names the items `root[i]...`.
    let mut wrapped = serde_json::Map::new();
    wrapped.insert(root.to_owned(), value.clone());
    let mut errors = null_fields(&Value::Object(wrapped));
    if !errors.is_empty() {
        return Err(errors);
    }
    let parsed: Vec<crate::model::notifications::NotificationDestination> =
        deserialize_at(value, root).map_err(|e| vec![e])?;
    if let Ok(shape) = serde_json::to_value(&parsed) {
        lists_for_mappings(value, &shape, root, &mut errors);
    }
    crate::model::notifications::validate(root, &parsed, &mut errors);
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Deserializes and validates a whole document held as a `serde_json::Value`, with the same
/// rules as [`parse_spec_value`].
pub fn parse_document_value(value: &Value) -> Result<ReleaseDocument, Vec<FieldError>> {
    let doc: ReleaseDocument = read_typed(value, "", DOCUMENT_FIELDS)?;
    let errors = validate_document(&doc);
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(errors)
    }
}

/// The document as YAML (block style, defaults left out), readable by [`parse_documents`].
pub fn document_to_yaml(doc: &ReleaseDocument) -> String {
    // The serializer fails only for values YAML cannot hold (non-string map keys, custom
    // errors); a document is strings, booleans and string-keyed maps, so this cannot fail.
    serde_saphyr::to_string(doc).expect("a release document always serializes to YAML")
}

/// The document as pretty-printed JSON, readable by [`parse_documents`].
pub fn document_to_json(doc: &ReleaseDocument) -> String {
    // As above: only non-string map keys or failing Serialize impls could make this fail.
    serde_json::to_string_pretty(doc).expect("a release document always serializes to JSON")
}

/// What a source holds, document by document: `(index, value or the error that stopped it)`.
/// Empty documents are absent.
type RawDocuments = Vec<(usize, Result<Value, FieldError>)>;

fn read_values(source: &str) -> RawDocuments {
    if !source.trim_start().starts_with(['{', '[']) {
        return read_yaml(source);
    }
    match read_json(source) {
        Ok(documents) => documents,
        // `{` also opens a YAML flow mapping; when YAML reads the source cleanly it was YAML.
        // Otherwise the JSON error is the one that speaks to the author's intent.
        Err(json_error) => {
            let yaml = read_yaml(source);
            if yaml.iter().any(|(_, raw)| raw.is_err()) {
                vec![(0, Err(json_error))]
            } else {
                yaml
            }
        }
    }
}

fn read_json(source: &str) -> Result<RawDocuments, FieldError> {
    let values = json_value_bound(source);
    if values > MAX_VALUES {
        return Err(too_many_values());
    }
    let value = serde_json::from_str::<StrictValue>(source)
        .map_err(|e| FieldError::new(DOCUMENT_PATH, format!("invalid JSON: {e}")))?
        .0;
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| (i, Ok(item)))
            .collect(),
        other => vec![(0, Ok(other))],
    })
}

/// An upper bound on the number of values in a JSON text (every value but the first follows a
/// `[`, `{`, `,` or `:` outside a string), found without building anything.
fn json_value_bound(source: &str) -> u64 {
    let mut count: u64 = 1;
    let mut in_string = false;
    let mut escaped = false;
    for b in source.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' | b',' | b':' => count += 1,
                _ => {}
            }
        }
    }
    count
}

fn too_many_values() -> FieldError {
    FieldError::new(
        DOCUMENT_PATH,
        format!(
            "the source holds too much: more than {MAX_VALUES} values or {} MiB of text once \
             YAML aliases are expanded; use fewer aliases or split it into several files",
            MAX_TEXT_BYTES / (1024 * 1024)
        ),
    )
}

/// A `serde_json::Value` that refuses duplicate object keys, which `serde_json` would
/// silently resolve to the last one (the YAML reader refuses them too).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(StrictValueVisitor)
            .map(StrictValue)
    }
}

struct StrictValueVisitor;

impl<'de> serde::de::Visitor<'de> for StrictValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {key:?}; give each key once"
                )));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Where one YAML document sits in the source: `start..end` are byte offsets at line starts,
/// `first_line` the 1-based line number of `start`.
struct DocumentSpan {
    start: usize,
    end: usize,
    first_line: usize,
}

fn read_yaml(source: &str) -> RawDocuments {
    let scan = scan_yaml(source);
    let mut documents = RawDocuments::new();
    for (index, span) in scan.documents.iter().enumerate() {
        let Some(text) = source.get(span.start..span.end) else {
            // The boundaries come from the parser's own positions; this only keeps a parser
            // surprise from becoming a panic.
            documents.push((
                index,
                Err(FieldError::new(
                    DOCUMENT_PATH,
                    "could not locate this document in the source",
                )),
            ));
            continue;
        };
        match parse_yaml_document(text, span.first_line) {
            Ok(Some(value)) => documents.push((index, Ok(value))),
            Ok(None) => {}
            Err(error) => documents.push((index, Err(error))),
        }
    }
    if let Some(error) = scan.failure {
        documents.push((scan.documents.len(), Err(error)));
    }
    documents
}

/// Parses the text of one YAML document (as found by [`scan_yaml`]) into a value; `None` for
/// an empty or `null` document.
fn parse_yaml_document(text: &str, first_line: usize) -> Result<Option<Value>, FieldError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_YAML_DEPTH;
    // The scan in `scan_yaml` already bounds the whole stream; these repeat the bound per
    // document in case the two ever disagree about what a node is.
    budget.max_nodes = MAX_VALUES as usize;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_VALUES as usize;
    // YAML 1.2 booleans only: `FEATURE_X: on` is the string "on", as it reads, not `true`.
    options.strict_booleans = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    match serde_saphyr::from_multiple_with_options::<Value>(text, options) {
        Ok(mut values) => match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(FieldError::new(
                DOCUMENT_PATH,
                format!(
                    "could not separate the YAML documents that start at line {first_line}; \
                     put each after its own '---' line"
                ),
            )),
        },
        Err(error) => {
            let formatter = serde_saphyr::UserMessageFormatter;
            let rendered = error.render_with_options(serde_saphyr::render_options! {
                formatter: &formatter,
                snippets: serde_saphyr::SnippetMode::Off,
                line_offset: first_line.saturating_sub(1) as u64,
            });
            let message = if rendered.trim().is_empty() {
                "invalid YAML".to_owned()
            } else if rendered.contains("Depth {") {
                // The budget's own wording names an internal type; say what it means.
                match error.location() {
                    Some(at) => format!(
                        "nested more than {MAX_YAML_DEPTH} levels deep at line {}, column {}",
                        at.line() + first_line.saturating_sub(1) as u64,
                        at.column()
                    ),
                    None => format!("nested more than {MAX_YAML_DEPTH} levels deep"),
                }
            } else {
                rendered
            };
            Err(FieldError::new(DOCUMENT_PATH, message))
        }
    }
}

/// The outcome of scanning a YAML stream: the documents read in full, and the error that
/// stopped the scan, if any; that error belongs to document `documents.len()`.
struct YamlScan {
    documents: Vec<DocumentSpan>,
    failure: Option<FieldError>,
}

/// Walks the YAML event stream once, without expanding aliases, to find where each document
/// starts and ends and to refuse a stream that would be too large once aliases are expanded.
/// Parsing documents one by one afterwards lets an error in one document leave the others
/// checked, and lets every document keep its place in the numbering even when it is empty.
fn scan_yaml(source: &str) -> YamlScan {
    let mut options = granit_parser::Options::default();
    options.emit_comments = false;
    let mut parser = Parser::new_from_str_with_options(source, options);
    let mut documents = Vec::new();
    let mut expansion = Expansion::default();
    let (mut start, mut first_line) = (0, 1);
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(event) => event,
            Err(error) => {
                let marker = error.marker();
                let info = error.info();
                let info = if info.contains("recursion limit") {
                    format!("nested too deeply ({info})")
                } else {
                    info
                };
                let message = format!(
                    "{info} at line {}, column {}",
                    marker.line(),
                    marker.col() + 1
                );
                return YamlScan {
                    documents,
                    failure: Some(FieldError::new(DOCUMENT_PATH, message)),
                };
            }
        };
        match event {
            Event::DocumentStart(..) => expansion.start_document(),
            Event::DocumentEnd => {
                // Cut at the start of the line after the document: whatever else is on the
                // line of its end (a `...` marker, a comment) belongs to no document.
                let (end, next_line) = line_start_at_or_after(source, &span.end);
                documents.push(DocumentSpan {
                    start,
                    end: end.max(start),
                    first_line,
                });
                (start, first_line) = (end.max(start), next_line);
            }
            event => {
                if !expansion.observe(&event) {
                    return YamlScan {
                        documents,
                        failure: Some(too_many_values()),
                    };
                }
            }
        }
    }
    YamlScan {
        documents,
        failure: None,
    }
}

/// The byte offset of `marker` when it is at a line start, else of the start of the next line
/// (YAML breaks lines at `\n`, `\r\n` and a lone `\r`), with that line's 1-based number.
fn line_start_at_or_after(source: &str, marker: &Marker) -> (usize, usize) {
    let offset = marker
        .byte_offset()
        .unwrap_or_else(|| {
            source
                .char_indices()
                .nth(marker.index())
                .map_or(source.len(), |(b, _)| b)
        })
        .min(source.len());
    if marker.col() == 0 {
        return (offset, marker.line());
    }
    let bytes = source.as_bytes();
    let next = match bytes[offset..]
        .iter()
        .position(|b| matches!(b, b'\n' | b'\r'))
    {
        Some(i) if bytes[offset + i] == b'\r' && bytes.get(offset + i + 1) == Some(&b'\n') => {
            offset + i + 2
        }
        Some(i) => offset + i + 1,
        None => source.len(),
    };
    (next, marker.line() + 1)
}

/// How much a YAML node holds once its aliases are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    values: u64,
    text_bytes: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.values = self.values.saturating_add(other.values);
        self.text_bytes = self.text_bytes.saturating_add(other.text_bytes);
    }
}

/// Counts, across the whole stream, what the documents would hold with every alias replaced
/// by a copy of its anchor's node. Linear in the number of events, however the aliases nest.
#[derive(Default)]
struct Expansion {
    total: Cost,
    /// Open collections: their anchor id (0 for none) and their cost so far.
    open: Vec<(usize, Cost)>,
    /// The expanded cost of every anchored node of the current document.
    anchors: HashMap<usize, Cost>,
}

impl Expansion {
    fn start_document(&mut self) {
        // Aliases never refer across documents.
        self.open.clear();
        self.anchors.clear();
    }

    /// Accounts for one event; false once the stream holds too much.
    fn observe(&mut self, event: &Event<'_>) -> bool {
        match event {
            Event::Scalar(..) => {
                let text_bytes = event.scalar().map_or(0, |(text, _)| text.len() as u64);
                let cost = Cost {
                    values: 1,
                    text_bytes,
                };
                self.add(cost);
                if let Some(anchor) = event.anchor_id() {
                    self.anchors.insert(anchor, cost);
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let cost = Cost {
                    values: 1,
                    text_bytes: 0,
                };
                self.total.add(cost);
                self.open.push((event.anchor_id().unwrap_or(0), cost));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, cost)) = self.open.pop() {
                    // The collection's own cost is already in `total`; only its parent and
                    // its anchor learn of it now.
                    if let Some((_, parent)) = self.open.last_mut() {
                        parent.add(cost);
                    }
                    if anchor != 0 {
                        self.anchors.insert(anchor, cost);
                    }
                }
            }
            Event::Alias(anchor) => {
                // An alias to an anchor that is still open (a recursive structure) is refused
                // by the deserializer later; count it as one value here.
                let cost = self.anchors.get(anchor).copied().unwrap_or(Cost {
                    values: 1,
                    text_bytes: 0,
                });
                self.add(cost);
            }
            _ => {}
        }
        self.total.values <= MAX_VALUES && self.total.text_bytes <= MAX_TEXT_BYTES
    }

    fn add(&mut self, cost: Cost) {
        self.total.add(cost);
        if let Some((_, parent)) = self.open.last_mut() {
            parent.add(cost);
        }
    }
}

const DOCUMENT_FIELDS: &str = "apiVersion, kind, metadata and spec";
const SPEC_FIELDS: &str = "service, taskDefinition, strategy and the optional rollback, paused, onDrift and notifications";

/// Deserializes `T` (a document or a spec, whose fields are `fields`) from a value, with the
/// structural checks serde leaves out.
fn read_typed<T: Serialize + DeserializeOwned>(
    value: &Value,
    root: &str,
    fields: &str,
) -> Result<T, Vec<FieldError>> {
    if !value.is_object() {
        let path = if root.is_empty() { DOCUMENT_PATH } else { root };
        return Err(vec![FieldError::new(
            path,
            format!(
                "must be a mapping of the fields {fields}, not {}",
                describe(value)
            ),
        )]);
    }
    let parsed: T = deserialize_at(value, root).map_err(|e| vec![e])?;
    // serde's derived structs also accept a list of the field values in declaration order
    // (`service: [prod, web]`); nobody writes that on purpose, and a reordered list would
    // silently swap fields, so a list where a mapping belongs is refused.
    let mut errors = Vec::new();
    if let Ok(shape) = serde_json::to_value(&parsed) {
        lists_for_mappings(value, &shape, root, &mut errors);
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Reports every place where `input` holds a list and the parsed value (`shape`, serialized
/// back) a mapping.
fn lists_for_mappings(input: &Value, shape: &Value, path: &str, out: &mut Vec<FieldError>) {
    match (input, shape) {
        (Value::Array(_), Value::Object(_)) => out.push(FieldError::new(
            path,
            "must be a mapping (key: value pairs), not a list",
        )),
        (Value::Object(input), Value::Object(shape)) => {
            for (key, shape) in shape {
                if let Some(input) = input.get(key) {
                    lists_for_mappings(input, shape, &key_path(path, key), out);
                }
            }
        }
        (Value::Array(input), Value::Array(shape)) => {
            for (i, (input, shape)) in input.iter().zip(shape).enumerate() {
                lists_for_mappings(input, shape, &index_path(path, i), out);
            }
        }
        _ => {}
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "an empty value (null)",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Deserializes `T` from a value, turning the first error into a [`FieldError`] whose path is
/// `root` followed by the path `serde_path_to_error` tracked.
fn deserialize_at<'de, D, T>(deserializer: D, root: &str) -> Result<T, FieldError>
where
    D: Deserializer<'de, Error = serde_json::Error>,
    T: DeserializeOwned,
{
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let mut path = root.to_owned();
        for segment in error.path().iter() {
            path = match segment {
                serde_path_to_error::Segment::Seq { index } => index_path(&path, *index),
                serde_path_to_error::Segment::Map { key } => key_path(&path, key),
                serde_path_to_error::Segment::Enum { variant } => key_path(&path, variant),
                serde_path_to_error::Segment::Unknown => field_path(&path, "?"),
            };
        }
        let last_key = match error.path().iter().next_back() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.as_str()),
            _ => None,
        };
        let (path, message) = explain(path, last_key, error.inner().to_string());
        let path = if path.is_empty() {
            DOCUMENT_PATH.to_owned()
        } else {
            path
        };
        let message = if message.is_empty() {
            "invalid value".to_owned()
        } else {
            message
        };
        FieldError::new(path, message)
    })
}

/// Rewrites serde's messages to say what to fix where the field is known; `last_key` is the
/// key the path ends with, if it ends with one.
fn explain(path: String, last_key: Option<&str>, message: String) -> (String, String) {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return (field_path(&path, field), "is required".to_owned());
    }
    if let Some((field, expected)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        // The path names the unknown key itself, whichever way the tracker recorded it.
        let path = if last_key == Some(field) {
            path
        } else {
            key_path(&path, field)
        };
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = closest(field, &known)
            .map(|near| format!(" (did you mean `{near}`?)"))
            .unwrap_or_default();
        return (
            path,
            format!("{message}{hint}; unknown fields are not allowed"),
        );
    }
    if let Some((variant, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split_once('`'))
    {
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        if let Some(near) = closest(variant, &known) {
            return (path, format!("{message} (did you mean `{near}`?)"));
        }
    }
    let scalar_for_string = message.contains("expected a string")
        && [
            "invalid type: integer",
            "invalid type: floating point",
            "invalid type: boolean",
        ]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    if scalar_for_string {
        return (
            path,
            format!("{message}; put the value in quotes to make it a string"),
        );
    }
    (path, message)
}

/// Every explicit `null` in a written document. YAML reads `image:` with nothing after it as
/// null, which serde would take as "no image"; a person who wrote the key meant to set it.
fn null_fields(value: &Value) -> Vec<FieldError> {
    fn walk(value: &Value, path: &str, out: &mut Vec<FieldError>) {
        match value {
            Value::Null => out.push(FieldError::new(
                path,
                "must not be empty (null); give a value or remove the field",
            )),
            Value::Object(map) => {
                for (key, value) in map {
                    walk(value, &key_path(path, key), out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &index_path(path, i), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (key, value) in map {
            walk(value, &key_path("", key), &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    // tokio's clock (the monotonic clock outside a runtime): only `clock.rs` names the wall
    // clock's types.
    use tokio::time::Instant;

    use proptest::prelude::*;

    use super::*;
    use crate::model::validate::PREDEFINED_ECS_DEPLOYMENT_CONFIGS;
    use crate::model::{
        CodeDeployStrategy, ContainerChange, Metadata, OnDrift, Promotion, RollbackSpec,
        ServiceRef, Strategy as StrategySpec, TaskDefinitionSpec,
    };

    const PRODUCT_EXAMPLE: &str = r#"apiVersion: switchyard.dev/v1
kind: Release
metadata:
  name: web                      # the key: lower-case letters, digits, '-'; at most 63 chars
  labels: {team: storefront}     # optional
spec:
  service:
    cluster: prod
    name: web
    region: us-east-1            # optional; the controller's region by default
  taskDefinition:
    from: web                    # a family (its latest ACTIVE revision) or a full ARN to copy
    containers:                  # changes applied to the copy
      web:
        image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2
        environment: {FEATURE_X: "on"}   # optional, merged over the copy
  strategy:
    codeDeploy:
      application: web
      deploymentGroup: web-prod
      deploymentConfig: CodeDeployDefault.ECSCanary10Percent5Minutes  # optional: the group's
      promotion: auto            # optional, default auto; manual waits for `switchyard promote`
  rollback:                      # optional
    alarms: [web-5xx]            # CloudWatch alarms; ALARM aborts and rolls back
  paused: false                  # optional, default false; true: start nothing new
  onDrift: report                # optional, default report; converge: redeploy the desired version
"#;

    /// A minimal valid document named `name`, with `extra` appended under `spec:`.
    fn minimal(name: &str) -> String {
        format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  \
             service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    \
             containers:\n      web: {{image: \"nginx:1.27\"}}\n  strategy:\n    codeDeploy: \
             {{application: {name}, deploymentGroup: {name}-prod}}\n"
        )
    }

    fn expect_errors(source: &str) -> Vec<DocumentError> {
        match parse_documents(source) {
            Ok(docs) => panic!("expected errors, parsed {docs:?}"),
            Err(errors) => errors,
        }
    }

    fn lines(errors: &[DocumentError]) -> Vec<String> {
        errors
            .iter()
            .flat_map(|d| d.errors.iter().map(move |e| format!("{}: {e}", d.index)))
            .collect()
    }

    fn example_doc() -> ReleaseDocument {
        ReleaseDocument {
            api_version: "switchyard.dev/v1".to_owned(),
            kind: "Release".to_owned(),
            metadata: Metadata {
                name: "web".to_owned(),
                labels: BTreeMap::from([("team".to_owned(), "storefront".to_owned())]),
            },
            spec: ReleaseSpec {
                service: ServiceRef {
                    cluster: "prod".to_owned(),
                    name: "web".to_owned(),
                    region: Some("us-east-1".to_owned()),
                    role_arn: None,
                },
                task_definition: TaskDefinitionSpec {
                    from: "web".to_owned(),
                    containers: BTreeMap::from([(
                        "web".to_owned(),
                        ContainerChange {
                            image: Some(
                                "111122223333.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2".to_owned(),
                            ),
                            environment: BTreeMap::from([(
                                "FEATURE_X".to_owned(),
                                "on".to_owned(),
                            )]),
                        },
                    )]),
                },
                strategy: StrategySpec {
                    code_deploy: Some(CodeDeployStrategy {
                        application: "web".to_owned(),
                        deployment_group: "web-prod".to_owned(),
                        deployment_config: Some(
                            "CodeDeployDefault.ECSCanary10Percent5Minutes".to_owned(),
                        ),
                        promotion: Promotion::Auto,
                        analysis: None,
                    }),
                    ..StrategySpec::default()
                },
                rollback: Some(RollbackSpec {
                    alarms: vec!["web-5xx".to_owned()],
                }),
                paused: false,
                on_drift: OnDrift::Report,
                notifications: None,
            },
        }
    }

    #[test]
    fn parses_the_product_example() {
        assert_eq!(parse_documents(PRODUCT_EXAMPLE), Ok(vec![example_doc()]));
    }

    #[test]
    fn parses_multi_document_yaml() {
        let source = format!("{}---\n{}", minimal("web"), minimal("api"));
        let docs = parse_documents(&source).expect("two valid documents");
        let names: Vec<&str> = docs.iter().map(|d| d.metadata.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
    }

    #[test]
    fn empty_documents_are_skipped_but_keep_their_index() {
        let source = format!(
            "# releases\n---\n{}---\n# nothing here\n---\n...\n---\n{}---\nnull\n---\n{}",
            minimal("a"),
            minimal("b"),
            minimal("C")
        );
        let errors = expect_errors(&source);
        // a=0, empty=1, empty=2, b=3, null=4, C=5
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 5);
        assert_eq!(errors[0].errors[0].path, "metadata.name");
        let ok = source.replace("name: C", "name: c");
        assert_eq!(parse_documents(&ok).map(|d| d.len()), Ok(3));
    }

    #[test]
    fn a_source_without_documents_is_empty() {
        for source in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "---\n...\n",
            "\u{feff}",
        ] {
            assert_eq!(parse_documents(source), Ok(vec![]), "{source:?}");
        }
    }

    #[test]
    fn unknown_field_names_its_path() {
        let source = minimal("web").replace("deploymentGroup:", "deploymentGroupp:");
        let errors = expect_errors(&source);
        let error = &errors[0].errors[0];
        assert_eq!(error.path, "spec.strategy.codeDeploy.deploymentGroupp");
        assert!(
            error
                .message
                .starts_with("unknown field `deploymentGroupp`"),
            "{error}"
        );
        assert!(
            error.message.contains("did you mean `deploymentGroup`?"),
            "{error}"
        );
    }

    #[test]
    fn unknown_top_level_field_names_itself() {
        let source = format!("{}status: {{}}\n", minimal("web"));
        let errors = expect_errors(&source);
        assert_eq!(errors[0].errors[0].path, "status");
    }

    #[test]
    fn missing_field_names_the_field() {
        let source = minimal("web").replace("cluster: prod, ", "");
        let errors = expect_errors(&source);
        assert_eq!(
            errors[0].errors,
            [FieldError::new("spec.service.cluster", "is required")]
        );
        let errors = expect_errors("kind: Release\n");
        assert_eq!(errors[0].errors[0].path, "apiVersion");
    }

    #[test]
    fn scalars_where_strings_are_expected_are_type_errors() {
        let cases = [
            (
                minimal("web").replace("\"nginx:1.27\"", "1.0"),
                "spec.taskDefinition.containers.web.image",
                "floating point",
            ),
            (
                minimal("web").replace("from: web", "from: 123"),
                "spec.taskDefinition.from",
                "integer",
            ),
            (
                minimal("web").replace("from: web", "from: true"),
                "spec.taskDefinition.from",
                "boolean",
            ),
            (
                format!("{}  paused: yes\n", minimal("web")),
                "spec.paused",
                "expected a boolean",
            ),
            (
                format!("{}  onDrift: Converge\n", minimal("web")),
                "spec.onDrift",
                "unknown variant",
            ),
            (
                minimal("web").replace("web: {image", "web: [1]\n      x: {image"),
                "spec.taskDefinition.containers.web[0]",
                "invalid type: integer",
            ),
        ];
        for (source, path, expected) in cases {
            let errors = expect_errors(&source);
            let error = &errors[0].errors[0];
            assert_eq!(error.path, path, "{error}");
            assert!(error.message.contains(expected), "{error}");
        }
        let errors = expect_errors(&minimal("web").replace("\"nginx:1.27\"", "1.0"));
        assert!(errors[0].errors[0].message.contains("quotes"));
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let source = minimal("web").replace(
            "{image: \"nginx:1.27\"}",
            "{image: \"nginx:1.27\", environment: {A: on, B: yes, C: off}}",
        );
        let docs = parse_documents(&source).expect("valid");
        let env = &docs[0].spec.task_definition.containers["web"].environment;
        assert_eq!(env["A"], "on");
        assert_eq!(env["B"], "yes");
        assert_eq!(env["C"], "off");
    }

    #[test]
    fn empty_values_are_rejected_not_ignored() {
        let source = minimal("web").replace(
            "web: {image: \"nginx:1.27\"}",
            "web:\n        image:\n        environment: {A: x}",
        );
        let errors = expect_errors(&source);
        assert_eq!(
            errors[0].errors[0].path,
            "spec.taskDefinition.containers.web.image"
        );
        assert!(errors[0].errors[0].message.contains("null"));
    }

    #[test]
    fn reports_validation_errors_of_every_document() {
        let source = format!(
            "{}---\n{}",
            minimal("web").replace("nginx:1.27", "Nginx:1"),
            minimal("api").replace("name: api}", "name: api, region: moon}")
        );
        let errors = expect_errors(&source);
        assert_eq!(
            lines(&errors)
                .iter()
                .map(|l| l.split(": ").take(2).collect::<Vec<_>>().join(": "))
                .collect::<Vec<_>>(),
            [
                "0: spec.taskDefinition.containers.web.image",
                "1: spec.service.region"
            ]
        );
        assert!(errors[0].to_string().starts_with(
            "document 1: spec.taskDefinition.containers.web.image: repository names must be \
             lower case"
        ));
    }

    #[test]
    fn rejects_duplicate_names_in_one_source() {
        let source = format!(
            "{}---\n{}---\n{}",
            minimal("web"),
            minimal("api"),
            minimal("web")
        );
        let errors = expect_errors(&source);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 2);
        assert_eq!(errors[0].errors[0].path, "metadata.name");
        assert!(errors[0].errors[0].message.contains("document 1"));
    }

    #[test]
    fn rejects_duplicate_keys() {
        let yaml = format!("{}kind: Release\n", minimal("web"));
        let errors = expect_errors(&yaml);
        assert_eq!(errors[0].errors[0].path, DOCUMENT_PATH);
        assert!(
            errors[0].errors[0].message.contains("duplicate"),
            "{:?}",
            errors
        );

        let json = r#"{"apiVersion": "switchyard.dev/v1", "apiVersion": "x"}"#;
        let errors = expect_errors(json);
        assert!(
            errors[0].errors[0].message.contains("duplicate key"),
            "{:?}",
            errors
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column_and_spare_other_documents() {
        let source = format!(
            "{}---\n{}---\nspec: [\n",
            minimal("web").replace("nginx:1.27", "Nginx"),
            minimal("api")
        );
        let errors = expect_errors(&source);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].index, 0);
        assert_eq!(
            errors[0].errors[0].path,
            "spec.taskDefinition.containers.web.image"
        );
        assert_eq!(errors[1].index, 2);
        assert_eq!(errors[1].errors[0].path, DOCUMENT_PATH);
        let message = &errors[1].errors[0].message;
        let line = source.lines().count();
        assert!(message.contains(&format!("line {line}")), "{message}");
        assert!(message.contains("column"), "{message}");
    }

    #[test]
    fn errors_found_while_building_a_document_give_source_lines() {
        // The duplicate key is on the 3rd line of the 2nd document, line 16 of the source.
        let source = format!("{}---\napiVersion: x\nkind: y\nkind: z\n", minimal("web"));
        assert_eq!(minimal("web").lines().count(), 12);
        let errors = expect_errors(&source);
        assert_eq!(errors[0].index, 1);
        let message = &errors[0].errors[0].message;
        assert!(message.contains("line 16"), "{message}");
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_an_error() {
        for source in ["just text\n", "- a\n- b\n", "42\n"] {
            let errors = expect_errors(source);
            assert_eq!(errors[0].errors[0].path, DOCUMENT_PATH, "{source}");
            assert!(
                errors[0].errors[0].message.starts_with("must be a mapping"),
                "{source}"
            );
        }
    }

    #[test]
    fn a_list_where_a_mapping_belongs_is_an_error() {
        let source = minimal("web").replace("{cluster: prod, name: web}", "[prod, web]");
        let errors = expect_errors(&source);
        assert_eq!(
            errors[0].errors,
            [FieldError::new(
                "spec.service",
                "must be a mapping (key: value pairs), not a list"
            )]
        );
        let value = serde_json::json!({
            "service": ["prod", "web"],
            "taskDefinition": {"from": "web", "containers": {"web": {"image": "nginx"}}},
            "strategy": {"codeDeploy": {"application": "a", "deploymentGroup": "g"}}
        });
        let errors = parse_spec_value(&value).expect_err("a list");
        assert_eq!(errors[0].path, "spec.service");
    }

    #[test]
    fn parses_json_object_and_array() {
        let doc = example_doc();
        let object = document_to_json(&doc);
        assert_eq!(parse_documents(&object), Ok(vec![doc.clone()]));

        let mut other = doc.clone();
        other.metadata.name = "api".to_owned();
        let array = serde_json::to_string(&[&doc, &other]).expect("serializes");
        assert_eq!(parse_documents(&array), Ok(vec![doc.clone(), other]));
        assert_eq!(parse_documents("[]"), Ok(vec![]));

        let mut bad = serde_json::to_value(&doc).expect("serializes");
        bad["spec"]["rollback"]["alarms"] = serde_json::json!(["a", "a"]);
        let array = serde_json::to_string(&[serde_json::to_value(&doc).expect("ok"), bad])
            .expect("serializes");
        let errors = expect_errors(&array);
        assert_eq!(errors[0].index, 1);
        // Both documents are named web.
        assert_eq!(
            errors[0]
                .errors
                .iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>(),
            ["spec.rollback.alarms[1]", "metadata.name"]
        );
    }

    #[test]
    fn malformed_json_reports_the_json_error() {
        let errors =
            expect_errors("{\"apiVersion\": \"switchyard.dev/v1\",\n  \"kind\" \"Release\"}");
        let error = &errors[0].errors[0];
        assert_eq!(error.path, DOCUMENT_PATH);
        assert!(error.message.starts_with("invalid JSON"), "{error}");
        assert!(error.message.contains("line 2"), "{error}");
    }

    #[test]
    fn a_yaml_flow_mapping_is_read_as_yaml() {
        let source = "{apiVersion: switchyard.dev/v1, kind: Release, metadata: {name: web}, \
                      spec: {service: {cluster: prod, name: web}, taskDefinition: {from: web, \
                      containers: {web: {image: nginx}}}, strategy: {codeDeploy: \
                      {application: web, deploymentGroup: web}}}}";
        assert_eq!(parse_documents(source).map(|d| d.len()), Ok(1));
    }

    #[test]
    fn rejects_sources_over_4_mib() {
        let source = format!("{}#{}\n", minimal("web"), "x".repeat(MAX_SOURCE_BYTES));
        let errors = expect_errors(&source);
        assert_eq!(errors[0].errors[0].path, DOCUMENT_PATH);
        assert!(errors[0].errors[0].message.contains("4 MiB"));
    }

    fn assert_fails_fast(source: &str, what: &str) -> Vec<DocumentError> {
        let started = Instant::now();
        let result = parse_documents(source);
        let elapsed = started.elapsed();
        // A hang guard, not a speed claim (speed belongs in benchmarks; CI machines are
        // shared and noisy): the budgets make these inputs fail after bounded work.
        assert!(
            elapsed < Duration::from_secs(120),
            "{what} took {elapsed:?}"
        );
        match result {
            Ok(_) => panic!("{what} was accepted"),
            Err(errors) => {
                assert!(
                    errors
                        .iter()
                        .all(|d| d.errors.iter().all(|e| !e.message.is_empty())),
                    "{what}"
                );
                errors
            }
        }
    }

    #[test]
    fn deeply_nested_input_fails_fast() {
        let flow = format!("a: {}", "[".repeat(1_000_000));
        assert_fails_fast(&flow, "deep flow nesting");
        let mut block = String::new();
        for depth in 0..2_000 {
            block.push_str(&" ".repeat(depth));
            block.push_str("a:\n");
        }
        assert_fails_fast(&block, "deep block nesting");
        // Deeper than the deserializer's budget, shallower than the parser's limit.
        let medium = format!("a: {}1{}", "[".repeat(100), "]".repeat(100));
        let errors = assert_fails_fast(&medium, "nesting over the budget");
        assert!(
            errors[0].errors[0]
                .message
                .contains("nested more than 32 levels deep at line 1"),
            "{errors:?}"
        );
        let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_fails_fast(&json, "deep JSON");
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut bomb = String::from("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for i in 1..30 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let errors = assert_fails_fast(&bomb, "billion laughs");
        assert!(
            errors[0].errors[0].message.contains("aliases"),
            "{errors:?}"
        );

        // A text bomb: few values, long strings.
        let long = "x".repeat(1024 * 1024);
        let text = format!(
            "a: &a \"{long}\"\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        );
        assert_fails_fast(&text, "text bomb");

        // Many documents, each a moderate expansion: the bound is on the whole source.
        let one = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        let many = format!("---\n{one}").repeat(300);
        assert_fails_fast(&many, "many small bombs");

        // Too many plain values, in JSON.
        let json = format!("[{}0]", "0,".repeat(MAX_VALUES as usize));
        assert_fails_fast(&json, "many JSON values");
    }

    #[test]
    fn parse_spec_value_names_spec_fields() {
        let mut value = serde_json::to_value(&example_doc().spec).expect("serializes");
        assert_eq!(
            parse_spec_value(&value),
            Ok(example_doc().spec),
            "a valid spec"
        );
        value["strategy"]["codeDeploy"]["deploymentConfig"] = "CodeDeployDefault.OneAtATime".into();
        let errors = parse_spec_value(&value).expect_err("invalid config");
        assert_eq!(errors[0].path, "spec.strategy.codeDeploy.deploymentConfig");

        value["taskDefinition"]["containers"]["web"]["image"] = 7.into();
        let errors = parse_spec_value(&value).expect_err("a number");
        assert_eq!(errors[0].path, "spec.taskDefinition.containers.web.image");

        value["taskDefinition"]["containers"]["web"]["imagee"] = "x".into();
        let errors = parse_spec_value(&value).expect_err("unknown field");
        assert!(
            errors[0]
                .path
                .starts_with("spec.taskDefinition.containers.web.")
        );

        let errors = parse_spec_value(&serde_json::json!([])).expect_err("not a map");
        assert_eq!(errors[0].path, "spec");

        // A stored null is an absent optional field.
        let mut value = serde_json::to_value(&example_doc().spec).expect("serializes");
        value["rollback"] = Value::Null;
        assert_eq!(parse_spec_value(&value).map(|s| s.rollback), Ok(None));
    }

    #[test]
    fn parse_document_value_validates() {
        let value = serde_json::to_value(example_doc()).expect("serializes");
        assert_eq!(parse_document_value(&value), Ok(example_doc()));
        let mut value = value;
        value["kind"] = "Job".into();
        let errors = parse_document_value(&value).expect_err("wrong kind");
        assert_eq!(errors[0].path, "kind");
    }

    #[test]
    fn document_to_yaml_round_trips() {
        let doc = example_doc();
        let yaml = document_to_yaml(&doc);
        assert!(yaml.contains("apiVersion: switchyard.dev/v1"), "{yaml}");
        assert_eq!(parse_documents(&yaml), Ok(vec![doc]), "{yaml}");
    }

    #[test]
    fn document_error_display_has_one_line_per_error() {
        let error = DocumentError {
            index: 1,
            errors: vec![
                FieldError::new("kind", "must be \"Release\""),
                FieldError::new(
                    "spec.strategy",
                    "must set exactly one strategy (codeDeploy)",
                ),
            ],
        };
        assert_eq!(
            error.to_string(),
            "document 2: kind: must be \"Release\"\ndocument 2: spec.strategy: must set exactly \
             one strategy (codeDeploy)"
        );
    }

    fn check_errors(result: Result<Vec<ReleaseDocument>, Vec<DocumentError>>) {
        if let Err(errors) = result {
            assert!(!errors.is_empty());
            for document in &errors {
                assert!(!document.errors.is_empty());
                for error in &document.errors {
                    assert!(!error.message.trim().is_empty(), "{error:?}");
                    assert!(!error.path.is_empty(), "{error:?}");
                }
            }
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
    }

    fn image() -> impl Strategy<Value = String> {
        (
            prop::option::of("[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){1,3}(:[0-9]{1,5})?"),
            prop::collection::vec("[a-z0-9]{1,8}([._-][a-z0-9]{1,8})?", 1..4),
            prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            prop::option::of("[0-9a-f]{64}"),
        )
            .prop_map(|(host, path, tag, digest)| {
                let mut image = host.map(|h| format!("{h}/")).unwrap_or_default();
                image.push_str(&path.join("/"));
                if let Some(tag) = tag {
                    image.push(':');
                    image.push_str(&tag);
                }
                if let Some(digest) = digest {
                    image.push_str("@sha256:");
                    image.push_str(&digest);
                }
                image
            })
    }

    /// Environment values that YAML could misread if written unquoted, and arbitrary text.
    fn env_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                "on",
                "off",
                "yes",
                "no",
                "true",
                "False",
                "null",
                "~",
                "1.0",
                "0x1F",
                "1e3",
                "012",
                ".inf",
                "-",
                "- a",
                "a: b",
                "#x",
                "&a",
                "*a",
                "!x",
                "|",
                ">",
                "'",
                "\"",
                "%",
                "@",
                "`",
                "---",
                "...",
                " lead",
                "trail ",
                "a\nb",
                "a\r\nb",
                "\t",
                "{}",
                "[]",
                "2001-01-01",
                "<<",
            ])
            .prop_map(str::to_owned),
            any::<String>().prop_map(|s| s.chars().take(40).collect()),
        ]
    }

    fn document() -> impl Strategy<Value = ReleaseDocument> {
        (
            name(),
            prop::collection::btree_map("[a-z][a-z0-9./_-]{0,10}", "[A-Za-z0-9._-]{0,10}", 0..3),
            (
                "[A-Za-z0-9_-]{1,20}",
                "[A-Za-z0-9_-]{1,20}",
                prop::option::of("[a-z]{2}-[a-z]{3,9}-[1-9]"),
            ),
            prop::collection::btree_map(
                "[A-Za-z0-9_-]{1,12}",
                (
                    prop::option::of(image()),
                    prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,10}", env_value(), 0..4),
                ),
                1..3,
            ),
            (
                "[^\\x00-\\x1f\\x7f-\\u{9f}]{1,30}",
                "[^\\x00-\\x1f\\x7f-\\u{9f}]{1,30}",
            ),
            prop::option::of(prop::sample::select(
                PREDEFINED_ECS_DEPLOYMENT_CONFIGS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .chain(["custom-config.1".to_owned()])
                    .collect::<Vec<_>>(),
            )),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            prop::option::of(prop::collection::btree_set("[a-zA-Z0-9 ./_-]{1,20}", 0..5)),
        )
            .prop_map(
                |(
                    name,
                    labels,
                    (cluster, service, region),
                    containers,
                    (application, group),
                    config,
                    (manual, paused, converge),
                    alarms,
                )| {
                    let containers = containers
                        .into_iter()
                        .map(|(container, (image, environment))| {
                            // Every change must change something.
                            let image = if image.is_none() && environment.is_empty() {
                                Some("nginx".to_owned())
                            } else {
                                image
                            };
                            (container, ContainerChange { image, environment })
                        })
                        .collect();
                    ReleaseDocument {
                        api_version: "switchyard.dev/v1".to_owned(),
                        kind: "Release".to_owned(),
                        metadata: Metadata { name, labels },
                        spec: ReleaseSpec {
                            service: ServiceRef {
                                cluster,
                                name: service,
                                region,
                                role_arn: None,
                            },
                            task_definition: TaskDefinitionSpec {
                                from: "web".to_owned(),
                                containers,
                            },
                            strategy: StrategySpec {
                                code_deploy: Some(CodeDeployStrategy {
                                    application,
                                    deployment_group: group,
                                    deployment_config: config,
                                    promotion: if manual {
                                        Promotion::Manual
                                    } else {
                                        Promotion::Auto
                                    },
                                    analysis: None,
                                }),
                                ..StrategySpec::default()
                            },
                            rollback: alarms.map(|a| RollbackSpec {
                                alarms: a.into_iter().collect(),
                            }),
                            paused,
                            on_drift: if converge {
                                OnDrift::Converge
                            } else {
                                OnDrift::Report
                            },
                            notifications: None,
                        },
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_strings(source in any::<String>()) {
            check_errors(parse_documents(&source));
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            check_errors(parse_documents(&String::from_utf8_lossy(&bytes)));
        }

        #[test]
        fn never_panics_on_yaml_like_text(source in "[-a-z0-9:{}\\[\\],&*!|>'\"#%@` \t\r\n.?~]{0,200}") {
            check_errors(parse_documents(&source));
        }

        #[test]
        fn never_panics_on_mangled_documents(
            doc in document(),
            cut in any::<prop::sample::Index>(),
            insert in "[-:{}\\[\\],&*!|>'\"#\n ]{1,3}",
        ) {
            let yaml = document_to_yaml(&doc);
            let mut at = cut.index(yaml.len() + 1);
            while !yaml.is_char_boundary(at) {
                at -= 1;
            }
            let mangled = format!("{}{insert}{}", &yaml[..at], &yaml[at..]);
            check_errors(parse_documents(&mangled));
        }

        #[test]
        fn valid_documents_round_trip_through_yaml_and_json(doc in document()) {
            prop_assert_eq!(validate_document(&doc), vec![]);
            let yaml = document_to_yaml(&doc);
            prop_assert_eq!(parse_documents(&yaml), Ok(vec![doc.clone()]), "{}", yaml);
            let json = document_to_json(&doc);
            prop_assert_eq!(parse_documents(&json), Ok(vec![doc]), "{}", json);
        }

        #[test]
        fn error_indexes_count_every_yaml_document(
            docs in prop::collection::vec((document(), any::<bool>(), any::<bool>()), 1..5),
        ) {
            // Each entry: a document, whether an empty document precedes it, whether it is
            // made invalid. Names are made unique so that only `kind` errors are expected.
            let mut source = String::new();
            let mut position = 0;
            let mut expected = Vec::new();
            for (i, (mut doc, empty_before, invalid)) in docs.into_iter().enumerate() {
                doc.metadata.name = format!("r{i}");
                if empty_before {
                    source.push_str("---\n# empty\n");
                    position += 1;
                }
                if invalid {
                    doc.kind = "Job".to_owned();
                    expected.push(position);
                }
                source.push_str("---\n");
                source.push_str(&document_to_yaml(&doc));
                position += 1;
            }
            match parse_documents(&source) {
                Ok(parsed) => prop_assert!(expected.is_empty(), "{:?}", parsed),
                Err(errors) => {
                    let indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
                    prop_assert_eq!(indexes, expected, "{}", source);
                    for error in &errors {
                        prop_assert_eq!(&error.errors[0].path, "kind");
                    }
                }
            }
        }
    }
}
