#!/usr/bin/env bash
# Memory benchmark: peak RSS of the archiver (the loadtest process, simulator included)
# streaming recordings into S3 (moto on loopback), for 100 MiB vs 2 GiB recordings and for
# 2, 4 and 8 workers; multipart (with the default SHA256 checksum) and the streamed single
# PutObject (without one). Flat in recording size is the target; the bound is
# 32 MiB + workers x part_size x (parts_in_flight + 1).
#   bash scripts/bench/memory.sh [--smoke]
# --smoke: 2 workers, 12 MiB recordings, multipart then streamed, 4 s each, on the debug
# build (scripts/lib/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bench.sh
bench_mode "$@"; set -- "${BENCH_ARGS[@]}"
ensure_moto
venv=$VENV
bench_build
bin=$BIN
port=$(free_port)
"$MOTO_SERVER" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
work=$(mktemp -d)
trap 'kill $moto 2>/dev/null || true; rm -rf "$work"' EXIT
wait_port "$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
printf 'workers  recording size  upload     recordings  bytes archived  peak RSS  bound\n'
run() { # workers size count bucket duration single_put_max
  "$venv/bin/python" -c "import boto3;boto3.client('s3',endpoint_url='http://127.0.0.1:$port',region_name='us-east-1').create_bucket(Bucket='$4')"
  printf '[sink]\nkind = "s3"\n[s3]\nbucket = "%s"\nendpoint_url = "http://127.0.0.1:%s"\nforce_path_style = true\nparts_in_flight = 2\nsingle_put_max = "%s"\n' "$4" "$port" "$6" > "$work/sink.toml"
  # The streamed PutObject is taken only without a checksum for S3 to verify (with one,
  # a body over a part goes multipart: docs/compliance.md).
  [[ "$6" == 0 ]] || echo 'checksum_algorithm = "none"' >> "$work/sink.toml"
  json=$("$bin" loadtest --config "$work/sink.toml" --workers "$1" --part-size 8MiB --media-size "$2-$2" --backlog "$3" \
        --agents 0 --duration "$5" --platform-rpm 6000 --poll-interval 2s --json 2>"$BENCH_STDERR")
  python3 - "$1" "$2" "$6" "$json" <<'PY'
import json, sys
w, size, single, r = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
bound = 32 + w * 8 * 3
mode = "multipart" if single == "0" else "streamed"
print(f"{w:>7}  {size/2**20:>11.0f} MiB  {mode:<9}  {r['recordings_archived']:>10}  {r['bytes_archived']/2**20:>10.0f} MiB  {r['peak_rss_mib']:>6.0f} MiB  {bound} MiB")
PY
  # moto spools large objects to temporary files: the five full runs would leave about
  # 11 GiB on disk; each run's objects go once it is measured.
  "$venv/bin/python" - "$port" "$4" <<'PY'
import boto3, sys
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
for page in c.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        c.delete_object(Bucket=sys.argv[2], Key=o["Key"])
PY
}
if [[ -n "$SMOKE" ]]; then
  run 2 12582912 2 mem-smoke-multipart 4s 0
  run 2 12582912 2 mem-smoke-streamed 4s 100MiB
  exit 0
fi
# Like for like: 2 workers, both busy for the whole run, 100 MiB vs 2 GiB recordings.
run 2 104857600 4 mem-w2-100m 60s 0
run 2 2147483648 2 mem-w2-2g 150s 0
# More workers, multipart (8 MiB parts, 2 in flight).
run 4 104857600 8 mem-w4 60s 0
run 8 104857600 16 mem-w8 60s 0
# Recordings up to single_put_max without a checksum: the download streams as one PutObject.
run 8 104857600 16 mem-w8-streamed 60s 100MiB
echo "bound = 32 MiB + workers x part_size x (parts_in_flight + 1); simulator included in the process"
