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
