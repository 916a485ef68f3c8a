// Every command the UI may call is listed here, so that Tauri generates an `allow-…` permission
// for each and denies any command not granted in capabilities/main.json.
const COMMANDS: &[&str] = &[
    "status",
    "retry",
    "set_paused",
    "wizard_begin",
    "wizard_confirm",
    "wizard_cancel",
    "app_add",
    "app_edit",
    "app_remove",
    "app_free_port",
    "app_address",
    "app_test",
    "open_app",
    "sessions_list",
    "session_revoke",
    "sessions_revoke_all",
    "security_status",
    "security_unlock",
    "security_take_tray_unlock",
    "open_unlock_link",
    "security_show_qr",
    "secret_replace_begin",
    "secret_replace_confirm",
    "settings_get",
    "settings_set",
    "devices",
    "phone_flow_start",
    "phone_progress",
    "ca_trust",
    "ca_untrust",
    "firewall_retry",
    "diagnostics",
    "open_config_folder",
    "updates_get",
    "updates_check_now",
    "update_install",
    "updates_take_focus",
    "open_releases_page",
    "launch_at_login_set",
    "reachable_check",
];

fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)))
        .expect("tauri build step failed");
}
