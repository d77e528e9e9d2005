#!/usr/bin/env bash
# Data-plane benchmark: N recordings of 64 MiB from a local HTTP server (the simulator's
# media host) into the same S3 server on loopback (a fresh server for each tool, so
# neither pays for the other's stored objects): the archiver's `run --once` (8 workers)
# against rclone `copyurl` of the same URLs (8 in parallel). Prints throughput, peak RSS
# and CPU of each. STORE is `moto` (Python; fast to install) or `garage` (a production
# store written in Rust, which also checks signatures; built with `cargo install` on
# first use, about 7 minutes). Installs rclone (Debian), moto and Garage if missing.
#   bash scripts/bench/dataplane.sh [CONVERSATIONS] [STORE]   (default 24 garage)
set -euo pipefail
cd "$(dirname "$0")/../.."
conversations="${1:-24}"
store="${2:-garage}"
GARAGE_VERSION=2.5.0
MOTO_VERSION=5.1.18
venv="${CARGO_TARGET_DIR:-target}/test-venv"
[[ -x "$venv/bin/moto_server" ]] || { python3 -m venv "$venv"; "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"; }
command -v rclone >/dev/null || { apt-get update -qq && apt-get install -y -qq rclone >/dev/null; }
garage="${CARGO_TARGET_DIR:-target}/garage/bin/garage"
if [[ "$store" == garage && ! -x "$garage" ]]; then
  cargo install --quiet --locked garage --version "$GARAGE_VERSION" --root "${CARGO_TARGET_DIR:-target}/garage"
fi
cargo build --quiet --release --locked
bin=$PWD/target/release/genesys-archiver
py="$venv/bin/python"
free_port() { "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
sim_port=$(free_port)
work=$(mktemp -d)
moto=
"$bin" sim --listen "127.0.0.1:$sim_port" --conversations "$conversations" --media-size 67108864-67108864 \
  --transcode-time 0s --token-limit 100000 --endpoint-limit recording=100000 --endpoint-limit recordingmetadata=100000 \
  --endpoint-limit analytics=100000 > "$work/sim.txt" 2>&1 & sim=$!
trap 'kill $moto $sim 2>/dev/null || true; sleep 0.5; rm -rf "$work"' EXIT
for _ in $(seq 100); do "$py" -c "import socket;socket.create_connection(('127.0.0.1',$sim_port))" 2>/dev/null && break; sleep 0.2; done
if [[ "$store" == garage ]]; then
  # Garage accepts only keys it issued or imported: a fixed test key, imported below.
  export AWS_ACCESS_KEY_ID=GK0123456789abcdef01234567
  export AWS_SECRET_ACCESS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
else
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
fi
export AWS_EC2_METADATA_DISABLED=true
# A fresh S3 server holding one empty bucket: start_moto BUCKET (sets s3_port, moto).
start_moto() {
  [[ -n "$moto" ]] && { kill "$moto"; wait "$moto" 2>/dev/null || true; }
  s3_port=$(free_port)
  if [[ "$store" == garage ]]; then
    local dir="$work/garage-$1" rpc_port g
    rpc_port=$(free_port)
    mkdir -p "$dir"
    printf 'metadata_dir = "%s/meta"\ndata_dir = "%s/data"\ndb_engine = "sqlite"\nreplication_factor = 1\nrpc_bind_addr = "127.0.0.1:%s"\nrpc_public_addr = "127.0.0.1:%s"\nrpc_secret = "%s"\n[s3_api]\ns3_region = "us-east-1"\napi_bind_addr = "127.0.0.1:%s"\nroot_domain = ".s3.garage.localhost"\n' \
      "$dir" "$dir" "$rpc_port" "$rpc_port" "$(openssl rand -hex 32)" "$s3_port" > "$dir/garage.toml"
    g=("$garage" -c "$dir/garage.toml")
    "${g[@]}" server > "$dir/server.log" 2>&1 & moto=$!
    for _ in $(seq 100); do "${g[@]}" status >/dev/null 2>&1 && break; sleep 0.2; done
    "${g[@]}" layout assign -z dc1 -c 100G "$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1)" >/dev/null
    "${g[@]}" layout apply --version 1 >/dev/null
    "${g[@]}" key import --yes -n bench "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null
    "${g[@]}" bucket create "$1" >/dev/null
    "${g[@]}" bucket allow --read --write --owner "$1" --key bench >/dev/null
  else
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 & moto=$!
  fi
  "$py" - "$s3_port" "$1" <<'PY'
import boto3, sys, time
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
for _ in range(100):
    try:
        c.head_bucket(Bucket=sys.argv[2]); break
    except Exception:
        try:
            c.create_bucket(Bucket=sys.argv[2])
        except Exception:
            time.sleep(0.2)
PY
}
# What a tool stored: "bytes objects" of the .webm objects in BUCKET.
stored() {
  "$py" - "$s3_port" "$1" <<'PY'
import boto3, sys
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
objs = [o for p in c.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]) for o in p.get("Contents", [])]
media = [o for o in objs if o["Key"].endswith(".webm")]
print(sum(o["Size"] for o in media), len(media))
PY
}

