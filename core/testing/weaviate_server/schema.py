"""Collections (Weaviate "classes"): name rules, server-filled defaults, value validation.

The messages copy the shapes of Weaviate's own (``usecases/objects/validation`` and
``usecases/schema`` in the server's source), because code under test may log them or
match on them. Go type names appear where the server prints ``%T`` of a decoded JSON
value: every JSON or protobuf-Struct number is a ``float64`` there.

Vectors: a collection has either named vectors (``vectorConfig``; each self-provided,
``none``, or computed by the ``text2vec-transformers`` module, stored with the module's
defaults and its per-property settings on every property) or the legacy class-level
vector (``vectorizer: none`` only). :class:`ClassDef` exposes them as
:class:`VectorDef` by name, ``""`` for the class-level one.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import uuid as uuid_lib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

CLASS_NAME_RE = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
PROPERTY_NAME_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
MAX_CLASS_NAME_LEN = 255
MAX_PROPERTY_NAME_LEN = 230
RESERVED_PROPERTY_NAMES = frozenset({"_additional", "_id", "id"})

# RFC 3339 as Go's time.Parse(time.RFC3339, s) accepts it: "T", seconds, optional
# fraction, and a mandatory zone ("Z" or an offset).
_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)

TEXT_TYPES = frozenset({"text", "text[]"})
SCALAR_TYPES = frozenset({"text", "int", "number", "boolean", "date", "uuid", "blob"})
ARRAY_TYPES = frozenset({"text[]", "int[]", "number[]", "boolean[]", "date[]", "uuid[]"})
SUPPORTED_TYPES = SCALAR_TYPES | ARRAY_TYPES
# Real Weaviate types the test server refuses with a clear message instead of faking.
UNSUPPORTED_TYPES = frozenset({"object", "object[]", "geoCoordinates", "phoneNumber"})
TOKENIZATIONS = frozenset({"word", "lowercase", "whitespace", "field", "trigram"})

# The vectorizer modules this server knows. text2vec-transformers stands for any
# text vectorizer: the test supplies the model (``WeaviateTestServer.set_vectorizer``).
TEXT2VEC_TRANSFORMERS = "text2vec-transformers"
VECTORIZER_MODULES = frozenset({TEXT2VEC_TRANSFORMERS})
# What the module fills in when a collection names it (its ClassConfigDefaults and
# PropertyConfigDefaults in the server's source).
_MODULE_CLASS_DEFAULTS = {
    TEXT2VEC_TRANSFORMERS: {"vectorizeClassName": True, "poolingStrategy": "masked_mean"},
}
_MODULE_PROPERTY_DEFAULTS = {
    TEXT2VEC_TRANSFORMERS: {"skip": False, "vectorizePropertyName": False},
}
DISTANCES = frozenset({"cosine", "dot", "l2-squared", "manhattan", "hamming"})


class SchemaError(Exception):
    """A request the real server refuses with 422 and this message."""


class ValidationError(Exception):
    """An object that fails validation; the message is the server's, minus the prefix."""


# -- Go-style formatting of values inside messages --------------------------------------


def go_type(value: Any) -> str:
    """What Go's ``%T`` prints for ``value`` once decoded from JSON or a protobuf Struct."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if value is None:
        return "<nil>"
    return type(value).__name__


def go_value(value: Any) -> str:
    """What Go's ``%v`` prints for ``value`` (close enough for error messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    if value is None:
        return "<nil>"
    return str(value)


# -- dates -------------------------------------------------------------------------------


