"""The notebook checks of `make check` (and CI): every notebook valid, without saved widget state,
under 1 MB, and in sync with posebench/ and README.md.

    python tools/check_notebooks.py                  # run the checks
    python tools/check_notebooks.py --strip-widgets  # delete saved widget state in place (nbdev_clean keeps it)

The sync check regenerates what `make export` regenerates (`nbdev_clean`, `nbdev_export`,
`tools/build_docs.py --readme-only`) and fails if that changed a file; the regenerated files stay in
the working tree for you to review and commit. With the environment variable CI set, it also fails
when `git status --porcelain` is not empty afterwards."""
import argparse, hashlib, json, os, subprocess, sys, warnings
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's own nbdev_clean / nbdev_export
NBS, LIB, README = ROOT / 'nbs', ROOT / 'posebench', ROOT / 'README.md'
MAX_BYTES = 1_000_000
WIDGET_STATE = 'application/vnd.jupyter.widget-state+json'


def notebooks():
    "Every notebook under nbs/, skipping folders such as .ipynb_checkpoints (like nbdev)"
    return sorted(p for p in NBS.rglob('*.ipynb') if not any(s.startswith(('.', '_')) for s in p.relative_to(NBS).parent.parts))

def rel(p): return p.relative_to(ROOT).as_posix()

def read_valid(path):
    "(notebook, None) when `path` is a valid notebook, else (None, problem)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # nbformat.read only warns; `validate` raises
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
        return nb, None
    except nbformat.ValidationError as e:
        where = '/'.join(map(str, e.path)) or 'top level'
        msg = e.message if len(e.message) < 300 else e.message[:300] + '...'
        return None, f'{rel(path)} is not a valid notebook (at {where}): {msg}. Fix it in Jupyter and save again.'
    except Exception as e:
        return None, f'{rel(path)} cannot be read as a notebook: {type(e).__name__}: {e}. Fix the JSON (or `git checkout` it).'

def widget_outputs(nb):
    "Outputs of `nb` that carry saved widget state"
    return [o for c in nb.cells for o in c.get('outputs', []) if WIDGET_STATE in o.get('data', {})]

def widget_problem(path, nb):
    if 'widgets' in nb.metadata or widget_outputs(nb):
        return (f'{rel(path)} has saved widget state: clear it with `python tools/check_notebooks.py --strip-widgets` '
                '(nbdev_clean keeps it; in JupyterLab turn off Settings > Save Widget State Automatically)')

def strip_widgets(path):
    "Remove saved widget state from the notebook at `path`, in place; True if it changed"
    nb = json.loads(path.read_text(encoding='utf-8'))
    before = json.dumps(nb)
    nb.get('metadata', {}).pop('widgets', None)
    for cell in nb['cells']:
        for out in cell.get('outputs', []): out.get('data', {}).pop(WIDGET_STATE, None)
        if 'outputs' in cell: cell['outputs'] = [o for o in cell['outputs'] if o.get('data', True)]
    if json.dumps(nb) == before: return False
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    return True

def size_problem(path):
    size = path.stat().st_size
    if size > MAX_BYTES:
        return (f'{rel(path)} is {size / 1e6:.1f} MB (limit 1 MB): strip outputs: clear the big cell outputs in Jupyter '
                'and save (a plotly figure shown with the `notebook` renderer saves all of plotly.js, about 5 MB)')


def snapshot():
    "sha256 of every file under nbs/ and posebench/ (no caches), and of README.md"
    files = [p for d in (NBS, LIB) for p in d.rglob('*') if p.is_file() and '__pycache__' not in p.parts
             and '.ipynb_checkpoints' not in p.parts] + [README]
    return {rel(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists()}

def sync_problems():
    "Regenerate like `make export`; report the files that changed"
    before = snapshot()
    for cmd in ([BIN / 'nbdev_clean'], [BIN / 'nbdev_export'], [sys.executable, 'tools/build_docs.py', '--readme-only']):
        r = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            return [f'`{" ".join(map(str, cmd))}` failed (exit {r.returncode}):\n{r.stdout}{r.stderr}'.rstrip()]
    after = snapshot()
    changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
    problems = []
    if changed:
        problems.append('notebooks and posebench/ were out of sync: the regenerated files are now in your working tree: '
                        'review `git diff`, commit them. Changed: ' + ', '.join(changed))
    if os.environ.get('CI'):
        r = subprocess.run(['git', 'status', '--porcelain'], cwd=ROOT, capture_output=True, text=True)
        status = r.stdout if r.returncode == 0 else f'(`git status` failed: {r.stderr.strip()})'
        if status.strip():
            problems.append('CI: the working tree is not clean after regenerating (`git status --porcelain`):\n'
                            f'{status.rstrip()}\nrun `make export` and commit the result (or .gitignore generated files)')
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--strip-widgets', action='store_true', help='delete saved widget state from nbs/*.ipynb, then exit')
    args = ap.parse_args(argv)
    nbs = notebooks()
    if args.strip_widgets:
        for p in nbs:
            if strip_widgets(p): print(f'stripped widget state from {rel(p)}')
        return
    if not nbs: sys.exit(f'check_notebooks: no notebooks in {rel(NBS)}/')
    problems, invalid = [], 0
    for p in nbs:
        nb, problem = read_valid(p)
        invalid += problem is not None
        problems += [problem] if problem else [widget_problem(p, nb), size_problem(p)]
    problems = [p for p in problems if p]
    problems += ['sync with posebench/ not checked: fix the invalid notebooks first'] if invalid else sync_problems()
    if problems: sys.exit('check_notebooks: FAILED\n- ' + '\n- '.join(problems))
    print(f'check_notebooks: OK: {len(nbs)} notebooks valid, no widget state, each under 1 MB, '
          f'in sync with posebench/ and README.md')

if __name__ == '__main__': main()
