"""The knowledge base: packaged data loads fast and is complete; errors name file, entry and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from knowledge import (
    KnowledgeError,
    dump_experts,
    dump_resources,
    load_experts_file,
    load_knowledge_base,
    packaged_data_dir,
)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def test_packaged_kb_is_complete(kb) -> None:
    # How long it takes to load is measured by bench/bench_classify.py, not here: a wall-clock bound failed
    # this test under a load average of 12.
    assert sorted(kb.targets) == list(range(1, 24))
    assert sorted(kb.core_functions) == list(range(1, 12))
    assert set(kb.parties) == {"AM", "AZ", "BY", "KZ", "KG", "RU", "TJ", "TM", "UZ"}
    assert len(kb.resources) >= 40
    assert len(kb.experts) >= 30


def test_every_target_has_english_and_russian_vocabulary_and_official_text(kb) -> None:
    for t in kb.targets.values():
        assert t.official_text_en.endswith("."), t.number
        assert t.strong.get("en") and t.strong.get("ru"), t.number
        assert t.title_ru and t.title_en


def test_example_experts_are_marked_and_cover_every_target(kb) -> None:
    assert all(e.example for e in kb.experts)
    assert {t for e in kb.experts for t in e.targets} == set(range(1, 24))


def test_resources_have_real_urls_and_unique_ids(kb) -> None:
    ids = [r.id for r in kb.resources]
    assert len(ids) == len(set(ids))
    assert all(r.url.startswith("https://") for r in kb.resources)
    assert {t for r in kb.resources for t in r.targets} >= {1, 2, 3, 4, 13, 17, 21}


def test_places_name_parties(kb) -> None:
    assert "Nukus" in kb.parties["UZ"].places and "Karakalpakstan" in kb.parties["UZ"].places
    assert ".kz" in kb.parties["KZ"].domains


def _copy_kb(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    target.mkdir()
    for name in ("targets.yaml", "experts.yaml", "resources.yaml"):
        with (packaged_data_dir() / name).open("rb") as src, open(target / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def test_error_names_file_entry_and_field(tmp_path: Path) -> None:
    root = _copy_kb(tmp_path)
    doc = yaml.safe_load((root / "resources.yaml").read_text())
    doc["resources"][3]["url"] = "not a url"
    bad_id = doc["resources"][3]["id"]
    (root / "resources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(KnowledgeError) as err:
        load_knowledge_base(root)
    assert err.value.file.endswith("resources.yaml")
    assert err.value.entry == f"resource {bad_id}"
    assert err.value.field == "url"
    assert "resources.yaml" in str(err.value) and bad_id in str(err.value) and "'url'" in str(err.value)


def test_missing_target_is_reported(tmp_path: Path) -> None:
    root = _copy_kb(tmp_path)
    doc = yaml.safe_load((root / "targets.yaml").read_text())
    doc["targets"] = [t for t in doc["targets"] if t["number"] != 17]
    (root / "targets.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(KnowledgeError, match=r"targets missing: \[17\]"):
        load_knowledge_base(root)


def test_roster_round_trips_through_csv_and_yaml(kb, tmp_path: Path) -> None:
    for fmt in ("csv", "yaml"):
        path = tmp_path / f"roster.{fmt}"
        path.write_text(dump_experts(kb.experts, fmt))
        assert load_experts_file(path) == kb.experts
    assert "https://iucngreenlist.org/standard/" in dump_resources(kb.resources, "csv")


def test_csv_roster_errors_name_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(
        "id,name,languages,targets,countries\ne1,Example One,ru;en,3;4,KZ\ne2,Example Two,ru,24,UZ\n"
    )
    with pytest.raises(KnowledgeError) as err:
        load_experts_file(path)
    assert err.value.entry == "expert e2" and err.value.field == "targets"
    assert "24 is outside 1..23" in str(err.value)


def test_csv_roster_rejects_unknown_country_and_duplicate_id(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("id,name,languages,targets,countries\ne1,A,ru,3,FR\n")
    with pytest.raises(KnowledgeError, match="countries"):
        load_experts_file(path)
    path.write_text("id,name,languages,targets\ne1,A,ru,3\ne1,B,en,4\n")
    with pytest.raises(KnowledgeError, match="duplicate"):
        load_experts_file(path)


def test_roster_in_a_directory_replaces_the_packaged_one(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "experts.csv").write_text("id,name,languages,targets\nreal-1,Staff Roster Person,ru,3;1\n")
    kb = load_knowledge_base(root)
    assert [e.id for e in kb.experts] == ["real-1"]
    assert len(kb.targets) == 23
