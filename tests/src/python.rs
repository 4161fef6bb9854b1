//! The Python peers of the tests (`tests/python/*.py`), run in the virtual
//! environment `cargo xtask test` installs (`target/pyenv`), spoken to one
//! line at a time over their standard input and output.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The Python of the test environment.
pub fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join("target/pyenv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run `cargo xtask test`, which installs tests/python/requirements.txt there",
        py.display()
    );
    py
}

/// A running `tests/python/<script>`; killed when dropped.
pub struct PyPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PyPeer {
    /// Starts `script` with `args`, inside network namespace `netns` if
    /// given; `what` names it in panics.
    pub fn start(netns: Option<&str>, script: &str, args: &[&str], what: &str) -> PyPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join(script);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(python());
                c
            }
            None => Command::new(python()),
        };
        let mut child = cmd
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {what}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        PyPeer {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one line and returns the peer's one-line reply.
    pub fn ask(&mut self, line: &str) -> String {
        self.tell(line);
        self.reply()
    }

    /// Sends one line without waiting for the reply.
    pub fn tell(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the peer");
        self.stdin.flush().expect("flush");
    }

    /// Reads the peer's next line.
    pub fn reply(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the peer");
        line
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
