//! What the fuzz targets share: the checks each target makes, and the deterministic generator
//! that turns a fuzzer's bytes into a DynamoDB item (with its inverse, [`encode_item`], which
//! turns a real item into seed bytes).
//!
//! # The item format
//!
//! Every byte string decodes to some item (past the end every byte reads as 0: counts are 0,
//! strings empty), so the fuzzer never wastes an input, and the item's size is bounded by the
//! input's. [`encode_item`] gives the bytes of any item within the format's limits. The shape follows the table layout in
//! `src/aws/store.rs`: the `pk` is usually `release#<name>`, the `name` attribute usually the
//! same name, and attribute names are usually the layout's own (`generation`, `spec`,
//! `status`, ...), each with a value of any type.
//!
//! ```text
//! item    := pk_mode name:string name_mode count entry{count % 32}
//!   pk_mode % 8:   0..=4 pk = S("release#" + name), 5 pk = S(name), 6 pk = value, 7 no pk
//!   name_mode % 4: 0, 1 name = S(name), 2 name = value, 3 no name attribute
//! entry   := key value
//! key     := byte < 0xF0: ITEM_KEYS[byte % len] | otherwise string
//! value   := tag % 10, then
//!   0 S string | 1 N number | 2 BOOL byte & 1 | 3 NULL byte & 1 | 4 L count value*
//!   5 M count (string value)* | 6 SS count string* | 7 NS count number* | 8 B string (bytes)
//!   9 BS count string* ; count % 32 elements; none in a collection at depth MAX_DEPTH
//! number  := mode % 6, then 0 u64 LE | 1 i64 LE | 2 f64 bits LE ("NaN", "inf" included)
//!            | 3 byte | 4 string (anything, mostly not a number) | 5 NUMBERS[byte % len]
//! string  := len < 0x80: len raw bytes | 0x80..=0xBF: WORDS[(b - 0x80) % len]
//!            | 0xC0..=0xFF: ((b & 0x3F) << 8 | next) raw bytes; raw bytes read as lossy UTF-8
//! ```

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use switchyard::model::parse::{DocumentError, parse_documents, parse_spec_value};
use switchyard::ports::StoreError;

/// Deepest nesting of lists and maps the generator builds (the item itself is level 0).
pub const MAX_DEPTH: usize = 6;
/// Most elements of one generated list, map or set, plus one (a real status has 17 fields).
pub const MAX_ELEMENTS: usize = 32;
/// Most attributes of one generated item.
pub const MAX_ATTRIBUTES: usize = 32;

/// The attribute names of the table layout, most keys of a generated item.
pub use switchyard::aws::ITEM_ATTRIBUTES as ITEM_KEYS;

/// Strings the decoder cares about: field names of the status, requests, audit entries and
/// spec, enum variants, timestamps. At most 64 (string selectors 0x80..=0xBF).
pub const WORDS: &[&str] = &[
    "",
    "web",
    "release#web",
    "release",
    "2025-01-02T03:04:05Z",
    "2025-13-45T99:99:99Z",
    "arn:aws:iam::111122223333:user/alice",
    "apply",
    "promote",
    "generation",
    "observedGeneration",
    "phase",
    "message",
    "conditions",
    "type",
    "status",
    "reason",
    "lastTransitionTime",
    "history",
    "attempt",
    "outcome",
    "startedAt",
    "finishedAt",
    "taskDefinition",
    "deploymentId",
    "liveTaskDefinition",
    "desiredTaskDefinition",
    "trafficWeights",
    "live",
    "candidate",
    "lifecycleEvent",
    "resolvedFrom",
    "intent",
    "recordedAt",
    "rolloutStartedAt",
    "previousTaskDefinition",
    "stopRequested",
    "handledRequests",
    "requestedBy",
    "requestedAt",
    "at",
    "by",
    "action",
    "detail",
    "Healthy",
    "Progressing",
    "AwaitingPromotion",
    "Ready",
    "True",
    "InSync",
    "Succeeded",
    "service",
    "cluster",
    "containers",
    "image",
    "environment",
    "strategy",
    "codeDeploy",
    "application",
    "deploymentGroup",
    "promotion",
    "rollback",
    "alarms",
    "from",
];

