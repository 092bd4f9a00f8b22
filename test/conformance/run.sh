#!/usr/bin/env bash
# containerd's own integration/client suite, run offline twice: with io.containerd.runc.v2 and
# with io.containerd.kata-ts.v2 (dist/containerd-shim-kata-ts-v2, the simulators as VMM and
# agent). Prints one row per test with both results; fails when a test that passes with runc
# does not pass with kata-ts and test/conformance/SKIPS.md does not list it.
# Facts: ../shared/reference/conformance-suites.md. Needs root and port 127.0.0.1:80.
#
# Env: CONFORMANCE_RUNTIMES  "runc kata-ts" (default) or one of them
#      CONFORMANCE_LOGS      where both logs and the table are kept (default .deps/conformance/logs)
#      CONFORMANCE_RUN       a -test.run regex, to run part of the suite
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
conf=$here/test/conformance
deps=${KATA_TS_DEPS:-$here/.deps}/conformance
runtimes=${CONFORMANCE_RUNTIMES:-runc kata-ts}
logs=${CONFORMANCE_LOGS:-$deps/logs}
say() { echo "conformance: $*"; }
die() { echo "conformance: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (the suite starts containerd and runs containers)"

ver=$(dpkg-query -W -f='${Version}' containerd 2>/dev/null) || die "containerd is not installed (apt-get install containerd runc)"
key=$ver-$(cat "$conf/prepare-source.sh" | sha256sum | cut -c1-12)
suite=$deps/suite-$key
mkdir -p "$deps"

# --- packages ---------------------------------------------------------------------------
need=()
for p in golang-go patch xz-utils perl docker-registry runc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt-get update -qq
  # docker-registry's package enables a system service; this script runs its own instance.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A private apt state: deb-src lines for the source package, and Debian's dynamic busybox,
# which conflicts with the busybox-static the other tests use, so it is unpacked, not installed.
aptdir=$deps/apt
apto=(-o Dir::Etc::sourcelist="$aptdir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$aptdir/lists"
      -o Dir::Cache::archives="$aptdir/archives" -o APT::Sandbox::User=root)
apt_private() {
  if [ ! -f "$aptdir/updated" ]; then
    mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
    host=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    [ -n "$host" ] || die "no archive address in /etc/apt/sources.list.d/debian.sources"
    printf 'deb %s bookworm main\ndeb-src %s bookworm main\n' "$host" "$host" > "$aptdir/sources.list"
    apt-get "${apto[@]}" update -qq
    touch "$aptdir/updated"
  fi
}
busybox=$deps/busybox-dyn/bin/busybox
if [ ! -x "$busybox" ]; then
  apt_private
  t=$(mktemp -d)
  (cd "$t" && apt-get "${apto[@]}" download -qq busybox 2>/dev/null)
  dpkg -x "$t"/busybox_*.deb "$deps/busybox-dyn"
  rm -rf "$t"
fi

# --- the suite: built once per containerd version and prepare-source.sh ------------------
if [ ! -x "$suite/client.test" ]; then
  t0=$(date +%s)
  apt_private
  work=$(mktemp -d /tmp/kata-ts-conformance-build.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get "${apto[@]}" source --download-only -qq "containerd=$ver" >/dev/null)
  dsc=$(ls "$work"/containerd_*.dsc)
  say "apt-get build-dep $(basename "$dsc")"
  DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$dsc" >/dev/null
  src=$work/gopath/src/github.com/containerd/containerd
  mkdir -p "$src"
  tar -xJf "$work"/containerd_*.orig.tar.xz -C "$src" --strip-components=1
  tar -xJf "$work"/containerd_*.debian.tar.xz -C "$src"
  while read -r p; do
    case "$p" in ''|'#'*) continue ;; esac
    patch -d "$src" -p1 -s < "$src/debian/patches/$p" || die "debian patch $p does not apply"
  done < "$src/debian/patches/series"
  bash "$conf/prepare-source.sh" "$src"
  say "building integration/client ($ver)"
  mkdir -p "$suite.tmp"
  (cd "$src" && GOPATH="$work/gopath:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOFLAGS= \
     go test -c -o "$suite.tmp/client.test" ./integration/client)
  # -test.short makes TestMain skip the daemon, so listing needs neither root nor a registry.
  "$suite.tmp/client.test" -test.short -test.list '.*' | grep '^Test' > "$suite.tmp/tests.txt"
  rm -rf "$suite" && mv "$suite.tmp" "$suite"
  rm -rf "$work"; trap - EXIT
  say "suite built in $(( ($(date +%s) - t0) / 60 )) min $(( ($(date +%s) - t0) % 60 )) s ($(wc -l < "$suite/tests.txt") tests)"
fi
for old in "$deps"/suite-*; do [ "$old" = "$suite" ] || rm -rf "$old"; done

# --- one temp folder for everything a run makes ------------------------------------------
for rt in $runtimes; do
  case $rt in
    runc) ;;
    kata-ts) [ -x "$here/dist/containerd-shim-kata-ts-v2" ] || die "dist/containerd-shim-kata-ts-v2 missing: run npm run build first (or CONFORMANCE_RUNTIMES=runc)" ;;
    *) die "CONFORMANCE_RUNTIMES: unknown runtime '$rt' (runc, kata-ts)" ;;
  esac
