"""`airlock bundle plan|create|verify|inspect|install|rollback`: size and build a signed bundle (connected side),
check and install it (offline side). The work is in bundler.* and installer.*; this module only parses flags."""

from pathlib import Path


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)


def register(sub) -> None:
    p = sub.add_parser("bundle", help="plan, build, verify, inspect, install and roll back air-gap bundles")
    bs = p.add_subparsers(dest="bundle_cmd", metavar="ACTION", required=True)

    c = bs.add_parser("create", help="build a bundle from a spec (connected machine)")
    c.add_argument("spec", type=Path, help="bundle spec (YAML/TOML/JSON), see bundler/examples/bundle.yaml")
    c.add_argument("--out", type=Path, required=True, help="bundle directory (replaced as a whole)")
    c.add_argument("--key", type=Path, help="minisign secret key (default <airlock home>/keys/airlock.key)")
    c.add_argument("--unsigned", action="store_true", help="do not sign (sites refuse it unless told otherwise)")
    c.add_argument("--since", type=Path, help="OLD MANIFEST.json: make a delta leaving out what the site has")
    c.add_argument("--max-chunk", type=_size, help="largest chunk, e.g. 2G, 650M (default 4095M)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    c.add_argument("--update", action="store_true",
                   help="resolve every hub model's branch again and move the pins in SPEC.lock")
    c.set_defaults(func=create)

    pl = bs.add_parser("plan", help="sizes before anything moves: each item, the media, the host's disk")
    pl.add_argument("spec", type=Path, help="bundle spec (YAML/TOML/JSON)")
    pl.add_argument("--max-chunk", type=_size, help="largest chunk, e.g. 2G, 650M (default 4095M)")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    pl.add_argument("--update", action="store_true", help="resolve hub branches again instead of SPEC.lock's pins")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=plan)

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
    i.add_argument("--python", type=Path, help="the site's Python for a wheelhouse env (default: this one's base)")
    i.add_argument("--insecure-no-signature", action="store_true", help="install without a valid signature (logged)")
    i.add_argument("--allow-downgrade", action="store_true", help="install an older version (logged)")
    i.add_argument("--allow-replace", action="store_true",
                   help="install another build of the installed version in its place (logged)")
    i.add_argument("--allow-pickle", action="store_true", help="accept pickle weights the bundle declares (logged)")
    i.add_argument("--no-smoke", action="store_true", help="skip the post-install smoke test")
    i.set_defaults(func=install, offline=True)

    r = bs.add_parser("rollback", help="make the previously current release current again (offline)")
    r.add_argument("name", nargs="?", help="the bundle name (needed when the home holds several)")
    r.add_argument("--target", type=Path, help="Airlock home (default: this one)")
    r.set_defaults(func=rollback, offline=True)


def _spec(args):
    from appliance import schema
    from bundler.spec import BundleSpec, resolve_paths

    data = schema.merge(schema.load_file(args.spec), schema.parse_overrides(args.set))
    return resolve_paths(schema.build(BundleSpec, data, where=str(args.spec)), args.spec.parent)


def create(args) -> int:
    from bundler.create import create_bundle
    from bundler.lock import lock_path
    from installer.format import DEFAULT_MAX_CHUNK

    create_bundle(_spec(args), args.out, key=args.key, unsigned=args.unsigned, since=args.since,
                  max_chunk=args.max_chunk or DEFAULT_MAX_CHUNK, lock=lock_path(args.spec), update=args.update)
    return 0


def plan(args) -> int:
    import json

    from bundler import models
    from bundler.hub import Hub
    from bundler.lock import lock_path, read_lock
    from bundler.plan import make_plan, render
    from installer.format import DEFAULT_MAX_CHUNK

    spec = _spec(args)
    hub = Hub(spec.hub)
    pins = read_lock(lock_path(args.spec))
    origins = [models.locate(m, hub, pins, args.update) for m in spec.models]
    result = make_plan(spec, origins, hub, args.max_chunk or DEFAULT_MAX_CHUNK, log=lambda *_: None)
    print(json.dumps(result.to_dict(), indent=1) if args.json else render(result))
    return 0


