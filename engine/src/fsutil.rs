//! Small file-system helpers shared by everything that persists state.
//!
//! State files (sessions, replay counter, control file, secret file) are written whole to a
//! temporary file in the same directory, flushed to disk, then renamed over the old one: a crash
//! at any point leaves either the old or the new file, never half of one.
//!
//! The temporary file gets a random name and is created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//! (`CREATE_NEW` without following reparse points on Windows), so nothing planted in the
//! directory beforehand (a symbolic link at a guessed name, say) can redirect the write to
//! another file: creation fails instead and a fresh name is tried. Its permissions are set on the
//! open handle to owner-only (0600; an owner-only ACL on Windows) before a byte of content is
//! written. The final rename replaces whatever is at the target path, including a symbolic link,
//! without following it.
//!
//! The OS-specific parts are [`set_owner_only`] and [`open_new_private`] here, and the Windows
//! ACL code in [`owner_only_acl`] at the end of this file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// How many random characters a temporary file name carries (from `[A-Za-z0-9]`).
const TEMP_RANDOM_CHARS: usize = 12;

/// Creates `dir` (and parents) readable by the owner only (0700 on Unix, an owner-only ACL on
/// Windows).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    set_owner_only(dir, true)
}

/// Replaces `path` with `contents` atomically, with owner-only permissions. See the module docs.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_with(path, contents, TEMP_RANDOM_CHARS)
}

/// [`write_atomic`] with the number of random characters in the temporary name as a parameter,
/// so tests can make the name predictable and plant something there.
fn write_atomic_with(path: &Path, contents: &[u8], random_chars: usize) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Dropping `tmp` on any error below removes the temporary file.
    let mut tmp = tempfile::Builder::new().prefix(&temp_prefix(file_name)).rand_bytes(random_chars).make_in(dir, open_new_private)?;
    tmp.as_file_mut().write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable where the platform allows syncing a directory.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The name every temporary file for `file_name` starts with: `.<file_name>.tmp-`.
fn temp_prefix(file_name: &std::ffi::OsStr) -> String {
    format!(".{}.tmp-", file_name.to_string_lossy())
}

/// Removes the temporary files [`write_atomic`] left next to `path` when a process was killed in
/// the middle of a write (`path` itself is intact: it is only ever replaced by a rename). Only
/// call this when nobody else can be writing `path` at the same time.
pub fn remove_leftover_temp_files(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            // A link planted under such a name is removed itself; its target is never touched.
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `path`, which must not exist yet (not even as a dangling symbolic link), for writing,
/// and makes it owner-only on the handle before anything is written to it.
fn open_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE};
        use windows_sys::Win32::Storage::FileSystem::{FILE_FLAG_OPEN_REPARSE_POINT, WRITE_DAC};
        // WRITE_DAC: the handle must be allowed to replace its own ACL.
        options.access_mode(GENERIC_READ | GENERIC_WRITE | WRITE_DAC).custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    let secured = {
        use std::os::unix::fs::PermissionsExt;
        // The umask may have taken bits away from 0600 (never added any): set exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(0o600))
    };
    #[cfg(windows)]
    let secured = owner_only_acl::set_on_file(&file);
    #[cfg(not(any(unix, windows)))]
    let secured: io::Result<()> = Ok(());
    match secured {
        Ok(()) => Ok(file),
        Err(e) => {
            // Not yet owned by a `NamedTempFile`, so nothing else would remove it.
            drop(file);
            let _ = fs::remove_file(path);
            Err(e)
        }
    }
}

