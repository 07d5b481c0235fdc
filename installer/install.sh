#!/bin/sh
# Airlock bundle installer, stage 1: POSIX sh, coreutils, grep, sed and GNU tar, plus minisign or openssl.
#
#   sh install.sh --trusted-key FILE [--target DIR] [--python PYTHON] [--bundle DIR] [--check-only]
#                 [--allow-downgrade] [--allow-replace] [--allow-pickle] [--no-smoke]
#                 [--insecure-no-signature | --insecure-self-verify]
#
# Nothing from the bundle is parsed, unpacked or run before it is bound to the site's signature:
# 1. SHA256SUMS, the signed root, is verified against the trusted key with minisign, or else with openssl;
# 2. every line of SHA256SUMS and bundle.env must match its exact pattern; every file and chunk they list must be
#    a regular file of the listed size and sha256 (damaged ones are named: copy only those again);
# 3. the env: the packed conda env (cut from the chunks into a private copy, its sha256 checked, its members'
#    types and total size checked, then unpacked by tar) or a venv of the site's Python (wheelhouse bundles);
# 4. airlock-installer.pyz, copied and checked against SHA256SUMS, installs with the env's Python.
# A refused install leaves the target as it was. bundler/FORMAT.md has the format and the threat model.
set -eu
umask 022
LC_ALL=C
export LC_ALL

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "[install.sh] $*"; }
absolute() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

BUNDLE=$(dirname -- "$0")
TARGET=${AIRLOCK_HOME:-${HOME:-/root}/.local/share/airlock}
SITE_PYTHON=python3
KEY=${AIRLOCK_TRUSTED_KEY:-}
CHECK_ONLY=0 INSECURE=0 SELF_VERIFY=0 PASS=
while [ $# -gt 0 ]; do
    case $1 in
        --target|--python|--bundle|--trusted-key)
            [ $# -gt 1 ] || die "$1 needs a value"
            case $1 in --target) TARGET=$2 ;; --python) SITE_PYTHON=$2 ;; --bundle) BUNDLE=$2 ;; *) KEY=$2 ;; esac
            shift ;;
        --target=*) TARGET=${1#*=} ;;
        --python=*) SITE_PYTHON=${1#*=} ;;
        --bundle=*) BUNDLE=${1#*=} ;;
        --trusted-key=*) KEY=${1#*=} ;;
        --check-only) CHECK_ONLY=1 ;;
        --insecure-no-signature) INSECURE=1 ;;
        --insecure-self-verify) SELF_VERIFY=1 ;;
        --allow-downgrade|--allow-replace|--allow-pickle|--no-smoke) PASS="$PASS $1" ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see: sh install.sh --help)" ;;
    esac
    shift
done

[ -d "$BUNDLE" ] || die "$BUNDLE is not a bundle directory"
BUNDLE=$(CDPATH= cd -- "$BUNDLE" && pwd)
MADE_TARGET=0
[ -d "$TARGET" ] || MADE_TARGET=1
mkdir -p -- "$TARGET" || die "cannot create $TARGET"
TARGET=$(CDPATH= cd -- "$TARGET" && pwd)
[ -n "$KEY" ] || [ ! -f "$TARGET/keys/trusted.pub" ] || KEY=$TARGET/keys/trusted.pub
[ -z "$KEY" ] || KEY=$(absolute "$KEY")
for tool in sha256sum head tail wc tr od cut paste grep sed mktemp; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (coreutils, grep, sed)"
done

