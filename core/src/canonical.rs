//! Canonical JSON bytes: the input of every digest (manifest, audit chain).
//!
//! Decision: object keys are sorted by their UTF-8 bytes (not UTF-16 code units as JCS
//! does; the two only differ for keys outside the BMP mixed with U+E000..U+FFFF, and all
//! our keys are ASCII), no whitespace anywhere, strings and numbers exactly as serde_json
//! writes them. The sort is done here explicitly so the result does not depend on
//! serde_json's `preserve_order` feature, which any crate in the build may switch on.

use serde_json::Value;

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

/// The canonical form as a `String` (it is always valid UTF-8).
pub fn to_string(value: &Value) -> String {
    String::from_utf8(to_vec(value)).expect("canonical JSON is UTF-8")
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Scalars: serde_json's own compact form (escapes, number formatting).
            serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec cannot fail");
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_recursively_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "s"}});
        assert_eq!(
            to_string(&v),
            r#"{"a":{"c":"s","z":[3,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn byte_order_and_escapes() {
        let v = json!({"é": 1, "Z": 2, "a": 3, "q\"\n": "\u{1}"});
        assert_eq!(
            to_string(&v),
            "{\"Z\":2,\"a\":3,\"q\\\"\\n\":\"\\u0001\",\"é\":1}"
        );
    }

    #[test]
    fn numbers_as_serde_json_writes_them() {
        assert_eq!(
            to_string(&json!([1, -2, 1.5, 1e20, u64::MAX])),
            "[1,-2,1.5,1e+20,18446744073709551615]"
        );
    }

    #[test]
    fn independent_of_insertion_order() {
        let mut a = serde_json::Map::new();
        a.insert("x".into(), json!(1));
        a.insert("y".into(), json!(2));
        let mut b = serde_json::Map::new();
        b.insert("y".into(), json!(2));
        b.insert("x".into(), json!(1));
        assert_eq!(to_vec(&Value::Object(a)), to_vec(&Value::Object(b)));
    }
}
