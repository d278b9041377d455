//! Strings read straight from a node's answer ([`Text`]: borrowed from its bytes when they hold
//! no escapes) and the maps of them an inspect holds (labels as their pairs, exposed ports as
//! their keys), `null` reading as empty.
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A string of a node's answer: borrowed from the answer's bytes when it holds no escapes,
/// `null` and absent read as empty. Another type fails the document, as a `String` field did.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text::default())
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
                d.deserialize_str(V)
            }
        }
        d.deserialize_option(V)
    }
}

/// A map visitor for which `null` (or nothing) reads as an empty value.
struct NullAsEmpty<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for NullAsEmpty<V>
where
    V::Value: Default,
{
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(m)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self.0)
    }
}

/// A map of strings read as its pairs in document order (a later key wins where they are
/// collected, as in a map); `null` reads as empty.
pub(super) fn text_pairs<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(Text<'a>, Text<'a>)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Text<'de>, Text<'de>)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0));
            while let Some(kv) = m.next_entry::<Text<'de>, Text<'de>>()? {
                out.push(kv);
            }
            Ok(out)
        }
    }
    d.deserialize_option(NullAsEmpty(V))
}

/// The keys of a map (values skipped), sorted as a map's; `null` reads as none.
pub(super) fn text_keys<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Text<'a>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Text<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<Text<'de>> = Vec::with_capacity(m.size_hint().unwrap_or(0));
            while let Some((k, IgnoredAny)) = m.next_entry::<Text<'de>, IgnoredAny>()? {
                out.push(k);
            }
            out.sort();
            out.dedup();
            Ok(out)
        }
    }
    d.deserialize_option(NullAsEmpty(V))
}
