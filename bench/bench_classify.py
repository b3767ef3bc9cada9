"""Benchmark: classify + match per request with the knowledge base grown to 10,000 experts and resources.

Not a test. Run: .venv/bin/python bench/bench_classify.py [--n-experts 10000] [--requests 3000] [--runs 3]
Reports KB load time, classifier and matcher build time, the classifier's memory (beside a bare pymorphy3
analyzer's), then p50/p99/mean per request, requests/s and
CPU-time p99 on one thread for classify + match, classify only and match only, beside a bare-library
baseline (rapidfuzz process.extract of every request word over the same vocabulary), with each row's
mean latency as a multiple of the baseline's. Every figure is the median over --runs repetitions.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rapidfuzz import fuzz, process

from helpdesk.classification import Classification, build_classifier
from helpdesk.classification.evaluate import read_labelled
from helpdesk.classification.text import words
from helpdesk.matching import Matcher
from knowledge import Expert, KnowledgeBase, Resource, load_knowledge_base
from knowledge.models import AVAILABILITY, PARTY_CODES, RESOURCE_TYPES, Vocabulary

T = TypeVar("T")
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


def kb_phrases(kb: KnowledgeBase) -> list[str]:
    """Every phrase the knowledge base gives a classifier: the baseline searches the same words.

    Read from the knowledge base, not from the classifier, so the bench works with any implementation.
    """
    vocabularies: list[Vocabulary] = [kb.domain, *kb.noise.values()]
    for t in kb.targets.values():
        vocabularies += [t.strong, t.terms, t.weak]
    for cf in kb.core_functions.values():
        vocabularies += [cf.strong, cf.cues]
    phrases = {p for vocab in vocabularies for ps in vocab.values() for p in ps}
    for party in kb.parties.values():
        phrases.update((party.name_en, party.name_ru, party.name_national, *party.aliases))
        phrases.update((*party.places, *party.language_markers))
    return sorted({p.lower() for p in phrases})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    p50: float
    p99: float
    mean: float
    per_second: float
    cpu_p99: float


def timed(requests: list[T], work: Callable[[T], object]) -> Figures:
    wall: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    for item in requests:
        t, c = time.perf_counter(), time.thread_time()
        work(item)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return Figures(
        percentile(wall, 0.5),
        percentile(wall, 0.99),
        statistics.fmean(wall),
        len(wall) / total,
        percentile(cpu, 0.99),
    )


def resident_mb() -> float:
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def model_memory(base: KnowledgeBase) -> tuple[float, float]:
    """MB the built classifier holds (dictionaries loaded anew), and a bare pymorphy3 analyzer's."""
    import pymorphy3

    from helpdesk.classification.text import russian_morphology

    def traced(build: Callable[[], object]) -> float:
        tracemalloc.start()
        kept = build()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
        return size / 1e6

    russian_morphology.cache_clear()
    ours = traced(lambda: build_classifier(base))
    bare = traced(lambda: pymorphy3.MorphAnalyzer(lang="ru"))
    return ours, bare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-experts", type=int, default=10_000)
    ap.add_argument("--n-resources", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3, help="repeat every measurement; medians are reported")
    args = ap.parse_args()

    t0 = time.perf_counter()
    base = load_knowledge_base()
    load_s = time.perf_counter() - t0
    rss_before = resident_mb()
    t0 = time.perf_counter()
    classifier = build_classifier(base)
    build_s = time.perf_counter() - t0
    rss_growth = resident_mb() - rss_before
    model_mb, bare_mb = model_memory(base)
    kb = grow(base, args.n_experts, args.n_resources)
    t0 = time.perf_counter()
    matcher = Matcher(kb)
    matcher_s = time.perf_counter() - t0

    # Each request text is made unique (a serial number) so that no per-text cache can help.
    texts = [item.text for item in read_labelled(DATA)]
    rng = random.Random(1)
    requests = [f"{rng.choice(texts)} #{i}" for i in range(args.requests)]
    classified = [classifier.classify(text) for text in requests]
    vocabulary = kb_phrases(base)

    # Warm-up: stemmer and resolver caches fill once, as they do in a running desk.
    for text in requests[:200]:
        result = classifier.classify(text)
        matcher.experts(result)
        matcher.acknowledgement_resources(result)

    def match(result: Classification) -> None:
        matcher.experts(result, load={"gen-00001": 2})
        matcher.acknowledgement_resources(result)

    def classify_and_match(text: str) -> None:
        match(classifier.classify(text))

    def bare(text: str) -> None:
        for w in words(text):
            process.extract(w, vocabulary, scorer=fuzz.ratio, limit=3, score_cutoff=85)

    rows: dict[str, list[Figures]] = {
        "classify + match (ours)": [],
        "classify only (ours)": [],
        "match only (ours)": [],
        "bare rapidfuzz extract baseline": [],
    }
    for _ in range(args.runs):
        rows["classify + match (ours)"].append(timed(requests, classify_and_match))
        rows["classify only (ours)"].append(timed(requests, classifier.classify))
        rows["match only (ours)"].append(timed(classified, match))
        rows["bare rapidfuzz extract baseline"].append(timed(requests, bare))

    ms = 1000.0
    print(
        f"knowledge base load: {load_s * ms:.0f} ms; classifier build: {build_s * ms:.0f} ms; "
        f"{len(vocabulary)} knowledge-base phrases; "
        f"matcher index over {len(kb.experts)} experts + {len(kb.resources)} resources: "
        f"{matcher_s * ms:.0f} ms"
    )
    print(
        f"classifier models in memory (tracemalloc, Russian dictionaries included): {model_mb:.1f} MB; "
        f"bare pymorphy3 analyzer alone: {bare_mb:.1f} MB; resident memory grown by the first build "
        f"(C dictionaries too): {rss_growth:.1f} MB"
    )
    # A shared, busy machine stretches wall-clock tails; CPU time per request shows what is ours.
    print(f"median of {args.runs} runs x {args.requests} requests, one thread")
    print(f"{'':34}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'req/s':>8}{'cpu p99':>9}{'x base':>8}")
    baseline = statistics.median(f.mean for f in rows["bare rapidfuzz extract baseline"])
    for name, figures in rows.items():

        def med(field: str, figures: list[Figures] = figures) -> float:
            return statistics.median(getattr(f, field) for f in figures)

        print(
            f"{name:34}{med('p50') * ms:>9.3f}{med('p99') * ms:>9.3f}{med('mean') * ms:>9.3f}"
            f"{med('per_second'):>8.0f}{med('cpu_p99') * ms:>9.3f}{med('mean') / baseline:>8.2f}"
        )
    print("x base: mean latency as a multiple of the bare rapidfuzz baseline's")


if __name__ == "__main__":
    main()
