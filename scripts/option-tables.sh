#!/bin/sh
# Keeps the option tables of the READMEs equal to what the binaries declare.
#
#   scripts/option-tables.sh --check BUILD_DIR [ROOT]  (exit 1 and a diff where a table differs)
#   scripts/option-tables.sh --write BUILD_DIR [ROOT]  (rewrite the tables from the binaries)
#
# ROOT is the tree whose READMEs are read (default: this source tree).
# A README holds a table between two marker lines; the first names the binary
# (a path in the build tree) and its arguments before --help-markdown:
#
#   <!-- options: learner/agora-learner -->
#   | option | command line | default | values | meaning |
#   ...
#   <!-- end options -->
set -eu
mode=${1:-}
build=${2:-}
case "$mode" in --check|--write) ;; *) echo "usage: $0 --check|--write BUILD_DIR" >&2; exit 2 ;; esac
[ -d "$build" ] || { echo "$0: no build directory '$build'" >&2; exit 2; }
build=$(cd "$build" && pwd)
root=$(cd "${3:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
found=0
for file in $(find "$root" -name README.md -not -path '*/.git/*' -not -path '*/node_modules/*' | sort); do
    readme=${file#"$root/"}
    grep -q '^<!-- options: ' "$file" || continue
    out="$tmp/new.md"
    : >"$out"
    # Copy the README, replacing the body of each marked table by the binary's table.
    in_table=0
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        '<!-- options: '*' -->')
            printf '%s\n' "$line" >>"$out"
            cmd=${line#'<!-- options: '}
            cmd=${cmd%' -->'}
            set -- $cmd
            bin="$build/$1"
            shift
            if [ ! -x "$bin" ]; then
                echo "$readme: no binary $bin" >&2
                exit 2
            fi
            "$bin" "$@" --help-markdown >>"$out"
            found=$((found + 1))
            in_table=1
            ;;
        '<!-- end options -->')
            printf '%s\n' "$line" >>"$out"
            in_table=0
            ;;
        *)
            [ $in_table -eq 1 ] || printf '%s\n' "$line" >>"$out"
            ;;
        esac
    done <"$file"
    if ! cmp -s "$file" "$out"; then
        if [ "$mode" = --write ]; then
            cp "$out" "$file"
            echo "updated $readme"
        else
            echo "$readme: its option table differs from the binary's (scripts/option-tables.sh --write fixes it):"
            diff -u "$file" "$out" || true
            status=1
        fi
    fi
done
[ $found -gt 0 ] || { echo "$0: no option tables found" >&2; exit 1; }
[ "$mode" = --write ] || echo "$found option tables match their binaries"
exit $status
