//! Gives WebKit's memory back once the last window is gone.
//!
//! Destroying the window ends its page and WebKitGTK's web process, but not WebKitGTK's network
//! process: Tauri keeps the one `WebKitWebContext` for the app's lifetime on Linux (a new context
//! per window would start a new network process each time, tauri-apps/tauri#14626), and WebKit
//! keeps that context's network process running while the context exists, with no API to stop
//! it. A tray app runs all day, mostly without a window, so once no window is left we end that
//! process ourselves; WebKit starts a new one when the next window needs it, as after a crash of
//! the network process. The window's page keeps nothing in it (no cookies, no storage the app
//! relies on: its state lives in the core), so nothing is lost.
//!
//! Then the pages the window needed in this process go back to the kernel: the allocator returns
//! freed heap pages (glibc keeps them in its arenas otherwise), and the library code and
//! read-only data the window ran (WebKit, JavaScriptCore, the GL driver: some 25 MiB) are paged
//! out of this process with `MADV_PAGEOUT`. Those are clean file pages: the kernel keeps them in
//! its page cache while memory is plentiful and can drop them for free, and the next window
//! faults them back in (from the cache, in microseconds per page). The same is done once after
//! start-up when no window opens, for the code only start-up ran. Code the idle app runs (the
//! engine, the event loop) comes back at its next use, which is what the measured figures show.
//!
//! Other systems need none of this: macOS ends WebKit's processes itself, and WebView2 ends its
//! browser processes with the last webview.

use std::time::Duration;

use tauri::{AppHandle, Manager};

/// How long to wait after the window is destroyed: WebKit tears the page down asynchronously,
/// and a window that is opened again at once should keep its network process.
const SETTLE: Duration = Duration::from_secs(2);

/// Once `SETTLE` has passed with no window open, ends WebKit's leftover processes and gives
/// unused pages back. Call it when a window was destroyed, and after start-up without one.
pub fn release_when_no_window(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        let handle = app.clone();
        // On the main thread, where windows are created: no window can appear between the
        // check and the release.
        let _ = app.run_on_main_thread(move || {
            if handle.webview_windows().is_empty() {
                release();
            }
        });
    });
}

#[cfg(target_os = "linux")]
fn release() {
    for (pid, name) in linux::webkit_children() {
        // SAFETY: `kill` has no memory-safety preconditions. `pid` was our child a moment ago;
        // a child's pid cannot be reused before it is reaped (by WebKit, after it exits).
        if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
            tracing::info!(pid, name, "no window left: ended WebKit's idle process");
        }
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let paged_out = linux::page_out_read_only_file_mappings();
    tracing::debug!(paged_out, "no window left: read-only file mappings paged out");
}

#[cfg(not(target_os = "linux"))]
fn release() {}

