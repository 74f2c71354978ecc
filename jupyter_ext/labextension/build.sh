#!/usr/bin/env bash
# Build the JupyterLab extension into ../prebuilt, which is committed: the wheel ships it, so
# neither CI nor users need npm. Built against the JupyterLab of the repository's .venv
# (`pip install -e '.[lab]'`); set PYTHON to use another environment's.
#
#   bash jupyter_ext/labextension/build.sh      (then `pip install -e .` to install the result)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
python=${PYTHON:-../../.venv/bin/python}
[ -d node_modules ] || npm ci --no-audit --no-fund
core=$("$python" -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging" / "package.json")')
npx tsc
"$(dirname "$python")/jupyter-builder" build --core-package-file "$core" .
