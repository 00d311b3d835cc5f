# Shared helpers for the image scripts (ci/build-image, ci/repro-check, ci/boot-test).
# Source it after ci/lib.sh; do not run it.
#
# The tools environment: a Debian trixie chroot made with debootstrap, holding mkosi 25.3 and
# everything the image build, the repro check and the boot test run (systemd-repart, erofs-utils,
# veritysetup, QEMU, diffoscope on demand). The host only needs debootstrap, unshare and
# mount (util-linux). The chroot lives in $COCOON_CACHE/image/tools and is rebuilt only when
# TOOLS_PACKAGES or the sources change (a stamp file records both).
#
# It is entered in a private mount namespace (`unshare -m`) in which the chroot directory is
# bind-mounted onto itself (mkosi wants its root to be a mount point) with /proc, /sys and /dev;
# nothing is mounted in the host's namespace, and every mount goes away with the process.

IMAGE_CACHE=$COCOON_CACHE/image
TOOLS=$IMAGE_CACHE/tools
DEBIAN_MIRROR=${COCOON_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
# Downloaded .debs, shared by debootstrap (tools) and by the locked image builds.
DEB_CACHE=$IMAGE_CACHE/debs
TOOLS_CACHE=$IMAGE_CACHE/tools-debs

# mkosi and what it calls for a Debian disk image with a verity root; QEMU for the boot test.
# python3-cffi-backend and dbus-broker: virtual-package dependencies debootstrap does not resolve.
TOOLS_PACKAGES=(
  mkosi apt dpkg-dev debian-archive-keyring ca-certificates
  systemd systemd-repart systemd-container erofs-utils e2fsprogs cryptsetup-bin
  zstd xz-utils cpio kmod fdisk util-linux python3 python3-cffi-backend dbus-broker
  reprepro qemu-system-x86 curl
)

tools_sources() {
  printf 'deb %s %s main contrib non-free non-free-firmware\n' "$DEBIAN_MIRROR" "$SUITE"
  printf 'deb %s %s-updates main contrib non-free non-free-firmware\n' "$DEBIAN_MIRROR" "$SUITE"
  printf 'deb %s-security %s-security main contrib non-free non-free-firmware\n' \
    "${DEBIAN_MIRROR%/debian}/debian" "$SUITE"
}

tools_stamp() {
  { echo "tools/v1"; echo "${TOOLS_PACKAGES[*]}"; tools_sources; } | sha256sum | cut -d' ' -f1
}

# Runs a command inside the tools chroot, in a private mount namespace. Extra bind mounts are
# given as TOOLS_BINDS=("HOSTPATH:CHROOTPATH" ...) (read-write; the chroot path is created).
# With TOOLS_EXEC=1 the calling shell is replaced (the command keeps the caller's pid).
tools_run() {
  [ -f "$TOOLS/.cocoon-tools" ] || die "tools chroot missing: run ensure_tools first"
  local binds=""
  local b
  for b in "${TOOLS_BINDS[@]}"; do
    binds+="mkdir -p \"\$T${b#*:}\"; mount --rbind \"${b%%:*}\" \"\$T${b#*:}\"; "
  done
  local exec_prefix=()
  [ "${TOOLS_EXEC:-0}" = 1 ] && exec_prefix=(exec)
  # shellcheck disable=SC2016
  "${exec_prefix[@]}" unshare -m --propagation private -- bash -euc '
    T=$1; shift
    mount --rbind "$T" "$T"
    mount -t proc proc "$T/proc"
    mount --rbind /sys "$T/sys"
    mount --rbind /dev "$T/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$T/tmp"
    mkdir -p "$T/run"; mount -t tmpfs tmpfs "$T/run"
    cp -L /etc/resolv.conf "$T/etc/resolv.conf" 2>/dev/null || true
    '"$binds"'
    exec chroot "$T" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-}" "$@"
  ' tools-run "$TOOLS" "$@"
}