#[cfg(target_os = "linux")]
mod linux {
    /// This process's children whose executable is one of WebKit's (`WebKitNetworkProcess`,
    /// `WebKitWebProcess`, …), from `/proc`.
    pub fn webkit_children() -> Vec<(i32, String)> {
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                (parent_pid(&stat)? == me).then_some(())?;
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
                let name = exe.file_name()?.to_str()?.to_string();
                name.starts_with("WebKit").then_some((pid, name))
            })
            .collect()
    }

    /// Asks the kernel to page out this process's read-only mappings of files (code and
    /// read-only data of the executable and its libraries); returns how many it asked for.
    ///
    /// Only read-only, file-backed mappings: their pages hold exactly the file's bytes (or, for
    /// relocated read-only data, are kept by the kernel as it sees fit), so paging them out can
    /// never change what the process reads, only when a page is read again. Heap and other
    /// anonymous memory are left alone (paging those out would mean swap). A kernel older than
    /// 5.4 refuses `MADV_PAGEOUT`, which changes nothing.
    pub fn page_out_read_only_file_mappings() -> usize {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return 0 };
        read_only_file_mappings(&maps)
            .filter(|&(start, end)| {
                // SAFETY: the range is a mapping of this process (from /proc/self/maps; should it
                // have been unmapped since, madvise fails with ENOMEM), and MADV_PAGEOUT is
                // advisory: it never changes the contents of the memory.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) == 0 }
            })
            .count()
    }

    /// `(start, end)` of each read-only mapping of a regular file in a `/proc/PID/maps` text:
    /// `start-end perms offset dev inode path`, perms `r--p` or `r-xp`, an inode, a path that is
    /// not a deleted file (shared memory shows as one).
    pub fn read_only_file_mappings(maps: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
        maps.lines().filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms, _offset, _dev, inode) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let path = fields.collect::<Vec<_>>().join(" ");
            let read_only = perms == "r--p" || perms == "r-xp";
            if !read_only || inode == "0" || !path.starts_with('/') || path.ends_with("(deleted)") {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?))
        })
    }

    /// The parent's pid from a `/proc/PID/stat` line (the command name in parentheses may hold
    /// spaces and parentheses itself, so fields are counted after its last `)`).
    pub fn parent_pid(stat: &str) -> Option<u32> {
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parent_pid_is_read_after_the_command_name() {
            assert_eq!(parent_pid("4242 (WebKitNetworkPr) S 4200 4200 4200 0 -1"), Some(4200));
            assert_eq!(parent_pid("7 (a) b) (c) R 1 7 7"), Some(1));
            assert_eq!(parent_pid("garbage"), None);
        }

        #[test]
        fn only_read_only_mappings_of_files_are_paged_out() {
            let maps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 1234 /usr/bin/simpleotp-app
55d0a0100000-55d0a0200000 r-xp 00100000 fd:01 1234 /usr/bin/simpleotp-app
55d0a0200000-55d0a0210000 rw-p 00200000 fd:01 1234 /usr/bin/simpleotp-app
55d0a1000000-55d0a2000000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 rw-s 00000000 00:01 99 /memfd:WebKitSharedMemory (deleted)
7f0000100000-7f0000200000 r--s 00000000 00:01 98 /SYSV00000000 (deleted)
7f0000200000-7f0000300000 r--p 00000000 00:00 0
7f0000300000-7f0000400000 r-xp 00000000 fd:01 42 /usr/lib/x86_64-linux-gnu/lib with space.so
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
";
            let found: Vec<_> = read_only_file_mappings(maps).collect();
            assert_eq!(found, [(0x55d0a0000000, 0x55d0a0100000), (0x55d0a0100000, 0x55d0a0200000), (0x7f0000300000, 0x7f0000400000)]);
        }

        /// This process's PSS of file pages, in KiB.
        fn pss_file_kib() -> u64 {
            let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
            rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss_File:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("Pss_File")
        }

        #[test]
        fn paging_out_gives_file_pages_back_and_the_process_goes_on() {
            let before = pss_file_kib();
            assert!(page_out_read_only_file_mappings() > 0, "this test binary has read-only mappings of files");
            let after = pss_file_kib();
            assert!(after < before, "file PSS {before} KiB before, {after} KiB after");
            // The code paged out runs again (read back from the file).
            assert_eq!(parent_pid("1 (x) S 0"), Some(0));
        }

        #[test]
        fn webkit_children_are_found_by_their_executable_and_others_are_left_alone() {
            let dir = tempfile::tempdir().expect("temp dir");
            let webkit_named = dir.path().join("WebKitNetworkProcess");
            std::fs::copy("/bin/sleep", &webkit_named).expect("copy sleep");
            let mut webkit = simpleotp_engine::child::command(&webkit_named).arg("30").spawn().expect("spawn");
            let mut other = simpleotp_engine::child::command("sleep").arg("30").spawn().expect("spawn sleep");
            let found = webkit_children();
            for child in [&mut webkit, &mut other] {
                let _ = child.kill();
                let _ = child.wait();
            }
            assert!(found.contains(&(webkit.id() as i32, "WebKitNetworkProcess".into())), "{found:?}");
            assert!(found.iter().all(|(pid, _)| *pid != other.id() as i32), "{found:?}");
        }
    }
}