def verify(args) -> int:
    from appliance.errors import AirlockError
    from installer.progress import bar
    from installer.verify import authenticate, check_all, trusted_key_path

    auth = authenticate(args.bundle, trusted_key_path(args.trusted_key),
                        insecure_no_signature=args.insecure_no_signature)
    with bar("verify", auth.manifest.payload_size) as advance:
        check_all(auth, advance=advance)
    m = auth.manifest
    from installer.host import check_host, env_python

    try:  # the media are fine; whether this host can run the bundle is a warning here (install refuses)
        check_host(m, None, env_python(m), log=lambda text: None)
    except AirlockError as exc:
        print(f"WARNING: {exc.message}; installing here will be refused ({exc.fix})")
    for x in m.models:
        if x.pickle_weights:
            print(f"WARNING: {x.repo_id} carries pickle weights ({', '.join(x.pickle_weights)}), which can run code "
                  "when loaded; installing needs --allow-pickle")
    signed = f"signed by trusted key {auth.key_id}" if auth.key_id else \
        f"SIGNATURE NOT VERIFIED (insecure: {auth.signature_problem})"
    print(f"OK: {m.name} {m.version}: {len(m.chunks)} chunks, {len(m.files)} files, "
          f"{m.payload_size / 2**20:.1f} MiB, every file matches the signed SHA256SUMS, {signed}")
    return 0


def inspect(args) -> int:
    """What the bundle holds, read through the same trust chain as verify (the signature may be waived here only
    to look, never to install)."""
    import hashlib
    import json

    from installer.chunks import read_regular
    from installer.format import MAX_MANIFEST, SBOM
    from installer.verify import authenticate, trusted_key_path

    auth = authenticate(args.bundle, trusted_key_path(args.trusted_key), insecure_no_signature=True)
    m = auth.manifest
    print(f"{m.name} {m.version}  (created {m.created}, {m.tool})")
    t = m.target
    print(f"target: {t.os}/{t.arch} python {t.python} {t.accelerator}; env: {m.env.mode}")
    if m.appliance:
        print(f"appliance: Airlock {m.appliance.version} with {', '.join(m.appliance.engines)}")
    if m.base:
        print(f"DELTA against {m.base.name} {m.base.version}")
    kinds: dict = {}
    for f in m.files:
        k = kinds.setdefault(f.kind, [0, 0])
        k[0] += 1
        k[1] += f.size
    for kind, (n, size) in sorted(kinds.items()):
        print(f"  {kind:<8} {n:>5} files {size / 2**20:>10.1f} MiB")
    for x in m.models:
        flags = (" PICKLE" if x.pickle_weights else "") + (" REMOTE-CODE" if x.remote_code else "")
        pinned = f" (pinned from {x.ref})" if x.ref and x.ref != x.revision else ""
        print(f"  model {x.repo_id}@{x.revision}{pinned} licence {x.license or '?'}{flags}")
    print(f"payload: {m.payload_size / 2**20:.1f} MiB in {len(m.chunks)} chunk(s)")
    print(f"signature: good, by trusted key {auth.key_id}" if auth.key_id else
          f"signature: NOT verified: {auth.signature_problem}")
    data = read_regular(args.bundle / SBOM, SBOM, MAX_MANIFEST)
    if hashlib.sha256(data).hexdigest() != dict((n, s) for s, n in auth.sums)[SBOM]:
        print("SBOM: differs from the signed SHA256SUMS (altered)")
    else:
        sbom = json.loads(data)
        types: dict = {}
        for comp in sbom.get("components", []):
            types[comp["type"]] = types.get(comp["type"], 0) + 1
        print(f"SBOM: CycloneDX {sbom.get('specVersion')}: " + ", ".join(f"{n} {k}" for k, n in sorted(types.items())))
    return 0


def install(args) -> int:
    from appliance.paths import home
    from installer.install import install_bundle

    result = install_bundle(args.bundle, args.target or home(), args.trusted_key, python=args.python,
                            insecure_no_signature=args.insecure_no_signature, allow_downgrade=args.allow_downgrade,
                            allow_replace=args.allow_replace,
                            allow_pickle=args.allow_pickle, smoke=not args.no_smoke)
    print(("already installed: " if result["already"] else "installed: ") + result["path"])
    return 0


def rollback(args) -> int:
    from appliance.paths import home
    from installer.install import airlock_home
    from installer.rollback import roll_back

    target = (args.target or home()).resolve()
    with airlock_home(target):
        result = roll_back(target, args.name)
    print(f"rolled back {result['name']}: current is {result['to']} ({result['version']}), was {result['from']}")
    return 0
