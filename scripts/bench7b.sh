#!/usr/bin/env bash
# bench-7b: end-to-end figures on an OpenVLA-7B-shaped pair (issue 17). Generates
# the pair once (`gen --preset openvla-7b`, about 30 GB at SCALE=1), then times,
# with the peak RSS of each:
#   - `analyze` against `cat` of both sides (the pair is larger than the page
#     cache at scale 1, so both read from disk),
#   - in a `serve` started here on a free loopback port: the analysis as a job,
#     the overview page, its units tab, a composer update with each OpenVLA
#     preset, and a masked export (a tar written to disk) against `cp` of the
#     VLA's files.
# Commands are timed with /usr/bin/time; server requests with curl, the server's
# peak RSS per request read from VmHWM after resetting it (/proc/PID/clear_refs).
# Prints one Markdown table. Run from the repository root:
#   go tool task bench-7b            # scale 1 (skipped when the disk is short)
#   SCALE=0.05 go tool task bench-7b # a quick check of the script itself
set -euo pipefail

SCALE=${SCALE:-1}
DIR=${DIR:-.bench-data/openvla-7b-$SCALE}
BIN=.bench-data/deltascope
WORK=.bench-data/bench7b-work
PRESETS=(openvla-light openvla-moderate openvla-aggressive)

mkdir -p .bench-data
go build -o "$BIN" .

free_gb() { df -BG --output=avail "$1" | tail -1 | tr -dc 0-9; }

if [ ! -f "$DIR/pair.json" ]; then
	# 30 GB of pair at scale 1, plus room for the export; sizes go with SCALE².
	need=$(awk -v s="$SCALE" 'BEGIN { n = 40 * s * s; printf "%d", (n < 1 ? 1 : n + 0.999) }')
	have=$(free_gb .bench-data)
	if [ "$have" -lt "$need" ]; then
		echo "bench-7b: SKIPPED: the OpenVLA-7B pair at scale $SCALE needs $need GB free, the disk holding .bench-data has $have GB." >&2
		echo "bench-7b: free some space, or run a smaller pair: SCALE=0.25 go tool task bench-7b" >&2
		exit 0
	fi
	echo "generating the OpenVLA-7B-shaped pair at scale $SCALE into $DIR ..."
	rm -rf "$DIR.partial"
	"$BIN" gen --preset openvla-7b --scale "$SCALE" --out "$DIR.partial" > /dev/null
	mv "$DIR.partial" "$DIR" # only a complete pair is ever found under $DIR
fi

abs=$(cd "$DIR" && pwd)
# pair.json lists SRC specs ([PREFIX=]PATH) relative to the pair's folder.
specs() {
	jq -r ".$1[]" "$DIR/pair.json" | while IFS= read -r s; do
		if [[ $s == *=* ]]; then echo "${s%%=*}=$abs/${s#*=}"; else echo "$abs/$s"; fi
	done
}
mapfile -t BASE < <(specs base)
mapfile -t VLA < <(specs vla)
args=()
for s in "${BASE[@]}"; do args+=(--base "$s"); done
for s in "${VLA[@]}"; do args+=(--vla "$s"); done
mapfile -t FILES < <(find "$abs/base" "$abs/vla" -type f \( -name '*.safetensors' -o -name '*.bin' \) | sort)
mapfile -t VLAFILES < <(find "$abs/vla" -type f | sort)
pair_bytes=$(du -cb "${FILES[@]}" | tail -1 | cut -f1)
vla_bytes=$(du -cb "${VLAFILES[@]}" | tail -1 | cut -f1)

rows=()
load() { cut -d' ' -f1 /proc/loadavg; }
row() { rows+=("| $1 | $2 | $3 | $4 |"); }
mb() { awk -v k="$1" 'BEGIN { printf "%.0f MB", k / 1024 }'; }

# timed CMD...: "wall_seconds peak_rss_kb user_seconds system_seconds" of one
# run, output discarded.
timed() { /usr/bin/time -f '%e %M %U %S' "$@" 2>&1 > /dev/null | tail -1; }
# field N LINE: the Nth space-separated field of a timed line.
field() { echo "$2" | cut -d' ' -f"$1"; }
# best N CMD...: the fastest of N runs.
best() {
	local n=$1
	shift
	for _ in $(seq "$n"); do timed "$@"; done | sort -n | head -1
}

echo "$(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p')), $(free -g | awk '/^Mem/ {print $2}') GB RAM; pair: $(awk -v b="$pair_bytes" 'BEGIN { printf "%.1f GB", b / 1e9 }') at scale $SCALE"
runs=$([ "$SCALE" = 1 ] && echo 2 || echo 3)
l=$(load)
c=$(best "$runs" cat "${FILES[@]}")
row "\`cat\` of both sides" "$(field 1 "$c") s" "$(mb "$(field 2 "$c")")" "$l"
l=$(load)
a=$(best "$runs" "$BIN" analyze "${args[@]}")
ratio=$(awk -v a="${a%% *}" -v c="${c%% *}" 'BEGIN { printf "%.2f", a / c }')
row "\`analyze\` (CLI, best of $runs)" "$(field 1 "$a") s (${ratio}× \`cat\`)" "$(mb "$(field 2 "$a")")" "$l"

