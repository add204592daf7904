#!/bin/sh
# `onnxq report`: renders the committed JSON reports (tests/fixtures/reports: real
# compare/eval/bench outputs of the Fashion-MNIST CNN and a hand-written debug report)
# into HTML, loads the page in headless Chromium and checks what the browser sees:
# the configuration table, the number of bars in every chart, escaped labels, no
# NaN/undefined. The screenshot is kept as an artifact: ARTIFACTS/report.png.
# Also: malformed and unknown reports fail with the file named and write nothing.
# usage: test_report_html.sh ONNXQ SOURCE_DIR WORK_DIR ARTIFACTS_DIR
set -eu
ONNXQ=$1 SRC=$2 WORK=$3 ART=$4
R=$SRC/tests/fixtures/reports
rm -rf "$WORK"; mkdir -p "$WORK" "$ART"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ONNXQ" report "$R/compare_dynamic.json" "$R/compare_per_tensor.json" "$R/compare_static.json" \
    "$R/bench.json" "$R/eval.json" "$R/debug_handwritten.json" -o "$WORK/report.html" --title "onnxq test report" \
    >"$WORK/stdout" || fail "onnxq report failed"
[ ! -e "$WORK/report.html.tmp" ] || fail "temporary file left behind"
grep -q '<script' "$WORK/report.html" && fail "the page holds a script"
grep -q 'src="http\|href="http' "$WORK/report.html" && fail "the page references external resources"

CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || fail "chromium is not installed (scripts/install-deps.sh installs it)"
flags="--headless --no-sandbox --disable-gpu --user-data-dir=$WORK/profile --window-size=1280,2200"
# shellcheck disable=SC2086
timeout 90 "$CHROME" $flags --dump-dom "file://$WORK/report.html" >"$WORK/dom.html" 2>"$WORK/chrome.log" ||
    fail "chromium --dump-dom failed: $(tail -3 "$WORK/chrome.log")"
# shellcheck disable=SC2086
timeout 90 "$CHROME" $flags --screenshot="$ART/report.png" "file://$WORK/report.html" >>"$WORK/chrome.log" 2>&1 ||
    fail "chromium --screenshot failed"

/usr/bin/python3 - "$WORK/dom.html" "$ART/report.png" <<'PY' || exit 1
import sys, html.parser, os
dom = open(sys.argv[1], encoding="utf-8").read()

class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.stack = []; self.bars = {}; self.text = []; self.title = ""; self.in_title = False
        self.rows = {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure": self.stack.append(a.get("id"))
        if tag == "rect" and a.get("class") == "bar" and self.stack:
            self.bars.setdefault(self.stack[-1], []).append((a.get("data-label"), float(a.get("data-value"))))
        if tag == "title": self.in_title = True
        if tag == "table": self.cur_table = a.get("id") or a.get("class"); self.rows[self.cur_table] = 0
        if tag == "tr" and getattr(self, "cur_table", None): self.rows[self.cur_table] += 1
    def handle_endtag(self, tag):
        if tag == "figure": self.stack.pop()
        if tag == "title": self.in_title = False
    def handle_data(self, d):
        self.text.append(d)
        if self.in_title: self.title += d

p = P(); p.feed(dom)
text = " ".join(p.text)
errors = []
def check(cond, msg):
    if not cond: errors.append(msg)
check(p.title == "onnxq test report", f"title {p.title!r}")
want = {"chart-speed": 3, "chart-mean-diff": 3, "chart-disagreement": 3, "bench-latency": 2, "debug-sqnr": 6}
for k, n in want.items():
    check(len(p.bars.get(k, [])) == n, f"chart {k}: {len(p.bars.get(k, []))} bars, expected {n}")
labels = [l for l, _ in p.bars.get("chart-speed", [])]
check(labels == ["dynamic", "static per-tensor", "static per-channel"], f"speed chart labels {labels}")
check(all(v > 0 for _, v in p.bars.get("chart-speed", [])), "speed ratios must be positive")
check(p.rows.get("compare-table") == 4, f"compare table rows {p.rows.get('compare-table')}")
check(p.rows.get("eval-table") == 4, f"eval table rows {p.rows.get('eval-table')}")
check(p.rows.get("debug-table") == 7, f"debug table rows {p.rows.get('debug-table')}")
# values from the fixtures, as the page prints them
for s in ["90.90%", "90.80%", "99.90%", "0.336", "/fc2/Gemm", "--exclude /fc2/Gemm", "hand-written <debug> & layers"]:
    check(s in text, f"page text lacks {s!r}")
sq = dict(p.bars.get("debug-sqnr", []))
check(abs(sq.get("/fc2/Gemm", 0) - 18.5) < 1e-6, "debug chart: /fc2/Gemm should be 18.5 dB")
check(list(sq)[0] == "/fc2/Gemm", "debug chart must start with the worst layer")
for bad in ["NaN", "undefined", "nan", "inf "]:
    check(bad not in text, f"page text contains {bad!r}")
png = open(sys.argv[2], "rb").read()
check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, f"screenshot missing or blank ({len(png)} bytes)")
if errors:
    print("FAIL:", *errors, sep="\n  ", file=sys.stderr); sys.exit(1)
print(f"report page ok: {sum(len(v) for v in p.bars.values())} bars in {len(p.bars)} charts; screenshot {sys.argv[2]} ({len(png)} bytes)")
PY

# malformed JSON: the error names the file and the line; nothing is written
printf '{\n "onnxq_report": 1,\n "kind": "compare",\n oops\n}\n' >"$WORK/bad.json"
if "$ONNXQ" report "$WORK/bad.json" -o "$WORK/bad.html" 2>"$WORK/err"; then fail "malformed JSON accepted"; fi
grep -q "bad.json:4" "$WORK/err" || fail "error does not name bad.json:4: $(cat "$WORK/err")"
[ ! -e "$WORK/bad.html" ] && [ ! -e "$WORK/bad.html.tmp" ] || fail "a failed report left a file"
printf '{"onnxq_report": 1, "kind": "weather"}' >"$WORK/kind.json"
if "$ONNXQ" report "$R/bench.json" "$WORK/kind.json" -o "$WORK/bad.html" 2>"$WORK/err"; then fail "unknown kind accepted"; fi
grep -q "kind.json.*unknown kind 'weather'" "$WORK/err" || fail "unknown kind error: $(cat "$WORK/err")"
printf '[1, 2]' >"$WORK/arr.json"
if "$ONNXQ" report "$WORK/arr.json" 2>"$WORK/err"; then fail "a JSON array accepted"; fi
if "$ONNXQ" report "$WORK/missing.json" 2>"$WORK/err"; then fail "missing file accepted"; fi
grep -q "missing.json" "$WORK/err" || fail "missing file not named"
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "error is not one line"
echo "report: ok"
