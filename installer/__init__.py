"""Airlock's offline installer: everything after install.sh has a Python environment.

install.sh (POSIX sh + coreutils + tar) checks the chunks, unpacks the packed env and hands over to
`python airlock-installer.pyz install BUNDLE ...` (this package, zipped into the bundle), which verifies the
signature, refuses downgrades and deltas without their base, extracts the payload with a hardened extractor, puts
models into the Hugging Face cache, runs a smoke test and commits the release atomically.
The same functions back `airlock bundle verify|inspect|install`.
Entry points: installer.install.install_bundle(), installer.verify.verify_bundle().
"""
