"""Render posebench's docs without Quarto: a static, offline HTML site from `nbs/*.ipynb`, or README.md.

    python tools/build_docs.py                      # execute every notebook, write _site/
    python tools/build_docs.py --out DIR --only index 03_viewer --flags slow
    python tools/build_docs.py --no-exec            # render the saved outputs, run nothing
    python tools/build_docs.py --readme-only        # nbs/index.ipynb -> README.md (saved outputs)

Notebooks are executed like `nbdev.test.test_nb` (execnb's `CaptureShell`, from the notebook's
folder), each in a fresh process, skipping `nbdev_export(` cells, `#| eval: false` cells and cells
flagged with settings.ini's `tst_flags` unless named in `--flags` (skipped cells show their saved
outputs). Cells marked `#| hide` or `#| exporti` are left out of the pages, `#| echo: false` hides
the source and `#| output: false` the outputs; other directive lines are stripped. Plotly outputs
become live plots drawn by one local copy of plotly.js in `assets/`: nothing is loaded from a CDN."""
import argparse, html, itertools, json, multiprocessing, os, re, shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mistune
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.util import ClassNotFound
from nbconvert.filters.ansi import ansi2html, strip_ansi
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.process import NBProcessor

ROOT = Path(__file__).resolve().parents[1]
PLOTLY_MIME, WIDGET_MIME = 'application/vnd.plotly.v1+json', 'application/vnd.jupyter.widget-view+json'
HIDE_DIRECTIVES = {'hide', 'exporti'}
_re_directive = re.compile(r'^\s*#\s*\|')
_re_cdn = re.compile(r'<script\b[^>]*\bsrc\s*=\s*["\']?(?:https?:)?//[^>]*>\s*</script>'  # remote scripts and links
                     r'|<link\b[^>]*\bhref\s*=\s*["\']?(?:https?:)?//[^>]*>', re.I)
_re_md_ipynb_link = re.compile(r'\]\((?![a-z]+:|/|#)([^)\s]*\.ipynb)')
_re_ipynb_link = re.compile(r'(href="(?![a-z]+:)[^"#]*?)\.ipynb\b')


class NotebookError(Exception): pass

def _text(v): return ''.join(v) if isinstance(v, list) else str(v)

def _qval(cell, key):
    "Value of a Quarto-style directive such as `#| echo: false` (nbdev stores it as 'echo:'), lower-cased"
    return ' '.join(cell.directives_.get(key + ':', [])).lower()

def load_nb(path):
    "Read `path` with nbdev's directive parsing; each cell gets `directives_` and `shown_` (source without `#|` lines)"
    nb = NBProcessor(path, rm_directives=True).nb
    for c in nb.cells:
        src = _text(c.get('source', ''))
        if c.cell_type == 'code': src = ''.join(l for l in src.splitlines(True) if not _re_directive.match(l)).strip()
        c.shown_ = src
    return nb

def visibility(cell):
    "(show source?, show outputs?) for `cell`, from its directives"
    if cell.directives_.keys() & HIDE_DIRECTIVES or _qval(cell, 'include') == 'false': return False, False
    if cell.cell_type != 'code': return True, False
    echo = _qval(cell, 'echo') != 'false' and not cell.get('metadata', {}).get('hide_input') and bool(cell.shown_)
    return echo, _qval(cell, 'output') != 'false'

def title_of(nb, default):
    "(title, summary, index of the title cell) from the first markdown `# Title` + `> summary`"
    for i, c in enumerate(nb.cells):
        lines = c.source.strip().splitlines() if c.cell_type == 'markdown' else []
        if lines and lines[0].startswith('# '):
            summary = ' '.join(l.lstrip('> ').strip() for l in lines[1:] if l.startswith('>'))
            return lines[0][2:].strip(), summary, i
    return default, '', None


def execute(nb, path, skip_flags):
    "Run `nb`'s code cells in place, like nbdev's `test_nb`; raise `NotebookError` naming the failing cell"
    def skip(cell):
        if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
        if _qval(cell, 'eval') == 'false' or skip_flags & cell.directives_.keys(): return True
        cell.outputs = []  # `CaptureShell.cell` keeps old outputs when a cell prints nothing
        return False
    shell = CaptureShell(path)
    with working_directory(path.parent):
        try: shell.run_all(nb, exc_stop=True, preproc=skip)
        except Exception as e:
            cell = nb.cells[shell._cell_idx - 1]
            first = (cell.shown_.splitlines() or [''])[0]
            raise NotebookError(f"{path.relative_to(ROOT)}: cell {shell._cell_idx} (`{first}`) raised "
                                f"{type(e).__name__}: {e}\n{shell.prettytb(fname=path)}") from None


