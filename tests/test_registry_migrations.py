"""Registry schema migrations (Alembic) on real databases: SQLite, and PostgreSQL when
FRAUDWATCH_TEST_PG_URL is set.

The release-0.1.0 registry in tests/fixtures was made by that release's code
(tests/fixtures/make_registry_0_1_0.py): it has the tables but no record of a
schema revision, as every registry in use today.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel
from test_registry import booster_text, lineage, url  # noqa: F401  (url: the db fixture)

from registry import AliasNotSet, Registry, RegistryError
from registry import tables as _tables  # noqa: F401  (the models on SQLModel.metadata)
from registry.migrate import HEAD, REVISIONS, downgrade, upgrade

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OUR_TABLES = {
    "registered_models",
    "model_versions",
    "aliases",
    "alias_events",
    "webhooks",
    "webhook_deliveries",
    "model_version_tags",
    "version_events",
}


def release_0_1_0(tmp_path: Path) -> tuple[str, Path]:
    db = tmp_path / "registry.db"
    shutil.copy(FIXTURES / "registry-0.1.0.db", db)
    arts = tmp_path / "artifacts"
    shutil.copytree(FIXTURES / "registry-0.1.0-artifacts", arts)
    return f"sqlite:///{db}", arts


def schema_diff(db_url: str) -> list[object]:
    """What differs between the migrated database and the code's tables (nothing, we hope)."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    return [d for d in diff if not (isinstance(d, tuple) and "alembic_version" in str(d))]


def test_the_fixture_is_release_0_1_0s_schema() -> None:
    con = sqlite3.connect(FIXTURES / "registry-0.1.0.db")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {r[1] for r in con.execute("PRAGMA table_info(model_versions)")}
    con.close()
    assert tables == OUR_TABLES - {"model_version_tags", "version_events"}
    assert "description" not in columns


def test_a_release_0_1_0_registry_upgrades_in_place_and_keeps_everything(tmp_path: Path) -> None:
    url_, arts = release_0_1_0(tmp_path)
    reg = Registry(url_, arts, actor="carol@host")
    with reg.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD
    versions = reg.list_versions("fraud")
    assert [(v.version, v.aliases) for v in versions] == [
        (3, ["challenger"]),
        (2, []),
        (1, ["champion"]),
    ]
    assert versions[-1].lineage.rows == 150_001 and versions[-1].actor == "release-0.1.0@fixture"
    assert all(v.description == "" and v.tags == {} for v in versions)
    assert reg.load_booster("fraud", 1).num_trees() == 3  # the artifact still verifies
    history = [(e.kind, e.from_version, e.to_version) for e in reg.history("fraud", "champion")]
    assert history == [("promote", None, 1), ("force", 1, 2), ("rollback", 2, 1)]
    assert [h.url for h in reg.list_webhooks()] == ["http://127.0.0.1:9/hook"]
    assert schema_diff(url_) == []
    # and what the upgrade added works on the old data
    reg.set_tag("fraud", 2, "ticket", "INC-7")
    reg.set_description("fraud", 2, "forced for INC-7, rolled back")
    got = reg.get_version("fraud", 2)
    assert (got.tags, got.description) == ({"ticket": "INC-7"}, "forced for INC-7, rolled back")
    assert [(e.kind, e.key, e.actor) for e in reg.version_events("fraud", 2)] == [
        ("tag", "ticket", "carol@host"),
        ("describe", None, "carol@host"),
    ]
    assert reg.register_version("fraud", booster_text(), lineage()).version == 4
    # opening it again changes nothing
    Registry(url_, arts)
    assert len(Registry(url_, arts).list_versions("fraud")) == 4


def test_a_new_registry_has_exactly_the_codes_schema(url: str, tmp_path: Path) -> None:  # noqa: F811
    Registry(url, tmp_path / "a")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) >= OUR_TABLES
    engine.dispose()
    assert schema_diff(url) == []


