#!/usr/bin/env bash
# Tests scripts/install.sh: runs tests/install/run.py, which runs every unittest module of
# tests/install/ (tests/pyrunner/counting.py) and counts each check:
#   test_nginx_conf, test_lua_block, test_patch, test_journal, test_main  the tokenizer, the
#                        planner, the journal and the checks on the result, without nginx;
#   test_e2e_layouts     install -> second install -> uninstall on copies of real nginx
#                        layouts (tests/install/layouts/), each checked with the real `nginx -t`;
#   test_e2e_refusals    dry run, refusals, settings changed, modules replaced, nginx -V
#                        defaults, --conf on a copy whose includes name the real directory;
#   test_e2e_interrupts  install and uninstall killed (SIGKILL) at every file change on three
#                        layouts; SIGINT, SIGTERM, SIGHUP;
#   test_e2e_edits       two main files, duplicates plus edits, ase.conf edits, hard links,
#                        xattrs, a "[" in the path, messages, --help;
#   test_runner          the runner (tests/pyrunner/, shared with tests/ase_check) counts and
#                        shows failures.
# Needs the modules built for the system nginx (scripts/build.sh --nginx system); installs the
# echo and Lua modules the layouts load. Touches nothing outside a temporary directory, except
# that `nginx -t` opens the log and pid paths compiled into Debian's nginx, as it always does.
# Arguments go to run.py (-k PATTERN runs the matching tests). Last line: "N passed, M failed".
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

for m in "${MODULE_FILES[@]}"; do
    [ -f "$ROOT/build/system/modules/$m" ] || die "build/system/modules/$m not found: run scripts/build.sh --nginx system first"
done
ensure_packages libnginx-mod-http-echo libnginx-mod-http-lua
exec python3 -B "$ROOT/tests/install/run.py" "$@"
