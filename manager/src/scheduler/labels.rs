//! A container's labels, held compactly: one boxed slice of (key, value) pairs sorted by key,
//! keys interned (a cluster has few distinct label keys and up to millions of containers).
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

static KEYS: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Default::default);

/// The one shared copy of `s` (label keys only: the set never shrinks).
pub fn intern(s: &str) -> Arc<str> {
    let mut keys = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = keys.get(s) {
        return k.clone();
    }
    let k: Arc<str> = Arc::from(s);
    keys.insert(k.clone());
    k
}

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<[(Arc<str>, Box<str>)]>);

impl Labels {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| &*self.0[i].1)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }
    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn insert(&mut self, key: String, value: String) {
        let mut v = std::mem::take(&mut self.0).into_vec();
        match v.binary_search_by(|(k, _)| (**k).cmp(key.as_str())) {
            Ok(i) => v[i].1 = value.into(),
            Err(i) => v.insert(i, (intern(&key), value.into())),
        }
        self.0 = v.into_boxed_slice();
    }
}

impl<K: AsRef<str>, V: Into<Box<str>>> FromIterator<(K, V)> for Labels {
    /// A later pair wins over an earlier one with the same key.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(it: I) -> Self {
        let mut v: Vec<(Arc<str>, Box<str>)> = it.into_iter().map(|(k, x)| (intern(k.as_ref()), x.into())).collect();
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, first| later.0 == first.0);
        Labels(v.into_boxed_slice())
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn behaves_like_a_sorted_map() {
        let mut l: Labels = [("b", "2"), ("a", "1"), ("b", "3")].into_iter().collect();
        assert_eq!(l.get("b"), Some("3"), "the later pair wins");
        assert_eq!(l.len(), 2);
        assert!(l.contains_key("a") && !l.contains_key("c"));
        l.insert("c".into(), "x".into());
        l.insert("a".into(), "y".into());
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"a":"y","b":"3","c":"x"}"#);
        let m: Labels = [("b", "3"), ("a", "y"), ("c", "x")].into_iter().collect();
        assert_eq!(l, m);
        assert!(Arc::ptr_eq(&intern("a"), &intern("a")));
    }
}