def normalize_date(value: str) -> str | None:
    """Parse an RFC 3339 date; return it as Go's RFC3339Nano would print it, else None.

    Weaviate stores a date as a Go ``time.Time`` and prints it back with trailing zeros of
    the fraction trimmed and a zero offset written as ``Z``; the original offset is kept
    otherwise. Python keeps microseconds only (the client truncates to six digits too).
    """
    m = _RFC3339_RE.match(value)
    if m is None:
        return None
    day, clock, frac, zone = m.groups()
    try:
        # Range checks (month 13, second 61, ...) like Go's parser.
        datetime.fromisoformat(f"{day}T{clock}{'.' + frac[:6] if frac else ''}{zone}")
    except ValueError:
        return None
    frac = (frac or "").rstrip("0")
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return f"{day}T{clock}{'.' + frac if frac else ''}{zone}"


@lru_cache(maxsize=65536)
def parse_date(value: str) -> datetime:
    """A normalized date string (see :func:`normalize_date`) as an aware datetime."""
    m = _RFC3339_RE.match(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 date: {value!r}")
    day, clock, frac, zone = m.groups()
    return datetime.fromisoformat(f"{day}T{clock}{'.' + frac[:6] if frac else ''}{zone}")


_CANONICAL_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def canonical_uuid(value: Any) -> str | None:
    """The lower-case hyphenated form of a uuid string, or None if it is not one."""
    if not isinstance(value, str):
        return None
    if _CANONICAL_UUID_RE.match(value):
        return value  # already canonical: the common case, skip building a UUID
    try:
        return str(uuid_lib.UUID(value))
    except ValueError:
        return None


# -- property validators -----------------------------------------------------------------
# Each takes the raw value and returns the canonical stored value or raises
# ValidationError with the detail part of the server's message.


def _v_text(v: Any) -> Any:
    if type(v) is str:
        return v
    raise ValidationError(f"not a string, but {go_type(v)}")


def _v_int(v: Any) -> Any:
    t = type(v)
    if t is int:
        return v
    if t is float and v.is_integer():
        # Protobuf Struct (the gRPC batch path) only has doubles: an int property
        # arrives as 42.0 and the schema turns it back into 42.
        return int(v)
    raise ValidationError(f"requires an integer, the given value is '{go_value(v)}'")


def _v_number(v: Any) -> Any:
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    raise ValidationError(f"requires a float, the given value is '{go_value(v)}'")


def _v_boolean(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise ValidationError(f"not a bool, but {go_type(v)}")


def _v_date(v: Any) -> Any:
    if type(v) is str:
        normalized = normalize_date(v)
        if normalized is not None:
            return normalized
    raise ValidationError(
        f"requires a string with a RFC3339 formatted date, but the given value is '{go_value(v)}'"
    )


def _v_uuid(v: Any) -> Any:
    canonical = canonical_uuid(v)
    if canonical is not None:
        return canonical
    raise ValidationError(f"requires a string of UUID format, but the given value is '{v}'")


_BASE64_RE = re.compile(
    r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
)


def _v_blob(v: Any) -> Any:
    if type(v) is not str:
        raise ValidationError(f"not a blob base64 string, but {go_type(v)}")
    if not _BASE64_RE.match(v):
        raise ValidationError("not a valid blob base64 string")
    try:
        base64.b64decode(v, validate=True)
    except binascii.Error as exc:
        raise ValidationError("not a valid blob base64 string") from exc
    return v


def _array(item: Callable[[Any], Any], not_array: str, bad_item: str) -> Callable[[Any], Any]:
    def validate(v: Any) -> Any:
        if not isinstance(v, (list, tuple)):
            raise ValidationError(f"{not_array}, but {go_type(v)}")
        try:
            return [item(x) for x in v]
        except ValidationError:
            raise ValidationError(f"{bad_item}: {go_value(v)}") from None

    return validate


_VALIDATORS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    # data type -> (word used in "invalid <word> property", validator)
    "text": ("text", _v_text),
    "int": ("integer", _v_int),
    "number": ("number", _v_number),
    "boolean": ("boolean", _v_boolean),
    "date": ("date", _v_date),
    "uuid": ("uuid", _v_uuid),
    "blob": ("blob", _v_blob),
    "text[]": (
        "text array",
        _array(_v_text, "not a text array", "invalid text array value"),
    ),
    "int[]": (
        "integer array",
        _array(_v_int, "not an integer array", "invalid integer array value"),
    ),
    # Sic: the server says "integer array" for number[] too.
    "number[]": (
        "number array",
        _array(_v_number, "not an integer array", "invalid integer array value"),
    ),
    "boolean[]": (
        "boolean array",
        _array(_v_boolean, "not a boolean array", "invalid boolean array value"),
    ),
    "date[]": ("date array", _array(_v_date, "not a date array", "invalid date array value")),
    "uuid[]": ("uuid array", _array(_v_uuid, "not a uuid array", "invalid uuid array value")),
}


# -- defaults the server fills in --------------------------------------------------------


def _hnsw_defaults() -> dict[str, Any]:
    return {
        "skip": False,
        "cleanupIntervalSeconds": 300,
        "maxConnections": 32,
        "efConstruction": 128,
        "ef": -1,
        "dynamicEfMin": 100,
        "dynamicEfMax": 500,
        "dynamicEfFactor": 8,
        "vectorCacheMaxObjects": 1000000000000,
        "flatSearchCutoff": 40000,
        "distance": "cosine",
        "filterStrategy": "sweeping",
        "pq": {
            "enabled": False,
            "bitCompression": False,
            "segments": 0,
            "centroids": 256,
            "trainingLimit": 100000,
            "encoder": {"type": "kmeans", "distribution": "log-normal"},
        },
        "bq": {"enabled": False},
        "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
        "rq": {"enabled": False, "bits": 8, "rescoreLimit": 20},
        "multivector": {
            "enabled": False,
            "aggregation": "maxSim",
            "muvera": {"enabled": False, "ksim": 4, "dprojections": 16, "repetitions": 10},
        },
    }


def _flat_defaults() -> dict[str, Any]:
    return {
        "distance": "cosine",
        "vectorCacheMaxObjects": 1000000000000,
        "pq": {"enabled": False, "rescoreLimit": 0, "cache": False},
        "bq": {"enabled": False, "rescoreLimit": -1, "cache": False},
        "sq": {"enabled": False, "rescoreLimit": 0, "cache": False},
        "rq": {"enabled": False, "bits": 8, "rescoreLimit": 20, "cache": False},
        "multivector": {"enabled": False, "aggregation": "maxSim"},
    }


def _merge(defaults: dict[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    out = defaults
    for key, value in (given or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _vector_index_config(index_type: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    if index_type == "hnsw":
        return _merge(_hnsw_defaults(), given)
    if index_type == "flat":
        return _merge(_flat_defaults(), given)
    if index_type == "dynamic":
        raise SchemaError(
            "the dynamic index can only be created under async indexing environment "
            "(ASYNC_INDEXING=true)"
        )
    raise SchemaError(f'unrecognized or unsupported vectorIndexType "{index_type}"')


def _check_vectorizer(name: Any) -> None:
    """The class-level (legacy) vectorizer: only "none" here."""
    if name in VECTORIZER_MODULES:
        raise SchemaError(
            f'vectorizer: "{name}" is supported by the Weaviate test server on named vectors '
            f"only (Configure.Vectors.text2vec_transformers), not as a class-level vectorizer"
        )
    if name != "none":
        raise SchemaError(f'vectorizer: no module with name "{name}" present')


def _named_vectorizer(vectorizer: Mapping[str, Any]) -> dict[str, Any]:
    """One named vector's ``vectorizer`` object, with the module's defaults filled in."""
    module, settings = next(iter(vectorizer.items()))
    if module == "none":
        return {"none": {}}
    if module not in VECTORIZER_MODULES:
        raise SchemaError(f'vectorizer: no module with name "{module}" present')
    if settings is not None and not isinstance(settings, Mapping):
        raise SchemaError(f'vectorizer "{module}": settings must be an object')
    merged = {**_MODULE_CLASS_DEFAULTS[module], **copy.deepcopy(dict(settings or {}))}
    if "properties" in merged:
        props = merged["properties"]
        if not isinstance(props, list):
            raise SchemaError(f"properties field needs to be of array type, got: {go_type(props)}")
        if not props:
            raise SchemaError("properties field needs to have at least 1 property defined")
        for value in props:
            if not isinstance(value, str):
                raise SchemaError(f"properties field value: {go_value(value)} must be a string")
    return {module: merged}


def _with_module_property_defaults(prop: dict[str, Any], modules: list[str]) -> dict[str, Any]:
    """Every property of a collection that uses a vectorizer module gets the module's
    per-property settings (``skip``, ``vectorizePropertyName``), as the server adds them."""
    if not modules:
        return prop
    given = prop.get("moduleConfig")
    module_config: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    for module in modules:
        user = module_config.get(module)
        module_config[module] = {
            **_MODULE_PROPERTY_DEFAULTS[module],
            **(dict(user) if isinstance(user, Mapping) else {}),
        }
    return {**prop, "moduleConfig": module_config}


def _vector_modules(class_json: Mapping[str, Any]) -> list[str]:
    modules: list[str] = []
    for cfg in (class_json.get("vectorConfig") or {}).values():
        for module in cfg.get("vectorizer") or {}:
            if module in VECTORIZER_MODULES and module not in modules:
                modules.append(module)
    return modules


def capitalize_class_name(name: str) -> str:
    """Weaviate upper-cases the first letter of every class name it is given."""
    return name[:1].upper() + name[1:]


def lowercase_property_name(name: str) -> str:
    """Weaviate lower-cases the first letter of every property name it is given."""
    return name[:1].lower() + name[1:]


# -- the class itself --------------------------------------------------------------------


@dataclass
class PropertyDef:
    name: str
    data_type: str
    tokenization: str | None
    index_filterable: bool
    index_searchable: bool
    validate: Callable[[Any], Any] = field(repr=False)
    word: str = field(repr=False)


@dataclass(frozen=True)
class VectorDef:
    """One vector space of a collection: a named vector, or the legacy class-level one
    (``name == ""``)."""

    name: str
    module: str | None  # the vectorizer module, None when vectors are self-provided
    settings: dict[str, Any]  # the module's settings as stored in the schema
    distance: str  # cosine, dot, l2-squared, manhattan or hamming

    @property
    def source_properties(self) -> list[str] | None:
        props = self.settings.get("properties")
        return list(props) if props else None


@dataclass
class ClassDef:
    """One collection: its JSON as the server returns it plus parsed property definitions."""

    name: str
    json: dict[str, Any]
    properties: dict[str, PropertyDef]
    named_vectors: bool
    # Precomputed for the write path, which runs once per property of every object.
    text_names: frozenset[str] = field(default=frozenset(), repr=False)
    # name -> vector space; "" is the legacy class-level vector.
    vectors: dict[str, VectorDef] = field(default_factory=dict, repr=False)
    # Whether some vector of this collection is computed by a vectoriser module.
    vectorized: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.text_names = frozenset(n for n, p in self.properties.items() if p.data_type == "text")
        self.vectors = _vector_defs(self.json)
        self.vectorized = any(v.module for v in self.vectors.values())


def _vector_defs(class_json: Mapping[str, Any]) -> dict[str, VectorDef]:
    named = class_json.get("vectorConfig")
    if named:
        out: dict[str, VectorDef] = {}
        for name, cfg in named.items():
            module, settings = next(iter((cfg.get("vectorizer") or {"none": {}}).items()))
            out[name] = VectorDef(
                name=name,
                module=None if module == "none" else module,
                settings=dict(settings or {}),
                distance=(cfg.get("vectorIndexConfig") or {}).get("distance", "cosine"),
            )
        return out
    return {
        "": VectorDef(
            name="",
            module=None,
            settings={},
            distance=(class_json.get("vectorIndexConfig") or {}).get("distance", "cosine"),
        )
    }

    def property(self, name: str) -> PropertyDef | None:
        return self.properties.get(name)


_PROPERTY_KEYS = (
    "name",
    "dataType",
    "description",
    "tokenization",
    "indexFilterable",
    "indexSearchable",
    "indexRangeFilters",
    "moduleConfig",
    "textAnalyzer",
)


def normalize_property(class_name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one property of a class and fill the server's defaults."""
    if not isinstance(raw, Mapping):
        raise SchemaError("property must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError("property name cannot be empty")
    name = lowercase_property_name(name)
    if not PROPERTY_NAME_RE.match(name) or len(name) > MAX_PROPERTY_NAME_LEN:
        raise SchemaError(
            f"'{name}' is not a valid property name. Property names in Weaviate are "
            "restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]*/”."
        )
    if name in RESERVED_PROPERTY_NAMES:
        raise SchemaError(f"'{name}' is a reserved property name")
    data_type = raw.get("dataType")
    if (
        not isinstance(data_type, list)
        or not data_type
        or not all(isinstance(t, str) for t in data_type)
    ):
        raise SchemaError(f"property '{name}': invalid dataType: dataType must not be empty")
    dt = data_type[0]
    # Deprecated since 1.19; the server migrates them on the way in.
    dt = {"string": "text", "string[]": "text[]"}.get(dt, dt)
    if dt in UNSUPPORTED_TYPES or dt[:1].isupper():
        raise SchemaError(
            f"property '{name}': data type '{data_type[0]}' is not supported by the "
            "Weaviate test server (objects, geo coordinates, phone numbers and "
            "cross-references are out of its scope)"
        )
    if dt not in SUPPORTED_TYPES or len(data_type) != 1:
        raise SchemaError(
            f"property '{name}': invalid dataType: {data_type}: "
            f"dataType '{data_type[0]}' is not a valid data type"
        )
    out: dict[str, Any] = {k: copy.deepcopy(raw[k]) for k in _PROPERTY_KEYS if k in raw}
    out["name"] = name
    out["dataType"] = [dt]

    tokenization = raw.get("tokenization")
    if dt in TEXT_TYPES:
        tokenization = tokenization or "word"
        if tokenization not in TOKENIZATIONS:
            raise SchemaError(f"tokenization '{tokenization}' is not allowed for data type '{dt}'")
        out["tokenization"] = tokenization
    elif tokenization:
        raise SchemaError(f"tokenization is not allowed for data type '{dt}'")
    else:
        out.pop("tokenization", None)

    searchable = raw.get("indexSearchable")
    if searchable and dt not in TEXT_TYPES:
        raise SchemaError(
            "`indexSearchable` is allowed only for text/text[] data types. "
            "For other data types set false or leave empty"
        )
    range_filters = raw.get("indexRangeFilters")
    if range_filters and dt not in ("int", "number", "date"):
        raise SchemaError(
            "`indexRangeFilters` is allowed only for number/int/date data types. "
            "For other data types set false or leave empty"
        )
    out["indexFilterable"] = (
        True if raw.get("indexFilterable") is None else bool(raw["indexFilterable"])
    )
    out["indexSearchable"] = (dt in TEXT_TYPES) if searchable is None else bool(searchable)
    out["indexRangeFilters"] = bool(range_filters)
    return out


def _property_def(prop: Mapping[str, Any]) -> PropertyDef:
    dt = prop["dataType"][0]
    word, validate = _VALIDATORS[dt]
    return PropertyDef(
        name=prop["name"],
        data_type=dt,
        tokenization=prop.get("tokenization"),
        index_filterable=prop["indexFilterable"],
        index_searchable=prop["indexSearchable"],
        validate=validate,
        word=word,
    )


def normalize_class(body: Any) -> ClassDef:
    """Validate a ``POST /v1/schema`` body and return the class with server defaults."""
    if not isinstance(body, Mapping):
        raise SchemaError("class must be an object")
    raw_name = body.get("class")
    if not isinstance(raw_name, str):
        raw_name = ""
    name = capitalize_class_name(raw_name)
    if not CLASS_NAME_RE.match(name) or len(name) > MAX_CLASS_NAME_LEN:
        raise SchemaError(f"'{name}' is not a valid class name")

    out: dict[str, Any] = {"class": name}
    if body.get("description") is not None:
        out["description"] = body["description"]

    inverted = _merge(
        {
            "bm25": {"b": 0.75, "k1": 1.2},
            "cleanupIntervalSeconds": 60,
            "stopwords": {"preset": "en", "additions": None, "removals": None},
            "usingBlockMaxWAND": True,
        },
        body.get("invertedIndexConfig"),
    )
    out["invertedIndexConfig"] = inverted

    mt = body.get("multiTenancyConfig") or {}
    if mt.get("enabled"):
        raise SchemaError("multi-tenancy is not supported by the Weaviate test server")
    if mt.get("autoTenantCreation"):
        raise SchemaError("can't enable autoTenantCreation on a non-multi-tenant class")
    if mt.get("autoTenantActivation"):
        raise SchemaError("can't enable autoTenantActivation on a non-multi-tenant class")
    out["multiTenancyConfig"] = {
        "enabled": False,
        "autoTenantCreation": False,
        "autoTenantActivation": False,
    }

    module_config = body.get("moduleConfig") or {}
    for module in module_config:
        raise SchemaError(f'module "{module}": no module with name "{module}" present')

    properties: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw_prop in body.get("properties") or []:
        prop = normalize_property(name, raw_prop)
        if prop["name"].lower() in seen:
            raise SchemaError(
                f'class "{name}": conflict for property "{prop["name"]}": '
                "already in use or provided multiple times"
            )
        seen.add(prop["name"].lower())
        properties.append(prop)
    out["properties"] = properties

    replication = _merge(
        {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"},
        body.get("replicationConfig"),
    )
    if replication["factor"] > 1:
        raise SchemaError(
            "could not find enough weaviate nodes for replication: "
            f"1 available, {replication['factor']} requested"
        )
    out["replicationConfig"] = replication

    out["shardingConfig"] = _merge(
        {
            "virtualPerPhysical": 128,
            "desiredCount": 1,
            "actualCount": 1,
            "desiredVirtualCount": 128,
            "actualVirtualCount": 128,
            "key": "_id",
            "strategy": "hash",
            "function": "murmur3",
        },
        body.get("shardingConfig"),
    )
    # Whatever the request says, one node holds one shard.
    out["shardingConfig"]["desiredCount"] = out["shardingConfig"]["actualCount"] = 1

    vector_config = body.get("vectorConfig")
    legacy = any(body.get(k) for k in ("vectorizer", "vectorIndexType", "vectorIndexConfig"))
    named = bool(vector_config)
    if named:
        if legacy:
            raise SchemaError(
                "creating a class with both a class level vector index and named vectors "
                "is forbidden"
            )
        if not isinstance(vector_config, Mapping):
            raise SchemaError("vectorConfig must be an object")
        vectors: dict[str, Any] = {}
        for vec_name, cfg in vector_config.items():
            cfg = cfg or {}
            vectorizer = cfg.get("vectorizer") or {"none": {}}
            if not isinstance(vectorizer, Mapping) or len(vectorizer) != 1:
                raise SchemaError(
                    f'target vector "{vec_name}": vectorizer must be an object with one key'
                )
            try:
                stored_vectorizer = _named_vectorizer(vectorizer)
                index_type = cfg.get("vectorIndexType") or "hnsw"
                index_config = _vector_index_config(index_type, cfg.get("vectorIndexConfig"))
            except SchemaError as exc:
                raise SchemaError(f'target vector "{vec_name}": {exc}') from None
            vectors[vec_name] = {
                "vectorizer": stored_vectorizer,
                "vectorIndexType": index_type,
                "vectorIndexConfig": index_config,
            }
        out["vectorConfig"] = vectors
        modules = _vector_modules(out)
        out["properties"] = [_with_module_property_defaults(p, modules) for p in properties]
    else:
        vectorizer = body.get("vectorizer") or "none"
        _check_vectorizer(vectorizer)
        index_type = body.get("vectorIndexType") or "hnsw"
        out["vectorizer"] = vectorizer
        out["vectorIndexType"] = index_type
        out["vectorIndexConfig"] = _vector_index_config(index_type, body.get("vectorIndexConfig"))

    return build_class(out)


def build_class(class_json: dict[str, Any]) -> ClassDef:
    return ClassDef(
        name=class_json["class"],
        json=class_json,
        properties={p["name"]: _property_def(p) for p in class_json["properties"]},
        named_vectors="vectorConfig" in class_json,
    )


def with_property(cls: ClassDef, raw_prop: Mapping[str, Any]) -> tuple[ClassDef, dict[str, Any]]:
    """A copy of ``cls`` with one more property (``POST /v1/schema/{class}/properties``)."""
    prop = _with_module_property_defaults(
        normalize_property(cls.name, raw_prop), _vector_modules(cls.json)
    )
    if prop["name"].lower() in {p.lower() for p in cls.properties}:
        raise SchemaError(
            f'class "{cls.name}": conflict for property "{prop["name"]}": '
            "already in use or provided multiple times"
        )
    new_json = dict(cls.json)
    new_json["properties"] = [*cls.json["properties"], prop]
    return build_class(new_json), prop


# -- auto-schema -------------------------------------------------------------------------


def infer_data_type(value: Any) -> str | None:
    """The type Weaviate's auto-schema picks for a value it has not seen before.

    Strings that parse as RFC 3339 dates become ``date`` and UUID strings ``uuid``, like
    the server; numbers become ``number`` (its ``AUTOSCHEMA_DEFAULT_NUMBER``).
    """
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        if normalize_date(value) is not None:
            return "date"
        if canonical_uuid(value) is not None:
            return "uuid"
        return "text"
    if isinstance(value, (list, tuple)) and value:
        inner = infer_data_type(value[0])
        return f"{inner}[]" if inner in SCALAR_TYPES and inner != "blob" else None
    return None


def auto_class(name: str) -> dict[str, Any]:
    """The body auto-schema posts for a class it creates on first write."""
    return {"class": name, "properties": []}


def auto_property(name: str, value: Any) -> dict[str, Any]:
    data_type = infer_data_type(value)
    if data_type is None:
        raise ValidationError(
            f"auto-schema of the Weaviate test server cannot infer a type for property "
            f"'{name}' from {go_type(value)}"
        )
    return {"name": name, "dataType": [data_type]}


# -- tokenization (filters on text and the keyword search) -------------------------------

_WORD_SPLIT = re.compile(r"[^\w]+|_+", re.UNICODE)


def tokenize(text: str, tokenization: str | None) -> list[str]:
    """Split text the way the inverted index does for each tokenization.

    ``word`` keeps letters and digits, lower-cased; ``lowercase`` and ``whitespace``
    split on whitespace (the latter keeps case); ``field`` is the whole trimmed value.
    ``trigram`` is approximated by ``word`` here.
    """
    if tokenization == "field":
        stripped = text.strip()
        return [stripped] if stripped else []
    if tokenization == "whitespace":
        return text.split()
    if tokenization == "lowercase":
        return text.lower().split()
    return [t for t in _WORD_SPLIT.split(text.lower()) if t]
