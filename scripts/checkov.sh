#!/usr/bin/env bash
# checkov on the synthesized CloudFormation templates, offline (what docs/security.md reports).
#
#   scripts/checkov.sh            # the default app: foundation, three scenario stacks, benchmark
#   scripts/checkov.sh --pipeline # also the promotion pipeline and its stages (stages.example.yaml)
#
# checkov pins an older boto3 than the project, so it lives in its own venv ($CHECKOV_VENV, created on first
# use with the pinned version below). It never downloads policies (--skip-download) and needs no AWS account.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECKOV_VERSION=3.3.30
venv=${CHECKOV_VENV:-$root/.checkov-venv}
if [[ ! -x "$venv/bin/checkov" ]] || [[ "$("$venv/bin/checkov" --version)" != "$CHECKOV_VERSION" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
fi
# shellcheck source=/dev/null
source "$root/scripts/env.sh"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
context='{}'
[[ "${1:-}" == "--pipeline" ]] && context='{"stages": "stages.example.yaml"}'
(cd "$root" && python -c "import json, sys; from app import build_app; build_app(json.loads(sys.argv[1]), outdir=sys.argv[2]).synth()" "$context" "$out")
cd "$out"  # checkov prints paths relative to where it runs
"$venv/bin/checkov" -d . --framework cloudformation --skip-download --compact --quiet