WORK=$(mktemp -d "$TARGET/.install.XXXXXX") || die "cannot write to $TARGET"
ENVDIR= MADE_ENV=0 HAD_ENVS=0
[ ! -d "$TARGET/envs" ] || HAD_ENVS=1
cleanup() {
    rm -rf -- "$WORK"
    if [ "$MADE_ENV" = 1 ]; then rm -rf -- "$ENVDIR"; fi
    if [ "$HAD_ENVS" = 0 ]; then rmdir -- "$TARGET/envs" 2>/dev/null || true; fi
    if [ "$MADE_TARGET" = 1 ]; then rmdir -- "$TARGET" 2>/dev/null || true; fi  # a refusal leaves no empty home
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The patterns, the same as installer/format.py's (tests hold the two to the same verdicts on the same bytes).
HEX='[0-9a-f]{64}'
NUM='(0|[1-9][0-9]{0,15})'
N='(0|[1-9][0-9]*)'
NAME='[A-Za-z0-9][A-Za-z0-9._-]{0,63}'
VERSION="([1-9][0-9]*!)?$N(\\.$N)*((a|b|rc)$N)?(\\.post$N)?(\\.dev$N)?(\\+[a-z0-9]+(\\.[a-z0-9]+)*)?"
FILES="(install\\.sh|airlock-installer\\.pyz|bundle\\.env|MANIFEST\\.json|sbom\\.cdx\\.json|README\\.txt|chunks/[0-9]{4,6}-$HEX\\.part)"
ROOTS='install.sh airlock-installer.pyz bundle.env MANIFEST.json sbom.cdx.json README.txt'
TAMPERED="the bundle was altered after signing or is damaged: do not install it"

is_regular() { [ -f "$1" ] && [ ! -L "$1" ]; }
size_of() { wc -c < "$1" | tr -d ' '; }
sha_of() { sha256sum < "$1" | cut -c1-64; }
# copy_in NAME LIMIT: a private copy of the bundle's file NAME, which must be a regular file of at most LIMIT bytes
copy_in() {
    is_regular "$BUNDLE/$1" || die "$1 is missing or not a regular file (a link, FIFO or device?); copy the bundle again"
    head -c "$(($2 + 1))" < "$BUNDLE/$1" > "$WORK/$1.copy"
    [ "$(size_of "$WORK/$1.copy")" -le "$2" ] || die "$1 is larger than $2 bytes: $TAMPERED"
}
# plain_text FILE [tab]: printable ASCII and newlines only (and tabs if asked), ending with a newline
plain_text() {
    extra=
    [ "${2:-}" = tab ] && extra=$(printf '\t')
    [ -s "$1" ] && [ "$(tr -d "\\n -~$extra" < "$1" | wc -c | tr -d ' ')" = 0 ] \
        && [ "$(tail -c 1 "$1" | od -An -tx1 | tr -d ' \n')" = 0a ]
}
# only_lines FILE PATTERN: every line matches PATTERN (grep -E, whole line)
only_lines() { [ "$(grep -Evxc -e "$2" "$1" || true)" = 0 ]; }
line() { sed -n "$1p" "$2"; }

# ---- 1. the signature over SHA256SUMS, by a stock tool: chosen first, so nothing is read if none can check it
openssl_can() {
    command -v openssl >/dev/null 2>&1 && openssl dgst -blake2b512 < /dev/null >/dev/null 2>&1 \
        && openssl pkeyutl -help 2>&1 | grep -q -- -rawin
}
VERIFIER= CHECKED_BY=
if [ "$INSECURE" = 1 ]; then
    say "WARNING: --insecure-no-signature: the bundle's origin is NOT checked (the audit log will say so)"
elif [ -z "$KEY" ]; then
    die "no trusted key: give --trusted-key FILE (the site's minisign public key) or set AIRLOCK_TRUSTED_KEY"
elif command -v minisign >/dev/null 2>&1; then
    VERIFIER=minisign
elif openssl_can; then
    VERIFIER=openssl
elif [ "$SELF_VERIFY" = 1 ]; then
    say "WARNING: --insecure-self-verify: neither minisign nor openssl is here, so only the bundle's own code"
    say "         checks its signature; a forged bundle could lie. Install minisign (apt-get install minisign)."
else
    die "neither minisign nor openssl (1.1.1 or later) is on this host, so the signature cannot be checked before
  code from the bundle runs. Install one (apt-get install minisign), or accept that risk with --insecure-self-verify"
fi
copy_in SHA256SUMS 1048576
SUMS=$WORK/SHA256SUMS.copy
verify_minisign() {
    minisign -V -q -m "$SUMS" -x "$WORK/SHA256SUMS.minisig.copy" -p "$KEY" >/dev/null 2>&1 \
        || die "SHA256SUMS's signature does not verify with $KEY (minisign): $TAMPERED, or it was signed by another key"
}
verify_openssl() {
    sig=$WORK/SHA256SUMS.minisig.copy
    line 2 "$KEY" | base64 -d > "$WORK/key.bin" 2>/dev/null || die "$KEY is not a minisign public key"
    line 2 "$sig" | base64 -d > "$WORK/sig.bin"
    line 4 "$sig" | base64 -d > "$WORK/global.bin"
    [ "$(size_of "$WORK/key.bin")" = 42 ] && [ "$(head -c 2 "$WORK/key.bin")" = Ed ] \
        || die "$KEY is not an Ed25519 minisign public key"
    [ "$(od -An -tx1 -j2 -N8 "$WORK/key.bin")" = "$(od -An -tx1 -j2 -N8 "$WORK/sig.bin")" ] \
        || die "SHA256SUMS was signed by another key than $KEY: do not install this bundle"
    # Ed25519's public key in DER: the fixed SubjectPublicKeyInfo prefix, then the key's 32 bytes
    printf '\060\052\060\005\006\003\053\145\160\003\041\000' > "$WORK/key.der"
    tail -c 32 "$WORK/key.bin" >> "$WORK/key.der"
    tail -c 64 "$WORK/sig.bin" > "$WORK/sig64.bin"
    openssl dgst -blake2b512 -binary < "$SUMS" > "$WORK/prehash.bin"
    { cat "$WORK/sig64.bin"; line 3 "$sig" | cut -c18- | tr -d '\n'; } > "$WORK/global-message.bin"
    for pair in prehash:sig64 global-message:global; do
        openssl pkeyutl -verify -pubin -inkey "$WORK/key.der" -keyform DER -rawin -in "$WORK/${pair%:*}.bin" \
            -sigfile "$WORK/${pair#*:}.bin" >/dev/null 2>&1 \
            || die "SHA256SUMS's signature does not verify with $KEY (openssl): $TAMPERED"
    done
}
if [ "$INSECURE" = 0 ]; then
    # whoever may write the key decides what this host installs: a key writable by the group or others is refused
    key_mode=$(stat -L -c %a "$KEY" 2>/dev/null || echo 0)
    case $key_mode in *[2367]?|*[2367]) die "$KEY is writable by its group or others: chmod go-w $KEY" ;; esac
    is_regular "$KEY" && [ "$(size_of "$KEY")" -le 4096 ] && plain_text "$KEY" tab \
        && line 2 "$KEY" | grep -Eqx '[A-Za-z0-9+/]{56}' || die "$KEY is not a minisign public key"
    copy_in SHA256SUMS.minisig 4096
    sig=$WORK/SHA256SUMS.minisig.copy
    T=$(printf '\t')
    plain_text "$sig" tab && [ "$(wc -l < "$sig" | tr -d ' ')" = 4 ] \
        && line 1 "$sig" | grep -Eqx "untrusted comment: [$T -~]{0,1024}" \
        && line 2 "$sig" | grep -Eqx '[A-Za-z0-9+/]{99}=' \
        && line 3 "$sig" | grep -Eqx "trusted comment: [$T -~]{0,1024}" \
        && line 4 "$sig" | grep -Eqx '[A-Za-z0-9+/]{86}==' \
        && [ "$(line 2 "$sig" | base64 -d | head -c 2)" = ED ] \
        || die "SHA256SUMS.minisig is not a minisign signature (prehashed, four lines): $TAMPERED"
    if [ -n "$VERIFIER" ]; then
        "verify_$VERIFIER"
        CHECKED_BY=$VERIFIER
        say "signature OK ($CHECKED_BY, $KEY)"
    fi
