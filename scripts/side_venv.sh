# Sourced by the setup scripts of the side venvs (ROS 2, Isaac Lab, franky-sim), after they define `log`.
# ensure_side_venv VENV NAME SPEC...: creates VENV with Python 3.12 if it is missing and pip-installs SPEC once; a
# stamp file (VENV/.rcs-NAME-installed) records exactly what was installed, so a later call with the same SPEC
# only checks (seconds), and a changed SPEC installs again.
source scripts/find_python312.sh

ensure_side_venv() {
  local venv=$1 name=$2
  shift 2
  local stamp="$venv/.rcs-$name-installed" want="$*" py t0
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$venv/bin/python" ]; then
    py=$(find_python) || { log "ERROR: need python3.12 (on PATH, in pyenv, or /usr/bin)"; return 1; }
    log "creating $venv with $py"
    "$py" -m venv "$venv"
  fi
  t0=$SECONDS
  log "installing $want"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "$@"
  printf '%s' "$want" > "$stamp"
  log "$name installed in $((SECONDS - t0)) s"
}
