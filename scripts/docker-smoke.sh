#!/usr/bin/env bash
# Container smoke test: build the image, run it on a loopback port, wait for /readyz, send real
# requests (scripts/docker-smoke-client.ts), `docker stop` it with requests in flight, check that they
# finished, that it exited 0 in well under 10 s, and remove it. Any failure prints the container's logs
# and exits non-zero. Run from anywhere after `npm ci` (the client uses tsx and sharp from node_modules):
#
#   scripts/docker-smoke.sh
#
# Environment:
#   DOCKER_BUILD_FLAGS   extra `docker build` flags (CI: ../shared/tools/docker-local-base.sh --build-flags)
#   DOCKER_RUN_FLAGS     extra `docker run` flags (CI: ... --run-flags); with `--network host` the container
#                        listens on a free loopback port of the host instead of a published one
#   SMOKE_IMAGE          image tag to build and test (default roiserve:smoke)
#   SMOKE_SKIP_BUILD=1   test SMOKE_IMAGE as it is
#   SMOKE_MAX_IMAGE_MB   size limit for the wasm-backend image (default 400, MB = 10^6 bytes)
#   SMOKE_READY_TIMEOUT  seconds to wait for /readyz (default 180)
#   SMOKE_LOAD_REQUESTS  heavy requests in flight during `docker stop` (default 3)
#   SMOKE_DIFF           required (default) | if-present: whether a missing /v1/diff route fails the test
#   SMOKE_NODE_MAJOR     when set, the container's `node --version` must be that major (CI: its Node LTS)
# The last line is "smoke: N passed, M failed" (checks), also written to $SMOKE_RESULT_FILE when set.
set -uo pipefail
cd "$(dirname "$0")/.."

IMAGE=${SMOKE_IMAGE:-roiserve:smoke}
MAX_MB=${SMOKE_MAX_IMAGE_MB:-400}
READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-180}
LOAD_REQUESTS=${SMOKE_LOAD_REQUESTS:-3}
STOP_LIMIT_S=10
read -r -a BUILD_FLAGS <<<"${DOCKER_BUILD_FLAGS:-}"
read -r -a RUN_FLAGS <<<"${DOCKER_RUN_FLAGS:-}"
NAME="roiserve-smoke-$$"
TMP=$(mktemp -d)
CLIENT=(node_modules/.bin/tsx scripts/docker-smoke-client.ts)
passed=0 failed=0 container=""