fi

# ---- 2. SHA256SUMS and bundle.env, line by line; then every file they list
tail -n +7 "$SUMS" > "$WORK/chunks.list"
plain_text "$SUMS" && only_lines "$SUMS" "$HEX  $FILES" \
    && [ "$(head -n 6 "$SUMS" | cut -c 67- | tr '\n' ' ')" = "$ROOTS " ] \
    && only_lines "$WORK/chunks.list" "$HEX  chunks/[0-9]{4,6}-$HEX\\.part" \
    || die "SHA256SUMS is not '<sha256>  <name>' lines for $ROOTS, then the chunks: $TAMPERED"
i=0
while read -r h f; do
    [ "$f" = "chunks/$(printf %04d "$i")-$h.part" ] || die "SHA256SUMS: $f is out of order or misnamed: $TAMPERED"
    i=$((i + 1))
done < "$WORK/chunks.list"

copy_in bundle.env 1048576
ENVFILE=$WORK/bundle.env.copy
[ "$(sha_of "$ENVFILE")" = "$(line 3 "$SUMS" | cut -c1-64)" ] || die "bundle.env differs from SHA256SUMS: $TAMPERED"
plain_text "$ENVFILE" || die "bundle.env holds bytes other than printable ASCII lines: $TAMPERED"
n=1
for pair in "FORMAT=airlock-bundle/3" "NAME=$NAME" "VERSION=$VERSION" "MANIFEST_SHA256=$HEX" "TARGET_ARCH=(x86_64|aarch64)" \
            "TARGET_PYTHON=3\\.[0-9]{1,2}" "TARGET_GLIBC=2\\.[0-9]{1,2}" "TARGET_ACCELERATOR=(cpu|cuda1[0-9](\\.[0-9]{1,2})?)" \
            "ENV_MODE=(conda|wheelhouse|none)" "ENV_ID=(|[0-9a-f]{16})" "ENV_SHA256=(|$HEX)" "ENV_SIZE=$NUM" \
            "ENV_OFFSET=(|$NUM)" "ENV_UNPACKED=$NUM" "PAYLOAD_SIZE=$NUM" "NEED_BYTES=$NUM"; do
    line "$n" "$ENVFILE" | grep -Eqx -e "$pair" || die "bundle.env line $n is not ${pair%%=*}=... in its exact form"
    n=$((n + 1))
