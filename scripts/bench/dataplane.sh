#!/usr/bin/env bash
# Data-plane benchmark: N conversations' screen recordings (files of 64 MiB) from a local
# HTTP server (the simulator's media host) into the same S3 server on loopback (a fresh
# server for each run, so none pays for another's stored objects): the archiver's
# `run --once` (8 workers), with each of its checksum settings, against rclone `copyurl`
# of the same URLs (8 in parallel). Prints throughput, peak RSS
# and CPU of each. STORE is `moto` (Python; fast to install) or `garage` (a production
# store written in Rust, which also checks signatures; built with `cargo install` on
# first use, about 7 minutes). Installs moto and Garage if missing, and rclone and GNU
# time with the test suite's Debian packages (scripts/lib/servers.sh).
#   bash scripts/bench/dataplane.sh [--smoke] [CONVERSATIONS] [STORE]   (default 24 garage)
# --smoke: 3 conversations, files of 12 MiB (more than a part), into moto, on the debug build (scripts/lib/bench.sh).
# The URLs rclone copies come from the platform API through the daemon's own client
# (examples/media_urls.rs): the same calls the archiver makes, no hand-built request.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bench.sh
bench_mode "$@"; set -- "${BENCH_ARGS[@]}"
conversations="${1:-24}" store="${2:-garage}" media_size=67108864
[[ -z "$SMOKE" ]] || { conversations="${1:-3}" store="${2:-moto}" media_size=12582912; }
case "$store" in garage|moto) ;; *) echo "STORE is garage or moto, not $store" >&2; exit 2 ;; esac
GARAGE_VERSION=2.5.0
ensure_moto
py="$VENV/bin/python"
ensure_servers   # rclone and GNU time among them
garage="$(target_dir)/garage/bin/garage"
if [[ "$store" == garage && ! -x "$garage" ]]; then
  cargo install --quiet --locked garage --version "$GARAGE_VERSION" --root "$(target_dir)/garage"
fi
bench_build
bin=$BIN
media_urls=$(bench_example media_urls)
sim_port=$(free_port)
work=$(mktemp -d)
moto=
# The simulator prints a complete archiver configuration (files under --archive-dir);
# the S3 sink and the run's settings are set over it by environment (GENESYS_ARCHIVER__*).
"$bin" sim --listen "127.0.0.1:$sim_port" --archive-dir "$work/ours" --conversations "$conversations" \
  --media-size "$media_size-$media_size" --transcode-time 0s --token-limit 100000 \
  --endpoint-limit recording=100000 --endpoint-limit recordingmetadata=100000 \
  --endpoint-limit analytics=100000 > "$work/sim.toml" 2> "$work/sim.log" & sim=$!
trap 'kill $moto $sim 2>/dev/null || true; sleep 0.5; rm -rf "$work"' EXIT
wait_port "$sim_port"
for _ in $(seq 100); do grep -q "^directory = " "$work/sim.toml" && break; sleep 0.1; done
grep -q "^directory = " "$work/sim.toml" || { echo "sim printed no configuration:" >&2; cat "$work/sim.log" >&2; exit 1; }
mkdir -p "$work/ours"
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
    "$MOTO_SERVER" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 & moto=$!
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

# The same files for rclone: every ready screen recording the API lists, through the
# daemon's client (the configuration the simulator printed).
"$media_urls" --config "$work/sim.toml" > "$work/urls.txt"
count=$(wc -l < "$work/urls.txt")

# Ours, with each checksum S3 can verify: SHA256 (the default), CRC64NVME, and none.
# With one, a recording larger than a part goes up as a multipart upload whose parts
# carry theirs; with none, it streams as one PutObject (what rclone sends). Each run on
# a fresh server and a fresh ledger.
ours() { # BUCKET CHECKSUM
  start_moto "$1"
  GENESYS_ARCHIVER__SINK__KIND=s3 GENESYS_ARCHIVER__S3__BUCKET="$1" \
    GENESYS_ARCHIVER__S3__ENDPOINT_URL="http://127.0.0.1:$s3_port" GENESYS_ARCHIVER__S3__FORCE_PATH_STYLE=true \
    GENESYS_ARCHIVER__S3__CHECKSUM_ALGORITHM="$2" GENESYS_ARCHIVER__LEDGER__PATH="$work/$1.sqlite" \
    GENESYS_ARCHIVER__DISCOVERY__LOOKBACK=2h GENESYS_ARCHIVER__DISCOVERY__SETTLE_AFTER_END=0s \
    GENESYS_ARCHIVER__WORKERS__COUNT=8 \
    /usr/bin/time -v "$bin" run --once --config "$work/sim.toml" >/dev/null 2> "$work/$1.time"
  stored "$1" > "$work/$1.stored"
}
ours ours-sha256 SHA256
ours ours-crc64nvme CRC64NVME
ours ours-none none

# rclone, 8 copies at once (AWS_CA_BUNDLE breaks rclone's TLS setup; unset for it).
start_moto rclone
export RCLONE_CONFIG_RCLONE_TYPE=s3 RCLONE_CONFIG_RCLONE_PROVIDER=Other RCLONE_CONFIG_RCLONE_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  RCLONE_CONFIG_RCLONE_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_RCLONE_REGION=us-east-1 \
  RCLONE_CONFIG_RCLONE_ENDPOINT="http://127.0.0.1:$s3_port" RCLONE_CONFIG_RCLONE_FORCE_PATH_STYLE=true
env -u AWS_CA_BUNDLE /usr/bin/time -v xargs -P 8 -n 2 rclone copyurl < "$work/urls.txt" 2> "$work/rclone.time"
stored rclone > "$work/rclone.stored"

"$py" - "$work" "$count" "$store" "$media_size" <<'PY'
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
tools = (("archiver SHA256", "ours-sha256"), ("archiver CRC64NVME", "ours-crc64nvme"),
         ("archiver none", "ours-none"), ("rclone copyurl x8", "rclone"))
for name, bucket in tools:
    (bytes_, n), (secs, rss, cpu) = stored(bucket), timing(f"{work}/{bucket}.time")
    rows.append((name, n, bytes_, secs, bytes_ / 2**20 / secs, rss, cpu))
print(f"{count} files of {int(sys.argv[4]) // 2**20} MiB (every part of the ready screen recordings), loopback, {sys.argv[3]} (a fresh server per tool)")
print(f"{'tool':<20}{'objects':>8}{'MiB':>8}{'seconds':>9}{'MiB/s':>8}{'peak RSS':>12}{'CPU':>7}")
for name, n, b, secs, mbs, rss, cpu in rows:
    print(f"{name:<20}{n:>8}{b/2**20:>8.0f}{secs:>9.1f}{mbs:>8.1f}{rss:>9.0f} MiB{cpu:>6}%")
print("throughput ratio to rclone: " + ", ".join(f"{r[0].split()[1]} {r[4] / rows[-1][4]:.2f}" for r in rows[:-1]))
print("checksum: what S3 verifies on receipt (SHA256 is the default; none streams one PutObject per file).")
print("rclone's peak RSS is per process (8 ran at once); the archiver's is its one process.")
PY
