"""The shape of the code, checked from its source: the import graph runs one way, sockets stay thin.

A socket handler is a view: it parses one frame, calls one service or reads one screen, and
sends what chat.fragments renders. These tests read the product's modules with `ast` (nothing is
imported), so they hold for code that no other test happens to run.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "chat", "deskchat", "tickets")
# Django imports models only once the apps are ready: an AppConfig.ready() must import lazily.
LAZY_ALLOWED = {("chat/apps.py", "ready"), ("accounts/apps.py", "ready"), ("tickets/apps.py", "ready")}
HANDLER_MAX_LINES = 15


def product_modules() -> dict[str, Path]:
    """Return every product module by dotted name (migrations and tests aside)."""
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def imported(module: str, path: Path, node: ast.AST) -> list[str]:
    """Return the product modules an import statement names (resolving relative imports)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    base = f"{package}.{node.module}" if node.level and node.module else (package if node.level else node.module)
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph() -> dict[str, set[str]]:
    """Return, for each product module, the product modules it imports at module level."""
    modules = product_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        targets = set()
        for node in tree.body:
            for target in imported(name, path, node):
                if target in modules and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def test_the_import_graph_of_the_product_has_no_circle():
    """No module imports, through any chain, a module that imports it (selectors and services used to)."""
    graph = import_graph()
    done, path = set(), []

    def visit(name):
        if name in path:
            cycle = path[path.index(name) :] + [name]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if name in done:
            return
        path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_product_module_hides_an_import_of_ours_inside_a_function():
    """An import inside a function hides an arrow of the graph (and a circle it would close)."""
    modules = product_modules()
    hidden = []
    for name, path in modules.items():
        relative = str(path.relative_to(ROOT))
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if (relative, function.name) in LAZY_ALLOWED:
                continue
            for node in ast.walk(function):
                ours = [t for t in imported(name, path, node) if t.split(".")[0] in APPS]
                if ours:
                    hidden.append(f"{relative}:{node.lineno} {function.name}() imports {ours[-1]}")
    assert not hidden, hidden


LAYERS = {  # a module may import modules of its own layer or below, never above
    "chat.errors": 0,
    "chat.models": 0,
    "chat.sql": 1,
    "chat.selectors": 2,
    "chat.services": 3,
    "chat.screens": 4,
    "chat.fragments": 4,
    "chat.presence": 5,
    "chat.sockets": 6,
    "chat.hud_views": 6,
    "chat.views": 6,
    "chat.routing": 7,
}


def layer(module: str) -> int | None:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def test_arrows_in_chat_run_one_way_sockets_and_views_down_to_services_selectors_and_models():
    graph = import_graph()
    upward = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if layer(name) is not None and layer(target) is not None and layer(target) > layer(name)
    ]
    assert not upward, upward


def test_fragments_only_render_what_they_are_given():
    """chat/fragments.py imports no selector, model manager or thread hop: it cannot query."""
    graph = import_graph()
    assert not {t for t in graph["chat.fragments"] if t.startswith("chat.")}, graph["chat.fragments"]
    source = (ROOT / "chat" / "fragments.py").read_text()
    for forbidden in ("database_sync_to_async", "sync_to_async", ".objects", "async def"):
        assert forbidden not in source, forbidden


def socket_modules() -> list[Path]:
    return sorted((ROOT / "chat" / "sockets").glob("*.py"))


def test_no_socket_module_runs_orm_code():
    """The sockets reach the database only through call_service and database_sync_to_async reads."""
    found = []
    for path in socket_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("objects", "select_related", "filter", "save"):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("models"):
                # Constants and choices only (roles, limits); a model class would invite a query.
                names = {alias.name for alias in node.names}
                assert names <= {"ChatParticipant", "DRAFT_MAX_LENGTH"}, (path.name, names)
    assert not found, found


def handlers(tree: ast.Module):
    """Yield each socket class's frame handlers (do_*) and group-event handlers (methods taking `event`)."""
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for method in cls.body:
            if not isinstance(method, ast.AsyncFunctionDef):
                continue
            args = [a.arg for a in method.args.args]
            if method.name.startswith("do_") or args[1:2] == ["event"]:
                yield cls.name, method


def code_lines(method: ast.AsyncFunctionDef) -> int:
    """Count a method's lines of code: its body, without its docstring."""
    body = method.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_every_socket_handler_is_short():
    """A handler parses one frame (or event), calls one service or reads one screen, and sends."""
    long_ones, count = [], 0
    for path in socket_modules():
        for cls, method in handlers(ast.parse(path.read_text())):
            count += 1
            if code_lines(method) > HANDLER_MAX_LINES:
                long_ones.append(f"{cls}.{method.name}: {code_lines(method)} lines")
    assert count > 30, "the handlers were not found"
    assert not long_ones, long_ones


def test_the_old_consumer_and_shared_read_modules_are_gone():
    """Sockets live in chat/sockets/ only, so there is one place to read them."""
    for old in ("consumers.py", "supervisor.py", "shared_queue.py", "user_sockets.py"):
        assert not (ROOT / "chat" / old).exists(), old