/// Number strings at the edges: out of range for u64 and i64, exponents, signs, blanks.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "1.0",
    "1e2",
    "1e400",
    "-1e400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "",
    " 1",
    "+1",
    "0x10",
    "NaN",
    "inf",
    "1_000",
];

/// The bytes of a fuzz input, read front to back; past the end every byte reads as 0.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    fn eight(&mut self) -> [u8; 8] {
        let mut out = [0u8; 8];
        let bytes = self.take(8);
        out[..bytes.len()].copy_from_slice(bytes);
        out
    }

    fn raw(&mut self) -> Vec<u8> {
        let b = self.byte();
        match b {
            0x00..=0x7F => self.take(b as usize).to_vec(),
            0x80..=0xBF => WORDS[(b - 0x80) as usize % WORDS.len()].as_bytes().to_vec(),
            0xC0..=0xFF => {
                let len = (((b & 0x3F) as usize) << 8) | self.byte() as usize;
                self.take(len).to_vec()
            }
        }
    }

    fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.raw()).into_owned()
    }

    fn number(&mut self) -> String {
        match self.byte() % 6 {
            0 => u64::from_le_bytes(self.eight()).to_string(),
            1 => i64::from_le_bytes(self.eight()).to_string(),
            2 => f64::from_bits(u64::from_le_bytes(self.eight())).to_string(),
            3 => self.byte().to_string(),
            4 => self.string(),
            _ => NUMBERS[self.byte() as usize % NUMBERS.len()].to_owned(),
        }
    }

    fn count(&mut self, depth: usize) -> usize {
        let n = self.byte() as usize % MAX_ELEMENTS;
        if depth >= MAX_DEPTH { 0 } else { n }
    }

    fn value(&mut self, depth: usize) -> AttributeValue {
        match self.byte() % 10 {
            0 => AttributeValue::S(self.string()),
            1 => AttributeValue::N(self.number()),
            2 => AttributeValue::Bool(self.byte() & 1 == 1),
            3 => AttributeValue::Null(self.byte() & 1 == 1),
            4 => {
                let n = self.count(depth);
                AttributeValue::L((0..n).map(|_| self.value(depth + 1)).collect())
            }
            5 => {
                let n = self.count(depth);
                AttributeValue::M(
                    (0..n)
                        .map(|_| (self.string(), self.value(depth + 1)))
                        .collect(),
                )
            }
            6 => {
                let n = self.count(depth);
                AttributeValue::Ss((0..n).map(|_| self.string()).collect())
            }
            7 => {
                let n = self.count(depth);
                AttributeValue::Ns((0..n).map(|_| self.number()).collect())
            }
            8 => AttributeValue::B(Blob::new(self.raw())),
            _ => {
                let n = self.count(depth);
                AttributeValue::Bs((0..n).map(|_| Blob::new(self.raw())).collect())
            }
        }
    }

    fn key(&mut self) -> String {
        let b = self.byte();
        if b < 0xF0 {
            ITEM_KEYS[b as usize % ITEM_KEYS.len()].to_owned()
        } else {
            self.string()
        }
    }
}

/// The item that `data` encodes (see the module documentation). Total and deterministic;
/// its size is bounded by the input's length (a missing byte reads as an empty list).
pub fn item_from_bytes(data: &[u8]) -> HashMap<String, AttributeValue> {
    let mut r = Reader { data, pos: 0 };
    let mut item = HashMap::new();
    let pk_mode = r.byte() % 8;
    let name = r.string();
    let name_mode = r.byte() % 4;
    match pk_mode {
        0..=4 => {
            item.insert(
                "pk".to_owned(),
                AttributeValue::S(format!("release#{name}")),
            );
        }
        5 => {
            item.insert("pk".to_owned(), AttributeValue::S(name.clone()));
        }
        6 => {
            item.insert("pk".to_owned(), r.value(1));
        }
        _ => {}
    }
    match name_mode {
        0 | 1 => {
            item.insert("name".to_owned(), AttributeValue::S(name));
        }
        2 => {
            item.insert("name".to_owned(), r.value(1));
        }
        _ => {}
    }
    let count = r.byte() as usize % MAX_ATTRIBUTES;
    for _ in 0..count {
        let key = r.key();
        let value = r.value(1);
        item.insert(key, value);
    }
    item
}

