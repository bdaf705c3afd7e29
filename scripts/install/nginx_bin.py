"""The nginx binary being installed into: found on PATH or named by --nginx, read from
`nginx -V` (version, configure arguments, --conf-path, --modules-path), and asked whether the
built modules load into it (`nginx -t` on a throwaway configuration that only loads them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Optional

from patch import MODULE_FILES
from ui import Fail


def _version_tuple(v: str):
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def version_text(n: int) -> str:
    """nginx's numeric version (1022001) as it writes it (1.22.1)."""
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"


class Nginx:
    def __init__(self, path: str, v_output: str):
        self.path = path
        m = re.search(r"^nginx version: [^/\n]*/([0-9][0-9.]*)", v_output, re.M)
        if not m:
            raise Fail(f"cannot read the version from {path} -V: {v_output}")
        self.version = m.group(1).rstrip(".")
        m = re.search(r"^configure arguments: (.*)$", v_output, re.M)
        self.configure_args = m.group(1) if m else ""
        self.prefix = self.configure_arg("prefix") or "/usr/local/nginx"
        self.conf_path = self._in_prefix(self.configure_arg("conf-path") or "conf/nginx.conf")
        self.modules_path = self._in_prefix(self.configure_arg("modules-path") or "modules")

    def configure_arg(self, name: str) -> Optional[str]:
        """The value of --NAME=VALUE in the configure arguments (without quotes)."""
        m = re.search(r" --" + re.escape(name) + r"=([^ ]*)", " " + self.configure_args)
        return m.group(1).replace("'", "").replace('"', "") if m else None

    def _in_prefix(self, p: str) -> str:
        return p if p.startswith("/") else self.prefix.rstrip("/") + "/" + p

    def with_compat(self) -> bool:
        return "--with-compat" in self.configure_args.split()

    def has_error_log_flag(self) -> bool:
        """nginx 1.19.5 added -e: `nginx -t` then reports to stderr, not the compiled-in log."""
        return _version_tuple(self.version) >= (1, 19, 5)

    def check_modules(self, from_dir: str) -> None:
        """nginx itself checks the version and --with-compat signature the modules were built with."""
        for m in MODULE_FILES:
            if not os.path.isfile(os.path.join(from_dir, m)):
                raise Fail(f"{from_dir}/{m} not found: build the modules first (scripts/build.sh --nginx system), "
                           "or add --build")
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                for m in MODULE_FILES:
                    f.write(f'load_module "{from_dir}/{m}";\n')
                f.write(f'pid "{tmp}/nginx.pid";\nerror_log stderr;\nevents {{}}\n')
            cmd = [self.path, "-t", "-c", conf, "-p", tmp + "/"] + (["-e", "stderr"] if self.has_error_log_flag() else [])
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode == 0:
            return
        out = p.stdout.decode("utf-8", "replace").rstrip()
        m = re.search(r"version ([0-9]+) instead of ([0-9]+)", out)
        if m:
            raise Fail(f"the modules in {from_dir} were built for nginx {version_text(int(m.group(1)))}, but {self.path} "
                       f"is nginx {version_text(int(m.group(2)))}: nothing was changed. Rebuild them for it (add "
                       f"--build, or scripts/build.sh --nginx system). nginx said: {out}")
        if "is not binary compatible" in out:
            raise Fail(f"the modules in {from_dir} were built for an nginx with other configure options (a different "
                       f"module signature) than {self.path}: nothing was changed. Rebuild them for it (add --build). "
                       f"nginx said: {out}")
        raise Fail(f"the modules in {from_dir} do not load into {self.path}: nothing was changed. nginx said: {out}")


def find(given: Optional[str]) -> Nginx:
    """--nginx PATH, else nginx on PATH, else /usr/sbin/nginx."""
    path = given
    if not path:
        path = shutil.which("nginx")
        if not path and os.access("/usr/sbin/nginx", os.X_OK):
            path = "/usr/sbin/nginx"
    if not path:
        raise Fail("no nginx found on PATH: give its binary with --nginx PATH")
    if "/" not in path:
        path = shutil.which(path) or path
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise Fail(f"{path} is not an executable nginx binary")
    try:
        p = subprocess.run([path, "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise Fail(f"{path} -V failed: {e.strerror}") from None
    out = p.stdout.decode("utf-8", "replace").rstrip()
    if p.returncode != 0:
        raise Fail(f"{path} -V failed: {out}")
    return Nginx(path, out)
