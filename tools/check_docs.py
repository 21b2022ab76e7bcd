"""Screenshot the docs site in headless Chromium; fail on blank pages, script errors and plots that did not draw.

    python tools/check_docs.py _site                   # index + the first page with a plotly figure
    python tools/check_docs.py _site --page 03_viewer  # index + that page
    python tools/check_docs.py _site --no-figure       # index only

The site is served from a local http.server on 127.0.0.1 (a free port); nothing else is reached.
Screenshots go to SITE/screenshots/: `index.png` (top of the page) and `<page>.png`, framed on
that page's first plot. Chromium cannot screenshot a scrolled page headless, so the plot is framed
by a small page of this script's own that shows the docs page in an iframe shifted up to the plot."""
import argparse, functools, re, shutil, subprocess, sys, tempfile, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1280,900', '--virtual-time-budget=5000', '--enable-logging=stderr', '--v=0']
FOCUS_PATH = '/__check_docs__/focus.html'
FOCUS_PAGE = """<!DOCTYPE html><html><body style="margin:0;overflow:hidden">
<iframe id="f" src="/{page}.html" style="position:absolute;left:0;top:0;width:100%;height:20000px;border:0"></iframe>
<script>
const f = document.getElementById('f');
f.addEventListener('load', () => {{
  const d = f.contentDocument, plot = d.querySelector('.plotly-graph-div');
  f.style.height = d.documentElement.scrollHeight + 'px';
  if (plot) f.style.top = -(plot.getBoundingClientRect().top - 60) + 'px';
}});
</script></body></html>"""
_re_uncaught = re.compile(r':CONSOLE[^"]*"(Uncaught .*?)", source: (\S*) \((\d+)\)')
MIN_INK, MIN_STD = 0.003, 4.0  # share of pixels far from the background colour; grey-level spread


class Handler(SimpleHTTPRequestHandler):
    "Serves the site, plus the focus page; records every path that was not found"
    missing = []
    def do_GET(self):
        if self.path.split('?')[0] != FOCUS_PATH: return super().do_GET()
        page = re.sub(r'[^\w.-]', '', self.path.partition('page=')[2])
        body = FOCUS_PAGE.format(page=page).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def send_error(self, code, *args, **kwargs):
        if code == 404 and self.path != '/favicon.ico': self.missing.append(self.path)
        super().send_error(code, *args, **kwargs)
    def log_message(self, *args): pass

def serve(site):
    "Start a server for `site` on a free port of 127.0.0.1; return (server, base url, list of missing paths)"
    handler = type('SiteHandler', (Handler,), {'missing': []})
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f'http://127.0.0.1:{server.server_port}', handler.missing

def chromium(exe, url, *args):
    "Run headless Chromium on `url` with a fresh profile; return (stdout, script errors logged to the console)"
    with tempfile.TemporaryDirectory(prefix='check_docs-') as profile:
        try: r = subprocess.run([exe, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args, url],
                                capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired: return '', [f'chromium did not finish within 180 s on {url}']
    errors = [f'{m[1]} ({m[2].rsplit("/", 1)[-1]} line {m[3]})' for m in _re_uncaught.finditer(r.stderr)]
    if r.returncode: errors.append(f'chromium exited with status {r.returncode}: {r.stderr[-500:]}')
    return r.stdout, errors

def blank_reason(png):
    "Why the screenshot `png` looks blank, or None when it shows content"
    img = cv2.imread(str(png))
    if img is None: return f'no screenshot was written to {png}'
    px = img.reshape(-1, 3).astype(np.int32)
    colours, counts = np.unique(px, axis=0, return_counts=True)
    ink = (np.abs(px - colours[counts.argmax()]).sum(1) > 90).mean()  # far from the background colour
    std = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).std()
    if ink < MIN_INK or std < MIN_STD:
        return (f'looks blank: {ink:.2%} of pixels differ from the background (need {MIN_INK:.1%}), '
                f'grey std {std:.1f} (need {MIN_STD})')
    return None

