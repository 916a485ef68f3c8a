//! The commands the window calls: each unwraps the core and turns its error into the message the
//! user reads. The list here, `build.rs` and `capabilities/main.json` must agree.

use std::sync::Arc;

use tauri::{AppHandle, State};

use serde::Serialize;

use crate::core::{
    AppInput, AppSaved, AuthenticatorView, Core, CoreError, DevicesView, PasskeyLinkView, PasskeyView, PhoneProgressView,
    RecoveryCodesView, SecretView, SecurityView, SessionView, SettingsSaved, SettingsView, StatusView, UnlockView, UpdatesView,
    UpstreamCheck,
};

type Core_<'a> = State<'a, Arc<Core>>;
type Answer<T> = Result<T, String>;

fn message(e: CoreError) -> String {
    e.user_message()
}

#[tauri::command]
pub fn status(core: Core_<'_>) -> StatusView {
    core.status()
}

#[tauri::command]
pub async fn retry(core: Core_<'_>) -> Answer<StatusView> {
    core.retry().await.map_err(message)
}

#[tauri::command]
pub async fn set_paused(core: Core_<'_>, paused: bool) -> Answer<StatusView> {
    core.set_paused(paused).await.map_err(message)
}

#[tauri::command]
pub async fn wizard_begin(core: Core_<'_>) -> Answer<SecretView> {
    core.wizard_begin().await.map_err(message)
}

#[tauri::command]
pub async fn wizard_confirm(core: Core_<'_>, code: String) -> Answer<StatusView> {
    core.wizard_confirm(&code).await.map_err(message)
}

#[tauri::command]
pub fn wizard_cancel(core: Core_<'_>) {
    core.wizard_cancel()
}

/// Why an app was not saved, and, when its port is taken, a free one the window offers as a
/// one-click "Use 8082".
#[derive(Debug, Serialize)]
pub struct AppRefused {
    message: String,
    use_port: Option<u16>,
}

impl From<CoreError> for AppRefused {
    fn from(e: CoreError) -> AppRefused {
        let use_port = match &e {
            CoreError::PortTaken { alternative, .. } => *alternative,
            _ => None,
        };
        AppRefused { message: e.user_message(), use_port }
    }
}

#[tauri::command]
pub async fn app_add(core: Core_<'_>, app: AppInput) -> Result<AppSaved, AppRefused> {
    Ok(core.app_add(app).await?)
}

#[tauri::command]
pub async fn app_edit(core: Core_<'_>, original: String, app: AppInput) -> Result<AppSaved, AppRefused> {
    Ok(core.app_edit(&original, app).await?)
}

/// The port the app forms start with: 8081 if free, else the next free one.
#[tauri::command]
pub fn app_free_port(core: Core_<'_>) -> Answer<u16> {
    core.app_free_port().map_err(message)
}

/// "Open it at: …" for the port being typed.
#[tauri::command]
pub fn app_address(core: Core_<'_>, port: u16) -> Answer<String> {
    core.app_address(port).map_err(message)
}

/// The **Test** button: does the app answer at its upstream (nothing is saved).
#[tauri::command]
pub async fn app_test(core: Core_<'_>, app: AppInput) -> Answer<UpstreamCheck> {
    core.app_test(&app).await.map_err(message)
}

#[tauri::command]
pub async fn app_remove(core: Core_<'_>, name: String) -> Answer<StatusView> {
    core.app_remove(&name).await.map_err(message)
}

/// Opens a protected app in the default browser. Only the URL of a configured app can be
/// opened, so the window cannot be used to launch arbitrary URLs or programs.
#[tauri::command]
pub fn open_app(core: Core_<'_>, name: String) -> Answer<()> {
    let url = core.app_url(&name).map_err(message)?;
    crate::open_in_browser(&url)
}

#[tauri::command]
pub fn sessions_list(core: Core_<'_>) -> Vec<SessionView> {
    core.sessions_list()
}

#[tauri::command]
pub async fn session_revoke(core: Core_<'_>, id: String) -> Answer<()> {
    core.session_revoke(&id).await.map_err(message)
}

#[tauri::command]
pub async fn sessions_revoke_all(core: Core_<'_>) -> Answer<usize> {
    Ok(core.sessions_revoke_all().await)
}

#[tauri::command]
pub fn security_status(core: Core_<'_>) -> SecurityView {
    core.security_status()
}

#[tauri::command]
pub fn security_unlock(core: Core_<'_>) -> Answer<UnlockView> {
    core.security_unlock().map_err(message)
}

/// The wizard's last screen: the recovery codes made at setup, once.
#[tauri::command]
pub fn wizard_recovery_codes(core: Core_<'_>) -> Option<RecoveryCodesView> {
    core.wizard_recovery_codes()
}

