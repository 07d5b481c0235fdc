"""README.txt for the site's administrator: what is inside, how to verify, how to install. Plain text."""


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def render(manifest: dict, key_id: str | None) -> str:
    kinds: dict[str, list] = {}
    for f in manifest["files"]:
        kinds.setdefault(f["kind"], []).append(f)
    target = manifest["target"]
    lines = [f"Airlock bundle {manifest['name']} {manifest['version']}",
             f"Created {manifest['created']} by {manifest['tool']} for {target['os']}/{target['arch']}, "
             f"Python {target['python']}, {target['accelerator']}.", ""]
    if appliance := manifest.get("appliance"):
        lines += [f"This bundle carries Airlock {appliance['version']} itself and its whole stack: after the install,",
                  "the `airlock` command is in <target>/bin.", ""]
    if base := manifest.get("base"):
        lines += [f"This is a DELTA: it needs {base['name']} {base['version']} installed first.", ""]
    lines += ["WHAT IS INSIDE (size per component)"]
    for m in manifest.get("models", []):
        size = sum(f["size"] for f in kinds.get("model", []) if f["path"].startswith(m["prefix"] + "/"))
        pinned = f" (pinned from {m['ref']})" if m.get("ref") and m["ref"] != m["revision"] else ""
        lines.append(f"  model    {m['repo_id']} @ {m['revision']}{pinned}  {_size(size)}  "
                     f"({m['license'] or 'licence not stated'})"
                     + ("  PICKLE WEIGHTS (install needs --allow-pickle)" if m["pickle_weights"] else "")
                     + ("  REMOTE CODE ALLOWED" if m["remote_code"] else ""))
    for kind in ("wheel", "env", "tool", "dataset"):
        group = kinds.get(kind, [])
        if group:
            lines.append(f"  {kind:<8} {len(group)} file(s), {_size(sum(f['size'] for f in group))}")
    big = sorted(kinds.get("wheel", []), key=lambda f: -f["size"])[:5]
    lines += [f"             {f['path'].split('/')[-1]}  {_size(f['size'])}" for f in big]
    packed = sum(b["size"] for b in manifest["blobs"].values() if b.get("offset") is not None)
    lines += [f"  payload  {len(manifest['chunks'])} chunk(s) in chunks/, {_size(manifest['payload_size'])} "
              f"({_size(packed)} of content, each distinct file once)", "",
              "HOW TO VERIFY (before running anything from this directory; stock tools only)",
              "  cd THIS_DIRECTORY",
              "  minisign -Vm SHA256SUMS -p YOUR_SITE_KEY.pub     # the signature over the list of every file"
              + (f" (key {key_id})" if key_id else "  -- THIS BUNDLE IS NOT SIGNED"),
              "  sha256sum -c --strict SHA256SUMS                 # every file and chunk against that list",
              "  No minisign? OpenSSL 1.1.1 or later can check the signature too: install.sh does it, and",
              "  `sh install.sh --check-only --trusted-key KEY` verifies without installing. install.sh is itself",
              "  listed in SHA256SUMS: verify before you run it, or run the trusted copy an earlier install left:",
              "  sh <target>/bin/airlock-install --bundle THIS_DIRECTORY --trusted-key KEY", "",
              "HOW TO INSTALL (offline; POSIX sh, coreutils, GNU tar, and minisign or openssl)",
              "  sh install.sh --target /opt/airlock --trusted-key /etc/airlock/trusted.pub"
              + ("  [--python /usr/bin/python3.11]" if manifest["env"]["mode"] == "wheelhouse" else ""),
              "  Options: --allow-downgrade (an older version), --allow-pickle (pickle weights), --check-only,",
              "  --insecure-no-signature (unsigned; logged). A rerun after an interruption (kill, SSH drop, power)",
              "  picks up where it stopped; nothing becomes visible until the install is complete, and a refused",
              "  install leaves the target as it was.", "",
              "  With Airlock already installed: airlock bundle verify|inspect|install|rollback THIS_DIRECTORY", "",
              "FILES",
              "  SHA256SUMS (+ .minisig)  the signed root: the sha256 of every other file and chunk",
              "  MANIFEST.json            every file with size/sha256/kind, every chunk, models, wheels, env",
              "  bundle.env               the few facts install.sh needs, with every file's size",
              "  sbom.cdx.json            CycloneDX 1.5 software bill of materials",
              "  install.sh, airlock-installer.pyz   the installer (stage 1 in sh, stage 2 in Python)", ""]
    return "\n".join(lines)