def colour_share(png):
    "Share of clearly coloured (saturated) pixels: plot traces, not text"
    hsv = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2HSV)
    return ((hsv[..., 1] > 80) & (hsv[..., 2] > 60)).mean()

def plot_reason(dom):
    "Why the plots in the rendered `dom` did not draw, or None when every plotly div was drawn"
    classes = re.findall(r'class="([^"]*\bplotly-graph-div\b[^"]*)"', dom)
    drawn = sum('js-plotly-plot' in c for c in classes)
    if 'WebGL is not supported' in dom: return 'a 3D plot needs WebGL, which this Chromium lacks (try without --disable-gpu)'
    if not classes: return 'the page has no plotly div'
    if drawn < len(classes) or 'class="main-svg"' not in dom:
        return (f'{len(classes) - drawn} of {len(classes)} plotly figure(s) were not drawn '
                '(is assets/plotly.min.js there? see the script errors above)')
    return None

def figure_page(site):
    "Stem of the first page (index first) whose HTML holds a plotly div, or None"
    pages = sorted(site.glob('*.html'), key=lambda p: (p.stem != 'index', p.name))
    return next((p.stem for p in pages if 'class="plotly-graph-div"' in p.read_text(encoding='utf-8')), None)


def check_site(site, exe, page=None, figure=True):
    "Screenshot and check `site`; return (problems, screenshot paths)"
    if figure and page is None and (page := figure_page(site)) is None:
        return [f'no page in {site} has a plotly figure (pass --page NAME, or --no-figure)'], []
    shots, problems = site / 'screenshots', []
    shots.mkdir(exist_ok=True)
    server, base, missing = serve(site)
    try:
        targets = [('index', 'index', f'{base}/index.html', False)]  # (png name, page, url, framed on a plot?)
        if figure: targets.append((page if page != 'index' else 'index-figure', page, f'{base}{FOCUS_PATH}?page={page}', True))
        for shot, name, url, is_figure in targets:
            if not (site / f'{name}.html').exists():
                problems.append(f'{name}: {site / name}.html does not exist (build it: python tools/build_docs.py)')
                continue
            png = shots / f'{shot}.png'
            png.unlink(missing_ok=True)
            _, errors = chromium(exe, url, f'--screenshot={png}')
            problems += [f'{name}: script error: {e}' for e in dict.fromkeys(errors)]
            if reason := blank_reason(png): problems.append(f'{name}: {png} {reason}')
            if is_figure:
                dom, errors = chromium(exe, f'{base}/{page}.html', '--dump-dom')
                if reason := plot_reason(dom): problems.append(f'{name}: {reason}')
                print(f'{name}: {colour_share(png):.2%} coloured pixels around the first plot')
            print(f'screenshot: {png}')
        problems += [f'missing file requested by a page: {p}' for p in sorted(set(missing))]
    finally: server.shutdown()
    return problems, sorted(shots.glob('*.png'))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('site', type=Path, help='the built site, e.g. _site')
    ap.add_argument('--page', help='figure page to check (default: the first page with a plotly figure)')
    ap.add_argument('--no-figure', action='store_true', help='check index.html only')
    ap.add_argument('--chromium', default=shutil.which('chromium') or '/usr/bin/chromium', help='browser to run')
    args = ap.parse_args(argv)
    if not Path(args.chromium).exists() and not shutil.which(args.chromium):
        sys.exit(f'check_docs: {args.chromium} not found: install Debian\'s chromium: apt-get install chromium')
    site = args.site.resolve()
    if not (site / 'index.html').exists():
        sys.exit(f'check_docs: {site}/index.html not found: build the site first (make docs)')
    problems, _ = check_site(site, args.chromium, Path(args.page).stem if args.page else None, not args.no_figure)
    if problems: sys.exit('check_docs: FAILED\n  ' + '\n  '.join(problems))
    print(f'check_docs: OK ({site})')

if __name__ == '__main__': main()
