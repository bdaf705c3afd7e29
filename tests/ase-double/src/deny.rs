//! The deny list: clients the ASE blocks, by IP, cookie, OAuth2 token, API key or username.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What identifies a denied client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyKind {
    Ip,
    Cookie,
    Token,
    ApiKey,
    Username,
}

impl DenyKind {
    pub const ALL: [DenyKind; 5] =
        [DenyKind::Ip, DenyKind::Cookie, DenyKind::Token, DenyKind::ApiKey, DenyKind::Username];

    pub fn name(self) -> &'static str {
        match self {
            DenyKind::Ip => "ip",
            DenyKind::Cookie => "cookie",
            DenyKind::Token => "token",
            DenyKind::ApiKey => "api_key",
            DenyKind::Username => "username",
        }
    }
}

/// One deny-list entry, as the admin API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyEntry {
    pub kind: DenyKind,
    pub value: String,
}

#[derive(Debug, Default, Clone)]
pub struct DenyList {
    entries: BTreeSet<(DenyKind, String)>,
}

impl DenyList {
    /// Adds an entry; false when it was there already.
    pub fn add(&mut self, kind: DenyKind, value: &str) -> bool {
        self.entries.insert((kind, value.to_string()))
    }

    /// Removes an entry; false when it was not there.
    pub fn remove(&mut self, kind: DenyKind, value: &str) -> bool {
        self.entries.remove(&(kind, value.to_string()))
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn contains(&self, kind: DenyKind, value: &str) -> bool {
        self.entries.contains(&(kind, value.to_string()))
    }

    /// `{"ip": [...], "cookie": [...], "token": [...], "api_key": [...], "username": [...]}`
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for kind in DenyKind::ALL {
            let values: Vec<&str> = self.entries.iter().filter(|(k, _)| *k == kind).map(|(_, v)| v.as_str()).collect();
            map.insert(kind.name().to_string(), serde_json::json!(values));
        }
        serde_json::Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_contains() {
        let mut d = DenyList::default();
        assert!(d.add(DenyKind::Ip, "10.0.0.1"));
        assert!(!d.add(DenyKind::Ip, "10.0.0.1"));
        assert!(d.contains(DenyKind::Ip, "10.0.0.1"));
        // kinds are separate
        assert!(!d.contains(DenyKind::Cookie, "10.0.0.1"));
        assert!(d.remove(DenyKind::Ip, "10.0.0.1"));
        assert!(!d.remove(DenyKind::Ip, "10.0.0.1"));
        assert!(!d.contains(DenyKind::Ip, "10.0.0.1"));
    }

    #[test]
    fn entry_json() {
        let e: DenyEntry = serde_json::from_str(r#"{"kind": "api_key", "value": "k1"}"#).expect("parses");
        assert_eq!(e, DenyEntry { kind: DenyKind::ApiKey, value: "k1".to_string() });
        assert!(serde_json::from_str::<DenyEntry>(r#"{"kind": "apikey", "value": "k1"}"#).is_err());
        assert!(serde_json::from_str::<DenyEntry>(r#"{"kind": "ip"}"#).is_err());
        let mut d = DenyList::default();
        d.add(DenyKind::Username, "alice");
        assert_eq!(d.to_json()["username"], serde_json::json!(["alice"]));
        assert_eq!(d.to_json()["ip"], serde_json::json!([]));
    }
}