# Creates (or re-creates, when its package list or sources changed) the tools chroot.
ensure_tools() {
  local want
  want=$(tools_stamp)
  if [ "$(cat "$TOOLS/.cocoon-tools" 2>/dev/null)" = "$want" ]; then
    say "tools: trixie chroot up to date ($TOOLS)"
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap not found: run ci/setup (or apt-get install debootstrap)"
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
  [ "$(id -u)" = 0 ] || die "the image build needs root (debootstrap, mount namespaces)"
  local tmp=$TOOLS.new
  rm -rf "$tmp"
  mkdir -p "$tmp" "$TOOLS_CACHE"
  say "tools: debootstrap $SUITE into $tmp (packages cached in $TOOLS_CACHE)"
  local t0=$SECONDS
  local inc
  inc=$(IFS=,; echo "${TOOLS_PACKAGES[*]}")
  # debootstrap leaves a failing run half-made: retry once with -f in the chroot below.
  nice debootstrap --variant=minbase --cache-dir="$TOOLS_CACHE" --include="$inc" \
    "$SUITE" "$tmp" "$DEBIAN_MIRROR" >"$IMAGE_CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$IMAGE_CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $IMAGE_CACHE/debootstrap.log)"; }
  # Our own sources (no debian-debug); apt in the chroot keeps no downloaded .debs.
  tools_sources >"$tmp/etc/apt/sources.list"
  rm -f "$tmp"/etc/apt/sources.list.d/*
  echo 'APT::Install-Recommends "false";' >"$tmp/etc/apt/apt.conf.d/90cocoon"
  echo "pending" >"$tmp/.cocoon-tools"
  local saved=$TOOLS
  TOOLS=$tmp
  tools_run bash -euc 'export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q -f
    apt-get install -y -q '"${TOOLS_PACKAGES[*]}"'
    apt-get clean' >>"$IMAGE_CACHE/debootstrap.log" 2>&1 ||
    { TOOLS=$saved; tail -20 "$IMAGE_CACHE/debootstrap.log" >&2; die "tools: apt-get in the chroot failed (log: $IMAGE_CACHE/debootstrap.log)"; }
  TOOLS=$saved
  echo "$want" >"$tmp/.cocoon-tools"
  rm -rf "$TOOLS.old"
  [ -d "$TOOLS" ] && mv "$TOOLS" "$TOOLS.old"
  mv "$tmp" "$TOOLS"
  rm -rf "$TOOLS.old"
  say "tools: ready in $((SECONDS - t0)) s ($(du -sh "$TOOLS" | cut -f1))"
}

# apt inside the tools chroot with a private state directory and our sources, for downloading
# pinned .debs (the Release files are verified with debian-archive-keyring, each .deb against
# the signed index).
APT_STATE=$IMAGE_CACHE/apt-state
apt_in_tools() {
  local components=$1; shift
  mkdir -p "$APT_STATE/lists/partial" "$APT_STATE/archives/partial"
  {
    printf 'deb %s %s %s\n' "$DEBIAN_MIRROR" "$SUITE" "$components"
    printf 'deb %s %s-updates %s\n' "$DEBIAN_MIRROR" "$SUITE" "$components"
    printf 'deb %s %s-backports %s\n' "$DEBIAN_MIRROR" "$SUITE" "$components"
    printf 'deb %s-security %s-security %s\n' "${DEBIAN_MIRROR%/debian}/debian" "$SUITE" "$components"
  } >"$APT_STATE/sources.list"
  TOOLS_BINDS+=("$APT_STATE:/cocoon-apt")
  tools_run sh -c 'cd /cocoon-debs 2>/dev/null || cd /; exec "$@"' apt-in-tools apt-get -q -o Dir::Etc::SourceList=/cocoon-apt/sources.list -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists=/cocoon-apt/lists -o Dir::State::Status=/dev/null \
    -o Dir::Cache::Archives=/cocoon-apt/archives -o Debug::NoLocking=1 \
    -o APT::Architecture=amd64 -o APT::Architectures::=amd64 "$@"
}

# Reads a lock file: prints "name version arch sha256 file" per package, refusing malformed lines.
read_lock() {
  awk -v lock="$1" '
    /^#/ || /^[[:space:]]*$/ { next }
    NF != 5 || length($4) != 64 || $4 ~ /[^0-9a-f]/ || $5 !~ /\.deb$/ || $5 ~ /\// {
      printf "error: %s line %d is malformed (want: name version arch sha256 file.deb): %s\n", lock, NR, $0 > "/dev/stderr"
      bad = 1; exit 1
    }
    { print }
    END { if (bad) exit 1 }' "$1"
}

# Puts every .deb of LOCK into DEST (hard links from $DEB_CACHE), downloading the missing ones
# by name=version, and stops at the first .deb whose SHA-256 is not the pinned one.
fetch_locked_debs() {
  local lock=$1 dest=$2 components=$3
  local entries missing=() name version arch sum file have
  entries=$(read_lock "$lock") || die "$lock is malformed"
  [ -n "$entries" ] || die "$lock pins no packages"
  mkdir -p "$DEB_CACHE"
  while read -r name version arch sum file; do
    [ -f "$DEB_CACHE/$file" ] || missing+=("$name=$version")
  done <<<"$entries"
  if ((${#missing[@]})); then
    say "lock: downloading ${#missing[@]} pinned .debs from $DEBIAN_MIRROR"
    local saved=("${TOOLS_BINDS[@]}")
    TOOLS_BINDS+=("$DEB_CACHE:/cocoon-debs")
    apt_in_tools "$components" update >"$IMAGE_CACHE/apt-download.log" 2>&1 ||
      { tail "$IMAGE_CACHE/apt-download.log" >&2; die "apt-get update against $DEBIAN_MIRROR failed"; }
    if ! apt_in_tools "$components" -o APT::Sandbox::User=root download "${missing[@]}" \
        >>"$IMAGE_CACHE/apt-download.log" 2>&1; then
      grep -E "^E:" "$IMAGE_CACHE/apt-download.log" >&2 || true
      TOOLS_BINDS=("${saved[@]}")
      die "cannot download pinned packages (above): the mirror no longer carries these versions; a maintainer must run ci/build-image --update-lock"
    fi
    TOOLS_BINDS=("${saved[@]}")
  fi
  local n=0
  while read -r name version arch sum file; do
    [ -f "$DEB_CACHE/$file" ] || die "package $name $version: $file did not arrive"
    have=$(sha256sum "$DEB_CACHE/$file" | cut -d' ' -f1)
    [ "$have" = "$sum" ] ||
      die "package $name $version: $file has SHA-256 $have, but $(basename "$lock") pins $sum (delete $DEB_CACHE/$file to download it again)"
    ln -f "$DEB_CACHE/$file" "$dest/$file"
    n=$((n + 1))
  done <<<"$entries"
  say "lock: $n packages verified against $(basename "$lock")"
}

# Maintainer mode: writes LOCK from the .debs mkosi downloaded into PKGCACHE (the complete set
# the image, the build overlay and the initrd used), plus Debian's ovmf for OVMF.fd, and keeps
# the .debs in $DEB_CACHE.
write_lock() {
  local pkgcache=$1 lock=$2 profile=$3 components=$4
  local saved=("${TOOLS_BINDS[@]}")
  TOOLS_BINDS+=("$pkgcache:/cocoon-debs")
  apt_in_tools "$components" update >"$IMAGE_CACHE/apt-download.log" 2>&1 || die "apt-get update failed"
  apt_in_tools "$components" -o APT::Sandbox::User=root download ovmf >>"$IMAGE_CACHE/apt-download.log" 2>&1 ||
    die "downloading ovmf failed"
  TOOLS_BINDS=("${saved[@]}")
  mkdir -p "$DEB_CACHE"
  local tmp=$lock.tmp deb
  {
    echo "# Debian packages of the $profile image: name version architecture sha256 file."
    echo "# ci/build-image offers mkosi only these .debs and checks each SHA-256 before the build."
    echo "# Written by \`ci/build-image $profile --update-lock\` from $DEBIAN_MIRROR $SUITE"
    echo "# ($components, with -updates, -security, and the Rust toolchain from -backports:"
    echo "# image/apt-preferences). Review the diff before committing."
    find "$pkgcache" -name '*.deb' -type f -print0 | sort -z | while IFS= read -r -d '' deb; do
      printf '%s %s %s %s %s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" \
        "$(dpkg-deb -f "$deb" Architecture)" "$(sha256sum "$deb" | cut -d' ' -f1)" "$(basename "$deb")"
      ln -f "$deb" "$DEB_CACHE/$(basename "$deb")" 2>/dev/null || cp "$deb" "$DEB_CACHE/"
    done | sort -u -k1,1
  } >"$tmp"
  mv "$tmp" "$lock"
}

# After a failed mkosi run: names the packages apt could not find in the locked repository.
explain_apt_failure() {
  local log=$1 lock=$2 pkgs
  pkgs=$(grep -oE "Unable to locate package [^ ]+|Depends: [^ ]+( \([^)]*\))? but it is not (installable|going to be installed)|Package '[^']+' has no installation candidate" "$log" |
    sed -E "s/Unable to locate package //; s/^Depends: ([^ ]+).*/\1/; s/Package '([^']+)'.*/\1/" | sort -u | tr '\n' ' ')
  if [ -n "$pkgs" ]; then
    printf 'error: not pinned in %s: %s\n' "$(basename "$lock")" "$pkgs" >&2
    printf 'error: a maintainer adds packages with ci/build-image PROFILE --update-lock and commits the reviewed lock\n' >&2
  fi
}

