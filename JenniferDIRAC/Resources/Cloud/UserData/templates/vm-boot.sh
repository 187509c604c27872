#!/bin/bash
# JenniferDIRAC pilot VM boot steps, run once as root by cloud-init (runcmd).
#
# Sets up CVMFS, runs the DIRAC pilot wrapper as the non-root pilot user with PILOT_UUID and
# DIRAC_PILOT_STAMP exported and a hard time limit, and reports to the VM endpoint: boot log,
# heartbeats, pilot log and a HEPiX-style shutdown message. The VM powers off afterwards
# (cloud-init power_state). Settings come from /etc/jdirac/vm.env (root only: holds the VM's
# endpoint token) and /etc/jdirac/pilot.env (the pilot's environment).
set -u
umask 077

. /etc/jdirac/vm.env

BOOT_LOG=/var/log/jdirac-boot.log
PILOT_LOG=/var/log/jdirac-pilot.log
WORK_DIR=/var/lib/jdirac/pilot
HEADER_FILE=/etc/jdirac/endpoint.header
START=$(date +%s)

exec > >(tee -a "$BOOT_LOG") 2>&1

log() { printf '%s jdirac-boot: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

# The token goes to curl through a root-only header file, never on a command line.
if [ -n "${JDIRAC_ENDPOINT_URL}" ]; then
    printf 'Authorization: Bearer %s\n' "${JDIRAC_ENDPOINT_TOKEN}" > "$HEADER_FILE"
    chmod 600 "$HEADER_FILE"
fi

# Bootstrap: user data holds a one-time token only. The first fetch gets the pilot wrapper (with
# its proxy) and this VM's report token; a VM that cannot fetch it powers off (cloud-init
# power_state), which the VMDirector counts as a failed boot.
bootstrap() {
    local out=/var/lib/jdirac/bootstrap.out tls=()
    [ -n "${JDIRAC_ENDPOINT_CAPATH}" ] && tls=(--capath "${JDIRAC_ENDPOINT_CAPATH}")
    if ! curl --silent --show-error --fail --connect-timeout 10 --max-time 120 --retry 3 --retry-delay 5 \
        --retry-connrefused "${tls[@]}" -H @"$HEADER_FILE" -o "$out" \
        "${JDIRAC_ENDPOINT_URL%/}/vm/v1/${JDIRAC_VM_NAME}/bootstrap"; then
        rm -f "$out"
        return 1
    fi
    local first
    first=$(head -n 1 "$out")
    case $first in
        JDIRAC_ENDPOINT_TOKEN=*) JDIRAC_ENDPOINT_TOKEN=${first#JDIRAC_ENDPOINT_TOKEN=} ;;
        *) rm -f "$out"; return 1 ;;
    esac
    [[ $JDIRAC_ENDPOINT_TOKEN =~ ^[A-Za-z0-9._-]+$ ]] || { rm -f "$out"; return 1; }
    printf 'Authorization: Bearer %s\n' "${JDIRAC_ENDPOINT_TOKEN}" > "$HEADER_FILE"
    tail -n +2 "$out" > /var/lib/jdirac/pilot-wrapper.sh
    rm -f "$out"
}

# Defence in depth before the pilot starts: user data stays readable for the VM's whole life
# through the metadata service and cloud-init's local copies. Only root may reach the first.
# TCP gets a reset: the ICMP error a plain reject sends leaves a connect() waiting for its timeout.
# iptables' "! --uid-owner" also matches packets without a socket, such as that reset itself,
# hence --socket-exists (nftables' skuid never matches them).
block_metadata() {
    local address=${JDIRAC_METADATA_ADDRESS:-169.254.169.254}
    if command -v nft > /dev/null 2>&1 \
        && nft -f - <<EOF_NFT 2> /dev/null
table inet jdirac_metadata {
    chain output {
        type filter hook output priority 0; policy accept;
        ip daddr ${address} meta skuid != 0 meta l4proto tcp reject with tcp reset
        ip daddr ${address} meta skuid != 0 reject
    }
}
EOF_NFT
    then
        log "metadata service ${address} blocked for every uid but root (nftables)"
    elif command -v iptables > /dev/null 2>&1 \
        && iptables -I OUTPUT -d "${address}" -m owner --socket-exists ! --uid-owner 0 -j REJECT 2> /dev/null \
        && iptables -I OUTPUT -d "${address}" -p tcp -m owner --socket-exists ! --uid-owner 0 \
            -j REJECT --reject-with tcp-reset 2> /dev/null; then
        log "metadata service ${address} blocked for every uid but root (iptables)"
    else
        log "WARNING: neither nftables nor iptables could block the metadata service ${address}"
    fi
}

