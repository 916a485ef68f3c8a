//! The log file: what the gateway and the tray app did, kept in the data directory, so that a
//! bug report can carry it. A GUI program on Windows has no stderr, so without this file
//! nothing at all would be left of what went wrong.
//!
//! * Where: `<data_dir>/logs/simpleotp.log` ([`dir`], [`path`]), the folder owner-only (0700; an
//!   owner-only ACL on Windows, which the files inherit), each file 0600.
//! * Bounded: when the file would pass [`MAX_FILE_BYTES`] it becomes `simpleotp.log.1` (the
//!   older ones move to `.2` and `.3`, the oldest is dropped), so the folder never holds more
//!   than `(1 + KEEP_ROTATED) × MAX_FILE_BYTES` (4 MiB), lines being cut at [`MAX_LINE_BYTES`].
//! * Never in the way: lines go through a bounded queue to a writer thread. When the queue is
//!   full (a slow or hung disk) a line is dropped and counted, never waited for; a write that
//!   fails is dropped too. Logging must not be why the gateway stops answering.
//! * Scrubbed: every line passes [`scrub`] before it is queued. The engine never logs a
//!   secret, code, token, ticket or cookie on purpose; but nginx's own error lines are passed
//!   through (they can quote a request line with its query string), and a later `tracing` call
//!   could slip. [`scrub`] is the second line of defence, and the one the tray app's diagnostics
//!   use for what they copy too.
//!
//! Only one process should log into a data directory at a time; the gateway's one-per-data-dir
//! rule sees to that. (A second one that starts and is refused just appends a few lines; its
//! size count is its own, so rotation may come a little early or late, nothing worse.)

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;

/// The current log file's name in [`dir`]; rotated ones add `.1`, `.2`, `.3` (`.1` the newest).
pub const FILE_NAME: &str = "simpleotp.log";
/// A file is rotated before it would pass this size.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// How many rotated files are kept besides the current one.
pub const KEEP_ROTATED: usize = 3;
/// A longer line (nginx quoting a huge request, say) is cut to this, so one line cannot break
/// the bound.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Lines waiting for the writer thread; beyond this they are dropped (and counted).
const QUEUE_LINES: usize = 4096;
/// How long dropping the [`Guard`] waits for the queue to reach the disk.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// Events with this target go to the file only, not to stderr: for what a program has already
/// told the person at the terminal in its own words (`simpleotp serve`'s final error, say).
pub const FILE_ONLY: &str = "simpleotp::file_only";
/// What masked parts of a line are replaced with.
const HIDDEN: &str = "[hidden]";

/// The folder the log files are in: `<data_dir>/logs`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The current log file: `<data_dir>/logs/simpleotp.log`.
pub fn path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join(FILE_NAME)
}

/// Why [`init`] could not set up the log file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The folder or the file could not be made. Logging to stderr is installed all the same,
    /// so the caller only needs to say so (e.g. `tracing::warn!`).
    #[error("cannot write the log file in {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    /// A global `tracing` subscriber was installed before (by a test, say); nothing changed.
    #[error("logging was set up already")]
    AlreadyInstalled,
}

/// Keeps the log file's writer thread fed. Dropping it writes out what is still queued
/// (waiting at most two seconds); keep it alive until the program ends (`let _log = ...` in
/// `main`). Lines logged after it is dropped still reach stderr and, while the process lives,
/// the file.
#[must_use = "dropping the guard flushes the log; keep it until the program ends"]
pub struct Guard {
    sink: Sink,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sink.flush_and_wait(FLUSH_WAIT);
    }
}

/// The `SIMPLEOTP_LOG` filter (`info` when unset or invalid), as the CLI and the tray app have
/// always read it.
fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("SIMPLEOTP_LOG").unwrap_or_else(|_| "info".into())
}

