//! Child processes, always bounded in time and always reaped.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` so that it dies with the test process.
///
/// Children are forked by one long-lived thread, and each sets `PR_SET_PDEATHSIG` to
/// SIGKILL: Linux sends it when the forking *thread* ends, so forking from a test thread
/// (which ends with its test) would kill children that outlive it on purpose. This thread
/// ends only with the process, which covers a test process killed without unwinding.
pub fn spawn(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("support-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(spawn_with_pdeathsig(&mut cmd));
                }
            })
            .expect("spawning the spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

fn spawn_with_pdeathsig(cmd: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A child that is killed and reaped when dropped.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    /// Wraps a running child.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for it to exit; kills it on timeout (`None`).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_or_kill(&mut self.child, timeout)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// What a bounded run of a program produced.
#[derive(Debug)]
pub struct Finished {
    /// The program and its arguments, for messages.
    pub command: String,
    /// Its exit status; `None` when it ran past the timeout and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Killed on timeout.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// Everything about the run, for an assertion message.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => "killed after the timeout".to_string(),
        };
        format!(
            "`{}` ({status}, {:.1} s)\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.elapsed.as_secs_f64(),
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

fn drain<R: Read + Send + 'static>(mut reader: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs a program to completion with stdin closed, capturing stdout and stderr, and kills
/// it if it is still running after `timeout`. A program that cannot start panics.
pub fn run(mut cmd: Command, timeout: Duration) -> Finished {
    let command = command_line(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_or_kill(&mut child, timeout);
    let elapsed = start.elapsed();
    Finished {
        command,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed,
    }
}

/// The lines of `text` that are JSON objects, parsed; other lines are left out.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

/// An interactive child speaking lines on stdin/stdout (the JSON-lines protocol of
/// INTEROP.md). Its stdout is read by a thread, so it never blocks on a full pipe; its
/// stderr is collected for messages. Killed and reaped on drop.
pub struct LineProcess {
    /// A short name for messages ("aioice controlling", "floe ice").
    pub name: String,
    command: String,
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    eof: bool,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl LineProcess {
    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub fn spawn(name: &str, mut cmd: Command) -> io::Result<LineProcess> {
        let command = command_line(&cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(cmd)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        Ok(LineProcess {
            name: name.to_string(),
            command,
            child: ChildGuard::new(child),
            stdin,
            lines: rx,
            eof: false,
            seen: Vec::new(),
            stderr,
        })
    }

    /// Its process id (to send it a signal).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to its stdin.
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdin closed"))?;
        stdin.write_all(line.trim_end().as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, waiting up to `timeout`; `None` on timeout or end of output.
    pub fn recv_line(&mut self, timeout: Duration) -> Option<String> {
        if self.eof {
            return None;
        }
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                None
            }
        }
    }

    /// A stdout line that is already there, without waiting.
    pub fn try_recv_line(&mut self) -> Option<String> {
        self.recv_line(Duration::ZERO)
    }

    /// Whether its stdout has ended.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// After it exited: collects what it printed before, up to the end of its stdout (a
    /// starved reader thread may lag), bounded in case a child of its own holds the pipe.
    fn collect_rest(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("{}: stdout still open 5 s after it exited", self.name);
                break;
            }
            let _ = self.recv_line(left);
        }
    }

    /// Reads stdout until a line whose first word is `key` (the `KEY VALUE` lines of
    /// `floe turn`), for up to `timeout`; that line. Panics with everything seen on a
    /// hang or the end of output.
    pub fn wait_for_key(&mut self, key: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.recv_line(left) {
                Some(line) if line.split(' ').next() == Some(key) => return line,
                Some(_) => {}
                None if self.is_eof() => break,
                None => {}
            }
        }
        panic!("no `{key}` line\n{}", self.describe());
    }

    /// Reads stdout until a JSON line satisfies `pred`, for up to `timeout`.
    pub fn wait_for_json(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv_line(left) {
                Some(line) => {
                    if let Ok(value) = serde_json::from_str::<Value>(line.trim()) {
                        if pred(&value) {
                            return Ok(value);
                        }
                    }
                }
                None if self.eof => break,
                None => {}
            }
        }
        Err(format!(
            "{}: no matching line within {timeout:?}\n{}",
            self.name,
            self.describe()
        ))
    }

    /// Waits up to `timeout` for it to exit (closing its stdin first is up to the
    /// caller). Kills it on timeout (`None`). Keeps collecting its stdout meanwhile.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            while self.try_recv_line().is_some() {}
            if let Some(status) = self.child.try_wait() {
                self.collect_rest();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return self.child.wait_timeout(Duration::ZERO);
            }
            let _ = self.recv_line(Duration::from_millis(10));
        }
    }

    /// Every stdout line read so far.
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    /// The stdout lines read so far that are JSON objects.
    pub fn json(&self) -> Vec<Value> {
        json_lines(&self.seen.join("\n"))
    }

    /// The `event` objects read so far whose `"event"` is `name`.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|v| v.get("event").and_then(Value::as_str) == Some(name))
            .collect()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Its command line, stdout so far and stderr so far, for an assertion message.
    pub fn describe(&self) -> String {
        format!(
            "[{}] `{}`\n--- stdout\n{}\n--- stderr\n{}",
            self.name,
            self.command,
            self.seen.join("\n"),
            self.stderr().trim_end()
        )
    }
}