remove_user_data_copies() {
    rm -f /var/lib/cloud/instance/user-data.txt* /var/lib/cloud/instance/cloud-config.txt \
        /var/lib/cloud/instance/obj.pkl /run/cloud-init/instance-data-sensitive.json
    find /var/lib/cloud/instance/scripts -type f -delete 2> /dev/null
    local drive
    for drive in $(findmnt -n -o TARGET -S LABEL=config-2 2> /dev/null) $(findmnt -n -o TARGET -S LABEL=CONFIG-2 2> /dev/null); do
        umount "$drive" 2> /dev/null || log "WARNING: could not unmount the config drive at ${drive}"
    done
    log "removed cloud-init's local copies of the user data"
}

endpoint() {  # endpoint METHOD PATH [curl options...]
    [ -n "${JDIRAC_ENDPOINT_URL}" ] || return 0
    local method=$1 path=$2
    shift 2
    local tls=()
    [ -n "${JDIRAC_ENDPOINT_CAPATH}" ] && tls=(--capath "${JDIRAC_ENDPOINT_CAPATH}")
    # Bounded: an unreachable endpoint delays the pilot by seconds, never blocks it.
    curl --silent --show-error --fail --connect-timeout 10 --max-time 60 --retry 2 --retry-delay 3 \
        --retry-connrefused \
        "${tls[@]}" -H @"$HEADER_FILE" -X "$method" "$@" \
        "${JDIRAC_ENDPOINT_URL%/}/vm/v1/${JDIRAC_VM_NAME}/${path}" > /dev/null
}

