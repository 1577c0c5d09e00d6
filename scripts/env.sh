# Source me: puts the project's venv, its Node.js 24 and the pinned CDK CLI first on PATH, and keeps
# every cache inside the checkout so that runs need no home directory state.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_root/.venv/bin:$_root/node_modules/.bin:$PATH"
export CDK_HOME="$_root/.cdk-home"
export CDK_DISABLE_VERSION_CHECK=1
export CDK_DISABLE_CLI_TELEMETRY=true
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1
export AWS_EC2_METADATA_DISABLED=true
export PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-}
unset _root