/// Security › Recovery codes: a new set after a current code, shown once.
#[tauri::command]
pub async fn recovery_codes_new(core: Core_<'_>, code: String) -> Answer<RecoveryCodesView> {
    core.recovery_codes_new(&code).await.map_err(message)
}

/// "Save as a text file": the codes the window shows, in a 0600 file in the Downloads folder;
/// where it went.
#[tauri::command]
pub fn recovery_codes_save(core: Core_<'_>, codes: Vec<String>) -> Answer<String> {
    core.save_recovery_codes(&codes).map(|path| path.display().to_string()).map_err(message)
}

#[tauri::command]
pub fn passkeys_list(core: Core_<'_>) -> Vec<PasskeyView> {
    core.passkeys()
}

/// "Add a passkey", behind a current code: the one-time link (and a phone's).
#[tauri::command]
pub async fn passkey_link(core: Core_<'_>, code: String) -> Answer<PasskeyLinkView> {
    core.passkey_link(&code).await.map_err(message)
}

/// Opens a live link to add a passkey in the default browser (nothing else).
#[tauri::command]
pub fn open_passkey_link(core: Core_<'_>, url: String) -> Answer<()> {
    core.check_passkey_link(&url).map_err(message)?;
    crate::open_in_browser(&url)
}

#[tauri::command]
pub async fn passkey_rename(core: Core_<'_>, id: String, name: String) -> Answer<Vec<PasskeyView>> {
    core.passkey_rename(&id, &name).await.map_err(message)
}

#[tauri::command]
pub async fn passkey_remove(core: Core_<'_>, id: String) -> Answer<Vec<PasskeyView>> {
    core.passkey_remove(&id).await.map_err(message)
}

/// "Add a phone" begins: progress counts from now.
#[tauri::command]
pub fn phone_flow_start(core: Core_<'_>) -> PhoneProgressView {
    core.phone_flow_start()
}

/// How far the phone got (asked every couple of seconds while the flow shows).
#[tauri::command]
pub fn phone_progress(core: Core_<'_>) -> PhoneProgressView {
    core.phone_progress()
}

/// The links of an Unlock sign-ins made in the tray menu, once (`None` when there was none).
#[tauri::command]
pub fn security_take_tray_unlock(core: Core_<'_>) -> Option<UnlockView> {
    core.take_tray_unlock()
}

/// Opens an unlock link in the default browser; only a live ticket on a configured app's
/// address is opened (the window cannot launch arbitrary URLs).
#[tauri::command]
pub fn open_unlock_link(core: Core_<'_>, url: String) -> Answer<()> {
    core.check_unlock_link(&url).map_err(message)?;
    crate::open_in_browser(&url)
}

/// Security › Add another authenticator: its name and a current code from an app in use; the
/// new app's QR code and setup key.
#[tauri::command]
pub async fn authenticator_add_begin(core: Core_<'_>, name: String, current_code: String) -> Answer<SecretView> {
    core.authenticator_add_begin(&name, &current_code).await.map_err(message)
}

/// The code the new app shows: the authenticator is added once it is right.
#[tauri::command]
pub async fn authenticator_add_confirm(core: Core_<'_>, code: String) -> Answer<AuthenticatorView> {
    core.authenticator_add_confirm(&code).await.map_err(message)
}

#[tauri::command]
pub async fn authenticator_remove(core: Core_<'_>, id: String) -> Answer<()> {
    core.authenticator_remove(&id).await.map_err(message)
}

/// `current_code`: a code of the secret in use; the new one is made only after it.
#[tauri::command]
pub async fn secret_replace_begin(core: Core_<'_>, current_code: String) -> Answer<SecretView> {
    core.secret_replace_begin(&current_code).await.map_err(message)
}

#[tauri::command]
pub async fn secret_replace_confirm(core: Core_<'_>, code: String) -> Answer<usize> {
    core.secret_replace_confirm(&code).await.map_err(message)
}

#[tauri::command]
pub fn settings_get(core: Core_<'_>) -> SettingsSaved {
    SettingsSaved {
        settings: core.settings_get(),
        network_interfaces: core.network_interfaces(),
        nginx: core.nginx_found(),
        warnings: Vec::new(),
    }
}

#[tauri::command]
pub async fn settings_set(core: Core_<'_>, settings: SettingsView) -> Answer<SettingsSaved> {
    core.settings_set(settings).await.map_err(message)
}

/// "Other devices" (Add a phone): the apps' addresses and QR codes, and the CA card.
#[tauri::command]
pub async fn devices(core: Core_<'_>) -> Answer<DevicesView> {
    core.devices().await.map_err(message)
}

