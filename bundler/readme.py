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
    lines = [f"Airlock bundle {manifest['name']} {manifest['version']}",
             f"Created {manifest['created']} by {manifest['tool']} for {manifest['target']['os']}/"
             f"{manifest['target']['arch']}, Python {manifest['target']['python']}, "
             f"{manifest['target']['accelerator']}.", ""]
    if base := manifest.get("base"):
        lines += [f"This is a DELTA: it needs {base['name']} {base['version']} installed first.", ""]
    lines += ["WHAT IS INSIDE"]
    for m in manifest.get("models", []):
        lines.append(f"  model    {m['repo_id']} @ {m['revision'][:12]}  ({m['license'] or 'licence not stated'})"
                     + ("  PICKLE WEIGHTS ALLOWED" if m["pickle_weights"] else "")
                     + ("  REMOTE CODE ALLOWED" if m["remote_code"] else ""))
    for kind in ("dataset", "wheel", "tool", "env"):
        group = kinds.get(kind, [])
        if group:
            lines.append(f"  {kind:<8} {len(group)} file(s), {_size(sum(f['size'] for f in group))}")
    lines += [f"  payload  {len(manifest['chunks'])} chunk(s) in chunks/, {_size(manifest['payload_size'])}", "",
              "HOW TO VERIFY (before installing; needs only coreutils, optionally minisign)",
              "  cd THIS_DIRECTORY",
              "  sha256sum -c SHA256SUMS            # every chunk and file; re-copy any that FAIL",
              "  minisign -Vm MANIFEST.json -p YOUR_TRUSTED_KEY.pub"
              + (f"   # signed by key {key_id}" if key_id else "   # THIS BUNDLE IS NOT SIGNED"), "",
              "HOW TO INSTALL (offline; POSIX sh + coreutils + tar until the Python env exists)",
              "  sh install.sh --target /opt/airlock --trusted-key /etc/airlock/trusted.pub",
              "  Options: --allow-downgrade (install an older version), --insecure-no-signature (unsigned; logged).",
              "  A rerun after an interruption (kill, SSH drop, power) picks up where it stopped;",
              "  nothing becomes visible until the install is complete.", "",
              "  With Airlock already installed: airlock bundle verify|inspect|install THIS_DIRECTORY", "",
              "FILES",
              "  MANIFEST.json (+ .minisig)  every file with size/sha256/kind, every chunk with its hash",
              "  SHA256SUMS                  for sha256sum -c",
              "  sbom.cdx.json               CycloneDX 1.5 software bill of materials",
              "  install.sh, airlock-installer.pyz, bundle.env   the installer", ""]
    return "\n".join(lines)
