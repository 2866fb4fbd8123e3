#!/usr/bin/env bash
# Builds the operator image without a Docker daemon and without pulling anything: a static musl binary
# from cargo, then buildah assembles the same final stage as the Dockerfile (FROM scratch: /covenant, a
# CA bundle, USER 65532:65532, ENTRYPOINT ["/covenant"], CMD ["run"], OCI labels) and writes it as an
# OCI archive.
#
#   hack/build-image.sh [OUTPUT]      default OUTPUT: target/covenant-image.tar
#
# Environment:
#   IMAGE             the reference recorded in the archive (default ghcr.io/covenant-dev/covenant:<version>)
#   TARGET            the Rust target: x86_64-unknown-linux-musl (default; image platform linux/amd64)
#                     or aarch64-unknown-linux-musl (linux/arm64, cross-built: see below)
#   CARGO_TARGET_DIR  where cargo builds (honoured like cargo does; the buildah store stays in target/)
#
# Needs: cargo with the target (`rustup target add x86_64-unknown-linux-musl`), musl-gcc (Debian:
# `apt-get install musl-tools`; ring compiles C), buildah (Debian: `apt-get install buildah`), python3.
# arm64 on an x86_64 machine (TARGET=aarch64-unknown-linux-musl): `rustup target add
# aarch64-unknown-linux-musl` and a C cross compiler that also links (`aarch64-linux-gnu-gcc`, Debian:
# `apt-get install gcc-aarch64-linux-gnu`; the musl C library and start files come with the Rust
# target); CC_aarch64_unknown_linux_musl and CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER override
# it. Nothing runs the arm64 binary here (no emulator): the version comes from Cargo.toml.
# buildah runs rootful with the vfs storage driver in a private store under target/buildah, so it
# needs no daemon, no overlay mounts and nothing in /var/lib/containers. Publish the archive with
# `skopeo copy oci-archive:target/covenant-image.tar docker://REGISTRY/covenant:TAG` or
# `podman load -i target/covenant-image.tar`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${TARGET:-x86_64-unknown-linux-musl}
output=${1:-target/covenant-image.tar}
say() { echo "[build-image] $*" >&2; }

for tool in cargo buildah python3; do
  command -v "$tool" >/dev/null || {
    say "$tool is missing"
    exit 1
  }
done
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  say "the Rust target $target is not installed: rustup target add $target"
  exit 1
fi
case $target in
  x86_64-unknown-linux-musl)
    arch=amd64 machine=62 # EM_X86_64
    command -v musl-gcc >/dev/null || {
      say "musl-gcc is missing (Debian: apt-get install musl-tools)"
      exit 1
    }
    ;;
  aarch64-unknown-linux-musl)
    arch=arm64 machine=183 # EM_AARCH64
    cross=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}
    command -v "$cross" >/dev/null || {
      say "$cross (a C compiler and linker for aarch64) is missing (Debian: apt-get install gcc-aarch64-linux-gnu)"
      exit 1
    }
    export CC_aarch64_unknown_linux_musl=$cross
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-$cross}
    ;;
  *)
    say "TARGET=$target: only x86_64-unknown-linux-musl and aarch64-unknown-linux-musl make a FROM scratch image"
    exit 1
    ;;
esac

# The revision the binary prints (`covenant --version`) and the image's label carry: the same one.
revision=$(bash "$root/hack/revision.sh")
export COVENANT_REVISION=$revision
say "cargo build --release --locked -p covenant --target $target (revision $revision)"
cargo build --release --locked -p covenant --target "$target"
# Ask cargo where it built: CARGO_TARGET_DIR, or build.target-dir in a cargo config, or target/.
target_dir=$(cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
binary=$target_dir/$target/release/covenant

# Static: no program interpreter (ld.so) in the ELF headers; and built for the image's architecture.
if python3 - "$binary" "$machine" <<'EOF'; then
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 2, "not a 64-bit ELF"
machine, = struct.unpack_from("<H", data, 0x12)
assert machine == int(sys.argv[2]), f"ELF machine {machine}, not {sys.argv[2]}"
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
sys.exit(1 if 3 in types else 0)  # PT_INTERP = 3
EOF
  say "$binary is statically linked ($(du -h "$binary" | cut -f1))"
else
  say "$binary is dynamically linked: it would not run FROM scratch"
  exit 1
fi
if [ "$arch" = amd64 ]; then
  version=$("$binary" --version | awk '{print $2}')
else
  version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
fi
image=${IMAGE:-ghcr.io/covenant-dev/covenant:$version}

store=$root/target/buildah
mkdir -p "$store"
bh() { buildah --storage-driver vfs --root "$store/root" --runroot "$store/run" "$@"; }
export BUILDAH_ISOLATION=chroot

ctr=$(bh from --name "covenant-build-$$" scratch)
trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
bh copy --chown 0:0 --chmod 0755 "$ctr" "$binary" /covenant >/dev/null
cacerts=/etc/ssl/certs/ca-certificates.crt
if [ -f "$cacerts" ]; then
  bh copy --chown 0:0 --chmod 0644 "$ctr" "$cacerts" "$cacerts" >/dev/null
else
  say "no $cacerts on this machine: the image has no CA bundle (in-cluster TLS does not need one)"
fi
bh config \
  --user 65532:65532 \
  --entrypoint '["/covenant"]' \
  --cmd '["run"]' \
  --port 8080/tcp \
  --os linux --arch "$arch" \
  --label org.opencontainers.image.title=covenant \
  --label "org.opencontainers.image.description=Kubernetes operator that provisions tenants and runs their lifecycle under a platform's service terms" \
  --label org.opencontainers.image.source=https://github.com/covenant-dev/covenant \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  "$ctr"
mkdir -p "$(dirname "$output")"
rm -f "$output"
bh commit --quiet --format oci --disable-compression=false --rm "$ctr" "oci-archive:$output:$image" >/dev/null
trap - EXIT

# Show what was written: the reference, the layers and the runtime config.
python3 - "$output" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
blob = lambda d: json.load(t.extractfile("blobs/" + d.replace(":", "/")))
index = json.load(t.extractfile("index.json"))
desc = index["manifests"][0]
manifest = blob(desc["digest"])
config = blob(manifest["config"]["digest"])
c = config["config"]
print("image     ", desc.get("annotations", {}).get("org.opencontainers.image.ref.name", "?"))
print("manifest  ", desc["digest"])
print("layers    ", ", ".join(f'{l["size"]} B' for l in manifest["layers"]))
print("platform  ", config["os"] + "/" + config["architecture"])
print("user      ", c.get("User"))
print("entrypoint", c.get("Entrypoint"), "cmd", c.get("Cmd"), "ports", sorted(c.get("ExposedPorts", {})))
print("labels    ", json.dumps(c.get("Labels", {}), sort_keys=True))
EOF
say "wrote $output ($(du -h "$output" | cut -f1))"
