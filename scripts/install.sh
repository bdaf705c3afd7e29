#!/usr/bin/env bash
# Installs the ngx-ase modules into an existing nginx and patches its configuration; see
# --help (scripts/install/usage.txt). Everything, the parsing of the flags included, is done by
# scripts/install/cli.py, which edits the configuration with a tokenizer of nginx's own syntax
# (scripts/install/nginx_conf.py), never with line regexes; this launcher only needs python3.
set -euo pipefail
command -v python3 >/dev/null \
    || { printf 'error: %s\n' "python3 is needed to edit the configuration (apt-get install python3)" >&2; exit 1; }
exec python3 -B "$(dirname "$0")/install/cli.py" "$@"
