//! [`ValueMap`]: the map inside values (a resource's attributes, a block,
//! an object), keyed by name and iterated in name order.
//!
//! Almost every map a configuration makes is small: a resource's dozen
//! attributes, a column's type and bounds. A `BTreeMap` gives each of them
//! a node of eleven slots (about 630 bytes) however few entries it holds,
//! and 100,000 resources spent more memory on those nodes than on anything
//! else. A small map here is one vector of entries sorted by name, exactly
//! as large as it needs to be; past [`SMALL_MAP_LIMIT`] entries it becomes a
//! `BTreeMap`, so a map a user builds with `for` over many keys is never
//! quadratic to fill. Both forms iterate in name order and compare equal
//! when their entries do, so callers cannot tell which they hold.

use std::borrow::Borrow;
use std::collections::{btree_map, BTreeMap};
use std::fmt;

use crate::value::Value;

/// How many entries a map keeps in one sorted vector before it becomes a
/// `BTreeMap`. An insert into the vector moves the entries after it; at 32
/// entries of 56 bytes that is still cheaper than a B-tree's search.
pub const SMALL_MAP_LIMIT: usize = 32;

/// A map from names to values, iterated in name order.
#[derive(Clone, Default)]
pub struct ValueMap {
    entries: Entries,
}

#[derive(Clone)]
enum Entries {
    /// Sorted by name, no name twice.
    Small(Vec<(String, Value)>),
    /// Boxed so a map stays the size of a vector, and so every `Value`
    /// stays 32 bytes: large maps are rare, small ones are everywhere.
    #[allow(clippy::box_collection)]
    Large(Box<BTreeMap<String, Value>>),
}

impl Default for Entries {
    fn default() -> Entries {
        Entries::Small(Vec::new())
    }
}

impl ValueMap {
    pub fn new() -> ValueMap {
        ValueMap::default()
    }

    /// An empty map with room for `capacity` entries without growing.
    pub fn with_capacity(capacity: usize) -> ValueMap {
        if capacity > SMALL_MAP_LIMIT {
            ValueMap { entries: Entries::Large(Box::default()) }
        } else {
            ValueMap { entries: Entries::Small(Vec::with_capacity(capacity)) }
        }
    }

    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Small(entries) => entries.len(),
            Entries::Large(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn position<Q: Borrow<str> + ?Sized>(entries: &[(String, Value)], key: &Q) -> Result<usize, usize> {
        let key = key.borrow();
        entries.binary_search_by(|(name, _)| name.as_str().cmp(key))
    }

    pub fn get<Q: Borrow<str> + ?Sized>(&self, key: &Q) -> Option<&Value> {
        match &self.entries {
            Entries::Small(entries) => Self::position(entries, key).ok().map(|index| &entries[index].1),
            Entries::Large(map) => map.get(key.borrow()),
        }
    }

    pub fn get_mut<Q: Borrow<str> + ?Sized>(&mut self, key: &Q) -> Option<&mut Value> {
        match &mut self.entries {
            Entries::Small(entries) => Self::position(entries, key).ok().map(|index| &mut entries[index].1),
            Entries::Large(map) => map.get_mut(key.borrow()),
        }
    }

    pub fn contains_key<Q: Borrow<str> + ?Sized>(&self, key: &Q) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match &mut self.entries {
            Entries::Small(entries) => match Self::position(entries, key.as_str()) {
                Ok(index) => Some(std::mem::replace(&mut entries[index].1, value)),
                Err(index) if entries.len() < SMALL_MAP_LIMIT => {
                    entries.insert(index, (key, value));
                    None
                }
                Err(_) => {
                    let mut map: BTreeMap<String, Value> = std::mem::take(entries).into_iter().collect();
                    map.insert(key, value);
                    self.entries = Entries::Large(Box::new(map));
                    None
                }
            },
            Entries::Large(map) => map.insert(key, value),
        }
    }

