#!/usr/bin/env bash
# Installs the Debian Ceph packages the S3 driver tests start on loopback (tests/rgw.py):
# one mon, one memstore OSD and radosgw. Needs root (or sudo); idempotent.
set -euo pipefail

packages=(ceph-mon ceph-osd radosgw ceph-common)
binaries=(ceph-mon ceph-osd radosgw radosgw-admin ceph)

missing=0
for binary in "${binaries[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || missing=1
done
if [[ $missing -eq 0 ]]; then
    echo "ceph binaries already installed: $(ceph --version 2>/dev/null || true)"
    exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# apt-cache knows nothing until the first update; update once only when the lists are empty
# or do not offer radosgw.
if ! apt-cache show radosgw >/dev/null 2>&1; then
    $sudo apt-get update
fi
$sudo apt-get install -y --no-install-recommends "${packages[@]}"
echo "installed: $(ceph --version)"
