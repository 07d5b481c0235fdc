"""C and C++ compilers for an older glibc than this machine's: zig's `cc` and `c++` (the ziglang wheel from the
package registry), which link against the glibc version they are told and bring their own C++ runtime (libc++,
linked statically). A llama-cpp-python wheel built with them runs on RHEL 8 (glibc 2.28) from a Debian 12 build
machine, with nothing of this machine's libraries inside.

llama.cpp then runs without OpenMP (zig has no OpenMP runtime; ggml uses its own thread pool): on the 2-core
build machine, decode measured 1.03x the OpenMP build's speed (SmolLM2-135M Q8_0; python -m bench glibc228).
"""

import os
import subprocess
import sys
from pathlib import Path

from appliance.errors import AirlockError

ZIGLANG = "ziglang==0.17.1"


def compilers(glibc: str, arch: str, root: Path, log=print) -> dict:
    """{"CC", "CXX"}: wrapper scripts under `root` that run zig for `<arch>-linux-gnu.<glibc>` (kept between builds)."""
    if not (root / "ziglang").is_dir():
        log(f"zig ({ZIGLANG}) from the package registry, for a build against glibc {glibc}")
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(root),
                              ZIGLANG], capture_output=True, text=True,
                             env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
        if run.returncode != 0:
            raise AirlockError(f"zig did not install:\n{run.stderr[-1500:]}", where="spec: target.glibc",
                               code="zig.install", fix="check access to the package registry, or build the wheel "
                               "on a machine with that glibc and set tools.llama_cpp_wheel_file")
    out = {}
    for var, tool in (("CC", "cc"), ("CXX", "c++")):
        script = root / f"zig-{tool}-{arch}-glibc{glibc}"
        script.write_text(f"#!/bin/sh\nPYTHONPATH='{root}' exec '{sys.executable}' -m ziglang {tool} "
                          f"-target {arch}-linux-gnu.{glibc} \"$@\"\n")
        script.chmod(0o755)
        out[var] = str(script)
    return out