    pub fn remove<Q: Borrow<str> + ?Sized>(&mut self, key: &Q) -> Option<Value> {
        match &mut self.entries {
            Entries::Small(entries) => Self::position(entries, key).ok().map(|index| entries.remove(index).1),
            Entries::Large(map) => map.remove(key.borrow()),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.entries {
            Entries::Small(entries) => Iter::Small(entries.iter()),
            Entries::Large(map) => Iter::Large(map.iter()),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.iter().map(|(key, _)| key)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + Clone {
        self.iter().map(|(_, value)| value)
    }

    /// Keeps the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Value) -> bool) {
        match &mut self.entries {
            Entries::Small(entries) => entries.retain_mut(|(key, value)| keep(key, value)),
            Entries::Large(map) => map.retain(|key, value| keep(key, value)),
        }
    }
}

impl PartialEq for ValueMap {
    fn eq(&self, other: &ValueMap) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for ValueMap {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, Value)> for ValueMap {
    /// Later entries win over earlier ones with the same name, as with
    /// repeated inserts.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(entries: I) -> ValueMap {
        let mut entries: Vec<(String, Value)> = entries.into_iter().collect();
        if entries.len() > SMALL_MAP_LIMIT {
            return ValueMap { entries: Entries::Large(Box::new(entries.into_iter().collect())) };
        }
        if !entries.is_sorted_by(|(left, _), (right, _)| left < right) {
            // Stable, so of equal names the last one written is last.
            entries.sort_by(|(left, _), (right, _)| left.cmp(right));
            let mut kept: Vec<(String, Value)> = Vec::with_capacity(entries.len());
            for entry in entries {
                match kept.last_mut() {
                    Some(last) if last.0 == entry.0 => *last = entry,
                    _ => kept.push(entry),
                }
            }
            entries = kept;
        }
        ValueMap { entries: Entries::Small(entries) }
    }
}

impl<const N: usize> From<[(String, Value); N]> for ValueMap {
    fn from(entries: [(String, Value); N]) -> ValueMap {
        entries.into_iter().collect()
    }
}

impl Extend<(String, Value)> for ValueMap {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

/// The entries of a [`ValueMap`] in name order.
#[derive(Clone)]
pub enum Iter<'a> {
    Small(std::slice::Iter<'a, (String, Value)>),
    Large(btree_map::Iter<'a, String, Value>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(entries) => entries.next().map(|(key, value)| (key, value)),
            Iter::Large(entries) => entries.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Small(entries) => entries.size_hint(),
            Iter::Large(entries) => entries.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(entries) => entries.next_back().map(|(key, value)| (key, value)),
            Iter::Large(entries) => entries.next_back(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The owned entries of a [`ValueMap`] in name order.
pub enum IntoIter {
    Small(std::vec::IntoIter<(String, Value)>),
    Large(btree_map::IntoIter<String, Value>),
}

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::Small(entries) => entries.next(),
            IntoIter::Large(entries) => entries.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            IntoIter::Small(entries) => entries.size_hint(),
            IntoIter::Large(entries) => entries.size_hint(),
        }
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::Small(entries) => entries.next_back(),
            IntoIter::Large(entries) => entries.next_back(),
        }
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for ValueMap {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        match self.entries {
            Entries::Small(entries) => IntoIter::Small(entries.into_iter()),
            Entries::Large(map) => IntoIter::Large(map.into_iter()),
        }
    }
}

impl<'a> IntoIterator for &'a ValueMap {
    type Item = (&'a String, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(value: f64) -> Value {
        Value::Number(value)
    }

    fn is_large(map: &ValueMap) -> bool {
        matches!(map.entries, Entries::Large(_))
    }

    /// The same operations on a `ValueMap` and a `BTreeMap` give the same
    /// answers and the same order, across the change from vector to tree.
    #[test]
    fn behaves_like_a_btree_map_on_both_sides_of_the_limit() {
        let mut ours = ValueMap::new();
        let mut reference: BTreeMap<String, Value> = BTreeMap::new();
        // A fixed, scrambled order with repeats: 7 is coprime with 50.
        for step in 0..120 {
            let key = format!("k{:02}", (step * 7) % 50);
            assert_eq!(ours.insert(key.clone(), number(step as f64)), reference.insert(key, number(step as f64)));
            if step % 9 == 0 {
                let gone = format!("k{:02}", (step * 3) % 50);
                assert_eq!(ours.remove(gone.as_str()), reference.remove(&gone));
            }
            assert_eq!(ours.len(), reference.len());
            assert!(ours.iter().eq(reference.iter()), "order differs after step {step}");
        }
        assert!(is_large(&ours));
        assert_eq!(ours.get("k07"), reference.get("k07"));
        assert!(ours.keys().rev().eq(reference.keys().rev()));
        assert_eq!(ours.clone().into_iter().collect::<Vec<_>>(), reference.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_small_map_stays_a_vector_and_a_large_one_becomes_a_tree() {
        let small: ValueMap = (0..SMALL_MAP_LIMIT).map(|index| (format!("k{index:03}"), Value::Null)).collect();
        assert!(!is_large(&small));
        let mut grown = small.clone();
        grown.insert("k999".to_owned(), Value::Null);
        assert!(is_large(&grown));
        let large: ValueMap = (0..=SMALL_MAP_LIMIT).map(|index| (format!("k{index:03}"), Value::Null)).collect();
        assert!(is_large(&large));
        assert_eq!(grown, large.clone().into_iter().chain([("k999".to_owned(), Value::Null)]).filter(|(key, _)| key != "k032").collect());
    }

    #[test]
    fn collecting_keeps_the_last_value_written_for_a_name() {
        let map: ValueMap =
            [("b".to_owned(), number(1.0)), ("a".to_owned(), number(2.0)), ("b".to_owned(), number(3.0))].into_iter().collect();
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("b"), Some(&number(3.0)));
        assert!(map.keys().eq(["a", "b"].iter().map(|key| key.to_string()).collect::<Vec<_>>().iter()));
    }

    #[test]
    fn maps_with_the_same_entries_are_equal_whatever_their_form() {
        let entries: Vec<(String, Value)> = (0..40).map(|index| (format!("k{index:02}"), number(index as f64))).collect();
        let large: ValueMap = entries.iter().cloned().collect();
        let mut shrunk = large.clone();
        shrunk.retain(|key, _| key.as_str() < "k10");
        let small: ValueMap = entries.into_iter().take(10).collect();
        assert!(is_large(&shrunk) && !is_large(&small));
        assert_eq!(shrunk, small);
        assert_eq!(format!("{small:?}").matches(':').count(), 10);
    }

    #[test]
    fn a_map_is_no_larger_than_a_vector() {
        assert_eq!(std::mem::size_of::<ValueMap>(), std::mem::size_of::<Vec<(String, Value)>>());
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }
}
