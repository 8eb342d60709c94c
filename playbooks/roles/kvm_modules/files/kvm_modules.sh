#!/bin/sh
# fleet kvm_modules role helper. "state": one JSON line, per module: loaded srcversion (or ""
# when the module is not loaded: "-"), the srcversion modprobe would load now (modinfo).
# "reload": refuse when a VM runs (anything holding /dev/kvm or a module reference), else
# unload the vendor modules and kvm and load kvm plus the vendor modules that were loaded.
set -u
MODULES="kvm kvm_amd kvm_intel"

loaded_srcversion() {
    if [ -e "/sys/module/$1/initstate" ]; then cat "/sys/module/$1/srcversion" 2>/dev/null || true
    else echo "-"; fi
}

state() {
    sep=""
    stale=false
    printf '{"modules": {'
    for m in $MODULES; do
        loaded=$(loaded_srcversion "$m")
        resolved=$(modinfo -F srcversion "$m" 2>/dev/null || true)
        if [ "$m" = kvm ] && [ "$loaded" = "-" ]; then stale=true; fi
        if [ "$loaded" != "-" ] && [ "$loaded" != "$resolved" ]; then stale=true; fi
        printf '%s"%s": {"loaded": "%s", "resolved": "%s"}' "$sep" "$m" "$loaded" "$resolved"
        sep=", "
    done
    printf '}, "reload_needed": %s}\n' "$stale"
}

users() {
    found=""
    for fd in /proc/[0-9]*/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = /dev/kvm ] || continue
        pid=${fd#/proc/}; pid=${pid%%/*}
        case " $found " in *"(pid $pid)"*) continue ;; esac
        found="$found $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid)"
    done
    vendors=0
    for m in kvm_amd kvm_intel; do
        [ -e "/sys/module/$m/initstate" ] || continue
        vendors=$((vendors + 1))
        count=$(cat "/sys/module/$m/refcnt")
        [ "$count" = 0 ] || found="$found $m refcnt $count"
    done
    if [ -e /sys/module/kvm/initstate ]; then
        count=$(cat /sys/module/kvm/refcnt)
        if [ "$count" -gt "$vendors" ]; then
            holders=$(ls /sys/module/kvm/holders 2>/dev/null | tr '\n' ' ')
            found="$found kvm refcnt $count (holders: ${holders:-none})"
        fi
    fi
    echo "$found"
}

reload() {
    busy=$(users)
    if [ -n "$busy" ]; then
        # on stdout: the script module runs with a tty that mixes in ssh's own stderr
        echo "refusing to reload kvm: in use by$busy (stop the VMs, then provision again)"
        exit 3
    fi
    vendors=""
    for m in kvm_amd kvm_intel; do
        [ -e "/sys/module/$m/initstate" ] && vendors="$vendors $m"
    done
    for m in $vendors kvm; do
        if [ -e "/sys/module/$m/initstate" ]; then modprobe -r "$m" 2>&1 || exit 4; fi
    done
    modprobe kvm 2>&1 || exit 5
    for m in $vendors; do modprobe "$m" 2>&1 || exit 5; done
}

case "${1:-}" in
    state) state ;;
    reload) reload ;;
    *) echo "usage: kvm_modules.sh state|reload" >&2; exit 2 ;;
esac
