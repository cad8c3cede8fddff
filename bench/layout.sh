#!/usr/bin/env bash
# bench/layout.sh -- checks and maintains the code layout of a serving
# hostinfod (build.rs says what it is for; BENCHMARKS.md what it is worth).
#
#   bench/layout.sh check  [BINARY]   fail unless the layout is in BINARY
#   bench/layout.sh update [BINARY]   rewrite bench/hot-symbols.txt for BINARY
#
# BINARY defaults to the release build, TARGET_DIR/<host tuple>/release/
# hostinfod. `check` fails (exit 1), naming what is wrong, when:
#   - BINARY has no .text.hot section (build.rs did not pass
#     -z keep-text-section-prefix: another linker, RUSTFLAGS, HOSTINFOD_NO_CODE_LAYOUT);
#   - a function of src/ that carries #[link_section = ".text.hot.hostinfod"]
#     has a symbol outside .text.hot, or none of them has a symbol at all;
#   - the variables of the list lie in more than two pages, or
#     the poll loop's frame (Server::serve) is over 2 KiB (something heavy
#     was inlined into it again; src/server/mod.rs says why it matters);
#   - a name of bench/hot-symbols.txt is not in BINARY's symbol table: the
#     names are mangled, and Rust's change with the compiler and with the
#     versions of the crates, glibc's with glibc. The list is then stale, and
#     LLD silently leaves those functions where they were.
# `update` maps every stale name to the symbols of BINARY that have the same
# demangled name once the hashes are left out (the same function of the new
# compiler or crate version), drops the names with no such symbol and reports
# both; then rebuild (`cargo build --release`) so that the new list is used,
# and commit it. Needs binutils (readelf, nm, c++filt, objdump).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIST=$ROOT/bench/hot-symbols.txt
die() { printf 'layout.sh: %s\n' "$*" >&2; exit 1; }

mode=${1:-}
[[ $mode == check || $mode == update ]] || die "usage: bench/layout.sh check|update [BINARY]"
BIN=${2:-}
if [[ -z $BIN ]]; then
	tdir=${CARGO_TARGET_DIR:-$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
		grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)}
	BIN=${tdir:-$ROOT/target}/$(rustc --print host-tuple)/release/hostinfod
fi
[[ -f $BIN ]] || die "no $BIN: build it first (cargo build --release)"
for tool in readelf nm c++filt objdump; do
	command -v "$tool" >/dev/null || die "$tool not found (install binutils)"
done

# build.rs lays the code out on x86_64-unknown-linux-gnu only.
if ! readelf -hW "$BIN" | grep -q 'Machine:.*X86-64'; then
	echo "layout: $BIN is not an x86-64 binary; build.rs lays out x86_64-unknown-linux-gnu builds only, so there is nothing to check"
	exit 0
fi

TMP=$(mktemp -d /tmp/hostinfod-layout.XXXXXX)
trap 'rm -rf -- "$TMP"' EXIT

# Demangled names without hashes: legacy Rust names end in ::h<16 hex>, v0
# names carry [hex] crate disambiguators.
unhash() { c++filt | sed -E 's/::h[0-9a-f]{16}$//; s/\[[0-9a-f]+\]//g'; }

# Every symbol of BINARY: mangled name, its demangled name without hashes,
# the name of its section (FUNC symbols), tab-separated.
readelf -SW "$BIN" | sed -nE 's/^ *\[ *([0-9]+)\] ([^ ]+) .*/\1\t\2/p' >"$TMP/sections"
nm --defined-only "$BIN" | awk '{print $NF}' | sort -u >"$TMP/names"
readelf -sW "$BIN" | awk '$4 == "FUNC" && $7 ~ /^[0-9]+$/ && NF >= 8 {print $8 "\t" $7}' | sort -u >"$TMP/funcs"
cut -f1 "$TMP/funcs" | unhash >"$TMP/funcs.plain"
cut -f2 "$TMP/funcs" | awk -F'\t' 'NR == FNR {s[$1] = $2; next} {print s[$1]}' "$TMP/sections" - >"$TMP/funcs.sect"
paste "$TMP/funcs" "$TMP/funcs.plain" "$TMP/funcs.sect" | cut -f1,3,4 >"$TMP/symbols"

# The names of the list; in a dynamically linked binary the C library is not
# there to order, so only the Rust names (mangled _R... or _ZN...) count.
listed() {
	if readelf -lW "$BIN" | grep -q INTERP; then
		grep -E '^(_R|_ZN)' "$LIST" || true
	else
		grep -v '^#' "$LIST" | grep -v '^[[:space:]]*$' || true
	fi
}

