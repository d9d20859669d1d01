"""The web UI's whole bundle: one stylesheet and one tiny script, inlined in every page (no CDN)."""

CSS = """
:root{--fg:#1c2430;--muted:#5b6776;--bg:#f6f8fa;--card:#fff;--line:#d8dee4;--accent:#0b63c5;--bad:#b42318}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
a{color:var(--accent)}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f59e0b;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px 8px}
header{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:10px 16px;background:#0f1b2d;
color:#fff}
header a{color:#fff;text-decoration:none;font-weight:600}
header nav{display:flex;gap:14px;flex-wrap:wrap;flex:1}
header form{margin:0}
main{max-width:1100px;margin:0 auto;padding:16px}
h1{font-size:1.4em;margin:.2em 0 .6em;word-break:break-all}
h2{font-size:1.1em;margin:1.4em 0 .5em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:12px 0}
table{width:100%;border-collapse:collapse;background:var(--card)}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.85em;color:var(--muted);font-weight:600}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#0f1b2d;color:#e6edf3;padding:10px;border-radius:6px;overflow:auto;max-height:420px}
.muted{color:var(--muted)}
.flash{padding:8px 12px;border-radius:6px;background:#e7f3ff;border:1px solid #9cc9f5}
.flash.error{background:#fdecea;border-color:#f5b5ad;color:var(--bad)}
button,.button{font:inherit;padding:4px 10px;border-radius:6px;border:1px solid var(--line);background:#fff;
cursor:pointer}
button.danger{color:var(--bad);border-color:#f0b4ae}
input,select{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;max-width:100%}
form.inline{display:inline}
.pager{display:flex;gap:10px;margin:10px 0}
.badge{display:inline-block;padding:0 6px;border-radius:10px;background:#eef2f6;font-size:.85em;margin:1px}
@media (max-width:640px){
 table.stack thead{display:none}
 table.stack tr{display:block;border-bottom:2px solid var(--line);padding:6px 0}
 table.stack td{display:block;border:0;padding:2px 8px}
 table.stack td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);font-size:.85em}
}
"""

SCRIPT = """
document.addEventListener('submit', function (e) {
  var q = e.target.getAttribute('data-confirm');
  if (q && !window.confirm(q)) { e.preventDefault(); }
});
"""