class _Renderer(mistune.HTMLRenderer):
    def block_code(self, code, info=None):
        try: lexer = get_lexer_by_name((info or 'text').split()[0])
        except ClassNotFound: lexer = get_lexer_by_name('text')
        return highlight(code, lexer, HtmlFormatter())
    # no MathJax offline: show TeX as written, kept away from the markdown parser
    def inline_math(self, text): return f'<span class="math">${html.escape(text)}$</span>'
    def block_math(self, text): return f'<div class="math">$${html.escape(text)}$$</div>\n'

md2html = mistune.create_markdown(renderer=_Renderer(escape=False),
                                  plugins=['table', 'strikethrough', 'footnotes', 'url', 'task_lists', 'math'])

def plotly_div(fig, n):
    "A div plus the `Plotly.newPlot` call that draws `fig` (a plotly JSON output) with the local plotly.js"
    fig = json.loads(fig) if isinstance(fig, str) else fig
    height = fig.get('layout', {}).get('height') or 525
    js = json.dumps(fig, separators=(',', ':')).replace('</', '<\\/')
    return (f'<div id="plotly-fig-{n}" class="plotly-graph-div" style="height:{height}px;width:100%"></div>\n'
            f'<script>Plotly.newPlot("plotly-fig-{n}", Object.assign({{config: {{responsive: true}}}}, {js}));</script>')

def output_html(out, fig_ids):
    "HTML for one notebook output; `fig_ids` (an `itertools.count`) numbers the plotly divs of a page"
    kind = out['output_type']
    if kind == 'stream':
        return f'<pre class="output {out["name"]}">{ansi2html(_text(out["text"]))}</pre>'
    if kind == 'error':
        return f'<pre class="output error">{ansi2html(chr(10).join(out["traceback"]))}</pre>'
    data = out.get('data', {})
    if PLOTLY_MIME in data: return plotly_div(data[PLOTLY_MIME], next(fig_ids))
    if WIDGET_MIME in data:
        return '<p class="output widget">[interactive widget: open the notebook in Jupyter to use it]</p>'
    if 'text/html' in data:
        h = _text(data['text/html'])
        if 'window.Plotly = Plotly' in h and len(h) > 100_000: return ''  # plotly.js itself (notebook renderer init)
        return f'<div class="output html">{_re_cdn.sub("", h)}</div>'
    if 'text/markdown' in data: return f'<div class="output markdown">{md2html(_text(data["text/markdown"]))}</div>'
    if 'image/svg+xml' in data: return f'<div class="output">{_text(data["image/svg+xml"])}</div>'
    for mime in ('image/png', 'image/jpeg'):
        if mime in data: return f'<div class="output"><img src="data:{mime};base64,{_text(data[mime]).strip()}"></div>'
    if 'text/plain' in data: return f'<pre class="output">{html.escape(_text(data["text/plain"]))}</pre>'
    return ''

