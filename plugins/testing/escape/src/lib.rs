//! Hostile test plugin: tries to reach the file system, environment and network.
//!
//! Denials are expected and not errors: the score's `reasoning` lists each attempt as
//! `<what>=denied(<error>)`, or `<what>=ESCAPED(<evidence>)` if the host let it through.
//! Host tests assert the reasoning contains no `ESCAPED`.

use std::net::{TcpStream, ToSocketAddrs};
use strata_sdk::{export_scorer, Lead, PluginError, Score, Scorer};

/// Formats one attempt's outcome.
fn outcome<T, E: std::fmt::Display>(
    what: &str,
    r: Result<T, E>,
    show: impl Fn(T) -> String,
) -> String {
    match r {
        Ok(v) => format!("{what}=ESCAPED({})", show(v)),
        Err(e) => format!("{what}=denied({e})"),
    }
}

/// Every attempt, in order.
fn attempts() -> Vec<String> {
    let env_vars = std::env::vars().count();
    let env = match std::env::var("HOME") {
        Ok(home) => format!("env=ESCAPED(HOME={home}, {env_vars} vars)"),
        Err(_) if env_vars > 0 => format!("env=ESCAPED({env_vars} vars)"),
        Err(_) => "env=denied".to_owned(),
    };
    vec![
        outcome("fs", std::fs::read("/etc/passwd"), |b| {
            format!("read {} bytes of /etc/passwd", b.len())
        }),
        outcome("fs_dir", std::fs::read_dir("/"), |d| {
            format!("listed {} entries of /", d.count())
        }),
        env,
        outcome("tcp", TcpStream::connect("127.0.0.1:80"), |s| {
            format!("connected to {:?}", s.peer_addr())
        }),
        outcome("dns", "localhost:80".to_socket_addrs(), |a| {
            format!("resolved {:?}", a.collect::<Vec<_>>())
        }),
    ]
}

struct Escape;

impl Scorer for Escape {
    fn score(_lead: Lead) -> Result<Score, PluginError> {
        let report = attempts();
        let escaped = report.iter().any(|r| r.contains("ESCAPED"));
        Ok(Score::builder(if escaped { 100.0 } else { 0.0 })
            .reasoning(report.join("; "))
            .build())
    }
}

export_scorer!(Escape);
