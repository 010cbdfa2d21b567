# Sourced by the setup scripts: find_python prints the path of a working Python 3.12 (with venv), looking
# on PATH, in pyenv and in the usual system places; returns 1 if there is none.
find_python() {
  local c
  for c in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  return 1
}
