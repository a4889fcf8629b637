"""Filters, the keyword (bm25) search and sorting, evaluated against stored objects.

Filters follow the inverted index of a real server: on a text property with ``word``
tokenization, ``Equal("item-42")`` matches every object whose text holds both tokens
``item`` and ``42`` -- not only the exact string. Code that filters on identifiers kept in
``word``-tokenized text trips over this in production, so the test server does the same.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from weaviate.proto.v1 import base_pb2, base_search_pb2

from core.testing.weaviate_server import schema as sch
from core.testing.weaviate_server.store import StoredObject

Predicate = Callable[[StoredObject], bool]

Op = base_pb2.Filters
_META_PROPS = ("_id", "_creationTimeUnix", "_lastUpdateTimeUnix")

# Lucene's English list, which Weaviate's "en" stopword preset uses.
EN_STOPWORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into"),
        *("is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then"),
        *("there", "these", "they", "this", "to", "was", "will", "with"),
    }
)


class QueryError(Exception):
    """A query the real server refuses; the message is sent back as the gRPC details."""


class UnsupportedError(QueryError):
    """A real Weaviate feature that this test server deliberately does not implement."""


# -- filters -----------------------------------------------------------------------------


def compile_filter(flt: base_pb2.Filters, cls: sch.ClassDef) -> Predicate:
    op = flt.operator
    if op in (Op.OPERATOR_AND, Op.OPERATOR_OR):
        parts = [compile_filter(f, cls) for f in flt.filters]
        if op == Op.OPERATOR_AND:
            return lambda o: all(p(o) for p in parts)
        return lambda o: any(p(o) for p in parts)
    if op == Op.OPERATOR_NOT:
        if len(flt.filters) != 1:
            raise QueryError("the Not operator takes exactly one operand")
        inner = compile_filter(flt.filters[0], cls)
        return lambda o: not inner(o)
    if op == Op.OPERATOR_UNSPECIFIED:
        raise QueryError("filter operator is not set")
    return _compile_leaf(flt, cls)


def id_candidates(flt: base_pb2.Filters) -> list[str] | None:
    """The only uuids a filter can match, when it pins them (``_id`` Equal/ContainsAny,
    possibly inside a top-level And, or an Or of such filters); None otherwise.

    Lets a fetch by id be one dict lookup instead of a scan; the full filter still runs
    on the candidates.
    """
    op = flt.operator
    if op in (Op.OPERATOR_EQUAL, Op.OPERATOR_CONTAINS_ANY) and _target_name(flt) == "_id":
        kind = flt.WhichOneof("test_value")
        if op == Op.OPERATOR_EQUAL and kind == "value_text":
            return [sch.canonical_uuid(flt.value_text) or flt.value_text]
        if kind == "value_text_array":
            return [sch.canonical_uuid(v) or v for v in flt.value_text_array.values]
        return None
    if op == Op.OPERATOR_AND:
        for sub in flt.filters:
            found = id_candidates(sub)
            if found is not None:
                return found
        return None
    if op == Op.OPERATOR_OR and flt.filters:
        union: list[str] = []
        for sub in flt.filters:
            found = id_candidates(sub)
            if found is None:
                return None
            union.extend(found)
        return list(dict.fromkeys(union))
    return None


def _target_name(flt: base_pb2.Filters) -> str:
    if flt.HasField("target"):
        kind = flt.target.WhichOneof("target")
        if kind == "property":
            return flt.target.property
        if kind in ("single_target", "multi_target"):
            raise UnsupportedError(
                "filters on cross-references are not supported by the Weaviate test server"
            )
        if kind == "count":
            raise UnsupportedError(
                "reference-count filters are not supported by the Weaviate test server"
            )
    if len(flt.on) == 1:
        return flt.on[0]
    if len(flt.on) > 1:
        raise UnsupportedError(
            "filters on cross-references are not supported by the Weaviate test server"
        )
    raise QueryError("filter has no target property")


def _filter_value(flt: base_pb2.Filters) -> tuple[str, Any]:
    kind = flt.WhichOneof("test_value")
    if kind is None:
        raise QueryError("filter has no value")
    if kind in ("value_text_array", "value_int_array", "value_boolean_array"):
        return kind, list(getattr(flt, kind).values)
    if kind == "value_number_array":
        return kind, [float(v) for v in flt.value_number_array.values]
    if kind == "value_geo":
        raise UnsupportedError("geo filters are not supported by the Weaviate test server")
    return kind, getattr(flt, kind)


_LIST_OPS = (Op.OPERATOR_CONTAINS_ANY, Op.OPERATOR_CONTAINS_ALL, Op.OPERATOR_CONTAINS_NONE)
_RANGE_OPS = {
    Op.OPERATOR_GREATER_THAN: lambda a, b: a > b,
    Op.OPERATOR_GREATER_THAN_EQUAL: lambda a, b: a >= b,
    Op.OPERATOR_LESS_THAN: lambda a, b: a < b,
    Op.OPERATOR_LESS_THAN_EQUAL: lambda a, b: a <= b,
}


def _compile_leaf(flt: base_pb2.Filters, cls: sch.ClassDef) -> Predicate:
    name = _target_name(flt)
    op = flt.operator
    kind, raw = _filter_value(flt)
    inverted = cls.json.get("invertedIndexConfig", {})

    if name in _META_PROPS:
        if name != "_id" and not inverted.get("indexTimestamps"):
            raise QueryError(
                "timestamps must be indexed to be filterable! add `indexTimestamps: true` "
                "to the invertedIndexConfig"
            )
        return _compile_meta(name, op, kind, raw)

    length = name.startswith("len(") and name.endswith(")")
    if length:
        name = name[4:-1]
    prop = cls.properties.get(name)
    if prop is None:
        raise QueryError(
            f"no such prop with name '{name}' found in class '{cls.name}' in the schema. "
            "Check your schema files for which properties in this class are available"
        )
    if length:
        if not inverted.get("indexPropertyLength"):
            raise QueryError(
                "Property length must be indexed to be filterable! add `IndexPropertyLength: "
                "true` to the invertedIndexConfig in "
                f"{cls.name}. Please note that this will only apply to newly imported data"
            )
        if kind != "value_int":
            raise QueryError("property length filters take an integer value")
        return _compile_scalar(
            lambda o: _length(o.properties.get(name)), op, float(raw), length=True
        )
    if op == Op.OPERATOR_IS_NULL:
        if not inverted.get("indexNullState"):
            raise QueryError(
                "Nullstate must be indexed to be filterable! add `indexNullState: true` to "
                "the invertedIndexConfig"
            )
        want_null = bool(raw)
        return lambda o: (o.properties.get(name) is None) == want_null
    if not prop.index_filterable:
        raise QueryError(
            f"Filtering by property '{name}' requires inverted index. Is `indexFilterable` "
            f"option of property '{name}' enabled? Set it to `true` or leave empty"
        )
    return _compile_property(prop, op, kind, raw)


def _length(value: Any) -> float | None:
    if value is None:
        return 0.0
    return float(len(value))


def _compile_meta(name: str, op: int, kind: str, raw: Any) -> Predicate:
    if name == "_id":
        if kind == "value_text":
            value: Any = sch.canonical_uuid(raw) or raw
        elif kind == "value_text_array":
            value = [sch.canonical_uuid(v) or v for v in raw]
        else:
            raise QueryError(f'data type filter cannot use "{kind}" on type "uuid"')
        return _compile_scalar(lambda o: o.uuid, op, value)

    def to_ms(v: Any) -> int:
        if isinstance(v, int):
            return v
        if isinstance(v, str) and v.isdigit():
            return int(v)
        if isinstance(v, str) and (norm := sch.normalize_date(v)) is not None:
            return int(sch.parse_date(norm).timestamp() * 1000)
        raise QueryError(f"invalid timestamp filter value {v!r}")

    value = [to_ms(v) for v in raw] if isinstance(raw, list) else to_ms(raw)
    if name == "_creationTimeUnix":
        return _compile_scalar(lambda o: o.created, op, value)
    return _compile_scalar(lambda o: o.updated, op, value)


_ALLOWED_KINDS = {
    "text": ("value_text", "value_text_array"),
    "text[]": ("value_text", "value_text_array"),
    "uuid": ("value_text", "value_text_array"),
    "uuid[]": ("value_text", "value_text_array"),
    "date": ("value_text", "value_text_array"),
    "date[]": ("value_text", "value_text_array"),
    "blob": ("value_text",),
    "int": ("value_int", "value_number", "value_int_array", "value_number_array"),
    "int[]": ("value_int", "value_number", "value_int_array", "value_number_array"),
    "number": ("value_number", "value_int", "value_number_array", "value_int_array"),
    "number[]": ("value_number", "value_int", "value_number_array", "value_int_array"),
    "boolean": ("value_boolean", "value_boolean_array"),
    "boolean[]": ("value_boolean", "value_boolean_array"),
}
_KIND_NAMES = {
    "value_text": "valueText",
    "value_int": "valueInt",
    "value_number": "valueNumber",
    "value_boolean": "valueBoolean",
    "value_text_array": "valueTextArray",
    "value_int_array": "valueIntArray",
    "value_number_array": "valueNumberArray",
    "value_boolean_array": "valueBooleanArray",
}


def _compile_property(prop: sch.PropertyDef, op: int, kind: str, raw: Any) -> Predicate:
    dt = prop.data_type
    if kind not in _ALLOWED_KINDS[dt]:
        expected = _KIND_NAMES[_ALLOWED_KINDS[dt][0]]
        raise QueryError(
            f'data type filter cannot use "{_KIND_NAMES.get(kind, kind)}" on type '
            f'"{dt}", use "{expected}" instead'
        )
    name = prop.name
    if dt in sch.TEXT_TYPES:
        return _compile_text(name, prop.tokenization, op, raw, array=dt == "text[]")

    convert: Callable[[Any], Any]
    if dt in ("date", "date[]"):

        def convert(v: Any) -> Any:
            norm = sch.normalize_date(v) if isinstance(v, str) else None
            if norm is None:
                raise QueryError(f"invalid date filter value {v!r}: not RFC 3339")
            return sch.parse_date(norm)

        def getter(o: StoredObject) -> Any:
            v = o.properties.get(name)
            if v is None:
                return None
            return [sch.parse_date(x) for x in v] if isinstance(v, list) else sch.parse_date(v)

    elif dt in ("uuid", "uuid[]"):

        def convert(v: Any) -> Any:
            return sch.canonical_uuid(v) or v

        def getter(o: StoredObject) -> Any:
            return o.properties.get(name)

    else:

        def convert(v: Any) -> Any:
            return v

        def getter(o: StoredObject) -> Any:
            return o.properties.get(name)

    value = [convert(v) for v in raw] if isinstance(raw, list) else convert(raw)
    return _compile_scalar(getter, op, value, array=dt.endswith("[]"))


def _compile_scalar(
    getter: Callable[[StoredObject], Any],
    op: int,
    value: Any,
    *,
    array: bool = False,
    length: bool = False,
) -> Predicate:
    """Comparison of a scalar (or, for arrays, of any element) with the filter value."""

    def values_of(o: StoredObject) -> list[Any]:
        v = getter(o)
        if v is None:
            return []
        return v if array else [v]

    if op == Op.OPERATOR_EQUAL:
        return lambda o: any(x == value for x in values_of(o))
    if op == Op.OPERATOR_NOT_EQUAL:
        return lambda o: not any(x == value for x in values_of(o))
    if op in _RANGE_OPS:
        cmp = _RANGE_OPS[op]

        def ranged(o: StoredObject) -> bool:
            try:
                return any(cmp(x, value) for x in values_of(o))
            except TypeError:
                return False

        return ranged
    if op in _LIST_OPS:
        wanted = value if isinstance(value, list) else [value]
        if op == Op.OPERATOR_CONTAINS_ANY:
            return lambda o: any(x in wanted for x in values_of(o))
        if op == Op.OPERATOR_CONTAINS_ALL:
            return lambda o: all(w in values_of(o) for w in wanted)
        return lambda o: not any(x in wanted for x in values_of(o))
    if op == Op.OPERATOR_LIKE:
        if length:
            raise QueryError("Like is not supported on property length")
        if not isinstance(value, str):
            raise QueryError("Like filters take a text value")
        regex = _like_regex(value, case_sensitive=True)
        return lambda o: any(isinstance(x, str) and regex.match(x) for x in values_of(o))
    raise UnsupportedError(f"filter operator {Op.Operator.Name(op)} is not supported here")


def _compile_text(
    name: str, tokenization: str | None, op: int, raw: Any, *, array: bool
) -> Predicate:
    def tokens_of(o: StoredObject) -> set[str]:
        v = o.properties.get(name)
        if v is None:
            return set()
        if array:
            out: set[str] = set()
            for item in v:
                out.update(_tokens(item, tokenization))
            return out
        return set(_tokens(v, tokenization))

    def matches(o_tokens: set[str], query: str) -> bool:
        q = _tokens(query, tokenization)
        return bool(q) and all(t in o_tokens for t in q)

    if op == Op.OPERATOR_EQUAL:
        if isinstance(raw, list):
            raise QueryError("Equal takes a single text value")
        return lambda o: matches(tokens_of(o), raw)
    if op == Op.OPERATOR_NOT_EQUAL:
        return lambda o: not matches(tokens_of(o), raw)
    if op in _LIST_OPS:
        wanted = raw if isinstance(raw, list) else [raw]
        if op == Op.OPERATOR_CONTAINS_ANY:
            return lambda o: any(matches(tokens_of(o), w) for w in wanted)
        if op == Op.OPERATOR_CONTAINS_ALL:
            return lambda o: all(matches(tokens_of(o), w) for w in wanted)
        return lambda o: not any(matches(tokens_of(o), w) for w in wanted)
    if op == Op.OPERATOR_LIKE:
        # Like runs over the index terms: single tokens for word/lowercase/whitespace,
        # the whole value for field. The index holds lower-cased terms for word and
        # lowercase, so the pattern is lower-cased for them too.
        lowered = tokenization in (None, "word", "lowercase", "trigram")
        regex = _like_regex(raw.lower() if lowered else raw, case_sensitive=True)
        return lambda o: any(regex.match(t) for t in tokens_of(o))
    if op in _RANGE_OPS:
        cmp = _RANGE_OPS[op]

        def ranged(o: StoredObject) -> bool:
            v = o.properties.get(name)
            vals = v if array else ([] if v is None else [v])
            return any(cmp(x, raw) for x in vals)

        return ranged
    raise UnsupportedError(f"filter operator {Op.Operator.Name(op)} is not supported here")


@lru_cache(maxsize=65536)
def _tokens(text: str, tokenization: str | None) -> tuple[str, ...]:
    return tuple(sch.tokenize(text, tokenization))


@lru_cache(maxsize=1024)
def _like_regex(pattern: str, *, case_sensitive: bool) -> re.Pattern[str]:
    # Weaviate's Like knows "*" (any run) and "?" (one character); nothing else is special.
    translated = fnmatch.translate(pattern.replace("[", "[[]"))
    return re.compile(translated, 0 if case_sensitive else re.IGNORECASE)


# -- keyword search ------------------------------------------------------------------------


def bm25_scores(
    search: base_search_pb2.BM25, cls: sch.ClassDef, objects: Iterable[StoredObject]
) -> list[tuple[float, StoredObject]]:
    """Score objects for a keyword query: plain term frequency, not real BM25.

    Each query term (stopwords removed for ``word`` tokenization) adds the number of its
    occurrences in every searched text property, times the property's ``^boost``. Objects
    with no matching term are left out; the rest come highest score first, ties in
    insertion order. ``AND`` needs every term somewhere, ``OR`` with
    ``minimum_or_tokens_match`` needs that many distinct terms.
    """
    fields: list[tuple[sch.PropertyDef, float]] = []
    if search.properties:
        for spec in search.properties:
            pname, _, boost = spec.partition("^")
            pname = sch.lowercase_property_name(pname)
            prop = cls.properties.get(pname)
            if prop is None:
                raise QueryError(f"property '{pname}' not found in class '{cls.name}'")
            if prop.data_type not in sch.TEXT_TYPES or not prop.index_searchable:
                raise QueryError(
                    f"property '{pname}' is not searchable: bm25 needs a text or text[] "
                    "property with indexSearchable"
                )
            fields.append((prop, float(boost) if boost else 1.0))
    else:
        fields = [
            (p, 1.0)
            for p in cls.properties.values()
            if p.data_type in sch.TEXT_TYPES and p.index_searchable
        ]

    require_all = False
    minimum = 1
    if search.HasField("search_operator"):
        opts = search.search_operator
        if opts.operator == base_search_pb2.SearchOperatorOptions.OPERATOR_AND:
            require_all = True
        elif opts.minimum_or_tokens_match:
            minimum = opts.minimum_or_tokens_match

    scored: list[tuple[float, StoredObject]] = []
    per_field_terms = [
        (prop, boost, [t for t in _tokens(search.query, prop.tokenization) if _keep(t, prop)])
        for prop, boost in fields
    ]
    all_terms = {t for _, _, terms in per_field_terms for t in terms}
    if not all_terms:
        return scored
    for obj in objects:
        score = 0.0
        hit_terms: set[str] = set()
        for prop, boost, terms in per_field_terms:
            value = obj.properties.get(prop.name)
            if value is None or not terms:
                continue
            counts: dict[str, int] = {}
            for item in value if isinstance(value, list) else (value,):
                for t in _tokens(item, prop.tokenization):
                    counts[t] = counts.get(t, 0) + 1
            for t in terms:
                c = counts.get(t)
                if c:
                    score += c * boost
                    hit_terms.add(t)
        if not hit_terms:
            continue
        if require_all and hit_terms != all_terms:
            continue
        if not require_all and len(hit_terms) < minimum:
            continue
        scored.append((score, obj))
    scored.sort(key=lambda pair: -pair[0])  # stable: ties keep insertion order
    return scored


def _keep(term: str, prop: sch.PropertyDef) -> bool:
    return not (prop.tokenization in (None, "word") and term in EN_STOPWORDS)


# -- sorting -------------------------------------------------------------------------------

_MIN_DATE = datetime.min.replace(tzinfo=UTC)


def sort_objects(
    objects: list[StoredObject], sort_by: Sequence[Any], cls: sch.ClassDef
) -> list[StoredObject]:
    """Sort by one or more properties; objects without the value come first ascending."""
    out = list(objects)
    for spec in reversed(list(sort_by)):
        if len(spec.path) != 1:
            raise UnsupportedError("sorting by cross-reference paths is not supported")
        name = spec.path[0]
        key = _sort_key(name, cls)
        present = [o for o in out if key(o) is not None]
        missing = [o for o in out if key(o) is None]
        present.sort(key=key, reverse=not spec.ascending)
        out = missing + present if spec.ascending else present + missing
    return out


def _sort_key(name: str, cls: sch.ClassDef) -> Callable[[StoredObject], Any]:
    if name == "_id":
        return lambda o: o.uuid
    if name == "_creationTimeUnix":
        return lambda o: o.created
    if name == "_lastUpdateTimeUnix":
        return lambda o: o.updated
    prop = cls.properties.get(name)
    if prop is None:
        raise QueryError(
            f"no such prop with name '{name}' found in class '{cls.name}' in the schema. "
            "Check your schema files for which properties in this class are available"
        )
    if prop.data_type.endswith("[]"):
        raise UnsupportedError("sorting by array properties is not supported here")
    if prop.data_type == "date":
        return lambda o: None if (v := o.properties.get(name)) is None else sch.parse_date(v)
    return lambda o: o.properties.get(name)
