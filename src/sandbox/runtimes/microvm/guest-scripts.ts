/*
 * The shell the guest agent runs (busybox sh in the initramfs) to lay out a sandbox inside its
 * microvm. Everything variable reaches the script as positional arguments, never spliced into
 * its text, so names and paths cannot inject commands.
 *
 * Layout in the guest: /run/kubicle/etc (hosts, resolv.conf, hostname), /run/kubicle/volumes/<name>,
 * /run/kubicle/scratch (the sandbox's scratch disk: disk-backed emptyDirs), /run/kubicle/c/<container>
 * (the container's root filesystem, from its own disk).
 */

/**
 * Finds a disk by its serial number: `$(disk SERIAL)`. Shell built-ins only: every process forked
 * costs ~10 ms under TCG, and a sandbox's set-up is on its pod's start path.
 */
const findDisk = 'disk() { for b in /sys/block/vd*; do s=; read -r s < "$b/serial" 2>/dev/null; [ "$s" = "$1" ] && echo "/dev/${b##*/}" && return; done; echo "no disk $1" >&2; exit 1; }';

/**
 * Args: scratch disk serial, hostname, the network (MAC, address/prefix, gateway; empty for none),
 * then /run/kubicle/etc's files as name and content pairs. Makes the guest the sandbox's: its
 * name, its interface, its /etc files, its scratch disk and directories. The disk's blocks are
 * dropped from the cache first: a guest resumed from a template cached what the template's disk
 * held when its kernel probed it.
 */
export const prepareSandbox = `${findDisk}
set -e
hostname "$2"
if [ -n "$3" ]; then
  ip link set eth0 address "$3"
  ip addr add "$4" dev eth0
  ip link set eth0 up
  ip route add default via "$5"
fi
mkdir -p /run/kubicle/etc /run/kubicle/volumes /run/kubicle/c /run/kubicle/scratch
dev=$(disk "$1")
shift 5
while [ $# -ge 2 ]; do printf %s "$2" > "/run/kubicle/etc/$1"; shift 2; done
blockdev --flushbufs "$dev"
mount -o noinit_itable "$dev" /run/kubicle/scratch`;

/** Args: name, medium (disk|memory), size limit in bytes (0: none). An emptyDir. */
export const makeDirVolume = `set -e
v=/run/kubicle/volumes/$1
mkdir -p "$v"
if [ "$2" = memory ]; then
  if [ "$3" != 0 ]; then mount -t tmpfs -o "mode=1777,size=$3" tmpfs "$v"; else mount -t tmpfs -o mode=1777 tmpfs "$v"; fi
else
  mkdir -p "/run/kubicle/scratch/$1" && chmod 1777 "/run/kubicle/scratch/$1" && mount --bind "/run/kubicle/scratch/$1" "$v"
fi`;

/**
 * Args: name. Replaces a files volume's content with the tar on stdin: unpacked beside it, then
 * swapped in by rename, so a reader sees the old content or the new, as with runc's atomic writer.
 */
export const replaceFilesVolume = `set -e
v=/run/kubicle/volumes/$1
mkdir -p "$v"
rm -rf "$v.new" && mkdir -p "$v.new" && tar -x -C "$v.new"
for f in "$v.new"/* "$v.new"/..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; mv -f "$f" "$v/" 2>/dev/null || { rm -rf "$v/\${f##*/}"; mv "$f" "$v/"; }; done
rm -rf "$v.new"`;

/** The cgroup directory a container's processes run in. */
export const containerCgroup = (name: string) => `/sys/fs/cgroup/kubicle-${name}`;

/**
 * Args: container name. Ends what is left of a container's last run (processes it left behind,
 * by its cgroup) and unmounts its root, so a new image can be written to its disk.
 */
export const releaseContainer = `g=/sys/fs/cgroup/kubicle-$1
if [ -d "$g" ]; then
  echo 1 > "$g/cgroup.kill"
  i=0; while ! rmdir "$g" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
fi
r=/run/kubicle/c/$1
if [ -d "$r" ]; then umount -l "$r/dev/pts" "$r/dev" "$r/proc" "$r/sys" 2>/dev/null; for m in $(awk -v r="$r" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done; fi
exit 0`;

/**
 * Args: container name, disk serial, memory.max and cpu.max for its cgroup (cgroup v2 syntax:
 * "max" for none), then volume mounts as triples: source dir, container path, ro|rw. A fresh
 * cgroup per run, so its OOM count is the run's own.
 */
export const mountContainer = `${findDisk}
set -e
name=$1; dev=$(disk "$2")
g=/sys/fs/cgroup/kubicle-$name
mkdir "$g"
echo "$3" > "$g/memory.max"
echo "$4" > "$g/cpu.max"
shift 4
r=/run/kubicle/c/$name
mkdir -p "$r"
blockdev --flushbufs "$dev"
mount -o noinit_itable "$dev" "$r"
mkdir -p "$r/proc" "$r/sys" "$r/dev" "$r/etc" "$r/tmp"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount -t tmpfs -o mode=755 dev "$r/dev"
cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "$r/dev/"
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount --bind /dev/pts "$r/dev/pts"
ln -sf pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
rm -f "$r/etc/hosts" "$r/etc/resolv.conf" "$r/etc/hostname"
touch "$r/etc/hosts" "$r/etc/resolv.conf" "$r/etc/hostname"
for f in hosts resolv.conf hostname; do mount --bind "/run/kubicle/etc/$f" "$r/etc/$f"; done
while [ $# -ge 3 ]; do
  src=$1; dst=$r$2; mode=$3; shift 3
  if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || touch "$dst"; fi
  mount --bind "$src" "$dst"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dst"; fi
done`;