# Extracts OVMF.fd from the pinned ovmf .deb in DEBS.
extract_ovmf() {
  local debs=$1 dest=$2 deb x
  deb=$(find "$debs" -maxdepth 1 -name 'ovmf_*_all.deb' | head -1)
  [ -n "$deb" ] || die "ovmf is not in the lock: OVMF.fd must come from the pinned Debian ovmf package"
  x=$(mktemp -d)
  dpkg-deb -x "$deb" "$x"
  [ -s "$x/usr/share/ovmf/OVMF.fd" ] || die "$(basename "$deb") has no usr/share/ovmf/OVMF.fd"
  cp "$x/usr/share/ovmf/OVMF.fd" "$dest"
  rm -rf "$x"
}

# Prints "ROOTHASH DATA_START DATA_SECTORS HASH_START HASH_SECTORS" for a disk image made by
# systemd-repart with a verity root: repart derives the data partition's UUID from the first
# 128 bits of the root hash and the hash partition's UUID from the last 128 bits.
gpt_verity_root() {
  python3 - "$1" <<'PY'
import struct, sys, uuid
ROOT = uuid.UUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
VERITY = uuid.UUID("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5")
with open(sys.argv[1], "rb") as f:
    f.seek(512)
    hdr = f.read(92)
    if hdr[:8] != b"EFI PART":
        sys.exit(f"{sys.argv[1]}: no GPT header")
    lba, = struct.unpack_from("<Q", hdr, 72)
    count, size = struct.unpack_from("<II", hdr, 80)
    if not (0 < count <= 256 and 128 <= size <= 1024):
        sys.exit(f"{sys.argv[1]}: implausible GPT entry table ({count} x {size})")
    f.seek(lba * 512)
    found = {}
    for _ in range(count):
        e = f.read(size)
        if len(e) < 48:
            sys.exit(f"{sys.argv[1]}: truncated GPT entry table")
        t = uuid.UUID(bytes_le=e[:16])
        if t in (ROOT, VERITY):
            if t in found:
                sys.exit(f"{sys.argv[1]}: two partitions of type {t}")
            first, last = struct.unpack_from("<QQ", e, 32)
            found[t] = (uuid.UUID(bytes_le=e[16:32]).hex, first, last - first + 1)
if ROOT not in found or VERITY not in found:
    sys.exit(f"{sys.argv[1]}: no root and root-verity partition pair")
d, h = found[ROOT], found[VERITY]
print(d[0] + h[0], d[1], d[2], h[1], h[2])
PY
}