if [[ $mode == update ]]; then
	# In the list's own order: a name still in the binary stays, a stale one
	# is replaced by the binary's symbols of the same demangled name.
	paste "$TMP/names" <(unhash <"$TMP/names") >"$TMP/all"
	: >"$TMP/new"
	: >"$TMP/gone"
	kept=0 found=0
	while IFS= read -r name; do
		if grep -qxF -- "$name" "$TMP/names"; then
			echo "$name" >>"$TMP/new"
			kept=$((kept + 1))
			continue
		fi
		plain=$(unhash <<<"$name")
		if awk -F'\t' -v p="$plain" '$2 == p {print $1; f = 1} END {exit !f}' "$TMP/all" >>"$TMP/new"; then
			found=$((found + 1))
		else
			printf '%s\t%s\n' "$name" "$plain" >>"$TMP/gone"
		fi
	done < <(grep -v '^#' "$LIST" | grep -v '^[[:space:]]*$')
	{
		grep '^#' "$LIST"
		awk '!seen[$0]++' "$TMP/new"
	} >"$TMP/list"
	mv -f "$TMP/list" "$LIST"
	printf '%s: %s names kept; %s stale names found again (now %s names in all); %s dropped\n' \
		"${LIST#"$ROOT"/}" "$kept" "$found" "$(grep -vc '^#' "$LIST")" "$(wc -l <"$TMP/gone")"
	if [[ -s $TMP/gone ]]; then
		echo "dropped (no symbol of that name in $BIN):"
		cut -f2 "$TMP/gone" | sed 's/^/  /'
	fi
	echo "now rebuild (cargo build --release) so that LLD uses the new list, and commit it"
	exit 0
fi

fail=0
hot=$(awk -F'\t' '$2 == ".text.hot" {print $1}' "$TMP/sections")
if [[ -z $hot ]]; then
	echo "FAIL: $BIN has no .text.hot section: the hot functions are spread over .text again"
	echo "      (build.rs passes -z keep-text-section-prefix only when rustc links with LLD, without"
	echo "      RUSTFLAGS or a linker of your choice, and without HOSTINFOD_NO_CODE_LAYOUT)"
	fail=1
fi