/// Seed bytes that [`item_from_bytes`] decodes back to `item`, for items whose strings are
/// valid UTF-8 and at most 16383 bytes, whose lists, maps and sets hold at most
/// [`MAX_ELEMENTS`] - 1 elements and nest at most [`MAX_DEPTH`] - 1 levels, and with fewer
/// than [`MAX_ATTRIBUTES`] attributes besides `pk` and `name` (a real release item: the
/// round trip is tested). Map entries are written in key order.
pub fn encode_item(item: &HashMap<String, AttributeValue>) -> Vec<u8> {
    let mut out = Vec::new();
    let name = match item.get("pk") {
        Some(AttributeValue::S(pk)) => pk.strip_prefix("release#").map(str::to_owned),
        _ => None,
    };
    // The name string comes right after `pk_mode`; a `pk` that is not `release#<name>` is
    // written as a value after `name_mode`, in the order `item_from_bytes` reads them.
    out.push(match (&name, item.get("pk")) {
        (Some(_), _) => 0,
        (None, Some(_)) => 6,
        (None, None) => 7,
    });
    put_raw(&mut out, name.as_deref().unwrap_or("").as_bytes());
    let name_value = item.get("name");
    let name_mode = match (&name, name_value) {
        (Some(name), Some(AttributeValue::S(s))) if s == name => 0,
        (_, Some(_)) => 2,
        (_, None) => 3,
    };
    out.push(name_mode);
    if name.is_none()
        && let Some(pk) = item.get("pk")
    {
        put_value(&mut out, pk);
    }
    if name_mode == 2 {
        put_value(&mut out, name_value.expect("name_mode 2 has a name"));
    }
    let mut rest: Vec<(&String, &AttributeValue)> = item
        .iter()
        .filter(|(k, _)| k.as_str() != "pk" && k.as_str() != "name")
        .collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    assert!(rest.len() < MAX_ATTRIBUTES, "too many attributes to encode");
    out.push(rest.len() as u8);
    for (key, value) in rest {
        match ITEM_KEYS.iter().position(|k| k == key) {
            Some(i) => out.push(i as u8),
            None => {
                out.push(0xF0);
                put_raw(&mut out, key.as_bytes());
            }
        }
        put_value(&mut out, value);
    }
    out
}

fn put_raw(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() < 0x80 {
        out.push(bytes.len() as u8);
    } else {
        assert!(bytes.len() < 0x4000, "a string too long to encode");
        out.push(0xC0 | (bytes.len() >> 8) as u8);
        out.push(bytes.len() as u8);
    }
    out.extend_from_slice(bytes);
}

fn put_number(out: &mut Vec<u8>, n: &str) {
    out.push(4);
    put_raw(out, n.as_bytes());
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    assert!(n < MAX_ELEMENTS, "a collection too long to encode");
    out.push(n as u8);
}

