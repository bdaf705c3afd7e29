//! `ase_mirror NAME | off;`: the group that also gets a copy of every check and report
//! from a location, resolved by name once the http block is read (as `ase_pass`).

use super::{LocConf, MainConf};

/// `ase_mirror`'s argument that sends no copy (and undoes an inherited one).
const OFF: &str = "off";

impl LocConf {
    /// Inherits `ase_mirror` and finds its group, after `resolve_pass`: `Err` (message,
    /// where the `ase_mirror` is) for a name no `ase_upstream` block has. A location whose
    /// `ase_pass` is the mirror group itself sends no copy: its calls go there already.
    pub fn resolve_mirror(&mut self, prev: &LocConf, main: &MainConf) -> Result<(), (String, String)> {
        if self.mirror.is_none() {
            self.mirror = prev.mirror.clone();
        }
        self.mirror_group = match &self.mirror {
            None => None,
            Some((name, _)) if name == OFF => None,
            Some((name, at)) => {
                let g = main.group_index(name).ok_or_else(|| {
                    (format!("no \"ase_upstream\" block is named \"{name}\" in \"ase_mirror\" directive"), at.clone())
                })?;
                (g != self.group).then_some(g)
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::GroupConf;

    fn main_with(names: &[&str]) -> MainConf {
        let mut m = MainConf::default();
        for n in names {
            m.groups.push(GroupConf { name: (*n).into(), ..GroupConf::default() });
        }
        m
    }

    fn at(name: &str) -> Option<(String, String)> {
        Some((name.into(), "nginx.conf:7".into()))
    }

    #[test]
    fn inherited_resolved_and_turned_off() {
        let m = main_with(&["old", "new"]);
        let mut http = LocConf { mirror: at("new"), ..LocConf::default() };
        http.resolve_mirror(&LocConf::default(), &m).unwrap();
        assert_eq!(http.mirror_group, Some(2));
        let mut server = LocConf::default();
        server.resolve_mirror(&http, &m).unwrap();
        assert_eq!(server.mirror_group, Some(2), "inherited");
        let mut off = LocConf { mirror: at("off"), ..LocConf::default() };
        off.resolve_mirror(&server, &m).unwrap();
        assert_eq!(off.mirror_group, None);
        let mut below_off = LocConf::default();
        below_off.resolve_mirror(&off, &m).unwrap();
        assert_eq!(below_off.mirror_group, None, "off is inherited too");
        let mut to_default = LocConf { group: 1, mirror: at("default"), ..LocConf::default() };
        to_default.resolve_mirror(&LocConf::default(), &m).unwrap();
        assert_eq!(to_default.mirror_group, Some(0), "the default group can be the mirror");
    }

    #[test]
    fn no_copy_to_the_group_already_passed_to() {
        let m = main_with(&["new"]);
        let mut lc = LocConf { group: 1, mirror: at("new"), ..LocConf::default() };
        lc.resolve_mirror(&LocConf::default(), &m).unwrap();
        assert_eq!(lc.mirror_group, None);
    }

    #[test]
    fn an_unknown_name_is_an_error_at_its_line() {
        let m = main_with(&["new"]);
        let mut lc = LocConf { mirror: at("nope"), ..LocConf::default() };
        let (msg, where_) = lc.resolve_mirror(&LocConf::default(), &m).unwrap_err();
        assert!(msg.contains("no \"ase_upstream\" block is named \"nope\" in \"ase_mirror\""), "{msg}");
        assert_eq!(where_, "nginx.conf:7");
    }
}