/// Installs the global `tracing` subscriber: stderr, as before, and the log file in
/// `<data_dir>/logs`, both through the `SIMPLEOTP_LOG` filter (default `info`). `program` names
/// who is logging (`"simpleotp serve"`, `"SimpleOTP tray"`) in the first line, so a log shared by
/// the tray app and the CLI says which wrote what.
///
/// On [`LogError::File`], stderr logging is installed anyway.
pub fn init(data_dir: &Path, program: &str) -> Result<Guard, LogError> {
    let folder = dir(data_dir);
    let sink = match start_writer(&folder, Limits::default()) {
        Ok(sink) => sink,
        Err(source) => {
            init_stderr().map_err(|_| LogError::AlreadyInstalled)?;
            return Err(LogError::File { path: folder, source });
        }
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() != FILE_ONLY));
    let file = tracing_subscriber::fmt::layer().with_writer(sink.clone()).with_target(false).with_ansi(false);
    tracing_subscriber::registry().with(env_filter()).with(stderr).with(file).try_init().map_err(|_| LogError::AlreadyInstalled)?;
    tracing::info!(
        program,
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        "log started"
    );
    Ok(Guard { sink })
}

/// Installs the global `tracing` subscriber for stderr only (commands with no data directory
/// of their own, and the fallback of [`init`]). Fails only when one was installed before.
pub fn init_stderr() -> Result<(), tracing_subscriber::util::TryInitError> {
    tracing_subscriber::fmt().with_env_filter(env_filter()).with_writer(io::stderr).with_target(false).finish().try_init()
}

/// The last `max_lines` lines of the log (from the newest rotated file too when the current one
/// is shorter), scrubbed again, oldest first, for the diagnostics. Empty when there is no log.
pub fn tail(data_dir: &Path, max_lines: usize) -> String {
    let folder = dir(data_dir);
    let mut lines: Vec<String> = Vec::new();
    // Newest file first; each file's lines are put in front of what was taken already.
    for file in [FILE_NAME.to_string(), rotated_name(1)] {
        if lines.len() >= max_lines {
            break;
        }
        let Some(text) = read_end(&folder.join(file), MAX_FILE_BYTES + MAX_LINE_BYTES as u64) else { continue };
        let wanted = max_lines - lines.len();
        let mut taken: Vec<String> = text.lines().rev().take(wanted).map(str::to_string).collect();
        taken.reverse();
        taken.append(&mut lines);
        lines = taken;
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&scrub(&line));
        out.push('\n');
    }
    out
}

/// The last `limit` bytes of a file as text (invalid UTF-8 replaced), or `None` if it cannot be
/// read.
fn read_end(path: &Path, limit: u64) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len > limit {
        file.seek(SeekFrom::Start(len - limit)).ok()?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn rotated_name(n: usize) -> String {
    format!("{FILE_NAME}.{n}")
}

/// Sizes, so tests can rotate after a few lines.
#[derive(Clone, Copy, Debug)]
struct Limits {
    file_bytes: u64,
    keep: usize,
    line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { file_bytes: MAX_FILE_BYTES, keep: KEEP_ROTATED, line_bytes: MAX_LINE_BYTES }
    }
}

enum Message {
    Line(Vec<u8>),
    /// Everything queued before has been written once this is answered.
    Flush(SyncSender<()>),
}

/// The writing end `tracing` formats lines into: scrubs each line and queues it for the
/// writer thread, never waiting.
#[derive(Clone)]
struct Sink {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
    line_bytes: usize,
}

