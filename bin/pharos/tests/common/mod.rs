//! Shared by the integration tests that start `pharos node` processes.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

/// Spawns `cmd` (a `pharos node …`) with stdout piped, waits for the line announcing its
/// JSON-RPC address and returns the child with that URL; stdout keeps being drained so the node
/// never blocks on a full pipe.
pub fn spawn_node(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start pharos");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("node printed its address before exiting")
            .expect("read stdout");
        if let Some(rest) = line.strip_prefix("JSON-RPC: ") {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}
