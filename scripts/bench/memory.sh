#!/usr/bin/env bash
# Memory benchmark: peak RSS of the archiver (the loadtest process, simulator included)
# streaming recordings into S3 (moto on loopback), for 100 MiB vs 2 GiB recordings and for
# 4 vs 8 workers. Flat in recording size is the target; the bound is
# 32 MiB + workers x part_size x (parts_in_flight + 1).
#   bash scripts/bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MOTO_VERSION=5.1.18
venv="${CARGO_TARGET_DIR:-target}/test-venv"
[[ -x "$venv/bin/moto_server" ]] || { python3 -m venv "$venv"; "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"; }
cargo build --quiet --release --locked
bin=$PWD/target/release/genesys-archiver
port=$("$venv/bin/python" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 100); do "$venv/bin/python" -c "import socket;socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.2; done
work=$(mktemp -d)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
printf 'workers  recording size  recordings  bytes archived  peak RSS  bound\n'
run() { # workers size count bucket
  "$venv/bin/python" -c "import boto3;boto3.client('s3',endpoint_url='http://127.0.0.1:$port',region_name='us-east-1').create_bucket(Bucket='$4')"
  printf '[sink]\nkind = "s3"\n[s3]\nbucket = "%s"\nendpoint_url = "http://127.0.0.1:%s"\nforce_path_style = true\nparts_in_flight = 2\n' "$4" "$port" > "$work/sink.toml"
  json=$("$bin" loadtest --config "$work/sink.toml" --workers "$1" --part-size 8MiB --media-size "$2-$2" --backlog "$3" \
        --agents 0 --duration "$5" --platform-rpm 6000 --poll-interval 2s --json 2>/dev/null)
  python3 - "$1" "$2" "$json" <<'PY'
import json, sys
w, size, r = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
bound = 32 + w * 8 * 3
print(f"{w:>7}  {size/2**20:>11.0f} MiB  {r['recordings_archived']:>10}  {r['bytes_archived']/2**20:>10.0f} MiB  {r['peak_rss_mib']:>6.0f} MiB  {bound} MiB")
PY
}
run 8 104857600 12 mem-100m 60s
run 8 2147483648 2 mem-2g 150s
run 4 104857600 12 mem-w4 60s