# The same URLs for rclone: the available screen recordings, through the simulator's API.
"$py" - "$sim_port" > "$work/urls.txt" <<'PY'
import base64, json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(path, body=None, token=None, form=False):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form:
        headers["Authorization"] = "Basic " + base64.b64encode(b"sim-client:sim-secret").decode()
        data = b"grant_type=client_credentials"
    elif body is not None:
        headers["Content-Type"] = "application/json"; data = json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=headers)) as r:
        return json.loads(r.read() or b"null")
token = call("/oauth/token", form=True)["access_token"]
page = call("/api/v2/analytics/conversations/details/query",
            {"interval": "2000-01-01T00:00:00Z/2100-01-01T00:00:00Z", "paging": {"pageSize": 100, "pageNumber": 1}}, token)
for c in page.get("conversations", []):
    for r in call(f"/api/v2/conversations/{c['conversationId']}/recordingmetadata", token=token):
        if r["media"] == "screen" and r["fileState"] == "AVAILABLE":
            rec = call(f"/api/v2/conversations/{c['conversationId']}/recordings/{r['id']}?formatId=WEBM", token=token)
            print(rec["mediaUris"]["S"]["mediaUri"], f"rclone:rclone/{r['id']}.webm")
PY
count=$(wc -l < "$work/urls.txt")

# Ours.
start_moto ours
{ sed -n '/^\[genesys\]/,$p' "$work/sim.txt"
  printf '[ledger]\npath = "%s/ledger.sqlite"\n[s3]\nbucket = "ours"\nendpoint_url = "http://127.0.0.1:%s"\nforce_path_style = true\n' "$work" "$s3_port"
  printf '[discovery]\nlookback = "2h"\nsettle_delay = "0s"\nsettle_after_end = "0s"\n[workers]\ncount = 8\n'; } > "$work/ours.toml"
/usr/bin/time -v "$bin" run --once --config "$work/ours.toml" >/dev/null 2> "$work/ours.time"
stored ours > "$work/ours.stored"

# rclone, 8 copies at once (AWS_CA_BUNDLE breaks rclone's TLS setup; unset for it).
start_moto rclone
export RCLONE_CONFIG_RCLONE_TYPE=s3 RCLONE_CONFIG_RCLONE_PROVIDER=Other RCLONE_CONFIG_RCLONE_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  RCLONE_CONFIG_RCLONE_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_RCLONE_REGION=us-east-1 \
  RCLONE_CONFIG_RCLONE_ENDPOINT="http://127.0.0.1:$s3_port" RCLONE_CONFIG_RCLONE_FORCE_PATH_STYLE=true
env -u AWS_CA_BUNDLE /usr/bin/time -v xargs -P 8 -n 2 rclone copyurl < "$work/urls.txt" 2> "$work/rclone.time"
stored rclone > "$work/rclone.stored"

"$py" - "$work" "$count" "$store" <<'PY'
import re, sys
work, count = sys.argv[1], int(sys.argv[2])
def stored(bucket):
    b, n = open(f"{work}/{bucket}.stored").read().split()
    return int(b), int(n)
def timing(path):
    t = open(path).read()
    h, m, s = (["0"] + re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t).group(1).split(":"))[-3:]
    cpu = re.search(r"Percent of CPU this job got: (\d+)%", t).group(1)
    return int(h) * 3600 + int(m) * 60 + float(s), int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024, cpu
rows = []
for name, bucket in (("genesys-archiver", "ours"), ("rclone copyurl x8", "rclone")):
    (bytes_, n), (secs, rss, cpu) = stored(bucket), timing(f"{work}/{bucket}.time")
    rows.append((name, n, bytes_, secs, bytes_ / 2**20 / secs, rss, cpu))
print(f"{count} recordings of 64 MiB, loopback, {sys.argv[3]} (a fresh server per tool)")
print(f"{'tool':<20}{'objects':>8}{'MiB':>8}{'seconds':>9}{'MiB/s':>8}{'peak RSS':>12}{'CPU':>7}")
for name, n, b, secs, mbs, rss, cpu in rows:
    print(f"{name:<20}{n:>8}{b/2**20:>8.0f}{secs:>9.1f}{mbs:>8.1f}{rss:>9.0f} MiB{cpu:>6}%")
print(f"throughput ratio (ours / rclone): {rows[0][4] / rows[1][4]:.2f}")
print("rclone's peak RSS is per process (8 ran at once); the archiver's is its one process.")
PY
