"""`python airlock-installer.pyz install BUNDLE --target DIR [...]` and `... verify BUNDLE`: stage 2, run by
install.sh with the env's Python once stage 1 has checked the signature and every file. Standard library only:
in a fresh venv nothing else exists until the bundle's wheels are installed, and they are installed by this."""

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
    p.add_argument("--env", default="", help="the env install.sh made (empty: none)")
    p.add_argument("--python", type=Path, help="the site's Python, for a venv this stage makes")
    p.add_argument("--trusted-key", type=Path)
    p.add_argument("--insecure-no-signature", action="store_true")
    p.add_argument("--insecure-self-verify", action="store_true",
                   help="(install.sh) no minisign or openssl: this stage's own check is the only one")
    p.add_argument("--allow-downgrade", action="store_true")
    p.add_argument("--allow-replace", action="store_true")
    p.add_argument("--allow-pickle", action="store_true")
    p.add_argument("--no-smoke", action="store_true")
    p.add_argument("--checked-by", default="", help="(install.sh) the tool that verified the signature first")
    p.add_argument("--contents-checked", action="store_true", help="(install.sh) every file was hashed already")
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
        from .install import install_bundle

        checked_by = args.checked_by or None
        if args.insecure_self_verify:
            checked_by = "the bundle's own installer only (INSECURE: no minisign or openssl on this host)"
        result = install_bundle(args.bundle, args.target, args.trusted_key, env_dir=Path(args.env) if args.env
                                else None, python=args.python, insecure_no_signature=args.insecure_no_signature,
                                allow_downgrade=args.allow_downgrade, allow_replace=args.allow_replace,
                                allow_pickle=args.allow_pickle,
                                smoke=not args.no_smoke, contents_checked=args.contents_checked,
                                checked_by=checked_by)
        print(("already installed: " if result["already"] else "installed: ") + result["path"])
        return 0
    except AirlockError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
