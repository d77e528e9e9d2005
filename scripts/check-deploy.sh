#!/usr/bin/env bash
# Checks the deployment files: the systemd unit with systemd-analyze (when systemd is on
# the machine) and the Kubernetes manifests against the Kubernetes schemas
# (kubernetes-validate from PyPI, which ships the schemas; installed into target/test-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# An absolute CARGO_TARGET_DIR (a clone that shares a target directory) works too.
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
venv="$target/test-venv"
bin="$target/debug/genesys-archiver"

if command -v systemd-analyze >/dev/null; then
  # verify needs ExecStart's binary to exist: point it at the one just built.
  cargo build --quiet --locked --bin genesys-archiver
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
"$venv/bin/kubernetes-validate" --strict deploy/kubernetes/*.yaml deploy/kubernetes/vendor/*.yaml \
  deploy/kubernetes/replicas/*.yaml
# The vendor manifests' configuration is one the daemon accepts: the ConfigMap's
# archiver.toml with the Secret's org files as its orgs_dir.
cargo build --quiet --locked --bin genesys-archiver
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
