#!/usr/bin/env bash
# System packages the test suite needs beyond npm: Debian's Chromium for the browser test, and
# Debian's PyTorch/ONNX/PIL for the Python toolchain tests (PyPI is not reachable on our machines,
# and `npx playwright install` cannot download a browser). Installs only what is missing; without
# root it prints the command instead.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
/usr/bin/python3 -c "import torch, onnx, PIL, numpy" 2>/dev/null || need+=(python3-torch python3-onnx python3-pil python3-numpy)
[ -e /usr/lib/x86_64-linux-gnu/openblas-pthread ] || need+=(libopenblas0-pthread)
if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]}"
  echo "install them with: sudo apt-get install -y --no-install-recommends ${need[*]}"
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