/// "Trust on this computer" (the OS asks the person to confirm).
#[tauri::command]
pub async fn ca_trust(core: Core_<'_>) -> Answer<DevicesView> {
    core.ca_trust().await.map_err(message)
}

#[tauri::command]
pub async fn ca_untrust(core: Core_<'_>) -> Answer<DevicesView> {
    core.ca_untrust().await.map_err(message)
}

/// "Ask Windows again" on Other devices: Windows' administrator prompt to let other devices
/// through its firewall; the screen then shows whether they may still be blocked.
#[tauri::command]
pub async fn firewall_retry(core: Core_<'_>) -> Answer<DevicesView> {
    core.firewall_retry().await;
    core.devices().await.map_err(message)
}

/// "Copy diagnostics": versions, paths, ports, state and recent errors (never a secret).
#[tauri::command]
pub async fn diagnostics(core: Core_<'_>) -> Answer<String> {
    Ok(core.diagnostics().await)
}

/// "Open config folder": the folder of the config file, in the file manager.
#[tauri::command]
pub fn open_config_folder(core: Core_<'_>) -> Answer<()> {
    let folder = core.config_folder();
    open::that_detached(&folder).map_err(|e| format!("cannot open {}: {e}", folder.display()))
}

/// The three lists that must agree: the commands `build.rs` makes permissions for, the ones
/// the capability grants, and the ones registered with Tauri.
#[cfg(test)]
mod tests {
    fn build_rs_commands() -> Vec<String> {
        let text = include_str!("../build.rs");
        let start = text.find("const COMMANDS").expect("COMMANDS in build.rs");
        let list = &text[start..text[start..].find("];").map(|e| start + e).expect("end of COMMANDS")];
        list.lines().filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix("\",").map(str::to_string)).collect()
    }

    #[test]
    fn every_command_is_generated_granted_and_registered() {
        let commands = build_rs_commands();
        assert_eq!(commands.len(), 50, "{commands:?}");
        let capability: serde_json::Value = serde_json::from_str(include_str!("../capabilities/main.json")).unwrap();
        let granted: Vec<String> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str()?.strip_prefix("allow-").map(|c| c.replace('-', "_")))
            .collect();
        assert_eq!(granted, commands, "capabilities/main.json grants exactly the app's commands");
        let lib = include_str!("lib.rs");
        for command in &commands {
            assert!(lib.contains(&format!("commands::{command},")), "{command} is not registered in lib.rs");
            assert!(
                include_str!("commands.rs").contains(&format!("pub async fn {command}("))
                    || include_str!("commands.rs").contains(&format!("pub fn {command}("))
            );
        }
    }

    #[test]
    fn the_capability_grants_nothing_else_but_event_listening() {
        let capability: serde_json::Value = serde_json::from_str(include_str!("../capabilities/main.json")).unwrap();
        let others: Vec<&str> =
            capability["permissions"].as_array().unwrap().iter().filter_map(|p| p.as_str()).filter(|p| !p.starts_with("allow-")).collect();
        assert_eq!(others, ["core:event:allow-listen", "core:event:allow-unlisten"]);
        assert_eq!(capability["windows"], serde_json::json!(["main"]));
    }
}

/// Launch at login on or off (the wizard's last screen, Status).
#[tauri::command]
pub fn launch_at_login_set(core: Core_<'_>, on: bool) -> Answer<()> {
    core.set_launch_at_login(on).map_err(message)
}

#[tauri::command]
pub fn updates_get(core: Core_<'_>) -> UpdatesView {
    core.updates_view()
}

/// "Check now": one check, whatever the automatic setting; the view afterwards.
#[tauri::command]
pub async fn updates_check_now(app: AppHandle, core: Core_<'_>) -> Answer<UpdatesView> {
    let core = core.inner().clone();
    crate::updates::check_now(&app, &core).await;
    Ok(core.updates_view())
}

/// "Install and restart" (after the window's one confirmation): returns only if it failed.
#[tauri::command]
pub async fn update_install(app: AppHandle, core: Core_<'_>) -> Answer<()> {
    let core = core.inner().clone();
    crate::updates::install_and_restart(&app, &core).await
}

/// Whether the window should open on Updates (the tray's "Update to x.y.z…"), once.
#[tauri::command]
pub fn updates_take_focus(core: Core_<'_>) -> bool {
    core.take_updates_focus()
}

/// Status's "Check again": whether other devices open an app without a code, checked now; the
/// status afterwards.
#[tauri::command]
pub async fn reachable_check(core: Core_<'_>) -> Answer<StatusView> {
    Ok(core.check_bypasses().await)
}

/// The releases page, for a copy that cannot install an update itself.
#[tauri::command]
pub fn open_releases_page() -> Answer<()> {
    crate::open_in_browser(simpleotp_engine::updates::RELEASES_PAGE)
}
