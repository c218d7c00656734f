"""SensorThings query options, parsed and checked (CPython only, pure).

    $top, $skip, $count, $orderby, $select, $expand (one level, no nested options), $filter

$filter takes comparisons (eq ne gt ge lt le) of a property with a literal, joined by and/or,
with not and parentheses. Properties: @iot.id (or id), name, result, phenomenonTime,
resultTime, and NAV/@iot.id (e.g. Datastream/@iot.id). Literals: 'text', numbers, true, false,
null, and times (2026-12-01T00:00:00Z, with a zone). An interval (phenomenonTime) is after a time
(gt, ge) by its start and before it (lt, le) by its end, as FROST-Server does.
predicate() turns a filter into a test of an entity. Bad input raises QueryError naming the option; the endpoint answers 400 with it.
"""
import re
from datetime import datetime

DEFAULT_TOP = 100
MAX_TOP = 10000
OPTIONS = ("$top", "$skip", "$count", "$orderby", "$select", "$expand", "$filter", "$resultFormat")
OPS = ("eq", "ne", "gt", "ge", "lt", "le")
TIME_PROPS = ("phenomenonTime", "resultTime")


class QueryError(Exception):
    """str(e) names the option and what is wrong with it."""

    def __init__(self, option, message):
        super().__init__("%s: %s" % (option, message))
        self.option = option


class Query:
    __slots__ = ("top", "skip", "count", "orderby", "select", "expand", "filter")

    def __init__(self):
        self.top, self.skip, self.count = DEFAULT_TOP, 0, False
        self.orderby, self.select, self.expand, self.filter = [], None, [], None


def parse(args, properties, navigation):
    """Query from request args (a mapping); properties/navigation: the names this entity set has."""
    q = Query()
    for k in args:
        if k.startswith("$") and k not in OPTIONS:
            raise QueryError(k, "not a query option this server knows (%s)" % ", ".join(OPTIONS[:-1]))
    if "$top" in args:
        q.top = min(_count_number(args["$top"], "$top"), MAX_TOP)
    if "$skip" in args:
        q.skip = _count_number(args["$skip"], "$skip")
    if "$count" in args:
        if args["$count"] not in ("true", "false"):
            raise QueryError("$count", "must be true or false, not %r" % args["$count"])
        q.count = args["$count"] == "true"
    if args.get("$resultFormat") not in (None, "", "default"):
        raise QueryError("$resultFormat", "only the default result format is served")
    if "$orderby" in args:
        for part in _items(args["$orderby"], "$orderby"):
            words = part.split()
            if len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
                raise QueryError("$orderby", "%r: use PROPERTY [asc|desc]" % part)
            _check_property(words[0], properties, navigation, "$orderby")
            q.orderby.append((words[0], len(words) == 2 and words[1] == "desc"))
    if "$select" in args:
        q.select = _items(args["$select"], "$select")
        for p in q.select:
            if p not in properties and p not in navigation and p not in ("@iot.id", "id", "@iot.selfLink"):
                raise QueryError("$select", "%r is not a property here (%s)" % (p, ", ".join(properties)))
    if "$expand" in args:
        for p in _items(args["$expand"], "$expand"):
            if "(" in p or "/" in p:
                raise QueryError("$expand", "%r: one level of $expand without options is served" % p)
            if p not in navigation:
                raise QueryError("$expand", "%r is not a navigation property here (%s)" % (p, ", ".join(navigation)))
            q.expand.append(p)
    if args.get("$filter"):
        q.filter = parse_filter(args["$filter"], properties, navigation)
    return q


def _count_number(text, option):
    if not re.fullmatch(r"[0-9]{1,9}", text or ""):
        raise QueryError(option, "must be a whole number >= 0, not %r" % text)
    return int(text)


def _items(text, option):
    items = [p.strip() for p in (text or "").split(",")]
    if not all(items):
        raise QueryError(option, "an empty item in %r" % text)
    return items


def _check_property(path, properties, navigation, option):
    if path in ("@iot.id", "id") or path in properties:
        return path
    nav, _, rest = path.partition("/")
    if nav in navigation and rest in ("@iot.id", "id"):
        return path
    raise QueryError(option, "%r is not a property here (%s, or NAV/@iot.id)" % (path, ", ".join(properties)))


# -- $filter -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<time>\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))"
                    r"|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<paren>[()])|(?P<word>[@A-Za-z_][\w@./]*))")


