//! The module dependencies point one way: from the commands down to the small leaf
//! types, with no cycle between the crate's top-level modules (`config` builds each
//! component's settings; components never import `config`). Read from the sources:
//! every `crate::MODULE` path outside comments and `#[cfg(test)]` parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// module -> the modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    graph.entry(module.clone()).or_default().insert(used);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str, seen: &mut BTreeSet<String>) -> bool {
    if from == to {
        return true;
    }
    if !seen.insert(from.to_owned()) {
        return false;
    }
    graph
        .get(from)
        .is_some_and(|next| next.iter().any(|n| reaches(graph, n, to, seen)))
}

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = graph();
    let mut cycles = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            if reaches(&graph, used, module, &mut BTreeSet::new()) {
                cycles.push(format!("{module} -> {used}"));
            }
        }
    }
    assert!(cycles.is_empty(), "edges on a cycle: {cycles:?}");
}

#[test]
fn components_never_import_config_and_leaves_import_nothing() {
    let graph = graph();
    for component in ["genesys", "ratelimit", "retry", "sink", "ledger", "pipeline"] {
        let uses = graph.get(component).cloned().unwrap_or_default();
        assert!(!uses.contains("config"), "{component} uses config: {uses:?}");
    }
    for leaf in ["endpoint", "download", "progress", "retry", "hex"] {
        assert_eq!(graph.get(leaf), None, "{leaf} is a leaf");
    }
}

/// The workspace's crates, from `cargo metadata`: name -> the names of its normal
/// (non-dev) dependencies inside the workspace.
fn workspace_crates() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|d| names.contains(d))
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// The simulator is the oracle the daemon is tested against: it must not share the
/// daemon's code (its types would share the client's misreadings of the platform).
/// So the simulator crate depends on no crate of the workspace and names none; the
/// daemon uses it only where the simulator is the product (`demo`, `loadtest`, the
/// `sim` command and its command-line arguments).
#[test]
fn the_simulator_knows_nothing_of_the_daemon_and_only_the_tools_use_it() {
    let crates = workspace_crates();
    assert_eq!(
        crates.keys().map(String::as_str).collect::<Vec<_>>(),
        ["genesys-archiver", "genesys-sim"],
        "the workspace"
    );
    assert!(
        crates["genesys-sim"].is_empty(),
        "the simulator depends on {:?}",
        crates["genesys-sim"]
    );
    assert!(crates["genesys-archiver"].contains("genesys-sim"));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("crates/genesys-sim/src"), &mut files);
    assert!(files.len() > 5, "the simulator's sources: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("genesys_archiver"),
            "{} names the daemon",
            file.display()
        );
        assert!(!text.contains("#[path"), "{} reaches outside its crate", file.display());
    }

    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut users: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("genesys_sim"))
        .map(|f| f.strip_prefix(root.join("src")).unwrap().display().to_string())
        .collect();
    users.sort();
    assert_eq!(users, ["cli.rs", "demo.rs", "loadtest/mod.rs", "main.rs"]);
}

/// One idea per file: a source file of more than 500 lines says at its top why it
/// holds together ("Over 500 lines: ..."), so a file does not grow by accident.
#[test]
fn a_file_over_500_lines_says_why_at_its_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "crates"] {
        sources(&root.join(dir), &mut files);
    }
    let unexplained: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let top: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
            (text.lines().count() > 500 && !top.contains("Over 500 lines:"))
                .then(|| format!("{} ({} lines)", f.display(), text.lines().count()))
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "split these or say why at their top: {unexplained:?}"
    );
}
