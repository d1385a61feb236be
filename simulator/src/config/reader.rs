//! Typed access to the keys of ASTRA-sim's JSON configs.
//!
//! ASTRA-sim reads its JSON with nlohmann::json: `j.contains(key)` then an
//! implicit conversion to the C++ field's type. The conversions kept here:
//! a number read into an `int` is truncated toward zero (warned about here,
//! since it is rarely intended); a string where a number is expected, or a
//! number where a string is expected, makes nlohmann throw, so it is an error.

use std::path::Path;

use serde_json::{Map, Value};

use super::error::{ConfigError, Result};

/// Parses JSON text; a syntax error names the line and column, and a
/// top-level key given twice is an error naming it.
pub(crate) fn parse_json(text: &str, path: &Path) -> Result<Value> {
    parse_json_unique(text, path, "key")
}

/// [`parse_json`], calling the top-level keys `noun` in the repeated-key error
/// ("each group id defined once"). A JSON object keeps the last of repeated
/// keys, so a setting or group given twice would silently lose its first value.
pub(crate) fn parse_json_unique(text: &str, path: &Path, noun: &str) -> Result<Value> {
    let doc = serde_json::from_str(text).map_err(|e| {
        ConfigError::syntax(path, "JSON", format!("line {}, column {}: ", e.line(), e.column()), e.to_string())
    })?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(key) = top_level_keys(text).into_iter().flatten().find(|k| !seen.insert(k.clone())) {
        return Err(ConfigError::invalid(path, &key, format!("each {noun} defined once"), "two definitions"));
    }
    Ok(doc)
}

/// The keys of a JSON document's top-level object in file order, repeats
/// included (`None` when it is not an object).
fn top_level_keys(text: &str) -> Option<Vec<String>> {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys(Vec<String>);
    struct KeysVisitor;
    impl<'de> Visitor<'de> for KeysVisitor {
        type Value = Keys;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Keys, A::Error> {
            let mut keys = Vec::new();
            while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(key);
            }
            Ok(Keys(keys))
        }
    }
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Keys, D::Error> {
            d.deserialize_map(KeysVisitor)
        }
    }
    serde_json::from_str::<Keys>(text).ok().map(|k| k.0)
}

/// A short description of a value for "got ..." in messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(a) => format!("a list of {} item(s)", a.len()),
        Value::Object(_) => "an object".to_string(),
    }
}

/// Quotes a string for a message, cut to a readable length.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{:?}…", cut)
    } else {
        format!("{s:?}")
    }
}

/// The top-level object of an ASTRA-sim JSON config.
pub(crate) struct Keys<'a> {
    path: &'a Path,
    map: &'a Map<String, Value>,
}

impl<'a> Keys<'a> {
    /// The keys of `value`, which must be a JSON object.
    pub(crate) fn root(value: &'a Value, path: &'a Path) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Keys { path, map }),
            other => Err(ConfigError::invalid(path, "(top level)", "a JSON object of settings", describe(other))),
        }
    }

    /// The raw value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// A finite number (integer or not).
    pub(crate) fn number(&self, key: &str) -> Result<Option<f64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(x) if v.is_number() && x.is_finite() => Ok(Some(x)),
            _ => Err(ConfigError::invalid(self.path, key, "a number", describe(v))),
        }
    }

    /// A number stored by ASTRA-sim in a C++ `int`: whole numbers from
    /// `i32::MIN` to `i32::MAX`; a fractional number is truncated toward zero
    /// as ASTRA-sim's conversion does, with a warning.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>> {
        self.integer(key, i32::MIN as i64, i32::MAX as i64)
    }

    /// A whole number in `min..=max`, truncating fractions as `int` does.
    pub(crate) fn integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = || format!("a whole number from {min} to {max}");
        let n = match v {
            Value::Number(n) => n,
            other => return Err(ConfigError::invalid(self.path, key, expected(), describe(other))),
        };
        let value = if let Some(i) = n.as_i64() {
            i
        } else {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if !x.is_finite() || x.trunc() < min as f64 || x.trunc() > max as f64 {
                return Err(ConfigError::invalid(self.path, key, expected(), describe(v)));
            }
            let t = x.trunc() as i64;
            if t as f64 != x {
                tracing::warn!(
                    "{}: key `{key}`: {x} is not a whole number; ASTRA-sim truncates it to {t}, and so does Strata",
                    self.path.display()
                );
            }
            t
        };
        if value < min || value > max {
            return Err(ConfigError::invalid(self.path, key, expected(), describe(v)));
        }
        Ok(Some(value))
    }

    /// An on/off switch that ASTRA-sim tests with `j[key] != 0`: any number
    /// (non-zero is on) or a JSON boolean.
    ///
    /// nlohmann compares a boolean with 0 as unequal, so ASTRA-sim turns the
    /// switch on for `false` as well; Strata reads `false` as off and warns.
    pub(crate) fn flag(&self, key: &str) -> Result<Option<bool>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v {
            Value::Number(n) => Ok(Some(n.as_f64().is_some_and(|x| x != 0.0))),
            Value::Bool(b) => {
                if !b {
                    tracing::warn!(
                        "{}: key `{key}`: `false` is read as off; ASTRA-sim 518bd513 compares the value with 0 and would turn it on (write 0 instead)",
                        self.path.display()
                    );
                }
                Ok(Some(*b))
            }
            other => Err(ConfigError::invalid(self.path, key, "0 or 1 (or a boolean)", describe(other))),
        }
    }

    /// A string.
    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v {
            Value::String(s) => Ok(Some(s)),
            other => Err(ConfigError::invalid(self.path, key, "a string", describe(other))),
        }
    }

    /// A list of strings; the key in errors carries the index (`key[2]`).
    pub(crate) fn string_list(&self, key: &str) -> Result<Option<Vec<&'a str>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(ConfigError::invalid(self.path, key, "a list of strings", describe(v)));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.as_str()),
                other => {
                    return Err(ConfigError::invalid(self.path, format!("{key}[{i}]"), "a string", describe(other)))
                }
            }
        }
        Ok(Some(out))
    }

    /// Warns about every key that is neither in `known` nor in `silent`.
    /// Keys in `legacy` get a warning of their own: older ASTRA-sim versions
    /// read them, the one Strata follows does not. Keys starting with `_`
    /// (`"_comment"`) are comments: JSON has no other kind, and ASTRA-sim
    /// ignores them like any unknown key.
    pub(crate) fn warn_unknown(&self, what: &str, known: &[&str], silent: &[&str], legacy: &[&str]) {
        for key in self.map.keys() {
            let k = key.as_str();
            if known.contains(&k) || silent.contains(&k) || k.starts_with('_') {
                continue;
            }
            if legacy.contains(&k) {
                tracing::warn!(
                    "{}: key `{k}` is ignored: older ASTRA-sim versions read it, ASTRA-sim 518bd513 (which Strata follows) does not",
                    self.path.display()
                );
            } else {
                tracing::warn!(
                    "{}: unknown {what} key `{k}` is ignored (ASTRA-sim ignores it too); known keys: {}",
                    self.path.display(),
                    known.join(", ")
                );
            }
        }
    }
}
