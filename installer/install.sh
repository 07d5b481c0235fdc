#!/bin/sh
# Airlock bundle installer, stage 1. Needs only POSIX sh, coreutils and tar until the Python env exists.
#
#   sh install.sh [--target DIR] [--python PYTHON] [--check-only] [--trusted-key FILE]
#                 [--allow-downgrade] [--insecure-no-signature] [--no-smoke]
#
# 1. checks every chunk and file with sha256sum and lists the missing or damaged ones by name (re-copy only those);
# 2. checks free space; 3. unpacks the packed conda env (conda-pack) and runs conda-unpack, or makes a venv with
# the site's Python (wheelhouse bundles); 4. hands over to the env's Python (airlock-installer.pyz), which verifies
# the signature against the site's trusted key and does the rest. Rerunning after an interruption is safe.
set -eu

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "[install.sh] $*"; }

HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
TARGET=${AIRLOCK_HOME:-${HOME:-/root}/.local/share/airlock}
SITE_PYTHON=python3
CHECK_ONLY=0

# Take our own options; everything else goes to stage 2 unchanged.
n=$#
while [ "$n" -gt 0 ]; do
    a=$1; shift; n=$((n - 1))
    case $a in
        --target) [ "$n" -gt 0 ] || die "--target needs a directory"; TARGET=$1; shift; n=$((n - 1)) ;;
        --python) [ "$n" -gt 0 ] || die "--python needs a path"; SITE_PYTHON=$1; shift; n=$((n - 1)) ;;
        --check-only) CHECK_ONLY=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) set -- "$@" "$a" ;;
    esac
done

ORIG=$(pwd)  # relative paths given by the user (--trusted-key) stay relative to where they ran us
mkdir -p "$TARGET" || die "cannot create $TARGET"
TARGET=$(CDPATH= cd -- "$TARGET" && pwd)
cd "$HERE"
[ -f SHA256SUMS ] && [ -f bundle.env ] || die "$HERE is not a complete Airlock bundle (no SHA256SUMS or bundle.env); copy the whole directory again"
command -v sha256sum >/dev/null || die "sha256sum (coreutils) is required"

say "checking every chunk and file (sha256sum -c SHA256SUMS) ..."
bad=$(sha256sum -c SHA256SUMS 2>/dev/null | grep -v ': OK$' || true)
if [ -n "$bad" ]; then
    echo "install.sh: error: these files are missing or damaged; copy ONLY these again from the media:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    exit 1
fi
say "all chunks and files OK"

# bundle.env: KEY=value lines written by the bundler (read as data, never sourced)
NAME= VERSION= RELEASE= ENV_MODE= ENV_SHA256= ENV_SIZE= ENV_OFFSET= ENV_UNPACKED=0 PAYLOAD_SIZE=0
while IFS='=' read -r k v; do
    case $k in
        NAME) NAME=$v ;; VERSION) VERSION=$v ;; RELEASE) RELEASE=$v ;; ENV_MODE) ENV_MODE=$v ;;
        ENV_SHA256) ENV_SHA256=$v ;; ENV_SIZE) ENV_SIZE=$v ;; ENV_OFFSET) ENV_OFFSET=$v ;;
        ENV_UNPACKED) ENV_UNPACKED=$v ;; PAYLOAD_SIZE) PAYLOAD_SIZE=$v ;;
    esac