done
if (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null; then die "127.0.0.1:80 is in use: the suite's registry needs it (one test drops the port from an image reference)"; fi

tmp=$(mktemp -d /tmp/kata-ts-conformance.XXXXXX)
# Traversable like /run/containerd-test: user-namespace tests mount the rootfs as uid 1000.
chmod 0755 "$tmp"
registry_pid=
run_env=(env)
snapshot() { find /run/vc/vm /run/kata-containers/shared/sandboxes /run/containerd/s -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -u || true; }
before=$(snapshot)
# runc's shim makes one state folder per namespace under /run/containerd/runc and never
# removes it; the empty ones this run adds are removed at the end.
runc_ns_before=$(ls -1 /run/containerd/runc 2>/dev/null || true)
# Every process a run starts carries this variable (containerd, shims, VMM and agent
# simulators, virtiofsd inherit it), so leftovers are found without guessing at names.
marker="KATA_TS_CONFORMANCE=$tmp"
ours() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    grep -qzxF "$marker" "$p/environ" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  set +e
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; registry_pid=; fi
  if [ -n "$(ours)" ]; then reap_tasks; shim_delete; kill_ours; fi
  awk -v t="$tmp" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$tmp"
  local d
  for d in $(comm -13 <(echo "$runc_ns_before") <(ls -1 /run/containerd/runc 2>/dev/null)); do
    rmdir "/run/containerd/runc/$d" 2>/dev/null || echo "conformance: LEFTOVER runc state /run/containerd/runc/$d: $(ls /run/containerd/runc/$d)" >&2
  done
}
trap cleanup EXIT INT TERM

# --- registry with the images ------------------------------------------------------------
mkdir -p "$tmp/registry" "$tmp/images" "$tmp/tmp" "$tmp/bin" "$logs"
cat > "$tmp/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:80
EOF
node "$conf/images.mjs" "$busybox" "$tmp/images" >/dev/null
env "$marker" /usr/bin/docker-registry serve "$tmp/registry/config.yml" > "$tmp/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null && break
  kill -0 "$registry_pid" 2>/dev/null || die "docker-registry exited: $(tail -3 "$tmp/registry/log")"
  sleep 0.1
