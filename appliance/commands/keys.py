"""`airlock keys generate`: a minisign key pair for signing bundles (secret key 0600, no password)."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("keys", help="signing keys for bundles")
    ks = p.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True)
    g = ks.add_parser("generate", help="write a minisign key pair (default <airlock home>/keys/airlock.{key,pub})")
    g.add_argument("--out", type=Path, help="directory for the key pair (default <airlock home>/keys)")
    g.add_argument("--name", default="airlock", help="file name stem (default airlock)")
    g.add_argument("--force", action="store_true", help="replace an existing key pair")
    g.set_defaults(func=generate)


def generate(args) -> int:
    from ..errors import AirlockError
    from ..paths import home

    from installer import minisign

    out = args.out or home() / "keys"
    secret, public = out / f"{args.name}.key", out / f"{args.name}.pub"
    if secret.exists() and not args.force:
        raise AirlockError("a secret key already exists", where=str(secret),
                           fix="keep it, or pass --force to replace it (bundles signed with it will no longer verify "
                           "against the new public key)")
    if args.force:
        secret.unlink(missing_ok=True)
    key = minisign.generate(secret, public)
    print(f"secret key: {secret} (mode 0600, unencrypted: keep it on this machine)")
    print(f"public key: {public} (key id {key.id_hex}): copy it to each site as its trusted key")
    return 0
