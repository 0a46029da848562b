#!/usr/bin/env bash
# Installs everything the test suite and the benchmarks need on a fresh Debian 12 machine.
# Idempotent; must run as root (apt, a system user). docs/development.md says why each piece is needed.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: run as root (apt-get and useradd are needed)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# PostgreSQL 13 only exists in bullseye; pin it low so nothing else is pulled from there.
if [ ! -f /etc/apt/sources.list.d/bullseye.list ]; then
  echo 'deb http://deb.debian.org/debian bullseye main' > /etc/apt/sources.list.d/bullseye.list
fi
cat > /etc/apt/preferences.d/bullseye-low <<'PIN'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN

need=()
for pkg in postgresql-15 openssh-server openssh-client rsync patroni etcd-server etcd-client btrfs-progs ansible-core sudo pgbouncer consul python3-consul; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
need13=0
dpkg-query -W -f='${Status}' postgresql-13 2>/dev/null | grep -q 'install ok installed' || need13=1

if [ ${#need[@]} -gt 0 ] || [ "$need13" -eq 1 ]; then
  apt-get update -qq
  # Debian's packages start their default clusters/services via policy-rc.d-less postinst;
  # in a container without systemd that is harmless but noisy. Keep them from starting.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
  if [ "$need13" -eq 1 ]; then
    apt-get install -y -qq --no-install-recommends -t bullseye postgresql-13
  fi
fi

# The unprivileged user test servers run as (PostgreSQL refuses root). Key login needs an
# unlocked account when sshd runs with UsePAM no.
if ! id pgrb >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash pgrb
fi
usermod -p '*' pgrb
# `become: sudo` is tested over the private sshd as this user: passwordless sudo, test machines only.
echo 'pgrb ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/pgrb-tests
chmod 0440 /etc/sudoers.d/pgrb-tests
# Debian's sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
chmod 755 /run/sshd

for bin in /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/13/bin/initdb /usr/sbin/sshd /usr/bin/etcd /usr/bin/patroni /usr/bin/ansible-playbook /usr/sbin/pgbouncer /usr/bin/consul; do
  [ -x "$bin" ] || { echo "install-test-deps: $bin is missing after install" >&2; exit 1; }
done
echo "install-test-deps: ok"
