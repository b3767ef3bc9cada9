"""Benchmark: classify + match per request with the knowledge base grown to 10,000 experts and resources.

Not a test. Run: .venv/bin/python bench/bench_classify.py [--n-experts 10000] [--requests 2000]
Reports KB load time, classifier build time, p50/p99 per request and requests/s on one core, and a
bare-library baseline (rapidfuzz process.extract of every request word over the same vocabulary)
side by side, as a ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from rapidfuzz import fuzz, process

from helpdesk.classification import Classifier
from helpdesk.classification.evaluate import read_labelled
from helpdesk.classification.text import words
from helpdesk.matching import Matcher
from knowledge import Expert, Resource, load_knowledge_base
from knowledge.models import AVAILABILITY, PARTY_CODES, RESOURCE_TYPES

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "classify_own.jsonl"


def grow(kb, n_experts: int, n_resources: int, seed: int = 7):
    rng = random.Random(seed)
    langs = ("ru", "en", "kk", "ky", "uz", "tg", "tk", "hy", "az", "be")
    experts = list(kb.experts)
    for i in range(n_experts - len(experts)):
        experts.append(
            Expert(
                id=f"gen-{i:05d}",
                name=f"Generated Example {i}",
                countries=tuple(rng.sample(PARTY_CODES, rng.randint(1, 3))),
                languages=tuple(rng.sample(langs, rng.randint(1, 3))),
                targets=tuple(rng.sample(range(1, 24), rng.randint(1, 4))),
                core_functions=tuple(rng.sample(range(1, 12), rng.randint(1, 3))),
                availability=rng.choice(AVAILABILITY),
                max_open_tickets=rng.randint(2, 8),
                example=True,
            )
        )
    resources = list(kb.resources)
    for i in range(n_resources - len(resources)):
        resources.append(
            Resource(
                id=f"res-{i:05d}",
                title=f"Generated resource {i}",
                url=f"https://example.org/r/{i}",
                type=rng.choice(RESOURCE_TYPES),
                languages=tuple(rng.sample(("ru", "en"), rng.randint(1, 2))),
                targets=tuple(rng.sample(range(1, 24), rng.randint(1, 3))),
                core_functions=tuple(rng.sample(range(1, 12), rng.randint(1, 2))),
            )
        )
    return kb.with_experts(tuple(experts)).with_resources(tuple(resources))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-experts", type=int, default=10_000)
    ap.add_argument("--n-resources", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    base = load_knowledge_base()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    classifier = Classifier(base)
    build_s = time.perf_counter() - t0
    kb = grow(base, args.n_experts, args.n_resources)
    t0 = time.perf_counter()
    matcher = Matcher(kb)
    matcher_s = time.perf_counter() - t0

    # Each request text is made unique (a serial number) so that no per-text cache can help.
    texts = [item.text for item in read_labelled(DATA)]
    rng = random.Random(1)
    requests = [f"{rng.choice(texts)} #{i}" for i in range(args.requests)]
    vocabulary = sorted({e.phrase.lower() for e in classifier.lexicon.entries})

    # Warm-up: stemmer and resolver caches fill once, as they do in a running desk.
    for text in requests[:200]:
        matcher.experts(classifier.classify(text))

    ours: list[float] = []
    start = time.perf_counter()
    for text in requests:
        t = time.perf_counter()
        result = classifier.classify(text)
        matcher.experts(result, load={"gen-00001": 2})
        matcher.acknowledgement_resources(result)
        ours.append(time.perf_counter() - t)
    ours_total = time.perf_counter() - start

    alone: list[float] = []
    start = time.perf_counter()
    for text in requests:
        t = time.perf_counter()
        classifier.classify(text)
        alone.append(time.perf_counter() - t)
    alone_total = time.perf_counter() - start

    bare: list[float] = []
    start = time.perf_counter()
    for text in requests:
        t = time.perf_counter()
        for w in words(text):
            process.extract(w, vocabulary, scorer=fuzz.ratio, limit=3, score_cutoff=85)
        bare.append(time.perf_counter() - t)
    bare_total = time.perf_counter() - start

    ms = 1000.0
    print(
        f"knowledge base load: {load_s * ms:.0f} ms; classifier build: {build_s * ms:.0f} ms "
        f"({classifier.lexicon.vocabulary_size()} stems, {len(classifier.lexicon.entries)} phrases); "
        f"matcher index over {len(kb.experts)} experts + {len(kb.resources)} resources: "
        f"{matcher_s * ms:.0f} ms"
    )
    print(f"{'':34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'req/s':>10}")
    for name, lat, total in (
        ("classify + match (ours)", ours, ours_total),
        ("classify only (ours)", alone, alone_total),
        ("bare rapidfuzz extract baseline", bare, bare_total),
    ):
        print(
            f"{name:34}{percentile(lat, 0.5) * ms:>10.3f}{percentile(lat, 0.99) * ms:>10.3f}"
            f"{statistics.fmean(lat) * ms:>10.3f}{len(lat) / total:>10.0f}"
        )
    print(f"ratio ours / bare baseline (mean latency): {statistics.fmean(ours) / statistics.fmean(bare):.2f}")


if __name__ == "__main__":
    main()
