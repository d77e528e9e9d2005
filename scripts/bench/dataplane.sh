#!/usr/bin/env bash
# Data-plane benchmark: N recordings of 64 MiB from a local HTTP server (the simulator's
# media host) into the same S3 server (moto on loopback): the archiver's `run --once`
# (8 workers) against rclone `copyurl` of the same URLs (8 in parallel). Prints
# throughput and peak RSS of each. Installs rclone (Debian) and moto if missing.
#   bash scripts/bench/dataplane.sh [CONVERSATIONS]   (default 12)
set -euo pipefail
cd "$(dirname "$0")/../.."
conversations="${1:-12}"
MOTO_VERSION=5.1.18
venv="${CARGO_TARGET_DIR:-target}/test-venv"
[[ -x "$venv/bin/moto_server" ]] || { python3 -m venv "$venv"; "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"; }
command -v rclone >/dev/null || { apt-get update -qq && apt-get install -y -qq rclone >/dev/null; }
cargo build --quiet --release --locked
bin=$PWD/target/release/genesys-archiver
py="$venv/bin/python"
free_port() { "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
s3_port=$(free_port); sim_port=$(free_port)
work=$(mktemp -d)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 & moto=$!
"$bin" sim --listen "127.0.0.1:$sim_port" --conversations "$conversations" --media-size 67108864-67108864 \
  --transcode-time 0s --token-limit 100000 --endpoint-limit recording=100000 --endpoint-limit recordingmetadata=100000 \
  --endpoint-limit analytics=100000 > "$work/sim.txt" 2>&1 & sim=$!
trap 'kill $moto $sim 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 3
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
"$py" - "$s3_port" <<'PY'
import boto3, sys
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
c.create_bucket(Bucket="ours"); c.create_bucket(Bucket="rclone")
PY

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
{ sed -n '/^\[genesys\]/,$p' "$work/sim.txt"
  printf '[ledger]\npath = "%s/ledger.sqlite"\n[s3]\nbucket = "ours"\nendpoint_url = "http://127.0.0.1:%s"\nforce_path_style = true\n' "$work" "$s3_port"
  printf '[discovery]\nlookback = "2h"\nsettle_delay = "0s"\n[workers]\ncount = 8\n'; } > "$work/ours.toml"
/usr/bin/time -v "$bin" run --once --config "$work/ours.toml" >/dev/null 2> "$work/ours.time"

# rclone, 8 copies at once (AWS_CA_BUNDLE breaks rclone's TLS setup; unset for it).
export RCLONE_CONFIG_RCLONE_TYPE=s3 RCLONE_CONFIG_RCLONE_PROVIDER=Other RCLONE_CONFIG_RCLONE_ACCESS_KEY_ID=test \
  RCLONE_CONFIG_RCLONE_SECRET_ACCESS_KEY=test RCLONE_CONFIG_RCLONE_REGION=us-east-1 \
  RCLONE_CONFIG_RCLONE_ENDPOINT="http://127.0.0.1:$s3_port" RCLONE_CONFIG_RCLONE_FORCE_PATH_STYLE=true
env -u AWS_CA_BUNDLE /usr/bin/time -v xargs -P 8 -n 2 rclone copyurl < "$work/urls.txt" 2> "$work/rclone.time"

"$py" - "$work" "$count" "$s3_port" <<'PY'
import boto3, re, sys
work, count, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
def stored(bucket):
    objs = c.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sum(o["Size"] for o in objs if o["Key"].endswith(".webm")), sum(1 for o in objs if o["Key"].endswith(".webm"))
def timing(path):
    t = open(path).read()
    h, m, s = (["0"] + re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t).group(1).split(":"))[-3:]
    return int(h) * 3600 + int(m) * 60 + float(s), int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
rows = []
for name, bucket in (("genesys-archiver", "ours"), ("rclone copyurl x8", "rclone")):
    (bytes_, n), (secs, rss) = stored(bucket), timing(f"{work}/{'ours' if bucket == 'ours' else 'rclone'}.time")
    rows.append((name, n, bytes_, secs, bytes_ / 2**20 / secs, rss))
print(f"{count} recordings of 64 MiB, loopback, same moto server")
print(f"{'tool':<20}{'objects':>8}{'MiB':>8}{'seconds':>9}{'MiB/s':>8}{'peak RSS':>12}")
for name, n, b, secs, mbs, rss in rows:
    print(f"{name:<20}{n:>8}{b/2**20:>8.0f}{secs:>9.1f}{mbs:>8.1f}{rss:>9.0f} MiB")
print(f"throughput ratio (ours / rclone): {rows[0][4] / rows[1][4]:.2f}")
print("rclone's peak RSS is per process (8 ran at once); the archiver's is its one process.")
PY
