#!/usr/bin/env bash
# check_html.sh PAGE.html [MIN_IMAGES]: renders a page in headless Chromium
# (Debian's chromium-headless-shell, or chromium) and checks that it renders,
# that every <img> loaded (complete && naturalWidth > 0) and that the console
# shows nothing (no errors, no script output).
# How: a copy of the page gets a script appended that, on the load event,
# writes "images=N broken=B svgs=S" into a <div id="ptcheck">; --dump-dom
# prints the DOM after load, and --enable-logging=stderr --v=0 makes every
# console message a "CONSOLE" line on stderr (dbus noise is ignored).
# Exit 0: ok; 1: a check failed (reason on stdout); 77: no chromium.
set -u
page=$1; min=${2:-1}
chrome=$(command -v chromium-headless-shell || command -v chromium || true)
[ -n "$chrome" ] || { echo "no chromium-headless-shell or chromium"; exit 77; }
[ -s "$page" ] || { echo "$page: missing or empty"; exit 1; }
tmp=$(mktemp -d /tmp/pt_check_html.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
probe='<script>window.addEventListener("load",function(){var im=document.images,b=0;for(var i=0;i<im.length;i++)if(!(im[i].complete&&im[i].naturalWidth>0))b++;var d=document.createElement("div");d.id="ptcheck";d.textContent="images="+im.length+" broken="+b+" svgs="+document.querySelectorAll("svg").length;document.body.appendChild(d);});</script>'
# insert the probe before the last </body> (or append it)
awk -v p="$probe" '{ lines[NR]=$0 } END { done=0; for (i=NR;i>=1;i--) if (!done && index(lines[i],"</body>")) { k=index(lines[i],"</body>"); lines[i]=substr(lines[i],1,k-1) p substr(lines[i],k); done=1 }
  for (i=1;i<=NR;i++) print lines[i]; if (!done) print p }' "$page" >"$tmp/page.html"
timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
    --enable-logging=stderr --v=0 --virtual-time-budget=10000 --dump-dom "file://$tmp/page.html" \
    >"$tmp/dom.txt" 2>"$tmp/err.txt"
rc=$?
[ $rc -eq 0 ] || { echo "chromium exited with $rc"; tail -5 "$tmp/err.txt"; exit 1; }
res=$(grep -o 'id="ptcheck">[^<]*' "$tmp/dom.txt" | sed 's/.*>//')
[ -n "$res" ] || { echo "page did not finish loading (no probe output)"; exit 1; }
console=$(grep -E 'CONSOLE|Uncaught' "$tmp/err.txt" || true)
echo "$res"
[ -z "$console" ] || { echo "console output: $console"; exit 1; }
n=$(sed 's/images=\([0-9]*\).*/\1/' <<<"$res"); b=$(sed 's/.*broken=\([0-9]*\).*/\1/' <<<"$res")
[ "$b" -eq 0 ] || { echo "$b of $n images did not load"; exit 1; }
[ "$n" -ge "$min" ] || { echo "only $n images (expected at least $min)"; exit 1; }
exit 0
