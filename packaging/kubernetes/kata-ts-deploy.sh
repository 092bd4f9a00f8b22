#!/usr/bin/env bash
# kata-ts-deploy: installs the kata-ts shim (containerd-shim-kata-ts-v2) beside the Kata assets
# kata-deploy installed in /opt/kata, and registers containerd runtime `kata-clh-ts` (the handler
# of RuntimeClass kata-clh-ts) the way kata-deploy registers `kata-clh`. `cleanup` undoes exactly
# what `install` did, using the state file install leaves in /opt/kata.
#
#   kata-ts-deploy.sh [--host-root DIR] [--restart-containerd] install|cleanup
#
# Environment (flags win):
#   KATA_TS_HOST_ROOT           where the host's / is mounted (default /host, the DaemonSet's mount)
#   KATA_TS_RESTART_CONTAINERD  "true": restart containerd on the host (nsenter into PID 1's mounts)
#   KATA_TS_SHIM                the shim executable to install (default: bin/ beside this script's dir)
#   KATA_TS_CONTAINERD_CONFIG   containerd's config as a host path (default /etc/containerd/config.toml)
#   NODE_NAME                   this node; with kubectl on PATH, label it katacontainers.io/kata-runtime=true
set -euo pipefail

readonly HANDLER=kata-clh-ts
readonly RUNTIME_TYPE=io.containerd.kata-ts.v2
readonly SHIM_NAME=containerd-shim-kata-ts-v2
# Host paths: these are what containerd on the host sees, so they go into its config.
readonly KATA_PREFIX=/opt/kata
readonly SHIM_PATH=$KATA_PREFIX/bin/$SHIM_NAME
readonly KATA_CLH_CONFIG=$KATA_PREFIX/share/defaults/kata-containers/configuration-clh.toml
readonly DROPIN_PATH=$KATA_PREFIX/containerd/config.d/kata-ts-deploy.toml
readonly STATE_PATH=$KATA_PREFIX/.kata-ts-deploy.state
readonly NODE_LABEL=katacontainers.io/kata-runtime
readonly BLOCK_BEGIN="# >>> kata-ts-deploy: runtime $HANDLER (removed by kata-ts-deploy.sh cleanup) >>>"
readonly BLOCK_END="# <<< kata-ts-deploy <<<"

log() { printf 'kata-ts-deploy: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	cat >&2 <<EOF
usage: $0 [--host-root DIR] [--restart-containerd] install|cleanup
  install   copy $SHIM_NAME to $SHIM_PATH and register containerd runtime $HANDLER
  cleanup   remove both again (what install added, nothing else)
EOF
	exit 2
}

host_root=${KATA_TS_HOST_ROOT:-/host}
restart=${KATA_TS_RESTART_CONTAINERD:-false}
shim_src=${KATA_TS_SHIM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin/$SHIM_NAME}
containerd_config=${KATA_TS_CONTAINERD_CONFIG:-/etc/containerd/config.toml}
action=
while [[ $# -gt 0 ]]; do
	case $1 in
	--host-root) [[ $# -ge 2 ]] || usage; host_root=$2; shift 2 ;;
	--restart-containerd) restart=true; shift ;;
	install | cleanup) [[ -z $action ]] || usage; action=$1; shift ;;
	-h | --help) usage ;;
	*) log "unknown argument '$1'"; usage ;;
	esac
done
[[ -n $action ]] || usage
[[ -d $host_root ]] || die "host root '$host_root' is not a directory (the DaemonSet mounts the host's / there)"
host_root=${host_root%/}

# A host path as seen from here.
h() { printf '%s%s' "$host_root" "$1"; }

config_file=$(h "$containerd_config")
backup_file=$config_file.kata-ts.bak # not config.toml.bak: kata-deploy owns that one

