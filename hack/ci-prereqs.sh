#!/usr/bin/env bash
# Installs what `make test` needs, beyond Rust, Go and make, to build and check the container image
# (the `image` stage of e2e/run.sh): buildah and musl-gcc (Debian packages) and the Rust target
# x86_64-unknown-linux-musl. Installs only what is missing. When something cannot be installed it
# fails with the installer's own error: the image test is never skipped because a tool is missing.
#
#   hack/ci-prereqs.sh        (as root, or with sudo; `make test` and `make e2e` run it first, as
#                             `make prereqs`: on a machine that has everything it only checks, in
#                             well under a second, and says so)
set -euo pipefail

say() { echo "[ci-prereqs] $*" >&2; }
target=x86_64-unknown-linux-musl

# Twice, a few seconds apart: a fresh machine's first apt-get or rustup call can meet a mirror being
# updated or a network not quite up.
retry() {
  "$@" && return 0
  say "failed: $*; retrying in 10 s"
  sleep 10
  "$@"
}

# Run, not just found: a broken install counts as missing.
usable() { "$@" >/dev/null 2>&1; }

packages=()
usable buildah --version || packages+=(buildah)
usable musl-gcc --version || packages+=(musl-tools)
if [ ${#packages[@]} -ne 0 ]; then
  command -v apt-get >/dev/null || {
    say "missing ${packages[*]} and there is no apt-get: install them by hand"
    exit 1
  }
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      say "missing ${packages[*]}: installing them needs root (or sudo)"
      exit 1
    }
    sudo=(sudo)
  fi
  apt_install() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${packages[@]}"
  }
  say "apt-get install ${packages[*]}"
  if ! retry apt_install; then
    say "could not install ${packages[*]} (apt-get's error is above)"
    exit 1
  fi
fi
for tool in buildah musl-gcc; do
  if ! usable "$tool" --version; then
    say "$tool does not run after apt-get install:"
    "$tool" --version || true
    exit 1
  fi
done

if ! rustup target list --installed | grep -qx "$target"; then
  say "rustup target add $target"
  if ! retry rustup target add "$target"; then
    say "could not add the Rust target $target (rustup's error is above)"
    exit 1
  fi
fi

say "ready: $(buildah --version), $(command -v musl-gcc), Rust target $target"