done < bundle.env
case $RELEASE in ''|*/*|.*) die "bundle.env is damaged (release id)" ;; esac
say "bundle $NAME $VERSION ($ENV_MODE env) -> $TARGET"

need=$(( (PAYLOAD_SIZE + ENV_UNPACKED) * 11 / 10 ))
avail=$(df -B1 --output=avail "$TARGET" 2>/dev/null | tail -n 1 | tr -d ' ')
case $avail in
    ''|*[!0-9]*) say "could not read free space on $TARGET; continuing" ;;
    *) [ "$avail" -ge "$need" ] || die "not enough free space on $TARGET: need $need bytes, have $avail" ;;
esac
# Authenticity before anything from the bundle runs. Where the host has minisign, check the signed manifest here
# and bind the installer and every chunk to it; otherwise the bundle's own installer checks it in stage 2.
KEY=${AIRLOCK_TRUSTED_KEY:-} INSECURE=0 prev=
for a in "$@"; do
    [ "$prev" = --trusted-key ] && KEY=$a
    case $a in --trusted-key=*) KEY=${a#--trusted-key=} ;; --insecure-no-signature) INSECURE=1 ;; esac
    prev=$a
done
[ -n "$KEY" ] || { [ -f "$TARGET/keys/trusted.pub" ] && KEY=$TARGET/keys/trusted.pub; } || true
case $KEY in ''|/*) ;; *) KEY=$ORIG/$KEY ;; esac
if [ "$INSECURE" = 1 ]; then
    say "WARNING: --insecure-no-signature: the bundle's origin is NOT checked (the audit log will say so)"
elif [ -z "$KEY" ]; then
    die "no trusted key: give --trusted-key FILE (the site's minisign public key) or set AIRLOCK_TRUSTED_KEY"
elif command -v minisign >/dev/null; then
    minisign -Vq -m MANIFEST.json -p "$KEY" >/dev/null 2>&1 \
        || die "MANIFEST.json's signature does not verify with $KEY: the bundle was changed after signing or was signed by another key; do not install it"
    for f in install.sh airlock-installer.pyz; do
        h=$(sha256sum "$f" | cut -c1-64)
        grep -q "\"$h\"" MANIFEST.json || die "$f differs from the one the signed manifest names; do not install this bundle"
    done
    unbound=$(grep '  chunks/' SHA256SUMS | while read -r h f; do grep -q "\"$h\"" MANIFEST.json || echo "$f"; done)
    [ -z "$unbound" ] || die "chunks not named by the signed manifest (from another bundle?): $unbound"
    say "signature OK (minisign, $KEY); installer and chunks match the signed manifest"
else
    say "minisign is not on this host: the signature is checked in stage 2 by the bundle's installer (apt-get install minisign to check it before anything from the bundle runs)"
fi
[ "$CHECK_ONLY" = 1 ] && { say "check only: done"; exit 0; }

ENVDIR="$TARGET/envs/$RELEASE"
case $ENV_MODE in
    conda)
        if [ ! -f "$ENVDIR/.airlock-env-ready" ]; then
            # A rerun after an interruption starts the env over: it is not referenced by anything until stage 2
            # commits the release.
            rm -rf "$ENVDIR"
            mkdir -p "$ENVDIR"
            say "unpacking the conda env ($ENV_SIZE bytes) ..."
            if [ -n "$ENV_OFFSET" ]; then
                chunks=$(grep '  chunks/' SHA256SUMS | cut -c 67-)
                # shellcheck disable=SC2086  # chunk names have no spaces
                cat $chunks | tail -c +$((ENV_OFFSET + 1)) | head -c "$ENV_SIZE" | tar -xzf - --no-same-owner -C "$ENVDIR" \
                    || die "unpacking the env failed"
            elif [ -f "$TARGET/store/$ENV_SHA256" ]; then
                tar -xzf "$TARGET/store/$ENV_SHA256" --no-same-owner -C "$ENVDIR" || die "unpacking the env failed"
            else
                die "this delta bundle's env comes from its base bundle, which is not installed in $TARGET"
            fi
            [ -x "$ENVDIR/bin/python" ] || die "the packed env has no bin/python"
            # conda-unpack's shebang is '#!/usr/bin/env python': run it with the env's own python.
            "$ENVDIR/bin/python" "$ENVDIR/bin/conda-unpack" || die "conda-unpack failed"
            : > "$ENVDIR/.airlock-env-ready"
        fi
        PY="$ENVDIR/bin/python" ;;
    wheelhouse)
        if [ ! -f "$ENVDIR/.airlock-env-ready" ]; then
            rm -rf "$ENVDIR"
            command -v "$SITE_PYTHON" >/dev/null || die "no Python '$SITE_PYTHON' for the wheelhouse env (use --python)"
            "$SITE_PYTHON" -m venv "$ENVDIR" || die "making a venv with $SITE_PYTHON failed"
            : > "$ENVDIR/.airlock-env-ready"
        fi
        PY="$ENVDIR/bin/python" ;;
    none) ENVDIR=; PY=$SITE_PYTHON ;;
    *) die "unknown env mode '$ENV_MODE' in bundle.env" ;;
esac

say "handing over to $PY"
cd "$ORIG"
exec "$PY" "$HERE/airlock-installer.pyz" install "$HERE" --target "$TARGET" --env "${ENVDIR:-}" "$@"
