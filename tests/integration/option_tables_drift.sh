#!/bin/sh
# scripts/option-tables.sh can fail: a README whose table differs from its
# binary's (a changed default, a missing row) fails --check with a diff, and
# --write makes it pass again.
set -eu
script=$1
build=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/env_server"
readme="$dir/env_server/README.md"
{
    echo "# a README"
    echo "<!-- options: env_server/agora-env -->"
    "$build/env_server/agora-env" --help-markdown | sed 's/`300`/`301`/'
    echo "<!-- end options -->"
    echo "the end"
} >"$readme"
if sh "$script" --check "$build" "$dir" >"$dir/out" 2>&1; then
    echo "FAIL: a changed default passed the check"; cat "$dir/out"; exit 1
fi
grep -q '^-| `env.episode_ttl_s` .*`301`' "$dir/out" || { echo "FAIL: no diff line"; cat "$dir/out"; exit 1; }
sh "$script" --write "$build" "$dir" >/dev/null
sh "$script" --check "$build" "$dir" >/dev/null || { echo "FAIL: --write did not fix it"; exit 1; }
grep -q '^the end$' "$readme" || { echo "FAIL: --write lost the text after the table"; exit 1; }
# A row missing from the README fails too.
grep -v 'env.max_episodes' "$readme" >"$dir/r" && mv "$dir/r" "$readme"
if sh "$script" --check "$build" "$dir" >/dev/null 2>&1; then
    echo "FAIL: a missing row passed the check"; exit 1
fi
echo "ok: drift is caught and --write repairs it"