done
pushed=$(node "$conf/push.mjs" http://127.0.0.1:80 "$tmp/images")
say "registry on 127.0.0.1:80 serves $(echo "$pushed" | sed -n 's/^pushed //p' | paste -sd' ')"

# --- kata-ts: a Kata config as a user writes one, the shim on containerd's PATH -----------
mkdir -p "$tmp/kata"
: > "$tmp/kata/vmlinux.container"; : > "$tmp/kata/kata-containers.img"
"$here/node_modules/.bin/esbuild" --bundle --platform=node --format=esm --log-level=warning \
  --define:import.meta.url="\"file://$here/test/env.ts\"" \
  "$conf/render-kata-config.ts" --outfile="$tmp/kata/render.mjs"
node "$tmp/kata/render.mjs" "$tmp/kata/configuration-clh.toml" "$here/dist/sim/cloud-hypervisor" \
  "${KATA_TS_DEPS:-$here/.deps}/bin/virtiofsd" "$tmp/kata/vmlinux.container" "$tmp/kata/kata-containers.img"
ln -s "$here/dist/containerd-shim-kata-ts-v2" "$tmp/bin/containerd-shim-kata-ts-v2"
run_env=(env "$marker" TMPDIR="$tmp/tmp" KATA_CONF_FILE="$tmp/kata/configuration-clh.toml" PATH="$tmp/bin:$PATH")

# --- the runs -----------------------------------------------------------------------------
testrun() { # testrun <runtime> [log name] -> $logs/<log name, default runtime>.log
  local rt=$1 log=${2:-$1} filter=${CONFORMANCE_RUN:-}
  if [ "$rt" = kata-ts ] && [ -z "$filter" ]; then
    # Go 1.19 has no -test.skip: run every test but those SKIPS.md lists.
    filter="^($(grep -vxF -f <(sed -n 's/^| *`\{0,1\}\(Test[A-Za-z0-9_]*\)`\{0,1\} *|.*/\1/p' "$conf/SKIPS.md") "$suite/tests.txt" | paste -sd'|'))\$"
  fi
  rm -rf "$tmp/ctrd"
  mkdir -p "$tmp/ctrd"
  local t0; t0=$(date +%s)
  say "running the suite with io.containerd.$rt.v2"
  (cd "$tmp/tmp" && "${run_env[@]}" CONFORMANCE_DIR="$tmp/ctrd" TEST_RUNTIME="io.containerd.$rt.v2" \
      timeout -k 10 22m "$suite/client.test" -test.root -test.v -test.timeout 20m -no-criu ${filter:+-test.run "$filter"} \
      > "$logs/$log.log" 2>&1) || true
  local s=$(( $(date +%s) - t0 ))
  say "io.containerd.$rt.v2 run took $((s / 60)) min $((s % 60)) s"
  # Anything the run left running is reported, then removed, so the next run starts clean. A
  # failed test often leaves its task (it never reaches its Delete): that is not a second
  # failure; something still there after the cleanup is (checked at the end).
  local left; left=$(ours | grep -vx "$registry_pid" || true)
  if [ -n "$left" ]; then
    echo "conformance: LEFTOVER after the $rt run: $(for p in $left; do tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | cut -c1-150; echo; done)" | tee -a "$logs/$log.log" >&2
    reap_tasks
    shim_delete
    kill_ours
  fi
}
# Tasks a failed test did not delete, while the suite's containerd is still up (a hang):
# its own API kills and deletes them, so each shim tears down what it made.
reap_tasks() {
  local -; set +e
  local sock=$tmp/ctrd/state/containerd.sock ns id
  ctr --address "$sock" version >/dev/null 2>&1 || return 0
  for ns in $(ctr --address "$sock" namespaces ls -q 2>/dev/null); do
    for id in $(ctr --address "$sock" -n "$ns" tasks ls -q 2>/dev/null); do
      echo "conformance: removing leftover task $ns/$id" >&2
      timeout 30 ctr --address "$sock" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1
      timeout 60 ctr --address "$sock" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr --address "$sock" -n "$ns" containers ls -q 2>/dev/null); do
      timeout 30 ctr --address "$sock" -n "$ns" containers delete "$id" >/dev/null 2>&1
    done
  done
  return 0
}
# Shims still running once containerd is gone (the suite removes its metadata on exit, so a
# new containerd could not name their containers): treat them as crashed, the way containerd
# does, by killing each and running its `delete` command in its bundle, which must clean up
# what that shim made (for kata-ts: VM, virtiofsd, mounts, Kata folders).
shim_delete() {
  local -; set +e
  local p argv i ns id addr bundle
  for p in $(ours | grep -vx "${registry_pid:-none}"); do
    { mapfile -d '' argv < "/proc/$p/cmdline"; } 2>/dev/null || continue
    case ${argv[0]:-} in *containerd-shim-*) ;; *) continue ;; esac
    ns= id= addr=
    for ((i = 1; i < ${#argv[@]} - 1; i++)); do
      case ${argv[i]} in -namespace) ns=${argv[i+1]} ;; -id) id=${argv[i+1]} ;; -address) addr=${argv[i+1]} ;; esac
    done
    bundle=$tmp/ctrd/state/io.containerd.runtime.v2.task/$ns/$id
    kill -9 "$p" 2>/dev/null
    [ -n "$id" ] && [ -d "$bundle" ] || continue
    echo "conformance: $(basename "${argv[0]}") delete for leftover $ns/$id" >&2
    (cd "$bundle" && "${run_env[@]}" timeout 60 "${argv[0]}" -namespace "$ns" -address "$addr" \
       -publish-binary "$(command -v containerd)" -id "$id" -bundle "$bundle" delete >/dev/null 2>>"$logs/shim-delete.log")
    # The shim's socket, named in the bundle's `address` file: a dead shim cannot remove it.
    local sock; sock=$(sed -n 's#^unix://##p' "$bundle/address" 2>/dev/null)
    if [ -n "$sock" ] && [ -S "$sock" ]; then
      echo "conformance: removing the socket $sock of the dead shim $ns/$id" >&2
      rm -f "$sock"
    fi
  done
  return 0
}
kill_ours() {
  local -; set +e
  local pids p ns id addr sockets=() sandboxes=()
  pids=$(ours | grep -vx "${registry_pid:-none}" || true)
  [ -n "$pids" ] || return 0
  for p in $pids; do
    ns= id= addr=
    local argv=() i
    { mapfile -d '' argv < "/proc/$p/cmdline"; } 2>/dev/null || continue
    for ((i = 1; i < ${#argv[@]} - 1; i++)); do
      case ${argv[i]} in -namespace) ns=${argv[i+1]} ;; -id) id=${argv[i+1]} ;; -address) addr=${argv[i+1]} ;; esac
    done
    case ${argv[0]:-} in
      *containerd-shim-*)
        [ -n "$ns" ] && [ -n "$id" ] && [ -n "$addr" ] && \
          sockets+=("/run/containerd/s/$(printf '%s' "$addr/$ns/$id" | sha256sum | cut -d' ' -f1)")
        [ -n "$id" ] && sandboxes+=("$id") ;;
    esac
  done
  echo "conformance: killing leftover processes: $(echo $pids)" >&2
  kill -9 $pids 2>/dev/null; sleep 1
  rm -f "${sockets[@]}"
  for id in "${sandboxes[@]}"; do
    [ -d "/run/kata-containers/shared/sandboxes/$id" ] || [ -d "/run/vc/vm/$id" ] || continue
    awk -v p="/run/kata-containers/shared/sandboxes/$id" '$2 == p || index($2, p "/") == 1 {print $2}' /proc/mounts | sort -r | \
      while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
    rm -rf "/run/kata-containers/shared/sandboxes/$id" "/run/vc/vm/$id"
  done
  return 0
}
rm -f "$logs/runc.log" "$logs/kata-ts.log" "$logs/kata-ts-retry.log" "$logs/table.txt" "$logs/shim-delete.log"
for rt in $runtimes; do testrun "$rt"; done