def test_a_0_1_0_schema_upgrades_on_either_database(url: str, tmp_path: Path) -> None:  # noqa: F811
    """Release 0.1.0 made its tables without Alembic: build that state (revision 0001's
    frozen DDL, no alembic_version), put data in, and open it with today's code."""
    engine = create_engine(url)
    downgrade_to_0001_without_record(engine)
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO registered_models (id, name, created_at, next_version) "
            "VALUES (1, 'fraud', '2026-03-01 00:00:00', 2)"
        )
        c.exec_driver_sql(
            "INSERT INTO model_versions (id, model_id, version, created_at, actor, "
            "artifact_sha256, data_quality, lineage, extra) VALUES (1, 1, 1, "
            "'2026-03-01 00:00:00', 'dave', '" + "a" * 64 + "', 'passed', '"
            '{"training_start": "2026-01-01T00:00:00", "training_end": "2026-02-01T00:00:00", '
            '"rows": 10, "fraud_rate": 0.1, "fingerprint": "x", "feature_names": ["a"]}'
            "', '{}')"
        )
    engine.dispose()
    reg = Registry(url, tmp_path / "a")
    v1 = reg.get_version("fraud", 1)
    assert (v1.actor, v1.lineage.rows, v1.description, v1.tags) == ("dave", 10, "", {})
    reg.set_tag("fraud", 1, "owner", "risk-team")
    assert reg.get_version("fraud", 1).tags == {"owner": "risk-team"}
    assert schema_diff(url) == []


def downgrade_to_0001_without_record(engine) -> None:  # type: ignore[no-untyped-def]
    upgrade(engine)
    downgrade(engine, "0001")
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE alembic_version")


def test_downgrade_and_upgrade_round_trip(tmp_path: Path) -> None:
    url_, arts = release_0_1_0(tmp_path)
    reg = Registry(url_, arts)
    reg.set_tag("fraud", 1, "k", "v")
    downgrade(reg.engine, "0001")
    assert "description" not in {
        c["name"] for c in inspect(reg.engine).get_columns("model_versions")
    }
    reg.engine.dispose()
    again = Registry(url_, arts)
    assert again.get_version("fraud", 1).tags == {}  # the tags went with their table
    assert again.get_alias("fraud", "champion").version == 1  # type: ignore[union-attr]


def test_a_registry_from_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    url_, arts = release_0_1_0(tmp_path)
    Registry(url_, arts)
    with sqlite3.connect(tmp_path / "registry.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '0099'")
    before = (tmp_path / "registry.db").read_bytes()
    with pytest.raises(RegistryError, match=r"revision '0099'.*upgrade fraudwatch"):
        Registry(url_, arts)
    assert (tmp_path / "registry.db").read_bytes() == before


def _open(url_: str, artifacts: str) -> None:
    Registry(url_, Path(artifacts)).register_version("fraud", booster_text(), lineage())


def test_processes_opening_a_new_registry_at_once_migrate_it_once(
    url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(url, str(tmp_path / "a"))) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reg = Registry(url, tmp_path / "a")
    assert [v.version for v in reg.list_versions("fraud")] == [4, 3, 2, 1]
    with reg.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    assert rows == [(HEAD,)]


def test_aliases_resolve_wherever_a_version_does(tmp_path: Path) -> None:
    url_, arts = release_0_1_0(tmp_path)
    reg = Registry(url_, arts)
    assert [reg.resolve("fraud", r) for r in ("champion", "challenger", "2", "v3", 1)] == [
        1,
        3,
        2,
        3,
        1,
    ]
    with pytest.raises(AliasNotSet, match="'staging' is neither a version number nor an alias"):
        reg.resolve("fraud", "staging")


def test_revisions_are_alembics_heads() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from registry.migrate import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_heads() == [HEAD]
    chain = [r.revision for r in script.walk_revisions()][::-1]
    assert tuple(chain) == REVISIONS
