#!/bin/sh
# Builds agora's OCI image, localhost/agora:VERSION, without any registry:
# a Debian 12 root made by debootstrap from Debian's archive with the run-time
# libraries agora links, a user `agora` (uid 10001) owning /var/lib/agora, and
# agora itself, built on this host (a release build, then `meson install` into
# a staging tree) and copied in, with deploy/container/agora-pod (the
# containers' entry point) and the run files of examples/. The host must run
# the image's release (Debian 12) so that the libraries the binaries were
# linked against are the image's; the last step runs every binary in the image
# to prove it.
#
#   deploy/container/build-image.sh --cache DIR [--build DIR] [--tag NAME]
#
# --cache DIR  keeps the debootstrap'd root (keyed by suite, mirror and package
#              list, so a second run skips debootstrap) and the release build
# --build DIR  install from this configured meson build directory instead of
#              DIR/build-release (a sanitizer build is refused: the image has
#              no sanitizer runtime)
# --tag NAME   the image's name (default localhost/agora:VERSION, VERSION from
#              meson.build)
#
# The Debian root comes from the mirror this host's apt uses for bookworm, or
# from AGORA_DEBIAN_MIRROR.
# Safe to run again: nothing is rebuilt that did not change, and the image is
# imported again only when its content differs (label agora.content) or the
# tag names another image than the one imported last. Needs
# root, podman, debootstrap, meson and ninja. Where `podman run` fails with the
# defaults (setrlimit, cgroups), export CONTAINERS_CONF=deploy/container/containers.conf.
# Prints the image name as its last line.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
cache=""
build=""
tag=""
suite=bookworm
# the Debian mirror this host's apt uses for the suite (apt-get update first)
mirror=${AGORA_DEBIAN_MIRROR:-$(apt-cache policy 2>/dev/null |
    awk -v s="$suite/main" '$3 == s && $2 ~ /^https?:/ { print $2; exit }')}
# What the binaries link (ldd of each; their dependencies come along)
packages="libzmq5 libprotobuf-c1 libopenblas0-pthread libuv1 libinih1 libjansson4"

usage() { sed -n '12,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --cache) cache=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --tag) tag=${2:?}; shift 2 ;;
    *) usage ;;
    esac
done
[ -n "$cache" ] || usage
say() { echo "build-image: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, podman import)"
for tool in podman debootstrap meson ninja sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install podman debootstrap meson ninja-build)"
done
[ -n "$mirror" ] || die "no Debian mirror for $suite in apt's sources (run apt-get update, or set AGORA_DEBIAN_MIRROR)"
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
[ -n "$version" ] || die "no version in $src/meson.build"
[ -n "$tag" ] || tag="localhost/agora:$version"

# 1. The Debian root, once per key.
# recipe: change it with the steps below, so that a cached root is not reused
recipe="minbase, user agora 10001, no docs, no /usr/local"
key=$(printf '%s\n' "$suite" "$mirror" "$packages" "$recipe" | sha256sum | cut -c1-16)
root="$cache/root-$suite-$key"
if [ ! -f "$root.tar" ]; then
    say "debootstrap $suite from $mirror into $root (a few minutes, once)"
    rm -rf "$root"
    debootstrap --variant=minbase --include="$(printf '%s' "$packages" | tr ' ' ,)" \
        "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $cache/debootstrap.log"
    chroot "$root" groupadd --gid 10001 agora
    chroot "$root" useradd --uid 10001 --gid 10001 --home-dir /var/lib/agora \
        --no-create-home --shell /usr/sbin/nologin agora
    install -d -o 10001 -g 10001 -m 0755 "$root/var/lib/agora"
    chroot "$root" apt-get clean
    # not what a container gets from its runtime, nor what nothing in it
    # reads; /usr/local comes from the staging tree (a tar to import holds
    # each path once)
    tar -C "$root" --numeric-owner \
        --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./usr/local \
        --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' \
        --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/locale \
        --exclude=./usr/share/info \
        -cf "$root.tar.tmp" . && mv "$root.tar.tmp" "$root.tar"
    rm -rf "$root"
    for old in "$cache"/root-*.tar; do
        [ "$old" = "$root.tar" ] || rm -f "$old"
    done
