"""The docs site builds offline and shows its plots: `tools/build_docs.py` executes and renders
`index` plus the notebook that uses plotly most, then `tools/check_docs.py` screenshots them in
headless Chromium. Skipped only when `chromium` is not on PATH (CI installs it)."""
import html, json, re, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'


def code_source(nb_path):
    "All code-cell source of a notebook, as one string"
    cells = json.loads(nb_path.read_text(encoding='utf-8'))['cells']
    return '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'code')

def figure_notebook():
    "The notebook (other than index) whose code mentions plotly most often, or None"
    counts = {p.stem: code_source(p).count('plotly') for p in sorted(NBS.glob('*.ipynb')) if p.stem != 'index'}
    best = max(counts, key=counts.get, default=None)
    return best if best and counts[best] else None

_re_directive = re.compile(r'^\s*#\s*\|(.*)$')

def code_cells(nb_path):
    "[(directive lines, code lines)] for every code cell of a notebook"
    cells = json.loads(nb_path.read_text(encoding='utf-8'))['cells']
    res = []
    for c in (c for c in cells if c['cell_type'] == 'code'):
        lines = ''.join(c['source']).splitlines()
        n = next((i for i, l in enumerate(lines) if l.strip() and not _re_directive.match(l)), len(lines))
        res.append((lines[:n], lines[n:]))
    return res

def is_hidden(directives): return any(_re_directive.match(d)[1].split()[:1] in (['hide'], ['exporti']) for d in directives)

def page_text(path):
    "The text of a page, tags removed"
    return html.unescape(re.sub(r'<[^>]+>', '', path.read_text(encoding='utf-8')))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')
    pages = ['index'] + ([fig] if (fig := figure_notebook()) else [])
    r = subprocess.run([sys.executable, 'tools/build_docs.py', '--out', str(out), '--only', *pages],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f'build_docs failed:\n{r.stdout}\n{r.stderr}'
    return out, pages


def test_site_is_offline(site):
    out, pages = site
    assert (out / 'assets' / 'plotly.min.js').stat().st_size > 1_000_000
    for page in pages:
        page_html = (out / f'{page}.html').read_text(encoding='utf-8')
        remote = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)\s*=\s*["\']?(?:https?:)?//[^>]*>', page_html, re.I)
        assert not remote, f'{page}.html loads from the network: {remote}'
        assert not re.search(r'<script[^>]*src=[^>]*(require|mathjax)', page_html, re.I), f'{page}.html loads require.js or MathJax'

def test_hidden_cells_and_directives_are_not_shown(site):
    out, pages = site
    for page in pages:
        text, cells = page_text(out / f'{page}.html'), code_cells(NBS / f'{page}.ipynb')
        shown = {l.strip() for d, code in cells if not is_hidden(d) for l in code}
        for d, code in cells:
            if is_hidden(d):
                leaked = [l for l in code if len(l.strip()) > 11 and l.strip() not in shown and l.strip() in text]
                assert not leaked, f'{page}.html shows lines of a `#| hide` cell: {leaked}'
            elif d and code:
                assert '\n'.join(d + code[:1]) not in text, f'{page}.html shows the directive lines {d}'


def test_pages_render_in_chromium(site):
    if not shutil.which('chromium'):
        pytest.skip('chromium is not on PATH: install Debian\'s chromium (apt-get install chromium) to run the docs screenshot test')
    out, pages = site
    args = ['--page', pages[1]] if len(pages) > 1 else ['--no-figure']
    r = subprocess.run([sys.executable, 'tools/check_docs.py', str(out), *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f'check_docs failed:\n{r.stdout}\n{r.stderr}'