fn put_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::S(s) => {
            out.push(0);
            put_raw(out, s.as_bytes());
        }
        AttributeValue::N(n) => {
            out.push(1);
            put_number(out, n);
        }
        AttributeValue::Bool(b) => out.extend([2, *b as u8]),
        AttributeValue::Null(b) => out.extend([3, *b as u8]),
        AttributeValue::L(items) => {
            out.push(4);
            put_count(out, items.len());
            for item in items {
                put_value(out, item);
            }
        }
        AttributeValue::M(map) => {
            out.push(5);
            put_count(out, map.len());
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (key, value) in entries {
                put_raw(out, key.as_bytes());
                put_value(out, value);
            }
        }
        AttributeValue::Ss(items) => {
            out.push(6);
            put_count(out, items.len());
            for item in items {
                put_raw(out, item.as_bytes());
            }
        }
        AttributeValue::Ns(items) => {
            out.push(7);
            put_count(out, items.len());
            for item in items {
                put_number(out, item);
            }
        }
        AttributeValue::B(blob) => {
            out.push(8);
            put_raw(out, blob.as_ref());
        }
        AttributeValue::Bs(items) => {
            out.push(9);
            put_count(out, items.len());
            for item in items {
                put_raw(out, item.as_ref());
            }
        }
        other => panic!("no encoding for {other:?}"),
    }
}

/// The `parse_documents` target: no panic, and every rejection names a path and says why.
/// A document that parses is written back as YAML and as JSON, and must parse to itself.
pub fn check_parse_documents(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    match parse_documents(&source) {
        Ok(documents) => {
            for doc in &documents {
                let yaml = switchyard::model::parse::document_to_yaml(doc);
                let json = switchyard::model::parse::document_to_json(doc);
                assert_eq!(
                    parse_documents(&yaml).as_deref(),
                    Ok(std::slice::from_ref(doc)),
                    "a parsed document does not read back from its YAML:\n{yaml}"
                );
                assert_eq!(
                    parse_documents(&json).as_deref(),
                    Ok(std::slice::from_ref(doc)),
                    "a parsed document does not read back from its JSON:\n{json}"
                );
            }
        }
        Err(errors) => check_document_errors(&errors),
    }
}

fn check_document_errors(errors: &[DocumentError]) {
    assert!(!errors.is_empty(), "an Err without errors");
    for document in errors {
        assert!(
            !document.errors.is_empty(),
            "document {} is rejected without a reason",
            document.index
        );
        for error in &document.errors {
            assert!(
                !error.path.trim().is_empty(),
                "an error without a path: {error:?}"
            );
            assert!(
                !error.message.trim().is_empty(),
                "an error without a message: {error:?}"
            );
        }
    }
}

/// The `parse_spec_value` target: no panic for any JSON value, and every error names a path
/// under `spec` and says why.
pub fn check_parse_spec_value(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Err(errors) = parse_spec_value(&value) {
        assert!(!errors.is_empty(), "an Err without errors for {value}");
        for error in &errors {
            assert!(
                error.path == "spec"
                    || error.path.starts_with("spec.")
                    || error.path.starts_with("spec["),
                "an error outside spec: {error:?} for {value}"
            );
            assert!(
                !error.message.trim().is_empty(),
                "an error without a message: {error:?} for {value}"
            );
        }
    }
}

/// The `decode_item` target: no panic, and every rejection is `Corrupt` with a message.
/// Decoding is deterministic in its outcome: the same item decodes to the same release, or is
/// refused again. (Not in its message: serde_dynamo copies the item into a map with a fresh
/// hash seed, so of several bad attributes, which one a refusal names varies from call to call.)
pub fn check_decode_item(data: &[u8]) {
    let item = item_from_bytes(data);
    let first = switchyard::aws::decode_item(item.clone());
    match &first {
        Ok(release) => {
            let key_name = match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.strip_prefix("release#"),
                _ => None,
            };
            assert_eq!(
                key_name,
                Some(release.name.as_str()),
                "a decoded release's name is not its key's"
            );
        }
        Err(StoreError::Corrupt { message, .. }) => {
            assert!(
                !message.trim().is_empty(),
                "Corrupt without a message: {item:?}"
            );
        }
        Err(other) => panic!("an error other than Corrupt: {other:?} for {item:?}"),
    }
    let again = switchyard::aws::decode_item(item);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the same item decodes to two releases"),
        (Err(_), Err(_)) => {}
        _ => panic!("the same item is accepted once and refused once: {first:?} / {again:?}"),
    }
}

#[cfg(test)]
mod tests;