now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
log() { printf '[smoke %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

summary() {
  local line="smoke: $passed passed, $failed failed"
  [ -n "${SMOKE_RESULT_FILE:-}" ] && echo "$passed $failed" >"$SMOKE_RESULT_FILE"
  echo "$line"
}

container_logs() {
  [ -n "$container" ] || return 0
  echo "----- docker logs $NAME (last 200 lines) -----"
  docker logs --tail 200 "$container" 2>&1 | sed 's/^/  | /'
  echo "----- end of logs; state: $(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}} oom={{.State.OOMKilled}}' "$container" 2>/dev/null) -----"
}

cleanup() {
  if [ -n "$container" ]; then docker rm -f "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Stops the run: logs (when a container ran), the summary line, non-zero exit.
abort() {
  fail "$*"
  container_logs
  summary
  exit 1
}

T_START=$(now_ms)
command -v docker >/dev/null || abort "docker CLI not found"
docker info >/dev/null 2>&1 || abort "no Docker daemon answers (CI: ../shared/tools/docker-local-base.sh starts one)"
[ -x "${CLIENT[0]}" ] || abort "${CLIENT[0]} missing: run npm ci first"

# ---------------------------------------------------------------- build
if [ "${SMOKE_SKIP_BUILD:-0}" = 1 ]; then
  log "using the existing image $IMAGE (SMOKE_SKIP_BUILD=1)"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || abort "image $IMAGE not found"
else
  log "docker build ${BUILD_FLAGS[*]} -t $IMAGE . (log: tail on failure)"
  t0=$(now_ms)
  if docker build "${BUILD_FLAGS[@]}" -t "$IMAGE" . >"$TMP/build.log" 2>&1; then
    pass "docker build ($(secs $(($(now_ms) - t0))) s)"
    grep -E '^tfjs-node:' "$TMP/build.log" | tail -1 | sed 's/^/  /'
  else
    tail -60 "$TMP/build.log"
    abort "docker build failed ($(secs $(($(now_ms) - t0))) s)"
  fi
fi

# ---------------------------------------------------------------- image properties
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
size_mb=$(awk -v b="$size" 'BEGIN { printf "%.0f", b / 1e6 }')
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
if [ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ]; then
  pass "image runs as a non-root user ($user)"
else
  fail "image runs as root (Config.User='$user')"
fi
health_cmd=$(docker image inspect -f '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$IMAGE")
if [ -n "$health_cmd" ]; then pass "image has a HEALTHCHECK"; else fail "image has no HEALTHCHECK"; fi

# ---------------------------------------------------------------- run
port_args=() env_args=()
if [[ " ${RUN_FLAGS[*]} " =~ [[:space:]]--net(work)?[=[:space:]]host[[:space:]] ]]; then
  # host networking: no port publishing, so the service listens on a free loopback port of the host
  host_port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
  env_args=(-e HOST=127.0.0.1 -e "PORT=$host_port")
else
  port_args=(-p 127.0.0.1::8080)
fi
t0=$(now_ms)
# --health-interval: probe every 2 s here, so the smoke test sees "healthy" without waiting 15 s.
# --read-only: the service writes nothing outside /tmp, so it runs on a read-only root filesystem.
container=$(docker run -d --name "$NAME" "${RUN_FLAGS[@]}" "${port_args[@]}" "${env_args[@]}" \
  --read-only --tmpfs /tmp --health-interval 2s --health-start-period 120s "$IMAGE") || abort "docker run failed"
if [ ${#port_args[@]} -gt 0 ]; then
  hostport=$(docker port "$container" 8080/tcp | grep -m1 '^127.0.0.1:') || abort "no published port for 8080/tcp"
  base="http://$hostport"
else
  base="http://127.0.0.1:$host_port"
fi
log "container $NAME from $IMAGE on $base"

ready=""
for _ in $(seq 1 $((READY_TIMEOUT * 2))); do
  if [ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != true ]; then
    abort "container exited before /readyz answered"
  fi
  if curl -fsS -m 2 "$base/readyz" >"$TMP/readyz.json" 2>/dev/null; then ready=1; break; fi
  sleep 0.5
done
[ -n "$ready" ] || abort "/readyz not 200 within ${READY_TIMEOUT} s"
pass "GET /readyz 200 after $(secs $(($(now_ms) - t0))) s: $(cat "$TMP/readyz.json")"

uid=$(docker exec "$container" id -u 2>/dev/null)
if [ -n "$uid" ] && [ "$uid" != 0 ]; then pass "process runs as uid $uid"; else fail "process runs as uid '${uid}'"; fi
node_version=$(docker exec "$container" node --version 2>/dev/null)
if [ -z "${SMOKE_NODE_MAJOR:-}" ]; then
  log "container runs Node ${node_version:-(unknown)}"
elif [[ $node_version == "v$SMOKE_NODE_MAJOR."* ]]; then
  pass "container runs Node $node_version (SMOKE_NODE_MAJOR=$SMOKE_NODE_MAJOR)"
else
  fail "container runs Node '${node_version}', not v$SMOKE_NODE_MAJOR.x (SMOKE_NODE_MAJOR)"
fi

# ---------------------------------------------------------------- requests
t0=$(now_ms)
SMOKE_DIFF=${SMOKE_DIFF:-required} "${CLIENT[@]}" check "$base" | tee "$TMP/client.log"
client_rc=${PIPESTATUS[0]}
passed=$((passed + $(grep -c '^PASS ' "$TMP/client.log")))
failed=$((failed + $(grep -c '^FAIL ' "$TMP/client.log")))
if [ "$client_rc" != 0 ] && ! grep -q '^FAIL ' "$TMP/client.log"; then fail "smoke client exited $client_rc"; fi
log "requests done in $(secs $(($(now_ms) - t0))) s"

health=""
for _ in $(seq 1 30); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$container" 2>/dev/null)
  [ "$health" = healthy ] && break
  sleep 1
done
if [ "$health" = healthy ]; then pass "HEALTHCHECK reports healthy"; else fail "HEALTHCHECK status '$health'"; fi

backend=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).backend ?? "")' "$TMP/readyz.json")
if [ "$backend" = tensorflow ]; then
  # libtensorflow alone is some hundreds of MB: the size target is for the wasm image.
  pass "image size ${size_mb} MB (native tfjs-node backend; the ${MAX_MB} MB target applies to the wasm image)"
elif [ "$size" -lt $((MAX_MB * 1000000)) ]; then
  pass "image size ${size_mb} MB < ${MAX_MB} MB"
else
  fail "image size ${size_mb} MB >= ${MAX_MB} MB"
fi

# ---------------------------------------------------------------- graceful stop with requests in flight
"${CLIENT[@]}" load "$base" "$LOAD_REQUESTS" "$TMP/sent" "$TMP/load.json" &
load_pid=$!
for _ in $(seq 1 300); do [ -f "$TMP/sent" ] || ! kill -0 "$load_pid" 2>/dev/null && break; sleep 0.1; done
[ -f "$TMP/sent" ] || abort "the load client did not send its requests"
sleep 0.5 # let the service start on them
stop_start=$(now_ms)
docker stop -t "$STOP_LIMIT_S" "$container" >/dev/null || fail "docker stop returned an error"
stop_ms=$(($(now_ms) - stop_start))
wait "$load_pid" || fail "load client exited non-zero"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$container")

if [ "$exit_code" = 0 ]; then pass "exit code 0 after docker stop"; else fail "exit code $exit_code after docker stop"; fi
if [ "$stop_ms" -lt $((STOP_LIMIT_S * 1000 - 1000)) ]; then
  pass "docker stop took $(secs "$stop_ms") s (< $((STOP_LIMIT_S - 1)) s)"
else
  fail "docker stop took $(secs "$stop_ms") s (SIGKILL comes at ${STOP_LIMIT_S} s)"
fi
if [ -f "$TMP/load.json" ]; then
  load_verdict=$(node -e '
    const { results } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const stopStart = Number(process.argv[2]);
    const bad = results.filter((r) => r.status !== 200 || !r.complete);
    const inFlight = results.filter((r) => r.endedAtMs > stopStart).length;
    const line = `${results.length} requests: ${results.length - bad.length} answered 200 with all outputs, ${inFlight} finished after docker stop began`;
    if (bad.length > 0) console.log(`FAIL ${line}; bad: ${JSON.stringify(bad)}`);
    else if (inFlight === 0) console.log(`FAIL ${line}: none was in flight, raise SMOKE_LOAD_REQUESTS`);
    else console.log(`PASS ${line}`);
  ' "$TMP/load.json" "$stop_start")
  case $load_verdict in
    PASS*) pass "in-flight requests finished: ${load_verdict#PASS }" ;;
    *) fail "in-flight requests: ${load_verdict#FAIL }" ;;
  esac
else
  fail "in-flight requests: the load client wrote no results"
fi
docker logs "$container" >"$TMP/container.log" 2>&1
if grep -q 'shutting down' "$TMP/container.log"; then
  pass "the service logged its shutdown (SIGTERM reached node through tini)"
else
  fail "no shutdown log line: SIGTERM may not have reached node"
fi

# ---------------------------------------------------------------- report, remove
[ "$failed" -gt 0 ] && container_logs
if docker rm "$container" >/dev/null; then pass "container removed"; else fail "docker rm failed"; fi
container=""
log "image $IMAGE: ${size_mb} MB, Node ${node_version:-unknown}, backend ${backend:-unknown}; total $(secs $(($(now_ms) - T_START))) s"
summary
[ "$failed" = 0 ]