# ---- state: what install changed, so cleanup undoes exactly that ---------------------------------
declare -A state=()
load_state() {
	local f k v
	f=$(h "$STATE_PATH")
	[[ -f $f ]] || return 0
	while IFS='=' read -r k v; do
		if [[ -n $k && $k != \#* ]]; then state[$k]=$v; fi
	done <"$f"
	return 0
}
save_state() {
	local f k
	f=$(h "$STATE_PATH")
	{
		echo "# kata-ts-deploy install state; read by 'kata-ts-deploy.sh cleanup'"
		for k in $(printf '%s\n' "${!state[@]}" | sort); do echo "$k=${state[$k]}"; done
	} >"$f.tmp"
	mv -f "$f.tmp" "$f"
}

# mkdir -p that remembers which directories it created (cleanup removes them if empty).
make_dirs() {
	local d=$1 missing=()
	while [[ ! -d $(h "$d") ]]; do
		missing=("$d" "${missing[@]}")
		d=$(dirname "$d")
	done
	for d in "${missing[@]}"; do
		mkdir "$(h "$d")"
		state[created_dirs]="${state[created_dirs]:+${state[created_dirs]} }$d"
	done
}

# ---- file helpers that keep bytes exact -------------------------------------------------------
# Reads a file into the global array `lines` and `final_newline` (1 when it ends with "\n").
read_lines() {
	lines=()
	final_newline=0
	[[ -s $1 ]] || return 0
	mapfile -t lines <"$1"
	if [[ $(tail -c 1 "$1" | od -An -tx1 | tr -d ' ') == 0a ]]; then final_newline=1; fi
	return 0
}
# Writes `lines` back (atomically, keeping the file's mode), ending with "\n" only if it did.
write_lines() {
	local f=$1 tmp=$1.kata-ts.tmp
	{
		if [[ ${#lines[@]} -gt 0 ]]; then
			local IFS=$'\n'
			printf '%s' "${lines[*]}"
			if [[ $final_newline == 1 ]]; then printf '\n'; fi
		fi
	} >"$tmp"
	chmod --reference="$f" "$tmp" 2>/dev/null || true
	mv -f "$tmp" "$f"
}

# Index of the first table header: keys before it are top-level.
first_header() {
	local i
	for i in "${!lines[@]}"; do
		if [[ ${lines[$i]} =~ ^[[:space:]]*\[ ]]; then
			echo "$i"
			return
		fi
	done
	echo "${#lines[@]}"
}

# containerd config version: top-level `version = N`; none means 1.
config_version() {
	local i end
	end=$(first_header)
	for ((i = 0; i < end; i++)); do
		if [[ ${lines[$i]} =~ ^[[:space:]]*version[[:space:]]*=[[:space:]]*([0-9]+) ]]; then
			echo "${BASH_REMATCH[1]}"
			return
		fi
	done
	echo 1
}

# The runtime entry (reference: kata-deploy's kata-clh entry, with our type and binary).
runtime_entry() {
	local table="plugins.$1.containerd.runtimes.$HANDLER"
	cat <<EOF
[$table]
  runtime_type = "$RUNTIME_TYPE"
  runtime_path = "$SHIM_PATH"
  privileged_without_host_devices = true
  pod_annotations = ["io.katacontainers.*"]
  [$table.options]
    ConfigPath = "$KATA_CLH_CONFIG"
EOF
}

# Lines of `lines` that define our runtime table outside our own block.
foreign_definition() {
	local i inside=0
	for i in "${!lines[@]}"; do
		if [[ ${lines[$i]} == "$BLOCK_BEGIN" ]]; then inside=1; fi
		if [[ $inside == 0 && ${lines[$i]} =~ runtimes\.[\"\']?${HANDLER}[\"\']?([].[:space:]]|$) ]]; then
			echo "line $((i + 1)): ${lines[$i]}"
		fi
		if [[ ${lines[$i]} == "$BLOCK_END" ]]; then inside=0; fi
	done
	return 0
}

# 0 when config.toml (outside our block) configures any CRI runtime itself.
defines_runtimes() {
	local i inside=0
	for i in "${!lines[@]}"; do
		if [[ ${lines[$i]} == "$BLOCK_BEGIN" ]]; then inside=1; fi
		if [[ $inside == 0 && ${lines[$i]} =~ ^[^#]*(^|[^_[:alnum:]])runtimes[[:space:]]*[.=] ]]; then return 0; fi
		if [[ ${lines[$i]} == "$BLOCK_END" ]]; then inside=0; fi
	done
	return 1
}

# Removes our marker block and the blank line install put before it from `lines`; sets
# `stripped` to 1 if there was one.
strip_block() {
	local i out=() inside=0
	stripped=0
	for i in "${!lines[@]}"; do
		if [[ ${lines[$i]} == "$BLOCK_BEGIN" ]]; then
			inside=1
			stripped=1
			if [[ ${#out[@]} -gt 0 && -z ${out[-1]} ]]; then unset 'out[-1]'; fi
			continue
		fi
		if [[ $inside == 1 ]]; then
			if [[ ${lines[$i]} == "$BLOCK_END" ]]; then inside=0; fi
			continue
		fi
		out+=("${lines[$i]}")
	done
	lines=("${out[@]}")
}

# ---- containerd 1.x (config version 1/2): our block in config.toml itself ---------------------
install_inline() {
	local plugin=$1 block=()
	read_lines "$config_file"
	# containerd 1.x replaces its built-in runtimes map (runc, the default) with the tables in the
	# file: one entry alone would leave CRI without its default runtime and fail to load. Keep runc.
	local keep_runc=()
	if ! defines_runtimes; then
		keep_runc=("[plugins.$plugin.containerd.runtimes.runc]" '  runtime_type = "io.containerd.runc.v2"')
	fi
	mapfile -t block < <(printf '%s\n' "$BLOCK_BEGIN"; runtime_entry "$plugin"; printf '%s\n' "${keep_runc[@]}" "$BLOCK_END")
	if [[ ! -e $backup_file ]]; then
		cp -p "$config_file" "$backup_file"
		state[backup]=$backup_file
		log "backed up $config_file to $backup_file"
	fi
	strip_block
	if [[ $stripped == 1 ]]; then log "replacing the existing kata-ts-deploy entry in $config_file"; fi
	# Appended after one blank line; the file then ends with a newline.
	lines+=("" "${block[@]}")
	final_newline=1
	write_lines "$config_file"
	state[mode]=inline
	log "registered runtime $HANDLER in $config_file (plugin $plugin)"
}

cleanup_inline() {
	read_lines "$config_file"
	if [[ -f $backup_file ]]; then
		local orig_lines orig_nl
		strip_block
		orig_lines=("${lines[@]}")
		orig_nl=$final_newline
		read_lines "$backup_file"
		if [[ ${#orig_lines[@]} -eq ${#lines[@]} ]] && [[ $(printf '%s\n' "${orig_lines[@]}") == "$(printf '%s\n' "${lines[@]}")" ]]; then
			mv -f "$backup_file" "$config_file"
			log "restored $config_file from $backup_file"
			return
		fi
		# Someone else edited config.toml since install: keep their edits, remove only ours.
		lines=("${orig_lines[@]}")
		final_newline=$orig_nl
		if [[ $stripped == 1 ]]; then write_lines "$config_file"; fi
		log "warning: $config_file changed since install; removed only the $HANDLER entry, kept $backup_file"
		return
	fi
	strip_block
	if [[ $stripped == 1 ]]; then
		final_newline=1
		write_lines "$config_file"
		log "removed runtime $HANDLER from $config_file"
	fi
}

# ---- containerd 2.x (config version 3): a drop-in named in `imports` ----------------------------
# Finds the top-level `imports = [...]`: sets imports_start / imports_end (line indexes) and
# imports_close (column of its closing "]" in the end line); returns 1 when there is none.
find_imports() {
	local i end line rest col
	end=$(first_header)
	for ((i = 0; i < end; i++)); do
		[[ ${lines[$i]} =~ ^[[:space:]]*imports[[:space:]]*= ]] || continue
		imports_start=$i
		line=${lines[$i]}
		rest=${line#*\[}
		col=$((${#line} - ${#rest})) # just past "["
		for ((; i < ${#lines[@]}; i++)); do
			line=${lines[$i]}
			[[ $i -eq $imports_start ]] || col=0
			rest=${line:col}
			if [[ $rest == *\]* ]]; then
				rest=${rest%%\]*}
				imports_end=$i
				imports_close=$((col + ${#rest}))
				return 0
			fi
		done
		die "$config_file: top-level 'imports' array on line $((imports_start + 1)) is not closed"
	done
	return 1
}

# The text of the imports array between "[" and "]" (comments dropped), for inspection.
imports_body() {
	local i text='' line
	for ((i = imports_start; i <= imports_end; i++)); do
		line=${lines[$i]}
		if [[ $i -eq $imports_end ]]; then line=${line:0:imports_close}; fi
		if [[ $i -eq $imports_start ]]; then line=${line#*\[}; fi
		text+="${line%%#*} "
	done
	printf '%s' "$text"
}

install_dropin() {
	local dropin body trimmed insert i
	dropin=$(h "$DROPIN_PATH")
	make_dirs "$(dirname "$DROPIN_PATH")"
	{
		echo "# Written by kata-ts-deploy.sh install; removed by kata-ts-deploy.sh cleanup."
		echo "version = 3"
		echo
		runtime_entry '"io.containerd.cri.v1.runtime"'
	} >"$dropin.tmp"
	mv -f "$dropin.tmp" "$dropin"
	state[dropin]=$DROPIN_PATH
	state[mode]=dropin

	read_lines "$config_file"
	local found
	found=$(foreign_definition)
	[[ -z $found ]] || log "warning: $config_file itself defines runtime $HANDLER ($found); the drop-in's keys override it"
	if find_imports; then
		body=$(imports_body)
		if [[ $body == *"\"$DROPIN_PATH\""* || $body == *"'$DROPIN_PATH'"* ]]; then
			log "$config_file already imports $DROPIN_PATH"
			state[imports]=${state[imports]:-present}
		else
			trimmed=${body%"${body##*[![:space:]]}"}
			if [[ -z $trimmed || $trimmed == *, ]]; then insert="\"$DROPIN_PATH\""; else insert=", \"$DROPIN_PATH\""; fi
			i=$imports_end
			lines[i]="${lines[i]:0:imports_close}$insert${lines[i]:imports_close}"
			write_lines "$config_file"
			state[imports]=appended
			state[imports_insert]=$insert
			log "added $DROPIN_PATH to the imports of $config_file"
		fi
	else
		# No imports yet: one new line right after `version = 3` (top-level keys come first).
		for i in "${!lines[@]}"; do
			if [[ ${lines[$i]} =~ ^[[:space:]]*version[[:space:]]*= ]]; then break; fi
		done
		lines=("${lines[@]:0:i+1}" "imports = [\"$DROPIN_PATH\"]" "${lines[@]:i+1}")
		write_lines "$config_file"
		state[imports]=line
		log "added imports = [\"$DROPIN_PATH\"] to $config_file"
	fi
	log "registered runtime $HANDLER in $dropin (plugin io.containerd.cri.v1.runtime)"
}

cleanup_dropin() {
	local i line insert
	read_lines "$config_file"
	case ${state[imports]:-} in
	line)
		for i in "${!lines[@]}"; do
			if [[ ${lines[$i]} == "imports = [\"$DROPIN_PATH\"]" ]]; then
				lines=("${lines[@]:0:i}" "${lines[@]:i+1}")
				write_lines "$config_file"
				log "removed the imports line from $config_file"
				break
			fi
		done
		;;
	appended)
		insert=${state[imports_insert]}
		if find_imports; then
			i=$imports_end
			line=${lines[i]}
			if [[ ${line:0:imports_close} == *"$insert" ]]; then
				lines[i]="${line:0:imports_close-${#insert}}${line:imports_close}"
			else
				# Entries were added after ours: take ours out wherever it is.
				for ((i = imports_start; i <= imports_end; i++)); do
					line=${lines[i]}
					for insert in ", \"$DROPIN_PATH\"" "\"$DROPIN_PATH\", " "\"$DROPIN_PATH\""; do
						if [[ $line == *"$insert"* ]]; then
							lines[i]=${line/"$insert"/}
							break 2
						fi
					done
				done
			fi
			write_lines "$config_file"
			log "removed $DROPIN_PATH from the imports of $config_file"
		fi
		;;
	esac
	rm -f "$(h "$DROPIN_PATH")"
}

# ---- steps --------------------------------------------------------------------------------------
install_shim() {
	local dst tmp
	make_dirs "$(dirname "$SHIM_PATH")"
	dst=$(h "$SHIM_PATH")
	tmp=$(h "$(dirname "$SHIM_PATH")/.$SHIM_NAME.tmp")
	# Copy then rename: running shims keep their inode; an in-place write would fail (ETXTBSY).
	cp "$shim_src" "$tmp"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$dst"
	state[shim]=$SHIM_PATH
	log "installed $SHIM_PATH"
}

have_kube() { [[ -n ${NODE_NAME:-} ]] && command -v kubectl >/dev/null 2>&1; }

label_node() {
	have_kube || { log "NODE_NAME or kubectl missing: not labelling the node"; return 0; }
	local current
	current=$(kubectl get node "$NODE_NAME" -o "jsonpath={.metadata.labels.katacontainers\.io/kata-runtime}") ||
		die "cannot read node $NODE_NAME with kubectl"
	if [[ $current == true ]]; then
		state[label]=${state[label]:-present}
		return 0
	fi
	kubectl label node "$NODE_NAME" "$NODE_LABEL=true" --overwrite >/dev/null || die "cannot label node $NODE_NAME"
	state[label]=added
	log "labelled node $NODE_NAME $NODE_LABEL=true"
}

unlabel_node() {
	[[ ${state[label]:-} == added ]] || return 0
	have_kube || { log "NODE_NAME or kubectl missing: leaving label $NODE_LABEL"; return 0; }
	# kata-deploy's RuntimeClasses select on the same label: keep it while Kata is installed.
	if [[ -e $(h "$KATA_PREFIX/bin/containerd-shim-kata-v2") ]]; then
		log "Kata is still installed: leaving label $NODE_LABEL on node $NODE_NAME"
		return 0
	fi
	kubectl label node "$NODE_NAME" "$NODE_LABEL-" >/dev/null || die "cannot remove label $NODE_LABEL from node $NODE_NAME"
	log "removed label $NODE_LABEL from node $NODE_NAME"
}

restart_containerd() {
	if [[ $restart != true ]]; then
		log "not restarting containerd (set KATA_TS_RESTART_CONTAINERD=true or --restart-containerd)"
		return 0
	fi
	nsenter --target 1 --mount systemctl restart containerd || die "restarting containerd on the host failed"
	log "restarted containerd"
}

do_install() {
	[[ -f $(h "$KATA_CLH_CONFIG") ]] ||
		die "$KATA_CLH_CONFIG not found under host root $host_root: kata-deploy must install Kata first"
	[[ -f $config_file ]] ||
		die "containerd config $config_file not found (kata-deploy creates it; or run 'containerd config default > $containerd_config' on the node)"
	[[ -f $shim_src && -x $shim_src ]] || die "shim '$shim_src' is missing or not executable (set KATA_TS_SHIM)"
	# Everything that can refuse does so before anything on the host changes.
	local version found
	read_lines "$config_file"
	version=$(config_version)
	[[ $version == [123] ]] || die "$config_file has config version $version; kata-ts-deploy knows versions 1, 2 and 3"
	if [[ $version != 3 ]]; then
		found=$(foreign_definition)
		[[ -z $found ]] || die "$config_file already defines runtime $HANDLER outside kata-ts-deploy's block ($found); remove it first"
	fi
	load_state
	install_shim
	save_state
	case $version in
	3) install_dropin ;;
	2) install_inline '"io.containerd.grpc.v1.cri"' ;;
	1) install_inline cri ;;
	esac
	save_state
	restart_containerd
	label_node
	save_state
	log "install done"
}

do_cleanup() {
	load_state
	if [[ -f $config_file ]]; then
		case ${state[mode]:-} in
		dropin) cleanup_dropin ;;
		inline) cleanup_inline ;;
		'') if [[ -f $backup_file ]]; then cleanup_inline; fi ;; # no state: a backup means an inline install
		esac
	fi
	rm -f "$(h "$SHIM_PATH")"
	unlabel_node
	restart_containerd
	local d dirs=()
	read -r -a dirs <<<"${state[created_dirs]:-}"
	for ((d = ${#dirs[@]} - 1; d >= 0; d--)); do
		rmdir "$(h "${dirs[d]}")" 2>/dev/null || true
	done
	rm -f "$(h "$STATE_PATH")"
	log "cleanup done"
}

case $action in
install) do_install ;;
cleanup) do_cleanup ;;
esac
