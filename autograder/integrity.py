"""An integrity scan of every cell a student could edit, run by the grader, outside the kernel.

It reads the cells' source (never runs it) and reports what an honest answer
has no reason to do: reach the answer key or the checks' internals, change
modules, builtins or IPython's hooks, touch files outside the submission,
start processes or signal them, read IPython's input history, or call an API
the exercise forbids. Each exercise may declare its forbidden APIs in the
source notebook, in the answer cell's metadata::

    "course": {"forbidden": ["torch.nn.functional.max_pool2d", "F.max_pool2d"]}

A hit does not change the score: the row becomes ``flagged`` with its reasons,
for the instructor to confirm. Warnings and printing to stderr are not hits.
"""
from __future__ import annotations

import ast
import re

#: Names whose use in an answer reaches the grader, the answer key or the kernel's machinery.
ALWAYS_FORBIDDEN = {
    "checks": "uses the course's checks (their oracles are not an answer)",
    "helpers.checks": "uses the course's checks (their oracles are not an answer)",
    "autograder": "imports the grader",
    "solutions": "reaches the reference solutions",
    "COURSE_ROOT": "reads the course's location",
    "get_ipython": "changes or reads IPython's machinery",
    "In": "reads IPython's input history", "_ih": "reads IPython's input history",
    "Out": "reads IPython's output history", "_oh": "reads IPython's output history",
    "builtins": "changes Python's builtins", "__builtins__": "changes Python's builtins",
    "__import__": "imports modules indirectly",
    "importlib": "imports or reloads modules indirectly",
    "sys.modules": "changes the loaded modules", "sys.path": "changes where modules are found",
    "sys.settrace": "installs a tracer", "sys.setprofile": "installs a profiler",
    "sys.meta_path": "changes how modules are imported",
    "subprocess": "starts processes", "os.system": "starts processes", "os.popen": "starts processes",
    "os.fork": "starts processes", "os.spawn": "starts processes", "os.exec": "replaces the kernel",
    "pty": "starts processes", "multiprocessing": "starts processes",
    "os.kill": "signals processes", "os.killpg": "signals processes", "signal": "handles signals",
    "os._exit": "ends the kernel", "sys.exit": "ends the kernel", "exit": "ends the kernel",
    "quit": "ends the kernel", "ctypes": "calls C code directly",
    "sqlite3": "opens a database (the gradebook?)", "socket": "uses the network",
    "shutil.rmtree": "deletes folders", "os.remove": "deletes files", "os.unlink": "deletes files",
    "os.rmdir": "deletes folders", "os.chdir": "changes the working folder",
    "os.environ": "reads or changes the environment",
    "gc.get_objects": "walks the interpreter's objects", "inspect.stack": "reads the caller's frames",
    "sys._getframe": "reads the caller's frames",
}
#: Where a string literal names a place outside the submission.
OUTSIDE_PATH = re.compile(r"^(~/|/[A-Za-z._])|gradebook\.db|/solutions|\.\./|\.\.\\")


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _matches(name: str, rule: str) -> bool:
    return name == rule or name.startswith(rule + ".") or (rule.endswith(("os.spawn", "os.exec"))
                                                           and name.startswith(rule))


def own_attribute(call: ast.Call, local: set[str], aliases: dict[str, str]) -> bool:
    """``setattr(self, f"layer{i}", ...)`` and the like: the usual way to name layers in a loop.

    A ``setattr``/``delattr`` on ``self``, ``cls`` or an object the cell created
    itself is no more than ``self.layer1 = ...``; on anything else (a module, a
    class the cell imported) it is a hit.
    """
    if call.func.id not in ("setattr", "delattr") or not call.args:
        return False
    owner = dotted(call.args[0])
    if owner is None:
        return False
    head = owner.split(".")[0]
    return head in ("self", "cls") or (head in local and head not in aliases)


def scan(source: str, forbidden: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Reasons to flag ``source`` (sorted, without repeats); [] for an honest cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        lines = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(lines)
        except SyntaxError:
            return []                 # a syntax error is the student's own failure, not a hit
    if any(ln.lstrip().startswith("!") for ln in source.splitlines()):
        return ["runs shell commands (!)"]
    rules = dict(ALWAYS_FORBIDDEN)
    for api in forbidden:
        rules[api] = "uses an API this exercise forbids"
    aliases: dict[str, str] = {}
    reasons: set[str] = set()
    # Names the cell defines itself (variables, parameters, functions): `signal = ...` is no hit.
    local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in (*n.posonlyargs, *n.args, *n.kwonlyargs, n.vararg, n.kwarg) if a is not None}
    local |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}

    hits: dict[str, str] = {}          # one reason per rule: its first, shortest match

    def check(name: str, where: str) -> None:
        if not where and name.split(".")[0] in local and name.split(".")[0] not in aliases:
            return
        if name.endswith((".__file__", ".__path__", ".__spec__", ".__loader__")):
            reasons.add(f"locates a module's files: `{name}`")
        full = aliases.get(name.split(".")[0], name.split(".")[0])
        full = ".".join([full, *name.split(".")[1:]])
        for candidate in (name, full):
            for rule, why in rules.items():
                if _matches(candidate, rule) and (rule not in hits or len(candidate) < len(hits[rule])):
                    hits[rule] = candidate

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[(alias.asname or alias.name).split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
                check(alias.name, " (import)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                check(f"{node.module}.{alias.name}", " (import)")
            check(node.module, " (import)")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            name = dotted(node)
            if name:
                check(name, "")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript):
                    owner = dotted(target.value)
                    if owner and (owner.split(".")[0] not in local or owner.split(".")[0] in aliases) \
                            and "." in owner:
                        reasons.add(f"changes an item of `{owner}`, which the cell did not create")
                if isinstance(target, ast.Attribute):
                    owner = dotted(target.value)
                    if owner and owner.split(".")[0] not in local | {"self", "cls"} \
                            or owner and owner.split(".")[0] in aliases:
                        reasons.add(f"changes an attribute of `{owner}`, which the cell did not "
                                    f"create: `{dotted(target)}`")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("setattr", "delattr", "eval", "exec", "compile", "globals", "vars") \
                and not own_attribute(node, local, aliases):
            reasons.add(f"calls {node.func.id}()")
        if isinstance(node, ast.Call) and dotted(node.func) in ("open", "io.open", "pathlib.Path", "Path") \
                and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and OUTSIDE_PATH.search(node.args[0].value):
            reasons.add(f"touches a file outside the submission: {node.args[0].value!r}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "gradebook" in node.value or "solutions/" in node.value:
                reasons.add(f"names the grader's files: {node.value[:60]!r}")
            elif "COURSE_ROOT" in node.value or "COURSE_GRADING" in node.value:
                reasons.add(f"reads the course's location: {node.value[:60]!r}")
            elif OUTSIDE_PATH.search(node.value) and "\n" not in node.value:
                reasons.add(f"names a path outside the submission: {node.value[:60]!r}")
    reasons |= {f"{rules[rule]}: `{name}`" for rule, name in hits.items()}
    return sorted(reasons)


def scan_cells(cells: list[tuple[str, str]], forbidden: dict[str, list[str]] | None = None) -> list[str]:
    """Flag reasons for (label, source) cells, each prefixed with its label.

    ``forbidden`` maps an answer cell's grade id to the APIs its exercise forbids.
    """
    forbidden = forbidden or {}
    out = []
    for label, source in cells:
        gid = label.rsplit(" ", 1)[-1]
        for reason in scan(source, forbidden.get(gid, ()) if label.startswith("answer") else ()):
            out.append(f"{label} {reason}")
    return out
