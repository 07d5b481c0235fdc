"""`airlock bundle create|verify|inspect|install`: build a signed bundle (connected side), check and install
it (offline side). The work is in bundler.create and installer.*; this module only parses flags."""

from pathlib import Path


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)


def register(sub) -> None:
    p = sub.add_parser("bundle", help="build, verify, inspect and install air-gap bundles")
    bs = p.add_subparsers(dest="bundle_cmd", metavar="ACTION", required=True)

    c = bs.add_parser("create", help="build a bundle from a spec (connected machine)")
    c.add_argument("spec", type=Path, help="bundle spec (YAML/TOML/JSON), see bundler/examples/bundle.yaml")
    c.add_argument("--out", type=Path, required=True, help="bundle directory (replaced as a whole)")
    c.add_argument("--key", type=Path, help="minisign secret key (default <airlock home>/keys/airlock.key)")
    c.add_argument("--unsigned", action="store_true", help="do not sign (sites refuse it unless told otherwise)")
    c.add_argument("--since", type=Path, help="OLD MANIFEST.json: make a delta leaving out what the site has")
    c.add_argument("--max-chunk", type=_size, help="largest chunk, e.g. 2G, 650M (default 4095M)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    c.set_defaults(func=create)

    for name, helptext in (("verify", "check signature, SHA256SUMS and every chunk (offline, installs nothing)"),
                           ("inspect", "show contents, sizes, signature and SBOM summary (offline)")):
        v = bs.add_parser(name, help=helptext)
        v.add_argument("bundle", type=Path)
        v.add_argument("--trusted-key", type=Path, help="the site's minisign public key (or AIRLOCK_TRUSTED_KEY)")
        v.add_argument("--insecure-no-signature", action="store_true", help="accept a missing/bad signature")
        v.set_defaults(func=verify if name == "verify" else inspect, offline=True)

    i = bs.add_parser("install", help="verify and install a bundle (offline)")
    i.add_argument("bundle", type=Path)
    i.add_argument("--target", type=Path, help="Airlock home to install into (default: this one)")
    i.add_argument("--trusted-key", type=Path, help="the site's minisign public key (or AIRLOCK_TRUSTED_KEY)")
    i.add_argument("--insecure-no-signature", action="store_true", help="install without a valid signature (logged)")
    i.add_argument("--allow-downgrade", action="store_true", help="install an older version (logged)")
    i.add_argument("--no-smoke", action="store_true", help="skip the post-install smoke test")
    i.set_defaults(func=install, offline=True)


def create(args) -> int:
    from appliance import schema
    from bundler.create import create_bundle
    from bundler.spec import BundleSpec, resolve_paths
    from installer.format import DEFAULT_MAX_CHUNK

    data = schema.merge(schema.load_file(args.spec), schema.parse_overrides(args.set))
    spec = resolve_paths(schema.build(BundleSpec, data, where=str(args.spec)), args.spec.parent)
    create_bundle(spec, args.out, key=args.key, unsigned=args.unsigned, since=args.since,
                  max_chunk=args.max_chunk or DEFAULT_MAX_CHUNK)
    return 0


def verify(args) -> int:
    from installer.progress import bar
    from installer.verify import verify_bundle

    from installer.format import load_manifest

    manifest, _ = load_manifest(args.bundle)
    with bar("verify", manifest["payload_size"]) as advance:
        r = verify_bundle(args.bundle, args.trusted_key, insecure_no_signature=args.insecure_no_signature,
                          advance=advance)
    signed = f"signed by trusted key {r['key_id']}" if r["signed"] else "SIGNATURE NOT VERIFIED (insecure)"
    print(f"OK: {r['name']} {r['version']}: {r['chunks']} chunks, {r['files']} files, "
          f"{r['payload_size'] / 2**20:.1f} MiB, {signed}")
    return 0


def inspect(args) -> int:
    import json

    from installer.format import SBOM, SIGNATURE, load_manifest
    from installer.verify import check_signature, trusted_key_path

    from appliance.errors import AirlockError

    manifest, raw = load_manifest(args.bundle)
    print(f"{manifest['name']} {manifest['version']}  (created {manifest['created']}, {manifest['tool']})")
    t = manifest["target"]
    print(f"target: {t['os']}/{t['arch']} python {t['python']} {t['accelerator']}; env: {manifest['env']['mode']}")
    if manifest.get("base"):
        print(f"DELTA against {manifest['base']['name']} {manifest['base']['version']}")
    kinds: dict = {}
    for f in manifest["files"]:
        k = kinds.setdefault(f["kind"], [0, 0])
        k[0] += 1
        k[1] += f["size"]
    for kind, (n, size) in sorted(kinds.items()):
        print(f"  {kind:<8} {n:>5} files {size / 2**20:>10.1f} MiB")
    for m in manifest.get("models", []):
        flags = (" PICKLE" if m["pickle_weights"] else "") + (" REMOTE-CODE" if m["remote_code"] else "")
        print(f"  model {m['repo_id']}@{m['revision'][:12]} licence {m['license'] or '?'}{flags}")
    print(f"payload: {manifest['payload_size'] / 2**20:.1f} MiB in {len(manifest['chunks'])} chunk(s)")
    sig = args.bundle / SIGNATURE
    if not sig.is_file():
        print("signature: NONE (unsigned bundle)")
    else:
        try:
            key = check_signature(args.bundle, raw, trusted_key_path(args.trusted_key), False)
            print(f"signature: good, by trusted key {key}")
        except AirlockError as exc:
            print(f"signature: NOT verified: {exc.message}")
    if (args.bundle / SBOM).is_file():
        sbom = json.loads((args.bundle / SBOM).read_text())
        types: dict = {}
        for comp in sbom.get("components", []):
            types[comp["type"]] = types.get(comp["type"], 0) + 1
        print(f"SBOM: CycloneDX {sbom.get('specVersion')}: " + ", ".join(f"{n} {k}" for k, n in sorted(types.items())))
    return 0


def install(args) -> int:
    from appliance.paths import home
    from installer.install import install_bundle

    result = install_bundle(args.bundle, args.target or home(), args.trusted_key,
                            insecure_no_signature=args.insecure_no_signature, allow_downgrade=args.allow_downgrade,
                            smoke=not args.no_smoke)
    print(("already installed: " if result["already"] else "installed: ") + result["path"])
    return 0