done
tail -n +$n "$ENVFILE" > "$WORK/sizes.list"
grep -v '  bundle\.env$' "$SUMS" > "$WORK/listed"
only_lines "$WORK/sizes.list" "SIZE=$NUM $FILES" \
    && [ "$(cut -d' ' -f2 "$WORK/sizes.list")" = "$(cut -c67- "$WORK/listed")" ] \
    || die "bundle.env's SIZE lines do not match SHA256SUMS: $TAMPERED"
value() { sed -n "s/^$1=//p" "$ENVFILE"; }
NAME=$(value NAME) VERSION=$(value VERSION) MSHA=$(value MANIFEST_SHA256) PYVER=$(value TARGET_PYTHON)
ARCH=$(value TARGET_ARCH) GLIBC=$(value TARGET_GLIBC) ACCEL=$(value TARGET_ACCELERATOR) NEED=$(value NEED_BYTES)
ENV_MODE=$(value ENV_MODE) ENV_ID=$(value ENV_ID) ENV_SHA256=$(value ENV_SHA256) ENV_SIZE=$(value ENV_SIZE)
ENV_OFFSET=$(value ENV_OFFSET) ENV_UNPACKED=$(value ENV_UNPACKED) PAYLOAD_SIZE=$(value PAYLOAD_SIZE)
[ "$MSHA" = "$(line 4 "$SUMS" | cut -c1-64)" ] || die "bundle.env and SHA256SUMS disagree about MANIFEST.json: $TAMPERED"
RELEASE=$NAME-$VERSION-$(printf %s "$MSHA" | cut -c1-12)
say "bundle $NAME $VERSION for $ARCH, glibc $GLIBC+, Python $PYVER, $ACCEL ($ENV_MODE env) -> $TARGET"

