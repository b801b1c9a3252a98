#!/usr/bin/env bash
# Docker Swarm smoke test of deploy/swarm/: roiserve with 2 replicas behind HAProxy, under load while
# the service is updated and a replica is killed. Steps:
#   1. build the roiserve image (cached after scripts/docker-smoke.sh) and the load balancer's;
#   2. join the node's swarm, or create a single-node one (and remember that this run did);
#   3. compute the expected answers from one plain container of the same image (`docker run`);
#   4. `docker stack deploy` deploy/swarm/docker-stack.yml, wait until /readyz answers through the
#      load balancer on 127.0.0.1 and the service has 2/2 replicas;
#   5. for at least SWARM_LOAD_SECONDS, send image and feature requests at concurrency
#      SWARM_CONCURRENCY to the load balancer (scripts/swarm-smoke-client.ts) while it
#      (1) forces a rolling update (`docker service update --force`) and waits for it to complete,
#      (2) `docker kill`s one replica's container and waits for the service to be back at 2/2;
#   6. pass: every answer 200, every body bit-identical to the single container's, 2/2 replicas;
#   7. remove the stack and its network; leave the swarm only if this run created it.
# Any failure prints `docker service ps --no-trunc` and the services' logs. Every wait has a timeout;
# an EXIT trap removes whatever this run created. Run from anywhere after `npm ci`:
#
#   scripts/swarm-smoke.sh
#
# Needs dockerd with bridge networking (swarm's overlay networks attach through docker_gwbridge): on a
# daemon that ../shared/tools/docker-local-base.sh had to start with --bridge=none it fails at once
# and says so.
#
# Environment:
#   DOCKER_BUILD_FLAGS   extra `docker build` flags for both images (CI: the local base tool's + NODE_MAJOR)
#   SWARM_IMAGE          roiserve image (default roiserve:smoke, the Docker smoke test's tag: its build
#                        cache makes the build here a few seconds); SWARM_SKIP_BUILD=1 uses it as it is
#   SWARM_LB_IMAGE       load balancer image to build (default roiserve-lb:smoke)
#   SWARM_STACK          stack name (default roiserve-smoke-<pid>)
#   SWARM_LOAD_SECONDS   least time under load (default 30)
#   SWARM_CONCURRENCY    requests in flight (default 8)
#   SWARM_WORKERS        WORKERS per replica (default 1: 2 replicas + the one an update starts share
#                        the 2 CI cores); empty: the image's default
#   SWARM_TIMEOUT        seconds each wait may take (default 150)
#   SWARM_RESULT_FILE    when set, "PASSED FAILED" is written there (CI: test-results/swarm-smoke.txt)
# The last line is "swarm: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

IMAGE=${SWARM_IMAGE:-roiserve:smoke}
LB_IMAGE=${SWARM_LB_IMAGE:-roiserve-lb:smoke}
# One name per run: two runs on one daemon (two CI jobs) must not touch each other's stack.
STACK=${SWARM_STACK:-roiserve-smoke-$$}
LOAD_SECONDS=${SWARM_LOAD_SECONDS:-30}
CONCURRENCY=${SWARM_CONCURRENCY:-8}
WORKERS=${SWARM_WORKERS-1}
TIMEOUT=${SWARM_TIMEOUT:-150}
read -r -a BUILD_FLAGS <<<"${DOCKER_BUILD_FLAGS:-}"
SERVICE="${STACK}_roiserve" LB_SERVICE="${STACK}_lb" NETWORK="${STACK}_backend"
EXPECT_NAME="roiserve-swarm-expect-$$"
TMP=$(mktemp -d)
CLIENT=(node_modules/.bin/tsx scripts/swarm-smoke-client.ts)
passed=0 failed=0
created_swarm="" deployed="" expect_container="" load_pid="" gwbridge_existed=""

