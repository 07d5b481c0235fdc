"""`airlock keys generate`: a minisign key pair for signing bundles (secret key 0600, no password).
`airlock keys api create|list|revoke|rotate`: API keys for `airlock serve` (appliance.serve.keys)."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("keys", help="bundle signing keys (generate) and API keys for airlock serve (api)")
    ks = p.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True)
    g = ks.add_parser("generate", help="write a minisign key pair (default <airlock home>/keys/airlock.{key,pub})")
    g.add_argument("--out", type=Path, help="directory for the key pair (default <airlock home>/keys)")
    g.add_argument("--name", default="airlock", help="file name stem (default airlock)")
    g.add_argument("--force", action="store_true", help="replace an existing key pair")
    g.set_defaults(func=generate)

    a = ks.add_parser("api", help="API keys for `airlock serve`")
    acts = a.add_subparsers(dest="api_cmd", metavar="ACTION", required=True)
    c = acts.add_parser("create", help="a new key (shown once, stored only as a salted hash)")
    c.add_argument("--name", required=True, help="who or what uses it (lower-case, digits, '-')")
    c.add_argument("--rpm", type=int, help="requests per minute")
    c.add_argument("--tpm", type=int, help="tokens (prompt + answer) per minute")
    c.add_argument("--quota-tokens", type=int, help="tokens over the key's life")
    c.add_argument("--expires", help="last valid day, YYYY-MM-DD (UTC)")
    c.add_argument("--models", help="model ids the key may use, comma separated (default: all)")
    c.add_argument("--admin", action="store_true",
                   help="may also read the server's /metrics (every key's name and counts); other keys get 403")
    c.set_defaults(func=api_create)
    acts.add_parser("list", help="every key with its limits and usage (never the secret)").set_defaults(func=api_list)
    for name, helptext, func in (("revoke", "stop a key at once", api_revoke),
                                 ("rotate", "a new secret for a key, same limits; the old one stops", api_rotate)):
        r = acts.add_parser(name, help=helptext)
        r.add_argument("name")
        r.set_defaults(func=func)


def api_create(args) -> int:
    from ..serve import keys

    models = [m.strip() for m in args.models.split(",")] if args.models else []
    secret = keys.create(args.name, rpm=args.rpm, tpm=args.tpm, quota_tokens=args.quota_tokens,
                         expires=args.expires, models=models, admin=args.admin)
    print(secret)
    print(f"# the key for {args.name!r}: shown this once, stored only as a salted hash", flush=True)
    return 0


def api_list(args) -> int:
    from ..serve import keys

    rows = keys.overview()
    if not rows:
        print("no API keys (create one: airlock keys api create --name app1)")
        return 0
    print(f"{'NAME':<16} {'STATE':<10} {'RPM':>6} {'TPM':>8} {'QUOTA':>10} {'USED':>10} {'EXPIRES':<10} {'ADMIN':<5} "
          "MODELS")
    for r in rows:
        print(f"{r['name']:<16} {r['state']:<10} {r['rpm']:>6} {r['tpm']:>8} {r['quota']:>10} {r['used']:>10} "
              f"{r['expires']:<10} {r['admin']:<5} {r['models']}")
    return 0


def api_revoke(args) -> int:
    from ..serve import keys

    keys.revoke(args.name)
    print(f"revoked {args.name}: a running server refuses it from its next request")
    return 0


def api_rotate(args) -> int:
    from ..serve import keys

    secret = keys.rotate(args.name)
    print(secret)
    print(f"# the new key for {args.name!r}; the old one no longer works", flush=True)
    return 0


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