# The server, on a free loopback port, with its own database.
rm -rf "$WORK"
mkdir -p "$WORK"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$BIN" serve --addr "127.0.0.1:$port" --data "$WORK/data" --root "$abs" > "$WORK/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "$url/healthz" > /dev/null && break || sleep 0.1; done

# Writing 5 resets the peak (Linux ≥ 4.0); without it VmHWM is the peak so far.
hwm_reset() { echo 5 2> /dev/null > "/proc/$pid/clear_refs" || true; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$pid/status"; }
# server_cpu: the server's user + system CPU seconds so far.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat"; }
# request LABEL CURL-ARGS...: one timed request, the server's peak RSS during it;
# the response goes to $OUT (default /dev/null).
request() {
	local label=$1 l t
	shift
	l=$(load)
	hwm_reset
	t=$(curl -sf -o "${OUT:-/dev/null}" -w '%{time_total}' "$@")
	last=$t
	row "$label" "$(awk -v t="$t" 'BEGIN { if (t < 1) printf "%.0f ms", t * 1000; else printf "%.2f s", t }')" "$(mb "$(hwm)")" "$l"
}

l=$(load)
hwm_reset
body=$(jq -n --args '{base: $ARGS.positional}' "${BASE[@]}" | jq --args '. + {vla: $ARGS.positional}' "${VLA[@]}")
start=$(date +%s.%N)
id=$(curl -sf -H 'Content-Type: application/json' -d "$body" "$url/api/analyses" | jq -r .id)
while :; do
	status=$(curl -sf "$url/api/analyses/$id" | jq -r .status)
	case $status in
	done) break ;;
	failed | cancelled)
		echo "bench-7b: the server's analysis $status: $(curl -sf "$url/api/analyses/$id" | jq -r .error)" >&2
		exit 1
		;;
	esac
	sleep 0.05
done
row "analysis as a server job (submit → done)" "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f s", e - s }')" "$(mb "$(hwm)")" "$l"

request "overview page (first view)" "$url/analyses/$id"
request "overview page (again)" "$url/analyses/$id"
request "units tab" "$url/analyses/$id?tab=units"
for p in "${PRESETS[@]}"; do
	request "composer update: $p" -H 'Content-Type: application/json' -d "{\"preset\": \"$p\"}" "$url/api/analyses/$id/resolve"
done

# Masked export (a tar of the VLA's files with the moderate preset's units
# zeroed) against cp of the same files, each from a flushed start; one at a
# time, deleted after, so the disk needs room for one copy of the VLA.
if [ "$(free_gb .bench-data)" -gt $((vla_bytes / 1000000000 + 2)) ]; then
	sync
	# The download's wall time is mostly curl writing 15 GB to disk (more
	# CPU than cp spends); the server's own CPU seconds are the figure to
	# set against cp's.
	s0=$(server_cpu)
	OUT=$WORK/export.tar request "masked export, openvla-moderate (tar to disk)" \
		-H 'Content-Type: application/json' -d '{"preset": "openvla-moderate"}' "$url/api/analyses/$id/export?kind=masked"
	export_cpu=$(awk -v a="$s0" -v b="$(server_cpu)" 'BEGIN { printf "%.1f", b - a }')
	rows[-1]=$(echo "${rows[-1]}" | awk -F' [|] ' -v c="$export_cpu" 'BEGIN { OFS = " | " } { $2 = $2 " (server: " c " CPU-s)"; print }')
	got=$(stat -c %s "$WORK/export.tar")
	[ "$got" -ge "$vla_bytes" ] || { echo "bench-7b: the export wrote $got bytes, less than the VLA's $vla_bytes" >&2; exit 1; }
	rm -f "$WORK/export.tar"
	sync
	l=$(load)
	cpr=$(timed cp -r "$abs/vla" "$WORK/vla-copy")
	set -- $cpr
	cp_cpu=$(awk -v u="$3" -v s="$4" 'BEGIN { printf "%.1f", u + s }')
	row "\`cp\` of the VLA's files (export / cp: $(awk -v e="$last" -v c="$1" 'BEGIN { printf "%.2f×", e / c }') wall, $(awk -v e="$export_cpu" -v c="$cp_cpu" 'BEGIN { if (c > 0) printf "%.2f×", e / c; else printf "–" }') CPU-s)" "$1 s ($cp_cpu CPU-s)" "$(mb "$2")" "$l"
	rm -rf "$WORK/vla-copy"
else
	row "masked export" "skipped: less free disk than one copy of the VLA" "" ""
fi

echo
echo "| step (OpenVLA-7B shape, scale $SCALE) | time | peak RSS | load avg |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