/// How [`pair_json_lines`] ended.
#[derive(Debug)]
pub struct PairOutcome {
    /// Exit statuses; `None` for one still running at the deadline (it was killed).
    pub a: Option<ExitStatus>,
    pub b: Option<ExitStatus>,
    pub elapsed: Duration,
}

impl PairOutcome {
    /// Both exited by themselves with status 0.
    pub fn success(&self) -> bool {
        self.a.is_some_and(|s| s.success()) && self.b.is_some_and(|s| s.success())
    }
}

/// Crosses two ICE peers speaking INTEROP.md's JSON-lines protocol: every line one prints
/// that is a JSON object without an `"event"` key (its description, candidates and
/// end-of-candidates) goes to the other's stdin, as it comes (trickle). Once one has
/// exited, the other's stdin is closed. Runs until both have exited or `timeout` has
/// passed; one still running then is killed. Everything each
/// printed stays in its [`LineProcess::lines`].
pub fn pair_json_lines(a: &mut LineProcess, b: &mut LineProcess, timeout: Duration) -> PairOutcome {
    fn forward(from: &mut LineProcess, to: &mut LineProcess) -> bool {
        let mut moved = false;
        while let Some(line) = from.try_recv_line() {
            moved = true;
            let is_description = serde_json::from_str::<Value>(line.trim())
                .map(|v| v.is_object() && v.get("event").is_none())
                .unwrap_or(false);
            if is_description {
                // The other may have exited already; its status tells the story.
                let _ = to.send_line(&line);
            }
        }
        moved
    }

    let start = Instant::now();
    let deadline = start + timeout;
    let (mut status_a, mut status_b) = (None, None);
    loop {
        let moved = forward(a, b) | forward(b, a);
        // When one has exited, the other gets no more lines: close its stdin (an agent
        // without --send exits on that once connected).
        if status_a.is_none() {
            status_a = a.child.try_wait();
            if status_a.is_some() {
                forward(a, b);
                b.close_stdin();
            }
        }
        if status_b.is_none() {
            status_b = b.child.try_wait();
            if status_b.is_some() {
                forward(b, a);
                a.close_stdin();
            }
        }
        if status_a.is_some() && status_b.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        if !moved {
            thread::sleep(Duration::from_millis(5));
        }
    }
    // Kill one still running, then collect what both printed before they ended.
    let status_a = status_a.or_else(|| a.child.wait_timeout(Duration::ZERO));
    let status_b = status_b.or_else(|| b.child.wait_timeout(Duration::ZERO));
    for p in [&mut *a, &mut *b] {
        p.collect_rest();
    }
    PairOutcome {
        a: status_a,
        b: status_b,
        elapsed: start.elapsed(),
    }
}