def page_body(nb):
    "The cells of `nb` as HTML (the title cell excluded)"
    _, _, title_idx = title_of(nb, '')
    parts, fig_ids = [], itertools.count(1)
    for i, cell in enumerate(nb.cells):
        show_src, show_out = visibility(cell)
        if cell.cell_type == 'markdown':
            src = cell.source.strip()
            if i == title_idx: src = '\n'.join(l for l in src.splitlines()[1:] if not l.startswith('>'))
            if show_src and src.strip(): parts.append(f'<div class="cell markdown">{md2html(src)}</div>')
        elif cell.cell_type == 'code':
            src = highlight(cell.shown_, PythonLexer(), HtmlFormatter()) if show_src else ''
            outs = ''.join(output_html(o, fig_ids) for o in cell.get('outputs', [])) if show_out else ''
            if src or outs: parts.append(f'<div class="cell code">{src}{outs}</div>')
    return _re_ipynb_link.sub(r'\1.html', '\n'.join(parts))

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{head_title}</title>
<link rel="stylesheet" href="assets/style.css">
<script src="assets/plotly.min.js"></script>
</head><body>
<nav class="sidebar"><a class="site" href="index.html">{site}</a><ul>
{nav}
</ul></nav>
<main><header><h1 class="title">{title}</h1>{subtitle}</header>
{body}
</main></body></html>
"""

CSS = """body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;display:flex}
.sidebar{position:sticky;top:0;height:100vh;overflow-y:auto;width:240px;flex:none;background:#f6f7f9;
 border-right:1px solid #ddd;padding:1.2em 0}
.sidebar .site{display:block;font-weight:700;font-size:1.2em;padding:0 1em .6em;color:#222;text-decoration:none}
.sidebar ul{list-style:none;margin:0;padding:0}.sidebar li a{display:block;padding:.3em 1em;color:#335;text-decoration:none}
.sidebar li a:hover{background:#e8ebf0}.sidebar li a.active{background:#dde6f6;border-left:3px solid #2a6ad4;font-weight:600}
main{flex:1;min-width:0;max-width:980px;padding:1.5em 2.5em 4em}
h1.title{margin-bottom:.1em}.subtitle{color:#555;font-size:1.15em;margin-top:0}
.cell{margin:1em 0}.cell.code .highlight{background:#f7f7f9;border:1px solid #e3e3e8;border-radius:4px}
pre{margin:0;padding:.6em .8em;overflow-x:auto;font-size:.9em}
pre.output{background:#fff;border-left:3px solid #ddd}pre.stderr{background:#fff5f5}pre.error{background:#fdecec}
.output img,.markdown img{max-width:100%}.output.widget{color:#777;font-style:italic}.math{font-family:serif}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:.25em .6em}code{font-size:.92em}
"""

def write_assets(out):
    "Copy plotly's bundled plotly.min.js and write the stylesheet into `out/assets`"
    import plotly
    assets = out / 'assets'
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / 'package_data' / 'plotly.min.js', assets / 'plotly.min.js')
    (assets / 'style.css').write_text(CSS + HtmlFormatter().get_style_defs('.highlight'), encoding='utf-8')

def render_page(nb, stem, pages, site):
    "The whole HTML page for notebook `stem`; `pages` is [(stem, title)] for the sidebar"
    title, summary, _ = title_of(nb, stem)
    nav = '\n'.join(f'<li><a href="{s}.html"{" class=active" if s == stem else ""}>{html.escape(t)}</a></li>'
                    for s, t in pages)
    return PAGE.format(title=html.escape(title), site=html.escape(site), nav=nav, body=page_body(nb),
                       head_title=html.escape(site if title == site else f'{title} – {site}'),
                       subtitle=f'<p class="subtitle">{html.escape(summary)}</p>' if summary else '')


def notebooks(nbs_path):
    "All notebooks in `nbs_path` (not those starting with `_` or `.`), `index` first"
    nbs = sorted(p for p in nbs_path.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    return sorted(nbs, key=lambda p: p.stem != 'index')

def executed_outputs(path, skip_flags):
    "Execute the notebook at `path`; return each cell's outputs (run in a fresh worker process per notebook)"
    nb = load_nb(path)
    execute(nb, path, skip_flags)
    return [c.get('outputs') for c in nb.cells]

def build_site(cfg, out, only=None, execute_nbs=True, flags=(), jobs=4):
    "Execute the notebooks (or the `only` ones), `jobs` at a time, and write their pages and assets to `out`"
    nbs = notebooks(cfg.config_path / cfg.nbs_path)
    pages = [(p.stem, title_of(load_nb(p), p.stem)[0]) for p in nbs]
    if only:
        wanted = {Path(n).stem for n in only}
        if missing := wanted - {p.stem for p in nbs}:
            sys.exit(f'--only: no notebook named {sorted(missing)} in {cfg.nbs_path}')
        nbs = [p for p in nbs if p.stem in wanted]
    out.mkdir(parents=True, exist_ok=True)
    write_assets(out)
    skip_flags = set(cfg.get('tst_flags', '').split()) - set(flags)
    outputs = {}
    if execute_nbs:  # one process per notebook, as nbdev_test does: no state leaks from one notebook to the next
        print(f'executing {len(nbs)} notebook(s), {jobs} at a time', flush=True)
        fresh = {'max_tasks_per_child': 1} if sys.version_info >= (3, 11) else {}  # python 3.10 reuses workers
        with ProcessPoolExecutor(max(1, jobs), mp_context=multiprocessing.get_context('spawn'), **fresh) as pool:
            futures = {p: pool.submit(executed_outputs, p, skip_flags) for p in nbs}
            errors = []
            for p, f in futures.items():
                try: outputs[p] = f.result()
                except NotebookError as e: errors.append(str(e))
                except Exception as e: errors.append(f'{p.relative_to(ROOT)}: the worker failed: {type(e).__name__}: {e}')
                else: print(f'  ran {p.name}', flush=True)
        if errors: raise NotebookError('\n\n'.join(errors))
    for p in nbs:
        nb = load_nb(p)
        for cell, outs in zip(nb.cells, outputs.get(p, [])):
            if outs is not None: cell.outputs = outs
        (out / f'{p.stem}.html').write_text(render_page(nb, p.stem, pages, cfg.title), encoding='utf-8')
    print(f'wrote {len(nbs)} page(s) to {out}/')


def _fence(text, lang=''):
    tick = '`' * max(3, max((len(m) + 1 for m in re.findall('`{3,}', text)), default=3))
    return f'{tick}{lang}\n{text.rstrip()}\n{tick}'

def output_md(out):
    "Markdown for one saved output: text as a plain block, markdown as is; plots, widgets, html and images dropped"
    if out['output_type'] == 'stream': return _fence(strip_ansi(_text(out['text'])))
    if out['output_type'] == 'error': return _fence(strip_ansi('\n'.join(out['traceback'])))
    data = out.get('data', {})
    if PLOTLY_MIME in data or WIDGET_MIME in data: return ''
    if 'text/markdown' in data: return _text(data['text/markdown']).strip()
    return _fence(_text(data['text/plain'])) if 'text/plain' in data else ''

def readme_md(nb, src_name):
    "GitHub markdown for `nb`, from its saved outputs"
    parts = [f'<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM {src_name}! DO NOT EDIT! Run `make export`. -->']
    for cell in nb.cells:
        show_src, show_out = visibility(cell)
        if cell.cell_type == 'markdown' and show_src: parts.append(cell.source.strip())
        elif cell.cell_type == 'code':
            if show_src: parts.append(_fence(cell.shown_, 'python'))
            if show_out: parts += [output_md(o) for o in cell.get('outputs', [])]
    return '\n\n'.join(p for p in parts if p) + '\n'

def build_readme(cfg):
    "Write README.md from settings.ini's `readme_nb` (nbs/index.ipynb), as saved: nothing is executed"
    src = cfg.config_path / cfg.nbs_path / cfg.get('readme_nb', 'index.ipynb')
    if not src.exists(): sys.exit(f'{src} not found: create it (settings.ini `readme_nb` names it)')
    dest = cfg.config_path / 'README.md'
    md = readme_md(load_nb(src), src.relative_to(cfg.config_path).as_posix())
    nbs_dir = src.parent.relative_to(cfg.config_path).as_posix()
    md = _re_md_ipynb_link.sub(lambda m: f']({nbs_dir}/{m[1]}', md)  # so links work from the repo root
    dest.write_bytes(md.encode('utf-8'))
    print(f'wrote {dest.relative_to(cfg.config_path)} from {src.relative_to(cfg.config_path)}')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=ROOT / '_site', help='site folder (default: _site)')
    ap.add_argument('--only', nargs='+', metavar='NAME',
                    help='build only these notebooks (stem or file name); the sidebar still lists them all')
    ap.add_argument('--no-exec', action='store_true', help='render saved outputs, execute nothing')
    ap.add_argument('--flags', nargs='*', default=[], help='tst_flags whose cells are run anyway, e.g. slow')
    ap.add_argument('--jobs', type=int, default=min(4, os.cpu_count() or 1), help='notebooks executed at once')
    ap.add_argument('--readme-only', action='store_true', help='only write README.md from the readme notebook')
    args = ap.parse_args(argv)
    cfg = get_config(path=ROOT)
    if args.readme_only: return build_readme(cfg)
    try: build_site(cfg, args.out.resolve(), args.only, not args.no_exec, args.flags, args.jobs)
    except NotebookError as e: sys.exit(f'build_docs: {e}\nfix the notebook (run it in Jupyter), then rebuild.')

if __name__ == '__main__': main()
