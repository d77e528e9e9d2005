//! The docs cannot drift unseen: every relative link in the README, ARCHITECTURE.md,
//! CHANGELOG.md and docs/ resolves to a file of the repository, and every test an
//! "Invariant:" line of ARCHITECTURE.md names exists.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(|f| root().join(f))
        .collect();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            all.push(path);
        }
    }
    all
}

/// The targets of `[text](target)` links that are neither web addresses nor anchors.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        if !target.starts_with("http") && !target.starts_with('#') && !target.contains(' ') {
            links.push(target.split('#').next().unwrap_or_default().to_owned());
        }
    }
    links
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for link in relative_links(&text) {
            let target = doc.parent().unwrap().join(&link);
            if !target.exists() {
                broken.push(format!("{}: {link}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

/// Every `fn NAME` of the workspace's sources and tests.
fn function_names() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut all = String::new();
    walk(&root().join("src"), &mut all);
    walk(&root().join("tests"), &mut all);
    walk(&root().join("crates"), &mut all);
    all
}

#[test]
fn every_invariant_names_tests_that_exist() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let code = function_names();
    let mut named = 0;
    // An invariant runs from its "- Invariant:" line to the next list item.
    for item in text.split("\n- ").filter(|i| i.starts_with("Invariant:")) {
        let tests: Vec<&str> = item
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| {
                w.len() > 12
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        assert!(!tests.is_empty(), "an invariant without a test: {item}");
        for test in tests {
            assert!(code.contains(&format!("fn {test}(")), "no test `{test}`: {item}");
            named += 1;
        }
    }
    assert!(named >= 7, "{named} tests named");
}
