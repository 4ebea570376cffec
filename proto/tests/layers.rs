//! The core's modules import in one direction only: each module may use modules listed
//! before it in [`ORDER`] and none after it, so there is no import cycle and a newcomer
//! can read the crate bottom-up. The order is the map in `src/lib.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::Path;

/// Every module of `src/`, bottom first.
const ORDER: &[&str] = &[
    "defaults",
    "vocab",
    "addr",
    "text",
    "sync",
    "admission",
    "id",
    "code",
    "target",
    "link",
    "nopath",
    "knock",
    "plan",
    "payload",
    "icmp",
    "run",
    "msg",
    "codec",
    "channel",
    "pairing",
    "handshake",
    "conversation",
    "firewall",
    "facts",
    "report",
    "browser",
    "verdict",
    "fixes",
    "diagnose",
    "assemble",
    "render",
    "watch",
    "endpoint",
];

/// The modules `source` refers to with `crate::NAME`, outside comments and tests.
fn uses(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

fn module_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            // A directory module: every file in it counts as that module.
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            for (_, text) in module_files(&path) {
                out.push((name.clone(), text));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().expect("stem").to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).expect("read")));
        }
    }
    out
}

#[test]
fn modules_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, text) in module_files(&src) {
        if module == "lib" || module == "mod" {
            continue;
        }
        let Some(level) = ORDER.iter().position(|m| *m == module) else {
            wrong.push(format!("{module}: not in ORDER (add it to tests/layers.rs and the map in lib.rs)"));
            continue;
        };
        for used in uses(&text) {
            if used == module {
                continue;
            }
            match ORDER.iter().position(|m| *m == used) {
                Some(l) if l < level => {}
                Some(_) => wrong.push(format!("{module} uses {used}, which sits above it")),
                None => wrong.push(format!("{module} uses unknown module {used}")),
            }
        }
    }
    assert!(wrong.is_empty(), "import direction broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_map_in_lib_rs_names_every_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let mut modules: Vec<String> = module_files(&src).into_iter().map(|(m, _)| m).collect();
    modules.retain(|m| m != "lib" && m != "mod");
    modules.dedup();
    for module in &modules {
        assert!(lib.contains(&format!("[`{module}`]")), "the map in lib.rs does not name `{module}`");
        assert!(lib.contains(&format!("mod {module};")), "lib.rs does not declare `{module}`");
    }
}
