"""What would move the related list: other texts, vectors and fusions, scored offline.

    .venv/bin/python bench/bench_related.py [--data FILE] [--cache DIR]

`bench_quality.py` scores the related list as Agira serves it (the item's stored vector,
its nearest neighbours in the embedded index). This script asks what else could find the
original of a duplicate: it embeds the evaluation set's reports (bench/data/) with the
real local model in several forms, once (the vectors are kept in `--cache`, keyed by the
model and the texts), and ranks every report against every other in numpy, exactly
(no index, no quantisation), for each variant:

* the text as stored (title + description, `embedding_text`): the nearest vectors;
* the description without its {code}/{noformat} blocks, stack-trace and log lines;
* a second vector of the title alone, mixed into the cosine with a weight;
* long descriptions cut into chunks of about 800 characters, each embedded with the
  title (at most 4 per report), the report scored by its best chunk or their mean;
* keyword lists fused in: Okapi BM25 (k1 1.2, b 0.75, title words counted twice, the
  index's stop words left out) with the report's own title + text, or its title alone,
  as the query; fused by reciprocal rank (k = 60, and others) or by a weighted sum of
  z-scores over each list's top 50;
* the nearest 50 by cosine reordered by reciprocal rank fusion with the first 50 of the
  BM25 list of the report's title, nothing else let in: how Agira's related list orders
  them (`context.rerank`, k = 10);
* each of the best kept to the report's own JIRA project ("this project" scope).

Recall@1, Recall@10 and MRR as in bench_quality.py; the query report itself is left out.
The constants here were tried on the very queries they are scored on, so the best rows
flatter themselves by a point or two. Nothing here asserts: the script prints figures.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "data"))

TOP = 10
CHUNK_CHARS = 800
MAX_CHUNKS = 4
GOAL_RELATED_R10 = 85.0

# A {code} or {noformat} block of JIRA wiki markup, and a line of a stack trace or a log.
CODE_BLOCK = re.compile(r"\{(code|noformat)[^}]*\}.*?(?:\{\1\}|$)", re.S)
TRACE_LINE = re.compile(
    r"^\s*(?:at |\.\.\. \d+ more|Caused by:|\d{4}-\d\d-\d\d[ T]\d\d:\d\d).*$", re.M
)


def without_code(body: str) -> str:
    body = TRACE_LINE.sub("", CODE_BLOCK.sub(" ", body))
    return re.sub(r"\n\s*\n+", "\n\n", body).strip()


def chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs packed into pieces of at most `size` characters."""
    out: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        while len(paragraph) > size:
            out.append(paragraph[:size])
            paragraph = paragraph[size:]
        if current and len(current) + len(paragraph) > size:
            out.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}".strip()
    if current:
        out.append(current)
    return out or [""]


def stored_text(report: dict) -> str:
    """The text Agira embeds for an item with this title and description."""
    from core.services.index.documents import embedding_text

    # An item's text opens with its state paragraph, which embedding_text leaves out.
    return embedding_text(
        {"type": "item", "title": report["title"], "text": f"Status: open\n\n{report['body']}"}
    )