# Checks the root partition of RAW against its verity hash partition and ROOTHASH in userspace
# (veritysetup verify reads every block). WORKDIR holds the two extracted partitions briefly.
verify_verity_root() {
  local raw=$1 roothash=$2 dir=$3 _h ds dn hs hn
  read -r _h ds dn hs hn < <(gpt_verity_root "$raw") || die "$raw: cannot read the verity partitions"
  dd if="$raw" of="$dir/root.data" bs=512 skip="$ds" count="$dn" status=none
  dd if="$raw" of="$dir/root.verity" bs=512 skip="$hs" count="$hn" status=none
  TOOLS_BINDS=("$dir:/cocoon-verity")
  tools_run veritysetup verify /cocoon-verity/root.data /cocoon-verity/root.verity "$roothash" ||
    die "$raw: the root partition does not verify against root hash $roothash"
  rm -f "$dir/root.data" "$dir/root.verity"
}

# Puts the kernel tarball pinned in SRC/image/kernel.lock into SRC/kernel-source (a hard link
# from $IMAGE_CACHE/sources), downloading it from the Debian pool when missing, and stops unless
# its SHA-256 is the pinned one. image/build-kernel.chroot builds from it.
fetch_kernel_source() {
  local src=$1 upstream sum file have cache=$IMAGE_CACHE/sources
  read -r upstream sum file < <(grep -v '^#' "$src/image/kernel.lock") || die "image/kernel.lock pins no kernel"
  [[ $sum =~ ^[0-9a-f]{64}$ && $file =~ ^linux_[0-9.]+\.orig\.tar\.xz$ ]] ||
    die "image/kernel.lock is malformed (want: upstream-version sha256 linux_VERSION.orig.tar.xz)"
  mkdir -p "$cache"
  if [ ! -f "$cache/$file" ]; then
    say "kernel: downloading $file (Linux $upstream) from $DEBIAN_MIRROR"
    curl -fsS --retry 3 -o "$cache/$file.part" "$DEBIAN_MIRROR/pool/main/l/linux/$file" ||
      { rm -f "$cache/$file.part"; die "cannot download $DEBIAN_MIRROR/pool/main/l/linux/$file"; }
    mv "$cache/$file.part" "$cache/$file"
  fi
  have=$(sha256sum "$cache/$file" | cut -d' ' -f1)
  [ "$have" = "$sum" ] ||
    die "kernel: $file has SHA-256 $have, but image/kernel.lock pins $sum (delete $cache/$file to download it again)"
  mkdir -p "$src/kernel-source"
  ln -f "$cache/$file" "$src/kernel-source/$file"
  say "kernel: Linux $upstream source verified against image/kernel.lock"
}

