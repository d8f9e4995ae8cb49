#!/usr/bin/env bash
# Builds what a microvm guest boots (ADR 0009) into build/guest/, idempotently:
#   vmlinux         Debian's linux-image-amd64 kernel, decompressed from its bzImage for PVH boot
#   initramfs.cpio.gz  busybox, the kernel modules the guest needs, /init and the guest agent
#   kernel-release  the kernel's version string (what `uname -r` shows in a microvm pod)
set -euo pipefail
cd "$(dirname "$0")/.."
src=src/sandbox/runtimes/microvm/guest
out=build/guest
stamp="$out/.built"
if [ -f "$stamp" ] && [ -z "$(find "$src" "$0" -newer "$stamp" -print -quit)" ]; then exit 0; fi
echo "setup: building the microvm guest" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The kernel package is downloaded, not installed: the host's own boot is not touched.
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "build-guest: no linux-image-amd64 in the apt lists" >&2; exit 1; }
(cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || { apt-get update -qq >&2 && (cd "$work" && apt-get download "$pkg" >&2); }
dpkg-deb -x "$work"/*.deb "$work/pkg"
release=$(basename "$(ls -d "$work"/pkg/lib/modules/*)")
vmlinuz="$work/pkg/boot/vmlinuz-$release"
# The bzImage holds an xz stream (Debian's CONFIG_KERNEL_XZ) after its set-up code: find it, inflate it.
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
xz -dc --single-stream < <(tail -c +$((offset + 1)) "$vmlinuz" 2>/dev/null || true) > "$work/vmlinux"
file "$work/vmlinux" | grep -q 'ELF 64-bit' || { echo "build-guest: no ELF kernel in $vmlinuz" >&2; exit 1; }

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,lib/modules}
cp /usr/bin/busybox "$root/bin/busybox"
for applet in $(busybox --list); do [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"; done
# Modules in load order, each after what it depends on (from each module's own depends= field).
mods="$work/pkg/lib/modules/$release/kernel"
declare -A seen=()
order=()
add() {
  local m=$1 f
  [ -n "${seen[$m]:-}" ] && return
  seen[$m]=1
  f=$(find "$mods" -name "$m.ko" | head -1)
  [ -n "$f" ] || { echo "build-guest: module $m not found" >&2; exit 1; }
  for d in $(strings "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do add "$d"; done
  cp "$f" "$root/lib/modules/"
  order+=("$m")
}
for m in crc32c_generic virtio_mmio virtio_console virtio_blk virtio_net ext4 overlay erofs; do add "$m"; done
printf '%s\n' "${order[@]}" > "$root/lib/modules/order"
gcc -static -O2 -Wall -o "$root/bin/kubicle-guest-agent" "$src/agent.c" 2>"$work/gcc.log" || { cat "$work/gcc.log" >&2; exit 1; }
install -m 0755 "$src/init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.cpio.gz"

mv "$work/vmlinux" "$out/vmlinux"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
echo "$release" > "$out/kernel-release"
touch "$stamp"
