//! Mutations: byte-level (flips, inserts, deletes, copies, splices, dictionary tokens, edge
//! bytes) and structure-aware for JSON (a value replaced by another shape, an element duplicated
//! or dropped, a value nested deeply, a key renamed or repeated), stacked a few at a time.

use crate::Rng;
use serde_json::{Map, Value};

/// Bytes that tend to matter to parsers: structure, quotes, escapes, separators, UTF-8 leads.
const EDGE_BYTES: &[u8] = b"{}[]\":,\\ \t\n\r0-+.eEnul/#|*<>!?\x00\x7f\xc3\xe2\xf0\xff";

/// Values a JSON field may be replaced with.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1e400",
    "-0.0",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5e12",
    "253402300800",
    "99999999999999999999",
    "0.000001",
];

/// One mutant of `base` (with `other` for splices), at most `max` bytes long.
pub fn mutate(
    rng: &mut Rng,
    base: &[u8],
    other: &[u8],
    dictionary: &[&str],
    max: usize,
) -> Vec<u8> {
    let mut data = if rng.one_in(3) {
        structural(rng, base, dictionary).unwrap_or_else(|| base.to_vec())
    } else {
        base.to_vec()
    };
    let stacked = 1 + rng.below(4);
    for _ in 0..stacked {
        byte_level(rng, &mut data, other, dictionary);
    }
    data.truncate(max);
    data
}

fn byte_level(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], dictionary: &[&str]) {
    let len = data.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = EDGE_BYTES[rng.below(EDGE_BYTES.len())];
        }
        2 => {
            let i = rng.below(len + 1);
            let byte = if rng.one_in(2) {
                EDGE_BYTES[rng.below(EDGE_BYTES.len())]
            } else {
                (rng.next_u64() & 0xff) as u8
            };
            data.insert(i, byte);
        }
        3 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(16)).min(len);
            data.drain(start..end);
        }
        4 if len > 0 => {
            // Copy a chunk elsewhere (repeats keys, brackets, escapes).
            let start = rng.below(len);
            let end = (start + 1 + rng.below(32)).min(len);
            let chunk = data[start..end].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        5 | 6 if !dictionary.is_empty() => {
            let token = dictionary[rng.below(dictionary.len())].as_bytes();
            let at = rng.below(len + 1);
            if rng.one_in(2) && at < len {
                let end = (at + token.len()).min(len);
                data.splice(at..end, token.iter().copied());
            } else {
                data.splice(at..at, token.iter().copied());
            }
        }
        7 if !other.is_empty() => {
            // Splice: a prefix of this input, a suffix of another.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        8 if len > 0 => {
            // Cut short, as a dropped connection would.
            data.truncate(rng.below(len));
        }
        _ if len > 1 => {
            let a = rng.below(len);
            let b = rng.below(len);
            data.swap(a, b);
        }
        _ => data.push(EDGE_BYTES[rng.below(EDGE_BYTES.len())]),
    }
}

/// A structural mutant of `base` when it is JSON.
fn structural(rng: &mut Rng, base: &[u8], dictionary: &[&str]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(base).ok()?;
    let nodes = count(&value);
    let target = rng.below(nodes);
    let mut index = 0;
    edit(rng, &mut value, target, &mut index, dictionary);
    if rng.one_in(8) {
        serde_json::to_vec_pretty(&value).ok()
    } else {
        serde_json::to_vec(&value).ok()
    }
}

fn count(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}

/// Walks to the `target`-th node (pre-order) and changes it; true once done.
fn edit(
    rng: &mut Rng,
    value: &mut Value,
    target: usize,
    index: &mut usize,
    dictionary: &[&str],
) -> bool {
    if *index == target {
        change(rng, value, dictionary);
        return true;
    }
    *index += 1;
    match value {
        Value::Array(items) => items
            .iter_mut()
            .any(|item| edit(rng, item, target, index, dictionary)),
        Value::Object(map) => map
            .values_mut()
            .any(|item| edit(rng, item, target, index, dictionary)),
        _ => false,
    }
}

fn change(rng: &mut Rng, value: &mut Value, dictionary: &[&str]) {
    match rng.below(9) {
        0 => *value = random_value(rng, dictionary, 2),
        1 => {
            // The same value, wrapped in a list or an object (a shape the parser may not expect).
            let inner = value.take();
            *value = if rng.one_in(2) {
                Value::Array(vec![inner])
            } else {
                let mut map = Map::new();
                map.insert(word(rng, dictionary), inner);
                Value::Object(map)
            };
        }
        2 => {
            // Deep nesting: around the item depth limit and serde_json's recursion limit.
            let depth = [8, 63, 64, 65, 100, 126, 127, 128, 200][rng.below(9)];
            let mut inner = value.take();
            for level in 0..depth {
                inner = if level % 2 == 0 {
                    Value::Array(vec![inner])
                } else {
                    let mut map = Map::new();
                    map.insert("a".to_owned(), inner);
                    Value::Object(map)
                };
            }
            *value = inner;
        }
        3 => match value {
            Value::Array(items) if !items.is_empty() => {
                let i = rng.below(items.len());
                let copy = items[i].clone();
                items.insert(rng.below(items.len() + 1), copy);
            }
            Value::Object(map) if !map.is_empty() => {
                let i = rng.below(map.len());
                if let Some(key) = map.keys().nth(i).cloned() {
                    map.remove(&key);
                }
            }
            _ => *value = Value::Null,
        },
        4 => match value {
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            Value::Object(map) => {
                map.insert(word(rng, dictionary), random_value(rng, dictionary, 1));
            }
            _ => *value = Value::Array(Vec::new()),
        },
        5 => {
            let text = word(rng, dictionary);
            *value = Value::String(text);
        }
        6 => {
            let number = EDGE_NUMBERS[rng.below(EDGE_NUMBERS.len())];
            *value = serde_json::from_str(number).unwrap_or(Value::Null);
        }
        7 => match value {
            Value::String(text) => {
                // Long, odd or multi-byte text in a string field.
                let mut s = text.clone();
                match rng.below(4) {
                    0 => s = s.repeat(1 + rng.below(64)),
                    1 => s.push_str("\u{0}\u{202e}é😀"),
                    2 => s = s.to_uppercase(),
                    _ => s.clear(),
                }
                *text = s;
            }
            _ => *value = Value::Bool(rng.one_in(2)),
        },
        _ => *value = Value::Null,
    }
}

fn word(rng: &mut Rng, dictionary: &[&str]) -> String {
    if dictionary.is_empty() || rng.one_in(4) {
        return format!("k{}", rng.below(1000));
    }
    dictionary[rng.below(dictionary.len())].to_owned()
}

fn random_value(rng: &mut Rng, dictionary: &[&str], depth: usize) -> Value {
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => {
            serde_json::from_str(EDGE_NUMBERS[rng.below(EDGE_NUMBERS.len())]).unwrap_or(Value::Null)
        }
        3 => Value::String(word(rng, dictionary)),
        4 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, dictionary, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| {
                    (
                        word(rng, dictionary),
                        random_value(rng, dictionary, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_stay_within_their_size_limit_and_differ_from_the_base() {
        let mut rng = Rng::new(3);
        let base =
            br#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"x"}]}}]}]}"#;
        let mut changed = 0;
        for _ in 0..2_000 {
            let mutant = mutate(&mut rng, base, b"[1,2]", &["field", "messages"], 256);
            assert!(mutant.len() <= 256);
            if mutant != base {
                changed += 1;
            }
        }
        assert!(changed > 1_900, "only {changed} of 2000 mutants differ");
    }
}
