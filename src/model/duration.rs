//! A duration as a document writes it (`30s`, `5m`, `1h 30m`): parsed when the document is
//! read, so a duration that does not parse is an error naming its field, and written back
//! exactly as it was given.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses `30s`, `5m`, `1h 30m` (jiff's friendly format) into a non-negative duration.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a duration like 30s, 5m or 1h 30m"))?;
    if parsed.is_negative() {
        return Err(format!("`{value}` is negative"));
    }
    Ok(parsed.unsigned_abs())
}

/// A duration of a document, with the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationSpec {
    text: String,
    value: Duration,
}

impl DurationSpec {
    /// A duration written as `text`; `Err` says why it does not parse.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(Self {
            text: text.to_string(),
            value: parse_duration(text)?,
        })
    }

    pub fn get(&self) -> Duration {
        self.value
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DurationSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_people_write_them_and_keep_their_text() {
        let d = DurationSpec::parse("1h 30m").unwrap();
        assert_eq!(d.get(), Duration::from_secs(5400));
        assert_eq!(d.as_str(), "1h 30m");
        assert_eq!(
            DurationSpec::parse("5m").unwrap().get(),
            Duration::from_secs(300)
        );
        assert!(
            DurationSpec::parse("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(DurationSpec::parse("-5s").is_err());
    }
}
