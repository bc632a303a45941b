# Sourced by the CI scripts: find the CPython interpreters the package is built and tested on.
# `ci_python 3.12` prints the newest pyenv 3.12.x (${PYENV_ROOT:-~/.pyenv}/versions/3.12.N) or
# else `python3.12` from PATH, and fails if neither exists. CI_PYTHON_VERSIONS lists the
# versions to look for (default: every version requires-python claims, 3.10 to 3.13).
CI_PYTHON_VERSIONS=${CI_PYTHON_VERSIONS:-"3.10 3.11 3.12 3.13"}

ci_python() {
    local version=$1 root=${PYENV_ROOT:-$HOME/.pyenv} found
    found=$(printf '%s\n' "$root"/versions/"$version".*/bin/python \
        | grep -E "/versions/${version//./\\.}\.[0-9]+/bin/python$" | sort -V | tail -n 1 || true)
    if [ -n "$found" ] && [ -x "$found" ]; then
        echo "$found"
    else
        command -v "python$version"
    fi
}