impl Sink {
    fn push(&self, text: &str) {
        let mut line = scrub(text);
        if line.len() > self.line_bytes {
            let mut cut = self.line_bytes;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [line cut]\n");
        } else if !line.ends_with('\n') {
            line.push('\n');
        }
        if self.queue.try_send(Message::Line(line.into_bytes())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (at most `wait`) until every line queued so far is written.
    fn flush_and_wait(&self, wait: Duration) {
        let (done, finished) = mpsc::sync_channel(1);
        // A full queue is given the same time to drain, but never more.
        let deadline = std::time::Instant::now() + wait;
        let mut message = Message::Flush(done);
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    message = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = finished.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
    }
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The fmt layer hands over each event whole, in one call.
        self.push(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

/// Makes the private folder, opens the current file (so an unusable folder is reported now,
/// not lost line by line) and starts the writer thread.
fn start_writer(folder: &Path, limits: Limits) -> io::Result<Sink> {
    crate::fsutil::create_private_dir(folder)?;
    let mut file = RotatingFile { folder: folder.to_path_buf(), limits, current: None };
    file.open()?;
    let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    std::thread::Builder::new().name("simpleotp-log".into()).spawn(move || write_until_closed(file, lines, counter))?;
    Ok(Sink { queue, dropped, line_bytes: limits.line_bytes })
}

/// The writer thread: writes lines as they come, until every sender is gone.
fn write_until_closed(mut file: RotatingFile, lines: Receiver<Message>, dropped: Arc<AtomicU64>) {
    for message in lines {
        match message {
            // Errors are dropped: there is nowhere left to report them (stderr has the line).
            Message::Line(line) => {
                let _ = file.write_line(&line);
            }
            Message::Flush(done) => {
                let _ = done.try_send(());
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = file.write_line(format!("[{lost} log line(s) dropped: the disk was too slow]\n").as_bytes());
        }
    }
}

/// The current file and its rotation.
struct RotatingFile {
    folder: PathBuf,
    limits: Limits,
    /// The open file and how many bytes it holds; `None` after an error (reopened on the next
    /// line, in case the disk has come back).
    current: Option<(File, u64)>,
}

impl RotatingFile {
    fn open(&mut self) -> io::Result<()> {
        let file = crate::fsutil::open_private_append(&self.folder.join(FILE_NAME))?;
        let size = file.metadata()?.len();
        self.current = Some((file, size));
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            self.open()?;
        }
        let size = self.current.as_ref().map_or(0, |(_, size)| *size);
        if size > 0 && size + line.len() as u64 > self.limits.file_bytes {
            self.current = None; // closed before the rename (Windows cannot rename an open file)
            self.rotate();
            self.open()?;
        }
        let Some((file, size)) = self.current.as_mut() else { return Ok(()) };
        match file.write_all(line) {
            Ok(()) => {
                *size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.current = None;
                Err(e)
            }
        }
    }

    /// `.2` → `.3`, `.1` → `.2`, the current file → `.1` (a rename replaces the target, so the
    /// oldest is dropped).
    fn rotate(&self) {
        for n in (1..self.limits.keep).rev() {
            let _ = fs::rename(self.folder.join(rotated_name(n)), self.folder.join(rotated_name(n + 1)));
        }
        if self.limits.keep == 0 {
            let _ = fs::remove_file(self.folder.join(FILE_NAME));
        } else {
            let _ = fs::rename(self.folder.join(FILE_NAME), self.folder.join(rotated_name(1)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scrubber.

/// `text` with everything a person could sign in with masked as `[hidden]`, for the log file,
/// its [`tail`] and the tray app's diagnostics (which should run their whole report through it).
/// No regular expressions: a few passes over runs of characters.
///
/// * `key=value` and JSON `"key":"value"` for `token`, `ticket`, `secret`, `code`, `otp`,
///   `password`, `proof`, `session`, `link` (a passkey link), `ceremony` and cookies named `simpleotp_*` (`__Host-simpleotp_*`):
///   the value.
/// * 6–8 digits right after a word like `code`, `codes`, `otp` or `totp` (`code: 123456`,
///   `wrong code 12345678`).
/// * base32 of 16 characters or more (`A–Z`, `2–7`): a TOTP secret, also grouped in fours as
///   `simpleotp init` prints it.
/// * base64url of 32 characters or more mixing upper case, lower case and digits: a session
///   token, an unlock ticket, the nginx proof, wherever it appears.
/// * a `user:password@` in a URL.
pub fn scrub(text: &str) -> String {
    let text = mask_key_values(text);
    let text = mask_userinfo(&text);
    let text = mask_runs(&text, |b| b.is_ascii_alphanumeric(), is_code);
    let text = mask_grouped_base32(&text);
    let text = mask_runs(&text, |b| b.is_ascii_alphanumeric(), |run, _, _| is_base32_secret(run));
    mask_runs(&text, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_', |run, _, _| is_random_token(run))
}

/// Keys whose value is never logged.
const SECRET_KEYS: [&str; 10] = ["token", "ticket", "secret", "code", "otp", "password", "proof", "session", "link", "ceremony"];

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let cookie = key.strip_prefix("__host-").unwrap_or(&key);
    SECRET_KEYS.contains(&key.as_str()) || cookie.starts_with(crate::protocol::COOKIE_PREFIX)
}

/// Where a value ends: query, cookie, header and JSON separators, white space.
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b')' | b']' | b'}')
}

fn mask_key_values(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_char(bytes[i]) || (i > 0 && is_key_char(bytes[i - 1])) {
            let next = text[i..].char_indices().nth(1).map_or(text.len(), |(n, _)| i + n);
            out.push_str(&text[i..next]);
            i = next;
            continue;
        }
        let key_end = i + bytes[i..].iter().take_while(|&&b| is_key_char(b)).count();
        let key = &text[i..key_end];
        out.push_str(key);
        i = key_end;
        if !is_secret_key(key) {
            continue;
        }
        // `=` or JSON's `":"` / `": "` (the value then in quotes).
        let rest = &text[i..];
        let separator = ["=", "\":\"", "\": \""].into_iter().find(|s| rest.starts_with(s));
        let Some(separator) = separator else { continue };
        out.push_str(separator);
        i += separator.len();
        let value_end = i + bytes[i..].iter().take_while(|&&b| !ends_value(b)).count();
        if value_end > i {
            out.push_str(HIDDEN);
        }
        i = value_end;
    }
    out
}

/// `scheme://user:password@host` → `scheme://[hidden]@host`.
fn mask_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after.bytes().position(|b| b == b'/' || ends_value(b)).unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(userinfo_end) if userinfo_end > 0 => {
                out.push_str(HIDDEN);
                rest = &after[userinfo_end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Replaces each maximal run of bytes for which `in_run` holds (all ASCII, so slicing is safe)
/// with [`HIDDEN`] when `hide(run, text before it, text after it)` says so.
fn mask_runs(text: &str, in_run: impl Fn(u8) -> bool, hide: impl Fn(&str, &str, &str) -> bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !in_run(bytes[i]) {
            i += 1;
            continue;
        }
        let end = i + bytes[i..].iter().take_while(|&&b| in_run(b)).count();
        if hide(&text[i..end], &text[..i], &text[end..]) {
            out.push_str(&text[start..i]);
            out.push_str(HIDDEN);
            start = end;
        }
        i = end;
    }
    out.push_str(&text[start..]);
    out
}

/// 6–8 digits after a word like "code" (one filler word like "is" may stand between).
fn is_code(run: &str, before: &str, _after: &str) -> bool {
    if !(6..=8).contains(&run.len()) || !run.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut words = before.rsplit(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty());
    // Only separators between the word and the digits, not other text.
    let gap = before.trim_end_matches(|c: char| c.is_ascii_whitespace() || matches!(c, ':' | '=' | '"' | '\'' | '#'));
    if !gap.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return false;
    }
    let is_code_word = |w: &str| {
        let w = w.to_ascii_lowercase();
        w.ends_with("code") || w.ends_with("codes") || w == "otp" || w == "totp"
    };
    match words.next() {
        Some(w) if is_code_word(w) => true,
        Some(w) if matches!(w.to_ascii_lowercase().as_str(), "is" | "was" | "of") => words.next().is_some_and(is_code_word),
        _ => false,
    }
}

fn is_base32_char(b: u8) -> bool {
    b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
}

/// A TOTP secret in one piece: 16 or more base32 characters, at least one a letter.
fn is_base32_secret(run: &str) -> bool {
    run.len() >= 16 && run.bytes().all(is_base32_char) && run.bytes().any(|b| b.is_ascii_uppercase())
}

/// A random value in base64url: long, and mixing upper case, lower case and digits, as hardly
/// any word or path does.
fn is_random_token(run: &str) -> bool {
    run.len() >= 32
        && run.bytes().any(|b| b.is_ascii_uppercase())
        && run.bytes().any(|b| b.is_ascii_lowercase())
        && run.bytes().any(|b| b.is_ascii_digit())
}

/// A secret as `simpleotp init` prints it: four or more groups of four base32 characters split
/// by single spaces (the last group may be shorter).
fn mask_grouped_base32(text: &str) -> String {
    let bytes = text.as_bytes();
    let group_at = |i: usize| -> usize {
        let boundary_before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let len = bytes[i..].iter().take(5).take_while(|&&b| is_base32_char(b)).count();
        let boundary_after = bytes.get(i + len).is_none_or(|b| !b.is_ascii_alphanumeric());
        if boundary_before && (1..=4).contains(&len) && boundary_after {
            len
        } else {
            0
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let mut groups = 0;
        let mut end = i;
        let mut len = group_at(i);
        while len > 0 {
            groups += 1;
            end += len;
            if len < 4 || bytes.get(end) != Some(&b' ') {
                break;
            }
            len = group_at(end + 1);
            if len > 0 {
                end += 1;
            }
        }
        if groups >= 4 && text[i..end].bytes().any(|b| b.is_ascii_uppercase()) {
            out.push_str(&text[start..i]);
            out.push_str(HIDDEN);
            start = end;
            i = end;
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits { file_bytes: 1000, keep: 3, line_bytes: 200 }
    }

    fn files(folder: &Path) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn rotation_keeps_the_folder_bounded_and_the_newest_lines() {
        let data = tempfile::tempdir().unwrap();
        let sink = start_writer(&dir(data.path()), small()).unwrap();
        for n in 0..2000 {
            sink.push(&format!("line {n:05} of the test, padded to some length\n"));
            if n % 100 == 99 {
                // Let the writer keep up: this test is about the bound, not the queue.
                sink.flush_and_wait(Duration::from_secs(10));
            }
        }
        sink.flush_and_wait(Duration::from_secs(10));

        let found = files(&dir(data.path()));
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["simpleotp.log", "simpleotp.log.1", "simpleotp.log.2", "simpleotp.log.3"]);
        for (name, size) in &found {
            assert!(*size <= 1000, "{name} has {size} bytes");
        }
        let total: u64 = found.iter().map(|(_, s)| s).sum();
        assert!(total <= 4 * 1000, "{total}");

        let last = tail(data.path(), 3);
        assert_eq!(last.lines().count(), 3, "{last}");
        assert!(last.starts_with("line 01997") && last.ends_with("line 01999 of the test, padded to some length\n"), "{last}");
        // `.3` holds older lines than `.1`.
        let oldest = fs::read_to_string(dir(data.path()).join("simpleotp.log.3")).unwrap();
        let newer = fs::read_to_string(dir(data.path()).join("simpleotp.log.1")).unwrap();
        assert!(oldest.lines().last().unwrap() < newer.lines().next().unwrap());
    }

    #[test]
    fn long_lines_are_cut_and_lines_end_with_a_newline() {
        let data = tempfile::tempdir().unwrap();
        let sink = start_writer(&dir(data.path()), small()).unwrap();
        sink.push(&format!("é{}", "x".repeat(500)));
        sink.push("short");
        sink.flush_and_wait(Duration::from_secs(10));
        let text = fs::read_to_string(path(data.path())).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("[line cut]") && lines[0].len() < 220, "{}", lines[0]);
        assert_eq!(lines[1], "short");
    }

    #[test]
    fn tail_reaches_into_the_rotated_file_and_is_empty_without_a_log() {
        let data = tempfile::tempdir().unwrap();
        assert_eq!(tail(data.path(), 10), "");
        let folder = dir(data.path());
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join("simpleotp.log.1"), "a\nb\nc\n").unwrap();
        fs::write(folder.join("simpleotp.log"), "d\ne\n").unwrap();
        assert_eq!(tail(data.path(), 4), "b\nc\nd\ne\n");
        assert_eq!(tail(data.path(), 1), "e\n");
        assert_eq!(tail(data.path(), 0), "");
        fs::write(folder.join("simpleotp.log"), "code=123456 ok\n").unwrap();
        assert_eq!(tail(data.path(), 1), "code=[hidden] ok\n", "tail scrubs too");
    }

    #[cfg(unix)]
    #[test]
    fn the_folder_is_0700_and_every_file_0600() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        let folder = dir(data.path());
        // An older file with looser bits is tightened when it is opened again.
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(FILE_NAME), "old\n").unwrap();
        fs::set_permissions(folder.join(FILE_NAME), fs::Permissions::from_mode(0o644)).unwrap();
        let sink = start_writer(&folder, small()).unwrap();
        for n in 0..100 {
            sink.push(&format!("line {n} padded to a length that rotates\n"));
        }
        sink.flush_and_wait(Duration::from_secs(10));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        let found = files(&folder);
        assert!(found.len() > 1, "rotated: {found:?}");
        for (name, _) in found {
            assert_eq!(mode(&folder.join(&name)), 0o600, "{name}");
        }
    }

    /// On Windows the files get no ACL of their own: they inherit the folder's owner-only one.
    #[cfg(windows)]
    #[test]
    fn the_log_file_is_owner_only() {
        let data = tempfile::tempdir().unwrap();
        let sink = start_writer(&dir(data.path()), small()).unwrap();
        sink.push("line");
        sink.flush_and_wait(Duration::from_secs(10));
        let file = File::open(path(data.path())).unwrap();
        assert_eq!(crate::fsutil::check_owner_only(&file), Ok(()));
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_as_the_log_file_is_not_followed() {
        let data = tempfile::tempdir().unwrap();
        let folder = dir(data.path());
        fs::create_dir_all(&folder).unwrap();
        let elsewhere = data.path().join("elsewhere");
        fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, folder.join(FILE_NAME)).unwrap();
        assert!(start_writer(&folder, small()).is_err());
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "");
    }

    #[test]
    fn a_full_queue_drops_lines_instead_of_waiting() {
        // A writer thread that never writes: the queue fills, and pushing still returns.
        let (queue, _held) = mpsc::sync_channel(2);
        let sink = Sink { queue, dropped: Arc::default(), line_bytes: 100 };
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            sink.push("line");
        }
        sink.flush_and_wait(Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 998);
    }

    #[test]
    fn the_scrubber_masks_each_kind() {
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let token = "q3Xv9cT0bL2mNwE8rYk1HsUfA7dGzPj4oQi6VtRxZc0";
        let cases = [
            // Secrets, alone, in an otpauth URI and grouped as `init` prints them.
            (format!("secret {secret} here"), "secret [hidden] here"),
            (
                format!("otpauth://totp/SimpleOTP:me?secret={}&issuer=SimpleOTP", secret.to_lowercase()),
                "otpauth://totp/SimpleOTP:me?secret=[hidden]&issuer=SimpleOTP",
            ),
            ("key JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP.".to_string(), "key [hidden]."),
            // Codes next to a code word, in a form and in JSON.
            ("wrong code 123456 from 10.0.0.2".to_string(), "wrong code [hidden] from 10.0.0.2"),
            ("current demo code: 12345678".to_string(), "current demo code: [hidden]"),
            ("the code is 654321".to_string(), "the code is [hidden]"),
            ("OTP 1234567".to_string(), "OTP [hidden]"),
            ("code=123456&next=%2F".to_string(), "code=[hidden]&next=%2F"),
            (r#"{"code":"123456"}"#.to_string(), r#"{"code":"[hidden]"}"#),
            // Cookies, plain and secure, among others.
            (format!("cookie: _xsrf=abc; simpleotp_8081={token}; x=1"), "cookie: _xsrf=abc; simpleotp_8081=[hidden]; x=1"),
            (format!("__Host-simpleotp_443={token}"), "__Host-simpleotp_443=[hidden]"),
            // Tickets and tokens in a query, as nginx quotes a request line.
            (
                format!("request: \"GET /_simpleotp/login?ticket=abc-def_1&next=%2F HTTP/1.1\", token={token}"),
                "request: \"GET /_simpleotp/login?ticket=[hidden]&next=%2F HTTP/1.1\", token=[hidden]",
            ),
            (
                "request: \"GET /_simpleotp/passkey/add?link=abc-def_1&name=Desk HTTP/1.1\", \"ceremony\":\"xyz\"".to_owned(),
                "request: \"GET /_simpleotp/passkey/add?link=[hidden]&name=Desk HTTP/1.1\", \"ceremony\":\"[hidden]\"",
            ),
            // A bare random token anywhere, and a password in a URL.
            (format!("session {token} revoked"), "session [hidden] revoked"),
            ("upstream http://me:pw@127.0.0.1:8888/x".to_string(), "upstream http://[hidden]@127.0.0.1:8888/x"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(&input), expected, "{input}");
        }
    }

    #[test]
    fn the_scrubber_leaves_ordinary_lines_alone() {
        for line in [
            "2026-12-05T10:11:12.123456Z  INFO signed in client=127.0.0.1 app_port=8081",
            "nginx is running pid=1234567 prefix=/home/zoë/.local/share/simpleotp/nginx",
            "listening on 127.0.0.1:9090, upstream http://127.0.0.1:8888/",
            "login failed reason=WrongCode lockout_secs=300 scope=Global",
            "sha256 3f2a9c0d4e5b6a7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7",
            "C:\\Users\\Zoë Müller\\AppData\\Local\\SimpleOTP\\data ABCD EFG",
            "the code path 123456789 is long; 20261205 was the day",
        ] {
            assert_eq!(scrub(line), line);
        }
    }
}