fi

# 2. agora: built on this host, installed into a staging tree.
if [ -z "$build" ]; then
    build="$cache/build-release"
    [ -f "$build/build.ninja" ] ||
        meson setup "$build" "$src" --buildtype=release --prefix=/usr/local -Dtests=false >&2
    ninja -C "$build" >&2
else
    [ -f "$build/build.ninja" ] || die "$build is not a meson build directory"
    build=$(cd "$build" && pwd)
    sanitize=$(meson configure "$build" | awk '$1 == "b_sanitize" { print $2 }')
    [ "${sanitize:-none}" = none ] ||
        die "$build is built with -Db_sanitize=$sanitize: the image has no sanitizer runtime"
fi
stage="$cache/stage"
rm -rf "$stage"
meson install -C "$build" --no-rebuild --destdir "$stage" >"$cache/install.log" 2>&1 ||
    die "meson install failed, see $cache/install.log"
[ -x "$stage/usr/local/bin/agora-learner" ] ||
    die "$build installs no /usr/local/bin/agora-learner: configure it with --prefix=/usr/local"
install -m 0755 "$here/agora-pod" "$stage/usr/local/bin/agora-pod"
install -d "$stage/usr/local/share/agora/examples"
install -m 0644 "$src"/examples/*.ini "$stage/usr/local/share/agora/examples/"

# 3. The image: the root's tar with the staging tree appended, imported.
content=$( (echo "$key"; cd "$stage" && find . -type f | LC_ALL=C sort | xargs sha256sum) |
    sha256sum | cut -c1-16)
# the image this cache imported last, if the tag still names it
have=$(podman image inspect --format '{{.Id}} {{index .Config.Labels "agora.content"}}' "$tag" 2>/dev/null || true)
if [ -n "$have" ] && [ "$have" = "$(cat "$cache/image.id" 2>/dev/null) $content" ]; then
    say "$tag is up to date (content $content)"
else
    say "importing $tag (content $content)"
    previous=$(cat "$cache/image.id" 2>/dev/null || true)
    cp "$root.tar" "$cache/image.tar"
    tar -C "$stage" --owner=0 --group=0 --numeric-owner -rf "$cache/image.tar" ./usr/local
    podman import \
        --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV=AGORA_OUT=/var/lib/agora' \
        --change 'WORKDIR=/var/lib/agora' \
        --change 'USER=10001:10001' \
        --change 'CMD=["agora-pod"]' \
        --change "LABEL=agora.content=$content" \
        --change "LABEL=org.opencontainers.image.version=$version" \
        --change 'LABEL=org.opencontainers.image.title=agora' \
        "$cache/image.tar" "$tag" >/dev/null
    rm -f "$cache/image.tar"
    podman image inspect --format '{{.Id}}' "$tag" >"$cache/image.id"
    # the image this cache imported before, unless a container still uses it
    if [ -n "$previous" ] && [ "$previous" != "$(cat "$cache/image.id")" ]; then
        podman image rm "$previous" >/dev/null 2>&1 || true
    fi
fi

# 4. Every binary runs in the image (its libraries are there).
bins="agora agora-env agora-env-check agora-learner agora-actor agora-eval agora-reward agora-label agora-bench"
podman run --rm --network none "$tag" sh -c "
    for b in $bins; do \$b --help >/dev/null 2>&1 || { echo \"\$b does not run\"; ldd /usr/local/bin/\$b; exit 1; }; done
    agora-pod >/dev/null 2>&1; [ \$? -eq 2 ]" >&2 ||
    die "a binary does not run in $tag (see above)"
say "every binary runs in $tag"
echo "$tag"
