#!/usr/bin/env bash
# Edits an unpacked, patched containerd source tree so that integration/client runs offline
# against the local registry and below a temp folder:
#   prepare-source.sh <containerd source dir>
# - image references -> 127.0.0.1/<repo> (the registry run.sh starts on 127.0.0.1:80);
#   the two schema-1 images pinned by digest stay as they are: no local image can have
#   those digests, so those tests fail in every run here (see SKIPS.md);
# - the daemon's fixed root, state and socket -> $CONFORMANCE_DIR/{root,state} when set;
#   runc's fixed /tmp/runc-test -> $TMPDIR/runc-test.
# run.sh keys its build cache on this file's hash: any change here rebuilds the suite.
set -euo pipefail
src=${1:?usage: prepare-source.sh <containerd source dir>}
dir=$src/integration/client
[ -f "$dir/client_unix_test.go" ] || { echo "prepare-source: $dir/client_unix_test.go not found (not a containerd 1.6 tree?)" >&2; exit 1; }

sed -i \
  -e 's#"ghcr\.io/containerd/#"127.0.0.1/containerd/#g' \
  -e 's#"k8s\.gcr\.io/pause:3\.6"#"127.0.0.1/pause:3.6"#g' \
  -e 's#"registry\.k8s\.io/e2e-test-images/busybox:1\.29-2"#"127.0.0.1/e2e-test-images/busybox:1.29-2"#g' \
  -e 's#source   = "registry\.k8s\.io"#source   = "127.0.0.1"#' \
  -e 's#"mcr\.microsoft\.com/windows/nanoserver:1809"#"127.0.0.1/windows/nanoserver:1809"#g' \
  "$dir"/*_test.go

# The const block with the fixed paths becomes vars computed from the environment.
perl -0pi -e 's/const \(\n(\s*)defaultRoot\s*= "([^"]+)"\n\s*defaultState\s*= "([^"]+)"\n\s*defaultAddress\s*= "([^"]+)"\n\)/var (\n$1defaultRoot    = conformancePath("root", "$2")\n$1defaultState   = conformancePath("state", "$3")\n$1defaultAddress = conformancePath("state\/containerd.sock", "$4")\n)/' "$dir/client_unix_test.go"
cat > "$dir/zz_kata_ts_paths_test.go" <<'EOF'
package client

import (
	"os"
	"path/filepath"
)

// conformancePath puts the test daemon's folders under $CONFORMANCE_DIR when it is set
// (added by kata-ts test/conformance/prepare-source.sh).
func conformancePath(name, fixed string) string {
	if d := os.Getenv("CONFORMANCE_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	return fixed
}
EOF

# TestKillContainerDeletedByRunc keeps runc's state in a fixed /tmp/runc-test: below TMPDIR
# instead, which run.sh points into its temp folder.
sed -i 's#runcRoot    = "/tmp/runc-test"#runcRoot    = path.Join(os.TempDir(), "runc-test")#' "$dir/container_test.go"
grep -q 'path.Join(os.TempDir(), "runc-test")' "$dir/container_test.go" || { echo "prepare-source: runcRoot not rewritten in container_test.go" >&2; exit 1; }

# Every edit must have landed: a silent no-op would send the suite to the internet.
left=$(grep -nE '"(ghcr\.io|k8s\.gcr\.io/pause|registry\.k8s\.io/e2e|mcr\.microsoft\.com)' "$dir"/*_test.go | grep -v _windows_test.go || true)
[ -z "$left" ] || { echo "prepare-source: image references left unrewritten:"$'\n'"$left" >&2; exit 1; }
grep -q 'conformancePath("root"' "$dir/client_unix_test.go" || { echo "prepare-source: root/state paths not rewritten in client_unix_test.go" >&2; exit 1; }
