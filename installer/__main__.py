"""`python airlock-installer.pyz install BUNDLE --target DIR --env ENVDIR [...]` and `... verify BUNDLE`:
the installer's entry point when run from a bundle (install.sh calls it with the env's Python)."""

import argparse
import os
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="airlock-installer")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install")
    p.add_argument("bundle", type=Path)
    p.add_argument("--target", type=Path, required=True)
    p.add_argument("--env", default="")
    p.add_argument("--trusted-key", type=Path)
    p.add_argument("--insecure-no-signature", action="store_true")
    p.add_argument("--allow-downgrade", action="store_true")
    p.add_argument("--no-smoke", action="store_true")
    v = sub.add_parser("verify")
    v.add_argument("bundle", type=Path)
    v.add_argument("--trusted-key", type=Path)
    args = parser.parse_args(argv)

    from appliance.errors import AirlockError
    from appliance.offline import enforce_offline

    os.environ.setdefault("AIRLOCK_HOME", str(getattr(args, "target", "") or ""))
    enforce_offline()  # the offline side never opens a connection
    try:
        if args.cmd == "verify":
            from .verify import verify_bundle

            r = verify_bundle(args.bundle, args.trusted_key)
            print(f"OK: {r['name']} {r['version']}, {r['chunks']} chunks, signed by key {r['key_id']}")
            return 0
        env_dir = Path(args.env) if args.env else None
        _bootstrap_wheelhouse(args, env_dir)
        from .install import install_bundle

        result = install_bundle(args.bundle, args.target, args.trusted_key, env_dir=env_dir,
                                insecure_no_signature=args.insecure_no_signature,
                                allow_downgrade=args.allow_downgrade, smoke=not args.no_smoke)
        print(f"installed: {result['path']}")
        return 0
    except AirlockError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code


def _bootstrap_wheelhouse(args, env_dir: Path | None) -> None:
    """A fresh wheelhouse venv has no `cryptography` to check the signature with: install the bundle's wheels
    (hash-checked against the manifest, into the not-yet-committed env) and start again with the env's Python."""
    from .envsetup import has_crypto, pip_install

    if has_crypto() or env_dir is None or os.environ.get("AIRLOCK_BOOTSTRAPPED"):
        return
    import hashlib
    import tempfile

    from .extract import extract_blobs
    from .format import load_manifest

    manifest, _ = load_manifest(args.bundle)
    wheels = [f for f in manifest["files"] if f["path"].startswith("wheels/")]
    if not wheels:
        return
    store = Path(args.target) / "store"
    extract_blobs(args.bundle, manifest, store)
    with tempfile.TemporaryDirectory() as tmp:
        for f in wheels:
            dst = Path(tmp) / Path(f["path"]).name
            dst.write_bytes((store / f["sha256"]).read_bytes())
            assert hashlib.sha256(dst.read_bytes()).hexdigest() == f["sha256"]
        pip_install(env_dir / "bin" / "python", Path(tmp))
    os.environ["AIRLOCK_BOOTSTRAPPED"] = "1"
    os.execv(str(env_dir / "bin" / "python"), [str(env_dir / "bin" / "python"), *sys.argv])


if __name__ == "__main__":
    sys.exit(main())