/// Opens `path` for appending, creating it if needed, and makes it owner-only on the handle
/// whatever it was before (0600 on Unix, the owner-only ACL on Windows). A symbolic link planted
/// at the name is not followed. For files that grow, such as the log.
pub(crate) fn open_private_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        use windows_sys::Win32::Storage::FileSystem::{
            FILE_APPEND_DATA, FILE_FLAG_OPEN_REPARSE_POINT, FILE_READ_ATTRIBUTES, FILE_WRITE_ATTRIBUTES, READ_CONTROL, SYNCHRONIZE,
            WRITE_DAC,
        };
        // Append only (no FILE_WRITE_DATA, so every write goes to the end), and WRITE_DAC: the
        // handle must be allowed to replace its own ACL.
        options
            .access_mode(FILE_APPEND_DATA | FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | READ_CONTROL | WRITE_DAC | SYNCHRONIZE)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An older file, or the umask, may have left other bits: exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    // On the file itself, not inherited from its folder: an older file may have another ACL,
    // and Wine has no inheritance at all.
    #[cfg(windows)]
    owner_only_acl::set_on_file(&file)?;
    Ok(file)
}

/// Opens (creating it if needed) `path` for reading and writing, owner-only, without
/// truncating it and without following a symbolic link planted at the name: for a file that is
/// locked rather than written ([`crate::instance`]).
pub(crate) fn open_private_read_write(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path)?;
    set_owner_only(path, false)?;
    Ok(file)
}

