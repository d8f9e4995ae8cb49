#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: system packages, npm packages, build.
# Every entry point (./kubicle, npm test, .ci/run) calls this first; it does nothing when
# everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v openssl >/dev/null || need+=(openssl)
# The host agent's parts: the runc runtime, pod networks, the embedded image registry and the
# busybox that small images and test pods are built from.
command -v runc >/dev/null || need+=(runc)
command -v conmon >/dev/null || need+=(conmon)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v setfattr >/dev/null || need+=(attr)
command -v docker-registry >/dev/null || need+=(docker-registry)
# socat carries attach input to conmon's SOCK_SEQPACKET attach socket (sandbox/runtimes/runc/attach.ts).
command -v socat >/dev/null || need+=(socat)
# Not run by Kubicle: bench/network measures the built-in load balancer relay beside it (ADR 0008).
command -v haproxy >/dev/null || need+=(haproxy)
# The microvm runtime: QEMU, and what scripts/build-guest.sh makes the guest with (ADR 0009).
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

bash scripts/build-guest.sh

stamp=node_modules/.kubicle-installed
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "setup: npm install" >&2
  npm install --no-audit --no-fund >&2
  touch "$stamp"
fi

if [ ! -f dist/.built ] || [ -n "$(find src test bench tsconfig.json -newer dist/.built -print -quit 2>/dev/null)" ]; then
  echo "setup: build" >&2
  npx tsc -p tsconfig.json >&2
  touch dist/.built
fi