# The functions that carry the attribute, from src/: the module path (with
# the type, for a method of an impl block) and the function's name.
(cd "$ROOT" && find src -name '*.rs' -print0 | sort -z | xargs -0 awk '
	FNR == 1 {
		mod = FILENAME; sub(/^src\//, "", mod); sub(/\.rs$/, "", mod); sub(/\/mod$/, "", mod)
		sub(/^(lib|main)$/, "", mod); gsub(/\//, "::", mod)
		mod = "hostinfod" (mod == "" ? "" : "::" mod)
		type = ""; want = 0
	}
	/^(pub(\([a-z]+\))? )?(unsafe )?impl[ <]/ {
		t = $0; sub(/^[^i]*impl/, "", t); sub(/^<[^>]*>/, "", t); sub(/ *\{.*$/, "", t)
		if (t ~ / for /) sub(/^.* for /, "", t)
		gsub(/^ +/, "", t); sub(/[<( ].*$/, "", t); sub(/^.*::/, "", t)
		type = t
	}
	/^}/ { type = "" }
	/link_section = ".text.hot.hostinfod"/ { want = 1; inner = ($0 ~ /^[ \t]/); next }
	want && match($0, /fn [A-Za-z_][A-Za-z0-9_]*/) {
		name = substr($0, RSTART + 3, RLENGTH - 3)
		print ((inner && type != "") ? mod "::" type : mod) "\t" name
		want = 0
	}') | sort -u >"$TMP/attributed"
[[ -s $TMP/attributed ]] || { echo "FAIL: no function in src/ carries the .text.hot.hostinfod attribute"; fail=1; }

# A symbol belongs to an attributed function when its demangled name starts
# with that function's module path (or type: inherent or trait impl) and ends
# with its name.
awk -F'\t' '
	NR == FNR { keys[NR] = $1; names[NR] = $2; n = NR; next }
	{
		plain = $2; sub(/::<.*>$/, "", plain)
		for (i = 1; i <= n; i++) {
			k = keys[i]
			if ((index(plain, k "::") == 1 || index(plain, "<" k ">") == 1 ||
			     index(plain, "<" k " as ") == 1 || index(plain, "<" k "<") == 1) &&
			    substr(plain, length(plain) - length(names[i]) - 1) == "::" names[i])
				print k "::" names[i] "\t" $3 "\t" $2
		}
	}' "$TMP/attributed" "$TMP/symbols" | sort -u >"$TMP/matched"
outside=$(awk -F'\t' '$2 != ".text.hot"' "$TMP/matched")
if [[ -n $outside ]]; then
	echo "FAIL: functions with #[link_section = \".text.hot.hostinfod\"] outside .text.hot:"
	awk -F'\t' '{printf "  %s (in %s)\n", $3, $2}' <<<"$outside"
	fail=1
fi
inside=$(awk -F'\t' '$2 == ".text.hot"' "$TMP/matched" | cut -f1 | sort -u | wc -l)
if ((inside == 0)); then
	echo "FAIL: none of the $(wc -l <"$TMP/attributed") attributed functions has a symbol in .text.hot"
	fail=1
fi

listed | sort -u | comm -23 - "$TMP/names" >"$TMP/stale"
total=$(listed | sort -u | wc -l)
if [[ -s $TMP/stale ]]; then
	echo "FAIL: $(wc -l <"$TMP/stale") of the $total names of bench/hot-symbols.txt are not in $BIN"
	echo "      (a new compiler, crate version or glibc renames them; LLD then ignores them):"
	paste "$TMP/stale" <(unhash <"$TMP/stale") | awk -F'\t' '{printf "  %s\n      = %s\n", $1, $2}'
	echo "      regenerate: bench/layout.sh update && cargo build --release, then commit bench/hot-symbols.txt"
	fail=1
fi

# The variables of the list (a forked child writes them) lead .data and
# .bss, each group right after a page-aligned marker (src/layout.rs), so
# each lies in one page: two in all (unordered, they are spread over five;
# ordered without the markers, three whenever a group straddles a boundary).
nm --defined-only "$BIN" | awk '$2 ~ /^[dDbB]$/ {print $3 "\t" $1}' | sort -k1,1 >"$TMP/vars"
listed | sort -u | join -t $'\t' - "$TMP/vars" >"$TMP/listed-all" || true
grep -v -E '^hostinfod_(data|bss)_page\b' "$TMP/listed-all" >"$TMP/listed-vars" || true
markers=$(grep -c -E '^hostinfod_(data|bss)_page\b' "$TMP/listed-all" || true)
vpages=$(awk -F'\t' '{print substr($2, 1, length($2) - 3)}' "$TMP/listed-vars" | sort -u | wc -l)
if [[ ! -s $TMP/listed-vars ]]; then
	echo "FAIL: no variable of bench/hot-symbols.txt is in $BIN (.data and .bss are no longer ordered)"
	fail=1
elif ((markers != 2)); then
	echo "FAIL: the page markers hostinfod_data_page and hostinfod_bss_page (src/layout.rs) are not both listed and in $BIN"
	fail=1
elif ((vpages > 2)); then
	echo "FAIL: the $(wc -l <"$TMP/listed-vars") listed variables lie in $vpages pages, not 2 (a group outgrew its page, or the markers no longer lead .data and .bss):"
	sed 's/^/  /' "$TMP/listed-all"
	fail=1
fi

# The poll loop's stack frame: the rare paths keep out of it (src/server/mod.rs
# says why), so that a fork costs the parent few stack pages. It fails here
# when something heavy is inlined into it again.
FRAME_MAX=2048
serve=$(awk -F'\t' '$2 == "hostinfod::server::Server::serve" {print $1; exit}' "$TMP/symbols")
frame=""
if [[ -n $serve ]] && command -v objdump >/dev/null; then
	frame=$(objdump -d --no-show-raw-insn --disassemble="$serve" "$BIN" |
		grep -m1 -oE 'sub +\$0x[0-9a-f]+,%rsp' | grep -oE '0x[0-9a-f]+' || true)
fi
if [[ -z $frame ]]; then
	echo "FAIL: cannot read the stack frame of hostinfod::server::Server::serve in $BIN (objdump, or the symbol is gone)"
	fail=1
elif ((frame > FRAME_MAX)); then
	echo "FAIL: the poll loop's frame (Server::serve) is $((frame)) bytes, more than $FRAME_MAX: a heavy path is inlined into it"
	fail=1
fi

if ((fail == 0)); then
	printf 'layout OK: .text.hot holds %s of the %s attributed functions (the others are inlined into them), all %s names of bench/hot-symbols.txt are in %s\n' \
		"$inside" "$(wc -l <"$TMP/attributed")" "$total" "$BIN"
	printf '           %s listed variables in %s page(s); the poll loop'"'"'s frame is %s bytes (at most %s)\n' \
		"$(wc -l <"$TMP/listed-vars")" "$vpages" "$((frame))" "$FRAME_MAX"
fi
exit "$fail"
