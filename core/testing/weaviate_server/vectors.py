"""Vector search as Weaviate computes it: distances, the vectoriser's input text, and the
two hybrid fusions.

Everything here mirrors the server's source (v1.36, unchanged through v1.39), file by
file, so that rankings, distances and scores come out as a real server's would:

- distances (``adapters/repos/db/vector/hnsw/distancer``): ``cosine`` is
  ``1 - dot(a/|a|, b/|b|)``, never below 0 (a zero vector stays zero, distance 1);
  ``dot`` is ``-dot(a, b)``; ``l2-squared`` the sum of squared differences;
  ``manhattan`` the sum of absolute differences; ``hamming`` the number of differing
  dimensions. Certainty exists for cosine only: ``1 - distance / 2``
  (``entities/additional/distance.go``).
- the text a vectoriser module embeds for an object
  (``usecases/modulecomponents/vectorizer/object_texts.go``), see :func:`object_text`;
- hybrid fusion (``usecases/traverser/hybrid/hybrid_fusion.go``), see
  :func:`fusion_ranked` and :func:`fusion_relative_score`.

The index is exact (brute force over every stored vector), where a real HNSW index is
approximate: on the small collections of a test both return the same neighbours.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.testing.weaviate_server import schema as sch

# -- distances -------------------------------------------------------------------------------


def decode(vector_bytes: bytes) -> np.ndarray:
    """float32 little-endian bytes (the wire and storage format) as a float32 array."""
    return np.frombuffer(vector_bytes, dtype="<f4")


def distances(metric: str, query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Distance of ``query`` to every row of ``matrix`` (rows: stored vectors)."""
    q = query.astype(np.float64)
    m = matrix.astype(np.float64)
    if metric == "cosine":
        qn = np.linalg.norm(q)
        q = q / qn if qn else q
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        m = np.divide(m, norms, out=np.zeros_like(m), where=norms != 0)
        return np.maximum(1.0 - m @ q, 0.0)
    if metric == "dot":
        return -(m @ q)
    if metric == "l2-squared":
        diff = m - q
        return np.einsum("ij,ij->i", diff, diff)
    if metric == "manhattan":
        return np.abs(m - q).sum(axis=1)
    if metric == "hamming":
        return (m != q).sum(axis=1).astype(np.float64)
    raise ValueError(f"unknown distance metric {metric!r}")


def certainty(distance: float) -> float:
    """Weaviate's certainty of a cosine distance: ``1 - distance / 2``."""
    return 1.0 - distance / 2.0


def certainty_to_distance(value: float) -> float:
    return (1.0 - value) * 2.0