class Vectors:
    """Texts embedded once and kept on disk, keyed by the model and the texts."""

    def __init__(self, folder: Path) -> None:
        from core.services.index.embeddings.local import LocalEmbedder

        self.embedder = LocalEmbedder()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, form: str, texts: list[str]):
        import numpy as np

        digest = hashlib.sha256(self.embedder.info.key.encode())
        for text in texts:
            digest.update(b"\0" + text.encode("utf-8", "surrogatepass"))
        path = self.folder / f"{form}-{digest.hexdigest()[:16]}.npy"
        if path.exists():
            return np.load(path)
        started = time.perf_counter()
        vectors = self.embedder.embed(texts)
        np.save(path, vectors)
        print(
            f"  embedded {len(texts)} texts ({form}) in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        return vectors


class BM25:
    """Okapi BM25 over the reports, the title's words counted twice (as the index
    weights its title column) and the index's stop words left out."""

    def __init__(self, reports: list[dict], k1: float = 1.2, b: float = 0.75) -> None:
        from core.services.index.targets.embedded import STOP_WORDS

        self.stop = STOP_WORDS
        self.k1, self.b = k1, b
        counts = []
        for report in reports:
            words = Counter(self.words(report["body"]))
            for word in self.words(report["title"]):
                words[word] += 2
            counts.append(words)
        self.size = len(counts)
        self.average = sum(sum(c.values()) for c in counts) / self.size
        frequency = Counter(word for c in counts for word in c)
        self.idf = {
            w: math.log(1 + (self.size - n + 0.5) / (n + 0.5)) for w, n in frequency.items()
        }
        self.postings: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for index, c in enumerate(counts):
            length = sum(c.values())
            for word, n in c.items():
                self.postings[word].append((index, n, length))

    def words(self, text: str) -> list[str]:
        return [
            w for w in re.findall(r"[a-z0-9_]+", text.lower()) if len(w) > 1 and w not in self.stop
        ]

    def scores(self, query: str):
        import numpy as np

        out = np.zeros(self.size)
        for word in set(self.words(query)):
            for index, n, length in self.postings.get(word, ()):
                norm = n + self.k1 * (1 - self.b + self.b * length / self.average)
                out[index] += self.idf[word] * n * (self.k1 + 1) / norm
        return out


def scored(matrix, queries, originals) -> tuple[float, float, float]:
    """Recall@1, Recall@10, MRR (percent) of score rows, one per query."""
    import numpy as np

    rows = np.arange(len(queries))
    matrix = matrix.copy()
    matrix[rows, queries] = -np.inf  # the query report itself
    ranks = (matrix > matrix[rows, originals][:, None]).sum(axis=1) + 1
    mrr = np.where(ranks <= TOP, 1.0 / ranks, 0.0).mean()
    return 100 * (ranks <= 1).mean(), 100 * (ranks <= TOP).mean(), 100 * mrr


def rrf(lists, queries, k: int = 60):
    import numpy as np

    out = np.zeros_like(lists[0])
    rows = np.arange(len(queries))
    for scores in lists:
        scores = scores.copy()
        scores[rows, queries] = -np.inf
        ranks = np.argsort(np.argsort(-scores, axis=1), axis=1) + 1
        out += 1.0 / (k + ranks)
    return out


def reranked(nearest, keyword, queries, *, depth: int = 50, k: int = 10):
    """As the related list orders them: the first `depth` by cosine, reordered by
    reciprocal rank fusion with the first `depth` of a keyword ranking; nothing
    else gets in."""
    import numpy as np

    rows = np.arange(len(queries))

    def ranks(scores):
        scores = scores.copy()
        scores[rows, queries] = -np.inf
        return np.argsort(np.argsort(-scores, axis=1), axis=1) + 1

    by_vector, by_words = ranks(nearest), ranks(keyword)
    fused = 1.0 / (k + by_vector) + np.where(by_words <= depth, 1.0 / (k + by_words), 0.0)
    return np.where(by_vector <= depth, fused, -np.inf)


def zscore(scores, queries, top: int = 50):
    """Scores as standard deviations from the mean of the list's top `top`."""
    import numpy as np

    scores = scores.copy()
    scores[np.arange(len(queries)), queries] = -np.inf
    best = np.sort(scores, axis=1)[:, -top:]
    return (scores - best.mean(axis=1, keepdims=True)) / (best.std(axis=1, keepdims=True) + 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the JSONL(.gz) file (default: the one in bench/data/)")
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "agira-bench-related"),
        help="where the embedded forms are kept between runs",
    )
    args = parser.parse_args()

    import duplicates
    import numpy as np
    from bench_quality import configure

    reports = duplicates.load(args.data)
    pairs = duplicates.queries(reports)
    with tempfile.TemporaryDirectory(prefix="agira-bench-related-") as tmp:
        configure(Path(tmp))
        position = {report["id"]: index for index, report in enumerate(reports)}
        queries = np.array([position[query["id"]] for query, _original in pairs])
        originals = np.array([position[original] for _query, original in pairs])
        print(
            f"bench_related: {len(reports)} reports, {len(pairs)} duplicate queries "
            f"({os.cpu_count()} CPUs)",
            flush=True,
        )
        vectors = Vectors(Path(args.cache))

        stored = vectors.get("stored", [stored_text(r) for r in reports])
        title = vectors.get("title", [r["title"] or "(no title)" for r in reports])
        cleaned = vectors.get(
            "without-code",
            [f"{r['title']}\n\n{without_code(r['body'])}".strip() for r in reports],
        )
        owners, pieces = [], []
        for index, report in enumerate(reports):
            for piece in chunks(report["body"])[:MAX_CHUNKS]:
                owners.append(index)
                pieces.append(f"{report['title']}\n\n{piece}".strip())
        chunked = vectors.get("chunks", pieces)
        owners = np.array(owners)

        cosine = stored[queries] @ stored.T
        title_cosine = title[queries] @ title.T
        best_chunk = np.full((len(queries), len(reports)), -np.inf)
        np.maximum.at(best_chunk.T, owners, (stored[queries] @ chunked.T).T)
        mean_chunk = np.zeros_like(stored)
        np.add.at(mean_chunk, owners, chunked)
        mean_chunk /= np.linalg.norm(mean_chunk, axis=1, keepdims=True)

        bm25 = BM25(reports)
        started = time.perf_counter()
        keyword_text = np.array(
            [bm25.scores(f"{reports[q]['title']}\n\n{reports[q]['body']}") for q in queries]
        )
        keyword_title = np.array([bm25.scores(reports[q]["title"]) for q in queries])
        print(f"  BM25 lists in {time.perf_counter() - started:.0f} s", flush=True)

        projects = np.array([r["id"].split("-")[0] for r in reports])
        same_project = projects[queries][:, None] == projects[None, :]
        fused_z = zscore(cosine, queries) + 0.5 * zscore(keyword_title, queries)

        variants = [
            ("the text as stored (nearest vectors)", cosine),
            ("title alone", title_cosine),
            ("without code blocks and log lines", cleaned[queries] @ cleaned.T),
            ("stored + title vector, weight 0.2", 0.8 * cosine + 0.2 * title_cosine),
            ("stored + title vector, weight 0.3", 0.7 * cosine + 0.3 * title_cosine),
            ("chunks of 800 characters, best chunk", best_chunk),
            ("stored, best chunk: mean", 0.5 * cosine + 0.5 * best_chunk),
            ("chunks, mean vector", mean_chunk[queries] @ mean_chunk.T),
            ("BM25, own title + text", keyword_text),
            ("BM25, own title", keyword_title),
            ("RRF k=60: stored, BM25 title + text", rrf([cosine, keyword_text], queries)),
            ("RRF k=60: stored, BM25 title", rrf([cosine, keyword_title], queries)),
            ("RRF k=5: stored, BM25 title + text", rrf([cosine, keyword_text], queries, k=5)),
            (
                "RRF k=60: stored, title vector, BM25",
                rrf([cosine, title_cosine, keyword_text], queries),
            ),
            ("z-scores: stored + 0.5 BM25 title", fused_z),
            (
                "nearest 50, reordered: RRF k=60, BM25 title",
                reranked(cosine, keyword_title, queries, k=60),
            ),
            (
                "nearest 50, reordered: RRF k=10 (served)",
                reranked(cosine, keyword_title, queries),
            ),
            ("this project: the text as stored", np.where(same_project, cosine, -np.inf)),
            (
                "this project: z-scores, stored + 0.5 BM25 title",
                np.where(same_project, fused_z, -np.inf),
            ),
        ]
        print(f"\nRelated, first {TOP} (Recall@1, Recall@10, MRR; n={len(queries)}):")
        best = 0.0
        for name, matrix in variants:
            r1, r10, mrr = scored(matrix, queries, originals)
            best = max(best, r10)
            print(f"  {name:<48} R@1 {r1:5.1f}  R@10 {r10:5.1f}  MRR {mrr:5.1f}")
        print(
            f"\nBest Recall@10 of these: {best:.1f} % (goal for the related list: "
            f">= {GOAL_RELATED_R10:g} %)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
