"""Hostile, dishonest and broken submissions, each with the exact outcome the grader must give.

Every case starts from the reference answers of the red-team assignment
(``course/solutions/00_redteam``: ``add`` checked with ``numpy.testing``,
``max_pool_2d`` checked with ``helpers.checks``, 2 points each) and changes
what its kind needs. ``expect`` is (status, autograded score or None, words
that must appear in the row's flags or error).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import nbformat

ADD = "def add(a, b):\n    return a + b\n"
STUB_ADD = "def add(a, b):\n    raise NotImplementedError\n"
STUB_POOL = "def max_pool_2d(x, kernel_size=2, stride=2):\n    raise NotImplementedError\n"
VICTIM_SECRET = "VICTIM_SECRET_7731"


@dataclass
class Case:
    name: str
    kind: str                                   # the kind of attack or failure (autograder/README.md)
    expect: tuple                               # (status, score, [words in flags or error])
    answers: dict[str, str] = field(default_factory=dict)
    edit: Callable | None = None                # edit(notebook) -> notebook, after the answers
    folder: Callable | None = None              # folder(path): add files, rename, corrupt...
    sandbox_only: bool = False                  # only meaningful (or safe) inside the sandbox


def _tests(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
            and c.cell_type == "code"]


def _tag_tests(nb):
    for cell in _tests(nb):
        cell.metadata["tags"] = ["skip-execution"]
    return nb


def _edit_test(nb):
    _tests(nb)[0].source = 'print("✓ add: passed.")'
    return nb


def _delete_test(nb):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_max_pool_2d"]
    return nb


def _duplicate(nb):
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add")
    copy = nbformat.from_dict(dict(answer))
    copy["id"] = "duplicate-of-add"
    nb.cells.append(copy)
    return nb


def _kernelspec(nb):
    nb.metadata["kernelspec"] = {"name": "evil", "display_name": "evil", "language": "python"}
    return nb


def _fake_helpers(path):
    fake = path / "helpers" / "checks"
    fake.mkdir(parents=True)
    (path / "helpers" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("def check_max_pool_2d(fn):\n    print('✓ faked')\n")
    (fake / "pooling.py").write_text("def compare_pool(*a, **k):\n    pass\n")


def _truncate(path):
    nb = path / "00_redteam.ipynb"
    nb.write_text(nb.read_text()[:-200])


def _rename(path):
    (path / "00_redteam.ipynb").rename(path / "homework.ipynb")


CASES = [
    # 1-3: the gradebook, the course and classmates are out of reach.
    Case("gradebook_sql", "writes the gradebook with sqlite3", ("flagged", 4, ["sqlite3"]),
         {"add": "import os, sqlite3\nfor p in ['../../gradebook.db', '../../../gradebook.db',\n"
                 "          os.environ.get('COURSE_GRADING_DIR', '.') + '/gradebook.db']:\n"
                 "    try:\n        con = sqlite3.connect(p)\n"
                 "        con.execute('UPDATE grade SET manual_score = 0')\n        con.commit()\n"
                 "    except Exception:\n        pass\n" + ADD}),
    Case("rewrite_checks", "rewrites the course's checks on disk", ("flagged", 4, ["__file__"]),
         {"add": "import pathlib\nimport helpers.checks.pooling as p\ntry:\n"
                 "    f = pathlib.Path(p.__file__)\n    f.write_text('def compare_pool(*a, **k): pass\\n')\n"
                 "except OSError as e:\n    print('blocked:', e)\n" + ADD}),
    Case("read_classmate", "reads a classmate's answers into its feedback", ("flagged", 4, ["outside"]),
         {"add": "for p in ['../../victim_a/00_redteam/00_redteam.ipynb', '/tmp/../etc/hostname']:\n"
                 "    try:\n        print(open(p).read()[:3000])\n    except OSError as e:\n"
                 "        print('blocked:', e)\n" + ADD}),
    Case("overwrite_classmate", "overwrites a classmate's notebook", ("flagged", 4, ["outside"]),
         {"add": "try:\n    open('../../victim_a/00_redteam/00_redteam.ipynb', 'w').write('{}')\n"
                 "except OSError as e:\n    print('blocked:', e)\n" + ADD}),
    Case("delete_classmate", "deletes a classmate's folder", ("flagged", 4, ["deletes folders"]),
         {"add": "import shutil\nshutil.rmtree('../../victim_b', ignore_errors=True)\n" + ADD}),
    # 4: the checks in the kernel are rewritten: the scan flags it, the score is kept for review.
    Case("patch_check_function", "replaces a check function in the kernel", ("flagged", 2, ["checks"]),
         {"max_pool_2d": "checks.check_max_pool_2d = lambda fn: print('✓')\n" + STUB_POOL}),
    Case("patch_check_module", "replaces a check module's helpers", ("flagged", 4, ["changes an attribute"]),
         {"max_pool_2d": "import helpers.checks.pooling as p\np.compare_pool = lambda *a, **k: None\n"
                         "checks.check_max_pool_2d = lambda fn: None\n" + STUB_POOL}),
    Case("patch_assert_allclose", "replaces numpy.testing.assert_allclose",
         ("flagged", 4, ["np.testing.assert_allclose"]),
         {"add": "np.testing.assert_allclose = lambda *a, **k: None\ndef add(a, b):\n    return 0\n"}),
    Case("ast_transformer", "wraps later cells in try/except with an AST transformer",
         ("flagged", 4, ["get_ipython"]),
         {"add": "import ast\nclass Swallow(ast.NodeTransformer):\n    def visit_Module(self, node):\n"
                 "        handler = ast.ExceptHandler(type=None, name=None, body=[ast.Pass()])\n"
                 "        new = ast.Module(body=[ast.Try(body=node.body, handlers=[handler], orelse=[],\n"
                 "                                       finalbody=[])], type_ignores=[])\n"
                 "        return ast.fix_missing_locations(new)\n"
                 "get_ipython().ast_transformers.append(Swallow())\n" + STUB_ADD,
          "max_pool_2d": STUB_POOL}),
    Case("fake_helpers_on_sys_path", "puts a fake helpers package first on sys.path",
         ("flagged", 2, ["sys.path"]),
         {"max_pool_2d": "import os, sys\nos.makedirs('helpers/checks', exist_ok=True)\n"
                         "open('helpers/__init__.py', 'w').close()\n"
                         "open('helpers/checks/__init__.py', 'w').write('def check_max_pool_2d(f): pass')\n"
                         "open('helpers/checks/pooling.py', 'w').write('def compare_pool(*a, **k): pass')\n"
                         "sys.path.insert(0, os.getcwd())\n"
                         "for m in [m for m in sys.modules if m.startswith('helpers')]:\n"
                         "    del sys.modules[m]\n" + STUB_POOL}),
    Case("submitted_helpers_folder", "submits a fake helpers package beside the notebook",
         ("graded", 2, []), {"max_pool_2d": STUB_POOL}, folder=_fake_helpers),
    # 5: the answer key is not reachable.
    Case("answer_key", "opens the reference solutions through COURSE_ROOT", ("flagged", 4, ["COURSE_ROOT"]),
         {"add": "import os\ntry:\n    print(open(os.environ.get('COURSE_ROOT', '/nowhere')\n"
                 "               + '/solutions/00_redteam/00_redteam.ipynb').read()[:500])\n"
                 "except OSError as e:\n    print('blocked:', e)\n" + ADD}),
    Case("oracle_import", "passes the checks' own oracle as its answer", ("flagged", 4, ["checks"]),
         {"max_pool_2d": "from helpers.checks.pooling import reference_pool\n"
                         "def max_pool_2d(x, kernel_size=2, stride=2):\n"
                         "    return reference_pool(x, 'max', kernel_size, stride).astype(x.dtype)\n"}),
    Case("forbidden_api", "calls an API the exercise forbids", ("flagged", 4, ["forbids"]),
         {"add": "import operator\nadd = operator.add\n"}),
    Case("torch_pool_in_numpy", "uses torch's pooling in the NumPy exercise", ("flagged", 4, ["forbids"]),
         {"max_pool_2d": "import torch\nimport torch.nn.functional as F\n"
                         "def max_pool_2d(x, kernel_size=2, stride=2):\n"
                         "    t = torch.from_numpy(x)\n    t = t[None] if t.ndim == 3 else t[None, None]\n"
                         "    out = F.max_pool2d(t, kernel_size, stride)\n"
                         "    return (out[0] if x.ndim == 3 else out[0, 0]).numpy()\n"}),
    # 6: test cells and their metadata are restored from the release.
    Case("skip_execution_tags", "tags every test cell skip-execution", ("flagged", 0, ["metadata of test cell"]),
         {"add": STUB_ADD, "max_pool_2d": STUB_POOL}, edit=_tag_tests),
    Case("edited_test_cell", "edits a test cell", ("flagged", 2, ["test cell test_add was edited"]),
         {"add": STUB_ADD}, edit=_edit_test),
    Case("deleted_test_cell", "deletes a test cell", ("flagged", 2, ["test cell test_max_pool_2d was deleted"]),
         {"max_pool_2d": STUB_POOL}, edit=_delete_test),
    Case("duplicate_grade_id", "copies an answer cell", ("error", None, ["duplicate grade id add"]),
         edit=_duplicate),
    Case("changed_kernelspec", "changes the kernelspec", ("flagged", 4, ["kernel was changed"]),
         edit=_kernelspec),
    # 7: killing, hanging and lingering.
    Case("hang", "never finishes a cell", ("error", None, ["time-out in cell add"]),
         {"add": "while True:\n    pass\n"}),
    Case("swallowed_ctrl_c", "ignores the interrupt and hangs", ("error", None, ["time"]),
         {"add": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"}),
    Case("os_exit", "ends the kernel with os._exit", ("error", None, ["the kernel died in cell add"]),
         {"add": "import os\nos._exit(3)\n"}),
    Case("kill_process_group", "kills its process group", ("error", None, ["the kernel died in cell add"]),
         {"add": "import os, signal\nos.killpg(0, signal.SIGKILL)\n"}, sandbox_only=True),
    Case("lingering_process", "leaves a process running", ("flagged", 4, ["subprocess"]),
         {"add": "import subprocess\nsubprocess.Popen(['sleep', '987'])\n" + ADD}),
    Case("input_call", "waits for input()", ("graded", 2, []),
         {"add": "name = input('your name? ')\n" + ADD}),
    # 8: fairness.
    Case("stderr_and_warning", "a right answer that warns and writes to stderr", ("graded", 4, []),
         {"add": "import sys, warnings\ndef add(a, b):\n    warnings.warn('this is fine')\n"
                 "    print('a note on stderr', file=sys.stderr)\n    return a + b\n"}),
    # 9: feedback stays small and keeps the hidden tests hidden.
    Case("huge_output", "prints 10 MB", ("graded", 4, []),
         {"add": "print('x' * 10_000_000)\n" + ADD}),
    Case("print_history", "prints IPython's input history", ("flagged", 4, ["input history"]),
         {"add": "def add(a, b):\n    print(In)\n    return a + b\n"}),
    Case("memory_hog", "allocates more memory than the sandbox allows", ("graded", 2, []),
         {"add": "blob = bytearray(6 * 2**30)\n" + ADD}, sandbox_only=True),
    # bad files
    Case("bad_json", "a truncated notebook", ("error", None, ["not valid JSON"]), folder=_truncate),
    Case("renamed_notebook", "a renamed notebook", ("error", None, ["not found in the submission"]),
         folder=_rename),
]

#: Honest submissions graded in the same batch, which no attack may change.
VICTIMS = {
    "victim_a": ({"add": f"# {VICTIM_SECRET}\n" + ADD}, ("graded", 4)),
    "victim_b": ({"add": STUB_ADD, "max_pool_2d": STUB_POOL}, ("graded", 0)),
    "twin_of_a": ({"add": f"# {VICTIM_SECRET}\n" + ADD}, ("graded", 4)),
}
