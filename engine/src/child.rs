//! The one way SimpleOTP starts another program (nginx and its `-s` signals, `nginx -t`/`-V`,
//! the trust-store tools, the firewall rule).
//!
//! Why one way: on Windows a console program started by a GUI program (the tray app) gets a
//! console window of its own. nginx runs with `daemon off`, so that black window would stay for
//! as long as protection runs, flash again on every config test and reload, and closing it would
//! kill nginx. `CREATE_NO_WINDOW` prevents that, and it must be set on every start. So every
//! command is made here, and `clippy.toml` refuses `Command::new` anywhere else
//! (`disallowed-methods`, in the lint that also runs for Windows).

use std::ffi::OsStr;

/// Windows' `CREATE_NO_WINDOW` process-creation flag: the child gets no console window (its
/// standard handles still work, so pipes to it do too).
#[cfg(windows)]
pub const CREATE_NO_WINDOW: u32 = 0x0800_0000;

/// The process-creation flags every child gets on Windows; callers that need more (such as
/// `CREATE_NEW_PROCESS_GROUP`) add theirs with [`with_flags`].
#[cfg(windows)]
pub const BASE_CREATION_FLAGS: u32 = CREATE_NO_WINDOW;

/// A blocking command for `program`, with no console window on Windows.
#[allow(clippy::disallowed_methods)] // the one allowed place
pub fn command(program: impl AsRef<OsStr>) -> std::process::Command {
    #[cfg_attr(not(windows), allow(unused_mut))]
    let mut command = std::process::Command::new(program);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        command.creation_flags(BASE_CREATION_FLAGS);
    }
    command
}

/// An async command for `program`, with no console window on Windows.
#[allow(clippy::disallowed_methods)] // the one allowed place
pub fn tokio_command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    #[cfg_attr(not(windows), allow(unused_mut))]
    let mut command = tokio::process::Command::new(program);
    #[cfg(windows)]
    command.creation_flags(BASE_CREATION_FLAGS);
    command
}

/// Sets Windows process-creation flags on `command` on top of [`BASE_CREATION_FLAGS`] (setting
/// flags replaces earlier ones, so this keeps `CREATE_NO_WINDOW`).
#[cfg(windows)]
pub fn with_flags(command: &mut tokio::process::Command, flags: u32) {
    command.creation_flags(BASE_CREATION_FLAGS | flags);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_run_and_report_their_output() {
        // A program every OS has; its output proves the command was built as asked.
        let (program, args): (&str, &[&str]) = if cfg!(windows) { ("cmd", &["/C", "echo", "hi"]) } else { ("sh", &["-c", "echo hi"]) };
        let out = command(program).args(args).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    }

    #[tokio::test]
    async fn async_commands_run_too() {
        let (program, args): (&str, &[&str]) = if cfg!(windows) { ("cmd", &["/C", "exit", "3"]) } else { ("sh", &["-c", "exit 3"]) };
        let status = tokio_command(program).args(args).status().await.unwrap();
        assert_eq!(status.code(), Some(3));
    }
}