# A single failure can be the machine's rather than the shim's (the suite has timing tests that
# flake under runc too on a loaded machine): a test that passed with runc and failed with kata-ts
# runs once more, alone. Its second result follows the first in kata-ts.log, and the report
# keeps the last; the log says which tests were run again.
if [ -f "$logs/runc.log" ] && [ -f "$logs/kata-ts.log" ]; then
  again=$(node "$conf/report.mjs" "$logs/runc.log" "$logs/kata-ts.log" "$conf/SKIPS.md" --regressions)
  if [ -n "$again" ]; then
    say "running again, alone, with kata-ts: $again"
    CONFORMANCE_RUN="^($(tr ' ' '|' <<<"$again"))\$" testrun kata-ts kata-ts-retry
    { echo "=== kata-ts: run again alone: $again"; cat "$logs/kata-ts-retry.log"; } >> "$logs/kata-ts.log"
  fi
fi

status=0
log_of() { if [ -f "$logs/$1.log" ]; then echo "$logs/$1.log"; else echo -; fi; }
node "$conf/report.mjs" "$(log_of runc)" "$(log_of kata-ts)" "$conf/SKIPS.md" | tee "$logs/table.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

cleanup
trap - EXIT INT TERM
after=$(snapshot)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep '^Test' || true)
[ -z "$new" ] || { echo "conformance: LEFTOVER sandbox dirs/sockets named after tests: $new" >&2; status=1; }
[ ! -e "$tmp" ] || { echo "conformance: LEFTOVER $tmp" >&2; status=1; }
[ -z "$(ours)" ] || { echo "conformance: LEFTOVER processes: $(ours | paste -sd' ')" >&2; status=1; }
if (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null; then echo "conformance: LEFTOVER: 127.0.0.1:80 still answers" >&2; status=1; fi
say "logs: $logs/{runc,kata-ts}.log, table: $logs/table.txt"
exit $status
