//! A compiled bot as a child process on the Text backend: type lines, wait for output lines.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// A running bot process.
pub struct BotProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything printed so far (stdout).
    pub transcript: Arc<Mutex<Vec<String>>>,
    /// Everything logged so far (stderr).
    pub logs: Arc<Mutex<String>>,
}

impl BotProcess {
    /// Starts `exe` with `args` and extra environment.
    pub fn start(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(exe, args, env, None)
    }

    /// Starts `exe` in directory `cwd` (for bots that keep files, such as a session store).
    pub fn start_in(
        exe: &str,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&std::path::Path>,
    ) -> Self {
        let mut cmd = Command::new(exe);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("ST2BOT_STACKSTORM_URL")
            .env("RUST_LOG", "info")
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the bot executable");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::unbounded_channel();
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let t = transcript.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                t.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let logs = Arc::new(Mutex::new(String::new()));
        let l = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        Self {
            child,
            stdin,
            lines: rx,
            transcript,
            logs,
        }
    }

    /// Types one line.
    pub async fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Closes standard input (end of the conversation).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Types raw bytes (not necessarily UTF-8).
    pub async fn type_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write");
        stdin.flush().await.expect("flush");
    }

    /// Sends SIGTERM (standard input stays open).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`KILL`, `STOP`, `CONT`, `TERM`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the bot is running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Everything printed so far that contains `needle`.
    pub fn printed(&self, needle: &str) -> Vec<String> {
        self.transcript
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits for the process to exit (standard input left as it is); its exit code, or
    /// `None` when it did not exit within `timeout` (it is then killed).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    /// Waits for an output line containing `needle`; returns it. Panics with the transcript
    /// and logs after `timeout`.
    pub async fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => panic!(
                    "no output line containing {needle:?} within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.transcript.lock().unwrap().join("\n"),
                    self.logs.lock().unwrap()
                ),
            }
        }
    }

    /// Collects output lines until `needle` appears; returns all of them.
    pub async fn collect_until(&mut self, needle: &str, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    let done = line.contains(needle);
                    out.push(line);
                    if done {
                        return out;
                    }
                }
                Ok(None) | Err(_) => panic!(
                    "no output line containing {needle:?} within {timeout:?}\n--- got ---\n{}\n--- stderr ---\n{}",
                    out.join("\n"),
                    self.logs.lock().unwrap()
                ),
            }
        }
    }

    /// Waits until a log line (stderr) contains `needle`.
    pub async fn expect_log(&self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.logs.lock().unwrap().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no log line containing {needle:?}\n{}",
            self.logs.lock().unwrap()
        );
    }

    /// Waits until `needle` appears in the logs (stderr) at least `count` times.
    pub async fn expect_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.logs.lock().unwrap().matches(needle).count() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "fewer than {count} log lines containing {needle:?}\n{}",
            self.logs.lock().unwrap()
        );
    }

    /// Waits for the process to exit after input closed; returns its exit code.
    pub async fn wait(mut self, timeout: Duration) -> Option<i32> {
        self.stdin = None;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }
}