# ---- 3. this host against the bundle's (signed) target, in seconds, before gigabytes are hashed
# install_hint PACKAGE-WORDS: the install command for this host's package manager
install_hint() {
    family=$(sed -n 's/^ID_LIKE=//p; s/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"' | tr '\n' ' ')
    case " $family " in
        *" debian "*|*" ubuntu "*) echo "apt-get install $1" ;;
        *" rhel "*|*" fedora "*|*" centos "*) echo "dnf install $2" ;;
        *) echo "install $1 with this host's package manager" ;;
    esac
}
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -n 1)" = "$2" ]; }
host_arch=$(uname -m)
[ "$host_arch" = "$ARCH" ] || die "this bundle is for $ARCH hosts; this host is $host_arch: build one with target.arch: $host_arch"
host_glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')
[ -n "$host_glibc" ] || die "this host has no glibc (musl?): Airlock's wheels need glibc $GLIBC or later"
version_ge "$host_glibc" "$GLIBC" || die "this bundle needs glibc $GLIBC or later; this host has $host_glibc: build the bundle with target.glibc: \"$host_glibc\""
if [ "$ENV_MODE" != conda ]; then
    got=$("$SITE_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
        || die "no Python '$SITE_PYTHON' here: $(install_hint "python$PYVER python$PYVER-venv" "python$PYVER"), then --python /usr/bin/python$PYVER"
    [ "$got" = "$PYVER" ] || die "the bundle is for Python $PYVER, $SITE_PYTHON is Python $got: $(install_hint "python$PYVER python$PYVER-venv" "python$PYVER") and give --python /usr/bin/python$PYVER (or build the bundle with target.python: \"$got\")"
    if [ "$ENV_MODE" = wheelhouse ]; then
        "$SITE_PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
            || die "$SITE_PYTHON cannot make a venv (no venv/ensurepip module): $(install_hint "python$PYVER-venv" "python$PYVER")"
    fi
fi
case $ACCEL in
    cuda*)
        major=${ACCEL#cuda}; major=${major%%.*}
        case $major in 12) min_driver=525 ;; 13) min_driver=580 ;; *) min_driver=0 ;; esac
        driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
        [ -n "$driver" ] || driver=$(sed -n 's/.*Kernel Module[^0-9]*\([0-9][0-9.]*\).*/\1/p' /proc/driver/nvidia/version 2>/dev/null || true)
        if [ -z "$driver" ]; then
            say "note: no NVIDIA driver found: this CUDA $major bundle installs, and training and llama.cpp run on the CPU until a driver ($min_driver or newer) is installed"
        else
            version_ge "$driver" "$min_driver" || die "this bundle is for CUDA $major, which needs NVIDIA driver $min_driver or newer; this host has $driver: upgrade the driver, or install a bundle built for an older CUDA (target.accelerator: cuda12 needs 525+)"
            say "NVIDIA driver $driver (CUDA $major needs $min_driver+)"
        fi ;;
esac
avail=$(df -P -k "$TARGET" 2>/dev/null | tail -n 1 | tr -s ' ' | cut -d' ' -f4)
case $avail in
    ''|*[!0-9]*) say "could not read free space on $TARGET; continuing" ;;
    *) [ "$((avail / 1024))" -ge "$((NEED / 1048576 + 1))" ] \
        || die "not enough free space on $TARGET: the install needs $((NEED / 1048576 + 1)) MiB, $((avail / 1024)) MiB are free" ;;
esac

