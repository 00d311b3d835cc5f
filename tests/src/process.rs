//! Child processes that announce themselves on stdout (the agent's listen addresses, the chain
//! emulator's port).

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

/// How long a child may take to print its announcement.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(180);

/// The first line `child` prints on its piped stdout; see [`first_lines`].
pub fn first_line(child: &mut Child, what: &str) -> String {
    first_lines(child, what, 1).remove(0)
}

/// The first `count` lines `child` prints on its piped stdout. Kills it and panics, naming
/// `what`, when they do not all come within [`ANNOUNCE_TIMEOUT`] or stdout ends first: a child
/// stuck at start-up must fail the test, not hang the run.
pub fn first_lines(child: &mut Child, what: &str, count: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(
            (0..count)
                .map_while(|_| lines.next())
                .collect::<Result<Vec<_>, _>>(),
        );
    });
    let failure = match rx.recv_timeout(ANNOUNCE_TIMEOUT) {
        Ok(Ok(lines)) if lines.len() == count => return lines,
        Ok(Ok(lines)) => format!("{what}'s stdout ended after {lines:?}"),
        Ok(Err(e)) => format!("reading {what}'s stdout: {e}"),
        Err(_) => format!(
            "{what} printed fewer than {count} lines on stdout within {} s",
            ANNOUNCE_TIMEOUT.as_secs()
        ),
    };
    let _ = child.kill();
    let _ = child.wait();
    panic!("{failure}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sh(script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn reads_the_announced_lines() {
        let mut child = sh("echo one; echo two; sleep 30");
        assert_eq!(first_lines(&mut child, "sh", 2), ["one", "two"]);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    #[should_panic(expected = "sh's stdout ended after [\"one\"]")]
    fn a_child_that_exits_early_fails_the_test() {
        let mut child = sh("echo one");
        first_lines(&mut child, "sh", 2);
    }
}
