#!/usr/bin/env bash
# The git revision stamped into what the build makes (`covenant --version`, the image's
# org.opencontainers.image.revision label, dist/): COVENANT_REVISION when set, else the commit checked
# out (`git rev-parse HEAD`), else `unknown` (no git checkout, e.g. a source tarball).
set -euo pipefail
if [ -n "${COVENANT_REVISION:-}" ]; then
  echo "$COVENANT_REVISION"
else
  git -C "$(dirname "$0")/.." rev-parse HEAD 2>/dev/null || echo unknown
fi