now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
log() { printf '[swarm %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

summary() {
  [ -n "${SWARM_RESULT_FILE:-}" ] && echo "$passed $failed" >"$SWARM_RESULT_FILE"
  echo "swarm: $passed passed, $failed failed"
}

service_diagnostics() {
  [ -n "$deployed" ] || return 0
  for s in "$SERVICE" "$LB_SERVICE"; do
    echo "----- docker service ps --no-trunc $s -----"
    docker service ps --no-trunc "$s" 2>&1 | sed 's/^/  | /'
  done
  echo "----- docker service logs $SERVICE (last 80 lines) -----"
  timeout 20 docker service logs --no-trunc --tail 80 "$SERVICE" 2>&1 | sed 's/^/  | /'
  # HAProxy logs every request: show its events and the requests that were not a plain 200 (status
  # other than 200, a termination state other than ----, or a retry).
  echo "----- docker service logs $LB_SERVICE (last 80 lines but plain 200s) -----"
  timeout 20 docker service logs --no-trunc "$LB_SERVICE" 2>&1 | grep -vE ' 200 [0-9]+ - - ---- [0-9]+/[0-9]+/[0-9]+/[0-9]+/0 ' |
    tail -80 | sed 's/^/  | /'
  echo "----- end of service diagnostics -----"
}

# Removes the stack and waits until its containers and network are gone (a network still attached to
# a stopping container cannot be removed, and the swarm cannot be left cleanly before).
remove_stack() {
  timeout "$TIMEOUT" docker stack rm "$STACK" >/dev/null 2>&1 || return 1
  local deadline=$(($(date +%s) + TIMEOUT))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] &&
      ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# Leaves the swarm this run created, unless something else now runs in it (another run joined it).
leave_swarm() {
  local others
  others=$(docker service ls --format '{{.Name}}' 2>/dev/null | tr '\n' ' ')
  if [ -n "${others// /}" ]; then
    log "not leaving the swarm: other services run in it ($others)"
    return 0
  fi
  timeout 60 docker swarm leave --force >/dev/null 2>&1 || return 1
  # docker_gwbridge is made by the swarm's first task; drop it too unless it was there before.
  [ -n "$gwbridge_existed" ] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
}

cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  [ -n "$expect_container" ] && docker rm -f "$expect_container" >/dev/null 2>&1
  [ -n "$deployed" ] && remove_stack
  [ -n "$created_swarm" ] && leave_swarm
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

abort() {
  fail "$*"
  service_diagnostics
  summary
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.5 s until it succeeds; 1 on timeout.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(($(now_ms) + seconds * 1000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "timed out after ${seconds} s waiting for: $what"
  return 1
}

replicas() { docker service ls --filter "name=$SERVICE" --format '{{.Name}} {{.Replicas}}' | awk -v s="$SERVICE" '$1 == s { print $2 }'; }
# Running containers of the service that report healthy (/readyz 200).
healthy_containers() {
  docker ps -q --filter "label=com.docker.swarm.service.name=$SERVICE" --filter health=healthy
}
# Exactly 2 replicas, both running and healthy, no other container of the service left (an old task
# still draining counts until it is gone).
two_healthy() {
  [ "$(replicas)" = 2/2 ] &&
    [ "$(healthy_containers | wc -l)" = 2 ] &&
    [ "$(docker ps -q --filter "label=com.docker.swarm.service.name=$SERVICE" | wc -l)" = 2 ]
}
lb_ready() { curl -fsS -m 2 "$LB/readyz" >/dev/null; }
update_state() { docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$SERVICE"; }

T_START=$(now_ms)
command -v docker >/dev/null || abort "docker CLI not found"
docker info >/dev/null 2>&1 || abort "no Docker daemon answers (CI: ../shared/tools/docker-local-base.sh starts one)"
[ -x "${CLIENT[0]}" ] || abort "${CLIENT[0]} missing: run npm ci first"
if ! docker network inspect bridge >/dev/null 2>&1; then
  abort "dockerd runs without bridge networking (--bridge=none, as docker-local-base.sh falls back to when bridge setup fails): swarm overlay networks need docker_gwbridge, so the swarm test cannot run on this daemon"
fi

# ---------------------------------------------------------------- images
if [ "${SWARM_SKIP_BUILD:-0}" = 1 ]; then
  docker image inspect "$IMAGE" >/dev/null 2>&1 || abort "image $IMAGE not found (SWARM_SKIP_BUILD=1)"
  log "using the existing image $IMAGE (SWARM_SKIP_BUILD=1)"
else
  t0=$(now_ms)
  if docker build "${BUILD_FLAGS[@]}" -t "$IMAGE" . >"$TMP/build.log" 2>&1; then
    pass "docker build $IMAGE ($(secs $(($(now_ms) - t0))) s)"
  else
    tail -40 "$TMP/build.log"
    abort "docker build $IMAGE failed"
  fi
fi
t0=$(now_ms)
if docker build "${BUILD_FLAGS[@]}" -t "$LB_IMAGE" deploy/swarm/haproxy >"$TMP/lb-build.log" 2>&1; then
  pass "docker build $LB_IMAGE (HAProxy $(docker run --rm --entrypoint haproxy "$LB_IMAGE" -v 2>/dev/null | awk 'NR == 1 { print $3 }'), config checked; $(secs $(($(now_ms) - t0))) s)"
else
  tail -40 "$TMP/lb-build.log"
  abort "docker build $LB_IMAGE (deploy/swarm/haproxy) failed"
fi

# ---------------------------------------------------------------- swarm
docker network inspect docker_gwbridge >/dev/null 2>&1 && gwbridge_existed=1
state=$(docker info -f '{{.Swarm.LocalNodeState}}')
case $state in
  active)
    [ "$(docker info -f '{{.Swarm.ControlAvailable}}')" = true ] ||
      abort "this node is in a swarm but not a manager: cannot deploy a stack from here"
    pass "joined the node's existing swarm (left as it is afterwards)"
    ;;
  inactive)
    if docker swarm init --advertise-addr 127.0.0.1 >"$TMP/swarm-init.log" 2>&1; then
      created_swarm=1
      pass "created a single-node swarm (docker swarm init --advertise-addr 127.0.0.1; left at the end)"
    elif [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = active ]; then
      pass "joined the swarm another run created meanwhile (left as it is afterwards)"
    else
      cat "$TMP/swarm-init.log"
      abort "docker swarm init failed"
    fi
    ;;
  *) abort "the node's swarm state is '$state': neither active nor inactive" ;;
esac
if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
  abort "a stack named $STACK already runs (another run?); set SWARM_STACK to another name"
fi

# ---------------------------------------------------------------- expected answers, deployment
# One plain container answers first: what every replica must answer, byte for byte. It starts now so
# that it warms up while the stack deploys.
expect_container=$(docker run -d --name "$EXPECT_NAME" -p 127.0.0.1::8080 --read-only --tmpfs /tmp \
  -e "WORKERS=$WORKERS" "$IMAGE") || abort "docker run (single container for the expected answers) failed"
LB_PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
LB="http://127.0.0.1:$LB_PORT"
t0=$(now_ms)
if ROISERVE_IMAGE=$IMAGE ROISERVE_LB_IMAGE=$LB_IMAGE ROISERVE_LB_PORT=$LB_PORT ROISERVE_WORKERS=$WORKERS \
  timeout "$TIMEOUT" docker stack deploy --resolve-image never -c deploy/swarm/docker-stack.yml "$STACK" >"$TMP/deploy.log" 2>&1; then
  deployed=1
else
  cat "$TMP/deploy.log"
  abort "docker stack deploy failed"
fi

single="http://$(docker port "$expect_container" 8080/tcp | grep -m1 '^127.0.0.1:')"
wait_for "$TIMEOUT" "the single container's /readyz" curl -fsS -m 2 "$single/readyz" ||
  abort "the single container's /readyz was not 200 within $TIMEOUT s: $(docker logs --tail 20 "$expect_container" 2>&1)"
"${CLIENT[@]}" expect "$single" "$TMP/expected.json" >"$TMP/expect.log" 2>&1
if grep -q '^PASS ' "$TMP/expect.log"; then
  pass "$(sed -n 's/^PASS //p' "$TMP/expect.log")"
else
  abort "could not compute the expected answers: $(cat "$TMP/expect.log")"
fi
docker rm -f "$expect_container" >/dev/null 2>&1
expect_container=""

stack_ready() { two_healthy && lb_ready; }
if wait_for "$TIMEOUT" "2/2 healthy replicas and /readyz through the load balancer" stack_ready; then
  pass "stack $STACK deployed: $SERVICE $(replicas), /readyz 200 through the load balancer on $LB after $(secs $(($(now_ms) - t0))) s"
else
  abort "stack $STACK not ready within $TIMEOUT s (replicas $(replicas))"
fi

# ---------------------------------------------------------------- load, rolling update, kill
"${CLIENT[@]}" load "$LB" "$CONCURRENCY" "$TMP/expected.json" "$TMP/started" "$TMP/stop" "$TMP/load.json" \
  >"$TMP/load.log" 2>&1 &
load_pid=$!
wait_for 60 "the load client's first answers" test -f "$TMP/started" || abort "the load client did not start: $(cat "$TMP/load.log")"
load_start=$(now_ms)
log "load running: $CONCURRENCY requests in flight to $LB"
sleep 2

t0=$(now_ms)
timeout "$TIMEOUT" docker service update --force --detach "$SERVICE" >"$TMP/update.log" 2>&1 || abort "docker service update --force failed: $(cat "$TMP/update.log")"
log "docker service update --force $SERVICE (start-first, one task at a time)"
update_done() { [ "$(update_state)" = completed ]; }
if wait_for "$TIMEOUT" "the rolling update to complete" update_done && wait_for "$TIMEOUT" "2/2 healthy replicas" two_healthy; then
  pass "rolling update under load completed in $(secs $(($(now_ms) - t0))) s (UpdateStatus completed, $(replicas) healthy)"
else
  abort "rolling update did not complete within $TIMEOUT s (UpdateStatus '$(update_state)', replicas $(replicas))"
fi

victim=$(healthy_containers | head -1)
[ -n "$victim" ] || abort "no running replica to kill"
t0=$(now_ms)
timeout 30 docker kill "$victim" >/dev/null || abort "docker kill $victim failed"
log "docker kill $(docker inspect -f '{{.Name}}' "$victim" 2>/dev/null | sed 's#^/##')"
back_to_two() { two_healthy && ! healthy_containers | grep -q "^${victim:0:12}"; }
if wait_for "$TIMEOUT" "2/2 healthy replicas after the kill" back_to_two; then
  pass "killed one replica under load; back to $(replicas) healthy replicas in $(secs $(($(now_ms) - t0))) s"
else
  abort "replicas not back to 2/2 within $TIMEOUT s of docker kill (replicas $(replicas))"
fi

# Keep the load on for SWARM_LOAD_SECONDS at least, and a few seconds on the replaced replica.
sleep 3
rest=$((LOAD_SECONDS * 1000 - ($(now_ms) - load_start)))
[ "$rest" -gt 0 ] && sleep "$(secs "$rest")"
touch "$TMP/stop"
load_done() { ! kill -0 "$load_pid" 2>/dev/null; }
wait_for 90 "the load client to finish" load_done || abort "the load client did not finish"
wait "$load_pid"
load_pid=""
cat "$TMP/load.log"
passed=$((passed + $(grep -c '^PASS ' "$TMP/load.log")))
failed=$((failed + $(grep -c '^FAIL ' "$TMP/load.log")))
grep -qE '^(PASS|FAIL) ' "$TMP/load.log" || fail "the load client reported nothing"

if two_healthy; then pass "after the test: $SERVICE $(replicas) replicas, both healthy"; else fail "after the test: $SERVICE $(replicas) replicas"; fi
# What the load balancer did: HAProxy's httplog has, after the 4 termination-state characters,
# "actconn/feconn/beconn/srv_conn/retries", retries prefixed with + when the request was redispatched.
retried=$(timeout 20 docker service logs --raw "$LB_SERVICE" 2>/dev/null | awk '
  / HTTP\/1\.1"$/ { for (i = 1; i < NF; i++) if ($i ~ /^[-A-Za-z][-A-Za-z][-A-Za-z][-A-Za-z]$/ && $(i + 1) ~ /^[0-9]+\/[0-9]+\/[0-9]+\/[0-9]+\/\+?[0-9]+$/) {
    split($(i + 1), a, "/"); if (a[5] != "0") n++; break } }
  END { print n + 0 }')
log "the load balancer retried $retried request(s) on another replica (HAProxy retry-on + redispatch)"
timeout 20 docker service logs --raw "$LB_SERVICE" 2>/dev/null | grep -E ' [-A-Za-z]{4} [0-9]+/[0-9]+/[0-9]+/[0-9]+/\+?[1-9]' |
  head -3 | sed 's/^/  | /'

[ "$failed" -gt 0 ] && service_diagnostics

# ---------------------------------------------------------------- clean up
if remove_stack; then pass "stack $STACK and network $NETWORK removed"; else fail "stack $STACK not removed within $TIMEOUT s"; fi
deployed=""
if [ -n "$created_swarm" ]; then
  if ! leave_swarm; then
    fail "docker swarm leave failed"
  elif [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = inactive ]; then
    pass "left the swarm this run created"
  else
    pass "kept the swarm this run created: another run's services are in it"
  fi
  created_swarm=""
fi
log "total $(secs $(($(now_ms) - T_START))) s"
summary
[ "$failed" = 0 ]
