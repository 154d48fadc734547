//! Just enough of the W3C WebDriver protocol to drive the app's real window
//! through `tauri-driver` (which fronts Debian's `WebKitWebDriver`).
use std::process::{Command, Stdio};
use std::time::Duration;

use hapi_e2e::Child;
use serde_json::{Value, json};

use super::{DesktopEnv, poll};

pub struct Driver {
    _process: Child,
    base: String,
    http: reqwest::blocking::Client,
}

pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tauri_driver() -> std::path::PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .unwrap();
    let path = home.join("bin/tauri-driver");
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/setup.sh --test`",
        path.display()
    );
    path
}

impl Driver {
    /// Starts tauri-driver in `env`'s desktop; the app it launches inherits
    /// `extra` (and the desktop's environment).
    pub fn start(env: &DesktopEnv, extra: &[(&str, std::ffi::OsString)]) -> Driver {
        let port = free_port();
        let native = free_port();
        let mut cmd = env.cmd(tauri_driver());
        cmd.args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .stdout(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let process = Child::spawn("tauri-driver", cmd, &env.dir.path().join("tauri-driver.log"));
        let driver = Driver {
            _process: process,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        poll("tauri-driver", Duration::from_secs(30), || {
            driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        driver
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let v: Value = response.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    /// A session on a freshly launched app.
    pub fn session(&self, application: &str) -> Session<'_> {
        let v = self.call(
            reqwest::Method::POST,
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": application}}}})),
        );
        Session {
            driver: self,
            id: v["sessionId"].as_str().unwrap().to_owned(),
        }
    }
}

impl Session<'_> {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body)
    }

    /// Runs a script in the page and returns its result.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Element ids matching a CSS selector (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e.as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// Waits for an element to exist.
    pub fn wait_for(&self, css: &str) -> String {
        poll(&format!("element {css}"), Duration::from_secs(60), || {
            self.find_all(css).into_iter().next()
        })
    }

    pub fn text(&self, element: &str) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// An attribute's value ("" when absent).
    pub fn attribute(&self, element: &str, name: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            None,
        )
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    pub fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Saves a PNG of the window (for a person to look at when a test fails).
    pub fn screenshot(&self, path: &std::path::Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None);
        let b64 = path.with_extension("b64");
        std::fs::write(&b64, v.as_str().unwrap()).unwrap();
        let out = Command::new("base64").arg("-d").arg(&b64).output().unwrap();
        std::fs::write(path, out.stdout).unwrap();
        let _ = std::fs::remove_file(b64);
    }

    /// Ends the session; the driver closes the app.
    pub fn end(self) {
        self.call(reqwest::Method::DELETE, "", None);
    }
}
