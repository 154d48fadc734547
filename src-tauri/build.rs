fn main() {
    // The window's page comes from the embedded hub (http://127.0.0.1:PORT), a
    // "remote" origin to Tauri, which may only call commands that an app manifest
    // declares and a capability grants (the capability is added at run time,
    // for the hub's actual port: see `window.rs`).
    let manifest = tauri_build::AppManifest::new().commands(&[
        "desktop_settings",
        "set_autostart",
        "set_notifications",
        "set_session_notifications",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri build step failed");
}
