//! Embeds the built web UI (`ui/dist`) into the hub binary.
//!
//! Generates `$OUT_DIR/ui_assets.rs` with one `include_bytes!` per file, so the hub
//! is a single self-contained binary. When the UI has not been built (a bare
//! `cargo build` on a fresh clone), a one-page placeholder that explains how to
//! build it is embedded instead; `scripts/setup.sh` always builds the UI first.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = manifest.join("../../ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-env-changed=HAPI_UI_DIST");
    let dist = std::env::var_os("HAPI_UI_DIST").map(PathBuf::from).unwrap_or(dist);

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    } else {
        println!("cargo:warning=ui/dist not built; embedding a placeholder page (run scripts/setup.sh)");
        files.push(("index.html".to_owned(), manifest.join("placeholder.html")));
    }
    files.sort();
    let mut out = String::from(
        "/// Embedded UI files: (path relative to the site root, bytes).\npub static UI_FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        println!("cargo:rerun-if-changed={}", abs.display());
        writeln!(out, "    ({rel:?}, include_bytes!({:?})),", abs.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("ui_assets.rs");
    std::fs::write(dest, out).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            files.push((rel, path.canonicalize().unwrap()));
        }
    }
}
