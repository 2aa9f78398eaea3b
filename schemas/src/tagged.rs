//! Deserializing internally tagged enums (`{"type": "transaction", ...}`) without a detour.
//!
//! serde's derived deserializer for `#[serde(tag = "...")]` cannot know where the tag is, so it
//! first reads the whole object into an intermediate tree and then decodes the variant from
//! that tree: every CDC and APPLY message (and every column type in it) was decoded twice,
//! with an allocation per node, in the dispatcher's and the sink's hot path. Serializers
//! derived by serde write the tag first; when it is first, [`deserialize`] reads it and hands
//! the rest of the object straight to the variant. An object whose tag comes later (written by
//! hand, say) takes the slow path: it is read into a JSON value and decoded from there, with the
//! same result.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::fmt;
use std::marker::PhantomData;

/// An internally tagged enum that decodes its variant from the object's other fields.
pub(crate) trait TagFirst: Sized {
    /// Name of the tag field.
    const TAG: &'static str;
    /// Every tag value, for the error about an unknown one.
    const VARIANTS: &'static [&'static str];
    /// Decodes variant `tag` from the object's other fields.
    fn variant<'de, D: Deserializer<'de>>(tag: &str, fields: D) -> Result<Self, D::Error>;
}

/// Decodes `T` from an object, its tag field first or anywhere.
pub(crate) fn deserialize<'de, T: TagFirst, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(TagVisitor(PhantomData))
}

/// For unit variants: the object has nothing else worth reading.
pub(crate) fn unit<'de, T, D: Deserializer<'de>>(value: T, fields: D) -> Result<T, D::Error> {
    IgnoredAny::deserialize(fields)?;
    Ok(value)
}

struct TagVisitor<T>(PhantomData<T>);

impl<'de, T: TagFirst> Visitor<'de> for TagVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a `{}` field", T::TAG)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field(T::TAG));
        };
        if first == T::TAG {
            let tag: String = map.next_value()?;
            return T::variant(&tag, de::value::MapAccessDeserializer::new(map));
        }
        let mut fields = Map::new();
        fields.insert(first, map.next_value::<Json>()?);
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            fields.insert(key, value);
        }
        let tag = match fields.remove(T::TAG) {
            Some(Json::String(tag)) => tag,
            Some(other) => return Err(de::Error::custom(format!("`{}` is not a string: {other}", T::TAG))),
            None => return Err(de::Error::missing_field(T::TAG)),
        };
        T::variant(&tag, Json::Object(fields)).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use crate::cdc::{CdcEvent, Heartbeat};
    use crate::value::ColumnType;
    use serde_json::{json, Value as Json};

    fn every_column_type() -> Vec<ColumnType> {
        use ColumnType::*;
        vec![
            Int { bytes: 3, unsigned: true },
            Decimal { precision: 65, scale: 30 },
            Float,
            Double,
            Text { charset: "utf8mb4".into() },
            Binary,
            Date,
            DateTime { fsp: 6 },
            Timestamp { fsp: 3 },
            Time { fsp: 0 },
            Year,
            Enum { labels: vec!["a".into(), "b,c".into()] },
            Set { labels: vec![] },
            Bit { width: 64 },
            Json,
        ]
    }

    /// The same object with its tag moved from the front to the back.
    fn tag_last(v: &Json, tag: &str) -> String {
        let Json::Object(fields) = v else { panic!("not an object: {v}") };
        let mut rest: Vec<String> = fields
            .iter()
            .filter(|(k, _)| *k != tag)
            .map(|(k, v)| format!("{}:{v}", Json::from(k.as_str())))
            .collect();
        rest.push(format!("\"{tag}\":{}", fields[tag]));
        format!("{{{}}}", rest.join(","))
    }

    #[test]
    fn every_column_type_decodes_with_its_tag_first_or_last() {
        for t in every_column_type() {
            let text = serde_json::to_string(&t).unwrap();
            assert!(text.starts_with("{\"kind\":"), "serde writes the tag first: {text}");
            assert_eq!(serde_json::from_str::<ColumnType>(&text).unwrap(), t, "{text}");
            let moved = tag_last(&serde_json::to_value(&t).unwrap(), "kind");
            assert_eq!(serde_json::from_str::<ColumnType>(&moved).unwrap(), t, "{moved}");
        }
    }

    #[test]
    fn events_decode_with_their_tag_first_or_last() {
        let beat = CdcEvent::Heartbeat(Heartbeat { source_time: chrono::DateTime::UNIX_EPOCH });
        let v = serde_json::to_value(&beat).unwrap();
        assert_eq!(serde_json::from_value::<CdcEvent>(v.clone()).unwrap(), beat);
        assert_eq!(serde_json::from_str::<CdcEvent>(&tag_last(&v, "type")).unwrap(), beat);
    }

    #[test]
    fn a_wrong_or_missing_tag_is_an_error_that_names_it() {
        let unknown = serde_json::from_value::<ColumnType>(json!({"kind": "money"})).unwrap_err().to_string();
        assert!(unknown.contains("unknown variant `money`"), "{unknown}");
        let late =
            serde_json::from_value::<ColumnType>(json!({"fsp": 2, "kind": "clock"})).unwrap_err().to_string();
        assert!(late.contains("unknown variant `clock`"), "{late}");
        let missing =
            serde_json::from_value::<CdcEvent>(json!({"source_time": "x"})).unwrap_err().to_string();
        assert!(missing.contains("missing field `type`"), "{missing}");
        let fields =
            serde_json::from_value::<ColumnType>(json!({"kind": "int", "bytes": 4})).unwrap_err().to_string();
        assert!(fields.contains("missing field `unsigned`"), "{fields}");
    }
}
