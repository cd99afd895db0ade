//! Host bindings of the WIT contract, one module per contract version (`since_vX_Y_Z`).
//!
//! A plugin built against an older contract imports the old interface names (e.g.
//! `strata:plugin/log@0.1.0`) and keeps loading as long as its bindings module stays here.
//! A new contract version adds a module; it never edits an old one.
//!
//! Each version's WIT lives in its own directory, `wit/since_vX.Y.Z/`, which never changes
//! once released (`RELEASED`; the `frozen` tests check it). See `wit/README.md`.

pub mod convert;
#[cfg(test)]
mod frozen;
pub mod since_v0_1_0;

/// The WIT package name of the contract.
pub const PACKAGE: &str = "strata:plugin";

/// Contract versions this host can load, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[since_v0_1_0::VERSION];

/// Released contract versions, oldest first, with the fingerprint of each one's directory
/// `wit/since_vX.Y.Z/`: the sha256 of the lines `<sha256 of file>  <relative path>`, one
/// per file in byte order of the paths, which is what
/// `cd wit/since_vX.Y.Z && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum | sha256sum`
/// prints. A released row never changes: a new contract is a new directory and a new row.
pub const RELEASED: &[(&str, &str)] = &[(
    "0.1.0",
    "38f4d643b6b95f4750cd58b215a9f1fae6f6c0f6a7803d8a6e0a044ccdf109ae",
)];

/// An import or export name split into its parts: `strata:plugin/log@0.1.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName<'a> {
    pub namespace: &'a str,
    pub package: &'a str,
    pub interface: &'a str,
    pub version: Option<&'a str>,
}

impl<'a> InterfaceName<'a> {
    /// Parses `ns:pkg/iface[@version]`; `None` for plain names such as a world's own function.
    pub fn parse(name: &'a str) -> Option<Self> {
        let (ns, rest) = name.split_once(':')?;
        let (pkg, rest) = rest.split_once('/')?;
        let (iface, version) = match rest.split_once('@') {
            Some((i, v)) => (i, Some(v)),
            None => (rest, None),
        };
        Some(Self {
            namespace: ns,
            package: pkg,
            interface: iface,
            version,
        })
    }

    /// `strata:plugin/...`?
    pub fn is_strata(&self) -> bool {
        self.namespace == "strata" && self.package == "plugin"
    }
}

#[cfg(test)]
mod tests {
    use super::InterfaceName;

    #[test]
    fn parses_versioned_interface_names() {
        let n = InterfaceName::parse("strata:plugin/state@0.1.0").unwrap();
        assert!(n.is_strata());
        assert_eq!(n.interface, "state");
        assert_eq!(n.version, Some("0.1.0"));
        let w = InterfaceName::parse("wasi:cli/stdout@0.2.6").unwrap();
        assert!(!w.is_strata());
        assert_eq!(InterfaceName::parse("score"), None);
    }
}