def _tokens(text):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError("$filter", "cannot read %r at character %d" % (text[pos:pos + 20].strip(), pos + 1))
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "time":
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise QueryError("$filter", "%r is not a time" % value)
        elif kind == "num":
            value = float(value) if any(c in value for c in ".eE") else int(value)
        out.append((kind, value))
        pos = m.end()
    return out


def parse_filter(text, properties, navigation):
    """A tree: ("and"|"or", a, b) | ("not", a) | (op, path, literal)."""
    toks = _tokens(text)
    tree, i = _expr(toks, 0, properties, navigation)
    if i != len(toks):
        raise QueryError("$filter", "unexpected %r" % (toks[i][1],))
    return tree


def _expr(toks, i, props, navs):
    left, i = _term(toks, i, props, navs)
    while i < len(toks) and toks[i] in (("word", "and"), ("word", "or")):
        op = toks[i][1]
        right, i = _term(toks, i + 1, props, navs)
        left = (op, left, right)
    return left, i


def _term(toks, i, props, navs):
    if i >= len(toks):
        raise QueryError("$filter", "ends too early")
    if toks[i] == ("word", "not"):
        inner, i = _term(toks, i + 1, props, navs)
        return ("not", inner), i
    if toks[i] == ("paren", "("):
        inner, i = _expr(toks, i + 1, props, navs)
        if i >= len(toks) or toks[i] != ("paren", ")"):
            raise QueryError("$filter", "a '(' is not closed")
        return inner, i + 1
    if i + 3 > len(toks):
        raise QueryError("$filter", "expected PROPERTY OP VALUE")
    (k1, path), (k2, op), (k3, lit) = toks[i], toks[i + 1], toks[i + 2]
    if k1 != "word" or k2 != "word" or op not in OPS:
        raise QueryError("$filter", "expected PROPERTY OP VALUE with OP one of %s, at %r" % (" ".join(OPS), path))
    _check_property(path, props, navs, "$filter")
    if k3 == "word":
        if lit not in ("true", "false", "null"):
            raise QueryError("$filter", "%r is not a value ('text', a number, a time with Z, true, false, null)" % lit)
        lit = {"true": True, "false": False, "null": None}[lit]
    if path in TIME_PROPS and k3 != "time":
        raise QueryError("$filter", "%s compares with a time such as 2026-12-01T00:00:00Z" % path)
    return (op, path, lit), i + 3


def predicate(tree, accessor):
    """A function entity -> bool for a filter tree; accessor(path) -> a function entity -> its value
    (a number, text, or (start, end) for an interval). Built once per request, run per entity."""
    op = tree[0]
    if op in ("and", "or"):
        a, b = predicate(tree[1], accessor), predicate(tree[2], accessor)
        return (lambda e: a(e) and b(e)) if op == "and" else (lambda e: a(e) or b(e))
    if op == "not":
        inner = predicate(tree[1], accessor)
        return lambda e: not inner(e)
    get, lit = accessor(tree[1]), tree[2]
    return lambda e: _compare(op, get(e), lit)


def _compare(op, value, lit):
    if isinstance(value, tuple):  # an interval [start, end)
        start, end = value
        return {"eq": start == lit and end == lit, "ne": not (start <= lit < end), "gt": start > lit,
                "ge": start >= lit, "lt": end <= lit, "le": end <= lit}[op]
    if op == "eq":
        return value == lit
    if op == "ne":
        return value != lit
    if value is None or lit is None or isinstance(value, str) != isinstance(lit, str):
        return False
    if op == "gt":
        return value > lit
    if op == "ge":
        return value >= lit
    return value < lit if op == "lt" else value <= lit


def time_bounds(tree):
    """(lo, hi) on an Observation's window end (resultTime) implied by the top-level and-terms of
    the filter, for fetching fewer summaries: every match has lo <= end <= hi (None: open)."""
    lo = hi = None
    for op, path, lit in _conjuncts(tree):
        if path not in TIME_PROPS or not isinstance(lit, (int, float)):
            continue
        if op in ("gt", "ge", "eq"):
            lo = lit if lo is None else max(lo, lit)
        if op in ("lt", "le", "eq") and (path == "resultTime" or op != "eq"):
            hi = lit if hi is None else min(hi, lit)
    return lo, hi


def equal_ids(tree, path_names):
    """The ids a top-level and-term pins one of `path_names` to (eq), or None."""
    for op, path, lit in _conjuncts(tree):
        if op == "eq" and path in path_names and isinstance(lit, str):
            return lit
    return None


def _conjuncts(tree):
    if tree is None:
        return []
    if tree[0] == "and":
        return _conjuncts(tree[1]) + _conjuncts(tree[2])
    if tree[0] in ("or", "not"):
        return []
    return [tree]
