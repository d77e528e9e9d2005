#!/usr/bin/env bash
# Checks the deployment files: the systemd unit with systemd-analyze (when systemd is on
# the machine); the Kubernetes manifests against the Kubernetes schemas
# (kubernetes-validate from PyPI, which ships the schemas; installed into target/test-venv),
# each kustomize layout built (when kubectl is on the machine); the PrometheusRule
# against the rules file it carries.
#   bash scripts/check-deploy.sh [--write-rules]
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in ""|--write-rules) ;; *) echo "usage: scripts/check-deploy.sh [--write-rules]" >&2; exit 2 ;; esac
target="${CARGO_TARGET_DIR:-target}"
# An absolute CARGO_TARGET_DIR (a clone that shares a target directory) works too.
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
venv="$target/test-venv"
bin="$target/debug/genesys-archiver"
# The binary as the test suite builds it: with the tests selected, dependencies resolve
# with the same features (tokio's test-util, a dev-dependency), so after scripts/test.sh
# nothing is compiled again. `--bin` alone would build a second copy of every dependency
# (several GiB of target/ on a CI machine whose disk is small).
build_daemon() { cargo build --quiet --locked --workspace --tests --bins; }

if command -v systemd-analyze >/dev/null; then
  # verify needs ExecStart's binary to exist: point it at the one just built.
  build_daemon
  unit_dir=$(mktemp -d)
  sed "s|ExecStart=/usr/local/bin/genesys-archiver|ExecStart=$bin|" \
    deploy/systemd/genesys-archiver.service > "$unit_dir/genesys-archiver.service"
  systemd-analyze verify "$unit_dir/genesys-archiver.service"
  echo "systemd-analyze verify: ok"
  systemd-analyze security --offline=true "$unit_dir/genesys-archiver.service" | tail -n 1
  rm -rf "$unit_dir"
else
  echo "systemd-analyze not found: unit not verified on this machine"
fi

[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
fi
# The monitoring for the Prometheus Operator carries the rules file's alerts, unchanged
# (`--write-rules` writes it from the rules file).
"$venv/bin/python" - "${1:-}" <<'PY'
import sys, yaml
rules = yaml.safe_load(open("deploy/prometheus/genesys-archiver.rules.yml"))
path = "deploy/kubernetes/base/prometheusrule.yaml"
if sys.argv[1] == "--write-rules":
    head = "".join(l for l in open(path) if l.startswith("#"))
    doc = yaml.safe_load(open(path))
    doc["spec"] = rules
    open(path, "w").write(head + yaml.safe_dump(doc, sort_keys=False, width=120))
rule = yaml.safe_load(open(path))
assert rule["kind"] == "PrometheusRule", rule["kind"]
if rule["spec"] != rules:
    sys.exit(f"{path} differs from deploy/prometheus/genesys-archiver.rules.yml: run scripts/check-deploy.sh --write-rules")
monitor = yaml.safe_load(open("deploy/kubernetes/base/podmonitor.yaml"))
label = monitor["spec"]["selector"]["matchLabels"]
for layout in ["deploy/kubernetes", "deploy/kubernetes/vendor", "deploy/kubernetes/replicas"]:
    k = yaml.safe_load(open(f"{layout}/kustomization.yaml"))
    assert any(l["pairs"] == label and l.get("includeTemplates") for l in k["labels"]), f"{layout}: pods not labelled {label}"
print("prometheusrule: the rules file's", sum(len(g["rules"]) for g in rules["groups"]), "rules; podmonitor: every layout's pods")
PY
# Every manifest against the Kubernetes schemas (the Operator's kinds have none there;
# they are checked above), each layout as kustomize builds it when kubectl is here.
manifests=$(mktemp -d)
"$venv/bin/python" - "$manifests" <<'PY'
import glob, pathlib, sys, yaml
out = pathlib.Path(sys.argv[1])
for i, path in enumerate(sorted(glob.glob("deploy/kubernetes/**/*.yaml", recursive=True))):
    if path.endswith("kustomization.yaml"):
        continue
    docs = [d for d in yaml.safe_load_all(open(path)) if d and not d["apiVersion"].startswith("monitoring.coreos.com/")]
    if docs:
        (out / f"{i:02}-{pathlib.Path(path).name}").write_text(yaml.safe_dump_all(docs))
PY
if command -v kubectl >/dev/null; then
  for layout in deploy/kubernetes deploy/kubernetes/vendor deploy/kubernetes/replicas; do
    kubectl kustomize "$layout" | "$venv/bin/python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and not d["apiVersion"].startswith("monitoring.coreos.com/")]
sys.stdout.write(yaml.safe_dump_all(docs))' > "$manifests/built-$(basename "$layout").yaml"
    echo "kubectl kustomize $layout: ok"
  done
else
  echo "kubectl not found: the kustomize layouts are not built on this machine (their files are validated one by one)"
fi
"$venv/bin/kubernetes-validate" --strict "$manifests"/*.yaml
rm -rf "$manifests"
# The vendor manifests' configuration is one the daemon accepts: the ConfigMap's
# archiver.toml with the Secret's org files as its orgs_dir.
build_daemon
vendor_dir=$(mktemp -d)
"$venv/bin/python" - "$vendor_dir" <<'PY'
import pathlib, sys, yaml
out = pathlib.Path(sys.argv[1])
(out / "orgs.d").mkdir()
config = yaml.safe_load(open("deploy/kubernetes/vendor/configmap.yaml"))["data"]["archiver.toml"]
config = config.replace('"/etc/genesys-archiver-orgs.d"', '"%s"' % (out / "orgs.d"))
(out / "archiver.toml").write_text(config)
for name, text in yaml.safe_load(open("deploy/kubernetes/vendor/secret-orgs.yaml"))["stringData"].items():
    (out / "orgs.d" / name).write_text(text)
PY
"$bin" check-config --config "$vendor_dir/archiver.toml"
# The replicas' configuration with the Secret's URLs as the environment that carries them.
"$venv/bin/python" - "$vendor_dir" <<'PY'
import pathlib, sys, yaml
out = pathlib.Path(sys.argv[1])
config = yaml.safe_load(open("deploy/kubernetes/replicas/configmap.yaml"))["data"]["archiver.toml"]
config = config.replace('"/etc/genesys-archiver-orgs.d"', '"%s"' % (out / "orgs.d"))
(out / "replicas.toml").write_text(config)
env = yaml.safe_load(open("deploy/kubernetes/replicas/secret-shared.yaml"))["stringData"]
(out / "replicas.env").write_text("".join("export %s=%r\n" % kv for kv in env.items()))
PY
(set -a; . "$vendor_dir/replicas.env"; "$bin" check-config --config "$vendor_dir/replicas.toml")
rm -rf "$vendor_dir"
python3 -m json.tool deploy/aws/iam-policy.json > /dev/null
python3 -m json.tool deploy/aws/bucket-lifecycle.json > /dev/null
echo "deployment files: ok"