say "checking every file and chunk (size and sha256) ..."
paste -d ' ' "$WORK/listed" "$WORK/sizes.list" | while read -r h f size _; do
    size=${size#SIZE=}
    if ! is_regular "$BUNDLE/$f"; then echo "missing or not a regular file: $f"
    elif [ "$(size_of "$BUNDLE/$f")" != "$size" ]; then echo "truncated or wrong size: $f"
    elif [ "$(sha_of "$BUNDLE/$f")" != "$h" ]; then echo "damaged: $f"
    fi
done > "$WORK/problems"
if [ -s "$WORK/problems" ]; then
    echo "install.sh: error: these files are missing or damaged; copy ONLY these again from the media:" >&2
    sed 's/^/  /' "$WORK/problems" >&2
    exit 1
fi
say "all files and chunks match the signed list"

[ "$CHECK_ONLY" = 1 ] && { say "check only: done"; exit 0; }

# ---- 4. the env
# envs are named by their content (bundle.env's ENV_ID): releases with the same env share it
ENVNAME=$NAME-$ENV_ID
ENVDIR=$TARGET/envs/$ENVNAME
rm -rf -- "$TARGET/envs/.$ENVNAME.staging-"*
case $ENV_MODE in
    conda)
        # .airlock-env-ready: complete (a release committed with it); .airlock-env-unpacked: unpacked, wheels to come
        if [ ! -f "$ENVDIR/.airlock-env-ready" ] && [ ! -f "$ENVDIR/.airlock-env-unpacked" ]; then
            archive=$WORK/env.tar.gz
            if [ -n "$ENV_OFFSET" ]; then
                # the chunks in signed order, cut at the env blob's signed offset and size, into a private copy
                while read -r h f; do cat "$BUNDLE/$f"; done < "$WORK/chunks.list" \
                    | tail -c +"$((ENV_OFFSET + 1))" | head -c "$ENV_SIZE" > "$archive"
            elif is_regular "$TARGET/store/$ENV_SHA256"; then
                cat "$TARGET/store/$ENV_SHA256" > "$archive"
            else
                die "this delta bundle's env comes from its base bundle, which is not installed in $TARGET"
            fi
            [ "$(sha_of "$archive")" = "$ENV_SHA256" ] || die "the packed env differs from the signed one: $TAMPERED"
            tar -tvzf "$archive" --numeric-owner > "$WORK/env.list" 2>/dev/null || die "the packed env is not a tar.gz"
            [ -z "$(cut -c1 "$WORK/env.list" | tr -d 'dlh-')" ] \
                || die "the packed env holds devices, FIFOs or special files: refused"
            ! grep -Eq ' (\./)?\.airlock-env-(ready|unpacked)$' "$WORK/env.list" \
                || die "the packed env carries the installer's own completion marker: refused (it would skip its wheels)"
            total=0
            for s in $(grep '^-' "$WORK/env.list" | tr -s ' ' | cut -d' ' -f3); do total=$((total + s)); done
            [ "$total" -le "$ENV_UNPACKED" ] || die "the packed env unpacks to more than the $ENV_UNPACKED bytes signed"
            mkdir -p "$TARGET/envs"
            stage=$(mktemp -d "$TARGET/envs/.$ENVNAME.staging-XXXXXX")
            MADE_ENV=1 ENVDIR=$stage
            say "unpacking the conda env ($ENV_SIZE bytes) ..."
            tar -xzf "$archive" --no-same-owner --no-same-permissions -C "$stage" || die "unpacking the env failed"
            rm -f -- "$archive"
            ENVDIR=$TARGET/envs/$ENVNAME
            rm -rf -- "$ENVDIR"
            mv -- "$stage" "$ENVDIR"
            [ -x "$ENVDIR/bin/python" ] && [ -f "$ENVDIR/bin/conda-unpack" ] || die "the packed env has no bin/python"
            # conda-unpack's shebang is '#!/usr/bin/env python': run it with the env's own python.
            "$ENVDIR/bin/python" "$ENVDIR/bin/conda-unpack" || die "conda-unpack failed"
            : > "$ENVDIR/.airlock-env-unpacked"
        fi
        PY=$ENVDIR/bin/python ;;
    wheelhouse)
        command -v "$SITE_PYTHON" >/dev/null 2>&1 || die "no Python '$SITE_PYTHON' for the env (use --python PATH)"
        if [ ! -f "$ENVDIR/.airlock-env-ready" ]; then
            rm -rf -- "$ENVDIR"
            MADE_ENV=1
            say "making a venv with $SITE_PYTHON ..."
            "$SITE_PYTHON" -m venv "$ENVDIR" >/dev/null || die "making a venv with $SITE_PYTHON failed"
        fi
        PY=$ENVDIR/bin/python ;;
    none) ENVDIR=; PY=$SITE_PYTHON ;;
esac
got=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || die "$PY does not run"
[ "$got" = "$PYVER" ] || die "the bundle is for Python $PYVER, $PY is Python $got (use --python PATH)"

# ---- 5. stage 2, from a checked private copy
copy_in airlock-installer.pyz 67108864
[ "$(sha_of "$WORK/airlock-installer.pyz.copy")" = "$(line 2 "$SUMS" | cut -c1-64)" ] \
    || die "airlock-installer.pyz differs from SHA256SUMS: $TAMPERED"
mv -- "$WORK/airlock-installer.pyz.copy" "$WORK/installer.pyz"
set -- --target "$TARGET" --env "$ENVDIR" --contents-checked
[ -z "$KEY" ] || set -- "$@" --trusted-key "$KEY"
[ -z "$CHECKED_BY" ] || set -- "$@" --checked-by "$CHECKED_BY"
[ "$INSECURE" = 0 ] || set -- "$@" --insecure-no-signature
[ "$SELF_VERIFY" = 0 ] || set -- "$@" --insecure-self-verify
say "handing over to $PY"
rc=0
# shellcheck disable=SC2086  # PASS holds only the fixed option words above
"$PY" -I "$WORK/installer.pyz" install "$BUNDLE" "$@" $PASS || rc=$?
[ "$rc" != 0 ] || MADE_ENV=0
[ "$rc" != 0 ] || [ "$ENV_MODE" = none ] || [ ! -x "$TARGET/bin/airlock" ] || say "to use it: export PATH=\"$TARGET/bin:\$PATH\""
exit "$rc"