# Vendors the crates of SRC's Cargo.lock into SRC/vendor, for an offline build in the chroot.
# Done once per Cargo.lock (cached in $IMAGE_CACHE/vendor/, hard-linked into SRC); cargo
# checks every vendored crate against the checksum in Cargo.lock when it builds.
vendor_crates() {
  local src=$1 locksum vendor
  locksum=$(sha256sum "$src/Cargo.lock" | cut -c1-16)
  vendor=$IMAGE_CACHE/vendor/$locksum
  mkdir -p "$(dirname "$vendor")"
  exec 9>"$vendor.lock"
  flock 9
  if [ ! -f "$vendor/.cocoon-vendored" ]; then
    say "crates: cargo vendor (Cargo.lock $locksum) -> $vendor"
    rm -rf "$vendor.tmp"
    (cd "$src" && cargo vendor --locked --versioned-dirs --quiet "$vendor.tmp" >/dev/null) ||
      die "cargo vendor failed (is crates.io reachable? is Cargo.lock up to date?)"
    touch "$vendor.tmp/.cocoon-vendored"
    rm -rf "$vendor"
    mv "$vendor.tmp" "$vendor"
  fi
  cp -al "$vendor" "$src/vendor"
  touch "$vendor/.cocoon-vendored"
  flock -u 9
  exec 9>&-
  rm -f "$src/vendor/.cocoon-vendored"
  prune_vendor_cache
}

# Keeps the VENDOR_KEEP (default 3) most recently used vendor directories; the others (about
# 300 MB each, one per Cargo.lock ever built) are removed, each only while no build holds its
# lock.
prune_vendor_cache() {
  local keep=${VENDOR_KEEP:-3} dir
  ls -1dt "$IMAGE_CACHE"/vendor/*/.cocoon-vendored 2>/dev/null | tail -n +"$((keep + 1))" |
    while read -r marker; do
      dir=${marker%/.cocoon-vendored}
      (
        flock -n 9 || exit 0
        rm -rf "$dir"
        say "crates: removed the unused vendor cache $dir"
      ) 9>"$dir.lock"
    done
}

# Exports the source tree (tracked files plus untracked, not-ignored ones) into DIR with a
# .cocoon-source file naming the commit and SOURCE_DATE_EPOCH (the commit time of HEAD).
# RELEASE=1 refuses a dirty tree, naming the changed files.
export_source() {
  local dir=$1 release=$2 dirty
  git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git checkout"
  dirty=$(git -C "$ROOT" status --porcelain --untracked-files=normal)
  if [ -n "$dirty" ] && [ "$release" = 1 ]; then
    printf '%s\n' "$dirty" | head -20 >&2
    die "dirty source tree: a --release build needs every change committed (files above)"
  fi
  mkdir -p "$dir"
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$dir")
  {
    echo "commit=$(git -C "$ROOT" rev-parse HEAD)$([ -n "$dirty" ] && echo -dirty || true)"
    echo "source_date_epoch=$(git -C "$ROOT" log -1 --format=%ct HEAD)"
  } >"$dir/.cocoon-source"
}
