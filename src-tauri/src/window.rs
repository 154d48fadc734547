//! The window: the hub's own web UI, signed in automatically.
//!
//! The page is loaded from the embedded hub (http://127.0.0.1:PORT), exactly what
//! a browser or the phone gets. The owner token is handed over by an
//! initialization script that defines it only on the hub's origin, so it is
//! never in a URL, in history or in the page's storage. Navigation away from the
//! hub is refused (links open in the system browser instead), so no other origin
//! ever runs inside this webview.
//!
//! Closing the window destroys the webview (its web processes hold most of the
//! app's memory); the app stays in the tray and "Open window" builds a new one.
use tauri::webview::WebviewWindowBuilder;
use tauri::{AppHandle, Manager as _, WebviewUrl};

pub const LABEL: &str = "main";

/// Shows the window (building it if closed) and, if given, opens a session.
pub fn show(app: &AppHandle, session_id: Option<&str>) -> tauri::Result<()> {
    let hash = session_id
        .map(|id| format!("#/session/{}", encode(id)))
        .unwrap_or_default();
    show_route(app, &hash)
}

/// Shows the window at a route of the UI (`#/pair-phone`, …; "" keeps the
/// current one).
pub fn show_route(app: &AppHandle, hash: &str) -> tauri::Result<()> {
    let desk = app.state::<crate::Desktop>();
    if let Some(window) = app.get_webview_window(LABEL) {
        if !hash.is_empty() {
            window.eval(format!(
                "window.location.hash = {};",
                serde_json::to_string(hash).unwrap_or_default()
            ))?;
        }
        window.show()?;
        window.unminimize()?;
        window.set_focus()?;
        return Ok(());
    }
    let url: tauri::Url = format!("{}/{hash}", desk.hub.url())
        .parse()
        .map_err(|e| tauri::Error::Anyhow(anyhow::anyhow!("bad hub URL: {e}")))?;
    let origin = url.origin().ascii_serialization();
    let init = format!(
        "if (window.location.origin === {origin}) {{ Object.defineProperty(window, '__HAPI_DESKTOP__', \
         {{ value: Object.freeze({{ token: {token} }}), configurable: false }}); }}",
        origin = serde_json::to_string(&origin).unwrap_or_default(),
        token = serde_json::to_string(desk.token()).unwrap_or_default(),
    );
    let hub_origin = origin.clone();
    let window = WebviewWindowBuilder::new(app, LABEL, WebviewUrl::External(url))
        .title("HAPI")
        .inner_size(1100.0, 760.0)
        .min_inner_size(360.0, 480.0)
        .initialization_script(&init)
        .on_navigation(move |url| {
            let same = url.origin().ascii_serialization() == hub_origin;
            if !same && matches!(url.scheme(), "http" | "https") {
                crate::desktop::open_externally(url.as_str());
            }
            same
        })
        .build()?;
    window.set_focus()?;
    Ok(())
}

/// Percent-encodes a session id for the URL fragment (ids are UUIDs, but a
/// fragment must never be able to break out of its route).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The capability that lets the hub-served page call the app's commands: only
/// the window `main`, only from the hub's exact origin, only these commands.
pub fn capability(hub_url: &str) -> tauri::ipc::CapabilityBuilder {
    tauri::ipc::CapabilityBuilder::new("hub-window")
        .window(LABEL)
        .remote(format!("{hub_url}/*"))
        .permission("allow-desktop-settings")
        .permission("allow-set-autostart")
        .permission("allow-set-notifications")
        .permission("allow-set-session-notifications")
}

#[cfg(test)]
mod tests {
    #[test]
    fn encode_keeps_ids_and_escapes_the_rest() {
        assert_eq!(super::encode("0190a-b_c.d"), "0190a-b_c.d");
        assert_eq!(super::encode("a/b#c"), "a%2Fb%23c");
    }
}