def mean_vector(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Several concepts of one ``near_text`` are embedded apart and averaged
    (``usecases/vectorizer/combine.go``)."""
    stacked = np.stack([v.astype(np.float32) for v in vectors])
    return stacked.mean(axis=0, dtype=np.float32)


# -- the text a vectoriser module embeds ----------------------------------------------------


def separate_camel_case(name: str) -> str:
    """``AgiraObject`` -> ``Agira Object`` (Weaviate uses github.com/fatih/camelcase)."""
    parts: list[str] = []
    current = ""
    prev = None
    for ch in name:
        kind = _char_kind(ch)
        if current and kind != prev:
            parts.append(current)
            current = ""
        current += ch
        prev = kind
    if current:
        parts.append(current)
    # An upper-case run followed by a lower-case run gives its last letter to the next
    # word: "HTMLParser" -> "HTML", "Parser".
    merged: list[str] = []
    for part in parts:
        if merged and part[:1].islower() and merged[-1][-1:].isupper():
            last = merged.pop()
            if len(last) > 1:
                merged.append(last[:-1])
            part = last[-1] + part
        merged.append(part)
    return " ".join(p for p in merged if p != " ")


def _char_kind(ch: str) -> str:
    if ch.islower():
        return "lower"
    if ch.isupper():
        return "upper"
    if ch.isdigit():
        return "digit"
    return "other"


def object_text(
    cls: sch.ClassDef, vector: sch.VectorDef, properties: Mapping[str, Any]
) -> str | None:
    """What a text vectoriser module embeds for one object, or None when there is nothing
    to embed (the object then gets no vector).

    As the server's ``ObjectVectorizer.Texts``: the class name (camel case split) first
    when ``vectorizeClassName`` is on (the module's default); then, property by property
    in name order, the value of each property the vector covers (its
    ``source_properties``, else every property not marked ``skip``), preceded by the
    property name when ``vectorizePropertyName`` is set for it. Text values are taken as
    they are, text arrays item by item; with source properties, numbers, booleans, dates
    (RFC 3339, whole seconds) and number/int/boolean arrays are included too, as Go
    prints them. Everything is joined with single spaces. text2vec-transformers does
    not lower-case its input.
    """
    settings = vector.settings
    source = vector.source_properties
    corpi: list[str] = []
    if settings.get("vectorizeClassName", True):
        corpi.append(separate_camel_case(cls.name))
    module = vector.module or ""
    for name in sorted(properties):
        prop_settings = _property_module_settings(cls, name, module)
        if source is not None:
            if name not in source:
                continue
        elif prop_settings.get("skip", False):
            continue
        named = prop_settings.get("vectorizePropertyName")
        prefix = separate_camel_case(name) + " " if named else ""
        prop = cls.properties.get(name)
        data_type = prop.data_type if prop is not None else ""
        for value in _text_values(properties[name], data_type, with_others=source is not None):
            corpi.append(prefix + value)
    if source is None and not corpi:
        corpi.append(separate_camel_case(cls.name))
    text = " ".join(corpi)
    return text or None


def _property_module_settings(cls: sch.ClassDef, name: str, module: str) -> Mapping[str, Any]:
    for prop in cls.json.get("properties", []):
        if prop.get("name") == name:
            settings = (prop.get("moduleConfig") or {}).get(module)
            return settings if isinstance(settings, Mapping) else {}
    return {}


def _text_values(value: Any, data_type: str, *, with_others: bool) -> list[str]:
    # Go type switch of the server: validated text is a string ([]string for text[]),
    # blobs are strings too; uuids and date arrays have types it does not list.
    if data_type in ("text", "blob"):
        return [value]
    if data_type == "text[]":
        return list(value)
    if not with_others:
        return []
    if data_type in ("int", "number"):
        return [go_float(float(value)) if data_type == "number" else str(value)]
    if data_type == "boolean":
        return ["true" if value else "false"]
    if data_type == "date":
        return [_rfc3339_seconds(value)]
    if data_type == "int[]":
        return [str(v) for v in value]
    if data_type == "number[]":
        return [go_float(float(v)) for v in value]
    if data_type == "boolean[]":
        return ["true" if v else "false" for v in value]
    return []


def _rfc3339_seconds(value: str) -> str:
    """A stored date as Go's ``time.RFC3339`` prints it: no fraction, ``Z`` for UTC."""
    parsed = sch.parse_date(value)
    text = parsed.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# -- Go's %v of a float ------------------------------------------------------------------------


def go_float(value: float, bits: int = 64) -> str:
    """``fmt.Sprintf("%v", x)`` for a float64 (or float32 with ``bits=32``): the shortest
    digits that read back to the same number, in exponent form when the exponent is
    below -4 or at least 6 (``1e+06``, ``1.1666667e-05``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    typed = np.float32(value) if bits == 32 else np.float64(value)
    text = np.format_float_scientific(typed, unique=True, trim="-")
    mantissa, _, exp_text = text.partition("e")
    negative = mantissa.startswith("-")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exp = int(exp_text)
    if exp < -4 or exp >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out = f"{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif exp >= 0:
        whole = digits[: exp + 1].ljust(exp + 1, "0")
        frac = digits[exp + 1 :]
        out = whole + ("." + frac if frac else "")
    else:
        out = "0." + "0" * (-exp - 1) + digits
    return ("-" if negative else "") + out


# -- hybrid fusion -----------------------------------------------------------------------------


@dataclass(slots=True)
class Hit:
    """One result of one hybrid leg: the object's uuid, the leg's own score
    (``SecondarySortValue``: bm25 score, or ``1 - distance`` for the vector leg) and the
    leg's explanation (empty here)."""

    uuid: str
    value: float
    explain: str = ""


@dataclass(slots=True)
class Fused:
    uuid: str
    score: float  # float32 arithmetic, as on the server
    explain: str
    secondary: float  # the last leg's value: the first tie-breaker


def _f32(x: float) -> float:
    return float(np.float32(x))


def _close(a: float, b: float) -> bool:
    # The server compares float32 differences: (a-b)^2 < 1e-14.
    d = _f32(_f32(a) - _f32(b))
    return d * d < 1e-14


def _sort_fused(fused: list[Fused]) -> list[Fused]:
    """Score descending; ties (within float32 noise) by the secondary value descending,
    then by uuid ascending, as the server's sort comparator."""

    def compare(a: Fused, b: Fused) -> int:
        if _close(a.score, b.score):
            if _close(a.secondary, b.secondary):
                return -1 if a.uuid < b.uuid else (1 if a.uuid > b.uuid else 0)
            return -1 if a.secondary > b.secondary else 1
        return -1 if a.score > b.score else 1

    return sorted(fused, key=functools.cmp_to_key(compare))


def fusion_ranked(
    weights: Sequence[float], result_sets: Sequence[Sequence[Hit]], names: Sequence[str]
) -> list[Fused]:
    """rankedFusion: each leg adds ``weight / (rank + 60)``, rank counted from 0.

    ``FusionRanked`` in the server's ``hybrid_fusion.go``: the score of a result at index
    ``i`` of leg ``k`` is ``float32(weights[k] / float64(i + 60))``, summed in float32.
    """
    combined: dict[str, Fused] = {}
    for k, hits in enumerate(result_sets):
        for i, hit in enumerate(hits):
            score = _f32(weights[k] / float(i + 60))
            previous = combined.get(hit.uuid)
            if previous is not None:
                explain = (
                    f"{previous.explain}\nHybrid (Result Set {names[k]}) Document {hit.uuid} "
                    f"contributed {go_float(score, 32)} to the score"
                )
                score = _f32(score + previous.score)
            else:
                explain = (
                    f"{hit.explain}\nHybrid (Result Set {names[k]}) Document {hit.uuid} "
                    f"contributed {go_float(score, 32)} to the score"
                )
            combined[hit.uuid] = Fused(hit.uuid, score, explain, _f32(hit.value))
    return _sort_fused(list(combined.values()))


def fusion_relative_score(
    weights: Sequence[float], result_sets: Sequence[Sequence[Hit]], names: Sequence[str]
) -> list[Fused]:
    """relativeScoreFusion (the default since v1.24): each leg's scores are min-max
    normalised to [0, 1] and multiplied by the leg's weight (``alpha`` for the vector leg,
    ``1 - alpha`` for the keyword leg); an object's score is the sum over the legs that
    found it. A leg whose scores are all equal gives each of its results the full weight.

    ``FusionRelativeScore`` in the server's ``hybrid_fusion.go``, float32 throughout.
    """
    if not result_sets or (not result_sets[0] and (len(result_sets) == 1 or not result_sets[1])):
        return []
    combined: dict[str, Fused] = {}
    for k, hits in enumerate(result_sets):
        if not hits:
            continue
        values = [_f32(h.value) for h in hits]
        hi, lo = max(values), min(values)
        weight = _f32(weights[k])
        for hit, value in zip(hits, values, strict=True):
            score = weight
            if hi != lo:
                score = _f32(weight * _f32(_f32(value - lo) / _f32(hi - lo)))
            explain = (
                f"Hybrid (Result Set {names[k]}) Document {hit.uuid}: original score "
                f"{go_float(value, 32)}, normalized score: {go_float(score, 32)}"
            )
            previous = combined.get(hit.uuid)
            if previous is not None:
                score = _f32(score + previous.score)
                explain += " - " + previous.explain
            combined[hit.uuid] = Fused(hit.uuid, score, hit.explain + "\n" + explain, value)
    return _sort_fused(list(combined.values()))