upload_log() {  # upload_log NAME FILE...: the tail of the files, concatenated
    local name=$1
    shift
    local existing=()
    for file in "$@"; do [ -r "$file" ] && existing+=("$file"); done
    [ ${#existing[@]} -gt 0 ] || return 0
    # Through a file, not a pipe: curl can resend a file when it retries.
    local upload=/var/lib/jdirac/upload.${name}
    cat "${existing[@]}" | tail -c "${JDIRAC_LOG_UPLOAD_BYTES}" > "$upload"
    endpoint PUT "logs/${name}" -H 'Content-Type: text/plain' --data-binary @"$upload" \
        || log "could not upload ${name} log"
    rm -f "$upload"
}

shutdown_message() {  # shutdown_message CODE TEXT
    log "shutdown message: $1 $2"
    printf '%s %s\n' "$1" "$2" > /var/lib/jdirac/shutdown_message
    endpoint PUT shutdown_message -H 'Content-Type: text/plain' --data-binary "$1 $2" \
        || log "could not send the shutdown message"
}

heartbeats() {
    local sleeper=""
    trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' TERM
    while true; do
        sleep "${JDIRAC_HEARTBEAT_SECONDS}" &
        sleeper=$!
        wait "$sleeper"
        heartbeat
    done
}

cpu_seconds() {  # CPU seconds the kernel counted on all cores since boot: user, nice, system, irq, softirq
    awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" \
        '$1 == "cpu" { printf "%d\n", ($2 + $3 + $4 + $7 + $8) / hz; exit }' "${1:-/proc/stat}"
}

heartbeat() {  # body: /proc/loadavg, then the optional "cpu=<seconds>" that accounting reads
    endpoint POST heartbeat -H 'Content-Type: text/plain' \
        --data-binary "$(cat /proc/loadavg) cpu=$(cpu_seconds)" || log "heartbeat failed"
}

finish() {  # finish CODE TEXT: report and end; cloud-init powers the VM off afterwards
    heartbeat  # the final CPU seconds
    shutdown_message "$1" "$2"
    upload_log pilot "$PILOT_LOG"
    upload_log boot /var/log/cloud-init-output.log "$BOOT_LOG"
    [ -n "${HEARTBEAT_PID:-}" ] && kill "$HEARTBEAT_PID" 2>/dev/null
    log "done"
    exit 0
}

# A failed fetch is reported with the bootstrap token, which the endpoint accepts for code 510
# only (VMLifecycle.BOOTSTRAP_FAILED_CODE): the VMDirector aborts the pilot and counts a failed boot.
if [ "${JDIRAC_BOOTSTRAP:-no}" = yes ]; then
    if ! bootstrap; then
        log "could not fetch the bootstrap from ${JDIRAC_ENDPOINT_URL}: powering off"
        shutdown_message 510 "Problem detected with environment/VM/contextualization provided by the site: bootstrap fetch failed"
        exit 1
    fi
    log "bootstrap fetched"
fi

log "VM ${JDIRAC_VM_NAME} (CE ${JDIRAC_CE_NAME}, profile ${JDIRAC_PROFILE}) starting"

# Hard lifetime, part 1: the system powers itself off even if everything below hangs.
if [ "${JDIRAC_HARD_POWEROFF}" = yes ] && [ -d /run/systemd/system ] && command -v shutdown > /dev/null; then
    shutdown -P "+$(( (JDIRAC_MAX_LIFETIME + 59) / 60 ))" "JenniferDIRAC VM lifetime reached" \
        || log "could not schedule the lifetime power-off"
fi

# The first heartbeat says the VM is up; the others run in the background, their output going
# straight to the log file so that they never hold cloud-init's output pipe open.
heartbeat
heartbeats >> "$BOOT_LOG" 2>&1 &
HEARTBEAT_PID=$!
upload_log boot /var/log/cloud-init-output.log "$BOOT_LOG"

if [ -n "${JDIRAC_CVMFS_REPOSITORIES}" ]; then
    if ! command -v cvmfs_config > /dev/null; then
        finish 500 "Problem detected with environment/VM/contextualization provided by the site: no CVMFS client"
    fi
    cvmfs_config setup || log "cvmfs_config setup failed"
    for repository in ${JDIRAC_CVMFS_REPOSITORIES}; do
        if ! cvmfs_config probe "$repository"; then
            finish 500 "Problem detected with environment/VM/contextualization provided by the site: CVMFS ${repository} not mounted"
        fi
    done
fi

if ! id -u "${JDIRAC_PILOT_USER}" > /dev/null 2>&1; then
    finish 500 "Problem detected with environment/VM/contextualization provided by the site: no user ${JDIRAC_PILOT_USER}"
fi
block_metadata
remove_user_data_copies
chmod 755 /var/lib/jdirac
install -d -o "${JDIRAC_PILOT_USER}" -m 700 "$WORK_DIR"
install -o "${JDIRAC_PILOT_USER}" -m 700 /var/lib/jdirac/pilot-wrapper.sh "$WORK_DIR/pilot-wrapper.sh"

# Hard lifetime, part 2: the pilot is stopped before the VM's lifetime ends, leaving time to report.
pilot_seconds=$(( JDIRAC_MAX_LIFETIME - ($(date +%s) - START) - 300 ))
[ "$pilot_seconds" -ge 60 ] || pilot_seconds=60
log "running the pilot as ${JDIRAC_PILOT_USER} for at most ${pilot_seconds} s"
cd "$WORK_DIR"
timeout --kill-after=60 "$pilot_seconds" \
    runuser -u "${JDIRAC_PILOT_USER}" -- env -i HOME="$WORK_DIR" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c 'set -a; . /etc/jdirac/pilot.env; set +a; cd "$HOME" && exec /bin/bash ./pilot-wrapper.sh' \
    > "$PILOT_LOG" 2>&1
rc=$?
log "pilot wrapper ended with exit code $rc"

case $rc in
    0) finish 200 "Intended work completed ok" ;;
    124 | 137) finish 100 "Shutdown as requested by the VM's host/hypervisor: lifetime reached" ;;
    *) finish 600 "Grid-wide problem with job agent or application within VM: pilot exit code $rc" ;;
esac
