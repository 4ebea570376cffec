//! Every code a report can carry is documented in `docs/report-schema.md`, in the table
//! where a reader looks for it, and every code the document lists exists: the document
//! and the enums cannot drift apart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::Path;

use lanreach_proto::addr::InterfaceKind;
use lanreach_proto::report::{FindingCode, Severity, Verdict};
use lanreach_proto::vocab::Outcome;

fn schema_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report-schema.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The codes in the first column of the table under `heading` (`` `a`, `b` `` and
/// `` `a` / `b` `` cells list several).
fn table_codes(doc: &str, heading: &str) -> Vec<String> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("no section {heading:?}"));
    let mut codes = Vec::new();
    let mut in_table = false;
    for line in doc[start + heading.len()..].lines() {
        if line.starts_with('#') {
            break;
        }
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let first = line.split('|').nth(1).unwrap_or("");
        let mut rest = first;
        while let Some(i) = rest.find('`') {
            let after = &rest[i + 1..];
            let Some(j) = after.find('`') else { break };
            codes.push(after[..j].to_owned());
            rest = &after[j + 1..];
        }
    }
    codes.retain(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'));
    codes
}

fn json_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).expect("json").as_str().expect("a string").to_owned()
}

#[test]
fn every_outcome_is_documented_and_nothing_else() {
    let doc = schema_doc();
    let mut listed = table_codes(&doc, "### Outcomes");
    let mut ours: Vec<String> = Outcome::ALL.iter().map(|o| o.as_str().to_owned()).collect();
    for o in Outcome::ALL {
        assert_eq!(json_name(&o), o.as_str(), "as_str and serde disagree for {o:?}");
    }
    listed.sort();
    ours.sort();
    assert_eq!(listed, ours, "docs/report-schema.md ### Outcomes vs vocab::Outcome");
}

#[test]
fn every_verdict_is_documented_and_nothing_else() {
    let doc = schema_doc();
    let mut listed = table_codes(&doc, "### Service verdicts");
    let mut ours: Vec<String> = Verdict::ALL.iter().map(|v| v.as_str().to_owned()).collect();
    for v in Verdict::ALL {
        assert_eq!(json_name(&v), v.as_str(), "as_str and serde disagree for {v:?}");
    }
    listed.sort();
    ours.sort();
    assert_eq!(listed, ours, "docs/report-schema.md ### Service verdicts vs report::Verdict");
}

#[test]
fn every_finding_code_is_documented_and_nothing_else() {
    let doc = schema_doc();
    let findings = table_codes(&doc, "### Finding codes");
    let verdicts = table_codes(&doc, "### Service verdicts");
    for code in FindingCode::ALL {
        let c = code.as_str().to_owned();
        assert!(
            findings.contains(&c) || verdicts.contains(&c),
            "finding code `{c}` is not documented in docs/report-schema.md"
        );
    }
    for c in &findings {
        assert!(
            !matches!(FindingCode::parse(c), FindingCode::Other(_)),
            "docs/report-schema.md lists finding code `{c}`, which the code does not know"
        );
    }
}

#[test]
fn severities_modes_and_interface_kinds_are_documented() {
    let doc = schema_doc();
    for s in [Severity::Info, Severity::Warning, Severity::Error] {
        assert!(doc.contains(&format!("`{}`", json_name(&s))), "severity {s:?}");
    }
    for k in [
        InterfaceKind::Loopback,
        InterfaceKind::Lan,
        InterfaceKind::LinkLocal,
        InterfaceKind::Virtual,
        InterfaceKind::Vpn,
    ] {
        assert!(doc.contains(&format!("`{}`", json_name(&k))), "interface kind {k:?}");
    }
    for m in ["peer", "local"] {
        assert!(doc.contains(&format!("`{m}`")), "mode {m}");
    }
}