#[cfg(unix)]
fn set_owner_only(path: &Path, is_dir: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if is_dir { 0o700 } else { 0o600 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(windows)]
fn set_owner_only(path: &Path, is_dir: bool) -> io::Result<()> {
    owner_only_acl::set_on_path(path, is_dir)
}

#[cfg(not(any(unix, windows)))]
fn set_owner_only(_path: &Path, _is_dir: bool) -> io::Result<()> {
    Ok(())
}

/// Why an open file is not private to us, in words (`Err`), for a file whose secrecy matters
/// (the secret file). On Windows: its ACL lets someone other than us, SYSTEM and the
/// Administrators group read or change it. (On Unix the mode says it all; see `secret.rs`.)
#[cfg(windows)]
pub fn check_owner_only(file: &File) -> Result<(), String> {
    owner_only_acl::check(file)
}

/// Owner-only ACLs on Windows, the counterpart of modes 0600/0700.
///
/// "Owner-only" is a *protected* DACL (nothing inherited from the parent folder) with a single
/// entry: full control for the user this process runs as. Directories pass that entry on to
/// everything created in them. SYSTEM and administrators can take any file anyway, so the check
/// in [`check`] accepts entries for them, as it accepts the default ACL of a user profile.
#[cfg(windows)]
mod owner_only_acl {
    use std::ffi::c_void;
    use std::fs::File;
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::AsRawHandle;
    use std::path::Path;

    use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
    use windows_sys::Win32::Security::Authorization::{ConvertSidToStringSidW, GetSecurityInfo, SetNamedSecurityInfoW, SE_FILE_OBJECT};
    use windows_sys::Win32::Security::{
        AclSizeInformation, AddAccessAllowedAceEx, GetAce, GetAclInformation, GetLengthSid, GetTokenInformation, InitializeAcl,
        InitializeSecurityDescriptor, IsWellKnownSid, LookupAccountSidW, SetKernelObjectSecurity, SetSecurityDescriptorControl,
        SetSecurityDescriptorDacl, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid, ACCESS_ALLOWED_ACE, ACE_HEADER, ACL,
        ACL_REVISION, ACL_SIZE_INFORMATION, CONTAINER_INHERIT_ACE, DACL_SECURITY_INFORMATION, INHERIT_ONLY_ACE, OBJECT_INHERIT_ACE,
        PROTECTED_DACL_SECURITY_INFORMATION, PSID, SECURITY_DESCRIPTOR, SE_DACL_PROTECTED, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::Storage::FileSystem::{FILE_ALL_ACCESS, FILE_READ_ATTRIBUTES, READ_CONTROL, SYNCHRONIZE};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    // ACE types (winnt.h). Only "allowed" entries can give anyone access.
    const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
    const ACCESS_ALLOWED_OBJECT_ACE_TYPE: u8 = 5;
    const ACCESS_ALLOWED_CALLBACK_ACE_TYPE: u8 = 9;
    const ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE: u8 = 11;
    /// winnt.h's (windows-sys has it only with the System_SystemServices feature).
    const SECURITY_DESCRIPTOR_REVISION: u32 = 1;
    /// Rights that reveal nothing of the content and change nothing.
    const HARMLESS_RIGHTS: u32 = SYNCHRONIZE | READ_CONTROL | FILE_READ_ATTRIBUTES;

    /// The SID of the user this process runs as (a copy of the token's `TOKEN_USER`).
    pub(super) struct CurrentUser {
        buffer: Vec<u64>,
    }

    impl CurrentUser {
        pub(super) fn get() -> io::Result<CurrentUser> {
            // SAFETY: plain Win32 calls; the buffer is sized by the first call and 8-aligned.
            unsafe {
                let mut token: HANDLE = std::ptr::null_mut();
                if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut needed = 0u32;
                GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut needed);
                let mut buffer = vec![0u64; (needed as usize).div_ceil(8).max(1)];
                let ok = GetTokenInformation(token, TokenUser, buffer.as_mut_ptr().cast(), (buffer.len() * 8) as u32, &mut needed);
                let error = io::Error::last_os_error();
                CloseHandle(token);
                if ok == 0 {
                    return Err(error);
                }
                Ok(CurrentUser { buffer })
            }
        }

        pub(super) fn sid(&self) -> PSID {
            // SAFETY: `buffer` holds a TOKEN_USER filled in by GetTokenInformation; its SID
            // pointer points into the same buffer.
            unsafe { (*(self.buffer.as_ptr() as *const TOKEN_USER)).User.Sid }
        }
    }

    /// An ACL with one entry: full control for the current user (inherited by children when
    /// `inherit`). The buffer is 8-aligned as ACLs require.
    fn owner_only(user: &CurrentUser, inherit: bool) -> io::Result<Vec<u64>> {
        // SAFETY: the ACL buffer is large enough for the header and one ACE with this SID.
        unsafe {
            let sid = user.sid();
            let size = std::mem::size_of::<ACL>() + std::mem::size_of::<ACCESS_ALLOWED_ACE>() + GetLengthSid(sid) as usize;
            let mut buffer = vec![0u64; size.div_ceil(8)];
            let acl = buffer.as_mut_ptr() as *mut ACL;
            if InitializeAcl(acl, (buffer.len() * 8) as u32, ACL_REVISION) == 0 {
                return Err(io::Error::last_os_error());
            }
            let flags = if inherit { CONTAINER_INHERIT_ACE | OBJECT_INHERIT_ACE } else { 0 };
            if AddAccessAllowedAceEx(acl, ACL_REVISION, flags, FILE_ALL_ACCESS, sid) == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(buffer)
        }
    }

    const SET: u32 = DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION;

    /// Gives the open file (opened with `WRITE_DAC`) an owner-only ACL.
    ///
    /// Through `SetKernelObjectSecurity` with a descriptor marked `SE_DACL_PROTECTED`, which stores
    /// exactly this DACL on the handle's file. For a file (nothing below it to propagate to) that is
    /// what `SetSecurityInfo` with `PROTECTED_DACL_SECURITY_INFORMATION` does on Windows; the
    /// difference is Wine 8, whose `SetSecurityInfo` ignores the protection and adds the parent
    /// folder's inheritable entries (under a 0755 folder: Everyone may read), so under Wine every
    /// file we wrote was refused as "readable by Everyone" (issue 18; measured with a mingw probe:
    /// the same DACL through `SetKernelObjectSecurity` comes back exactly as set).
    pub(super) fn set_on_file(file: &File) -> io::Result<()> {
        let user = CurrentUser::get()?;
        let acl = owner_only(&user, false)?;
        // SAFETY: `descriptor` and the ACL it points to outlive the call; the handle is valid.
        unsafe {
            let mut descriptor: SECURITY_DESCRIPTOR = std::mem::zeroed();
            let descriptor_ptr = (&mut descriptor as *mut SECURITY_DESCRIPTOR).cast::<c_void>();
            if InitializeSecurityDescriptor(descriptor_ptr, SECURITY_DESCRIPTOR_REVISION) == 0
                || SetSecurityDescriptorDacl(descriptor_ptr, 1, acl.as_ptr() as *const ACL, 0) == 0
                || SetSecurityDescriptorControl(descriptor_ptr, SE_DACL_PROTECTED, SE_DACL_PROTECTED) == 0
                || SetKernelObjectSecurity(file.as_raw_handle() as HANDLE, SET, descriptor_ptr) == 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Gives the file or directory at `path` an owner-only ACL.
    pub(super) fn set_on_path(path: &Path, is_dir: bool) -> io::Result<()> {
        let user = CurrentUser::get()?;
        let acl = owner_only(&user, is_dir)?;
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(std::iter::once(0)).collect();
        // SAFETY: NUL-terminated path and a valid ACL for the duration of the call.
        let status = unsafe {
            SetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                SET,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                acl.as_ptr() as *const ACL,
                std::ptr::null(),
            )
        };
        win32_result(status)
    }

    /// `Err(who)` when the file's ACL lets anyone but us, SYSTEM or the Administrators group do
    /// more than see that it exists.
    pub(super) fn check(file: &File) -> Result<(), String> {
        let user = CurrentUser::get().map_err(|e| format!("cannot find out who we run as ({e})"))?;
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut descriptor: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid handle; on success `descriptor` owns the memory `dacl` points into and is
        // freed with LocalFree below.
        let status = unsafe {
            GetSecurityInfo(
                file.as_raw_handle() as HANDLE,
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut descriptor,
            )
        };
        win32_result(status).map_err(|e| format!("cannot read its access list ({e})"))?;
        // SAFETY: `dacl` belongs to `descriptor`, which lives until the LocalFree.
        let verdict = unsafe { check_dacl(dacl, user.sid()) };
        // SAFETY: allocated by GetSecurityInfo.
        unsafe { LocalFree(descriptor) };
        verdict
    }

    /// SAFETY: `dacl` is null or a valid ACL.
    unsafe fn check_dacl(dacl: *const ACL, me: PSID) -> Result<(), String> {
        if dacl.is_null() {
            return Err("everyone (it has no access list)".into());
        }
        let mut info: ACL_SIZE_INFORMATION = std::mem::zeroed();
        if GetAclInformation(
            dacl,
            (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
            std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        ) == 0
        {
            return Err(format!("cannot read its access list ({})", io::Error::last_os_error()));
        }
        for index in 0..info.AceCount {
            let mut ace: *mut c_void = std::ptr::null_mut();
            if GetAce(dacl, index, &mut ace) == 0 {
                return Err(format!("cannot read its access list ({})", io::Error::last_os_error()));
            }
            let header = *(ace as *const ACE_HEADER);
            if header.AceFlags as u32 & INHERIT_ONLY_ACE != 0 {
                continue; // applies to children only, not to this file
            }
            match header.AceType {
                ACCESS_ALLOWED_ACE_TYPE | ACCESS_ALLOWED_CALLBACK_ACE_TYPE => {
                    // Both have the same layout: header, mask, then the SID.
                    let allowed = ace as *const ACCESS_ALLOWED_ACE;
                    let sid = std::ptr::addr_of!((*allowed).SidStart) as PSID;
                    if (*allowed).Mask & !HARMLESS_RIGHTS == 0 || is_trusted(sid, me) {
                        continue;
                    }
                    return Err(account_name(sid));
                }
                ACCESS_ALLOWED_OBJECT_ACE_TYPE | ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE => {
                    return Err("an object-specific access rule".into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// SAFETY: both SIDs valid.
    unsafe fn is_trusted(sid: PSID, me: PSID) -> bool {
        windows_sys::Win32::Security::EqualSid(sid, me) != 0
            || IsWellKnownSid(sid, WinLocalSystemSid) != 0
            || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
    }

    /// `DOMAIN\name` of a SID, or its `S-1-…` form when it cannot be looked up.
    /// SAFETY: `sid` valid.
    unsafe fn account_name(sid: PSID) -> String {
        let (mut name, mut domain) = ([0u16; 256], [0u16; 256]);
        let (mut name_len, mut domain_len, mut kind) = (name.len() as u32, domain.len() as u32, 0);
        if LookupAccountSidW(std::ptr::null(), sid, name.as_mut_ptr(), &mut name_len, domain.as_mut_ptr(), &mut domain_len, &mut kind) != 0
        {
            let name = String::from_utf16_lossy(&name[..name_len as usize]);
            let domain = String::from_utf16_lossy(&domain[..domain_len as usize]);
            return if domain.is_empty() { name } else { format!("{domain}\\{name}") };
        }
        let mut text: *mut u16 = std::ptr::null_mut();
        if ConvertSidToStringSidW(sid, &mut text) == 0 {
            return "an unknown account".into();
        }
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        let out = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
        LocalFree(text.cast());
        out
    }

    fn win32_result(status: u32) -> io::Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(status as i32))
        }
    }
}

/// For tests that run as Windows programs under Wine (`scripts/wine-test.sh`): finding out that
/// they do, and skipping by name, with the reason, what Wine does not do. It lives here because
/// what Wine lacks is mostly this module's subject: access lists.
#[cfg(test)]
pub(crate) mod testing {
    /// Whether this process runs under Wine: Wine's ntdll.dll exports `wine_get_version`, which
    /// Windows' never has. (An environment variable could be inherited or set by hand.)
    pub(crate) fn under_wine() -> bool {
        #[cfg(windows)]
        {
            use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
            let ntdll: Vec<u16> = "ntdll.dll".encode_utf16().chain(std::iter::once(0)).collect();
            // SAFETY: NUL-terminated names; ntdll.dll is loaded in every process and never unloaded.
            unsafe {
                let module = GetModuleHandleW(ntdll.as_ptr());
                !module.is_null() && GetProcAddress(module, c"wine_get_version".as_ptr().cast()).is_some()
            }
        }
        #[cfg(not(windows))]
        false
    }

    /// Says that `test` is skipped and why, as one line of its own ("skipped: TEST: REASON"),
    /// which `scripts/wine-test.sh` counts and lists.
    pub(crate) fn skipped(test: &str, reason: &str) {
        // One write (the whole line as the only argument), starting on a line of its own:
        // parallel tests print beside it.
        let line = format!("\nskipped: {test}: {reason}\n");
        eprint!("{line}");
    }

    /// `true` (after saying so) when `test` must be skipped because it runs under Wine, which
    /// lacks what `reason` says; `false` on Windows and everywhere else.
    #[cfg_attr(not(windows), allow(dead_code))] // today only Windows-only tests have Wine to fear
    pub(crate) fn skip_under_wine(test: &str, reason: &str) -> bool {
        if !under_wine() {
            return false;
        }
        skipped(test, &format!("under Wine: {reason}"));
        true
    }

    /// Gives `path` a protected access list that lets its owner do anything and Everyone read: a
    /// file that the owner-only checks must refuse.
    #[cfg(windows)]
    pub(crate) fn let_everyone_read(path: &std::path::Path) {
        use std::os::windows::ffi::OsStrExt;
        use windows_sys::Win32::Security::Authorization::{SetNamedSecurityInfoW, SE_FILE_OBJECT};
        use windows_sys::Win32::Security::{
            AddAccessAllowedAce, CreateWellKnownSid, InitializeAcl, WinWorldSid, ACL, ACL_REVISION, DACL_SECURITY_INFORMATION,
            PROTECTED_DACL_SECURITY_INFORMATION,
        };
        use windows_sys::Win32::Storage::FileSystem::{FILE_ALL_ACCESS, FILE_GENERIC_READ};
        let user = super::owner_only_acl::CurrentUser::get().unwrap();
        let mut everyone = [0u64; 16];
        let mut everyone_len = (everyone.len() * 8) as u32;
        let mut acl = [0u64; 32];
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(std::iter::once(0)).collect();
        // SAFETY: buffers sized for a SID (at most 68 bytes) and an ACL with two short entries.
        unsafe {
            assert_ne!(CreateWellKnownSid(WinWorldSid, std::ptr::null_mut(), everyone.as_mut_ptr().cast(), &mut everyone_len), 0);
            let acl_ptr = acl.as_mut_ptr() as *mut ACL;
            assert_ne!(InitializeAcl(acl_ptr, (acl.len() * 8) as u32, ACL_REVISION), 0);
            assert_ne!(AddAccessAllowedAce(acl_ptr, ACL_REVISION, FILE_ALL_ACCESS, user.sid()), 0);
            assert_ne!(AddAccessAllowedAce(acl_ptr, ACL_REVISION, FILE_GENERIC_READ, everyone.as_mut_ptr().cast()), 0);
            let status = SetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                acl_ptr,
                std::ptr::null(),
            );
            assert_eq!(status, 0, "SetNamedSecurityInfoW");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_is_private_and_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary files are left behind.
        assert_eq!(names_in(dir.path()), ["state.json"]);
    }

    /// The umask is process-wide: tests that change it run in a child process.
    #[cfg(unix)]
    #[test]
    fn atomic_write_is_0600_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        const CHILD: &str = "SIMPLEOTP_FSUTIL_UMASK_CHILD";
        if let Ok(target) = std::env::var(CHILD) {
            // In the child: the most permissive umask there is, and a too-wide existing file.
            // SAFETY: umask has no memory-safety preconditions.
            unsafe { libc::umask(0) };
            let target = Path::new(&target);
            fs::write(target, b"old").unwrap();
            fs::set_permissions(target, fs::Permissions::from_mode(0o666)).unwrap();
            write_atomic(target, b"new").unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        let out = crate::child::command(std::env::current_exe().unwrap())
            .args(["--exact", "fsutil::tests::atomic_write_is_0600_whatever_the_umask", "--nocapture", "--test-threads=1"])
            .env(CHILD, &target)
            .output()
            .unwrap();
        assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(fs::read(&target).unwrap(), b"new", "the child did not write");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_temp_name_does_not_redirect_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state.json");
        // With no random characters the temporary name is exactly the prefix: plant a link there,
        // and one at the name the old code used (`<prefix><pid>`).
        let predictable = dir.path().join(temp_prefix(path.file_name().unwrap()));
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();
        let old_style = dir.path().join(format!(".state.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_style).unwrap();

        let err = write_atomic_with(&path, b"attacker-chosen target?", 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!path.exists());
        // With a random name the write succeeds, next to the planted links, and still leaves the
        // victim alone.
        write_atomic(&path, b"state").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"state");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&predictable).unwrap().file_type().is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_target_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"state").unwrap();
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file(), "the link itself was replaced");
        assert_eq!(fs::read(&path).unwrap(), b"state");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // A dangling link is replaced the same way (and nothing is created where it pointed).
        let nowhere = dir.path().join("nowhere");
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&nowhere, &path).unwrap();
        write_atomic(&path, b"state").unwrap();
        assert!(!nowhere.exists());
        assert_eq!(names_in(dir.path()), ["state.json", "victim"]);
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a non-empty directory.
        let path = dir.path().join("state.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomic(&path, b"state").is_err());
        assert_eq!(names_in(dir.path()), ["state.json"]);
        // Creating the temporary file fails: the name is taken (no random part to retry with).
        let path = dir.path().join("other");
        let taken = dir.path().join(temp_prefix(path.file_name().unwrap()));
        fs::write(&taken, b"").unwrap();
        assert!(write_atomic_with(&path, b"state", 0).is_err());
        assert_eq!(names_in(dir.path()), [".other.tmp-", "state.json"]);
    }

    #[test]
    fn leftover_temp_files_are_recognised_and_only_they_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"state").unwrap();
        // What a writer killed before its rename leaves: a temp file by the real naming.
        let leftover = tempfile::Builder::new()
            .prefix(&temp_prefix(path.file_name().unwrap()))
            .rand_bytes(TEMP_RANDOM_CHARS)
            .tempfile_in(dir.path())
            .unwrap();
        let (_, leftover) = leftover.keep().unwrap();
        fs::write(dir.path().join(".control.json.tmp-abc"), b"").unwrap();
        fs::write(dir.path().join("state.json.corrupt-1"), b"").unwrap();
        remove_leftover_temp_files(&path);
        assert!(!leftover.exists());
        assert_eq!(names_in(dir.path()), [".control.json.tmp-abc", "state.json", "state.json.corrupt-1"]);
    }

    /// Windows: what `write_atomic` writes is private to us, by the same check the secret file
    /// gets; replaced, it stays so; no temporary file is left.
    #[cfg(windows)]
    #[test]
    fn atomic_write_is_owner_only_on_windows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        assert_eq!(check_owner_only(&File::open(&path).unwrap()), Ok(()));
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(check_owner_only(&File::open(&path).unwrap()), Ok(()));
        assert_eq!(names_in(dir.path()), ["state.json"]);
    }

    /// Windows: the check names who else may read a file, and ignores entries that let nobody
    /// read or change anything.
    #[cfg(windows)]
    #[test]
    fn a_file_everyone_may_read_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"x").unwrap();
        testing::let_everyone_read(&path);
        let who = check_owner_only(&File::open(&path).unwrap()).unwrap_err();
        assert!(who.contains("Everyone") || who == "S-1-1-0", "{who}");
        // Written again, it is owner-only again (a new file, renamed over it).
        write_atomic(&path, b"y").unwrap();
        assert_eq!(check_owner_only(&File::open(&path).unwrap()), Ok(()));
    }

    /// Windows: a private directory is owner-only, and so is a file created in it afterwards
    /// (through the entry it passes on).
    #[cfg(windows)]
    #[test]
    fn a_private_dir_and_what_is_created_in_it_are_owner_only() {
        // Wine keeps no access lists: it derives them from the Unix mode bits, and its
        // SetNamedSecurityInfoW adds the parent folder's inheritable entries even to a protected
        // list (the folder gets its parent's "Everyone may read"), while a file created in a
        // folder gets the mode of the umask, not the folder's inheritable entry. Measured with a
        // mingw probe; Windows does both (PROTECTED_DACL_SECURITY_INFORMATION, ACE inheritance).
        if testing::skip_under_wine(
            "fsutil::tests::a_private_dir_and_what_is_created_in_it_are_owner_only",
            "Wine 8 has no ACL inheritance (new files get the umask's mode) and adds inherited entries to protected DACLs",
        ) {
            return;
        }
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("private");
        create_private_dir(&dir).unwrap();
        let open_dir = || {
            use std::os::windows::fs::OpenOptionsExt;
            use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_BACKUP_SEMANTICS;
            // Without FILE_FLAG_BACKUP_SEMANTICS a directory cannot be opened.
            OpenOptions::new().read(true).custom_flags(FILE_FLAG_BACKUP_SEMANTICS).open(&dir).unwrap()
        };
        assert_eq!(check_owner_only(&open_dir()), Ok(()));
        let inside = dir.join("log.txt");
        fs::write(&inside, b"x").unwrap();
        assert_eq!(check_owner_only(&File::open(&inside).unwrap()), Ok(()));
    }

    #[test]
    fn wine_is_detected_only_under_wine() {
        // scripts/wine-test.sh runs these tests under Wine (and says so to the tests); Linux,
        // macOS and Windows runs must not think they are under Wine.
        let expected = std::env::var("SIMPLEOTP_UNDER_WINE").is_ok_and(|v| v == "1");
        assert_eq!(testing::under_wine(), expected);
    }
}
